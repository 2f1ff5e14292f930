//! The in-memory snapshot of every store and its stock today, which every
//! open-data answer and the map are served from: no request reads the
//! database.
//!
//! One background task per instance ([`refresh_loop`]) keeps it at most a
//! second behind the database. The first load reads every store and today's
//! store-days; after that each refresh reads only the store-days whose
//! `stock_changed_at` and the stores whose `updated_at` moved since the last
//! refresh (with a look-back, so that a transaction that stamped its row
//! before an earlier refresh but committed after it is still seen), and a
//! full reload runs when the service day, the time zone or the booking close
//! changes, when one of the day's windows stops taking bookings (its free
//! places then move from reservable to walk-in with no row changing), and
//! every [`FULL_RELOAD_EVERY`] as a safety net. Each store-day is read with
//! the free places of its windows still taking bookings, for its two figures
//! ([`Figures`]). A refresh that finds nothing
//! different keeps the snapshot as it is, so its answers, `created_at` and
//! `ETag`s stay the same until the stock moves.
//!
//! A new snapshot reuses the entries of the stores that did not change (each
//! entry holds its JSON fragments, serialised once) and the geographic index
//! when no store moved.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::db::schema::{pickup_windows, store_days, stores};
use crate::db::{Db, DbConnection};
use crate::opendata::query::{AddressQuery, MAX_ADDRESS_STORES};
use crate::reservations::rules;
use crate::settings::PolicyCache;
use crate::stock::{self, Days, Figures, StockDay};
use crate::stores::status::RemainStat;

/// How often each instance looks for changes: twice a second, so that an
/// answer is at most a second behind the database (SPEC §6) even when a
/// refresh waits for a connection in a rush. Once a second, the freshness
/// probe saw a booking after up to 1,050 ms (25,000 stores, two instances on
/// PostgreSQL: docs/benchmarks.md).
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// How often everything is read again, whatever the incremental reads found:
/// catches what they cannot see (a row written by an instance whose clock runs
/// far behind, a deleted row).
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How far back of the last seen stamp an incremental read looks: longer than
/// any write transaction takes between stamping a row and committing it.
const LOOK_BACK: TimeDelta = TimeDelta::seconds(15);

/// How the 2020 API wrote times: `2020/03/11 20:50:00`, in the service zone.
pub const TIME_FORMAT: &str = "%Y/%m/%d %H:%M:%S";

/// The size of a cell of the geographic index, in degrees (about 1.1 km of
/// latitude): a 5 km radius covers at most about 10 × 12 cells.
const CELL_DEGREES: f64 = 0.01;

/// Bytes of answers kept per snapshot (pages, address searches, the stock
/// files). Every page of both paged lists at one page size is about 15 MB at
/// 25,000 stores, the stock files 8 MB; a snapshot lives a second while the
/// stock moves, and an older one until its last answer is sent, so the
/// caches of two snapshots may be alive at once.
const ANSWER_CACHE_BYTES: usize = 24 * 1024 * 1024;

/// One store as the open data shows it, with its JSON fragments.
#[derive(Debug)]
pub struct Entry {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub lat: f64,
    pub lng: f64,
    pub suspended: bool,
    /// Masks left today; `None` when the store has no supply today.
    pub remain: Option<i64>,
    /// What of it can be booked now, and what sold at the counter now.
    pub figures: Option<Figures>,
    pub stat: Option<RemainStat>,
    /// When the stock last changed, in the service zone (`TIME_FORMAT`).
    pub stock_at: Option<String>,
    /// `{"addr":…,"code":…,"lat":…,"lng":…,"name":…,"type":…}`.
    info_json: Box<str>,
    /// A store object up to `"created_at":`, and the rest after its value.
    store_head: Box<str>,
    store_tail: Box<str>,
    /// A sales object up to `"created_at":`, and the rest.
    sale_head: Box<str>,
    sale_tail: Box<str>,
}

