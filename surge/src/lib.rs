//! `surge`, the launch-morning benchmark, a crate of the workspace of its own
//! so that the product does not carry a load generator (`src/main.rs` is its
//! command line): prepares a fresh database of the size asked for in bulk
//! ([`prepare`]), starts the release server on it as a child process logging
//! as production does ([`server`]) or targets instances already running, runs
//! the phases of a launch morning over keep-alive connections ([`phases`],
//! [`client`]) — /healthz as the reference rate, open-data reads over the
//! whole country, a login storm of real logins, the reservation rush with
//! pickups at pharmacy counters and a probe of the open data's freshness
//! alongside, the rush again with paced open-data reads, on PostgreSQL the
//! rush over several instances — then kills the servers with SIGKILL, runs the
//! rush once more on a server that logs warnings only (the log's cost), kills
//! it too and checks that every acknowledged reservation is in the database,
//! that none is there unacknowledged, and that `verify` holds. Each rush is
//! also reported as a whole: CPU per reservation of the app and of
//! PostgreSQL, mail sent, freshness ([`report`] prints it all).
//!
//! Rush and pickup users start logged in: their session cookies are minted
//! with the server's cookie key (a million argon2 logins would take hours);
//! the login storm measures real logins on its own.

pub mod client;
pub mod phases;
pub mod prepare;
pub mod report;
pub mod scratch;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::prelude::*;

use mask_reservation::config::SecretKey;
use mask_reservation::db::schema::{mail_outbox, pickup_windows, reservations};
use mask_reservation::db::{DatabaseUrl, DbConnection};
use mask_reservation::mail::outbox;
use mask_reservation::reservations::status::ReservationStatus;
use mask_reservation::state::Keys;
use phases::{Limit, Measured, Rush, Shared};
use prepare::{Prepared, Sizes};
use report::{Checks, Outbox, Report, Row, RushFigures, ServerUse};

/// Everything a run can be asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub sizes: Sizes,
    /// Virtual users of the reservation rush.
    pub connections: usize,
    /// Connections of the /healthz and open-data phases.
    pub read_connections: usize,
    /// Virtual users of the login storm.
    pub login_connections: usize,
    /// How long each phase lasts, and optionally how many operations it may do.
    pub phase: Limit,
    /// The login storm's limit (logins are slow: a small budget suffices in tests).
    pub login_phase: Limit,
    /// Open-data reads per second alongside the second rush; 0 skips that phase.
    pub reads_alongside: u64,
    /// Time between two pickups at one counter.
    pub pickup_every: Duration,
    /// Pickups each counter makes at least in each rush, however short it is.
    pub min_pickups: u64,
    /// Runs one more rush with `overload_connections` users, for the waiting
    /// room: 503 and 429 are planned answers there.
    pub overload: Option<usize>,
    /// Runs one more phase where this many users all book the hot store's one
    /// window, posting only (needs `sizes.hot_window`).
    pub hot_window: Option<usize>,
}

/// The name of the phase where everyone books one window.
pub const HOT_WINDOW: &str = "everyone on one window";

impl Options {
    /// The plain rush these options ask for.
    fn rush(&self) -> Rush {
        Rush {
            connections: self.connections,
            limit: self.phase,
            reads_alongside: None,
            read_connections: self.read_connections,
            pickup_every: self.pickup_every,
            min_pickups: self.min_pickups,
        }
    }
}

/// Where the server is.
pub enum Target {
    /// Start one of our own on a fresh database: SQLite in a temporary
    /// directory, or a scratch database on the PostgreSQL server named.
    Child {
        postgres: Option<String>,
        workers: Option<usize>,
        db_pool_size: Option<usize>,
        /// Instances on the same database for the rush over several (only
        /// on PostgreSQL); 1: none.
        instances: usize,
    },
    /// Instances already running on `database_url` with `secret` (users
    /// spread over them round-robin); their process ids, if they are on this
    /// machine, for their CPU.
    Url {
        base_urls: Vec<String>,
        database_url: String,
        secret: Vec<u8>,
        server_pids: Vec<u32>,
    },
}

