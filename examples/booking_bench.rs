//! The booking transaction alone, without HTTP: `--stores` stores with supply
//! tomorrow (three windows each), `--citizens` verified citizens, and every
//! citizen booking one mask through `reservations::booking::book` in its own
//! write transaction, from `--threads` threads each with a connection of its
//! own. Prints reservations per second and latency percentiles, then runs the
//! invariant check.
//!
//! With `--through-db`, the bookings go through `booking::book_through`
//! instead, the door the page's booking takes, from `--tasks` concurrent
//! tasks: on SQLite that is the one writer committing queued bookings in
//! groups, on PostgreSQL the pool (of `--threads` connections), each booking's
//! writes one statement outside a transaction.
//!
//! With `--import-lines N` (and `--through-db`), an administrator's supply
//! file of N lines (the first N stores, the day after the bookings' day) is
//! imported through `supply::import::import` while the bookings run, and the
//! bookings that started during the import get percentiles of their own.
//!
//! On SQLite it uses a fresh file in a temporary directory. With
//! `--database-url postgres://…` it creates a scratch database next to the one
//! named (`booking_bench_<pid>`), and drops it at the end.
//!
//! ```text
//! cargo run --release --example booking_bench
//! cargo run --release --example booking_bench -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres
//! cargo run --release --example booking_bench -- --through-db --tasks 64
//! cargo run --release --example booking_bench -- --through-db --tasks 16 \
//!     --stores 25000 --citizens 60000 --import-lines 25000
//! ```
//! See `docs/benchmarks.md` for recorded figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use clap::Parser;
use diesel::prelude::*;
use mask_reservation::accounts::queries::{NewUser, insert_user};
use mask_reservation::accounts::{Role, SessionClaim};
use mask_reservation::db::schema::{people, pickup_windows};
use mask_reservation::db::{DatabaseUrl, Db, DbConnection, DbError, PoolOptions, write_tx};
use mask_reservation::i18n::{Catalog, Lang, Tr};
use mask_reservation::policy::Policy;
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{
    BookError, ForWhom, Form, Hold, Request, book, book_through,
};
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::supply::allocation::{NewDay, allocate_days};
use mask_reservation::supply::import::{SupplyRow, apply, import, plan};

#[derive(Parser, Debug)]
struct Args {
    /// A PostgreSQL server to run on (a scratch database is created there);
    /// a fresh SQLite file when absent.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 100)]
    stores: usize,
    #[arg(long, default_value_t = 10_000)]
    citizens: usize,
    /// Threads booking at once, each with its own connection.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Book through `Db::write` (the writer on SQLite, the pool on PostgreSQL)
    /// rather than `write_tx` on connections of the benchmark's own.
    #[arg(long)]
    through_db: bool,
    /// With `--through-db`: bookings in flight at once.
    #[arg(long, default_value_t = 64)]
    tasks: usize,
    /// With `--through-db`: lines of a supply file imported while booking.
    #[arg(long, default_value_t = 0)]
    import_lines: usize,
    /// With `--import-lines`: apply the whole file in one write, as imports
    /// did before they were split into chunks (for comparison).
    #[arg(long)]
    import_in_one: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    surge::scratch::Scratch::create(
        args.database_url.as_deref(),
        dir.path(),
        "bench.db",
        "booking_bench",
    )?
    .run(|url| run(&args, url))
}

fn run(args: &Args, url: &DatabaseUrl) -> anyhow::Result<()> {
    let mut conn = url.connect()?;
    conn.run_migrations()?;
    let policy = Policy::load(&mut conn)?;
    let day = mask_reservation::reservations::rules::today(&policy, chrono::Utc::now())
        + chrono::Duration::days(1);
    let windows = set_up(&mut conn, &policy, args, day)?;
    let users = citizens(&mut conn, args.citizens)?;
    if args.through_db {
        println!(
            "{}: {} stores, {} windows, {} citizens, through Db::write from {} tasks",
            url.backend().as_str(),
            args.stores,
            windows.len(),
            users.len(),
            args.tasks
        );
    } else {
        println!(
            "{}: {} stores, {} windows, {} citizens, {} threads",
            url.backend().as_str(),
            args.stores,
            windows.len(),
            users.len(),
            args.threads
        );
    }

    let tr = Tr::new(Arc::new(Catalog::load()?), Lang::Ko);
    let (windows, users, policy) = (Arc::new(windows), Arc::new(users), Arc::new(policy));
    let started = Instant::now();
    let (all, refused) = if args.through_db {
        let (all, refused, import) = through_db(args, url, day, windows, users, policy, tr)?;
        if let Some((from, to, lines)) = import {
            let during: Vec<Duration> = all
                .iter()
                .filter(|(at, _)| *at >= from && *at < to)
                .map(|(_, d)| *d)
                .collect();
            println!(
                "import of {lines} supply lines took {:.2} s; {} bookings started during it:",
                (to - from).as_secs_f64(),
                during.len()
            );
            percentiles(during);
        }
        (all.into_iter().map(|(_, d)| d).collect(), refused)
    } else {
        own_connections(args, url, windows, users, policy, tr)?
    };
    report(started, all, refused, &mut conn)
}

