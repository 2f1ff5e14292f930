//! The command line: `serve` (default), `migrate`, `create-admin`,
//! `import-stores`, `seed-demo`, `verify`, `expire`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mask_reservation::accounts::Role;
use mask_reservation::accounts::password::{self, NewPassword};
use mask_reservation::accounts::queries::{NewUser, insert_user};
use mask_reservation::app::{Application, open_db};
use mask_reservation::clock::Clock;
use mask_reservation::config::{Config, ConfigArgs};
use mask_reservation::db::{Db, database_now, write_tx};
use mask_reservation::i18n::{Catalog, Lang, Tr};
use mask_reservation::logging::{self, one_line};
use mask_reservation::policy::Policy;
use mask_reservation::reservations::expiry;
use mask_reservation::state::Keys;
use mask_reservation::stores::import::{parse_csv_reporting, upsert_all_reporting};
use mask_reservation::supply::release;
use mask_reservation::{demo, settings, verify};

#[derive(Parser)]
#[command(
    name = "mask-reservation",
    version,
    about = "Online reservation of rationed public masks"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an administrator. The password is read from standard input, or from
    /// ADMIN_PASSWORD; never from the command line.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, env = "ADMIN_PASSWORD", hide = true, hide_env_values = true)]
        admin_password: Option<String>,
    },
    /// Import stores from a CSV file with the header code,name,addr,type,lat,lng
    /// (and optionally phone, region): new codes are added, known ones
    /// updated. A file with any bad line imports nothing; every bad line is
    /// printed.
    ImportStores {
        /// The CSV file (UTF-8).
        file: PathBuf,
    },
    /// Seed demo stores, supply and accounts into an empty database.
    SeedDemo,
    /// Check the invariants (no oversell, no quota breach, one handover, ledger
    /// equals counters); exits non-zero on any violation.
    Verify,
    /// Expire now every reservation not picked up by the end of its window
    /// plus the pickup grace, and release to the counter the unbooked places
    /// of windows whose booking has closed (what each server instance does
    /// every minute); print how many.
    Expire,
    /// Run draw ID now if its registration has closed (what each server
    /// instance does every minute): resumes where an earlier run stopped;
    /// one instance at a time.
    DrawRun {
        id: i64,
        /// Registrations settled per transaction.
        #[arg(long, default_value_t = mask_reservation::draws::run::BATCH)]
        batch: usize,
    },
    /// Recompute draw ID from its revealed secret and its registrations and
    /// compare every place and outcome with what was recorded; exits
    /// non-zero on any difference.
    DrawVerify { id: i64 },
}

