//! What one `/stores?q=…` search costs the database at national scale: a fresh
//! database with `--stores` stores (25,000 by default, names and addresses
//! shaped like the 2020 public data), then every query of a list — the
//! searches people make and the most expensive ones anyone can type — run
//! `--runs` times each through the search's own reads
//! (`stores::search::queries`), one at a time on one connection.
//!
//! ```text
//! cargo run --release --example store_search
//! cargo run --release --example store_search -- --database-url postgres://postgres@127.0.0.1:5432/search_bench
//! ```
//! A PostgreSQL database given must be empty (it is migrated and filled).
//! See `docs/benchmarks.md`, "Store search at national scale".
//!
//! With `--supply N`, every store also gets N masks today (the default
//! policy's three windows and walk-in share) before the searches, which then
//! read the two figures of each store found; and afterwards the open-data
//! snapshot (`opendata::snapshot::Loader`) is loaded whole and refreshed
//! after 1 % of the store-days changed, `--runs` times each.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use diesel::prelude::*;
use mask_reservation::db::schema::{store_days, stores};
use mask_reservation::db::{DatabaseUrl, write_tx};
use mask_reservation::opendata::snapshot::Loader;
use mask_reservation::policy::Policy;
use mask_reservation::stock::{self, At, Days};
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::stores::search::geo::Point;
use mask_reservation::stores::search::queries;
use mask_reservation::stores::search::{MAX_QUERY_CHARS, PER_PAGE};
use mask_reservation::supply::allocation::{NewDay, allocate_days};

#[derive(Parser, Debug)]
struct Args {
    /// An empty database to fill; a new SQLite file in a temporary directory
    /// when not given.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 25_000)]
    stores: usize,
    /// Times each query runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Masks given to every store today (none by default).
    #[arg(long)]
    supply: Option<i32>,
}

const REGIONS: [(&str, f64, f64); 17] = [
    ("서울특별시", 37.56, 126.97),
    ("부산광역시", 35.17, 129.07),
    ("대구광역시", 35.87, 128.60),
    ("인천광역시", 37.45, 126.70),
    ("광주광역시", 35.16, 126.85),
    ("대전광역시", 36.35, 127.38),
    ("울산광역시", 35.53, 129.31),
    ("세종특별자치시", 36.48, 127.28),
    ("경기도", 37.27, 127.01),
    ("강원도", 37.88, 127.73),
    ("충청북도", 36.63, 127.49),
    ("충청남도", 36.65, 126.67),
    ("전라북도", 35.82, 127.14),
    ("전라남도", 34.81, 126.46),
    ("경상북도", 36.57, 128.72),
    ("경상남도", 35.23, 128.68),
    ("제주특별자치도", 33.50, 126.53),
];
const DISTRICTS: [&str; 12] = [
    "중구",
    "종로구",
    "마포구",
    "강남구",
    "송파구",
    "해운대구",
    "수성구",
    "남동구",
    "북구",
    "유성구",
    "서구",
    "동구",
];
const ROADS: [&str; 10] = [
    "세종대로",
    "중앙로",
    "시청로",
    "역전길",
    "문화로",
    "번영로",
    "대학로",
    "평화로",
    "새마을로",
    "충무로",
];
const DONGS: [&str; 10] = [
    "태평로1가",
    "명동",
    "신촌동",
    "역삼동",
    "잠실동",
    "우동",
    "범어동",
    "구월동",
    "둔산동",
    "연산동",
];
const NAMES: [&str; 12] = [
    "온누리",
    "성모",
    "새봄",
    "중앙",
    "건강한",
    "하나",
    "우리",
    "열린",
    "봄날",
    "미래",
    "시민",
    "푸른",
];
const KINDS: [(&str, &str); 3] = [("01", "약국"), ("02", "우체국"), ("03", "농협하나로마트")];