/// The whole benchmark: prepare, serve, load, kill, check.
pub fn run(options: &Options, target: Target) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    match target {
        Target::Url {
            base_urls,
            database_url,
            secret,
            server_pids,
        } => {
            let url = DatabaseUrl::parse(&database_url)?;
            let addrs = base_urls
                .iter()
                .map(|u| socket_addr(u))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let runtime = runtime()?;
            runtime.block_on(run_against(&addrs, &url, &secret, options, &server_pids))
        }
        Target::Child {
            postgres,
            workers,
            db_pool_size,
            instances,
        } => {
            if instances > 1 && postgres.is_none() {
                bail!(
                    "--instances above 1 needs PostgreSQL (--database-url): \
                     SQLite is one machine's database, for one instance"
                );
            }
            let scratch =
                scratch::Scratch::create(postgres.as_deref(), dir.path(), "surge.db", "surge")?;
            let children = Children {
                dir: dir.path().to_owned(),
                workers,
                db_pool_size,
                instances: instances.max(1),
            };
            scratch.run(|url| run_child(options, url, &children))
        }
    }
}

fn database_url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(u) => u.clone(),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn socket_addr(base_url: &str) -> anyhow::Result<SocketAddr> {
    let host = base_url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .context("the URL must be http://HOST:PORT")?;
    use std::net::ToSocketAddrs;
    host.to_socket_addrs()?
        .next()
        .with_context(|| format!("{host} resolves to no address"))
}

/// The servers surge starts: each in a directory of its own under `dir`
/// (data, mail, log).
struct Children {
    dir: PathBuf,
    workers: Option<usize>,
    db_pool_size: Option<usize>,
    instances: usize,
}

impl Children {
    fn start(
        &self,
        n: usize,
        url: &DatabaseUrl,
        secret: &SecretKey,
        log: &str,
    ) -> anyhow::Result<server::ServerChild> {
        let dir = self.dir.join(format!("server-{n}"));
        let (mail_dir, data_dir) = (dir.join("mail"), dir.join("data"));
        std::fs::create_dir_all(&mail_dir)?;
        std::fs::create_dir_all(&data_dir)?;
        server::ServerChild::start(&server::ChildOptions {
            database_url: &database_url_text(url),
            secret_base64: &secret.to_base64(),
            mail_dir: &mail_dir,
            data_dir: &data_dir,
            workers: self.workers,
            db_pool_size: self.db_pool_size,
            log,
            log_file: &dir.join("server.log"),
        })
    }

    /// Each server's warnings and errors on standard error (the first few):
    /// its log, access lines and all, is in the run's temporary directory,
    /// which goes at the end.
    fn report_log_problems(&self) {
        for n in 1..=self.instances + 1 {
            let log = self.dir.join(format!("server-{n}")).join("server.log");
            let (count, first) = server::log_problems(&log, 5);
            if count > 0 {
                eprintln!("server {n} logged {count} warning(s) or error(s); the first:");
                for line in first {
                    eprintln!("  {line}");
                }
            }
        }
    }
}

/// The database name in a PostgreSQL URL (whose processes' CPU is counted).
fn postgres_database(url: &DatabaseUrl) -> Option<String> {
    let DatabaseUrl::Postgres(u) = url else {
        return None;
    };
    let path = u.split('?').next()?;
    let (_, name) = path.rsplit_once('/')?;
    (!name.is_empty()).then(|| name.to_owned())
}

fn peak_of(children: &[server::ServerChild]) -> Option<f64> {
    children
        .iter()
        .filter_map(|c| server::sample(c.pid()))
        .map(|s| s.hwm_kib as f64 / 1024.0)
        .reduce(f64::max)
}

