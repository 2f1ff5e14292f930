//! The draw at country size, without HTTP: `--stores` stores with supply on
//! one fixed day (2026-12-01, the policy's window template, `--supply` masks
//! each), `--registrations` verified citizens each registered in a draw over
//! that day in every store, then the draw run to completion through
//! `draws::run::run`, as `mask-reservation draw-run ID` runs it. Prints the
//! preparation's time apart from the run's, registrations settled per second,
//! how many were drawn, the run's peak resident memory, then runs
//! `draw-verify` (`draws::check::differences`, timed) and the invariant check
//! (`verify::run`), and fails if either finds anything.
//!
//! Registration is not what is measured: the registrations are written in
//! bulk straight into `draw_entries`, each with 1 to 3 distinct choices among
//! the windows of one store or of two stores close together, a quantity of 1
//! or 2, and its pseudonym from `entries::pseudonym` under a fixed key. The
//! run's clock is a manual one set at the registration's close (2026-11-30
//! 09:00 in the service zone), so the figures do not depend on today's date.
//! The run's database timeout is `--db-timeout` (the command's `DB_TIMEOUT`,
//! 3 s by default); its pool has 16 connections, as the command's.
//!
//! With `--interrupt-after N` the run stops after N batches as if its process
//! had died, and a second run takes it over once the lease is old (the clock
//! moved on by `run::LEASE`) and finishes it: both are timed.
//!
//! On SQLite it uses a fresh file in a temporary directory. With
//! `--database-url postgres://…` it creates a scratch database next to the one
//! named (`draw_bench_<pid>`), and drops it at the end.
//!
//! ```text
//! cargo run --release --example draw_bench
//! cargo run --release --example draw_bench -- --stores 200 --registrations 5000
//! cargo run --release --example draw_bench -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres \
//!     --stores 2500 --registrations 100000
//! cargo run --release --example draw_bench -- --interrupt-after 1000
//! ```
//! See `docs/benchmarks.md` for recorded figures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use clap::Parser;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Text, Timestamp};
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{draw_entries, pickup_windows, reservations, users};
use mask_reservation::db::{DatabaseUrl, Db, DbConnection, PoolOptions, write_tx};
use mask_reservation::draws::admin::{self, NewDraw};
use mask_reservation::draws::run::{self, Pace, Ran};
use mask_reservation::draws::{check, entries};
use mask_reservation::i18n::{Catalog, Lang, Tr};
use mask_reservation::policy::Policy;
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::supply::allocation::{NewDay, allocate_days};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

type DieselBackend = <DbConnection as Connection>::Backend;

#[derive(Parser, Debug)]
struct Args {
    /// A PostgreSQL server to run on (a scratch database is created there);
    /// a fresh SQLite file when absent.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 25_000)]
    stores: usize,
    /// Registrations, one per citizen (as many citizens are written).
    #[arg(long, default_value_t = 1_000_000)]
    registrations: usize,
    /// Registrations settled per transaction.
    #[arg(long, default_value_t = run::BATCH)]
    batch: usize,
    /// Masks each store is supplied with on the draw's day (the windows get
    /// all but the policy's walk-in share).
    #[arg(long, default_value_t = 60)]
    supply: i32,
    /// The run's database timeout in seconds (`DB_TIMEOUT` of the command).
    #[arg(long, default_value_t = 3.0)]
    db_timeout: f64,
    /// Stop the first run after this many batches, then finish the draw in a
    /// second run that takes over the lease.
    #[arg(long)]
    interrupt_after: Option<usize>,
    /// Skip `draw-verify` (the invariant check still runs).
    #[arg(long)]
    skip_draw_verify: bool,
}

/// The draw's day; registration closes the morning before.
const DAY: (i32, u32, u32) = (2026, 12, 1);
/// The key the pseudonyms are made with.
const PSEUDONYM_KEY: [u8; 32] = [7; 32];
/// Rows per multi-row statement, and statements per transaction, while
/// writing citizens and registrations.
const ROWS_PER_STATEMENT: usize = 1000;
const STATEMENTS_PER_TX: usize = 50;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    surge::scratch::Scratch::create(
        args.database_url.as_deref(),
        dir.path(),
        "bench.db",
        "draw_bench",
    )?
    .run(|url| bench(&args, url))
}

/// The draw's times: registration opens, closes, results.
struct Times {
    opens: DateTime<Utc>,
    closes: DateTime<Utc>,
    results: DateTime<Utc>,
}

