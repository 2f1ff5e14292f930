//! `surge`, the launch-morning benchmark (`src/bin/surge.rs` is its command
//! line): prepares a fresh database of the size asked for in bulk
//! ([`prepare`]), starts the release server on it as a child process
//! ([`server`]) or targets one already running, runs the phases of a launch
//! morning over keep-alive connections ([`phases`], [`client`]) — /healthz as
//! the reference rate, open-data reads, a login storm of real logins, the
//! reservation rush with pickups at pharmacy counters alongside, the rush again
//! with paced open-data reads — then kills the server with SIGKILL and checks
//! that every acknowledged reservation is in the database, that none is there
//! unacknowledged, and that `verify` holds ([`report`] prints it all).
//!
//! Rush and pickup users start logged in: their session cookies are minted
//! with the server's cookie key (a million argon2 logins would take hours);
//! the login storm measures real logins on its own.

pub mod client;
pub mod phases;
pub mod prepare;
pub mod report;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::config::SecretKey;
use crate::db::schema::{pickup_windows, reservations};
use crate::db::{DatabaseUrl, DbConnection};
use crate::reservations::status::ReservationStatus;
use crate::state::Keys;
use phases::{Limit, Measured, Rush, Shared};
use prepare::{Prepared, Sizes};
use report::{Checks, Report, Row, ServerUse};

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
}

/// Where the server is.
pub enum Target {
    /// Start one of our own on a fresh database: SQLite in a temporary
    /// directory, or a scratch database on the PostgreSQL server named.
    Child {
        postgres: Option<String>,
        workers: Option<usize>,
        db_pool_size: Option<usize>,
    },
    /// A server already running on `database_url` with `secret`.
    Url {
        base_url: String,
        database_url: String,
        secret: Vec<u8>,
    },
}

/// The whole benchmark: prepare, serve, load, kill, check.
pub fn run(options: &Options, target: Target) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    match target {
        Target::Url {
            base_url,
            database_url,
            secret,
        } => {
            let url = DatabaseUrl::parse(&database_url)?;
            let addr = socket_addr(&base_url)?;
            let runtime = runtime()?;
            runtime.block_on(run_against(addr, &url, &secret, options))
        }
        Target::Child {
            postgres,
            workers,
            db_pool_size,
        } => {
            let (url, scratch) = match &postgres {
                None => (DatabaseUrl::Sqlite(dir.path().join("surge.db")), None),
                Some(server) => {
                    let (url, admin, name) = scratch_database(server)?;
                    (url, Some((admin, name)))
                }
            };
            let result = run_child(options, &url, &dir, workers, db_pool_size);
            if let Some((admin, name)) = scratch {
                admin
                    .connect()?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
            }
            result
        }
    }
}

/// `surge_<pid>` next to the database `server` names.
fn scratch_database(server: &str) -> anyhow::Result<(DatabaseUrl, DatabaseUrl, String)> {
    let admin = DatabaseUrl::parse(server)?;
    let DatabaseUrl::Postgres(base) = &admin else {
        bail!("--database-url must be a postgres:// URL");
    };
    let name = format!("surge_{}", std::process::id());
    admin
        .connect()?
        .batch_execute(&format!("CREATE DATABASE {name}"))?;
    // Keep the parameters (`?sslmode=…`) and replace only the database name.
    let (base, query) = match base.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (base.as_str(), String::new()),
    };
    let (prefix, _) = base.rsplit_once('/').context("URL without a database")?;
    let url = DatabaseUrl::Postgres(format!("{prefix}/{name}{query}"));
    Ok((url, admin, name))
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

fn run_child(
    options: &Options,
    url: &DatabaseUrl,
    dir: &tempfile::TempDir,
    workers: Option<usize>,
    db_pool_size: Option<usize>,
) -> anyhow::Result<Report> {
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
    let mail_dir = dir.path().join("mail");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&mail_dir)?;
    std::fs::create_dir_all(&data_dir)?;
    let mut child = server::ServerChild::start(&server::ChildOptions {
        database_url: &database_url_text(url),
        secret_base64: &secret.to_base64(),
        mail_dir: &mail_dir,
        data_dir: &data_dir,
        workers,
        db_pool_size,
        // As production: the access log on, written where surge's terminal
        // does not see it.
        log: "info",
        log_file: &dir.path().join("server.log"),
    })?;
    let pid = child.pid();
    let shared = Arc::new(Shared::new(child.addr, keys.cookie.clone(), prepared));
    let runtime = runtime()?;
    let (rows, healthz) = runtime.block_on(measure(shared.clone(), options, Some(pid)));
    let peak = server::sample(pid).map(|s| s.hwm_kib as f64 / 1024.0);
    // Acknowledged means durable: no shutdown, no flush, just gone.
    child.kill()?;
    let (count, first) = server::log_problems(&dir.path().join("server.log"), 5);
    if count > 0 {
        eprintln!("the server logged {count} warning(s) or error(s); the first:");
        for line in first {
            eprintln!("  {line}");
        }
    }
    let checks = {
        let mut conn = url.connect()?;
        runtime.block_on(check(&shared, &mut conn))?
    };
    Ok(finish(rows, healthz, peak, checks, url, options))
}