fn main() -> ExitCode {
    // Held to the end, so that the lines still queued are written out.
    let _log_writer = logging::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, as every log event (a cause may hold line breaks).
            let line = format!("error: {e:#}");
            eprintln!("{}", String::from_utf8_lossy(&one_line(line.as_bytes())));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::from_args(&cli.config)?;
    let db = open_db(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, db),
        Command::Migrate => {
            let applied = migrate(&db, &config)?;
            println!(
                "{applied} migration(s) applied to {}",
                config.database_url.redacted()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CreateAdmin {
            email,
            name,
            admin_password,
        } => {
            migrate(&db, &config)?;
            let password = match admin_password {
                Some(p) => p,
                None => read_password_from_stdin()?,
            };
            let id = create_admin(&db, &email, &name, &password)?;
            println!(
                "administrator {} created (id {id})",
                email.trim().to_lowercase()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportStores { file } => {
            migrate(&db, &config)?;
            import_stores(&db, &file)
        }
        Command::SeedDemo => {
            migrate(&db, &config)?;
            let mut conn = db.get()?;
            match demo::seed(&mut conn, &Keys::derive(config.secret.bytes()).national_id)? {
                Some(creds) => println!("{creds}"),
                None => println!("the database already has users or stores; nothing seeded"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Expire => {
            migrate(&db, &config)?;
            expire(&db)
        }
        Command::DrawRun { id, batch } => draw_run(&db, &config, id, batch),
        Command::DrawVerify { id } => {
            let mut conn = db.get()?;
            let found = mask_reservation::draws::check::differences(&mut conn, id)?;
            if found.is_empty() {
                println!("ok: draw {id} recomputes to exactly what was recorded");
                Ok(ExitCode::SUCCESS)
            } else {
                for f in &found {
                    println!("DIFFERENCE {f}");
                }
                println!("{} difference(s)", found.len());
                Ok(ExitCode::from(2))
            }
        }
        Command::Verify => {
            let mut conn = db.get()?;
            let findings = verify::run(&mut conn)?;
            if findings.is_empty() {
                println!("ok: every invariant holds");
                Ok(ExitCode::SUCCESS)
            } else {
                for f in &findings {
                    println!("VIOLATION {f}");
                }
                println!("{} violation(s)", findings.len());
                Ok(ExitCode::from(2))
            }
        }
    }
}

/// Runs draw `id` to its end, or as far as it can, at the database's time.
fn draw_run(db: &Db, config: &Config, id: i64, batch: usize) -> anyhow::Result<ExitCode> {
    use mask_reservation::draws::run::{self, Pace, Ran};
    let mut conn = db.get()?;
    let policy = Arc::new(Policy::load(&mut conn)?);
    if let Err(skew) = Clock::system().trusted(database_now(&mut conn)?) {
        eprintln!("not drawing: {skew}; fix this machine's clock");
        return Ok(ExitCode::from(2));
    }
    drop(conn);
    let t = Tr::new(Arc::new(Catalog::load()?), Lang::Ko);
    let base_url = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind));
    let db = db.clone();
    let pace = Pace {
        batch,
        stop_after: None,
    };
    let ran = actix_web::rt::System::new().block_on(async move {
        run::run(&db, id, &Clock::system(), policy, t, base_url, pace).await
    })?;
    match ran {
        Ran::Done { won, not_drawn } => {
            println!("draw {id} done: {won} drawn, {not_drawn} not drawn");
            Ok(ExitCode::SUCCESS)
        }
        Ran::Stopped { drawn } => {
            println!("draw {id} stopped after {drawn} registration(s)");
            Ok(ExitCode::SUCCESS)
        }
        Ran::Busy => {
            println!("draw {id} is being run by another instance");
            Ok(ExitCode::from(3))
        }
        Ran::NotDue => {
            println!("draw {id} is not due: registration has not closed, or it is done");
            Ok(ExitCode::from(3))
        }
    }
}

/// Runs the no-show expiry and the release of closed windows once with the
/// policy in force, as every instance does each minute.
fn expire(db: &Db) -> anyhow::Result<ExitCode> {
    let mut conn = db.get()?;
    let policy = Policy::load(&mut conn)?;
    let (grace, close) = (policy.pickup_grace_minutes, policy.booking_close_minutes);
    // The database's clock, as every instance's minute job takes it; not at
    // all when this machine's is off it.
    let now = match Clock::system().trusted(database_now(&mut conn)?) {
        Ok(now) => now,
        Err(skew) => {
            eprintln!(
                "not expiring: {skew}; fix this machine's clock (more than {} s is refused)",
                mask_reservation::clock::MAX_SKEW.num_seconds()
            );
            return Ok(ExitCode::from(2));
        }
    };
    drop(conn);
    let db = db.clone();
    let (expired, released) = actix_web::rt::System::new().block_on(async move {
        let expired = expiry::expire_all(&db, now, grace).await?;
        let released = release::release_all(&db, now, close).await?;
        anyhow::Ok((expired, released))
    })?;
    println!("{expired} reservation(s) expired");
    println!("{released} unbooked place(s) released to the counter");
    Ok(ExitCode::SUCCESS)
}

fn migrate(db: &Db, config: &Config) -> anyhow::Result<usize> {
    let mut conn = db
        .get()
        .with_context(|| format!("cannot connect to {}", config.database_url.redacted()))?;
    let applied = conn.run_migrations()?;
    write_tx(&mut conn, |tx| {
        settings::apply_timezone(tx, config.timezone)
    })?;
    Ok(applied)
}

fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    Ok(input.lines().next().unwrap_or("").to_owned())
}

fn create_admin(db: &Db, email: &str, name: &str, password: &str) -> anyhow::Result<i64> {
    let email = email.trim();
    if !email.contains('@') || email.len() > 254 {
        bail!("`{email}` is not an e-mail address");
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("the name must be 1 to 100 characters");
    }
    let password = NewPassword::parse(password).map_err(|e| {
        anyhow::anyhow!(
            "password {e}: it must be {}–{} characters",
            password::MIN_LEN,
            password::MAX_LEN
        )
    })?;
    let hash = password::hash(&password)?;
    let mut conn = db.get()?;
    let new = NewUser {
        role: Role::Admin,
        email,
        name,
        password_hash: &hash,
        person_id: None,
        store_id: None,
        email_verified: true,
    };
    write_tx(&mut conn, |tx| insert_user(tx, &new)).map_err(|e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => anyhow::anyhow!("an account with e-mail {email} already exists"),
        e => e.into(),
    })
}

/// How many bad lines of a file are printed; the count of the rest follows.
const BAD_LINES_SHOWN: usize = 50;

/// Checks the whole file, then writes it in one transaction, with a progress
/// bar on a terminal (none when standard error is not one).
fn import_stores(db: &Db, path: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let t = Tr::new(Arc::new(Catalog::load()?), Lang::En);
    let bar = ProgressBar::new(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{msg:9} [{bar:40}] {percent:>3}% {elapsed}")?
            .progress_chars("=> "),
    );
    bar.set_message("checking");
    let rows = match parse_csv_reporting(&bytes, &mut |read| bar.set_position(read)) {
        Ok(rows) => rows,
        Err(errors) => {
            bar.finish_and_clear();
            for e in errors.iter().take(BAD_LINES_SHOWN) {
                eprintln!("{}", e.message(&t));
            }
            let more = errors.len().saturating_sub(BAD_LINES_SHOWN);
            if more > 0 {
                eprintln!("{}", t.fmt("admin.store.import.more", &[("count", &more)]));
            }
            eprintln!(
                "{}",
                t.fmt("admin.store.import.rejected", &[("count", &errors.len())])
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    bar.set_length(u64::try_from(rows.len()).unwrap_or(u64::MAX));
    bar.set_position(0);
    bar.set_message("writing");
    let source = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut conn = db.get()?;
    let counts = write_tx(&mut conn, |tx| {
        upsert_all_reporting(tx, &rows, None, &source, &mut |done| {
            bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
        })
    })?;
    bar.finish_and_clear();
    println!(
        "{}",
        t.fmt(
            "admin.store.import.done",
            &[
                ("created", &counts.created),
                ("updated", &counts.updated),
                ("unchanged", &counts.unchanged),
            ],
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn serve(config: Config, db: Db) -> anyhow::Result<ExitCode> {
    if let Some(warning) = config.secret_beside_database_warning() {
        tracing::warn!("{warning}");
    }
    // A volume with little room fills during a rush: said once, at start.
    db.storage().warn_if_little_room();
    // A database that is down at start does not stop the instance: it serves
    // (503 for whatever needs the database, /healthz and /status say so) and
    // prepares the database once it answers.
    let prepared = match prepare(&db, &config) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "the database could not be prepared; serving 503 until it can be"
            );
            db.set_prepared(false);
            false
        }
    };
    let bind = config.bind;
    println!(
        "mask-reservation listening on http://{bind} ({} database)",
        db.backend().as_str()
    );
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config.clone(), db.clone())?;
        if !prepared {
            actix_web::rt::spawn(prepare_when_up(db, config));
        }
        app.run_until_stopped().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The migrations, then the demo data into an empty database when asked.
fn prepare(db: &Db, config: &Config) -> anyhow::Result<()> {
    migrate(db, config)?;
    if config.seed_demo {
        let mut conn = db.get()?;
        if let Some(creds) =
            demo::seed(&mut conn, &Keys::derive(config.secret.bytes()).national_id)?
        {
            println!("{creds}");
        }
    }
    Ok(())
}

/// Tries [`prepare`] again, waiting twice as long after each failure (from a
/// second, at most 30 s), until it succeeds; then lets requests through.
async fn prepare_when_up(db: Db, config: Config) {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        let (d, c) = (db.clone(), config.clone());
        match actix_web::web::block(move || prepare(&d, &c)).await {
            Ok(Ok(())) => {
                db.set_prepared(true);
                tracing::info!("the database is prepared; serving");
                return;
            }
            Ok(Err(e)) => tracing::warn!(
                error = format!("{e:#}"),
                "the database could not be prepared yet"
            ),
            Err(e) => tracing::warn!(error = %e, "preparing the database: blocking pool"),
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(30));
    }
}