fn local(policy: &Policy, day: NaiveDate, h: u32) -> anyhow::Result<DateTime<Utc>> {
    let at = day.and_hms_opt(h, 0, 0).context("a time of day")?;
    Ok(policy
        .timezone
        .from_local_datetime(&at)
        .earliest()
        .context("a local time")?
        .with_timezone(&Utc))
}

fn bench(args: &Args, url: &DatabaseUrl) -> anyhow::Result<()> {
    let mut conn = url.connect()?;
    conn.run_migrations()?;
    let policy = Policy::load(&mut conn)?;
    let day = NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).context("the draw's day")?;
    let times = Times {
        opens: local(&policy, day - chrono::Duration::days(4), 9)?,
        closes: local(&policy, day - chrono::Duration::days(1), 9)?,
        results: local(&policy, day - chrono::Duration::days(1), 12)?,
    };
    let prep_at = (times.opens - chrono::Duration::days(1)).naive_utc();

    let prep = Instant::now();
    let stores = stores(&mut conn, &policy, args, day, prep_at)?;
    let t_stores = prep.elapsed();
    let citizens = citizens(&mut conn, args.registrations, prep_at)?;
    let t_citizens = prep.elapsed() - t_stores;
    let draw_id = write_tx(&mut conn, |tx| {
        admin::create(
            tx,
            &NewDraw {
                name: "draw bench".into(),
                region: None,
                first_day: day,
                last_day: day,
                opens_at: times.opens,
                closes_at: times.closes,
                results_at: times.results,
            },
            &admin::fresh_secret(),
            None,
            prep_at,
        )
    })?;
    let windows = windows(&mut conn, day)?;
    let registered = registrations(
        &mut conn,
        draw_id,
        &stores,
        &windows,
        &citizens,
        times.opens.naive_utc(),
    )?;
    let prep = prep.elapsed();
    let window_count: usize = windows.values().map(Vec::len).sum();
    let choices: usize = registered.choices;
    println!(
        "{}: {} stores, {} windows, {} registrations ({} choices, {} masks asked), batch {}",
        url.backend().as_str(),
        stores.len(),
        window_count,
        registered.count,
        choices,
        registered.masks,
        args.batch
    );
    println!(
        "prep {:.1} s (stores and supply {:.1} s, citizens {:.1} s, draw and registrations {:.1} s)",
        prep.as_secs_f64(),
        t_stores.as_secs_f64(),
        t_citizens.as_secs_f64(),
        (prep - t_stores - t_citizens).as_secs_f64()
    );

    // The run, as `draw-run` makes it, at the registration's close.
    let db = Db::new(
        url,
        PoolOptions {
            max_size: 16,
            acquire_timeout: Duration::from_secs_f64(args.db_timeout),
        },
    );
    let clock = Clock::manual(times.closes);
    let policy = Arc::new(policy);
    let t = Tr::new(Arc::new(Catalog::load()?), Lang::Ko);
    let base_url = "http://127.0.0.1:8080".to_owned();
    // Peak memory of the run alone: reset the high-water mark (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let system = actix_web::rt::System::new();
    let started = Instant::now();
    if let Some(n) = args.interrupt_after {
        let pace = Pace {
            batch: args.batch,
            stop_after: Some(n),
        };
        let ran = system.block_on(run::run(
            &db,
            draw_id,
            &clock,
            policy.clone(),
            t.clone(),
            base_url.clone(),
            pace,
        ))?;
        let first = started.elapsed();
        println!("first run: {ran:?} in {:.1} s", first.as_secs_f64());
        clock.advance(run::LEASE);
    }
    let resumed = Instant::now();
    let pace = Pace {
        batch: args.batch,
        stop_after: None,
    };
    let ran = system.block_on(run::run(&db, draw_id, &clock, policy, t, base_url, pace))?;
    let elapsed = started.elapsed();
    let peak = peak_rss_mib();
    let Ran::Done { won, not_drawn } = ran else {
        bail!("the draw did not finish: {ran:?}");
    };
    if args.interrupt_after.is_some() {
        println!(
            "second run (taking over): {:.1} s",
            resumed.elapsed().as_secs_f64()
        );
    }
    println!(
        "run {:.1} s: {:.0} registrations/s, {won} drawn, {not_drawn} not drawn, peak RSS {}",
        elapsed.as_secs_f64(),
        registered.count as f64 / elapsed.as_secs_f64(),
        peak.map_or_else(|| "unknown".to_owned(), |m| format!("{m} MiB"))
    );
    let booked: i64 = reservations::table.count().get_result(&mut conn)?;
    if usize::try_from(booked)? != won {
        bail!("{won} drawn but {booked} reservations");
    }

    if args.skip_draw_verify {
        println!("draw-verify skipped");
    } else {
        let checking = Instant::now();
        let differences = check::differences(&mut conn, draw_id)?;
        println!(
            "draw-verify {:.1} s: {} differences",
            checking.elapsed().as_secs_f64(),
            differences.len()
        );
        if !differences.is_empty() {
            let first: Vec<&String> = differences.iter().take(10).collect();
            bail!("draw-verify found differences: {first:?}");
        }
    }
    let checking = Instant::now();
    let findings = mask_reservation::verify::run(&mut conn)?;
    println!(
        "verify {:.1} s: {} violations",
        checking.elapsed().as_secs_f64(),
        findings.len()
    );
    if !findings.is_empty() {
        let first: Vec<_> = findings.iter().take(10).collect();
        bail!("invariants violated: {first:?}");
    }
    Ok(())
}

