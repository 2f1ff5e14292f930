//! `surge`: the launch-morning benchmark (see the `surge` library beside it and
//! docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p surge
//! cargo run --release -p surge -- --database-url postgres://postgres@127.0.0.1:5432/postgres --instances 2
//! cargo run --release -p surge -- --stores 25000 --citizens 1000000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mask_reservation::app::{Application, open_db};
use mask_reservation::config::{Config, ConfigArgs, SecretKey};
use mask_reservation::logging;
use surge::phases::Limit;
use surge::prepare::Sizes;
use surge::{self, Options, Target};

#[derive(Parser)]
#[command(
    name = "surge",
    about = "Launch-morning benchmark: a fresh database, the server, and the load of a launch morning"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The server under test, started by surge itself (configured from the
    /// environment, like `mask-reservation serve`, on a prepared database).
    #[command(hide = true)]
    ServeChild,
}

/// The child's configuration: from the environment surge sets, exactly as
/// `mask-reservation serve` reads it (its flags are not surge's).
#[derive(Parser)]
struct ChildConfig {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Stores to prepare.
    #[arg(long, default_value_t = 20)]
    stores: usize,
    /// Verified citizens to prepare (each reserves at most once).
    #[arg(long, default_value_t = 200_000)]
    citizens: usize,
    /// Virtual users of the reservation rush (one connection each).
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Connections of the /healthz and open-data phases, and of the paced reads.
    #[arg(long, default_value_t = 64)]
    read_connections: usize,
    /// Virtual users of the login storm.
    #[arg(long, default_value_t = 64)]
    login_connections: usize,
    /// Length of each phase.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Open-data reads per second alongside the second rush (0: no such phase).
    #[arg(long, default_value_t = 20_000)]
    reads_alongside: u64,
    /// Pharmacy counters handing over pickups during the rush.
    #[arg(long, default_value_t = 24)]
    pickup_stores: usize,
    /// Milliseconds between two pickups at one counter: 100 a minute, under
    /// the product's limit of 120 a minute for one pharmacist (a faster
    /// counter is answered 429 for the rest of the minute).
    #[arg(long, default_value_t = 600)]
    pickup_every_ms: u64,
    /// One more rush with this many users (for the waiting room: 503 and 429
    /// are planned answers), then the first rush again, to see the server
    /// back at its speed once the crowd is gone.
    #[arg(long)]
    overload: Option<usize>,
    /// One more phase where this many users all book one window (of a store
    /// of its own, big enough for everyone), posting only: the booking when
    /// every request wants the same rows.
    #[arg(long)]
    hot_window: Option<usize>,
    /// A PostgreSQL server to run on (a scratch database `surge_<pid>` is
    /// created there and dropped at the end); with --url, the database of that
    /// server. Without either, a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Load a server already running at this http:// URL instead of starting
    /// one; repeat it for several instances on one database (users are spread
    /// over them round-robin). Needs --database-url and --secret-key of those
    /// servers; the database is prepared first. Server memory and CPU are
    /// reported only with --server-pid.
    #[arg(long, requires_all = ["database_url", "secret_key"])]
    url: Vec<String>,
    /// The process id of a server given by --url, on this machine, whose
    /// memory and CPU to report (repeat it for each instance).
    #[arg(long, requires = "url")]
    server_pid: Vec<u32>,
    /// App instances on the same PostgreSQL database: with 2 or more, the
    /// rush is run once more over that many instances started by surge, to
    /// set beside the rush on one.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// The SECRET_KEY of the server given by --url (base64).
    #[arg(long, env = "SURGE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Server worker threads (default: the server's own default).
    #[arg(long)]
    workers: Option<usize>,
    /// The server's database pool size (default: the server's own default).
    #[arg(long)]
    db_pool_size: Option<usize>,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Exit 0 even when some answers were unplanned.
    #[arg(long)]
    allow_errors: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::ServeChild) => serve_child(&ChildConfig::parse_from(["surge"]).config),
        None => bench(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("surge: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server, as `mask-reservation serve` runs it (its log included), on the
/// database surge prepared (migrated already).
fn serve_child(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    // Logged as `mask-reservation serve` logs (`LOG`, set by surge).
    let _log_writer = logging::init();
    let config = Config::from_args(args)?;
    let db = open_db(&config);
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config, db)?;
        app.run_until_stopped().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn bench(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let phase = Limit {
        duration: Duration::from_secs_f64(a.seconds),
        max_ops: None,
    };
    let every = Duration::from_millis(a.pickup_every_ms.max(1));
    // Enough codes at every counter for every rush (the two, the one over
    // several instances, the one logging warnings only, and an overload and
    // the rush after it) at its pace.
    let rushes = 4 + 2 * u64::from(a.overload.is_some());
    let per_store = (phase.duration.as_millis() as u64 * rushes / every.as_millis() as u64) + 10;
    // A freshness probe takes up to a second (the open data is refreshed
    // twice a second): plenty of citizens for it in every rush.
    let probes = usize::try_from(phase.duration.as_secs() * rushes * 4)? + 20;
    let options = Options {
        sizes: Sizes {
            stores: a.stores.max(1),
            citizens: a.citizens,
            pickup_stores: a.pickup_stores.min(a.stores),
            pickups_per_store: usize::try_from(per_store)?,
            freshness_probes: probes,
            hot_window: a.hot_window.is_some(),
        },
        connections: a.connections.max(1),
        read_connections: a.read_connections.max(1),
        login_connections: a.login_connections.max(1),
        phase,
        login_phase: phase,
        reads_alongside: a.reads_alongside,
        pickup_every: every,
        min_pickups: 0,
        overload: a.overload,
        hot_window: a.hot_window.map(|n| n.max(1)),
    };
    if !a.url.is_empty() && a.instances > 1 {
        anyhow::bail!(
            "--instances starts servers; to load instances already running, repeat --url"
        );
    }
    let target = if a.url.is_empty() {
        Target::Child {
            postgres: a.database_url.clone(),
            workers: a.workers,
            db_pool_size: a.db_pool_size,
            instances: a.instances.max(1),
        }
    } else {
        let secret = a
            .secret_key
            .as_deref()
            .context("--url needs --secret-key")?;
        Target::Url {
            base_urls: a.url.clone(),
            database_url: a
                .database_url
                .clone()
                .context("--url needs --database-url")?,
            secret: SecretKey::from_base64(secret)?.bytes().to_vec(),
            server_pids: a.server_pid.clone(),
        }
    };
    let report = surge::run(&options, target)?;
    println!("{}", report.table());
    if let Some(path) = &a.markdown {
        surge::write_markdown(path, &report)?;
        println!("written to {}", path.display());
    }
    let failures = report.checks.failures();
    if !failures.is_empty() {
        eprintln!("\nSURGE FAILED: what was acknowledged is not what is stored");
        for f in &failures {
            eprintln!("  {f}");
        }
        return Ok(ExitCode::from(2));
    }
    let unplanned = report.unplanned();
    if unplanned > 0 && !a.allow_errors {
        eprintln!(
            "\nSURGE FAILED: {unplanned} unplanned answer(s) (not the expected status, 503 or 429); \
             see the statuses column, or pass --allow-errors"
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