type Shared = (Arc<Vec<i64>>, Arc<Vec<i64>>, Arc<Policy>, Tr);

fn request(i: usize, user_id: i64, windows: &[i64]) -> Request {
    Request {
        user_id,
        window_id: windows[i % windows.len()],
        quantity: Quantity::ONE,
        request_id: Some(format!("bench-{i}")),
        person: ForWhom::Own,
        now: Utc::now(),
        session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
        hold: Hold::Booking,
    }
}

/// When each booking started and how long it took.
type Timed = Vec<(Instant, Duration)>;

/// When an import ran, and its lines.
type ImportRun = Option<(Instant, Instant, usize)>;

/// Every booking through `Db::write`, `--tasks` at a time; with
/// `--import-lines`, a supply file imported meanwhile.
fn through_db(
    args: &Args,
    url: &DatabaseUrl,
    day: NaiveDate,
    windows: Arc<Vec<i64>>,
    users: Arc<Vec<i64>>,
    policy: Arc<Policy>,
    tr: Tr,
) -> anyhow::Result<(Timed, usize, ImportRun)> {
    let (windows, users, policy, tr): Shared = (windows, users, policy, tr);
    let db = Db::new(
        url,
        PoolOptions {
            max_size: args.threads as u32,
            acquire_timeout: Duration::from_secs(30),
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let import = (args.import_lines > 0).then(|| {
            let rows: Vec<SupplyRow> = (0..args.import_lines.min(args.stores))
                .map(|i| SupplyRow {
                    line: i as u64 + 2,
                    store_code: store_code(i),
                    day: day + chrono::Duration::days(1),
                    quantity: 30,
                })
                .collect();
            let (db, policy, in_one) = (db.clone(), policy.clone(), args.import_in_one);
            tokio::spawn(async move {
                // Once the bookings are under way.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let lines = rows.len();
                let from = Instant::now();
                let now = Utc::now().naive_utc();
                if in_one {
                    let planned = db
                        .run(move |conn| plan(conn, &rows, &[]))
                        .await
                        .map_err(|e| anyhow::anyhow!("import check failed: {e:?}"))?;
                    db.write(move |tx| apply(tx, &policy, &planned, None, now))
                        .await
                        .map_err(|e| anyhow::anyhow!("import failed: {e:?}"))?;
                } else {
                    import(&db, policy, rows, Vec::new(), None, now)
                        .await
                        .map_err(|e| anyhow::anyhow!("import failed: {e:?}"))?;
                }
                Ok::<_, anyhow::Error>((from, Instant::now(), lines))
            })
        });
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..args.tasks)
            .map(|_| {
                let (db, next) = (db.clone(), next.clone());
                let (windows, users, policy, tr) =
                    (windows.clone(), users.clone(), policy.clone(), tr.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut refused = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&user_id) = users.get(i) else { break };
                        let req = request(i, user_id, &windows);
                        let (policy, tr) = (policy.clone(), tr.clone());
                        let one = Instant::now();
                        let (form, base_url) =
                            (Form::of(db.backend()), "http://127.0.0.1:8080".to_owned());
                        match book_through(&db, form, req, policy, tr, base_url).await {
                            Ok(_) => {}
                            Err(DbError::Work(BookError::Refused(_))) => refused += 1,
                            Err(e) => return Err(anyhow::anyhow!("booking failed: {e}")),
                        }
                        latencies.push((one, one.elapsed()));
                    }
                    Ok::<_, anyhow::Error>((latencies, refused))
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut refused = 0;
        for t in tasks {
            let (lat, r) = t.await??;
            all.extend(lat);
            refused += r;
        }
        let import = match import {
            Some(run) => Some(run.await??),
            None => None,
        };
        Ok((all, refused, import))
    })
}