/// The process's peak resident memory (`VmHWM`) in MiB, where Linux tells it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// A store: its id and where it is.
struct Store {
    id: i64,
    lat: f64,
    lng: f64,
}

/// The stores over the country (surge's places), each supplied on `day`.
fn stores(
    conn: &mut DbConnection,
    policy: &Policy,
    args: &Args,
    day: NaiveDate,
    now: NaiveDateTime,
) -> anyhow::Result<Vec<Store>> {
    let places: Vec<_> = (0..args.stores).map(surge::prepare::store_place).collect();
    let rows: Vec<StoreRow> = places
        .iter()
        .enumerate()
        .map(|(i, (region, district, lat, lng))| StoreRow {
            code: format!("{:08}", 30_000_000 + i),
            name: format!("추첨약국 {i}"),
            addr: format!("{region} {district} 추첨로 {}", i + 1),
            store_type: "01".into(),
            lat: *lat,
            lng: *lng,
            phone: None,
            region: (*region).into(),
        })
        .collect();
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(5_000) {
        ids.extend(write_tx(conn, |tx| insert_all(tx, chunk))?);
    }
    let days: Vec<NewDay> = ids
        .iter()
        .map(|&store_id| NewDay {
            store_id,
            day,
            supply: args.supply,
        })
        .collect();
    write_tx(conn, |tx| allocate_days(tx, policy, &days, None, now))?;
    Ok(ids
        .into_iter()
        .zip(places)
        .map(|(id, (_, _, lat, lng))| Store { id, lat, lng })
        .collect())
}