impl Entry {
    fn new(store: &StoreRow, day: Option<&DayRow>, tz: Tz) -> Entry {
        let figures = day.map(|d| Figures::of(&d.stock(), d.open_free));
        let remain = figures.map(|f| i64::from(f.remaining()));
        let stat = RemainStat::of_day(remain, store.suspended);
        let stock_at = day.map(|d| {
            d.stock_changed_at
                .and_utc()
                .with_timezone(&tz)
                .format(TIME_FORMAT)
                .to_string()
        });
        let s = |text: &str| serde_json::Value::from(text).to_string();
        let num = |x: f64| serde_json::Value::from(x).to_string();
        let opt_s = |text: Option<&str>| text.map_or_else(|| "null".to_owned(), s);
        let stat_json = opt_s(stat.map(RemainStat::as_str));
        let stock_at_json = opt_s(stock_at.as_deref());
        let (code, addr, name, store_type) = (
            s(&store.code),
            s(&store.addr),
            s(&store.name),
            s(&store.store_type),
        );
        let (lat, lng) = (num(store.lat), num(store.lng));
        // Keys in the order the 2020 service sent them (alphabetical).
        Entry {
            info_json: format!(
                "{{\"addr\":{addr},\"code\":{code},\"lat\":{lat},\"lng\":{lng},\"name\":{name},\"type\":{store_type}}}"
            )
            .into(),
            store_head: format!("{{\"addr\":{addr},\"code\":{code},\"created_at\":").into(),
            store_tail: format!(
                ",\"lat\":{lat},\"lng\":{lng},\"name\":{name},\"remain_stat\":{stat_json},\"stock_at\":{stock_at_json},\"type\":{store_type}}}"
            )
            .into(),
            sale_head: format!("{{\"code\":{code},\"created_at\":").into(),
            sale_tail: format!(",\"remain_stat\":{stat_json},\"stock_at\":{stock_at_json}}}")
                .into(),
            id: store.id,
            code: store.code.clone(),
            name: store.name.clone(),
            addr: store.addr.clone(),
            store_type: store.store_type.clone(),
            lat: store.lat,
            lng: store.lng,
            suspended: store.suspended,
            remain,
            figures,
            stat,
            stock_at,
        }
    }

    /// Whether the answer carries a status (and so a `created_at`).
    fn has_data(&self) -> bool {
        self.stat.is_some()
    }
}

/// The grid of cells of [`CELL_DEGREES`], each with the positions (in the
/// snapshot's list) of the stores in it.
#[derive(Debug, Default)]
struct Grid {
    cells: HashMap<(i32, i32), Vec<u32>>,
}

fn cell_of(lat: f64, lng: f64) -> (i32, i32) {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "coordinates are checked to be within ±180°; the cell index fits"
    )]
    let cell = |x: f64| (x / CELL_DEGREES).floor() as i32;
    (cell(lat), cell(lng))
}

impl Grid {
    fn build(entries: &[Arc<Entry>]) -> Grid {
        let mut cells: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Ok(i) = u32::try_from(i) {
                cells.entry(cell_of(e.lat, e.lng)).or_default().push(i);
            }
        }
        Grid { cells }
    }
}

/// Distance in metres between two points on the Earth (haversine).
pub fn distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Which answer a cached body is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnswerKey {
    Stores {
        page: u32,
        per_page: u32,
    },
    Sales {
        page: u32,
        per_page: u32,
    },
    Addr(String),
    /// Latitude, longitude and radius, as bits.
    Geo(u64, u64, u64),
    StockCsv,
    StockJson,
}

impl AnswerKey {
    /// Whether the answer is worth keeping for the next asker. The stores
    /// near a point are asked from where each phone is, to a few metres:
    /// hardly ever twice, so keeping them only filled the cache (64 MB of
    /// answers nobody asked for again, in a run of country-wide reads).
    fn is_kept(&self) -> bool {
        !matches!(self, AnswerKey::Geo(..))
    }
}

