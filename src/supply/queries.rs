//! What the administrator's supply pages read: a date's totals, the stores with
//! their figures that date, and a store's windows.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::dsl::{count_star, sum};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, settings, store_days, stores};
use crate::i18n::Tr;
use crate::stock::{self, StockDay, StockWindow};

/// A date's figures over every store with supply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub stores: i64,
    pub supply: i64,
    pub window_capacity: i64,
    pub reserved: i64,
    pub picked_up: i64,
    pub walk_in: i64,
    /// The sum of every store-day's remaining.
    pub remaining: i64,
}

pub fn totals_on(conn: &mut DbConnection, day: NaiveDate) -> QueryResult<Totals> {
    type Sums = (
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let (stores, supply, window_capacity, reserved, picked_up, walk_in, remaining): Sums =
        store_days::table
            .filter(store_days::day.eq(day))
            .select((
                count_star(),
                sum(store_days::supply),
                sum(store_days::window_capacity),
                sum(store_days::reserved),
                sum(store_days::picked_up),
                sum(store_days::walk_in),
                sum(stock::day_remaining_sql()),
            ))
            .get_result(conn)?;
    Ok(Totals {
        stores,
        supply: supply.unwrap_or(0),
        window_capacity: window_capacity.unwrap_or(0),
        reserved: reserved.unwrap_or(0),
        picked_up: picked_up.unwrap_or(0),
        walk_in: walk_in.unwrap_or(0),
        remaining: remaining.unwrap_or(0),
    })
}

/// One store on the supply list, with its figures on the date (zeros and no
/// supply when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSupply {
    pub code: String,
    pub name: String,
    pub region: String,
    pub suspended: bool,
    pub supply: Option<i32>,
    pub window_capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
    pub walk_in: i32,
}

impl StoreSupply {
    /// What the store has left that date ([`StockDay::remaining`]); 0 without
    /// supply.
    pub fn remaining(&self) -> i32 {
        StockDay {
            supply: self.supply.unwrap_or(0),
            reserved: self.reserved,
            picked_up: self.picked_up,
            walk_in: self.walk_in,
        }
        .remaining()
    }
}

type Listed = (
    String,
    String,
    String,
    bool,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
);

fn pattern(q: &str) -> String {
    format!("%{}%", q.replace(['%', '_'], ""))
}

/// Page `page` (of `per_page`) of the stores matching `q` in code, name,
/// address or region, by code, with their figures on `day`; and how many match.
pub fn stores_on(
    conn: &mut DbConnection,
    day: NaiveDate,
    q: &str,
    page: i64,
    per_page: i64,
) -> QueryResult<(Vec<StoreSupply>, i64)> {
    let mut query = crate::stores::with_day(day)
        .select((
            stores::code,
            stores::name,
            stores::region,
            stores::suspended,
            store_days::supply.nullable(),
            store_days::window_capacity.nullable(),
            store_days::reserved.nullable(),
            store_days::picked_up.nullable(),
            store_days::walk_in.nullable(),
        ))
        .order(stores::code)
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .into_boxed();
    let mut count = stores::table.count().into_boxed();
    if !q.is_empty() {
        let p = pattern(q);
        query = query.filter(
            stores::code
                .like(p.clone())
                .or(stores::name.like(p.clone()))
                .or(stores::addr.like(p.clone()))
                .or(stores::region.like(p.clone())),
        );
        count = count.filter(
            stores::code
                .like(p.clone())
                .or(stores::name.like(p.clone()))
                .or(stores::addr.like(p.clone()))
                .or(stores::region.like(p)),
        );
    }
    let rows: Vec<Listed> = query.load(conn)?;
    let total: i64 = count.get_result(conn)?;
    let rows = rows
        .into_iter()
        .map(
            |(code, name, region, suspended, supply, cap, r, p, w)| StoreSupply {
                code,
                name,
                region,
                suspended,
                supply,
                window_capacity: cap.unwrap_or(0),
                reserved: r.unwrap_or(0),
                picked_up: p.unwrap_or(0),
                walk_in: w.unwrap_or(0),
            },
        )
        .collect();
    Ok((rows, total))
}

/// The store with this code: its id.
pub fn store_id_by_code(conn: &mut DbConnection, code: &str) -> QueryResult<Option<i64>> {
    stores::table
        .filter(stores::code.eq(code))
        .select(stores::id)
        .first(conn)
        .optional()
}

/// One pickup window as the administrator's pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub id: i64,
    pub store_code: String,
    pub day: NaiveDate,
    /// Start and end in the service time zone, `09:00–12:00`.
    pub time: String,
    pub capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
}

impl WindowRow {
    pub fn remaining(&self) -> i32 {
        StockWindow {
            capacity: self.capacity,
            reserved: self.reserved,
            picked_up: self.picked_up,
        }
        .remaining()
    }

    /// The label of this window's capacity field, in `t`'s language.
    pub fn capacity_label(&self, t: &Tr) -> String {
        t.fmt(
            "admin.windows.capacity_for",
            &[("date", &t.date(self.day)), ("window", &self.time)],
        )
    }
}

type WindowListed = (
    i64,
    String,
    NaiveDate,
    NaiveDateTime,
    NaiveDateTime,
    i32,
    i32,
    i32,
);

#[diesel::dsl::auto_type(no_type_alias)]
fn window_listing() -> _ {
    pickup_windows::table.inner_join(stores::table).select((
        pickup_windows::id,
        stores::code,
        pickup_windows::day,
        pickup_windows::starts_at,
        pickup_windows::ends_at,
        pickup_windows::capacity,
        pickup_windows::reserved,
        pickup_windows::picked_up,
    ))
}

/// The service time zone as saved (the settings page checks it on save).
fn service_zone(conn: &mut DbConnection) -> QueryResult<Tz> {
    let saved: Option<String> = settings::table
        .find("timezone")
        .select(settings::value)
        .first(conn)
        .optional()?;
    Ok(saved
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::Asia::Seoul))
}

fn window_row(tz: Tz, row: WindowListed) -> WindowRow {
    let (id, store_code, day, starts_at, ends_at, capacity, reserved, picked_up) = row;
    let local = |t: NaiveDateTime| {
        Utc.from_utc_datetime(&t)
            .with_timezone(&tz)
            .format("%H:%M")
            .to_string()
    };
    WindowRow {
        id,
        store_code,
        day,
        time: format!("{}–{}", local(starts_at), local(ends_at)),
        capacity,
        reserved,
        picked_up,
    }
}

/// The windows of `store_id` from `from_day` to `to_day` (both included), by
/// date and start.
pub fn store_windows(
    conn: &mut DbConnection,
    store_id: i64,
    from_day: NaiveDate,
    to_day: NaiveDate,
) -> QueryResult<Vec<WindowRow>> {
    let tz = service_zone(conn)?;
    let rows: Vec<WindowListed> = window_listing()
        .filter(pickup_windows::store_id.eq(store_id))
        .filter(pickup_windows::day.between(from_day, to_day))
        .order((pickup_windows::day, pickup_windows::starts_at))
        .load(conn)?;
    Ok(rows.into_iter().map(|r| window_row(tz, r)).collect())
}

/// The window `window_id` if it belongs to the store with `code`.
pub fn window_of_store(
    conn: &mut DbConnection,
    code: &str,
    window_id: i64,
) -> QueryResult<Option<WindowRow>> {
    let tz = service_zone(conn)?;
    let row: Option<WindowListed> = window_listing()
        .filter(pickup_windows::id.eq(window_id))
        .filter(stores::code.eq(code))
        .first(conn)
        .optional()?;
    Ok(row.map(|r| window_row(tz, r)))
}