/// The phases and the checks against a server that is already running (the
/// integration test's, or `--url`); the database is prepared first.
pub async fn run_against(
    addr: SocketAddr,
    url: &DatabaseUrl,
    secret: &[u8],
    options: &Options,
) -> anyhow::Result<Report> {
    let keys = Keys::derive(secret);
    let (prep_url, sizes, key) = (url.clone(), options.sizes, keys.national_id.clone());
    let prepared: Prepared = tokio::task::spawn_blocking(move || {
        let mut conn = prep_url.connect()?;
        prepare::prepare(&mut conn, sizes, &key, chrono_tz::Asia::Seoul)
    })
    .await??;
    let shared = Arc::new(Shared::new(addr, keys.cookie.clone(), prepared));
    let (rows, healthz) = measure(shared.clone(), options, None).await;
    let check_url = url.clone();
    let mut conn = tokio::task::spawn_blocking(move || check_url.connect()).await??;
    let checks = check(&shared, &mut conn).await?;
    Ok(finish(rows, healthz, None, checks, url, options))
}

fn finish(
    rows: Vec<Row>,
    healthz: f64,
    peak: Option<f64>,
    checks: Checks,
    url: &DatabaseUrl,
    options: &Options,
) -> Report {
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
        healthz_per_second: healthz,
        rows,
        server_peak_rss_mib: peak,
        checks,
    };
    report.set_ratios();
    report
}

/// Watches the server over one phase: peak resident size sampled every
/// 100 ms, CPU time from start to end.
struct Watch {
    pid: u32,
    start: server::Sample,
    started: Instant,
    peak_kib: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(pid: Option<u32>) -> Option<Watch> {
        let pid = pid?;
        let start = server::sample(pid)?;
        let peak_kib = Arc::new(AtomicU64::new(start.rss_kib));
        let done = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, done) = (peak_kib.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    if let Some(s) = server::sample(pid) {
                        peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Some(Watch {
            pid,
            start,
            started: Instant::now(),
            peak_kib,
            done,
            task,
        })
    }

    async fn stop(self) -> Option<ServerUse> {
        let end = server::sample(self.pid)?;
        let elapsed = self.started.elapsed();
        self.done.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let peak = self.peak_kib.load(Ordering::Relaxed).max(end.rss_kib);
        let cpu = server::cpu_seconds(self.start.cpu_ticks, end.cpu_ticks);
        Some(ServerUse {
            peak_rss_mib: peak as f64 / 1024.0,
            cpu_percent: server::cpu_percent(cpu, elapsed),
        })
    }
}

async fn watched<F: std::future::Future<Output = Vec<Measured>>>(
    pid: Option<u32>,
    phase: F,
) -> Vec<Row> {
    let watch = Watch::start(pid);
    let measured = phase.await;
    let server = match watch {
        Some(w) => w.stop().await,
        None => None,
    };
    measured
        .into_iter()
        .map(|m| Row::from_measured(m, server))
        .collect()
}

/// Runs every phase in order; the rows and the /healthz rate.
async fn measure(shared: Arc<Shared>, o: &Options, pid: Option<u32>) -> (Vec<Row>, f64) {
    let addr = shared.addr;
    let mut rows = Vec::new();
    eprintln!("phase: client ceiling");
    match phases::client_ceiling(o.read_connections, o.phase).await {
        Ok(m) => rows.push(Row::from_measured(m, None)),
        Err(e) => eprintln!("the stub server did not start: {e}"),
    }
    eprintln!("phase: healthz");
    let healthz = watched(pid, async {
        vec![phases::healthz(addr, o.read_connections, o.phase).await]
    })
    .await;
    let healthz_rate = healthz.first().map_or(0.0, |r| r.per_second);
    rows.extend(healthz);
    eprintln!("phase: open-data reads");
    rows.extend(
        watched(pid, async {
            vec![phases::opendata(addr, o.read_connections, o.phase).await]
        })
        .await,
    );
    eprintln!("phase: login storm");
    rows.extend(
        watched(
            pid,
            phases::login_storm(shared.clone(), o.login_connections, o.login_phase),
        )
        .await,
    );
    let rush = Rush {
        connections: o.connections,
        limit: o.phase,
        reads_alongside: None,
        read_connections: o.read_connections,
        pickup_every: o.pickup_every,
        min_pickups: o.min_pickups,
    };
    eprintln!("phase: reservation rush");
    rows.extend(watched(pid, phases::rush(shared.clone(), "rush", rush)).await);
    if o.reads_alongside > 0 {
        eprintln!("phase: rush with reads alongside");
        let with_reads = Rush {
            reads_alongside: Some(o.reads_alongside),
            ..rush
        };
        rows.extend(
            watched(
                pid,
                phases::rush(shared.clone(), "rush + reads", with_reads),
            )
            .await,
        );
    }
    if let Some(connections) = o.overload {
        eprintln!("phase: overload");
        let overload = Rush {
            connections,
            ..rush
        };
        rows.extend(watched(pid, phases::rush(shared.clone(), "overload", overload)).await);
        // The same rush as before the overload: back at full speed at once?
        eprintln!("phase: rush after the overload");
        rows.extend(watched(pid, phases::rush(shared.clone(), "after overload", rush)).await);
    }
    (rows, healthz_rate)
}

/// The states an acknowledged reservation may be in after the load.
const STORED: [ReservationStatus; 2] = [ReservationStatus::Active, ReservationStatus::PickedUp];

/// After the load: every acknowledged reservation is stored, for its user,
/// active or picked up; the rush day holds no reservation nobody was told of
/// (beyond those whose answer never came); and `verify` finds nothing.
async fn check(shared: &Shared, conn: &mut DbConnection) -> anyhow::Result<Checks> {
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
    checks.verify_findings = crate::verify::run(conn)?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(checks)
}

/// Where `--markdown` writes, created with its parent directories.
pub fn write_markdown(path: &PathBuf, report: &Report) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, report.markdown()).with_context(|| format!("writing {}", path.display()))
}