/// A serialised answer and its entity tag.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    pub etag: String,
}

#[derive(Default)]
struct AnswerCache {
    answers: HashMap<AnswerKey, Answer>,
    bytes: usize,
}

/// Every store and its stock today, as of [`Snapshot::taken_at`].
pub struct Snapshot {
    /// The service day the stock is of.
    pub day: NaiveDate,
    pub tz: Tz,
    /// When the data was read (the refresh that last found a change).
    pub taken_at: DateTime<Utc>,
    /// `taken_at` as the JSON value of `created_at`, quotes included.
    created_at_json: String,
    /// Changes whenever any answer would: tags every answer's `ETag`.
    pub version: u64,
    /// Sorted by code.
    entries: Vec<Arc<Entry>>,
    grid: Arc<Grid>,
    answers: Mutex<AnswerCache>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("day", &self.day)
            .field("taken_at", &self.taken_at)
            .field("stores", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn new(
        day: NaiveDate,
        tz: Tz,
        taken_at: DateTime<Utc>,
        entries: Vec<Arc<Entry>>,
        grid: Arc<Grid>,
    ) -> Snapshot {
        let created_at = taken_at.with_timezone(&tz).format(TIME_FORMAT).to_string();
        let mut hash = DefaultHasher::new();
        created_at.hash(&mut hash);
        day.hash(&mut hash);
        for e in &entries {
            e.store_head.hash(&mut hash);
            e.store_tail.hash(&mut hash);
            // Not in the 2020 objects, but in `stock.csv` and `stock.json`.
            e.remain.hash(&mut hash);
            e.figures.hash(&mut hash);
        }
        Snapshot {
            day,
            tz,
            taken_at,
            created_at_json: format!("\"{created_at}\""),
            version: hash.finish(),
            entries,
            grid,
            answers: Mutex::new(AnswerCache::default()),
        }
    }

    /// Every store, by code.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    pub fn store_count(&self) -> usize {
        self.entries.len()
    }

    /// `created_at` as text (`2020/03/11 20:50:00`).
    pub fn created_at(&self) -> &str {
        self.created_at_json.trim_matches('"')
    }

    /// Appends the JSON object of a store as `storesByGeo`/`storesByAddr`
    /// answer it.
    pub fn write_store(&self, out: &mut String, e: &Entry) {
        out.push_str(&e.store_head);
        out.push_str(self.created_at_of(e));
        out.push_str(&e.store_tail);
    }

    /// Appends the JSON object of a store as `sales/json` answers it.
    pub fn write_sale(&self, out: &mut String, e: &Entry) {
        out.push_str(&e.sale_head);
        out.push_str(self.created_at_of(e));
        out.push_str(&e.sale_tail);
    }

    /// Appends the JSON object of a store as `stores/json` answers it.
    pub fn write_info(out: &mut String, e: &Entry) {
        out.push_str(&e.info_json);
    }

    fn created_at_of(&self, e: &Entry) -> &str {
        if e.has_data() {
            &self.created_at_json
        } else {
            "null"
        }
    }