fn run_child(options: &Options, url: &DatabaseUrl, children: &Children) -> anyhow::Result<Report> {
    let secret = SecretKey::generate();
    let keys = Keys::derive(secret.bytes());
    let started = Instant::now();
    let prepared = {
        let mut conn = url.connect()?;
        prepare::prepare(
            &mut conn,
            options.sizes,
            &keys.national_id,
            chrono_tz::Asia::Seoul,
        )?
    };
    eprintln!(
        "prepared {} stores, {} citizens, {} pickup counters in {:.1} s",
        prepared.store_codes.len(),
        prepared.citizens.len(),
        prepared.pharmacists.len(),
        started.elapsed().as_secs_f64()
    );
    let first = children.start(1, url, &secret, "info")?;
    let shared = Arc::new(Shared::new(first.addr, keys.cookie.clone(), prepared));
    let mut watched = Watched {
        pids: vec![first.pid()],
        postgres_database: postgres_database(url),
    };
    let mut running = vec![first];
    let runtime = runtime()?;
    let mut m = runtime.block_on(measure(shared.clone(), options, &watched, Some("info")));
    if children.instances > 1 {
        for n in 2..=children.instances {
            running.push(children.start(n, url, &secret, "info")?);
        }
        let addrs: Vec<SocketAddr> = running.iter().map(|c| c.addr).collect();
        shared.set_addrs(&addrs);
        watched.pids = running.iter().map(server::ServerChild::pid).collect();
        let name = format!("rush, {} instances", children.instances);
        eprintln!("phase: {name}");
        let (rows, figures) = runtime.block_on(rush_phase(
            &name,
            phases::rush(shared.clone(), &name, options.rush()),
            running.len(),
            &watched,
            Some("info"),
        ));
        m.rows.extend(rows);
        m.rushes.push(figures);
    }
    let mut peak = peak_of(&running);
    // Acknowledged means durable: no shutdown, no flush, just gone.
    for child in &mut running {
        child.kill()?;
    }
    // What the access log costs: the rush again on a server (restarted on the
    // same database) that logs warnings only.
    let mut quiet = children.start(children.instances + 1, url, &secret, "warn")?;
    shared.set_addrs(&[quiet.addr]);
    watched.pids = vec![quiet.pid()];
    eprintln!("phase: rush, LOG=warn");
    let (rows, figures) = runtime.block_on(rush_phase(
        "rush, LOG=warn",
        phases::rush(shared.clone(), "rush, LOG=warn", options.rush()),
        1,
        &watched,
        Some("warn"),
    ));
    m.rows.extend(rows);
    m.rushes.push(figures);
    peak = match (peak, peak_of(std::slice::from_ref(&quiet))) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    quiet.kill()?;
    children.report_log_problems();
    let checks = {
        let mut conn = url.connect()?;
        runtime.block_on(check(&shared, &mut conn, &mut m.rushes))?
    };
    Ok(finish(m, peak, checks, url, options))
}

/// The phases and the checks against a server that is already running (the
/// integration test's, or `--url`); the database is prepared first.
pub async fn run_against(
    addrs: &[SocketAddr],
    url: &DatabaseUrl,
    secret: &[u8],
    options: &Options,
    server_pids: &[u32],
) -> anyhow::Result<Report> {
    let Some(&first) = addrs.first() else {
        bail!("no server to load");
    };
    let keys = Keys::derive(secret);
    let (prep_url, sizes, key) = (url.clone(), options.sizes, keys.national_id.clone());
    let prepared: Prepared = tokio::task::spawn_blocking(move || {
        let mut conn = prep_url.connect()?;
        prepare::prepare(&mut conn, sizes, &key, chrono_tz::Asia::Seoul)
    })
    .await??;
    let shared = Arc::new(Shared::new(first, keys.cookie.clone(), prepared));
    shared.set_addrs(addrs);
    let watched = Watched {
        pids: server_pids.to_vec(),
        postgres_database: postgres_database(url),
    };
    let mut m = measure(shared.clone(), options, &watched, None).await;
    let check_url = url.clone();
    let mut conn = tokio::task::spawn_blocking(move || check_url.connect()).await??;
    let checks = check(&shared, &mut conn, &mut m.rushes).await?;
    let peak = server_pids
        .iter()
        .filter_map(|&pid| server::sample(pid))
        .map(|s| s.hwm_kib as f64 / 1024.0)
        .reduce(f64::max);
    Ok(finish(m, peak, checks, url, options))
}