fn stores(n: usize) -> Vec<StoreRow> {
    (0..n)
        .map(|i| {
            let (region, lat, lng) = REGIONS[i % REGIONS.len()];
            let (store_type, kind) = KINDS[if i % 10 == 0 { 1 + i % 2 } else { 0 }];
            let offset = (i % 1000) as f64 / 10_000.0;
            StoreRow {
                code: format!("{:08}", 30_000_000 + i),
                name: format!("{}{kind}", NAMES[(i / 7) % NAMES.len()]),
                addr: format!(
                    "{region} {} {} {} ({})",
                    DISTRICTS[(i / 3) % DISTRICTS.len()],
                    ROADS[(i / 11) % ROADS.len()],
                    i % 400 + 1,
                    DONGS[(i / 13) % DONGS.len()],
                ),
                store_type: store_type.into(),
                lat: lat + offset,
                lng: lng - offset,
                phone: None,
                region: region.into(),
            }
        })
        .collect()
}

/// The searches timed: what people type, then the costliest input there is.
fn searches() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = vec![
        ("district", "중구".into()),
        ("store name", "온누리약국".into()),
        ("dong", "명동".into()),
        ("road", "세종대로".into()),
        ("region and district", "서울 중구".into()),
        ("nothing matches", "해운대역앞약국".into()),
    ];
    out.push((
        "8 one-letter words, all common",
        "시 구 로 동 약 국 울 중".into(),
    ));
    out.push((
        "8 one-letter words, the last matches none",
        "시 구 로 동 약 국 울 쀍".into(),
    ));
    out.push((
        "4 one-letter words, the last matches none",
        "시 구 로 쀍".into(),
    ));
    out.push(("8 one-letter words, Latin", "a b c d e f g h".into()));
    out.push((
        "16 words of 1–2 letters",
        "시 구 로 동 약 국 울 중 서울 중구 약국 세종 대로 명동 우동 동구".into(),
    ));
    let long: String = "특별시광역시".repeat(20);
    out.push((
        "one 100-letter word",
        long.chars().take(MAX_QUERY_CHARS).collect(),
    ));
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", dir.path().join("search.sqlite").display()),
    };
    let url = DatabaseUrl::parse(&url).context("the database URL")?;
    let mut conn = url.connect().context("cannot connect")?;
    conn.run_migrations()?;
    let rows = stores(args.stores);
    let started = Instant::now();
    for chunk in rows.chunks(5_000) {
        write_tx(&mut conn, |tx| insert_all(tx, chunk))?;
    }
    println!(
        "{} stores on {} in {:.1} s",
        rows.len(),
        url.backend().as_str(),
        started.elapsed().as_secs_f64()
    );
    // 10:00 in Seoul on 1 December 2026, with the default policy.
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00+09:00")?.to_utc();
    let policy = Policy::default();
    let at = At::of(&policy, now);
    if let Some(supply) = args.supply {
        let ids: Vec<i64> = stores::table.select(stores::id).load(&mut conn)?;
        let days: Vec<NewDay> = ids
            .iter()
            .map(|&store_id| NewDay {
                store_id,
                day: at.today,
                supply,
            })
            .collect();
        let started = Instant::now();
        write_tx(&mut conn, |tx| {
            allocate_days(tx, &policy, &days, None, now.naive_utc())
        })?;
        println!(
            "{supply} masks today for each store in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let seoul = Point::new(37.5665, 126.9780).context("a point")?;

    println!(
        "\n| query | words used | found | by text p50 / max (ms) | near a point p50 / max (ms) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut worst = Duration::ZERO;
    for (label, q) in searches() {
        let words = queries::words(&q).used;
        let (mut text_times, mut near_times) = (Vec::new(), Vec::new());
        let mut found = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let r = queries::by_text(&mut conn, &words, at, 1, PER_PAGE)?;
            text_times.push(t.elapsed());
            found = r.total;
            let t = Instant::now();
            let near = queries::near(&mut conn, &words, seoul, at, 1, PER_PAGE)?;
            near_times.push(t.elapsed());
            if near.total != r.total {
                bail!("{label}: {} near, {} by text", near.total, r.total);
            }
        }
        text_times.sort();
        near_times.sort();
        worst = worst
            .max(percentile(&text_times, 1.0))
            .max(percentile(&near_times, 1.0));
        println!(
            "| {label} (`{}`) | {} | {found} | {} / {} | {} / {} |",
            q.chars().take(24).collect::<String>(),
            words.len(),
            ms(percentile(&text_times, 0.5)),
            ms(percentile(&text_times, 1.0)),
            ms(percentile(&near_times, 0.5)),
            ms(percentile(&near_times, 1.0)),
        );
    }
    println!("\nslowest single search: {} ms", ms(worst));
    if args.supply.is_some() {
        snapshot(&mut conn, &args, &policy, at)?;
    }
    Ok(())
}

/// The open-data snapshot at this scale: a whole load (every store, today's
/// store-days and the free places of their windows still taking bookings),
/// and a refresh after 1 % of the store-days changed.
fn snapshot(
    conn: &mut mask_reservation::db::DbConnection,
    args: &Args,
    policy: &Policy,
    at: At,
) -> anyhow::Result<()> {
    let (mut whole, mut changed) = (Vec::new(), Vec::new());
    let (mut free_all, mut free_some) = (Vec::new(), Vec::new());
    let ids: Vec<i64> = store_days::table
        .filter(store_days::day.eq(at.today))
        .select(store_days::id)
        .load(conn)?;
    for run in 0..args.runs {
        let mut loader = Loader::default();
        let t = Instant::now();
        loader
            .refresh(conn, at.now, policy.timezone, at.close_minutes)?
            .context("a first load makes a snapshot")?;
        whole.push(t.elapsed());
        // 1 % of the store-days change a minute later (beyond the refresh's
        // look-back, so that only they are read again).
        let later = at.now + chrono::TimeDelta::seconds(60 + run as i64);
        let some: Vec<i64> = ids.iter().step_by(100).copied().collect();
        // What the two figures add to each: the free places of the windows
        // still taking bookings, for the whole day and for the changed rows.
        let t = Instant::now();
        stock::open_free(conn, Days::On(at.today), at.close_minutes, at.now)?;
        free_all.push(t.elapsed());
        let t = Instant::now();
        stock::open_free(conn, Days::Ids(&some), at.close_minutes, at.now)?;
        free_some.push(t.elapsed());
        diesel::update(store_days::table.filter(store_days::id.eq_any(&some)))
            .set((
                store_days::reserved.eq(store_days::reserved + 1),
                store_days::stock_changed_at.eq(later.naive_utc()),
            ))
            .execute(conn)?;
        let t = Instant::now();
        loader
            .refresh(conn, later, policy.timezone, at.close_minutes)?
            .context("the change makes a new snapshot")?;
        changed.push(t.elapsed());
    }
    for times in [&mut whole, &mut changed, &mut free_all, &mut free_some] {
        times.sort();
    }
    println!(
        "\n| snapshot of {} stores | p50 (ms) | max (ms) |",
        ids.len()
    );
    println!("| --- | ---: | ---: |");
    println!(
        "| whole load | {} | {} |",
        ms(percentile(&whole, 0.5)),
        ms(percentile(&whole, 1.0))
    );
    println!(
        "| refresh, 1 % of store-days changed | {} | {} |",
        ms(percentile(&changed, 0.5)),
        ms(percentile(&changed, 1.0))
    );
    println!(
        "| of which: open windows' free places, every store-day | {} | {} |",
        ms(percentile(&free_all, 0.5)),
        ms(percentile(&free_all, 1.0))
    );
    println!(
        "| of which: open windows' free places, 1 % of store-days | {} | {} |",
        ms(percentile(&free_some, 0.5)),
        ms(percentile(&free_some, 1.0))
    );
    Ok(())
}