    /// The stores within `radius_m` metres of a point, nearest first, each with
    /// its distance.
    pub fn near(&self, lat: f64, lng: f64, radius_m: f64) -> Vec<(&Entry, f64)> {
        // Degrees of latitude and longitude the radius spans here (longitude
        // degrees shrink towards the poles; near them, every longitude).
        let dlat = radius_m / 111_000.0 + CELL_DEGREES;
        let cos = lat.to_radians().cos().abs();
        let dlng = if cos < 0.01 {
            360.0
        } else {
            (radius_m / (111_320.0 * cos) + CELL_DEGREES).min(360.0)
        };
        let (lat0, lng0) = cell_of(lat - dlat, lng - dlng);
        let (lat1, lng1) = cell_of(lat + dlat, lng + dlng);
        let mut found = Vec::new();
        for cy in lat0..=lat1 {
            for cx in lng0..=lng1 {
                let Some(cell) = self.grid.cells.get(&(cy, cx)) else {
                    continue;
                };
                for &i in cell {
                    let Some(e) = usize::try_from(i).ok().and_then(|i| self.entries.get(i)) else {
                        continue;
                    };
                    let d = distance_m(lat, lng, e.lat, e.lng);
                    if d <= radius_m {
                        found.push((e.as_ref(), d));
                    }
                }
            }
        }
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.code.cmp(&b.0.code)));
        found
    }

    /// The stores whose address answers `question`, by code: the first
    /// [`MAX_ADDRESS_STORES`] of them, so that no question answers the
    /// country.
    pub fn by_address(&self, question: &AddressQuery) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| question.matches(&e.addr))
            .take(MAX_ADDRESS_STORES)
            .map(AsRef::as_ref)
            .collect()
    }

    /// The cached answer for `key`, or the one `build` makes, kept while the
    /// cache has room if it is worth keeping ([`AnswerKey::is_kept`]).
    pub fn answer(&self, key: AnswerKey, build: impl FnOnce(&Snapshot) -> String) -> Answer {
        let kept = key.is_kept();
        if kept && let Some(found) = self.lock_answers().answers.get(&key) {
            return found.clone();
        }
        let body = Bytes::from(build(self));
        let answer = Answer {
            etag: self.etag_of(&key),
            body,
        };
        if !kept {
            return answer;
        }
        let mut cache = self.lock_answers();
        if cache.bytes + answer.body.len() <= ANSWER_CACHE_BYTES {
            cache.bytes += answer.body.len();
            cache.answers.insert(key, answer.clone());
        }
        answer
    }

    /// The `ETag` of an answer: the snapshot's version and the question.
    pub fn etag_of(&self, question: &impl Hash) -> String {
        let mut hash = DefaultHasher::new();
        question.hash(&mut hash);
        format!("\"{:016x}{:016x}\"", self.version, hash.finish())
    }

    fn lock_answers(&self) -> std::sync::MutexGuard<'_, AnswerCache> {
        // A panic while holding the lock leaves at worst a missing entry.
        match self.answers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The snapshot in force, shared by every worker of an instance.
pub struct StockCache {
    current: watch::Sender<Option<Arc<Snapshot>>>,
    /// When the last refresh ended (found a change or not).
    checked_at: Mutex<Option<DateTime<Utc>>>,
}

impl Default for StockCache {
    fn default() -> Self {
        StockCache {
            current: watch::Sender::new(None),
            checked_at: Mutex::new(None),
        }
    }
}