/// `n` verified citizens (no real password: nobody logs in), people first,
/// then an account for each; their `(user, person)` ids.
fn citizens(
    conn: &mut DbConnection,
    n: usize,
    now: NaiveDateTime,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let birth = NaiveDate::from_ymd_opt(1985, 1, 1).context("a birth date")?;
    let all: Vec<usize> = (0..n).collect();
    for group in all.chunks(ROWS_PER_STATEMENT * STATEMENTS_PER_TX) {
        write_tx(conn, |tx| {
            for chunk in group.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO people (national_id_hash, birth_date, national_id_masked, created_at) \
                     VALUES {}",
                    surge::prepare::placeholders(tx.backend(), chunk.len(), 4)
                );
                let mut q = diesel::sql_query(sql).into_boxed::<DieselBackend>();
                for i in chunk {
                    q = q
                        .bind::<Text, _>(format!("{i:064x}"))
                        .bind::<Date, _>(birth)
                        .bind::<Text, _>("850101-1******")
                        .bind::<Timestamp, _>(now);
                }
                q.execute(tx.conn())?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
    }
    write_tx(conn, |tx| {
        diesel::sql_query(
            "INSERT INTO users (role, email, name, password_hash, person_id, \
                                email_verified_at, created_at, updated_at) \
             SELECT 'citizen', 'draw' || id || '@example.com', '시민', 'not-a-hash', id, \
                    created_at, created_at, created_at \
             FROM people ORDER BY id",
        )
        .execute(tx.conn())
    })?;
    let ids: Vec<(i64, Option<i64>)> = users::table
        .filter(users::role.eq("citizen"))
        .order(users::id)
        .select((users::id, users::person_id))
        .load(conn)?;
    Ok(ids
        .into_iter()
        .filter_map(|(user, person)| Some((user, person?)))
        .collect())
}

/// The windows of `day`, by store id.
fn windows(conn: &mut DbConnection, day: NaiveDate) -> anyhow::Result<HashMap<i64, Vec<i64>>> {
    let rows: Vec<(i64, i64)> = pickup_windows::table
        .filter(pickup_windows::day.eq(day))
        .order(pickup_windows::id)
        .select((pickup_windows::store_id, pickup_windows::id))
        .load(conn)?;
    let mut by_store: HashMap<i64, Vec<i64>> = HashMap::new();
    for (store, window) in rows {
        by_store.entry(store).or_default().push(window);
    }
    Ok(by_store)
}

/// What was registered.
struct Registered {
    count: usize,
    choices: usize,
    masks: usize,
}

/// One registration per citizen, written straight into `draw_entries`: 1 to
/// 3 distinct choices among the windows of a store drawn at random and,
/// half the time, of another store in the same square of about 2 km; a
/// quantity of 1 or 2.
fn registrations(
    conn: &mut DbConnection,
    draw_id: i64,
    stores: &[Store],
    windows: &HashMap<i64, Vec<i64>>,
    citizens: &[(i64, i64)],
    now: NaiveDateTime,
) -> anyhow::Result<Registered> {
    let cell = |s: &Store| {
        (
            (s.lat / 0.018).floor() as i64,
            (s.lng / 0.023).floor() as i64,
        )
    };
    let mut near: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, s) in stores.iter().enumerate() {
        near.entry(cell(s)).or_default().push(i);
    }
    let mut rng = StdRng::seed_from_u64(2026);
    let mut rows = Vec::with_capacity(citizens.len());
    let (mut choices, mut masks) = (0, 0);
    for &(user, person) in citizens {
        let first = rng.random_range(0..stores.len());
        let mut candidates: Vec<i64> = windows.get(&stores[first].id).cloned().unwrap_or_default();
        if rng.random_bool(0.5) {
            let others: Vec<usize> = near
                .get(&cell(&stores[first]))
                .map(|v| v.iter().copied().filter(|&j| j != first).collect())
                .unwrap_or_default();
            if let Some(&other) = others.choose(&mut rng) {
                candidates.extend(windows.get(&stores[other].id).into_iter().flatten());
            }
        }
        let k = rng.random_range(1..=3).min(candidates.len());
        let picked: Vec<i64> = candidates.choose_multiple(&mut rng, k).copied().collect();
        let Some(&choice1) = picked.first() else {
            bail!("store {} has no window", stores[first].id);
        };
        let quantity: i32 = rng.random_range(1..=2);
        choices += picked.len();
        masks += usize::try_from(quantity)?;
        rows.push((
            user,
            person,
            quantity,
            choice1,
            picked.get(1).copied(),
            picked.get(2).copied(),
            entries::pseudonym(&PSEUDONYM_KEY, draw_id, person),
        ));
    }
    for group in rows.chunks(ROWS_PER_STATEMENT * STATEMENTS_PER_TX) {
        write_tx(conn, |tx| {
            for chunk in group.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO draw_entries (draw_id, user_id, person_id, quantity, \
                         choice1, choice2, choice3, pseudonym, mail_lang, created_at, updated_at) \
                     VALUES {}",
                    surge::prepare::placeholders(tx.backend(), chunk.len(), 11)
                );
                let mut q = diesel::sql_query(sql).into_boxed::<DieselBackend>();
                for (user, person, quantity, c1, c2, c3, pseudonym) in chunk {
                    q = q
                        .bind::<BigInt, _>(draw_id)
                        .bind::<BigInt, _>(*user)
                        .bind::<BigInt, _>(*person)
                        .bind::<Integer, _>(*quantity)
                        .bind::<BigInt, _>(*c1)
                        .bind::<Nullable<BigInt>, _>(*c2)
                        .bind::<Nullable<BigInt>, _>(*c3)
                        .bind::<Text, _>(pseudonym.clone())
                        .bind::<Text, _>("ko")
                        .bind::<Timestamp, _>(now)
                        .bind::<Timestamp, _>(now);
                }
                q.execute(tx.conn())?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
    }
    let count: i64 = draw_entries::table
        .filter(draw_entries::draw_id.eq(draw_id))
        .count()
        .get_result(conn)?;
    Ok(Registered {
        count: usize::try_from(count)?,
        choices,
        masks,
    })
}