fn finish(
    m: Measurement,
    peak: Option<f64>,
    checks: (Checks, Outbox),
    url: &DatabaseUrl,
    options: &Options,
) -> Report {
    let (checks, outbox) = checks;
    let s = options.sizes;
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: report::machine(),
        backend: url.backend().as_str().to_owned(),
        setup: format!(
            "{} stores, {} citizens, {} rush connections, {} s phases",
            s.stores,
            s.citizens,
            options.connections,
            options.phase.duration.as_secs_f64()
        ),
        stores: s.stores,
        citizens: s.citizens,
        healthz_per_second: m.healthz,
        rows: m.rows,
        server_peak_rss_mib: peak,
        checks,
        rushes: m.rushes,
        outbox: Some(outbox),
    };
    report.set_ratios();
    report
}

/// What is watched during a phase: the app's processes (none when they are
/// not ours to see) and PostgreSQL's processes serving `postgres_database`.
#[derive(Debug, Clone, Default)]
struct Watched {
    pids: Vec<u32>,
    postgres_database: Option<String>,
}

/// The app's processes summed: resident size and CPU ticks.
fn sample_all(pids: &[u32]) -> Option<server::Sample> {
    if pids.is_empty() {
        return None;
    }
    let mut sum = server::Sample::default();
    for &pid in pids {
        let s = server::sample(pid)?;
        sum.rss_kib += s.rss_kib;
        sum.hwm_kib += s.hwm_kib;
        sum.cpu_ticks += s.cpu_ticks;
    }
    Some(sum)
}

/// What one phase used.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    server: Option<ServerUse>,
    app_cpu_seconds: Option<f64>,
    postgres_cpu_seconds: Option<f64>,
}