impl StockCache {
    /// The snapshot as last loaded, if one has been.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.borrow().clone()
    }

    /// The snapshot, waiting up to `wait` for the first load (an instance
    /// that has just started, or whose database was down).
    pub async fn get(&self, wait: Duration) -> Option<Arc<Snapshot>> {
        if let Some(s) = self.current() {
            return Some(s);
        }
        let mut rx = self.current.subscribe();
        let loaded = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        match loaded {
            Ok(Ok(s)) => s.clone(),
            _ => None,
        }
    }

    /// When the data was last checked against the database.
    pub fn checked_at(&self) -> Option<DateTime<Utc>> {
        match self.checked_at.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    fn set(&self, snapshot: Arc<Snapshot>) {
        self.current.send_replace(Some(snapshot));
    }

    fn checked(&self, at: DateTime<Utc>) {
        match self.checked_at.lock() {
            Ok(mut g) => *g = Some(at),
            Err(p) => *p.into_inner() = Some(at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable)]
struct StoreRow {
    id: i64,
    code: String,
    name: String,
    addr: String,
    store_type: String,
    lat: f64,
    lng: f64,
    suspended: bool,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq)]
struct DayRow {
    id: i64,
    store_id: i64,
    supply: i32,
    reserved: i32,
    picked_up: i32,
    walk_in: i32,
    stock_changed_at: NaiveDateTime,
    /// Free places of the windows taking bookings when the row was read
    /// ([`stock::open_free`]).
    open_free: stock::Free,
}

/// A `store_days` row as [`DAY_COLUMNS`] reads it.
type DayTuple = (i64, i64, i32, i32, i32, i32, NaiveDateTime);

impl DayRow {
    /// The rows read, each with its open windows' free places from `free`.
    fn with_free(rows: Vec<DayTuple>, free: &HashMap<i64, stock::Free>) -> Vec<DayRow> {
        rows.into_iter()
            .map(
                |(id, store_id, supply, reserved, picked_up, walk_in, stock_changed_at)| DayRow {
                    id,
                    store_id,
                    supply,
                    reserved,
                    picked_up,
                    walk_in,
                    stock_changed_at,
                    open_free: free.get(&id).copied().unwrap_or_default(),
                },
            )
            .collect()
    }

    fn stock(&self) -> StockDay {
        StockDay {
            supply: self.supply,
            reserved: self.reserved,
            picked_up: self.picked_up,
            walk_in: self.walk_in,
        }
    }
}

type StoreColumns = (
    stores::id,
    stores::code,
    stores::name,
    stores::addr,
    stores::store_type,
    stores::lat,
    stores::lng,
    stores::suspended,
    stores::updated_at,
);

const STORE_COLUMNS: StoreColumns = (
    stores::id,
    stores::code,
    stores::name,
    stores::addr,
    stores::store_type,
    stores::lat,
    stores::lng,
    stores::suspended,
    stores::updated_at,
);

type DayColumns = (
    store_days::id,
    store_days::store_id,
    store_days::supply,
    store_days::reserved,
    store_days::picked_up,
    store_days::walk_in,
    store_days::stock_changed_at,
);

const DAY_COLUMNS: DayColumns = (
    store_days::id,
    store_days::store_id,
    store_days::supply,
    store_days::reserved,
    store_days::picked_up,
    store_days::walk_in,
    store_days::stock_changed_at,
);

/// What the refresher knows between refreshes: the rows as last read, the
/// entries built from them, and the latest stamps seen.
#[derive(Default)]
pub struct Loader {
    stores: HashMap<i64, StoreRow>,
    days: HashMap<i64, DayRow>,
    entries: HashMap<i64, Arc<Entry>>,
    store_mark: Option<NaiveDateTime>,
    day_mark: Option<NaiveDateTime>,
    loaded: Option<(NaiveDate, Tz)>,
    /// The moments the day's windows stop taking bookings (their ends less
    /// `booking_close_minutes`), sorted: crossing one moves places from
    /// reservable to walk-in with no row changing, so it reloads everything.
    closes: Vec<NaiveDateTime>,
    close_minutes: Option<i32>,
    last_now: Option<NaiveDateTime>,
    last_full: Option<Instant>,
    snapshot: Option<Arc<Snapshot>>,
}

impl Loader {
    /// Reads what changed and answers a new snapshot when anything did.
    /// `close_minutes` is the policy's `booking_close_minutes`.
    pub fn refresh(
        &mut self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
        tz: Tz,
        close_minutes: i32,
    ) -> QueryResult<Option<Arc<Snapshot>>> {
        let day = now.with_timezone(&tz).date_naive();
        let at = now.naive_utc();
        let closed_since = self
            .last_now
            .is_some_and(|prev| self.closes.iter().any(|c| prev < *c && *c <= at));
        let full = self.loaded != Some((day, tz))
            || self.close_minutes != Some(close_minutes)
            || closed_since
            || self
                .last_full
                .is_none_or(|at| at.elapsed() >= FULL_RELOAD_EVERY);
        let (store_rows, day_rows) = if full {
            let s: Vec<StoreRow> = stores::table.select(STORE_COLUMNS).load(conn)?;
            let d: Vec<DayTuple> = store_days::table
                .filter(store_days::day.eq(day))
                .select(DAY_COLUMNS)
                .load(conn)?;
            let free = stock::open_free(conn, Days::On(day), close_minutes, now)?;
            let ends: Vec<NaiveDateTime> = pickup_windows::table
                .filter(
                    pickup_windows::store_day_id.eq_any(
                        store_days::table
                            .filter(store_days::day.eq(day))
                            .select(store_days::id),
                    ),
                )
                .select(pickup_windows::ends_at)
                .distinct()
                .load(conn)?;
            let mut closes: Vec<NaiveDateTime> = ends
                .into_iter()
                .map(|end| rules::booking_closes_at(close_minutes, end))
                .collect();
            closes.sort_unstable();
            self.closes = closes;
            (s, DayRow::with_free(d, &free))
        } else {
            let mut q = stores::table.select(STORE_COLUMNS).into_boxed();
            if let Some(mark) = self.store_mark {
                q = q.filter(stores::updated_at.gt(mark - LOOK_BACK));
            }
            let s: Vec<StoreRow> = q.load(conn)?;
            let mut q = store_days::table
                .filter(store_days::day.eq(day))
                .select(DAY_COLUMNS)
                .into_boxed();
            if let Some(mark) = self.day_mark {
                q = q.filter(store_days::stock_changed_at.gt(mark - LOOK_BACK));
            }
            let d: Vec<DayTuple> = q.load(conn)?;
            let ids: Vec<i64> = d.iter().map(|r| r.0).collect();
            let free = stock::open_free(conn, Days::Ids(&ids), close_minutes, now)?;
            (s, DayRow::with_free(d, &free))
        };
        self.close_minutes = Some(close_minutes);
        self.last_now = Some(at);
        Ok(self.apply(full, day, tz, now, store_rows, day_rows))
    }

    fn apply(
        &mut self,
        full: bool,
        day: NaiveDate,
        tz: Tz,
        now: DateTime<Utc>,
        store_rows: Vec<StoreRow>,
        day_rows: Vec<DayRow>,
    ) -> Option<Arc<Snapshot>> {
        let rebuild_all = self.loaded != Some((day, tz));
        let mut changed: HashSet<i64> = HashSet::new();
        let mut stores_changed = rebuild_all;
        if full {
            let seen: HashSet<i64> = store_rows.iter().map(|s| s.id).collect();
            let gone: Vec<i64> = self
                .stores
                .keys()
                .filter(|id| !seen.contains(id))
                .copied()
                .collect();
            for id in gone {
                self.stores.remove(&id);
                self.entries.remove(&id);
                stores_changed = true;
            }
            let seen: HashSet<i64> = day_rows.iter().map(|d| d.store_id).collect();
            let gone: Vec<i64> = self
                .days
                .keys()
                .filter(|id| !seen.contains(id))
                .copied()
                .collect();
            for id in gone {
                self.days.remove(&id);
                changed.insert(id);
            }
        }
        for s in store_rows {
            self.store_mark = self.store_mark.max(Some(s.updated_at));
            if self.stores.get(&s.id) != Some(&s) {
                changed.insert(s.id);
                stores_changed = true;
                self.stores.insert(s.id, s);
            }
        }
        for d in day_rows {
            self.day_mark = self.day_mark.max(Some(d.stock_changed_at));
            if self.days.get(&d.store_id) != Some(&d) {
                changed.insert(d.store_id);
                self.days.insert(d.store_id, d);
            }
        }
        if full {
            self.last_full = Some(Instant::now());
        }
        if rebuild_all {
            self.entries.clear();
            changed.extend(self.stores.keys().copied());
        }
        self.loaded = Some((day, tz));
        if changed.is_empty() && !stores_changed && self.snapshot.is_some() {
            return None;
        }
        for id in &changed {
            match self.stores.get(id) {
                Some(store) => {
                    let entry = Entry::new(store, self.days.get(id), tz);
                    self.entries.insert(*id, Arc::new(entry));
                }
                None => {
                    self.entries.remove(id);
                }
            }
        }
        let mut entries: Vec<Arc<Entry>> = self.entries.values().cloned().collect();
        entries.sort_by(|a, b| a.code.cmp(&b.code));
        let grid = match (&self.snapshot, stores_changed) {
            (Some(previous), false) => previous.grid.clone(),
            _ => Arc::new(Grid::build(&entries)),
        };
        let snapshot = Arc::new(Snapshot::new(day, tz, now, entries, grid));
        self.snapshot = Some(snapshot.clone());
        Some(snapshot)
    }
}

/// Gauges of the snapshot's freshness on `/metrics`.
pub struct Freshness {
    pub checked: prometheus::Gauge,
    pub taken: prometheus::Gauge,
}

/// Keeps `cache` within [`REFRESH_EVERY`] of the database, for as long as the
/// server runs. A failed refresh keeps the snapshot in memory and tries again
/// at the next tick.
pub async fn refresh_loop(
    db: Db,
    cache: Arc<StockCache>,
    policy: Arc<PolicyCache>,
    clock: Clock,
    freshness: Option<Freshness>,
) {
    let loader = Arc::new(Mutex::new(Loader::default()));
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = clock.now();
        let (loader, policy) = (loader.clone(), policy.clone());
        // In the counter's lane (`db::lane`): the stock people see must not
        // wait behind the crowd that moves it.
        let result = crate::db::lane::counter(db.run(move |conn| -> Result<_, anyhow::Error> {
            let policy = match policy.cached() {
                Some(p) => p,
                None => policy.refresh(conn)?,
            };
            let mut loader = match loader.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            Ok(loader.refresh(conn, now, policy.timezone, policy.booking_close_minutes)?)
        }))
        .await;
        match result {
            Ok(fresh) => {
                if let Some(snapshot) = fresh {
                    if let Some(f) = &freshness {
                        f.taken.set(timestamp(snapshot.taken_at));
                    }
                    cache.set(snapshot);
                }
                cache.checked(now);
                if let Some(f) = &freshness {
                    f.checked.set(timestamp(now));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "stock snapshot refresh failed; serving the last one");
            }
        }
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "a timestamp in microseconds fits a float's 53 bits until the year 2255"
)]
fn timestamp(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: i64, code: &str, lat: f64, lng: f64) -> StoreRow {
        StoreRow {
            id,
            code: code.into(),
            name: format!("약국 {id}"),
            addr: format!("서울특별시 중구 세종대로 {id}"),
            store_type: "01".into(),
            lat,
            lng,
            suspended: false,
            updated_at: NaiveDateTime::default(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_583_971_200 + secs, 0).unwrap()
    }

    #[test]
    fn a_refresh_that_changes_nothing_keeps_the_snapshot() {
        let mut loader = Loader::default();
        let tz = chrono_tz::Asia::Seoul;
        let rows = vec![store(1, "11111111", 37.5, 127.0)];
        let first = loader.apply(true, at(0).date_naive(), tz, at(0), rows.clone(), vec![]);
        assert!(first.is_some());
        let again = loader.apply(false, at(0).date_naive(), tz, at(1), rows, vec![]);
        assert!(again.is_none());
        let day = DayRow {
            id: 10,
            store_id: 1,
            supply: 100,
            reserved: 1,
            picked_up: 0,
            walk_in: 0,
            stock_changed_at: at(1).naive_utc(),
            open_free: stock::Free {
                open: 60,
                in_draw: 0,
            },
        };
        let moved = loader
            .apply(false, at(0).date_naive(), tz, at(2), vec![], vec![day])
            .unwrap();
        assert_eq!(moved.entries()[0].remain, Some(99));
        assert_eq!(
            moved.entries()[0].figures,
            Some(Figures {
                reservable: 60,
                walk_in: 39,
                in_draw: 0
            })
        );
        assert_ne!(moved.version, first.unwrap().version);
    }

    #[test]
    fn a_change_of_the_exact_figure_alone_changes_the_version() {
        // Within one second and one band: the 2020 objects read the same,
        // stock.csv and stock.json do not, so their tags must differ.
        let mut loader = Loader::default();
        let tz = chrono_tz::Asia::Seoul;
        let day = |reserved| DayRow {
            id: 10,
            store_id: 1,
            supply: 200,
            reserved,
            picked_up: 0,
            walk_in: 0,
            stock_changed_at: at(1).naive_utc(),
            open_free: stock::Free {
                open: 100,
                in_draw: 0,
            },
        };
        let today = at(0).date_naive();
        let rows = vec![store(1, "11111111", 37.5, 127.0)];
        let first = loader
            .apply(true, today, tz, at(2), rows, vec![day(1)])
            .unwrap();
        let second = loader
            .apply(false, today, tz, at(2), vec![], vec![day(2)])
            .unwrap();
        assert_eq!(
            (first.entries()[0].remain, second.entries()[0].remain),
            (Some(199), Some(198))
        );
        assert_eq!(first.entries()[0].stat, second.entries()[0].stat);
        assert_ne!(first.version, second.version);
    }

    #[test]
    fn stores_near_a_point_come_nearest_first_within_the_radius() {
        let mut loader = Loader::default();
        let tz = chrono_tz::Asia::Seoul;
        let rows = vec![
            store(1, "11111111", 37.5000, 127.0000),
            store(2, "22222222", 37.5010, 127.0000),
            store(3, "33333333", 37.5200, 127.0000),
            store(4, "44444444", 37.4999, 127.0001),
        ];
        let s = loader
            .apply(true, at(0).date_naive(), tz, at(0), rows, vec![])
            .unwrap();
        let codes = |r: f64| {
            s.near(37.5, 127.0, r)
                .iter()
                .map(|(e, _)| e.code.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(200.0), ["11111111", "44444444", "22222222"]);
        assert_eq!(codes(5000.0).len(), 4);
        assert!(codes(1.0) == ["11111111"]);
    }

    #[test]
    fn pages_are_kept_for_the_next_asker_and_the_stores_near_a_point_are_not() {
        let mut loader = Loader::default();
        let tz = chrono_tz::Asia::Seoul;
        let rows = vec![store(1, "11111111", 37.5, 127.0)];
        let s = loader
            .apply(true, at(0).date_naive(), tz, at(0), rows, vec![])
            .unwrap();
        let builds = std::cell::Cell::new(0);
        let build = |_: &Snapshot| {
            builds.set(builds.get() + 1);
            "{}".to_owned()
        };
        let page = || AnswerKey::Stores {
            page: 1,
            per_page: 500,
        };
        let first = s.answer(page(), build);
        let again = s.answer(page(), build);
        assert_eq!((builds.get(), &first.etag), (1, &again.etag));
        let geo = || AnswerKey::Geo(37.5f64.to_bits(), 127.0f64.to_bits(), 500f64.to_bits());
        let first = s.answer(geo(), build);
        let again = s.answer(geo(), build);
        // Built each time, under the same tag.
        assert_eq!((builds.get(), &first.etag), (3, &again.etag));
        assert_eq!(s.lock_answers().answers.len(), 1);
    }

    #[test]
    fn distances_are_metres_on_the_earth() {
        let d = distance_m(37.5665, 126.978, 37.5665, 126.978);
        assert!(d.abs() < 1e-6);
        // One thousandth of a degree of latitude is about 111 m.
        let d = distance_m(37.0, 127.0, 37.001, 127.0);
        assert!((d - 111.2).abs() < 0.5, "{d}");
    }
}