/// Every booking in `write_tx` on `--threads` connections of its own.
fn own_connections(
    args: &Args,
    url: &DatabaseUrl,
    windows: Arc<Vec<i64>>,
    users: Arc<Vec<i64>>,
    policy: Arc<Policy>,
    tr: Tr,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let handles: Vec<_> = (0..args.threads)
        .map(|t| {
            let (url, tr) = (url.clone(), tr.clone());
            let (windows, users, policy) = (windows.clone(), users.clone(), policy.clone());
            let threads = args.threads;
            std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, usize)> {
                let mut conn = url.connect()?;
                let mut latencies = Vec::new();
                let mut refused = 0;
                for (i, user_id) in users.iter().enumerate().skip(t).step_by(threads) {
                    let req = request(i, *user_id, &windows);
                    let one = Instant::now();
                    match write_tx(&mut conn, |tx| {
                        book(tx, &req, &policy, &tr, "http://127.0.0.1:8080")
                    }) {
                        Ok(_) => {}
                        Err(BookError::Refused(_)) => refused += 1,
                        Err(e) => return Err(e.into()),
                    }
                    latencies.push(one.elapsed());
                }
                Ok((latencies, refused))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut refused = 0;
    for h in handles {
        let (lat, r) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a booking thread panicked"))??;
        all.extend(lat);
        refused += r;
    }
    Ok((all, refused))
}

fn report(
    started: Instant,
    mut all: Vec<Duration>,
    refused: usize,
    conn: &mut DbConnection,
) -> anyhow::Result<()> {
    let elapsed = started.elapsed();
    println!(
        "{} bookings ({} refused) in {:.2} s: {:.0} reservations/s",
        all.len(),
        refused,
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    percentiles(std::mem::take(&mut all));
    let findings = mask_reservation::verify::run(conn)?;
    println!("verify: {} violations", findings.len());
    if !findings.is_empty() {
        bail!("invariants violated: {findings:?}");
    }
    Ok(())
}

fn percentiles(mut all: Vec<Duration>) {
    all.sort();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).saturating_sub(1);
        all.get(i).copied().unwrap_or_default()
    };
    println!(
        "latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(all.last().copied().unwrap_or_default())
    );
}

fn store_code(i: usize) -> String {
    format!("{:08}", 10_000_000 + i)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The stores, each with enough supply tomorrow for its share of citizens;
/// the windows' ids.
fn set_up(
    conn: &mut DbConnection,
    policy: &Policy,
    args: &Args,
    day: NaiveDate,
) -> anyhow::Result<Vec<i64>> {
    let rows: Vec<StoreRow> = (0..args.stores)
        .map(|i| StoreRow {
            code: store_code(i),
            name: format!("벤치약국 {i}"),
            addr: format!("서울특별시 중구 세종대로 {i}"),
            store_type: "01".into(),
            lat: 37.56,
            lng: 126.97,
            phone: None,
            region: "서울특별시".into(),
        })
        .collect();
    let per_store = (args.citizens / args.stores.max(1) + 3) as i32;
    write_tx(conn, |tx| {
        let ids = insert_all(tx, &rows)?;
        let days: Vec<NewDay> = ids
            .iter()
            .map(|&store_id| NewDay {
                store_id,
                day,
                supply: per_store,
            })
            .collect();
        allocate_days(tx, policy, &days, None, Utc::now().naive_utc())?;
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(pickup_windows::table
        .filter(pickup_windows::day.eq(day))
        .order(pickup_windows::id)
        .select(pickup_windows::id)
        .load(conn)?)
}

/// `n` verified citizens (no real password: nobody logs in); their user ids.
fn citizens(conn: &mut DbConnection, n: usize) -> anyhow::Result<Vec<i64>> {
    let birth = NaiveDate::from_ymd_opt(1985, 1, 1).context("date")?;
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = write_tx(conn, |tx| {
            let mut out = Vec::new();
            for &i in chunk {
                let person: i64 = diesel::insert_into(people::table)
                    .values((
                        people::national_id_hash.eq(format!("{i:064x}")),
                        people::birth_date.eq(birth),
                        people::national_id_masked.eq("850101-1******"),
                        people::created_at.eq(Utc::now().naive_utc()),
                    ))
                    .returning(people::id)
                    .get_result(tx.conn())?;
                out.push(insert_user(
                    tx,
                    &NewUser {
                        role: Role::Citizen,
                        email: &format!("bench{i}@example.com"),
                        name: "시민",
                        password_hash: "not-a-hash",
                        person_id: Some(person),
                        store_id: None,
                        email_verified: true,
                    },
                )?);
            }
            Ok::<_, diesel::result::Error>(out)
        })?;
        ids.extend(batch);
    }
    Ok(ids)
}