/// Watches the servers over one phase: peak resident size (of all the app's
/// processes together) sampled every 100 ms, CPU time from start to end, of
/// the app and of PostgreSQL.
struct Watch {
    watched: Watched,
    start: Option<server::Sample>,
    postgres_start: Option<u64>,
    started: Instant,
    peak_kib: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(watched: &Watched) -> Watch {
        let start = sample_all(&watched.pids);
        let postgres_start = watched
            .postgres_database
            .as_deref()
            .and_then(server::postgres_cpu_ticks);
        let peak_kib = Arc::new(AtomicU64::new(start.map_or(0, |s| s.rss_kib)));
        let done = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, done, pids) = (peak_kib.clone(), done.clone(), watched.pids.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    if let Some(s) = sample_all(&pids) {
                        peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Watch {
            watched: watched.clone(),
            start,
            postgres_start,
            started: Instant::now(),
            peak_kib,
            done,
            task,
        }
    }

    async fn stop(self) -> Usage {
        let end = sample_all(&self.watched.pids);
        let postgres_end = self
            .watched
            .postgres_database
            .as_deref()
            .and_then(server::postgres_cpu_ticks);
        let elapsed = self.started.elapsed();
        self.done.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let app_cpu_seconds = match (self.start, end) {
            (Some(a), Some(b)) => Some(server::cpu_seconds(a.cpu_ticks, b.cpu_ticks)),
            _ => None,
        };
        let server = match (end, app_cpu_seconds) {
            (Some(end), Some(cpu)) => Some(ServerUse {
                peak_rss_mib: self.peak_kib.load(Ordering::Relaxed).max(end.rss_kib) as f64
                    / 1024.0,
                cpu_percent: server::cpu_percent(cpu, elapsed),
            }),
            _ => None,
        };
        Usage {
            server,
            app_cpu_seconds,
            postgres_cpu_seconds: match (self.postgres_start, postgres_end) {
                (Some(a), Some(b)) => Some(server::cpu_seconds(a, b)),
                _ => None,
            },
        }
    }
}

async fn watched<F: std::future::Future<Output = Vec<Measured>>>(
    watched: &Watched,
    phase: F,
) -> Vec<Row> {
    let watch = Watch::start(watched);
    let measured = phase.await;
    let usage = watch.stop().await;
    measured
        .into_iter()
        .map(|m| Row::from_measured(m, usage.server))
        .collect()
}

/// One rush, watched: its rows, and its line of figures (the mail sent
/// during it is counted after the run, from the outbox). `rush` is the load,
/// over `instances` instances.
async fn rush_phase(
    name: &str,
    rush: impl std::future::Future<Output = phases::RushOutcome>,
    instances: usize,
    watched: &Watched,
    log: Option<&str>,
) -> (Vec<Row>, RushFigures) {
    let from = chrono::Utc::now().naive_utc();
    let watch = Watch::start(watched);
    let outcome = rush.await;
    let usage = watch.stop().await;
    let to = chrono::Utc::now().naive_utc();
    let rows = outcome
        .rows
        .into_iter()
        .map(|m| Row::from_measured(m, usage.server))
        .collect();
    let figures = RushFigures {
        name: name.to_owned(),
        instances,
        log: log.map(str::to_owned),
        reservations: outcome.reservations,
        seconds: outcome.elapsed.as_secs_f64(),
        freshness_ms: outcome
            .freshness
            .iter()
            .map(|d| d.map(|d| d.as_secs_f64() * 1000.0))
            .collect(),
        app_cpu_seconds: usage.app_cpu_seconds,
        postgres_cpu_seconds: usage.postgres_cpu_seconds,
        from,
        to,
        mails_sent: None,
    };
    (rows, figures)
}

/// What the phases measured.
struct Measurement {
    rows: Vec<Row>,
    healthz: f64,
    rushes: Vec<RushFigures>,
}

/// Runs every phase in order, against the instances `shared` names.
async fn measure(shared: Arc<Shared>, o: &Options, w: &Watched, log: Option<&str>) -> Measurement {
    let addrs = shared.addrs();
    let stores = shared.prepared.store_codes.len();
    let mut rows = Vec::new();
    let mut rushes = Vec::new();
    eprintln!("phase: client ceiling");
    match phases::client_ceiling(o.read_connections, o.phase).await {
        Ok(m) => rows.push(Row::from_measured(m, None)),
        Err(e) => eprintln!("the stub server did not start: {e}"),
    }
    eprintln!("phase: healthz");
    let healthz = watched(w, async {
        vec![phases::healthz(addrs.clone(), o.read_connections, o.phase).await]
    })
    .await;
    let healthz_rate = healthz.first().map_or(0.0, |r| r.per_second);
    rows.extend(healthz);
    eprintln!("phase: open-data reads");
    rows.extend(
        watched(w, async {
            vec![phases::opendata(addrs.clone(), stores, o.read_connections, o.phase).await]
        })
        .await,
    );
    eprintln!("phase: login storm");
    rows.extend(
        watched(
            w,
            phases::login_storm(shared.clone(), o.login_connections, o.login_phase),
        )
        .await,
    );
    let rush = o.rush();
    let instances = addrs.len();
    let mut run = async |name: &str, rush: Rush| {
        eprintln!("phase: {name}");
        let outcome = phases::rush(shared.clone(), name, rush);
        let (r, figures) = rush_phase(name, outcome, instances, w, log).await;
        rows.extend(r);
        rushes.push(figures);
    };
    run("rush", rush).await;
    if o.reads_alongside > 0 {
        let with_reads = Rush {
            reads_alongside: Some(o.reads_alongside),
            ..rush
        };
        run("rush + reads", with_reads).await;
    }
    if let Some(connections) = o.overload {
        let overload = Rush {
            connections,
            ..rush
        };
        run("overload", overload).await;
        // The same rush as before the overload: back at full speed at once?
        run("after overload", rush).await;
    }
    if let Some(connections) = o.hot_window {
        let name = HOT_WINDOW;
        eprintln!("phase: {name}");
        let outcome = phases::hot_window(shared.clone(), name, connections, o.phase);
        let (r, figures) = rush_phase(name, outcome, instances, w, log).await;
        rows.extend(r);
        rushes.push(figures);
    }
    Measurement {
        rows,
        healthz: healthz_rate,
        rushes,
    }
}

/// The states an acknowledged reservation may be in after the load.
const STORED: [ReservationStatus; 2] = [ReservationStatus::Active, ReservationStatus::PickedUp];

/// After the load: every acknowledged reservation is stored, for its user,
/// active or picked up; the rush day holds no reservation nobody was told of
/// (beyond those whose answer never came); and `verify` finds nothing.
async fn check(
    shared: &Shared,
    conn: &mut DbConnection,
    rushes: &mut [RushFigures],
) -> anyhow::Result<(Checks, Outbox)> {
    let acknowledged = shared.acknowledged.lock().await.clone();
    let mut checks = Checks {
        acknowledged: acknowledged.len(),
        unresolved: shared.unresolved.load(Ordering::Relaxed),
        ..Checks::default()
    };
    for chunk in acknowledged.chunks(1000) {
        let ids: Vec<i64> = chunk.iter().map(|(_, id)| *id).collect();
        let found: std::collections::HashMap<i64, (i64, ReservationStatus)> = reservations::table
            .filter(reservations::id.eq_any(&ids))
            .select((
                reservations::id,
                reservations::user_id,
                reservations::status,
            ))
            .load::<(i64, i64, ReservationStatus)>(conn)?
            .into_iter()
            .map(|(id, user, status)| (id, (user, status)))
            .collect();
        for (user, id) in chunk {
            match found.get(id) {
                Some((u, status)) if u == user && STORED.contains(status) => {}
                Some((u, status)) => checks.missing_or_wrong.push(format!(
                    "reservation {id} of user {user} is user {u}'s, {status}"
                )),
                None => checks
                    .missing_or_wrong
                    .push(format!("reservation {id} of user {user} is missing")),
            }
        }
    }
    checks.stored_in_rush = reservations::table
        .inner_join(pickup_windows::table)
        .filter(pickup_windows::day.eq(shared.prepared.rush_day))
        .filter(reservations::status.eq_any(STORED))
        .count()
        .get_result(conn)?;
    checks.verify_findings = mask_reservation::verify::run(conn)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let count = |conn: &mut DbConnection, status: &str| -> QueryResult<i64> {
        mail_outbox::table
            .filter(mail_outbox::status.eq(status))
            .count()
            .get_result(conn)
    };
    let mail = Outbox {
        pending: count(conn, outbox::PENDING)?,
        sent: count(conn, outbox::SENT)?,
        failed: count(conn, outbox::FAILED)?,
    };
    for rush in rushes {
        rush.mails_sent = Some(
            mail_outbox::table
                .filter(mail_outbox::status.eq(outbox::SENT))
                .filter(mail_outbox::sent_at.between(rush.from, rush.to))
                .count()
                .get_result(conn)?,
        );
    }
    Ok((checks, mail))
}

/// Where `--markdown` writes, created with its parent directories.
pub fn write_markdown(path: &PathBuf, report: &Report) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, report.markdown()).with_context(|| format!("writing {}", path.display()))
}
