//! The national picture for one day: supply, reservations, pickups, no-shows and
//! walk-in sales, by region and in total.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Text, Timestamp};

use crate::db::{Backend, DbConnection};
use crate::reservations::rules;
use crate::stock::{self, At, StockDay};

#[derive(Debug, Clone, Default, PartialEq, Eq, QueryableByName)]
pub struct RegionRow {
    #[diesel(sql_type = Text)]
    pub region: String,
    #[diesel(sql_type = BigInt)]
    pub stores: i64,
    #[diesel(sql_type = BigInt)]
    pub supply: i64,
    #[diesel(sql_type = BigInt)]
    pub reserved: i64,
    #[diesel(sql_type = BigInt)]
    pub picked_up: i64,
    #[diesel(sql_type = BigInt)]
    pub no_show: i64,
    #[diesel(sql_type = BigInt)]
    pub walk_in: i64,
    /// Free places of the windows still taking bookings ([`stock::open_free`]),
    /// apart for those a draw holds.
    #[diesel(sql_type = BigInt)]
    pub open_free: i64,
    #[diesel(sql_type = BigInt)]
    pub in_draw: i64,
}

impl RegionRow {
    /// What is left to book now, to sell at the counter now, and in a draw,
    /// summed over the region's store-days ([`Figures`]).
    pub fn figures(&self) -> (i64, i64, i64) {
        let remaining = self.supply - self.reserved - self.picked_up - self.walk_in;
        stock::split_remaining(remaining, self.open_free, self.in_draw)
    }
}

/// Each region with supply on `at.today`, in region order, with the free
/// places of its windows still taking bookings at `at.now`.
pub fn regions_on(conn: &mut DbConnection, at: At) -> QueryResult<Vec<RegionRow>> {
    diesel::sql_query(
        "SELECT s.region AS region,
                COUNT(*) AS stores,
                CAST(COALESCE(SUM(d.supply), 0) AS BIGINT) AS supply,
                CAST(COALESCE(SUM(d.reserved), 0) AS BIGINT) AS reserved,
                CAST(COALESCE(SUM(d.picked_up), 0) AS BIGINT) AS picked_up,
                CAST(COALESCE(SUM(d.no_show), 0) AS BIGINT) AS no_show,
                CAST(COALESCE(SUM(d.walk_in), 0) AS BIGINT) AS walk_in,
                CAST(COALESCE(SUM(f.free), 0) AS BIGINT) AS open_free,
                CAST(COALESCE(SUM(f.in_draw), 0) AS BIGINT) AS in_draw
         FROM store_days d JOIN stores s ON s.id = d.store_id
         LEFT JOIN (SELECT w.store_day_id,
                           SUM(CASE WHEN w.draw_id IS NULL
                                    THEN w.capacity - w.reserved - w.picked_up ELSE 0 END) AS free,
                           SUM(CASE WHEN w.draw_id IS NULL
                                    THEN 0 ELSE w.capacity - w.reserved - w.picked_up END) AS in_draw
                    FROM pickup_windows w JOIN store_days wd ON wd.id = w.store_day_id
                    WHERE wd.day = $1 AND w.ends_at > $2 AND w.capacity > w.reserved + w.picked_up
                    GROUP BY w.store_day_id) f ON f.store_day_id = d.id
         WHERE d.day = $1
         GROUP BY s.region
         ORDER BY s.region",
    )
    .bind::<Date, _>(at.today)
    .bind::<Timestamp, _>(rules::earliest_bookable_end(at.close_minutes, at.now))
    .load(conn)
}

/// Reservations made and pickups confirmed in each hour (0–23) of `day` in
/// the service zone `tz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hourly {
    pub reserved: [i64; 24],
    pub picked_up: [i64; 24],
}

#[derive(QueryableByName)]
struct HourCount {
    #[diesel(sql_type = Text)]
    hour: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Counts by hour in SQL (truncated UTC hours, so a busy day is 24 rows, not a
/// row per reservation), then places each UTC hour in the local day. Zones
/// whose offset is not whole hours are placed by the hour their UTC hour starts
/// in; the day's bounds are exact.
pub fn hourly_on(conn: &mut DbConnection, day: NaiveDate, tz: Tz) -> QueryResult<Hourly> {
    let (from, to) = utc_bounds(day, tz);
    let mut out = Hourly::default();
    for (column, slot) in [
        ("created_at", &mut out.reserved),
        ("picked_up_at", &mut out.picked_up),
    ] {
        let hour = match conn.backend() {
            Backend::Sqlite => format!("strftime('%Y-%m-%d %H:00:00', {column})"),
            Backend::Postgres => {
                format!("to_char(date_trunc('hour', {column}), 'YYYY-MM-DD HH24:00:00')")
            }
        };
        let rows: Vec<HourCount> = diesel::sql_query(format!(
            "SELECT {hour} AS hour, CAST(COUNT(*) AS BIGINT) AS n
             FROM reservations
             WHERE {column} >= $1 AND {column} < $2
             GROUP BY 1"
        ))
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(conn)?;
        for row in rows {
            if let Some(h) = local_hour(&row.hour, tz) {
                slot[h] += row.n;
            }
        }
    }
    Ok(out)
}

/// The UTC instants at which `day` starts and the next day starts in `tz`.
fn utc_bounds(day: NaiveDate, tz: Tz) -> (NaiveDateTime, NaiveDateTime) {
    let start = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        // A zone that skips midnight (a DST jump) starts the day at the
        // earliest instant that exists; a repeated midnight at its first.
        tz.from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.naive_utc())
            .unwrap_or(midnight)
    };
    (start(day), start(day.succ_opt().unwrap_or(day)))
}

fn local_hour(utc_hour: &str, tz: Tz) -> Option<usize> {
    let t = NaiveDateTime::parse_from_str(utc_hour, "%Y-%m-%d %H:%M:%S").ok()?;
    Some(Utc.from_utc_datetime(&t).with_timezone(&tz).hour() as usize)
}

/// One store's figures for a day, as the CSV export lists them.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct StoreDayRow {
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub region: String,
    #[diesel(sql_type = Integer)]
    pub supply: i32,
    #[diesel(sql_type = Integer)]
    pub window_capacity: i32,
    #[diesel(sql_type = Integer)]
    pub reserved: i32,
    #[diesel(sql_type = Integer)]
    pub picked_up: i32,
    #[diesel(sql_type = Integer)]
    pub no_show: i32,
    #[diesel(sql_type = Integer)]
    pub walk_in: i32,
}

impl StoreDayRow {
    /// What the store has left that day ([`StockDay::remaining`]).
    pub fn remaining(&self) -> i32 {
        StockDay {
            supply: self.supply,
            reserved: self.reserved,
            picked_up: self.picked_up,
            walk_in: self.walk_in,
        }
        .remaining()
    }
}

/// Every store with supply on `day`, by store code.
pub fn stores_on(conn: &mut DbConnection, day: NaiveDate) -> QueryResult<Vec<StoreDayRow>> {
    diesel::sql_query(
        "SELECT s.code AS code, s.name AS name, s.region AS region,
                d.supply AS supply, d.window_capacity AS window_capacity,
                d.reserved AS reserved, d.picked_up AS picked_up,
                d.no_show AS no_show, d.walk_in AS walk_in
         FROM store_days d JOIN stores s ON s.id = d.store_id
         WHERE d.day = $1
         ORDER BY s.code",
    )
    .bind::<Date, _>(day)
    .load(conn)
}

/// The sum of the regions (its `region` is empty).
pub fn total(regions: &[RegionRow]) -> RegionRow {
    regions.iter().fold(RegionRow::default(), |mut t, r| {
        t.stores += r.stores;
        t.supply += r.supply;
        t.reserved += r.reserved;
        t.picked_up += r.picked_up;
        t.no_show += r.no_show;
        t.walk_in += r.walk_in;
        t.open_free += r.open_free;
        t.in_draw += r.in_draw;
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(region: &str, n: i64) -> RegionRow {
        RegionRow {
            region: region.into(),
            stores: n,
            supply: 10 * n,
            reserved: 5 * n,
            picked_up: 3 * n,
            no_show: n,
            walk_in: 2 * n,
            open_free: n,
            in_draw: n,
        }
    }

    #[test]
    fn a_seoul_day_runs_from_15_utc_the_day_before() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let (from, to) = utc_bounds(day, chrono_tz::Asia::Seoul);
        assert_eq!(from.to_string(), "2026-11-25 15:00:00");
        assert_eq!(to.to_string(), "2026-11-26 15:00:00");
        assert_eq!(
            local_hour("2026-11-25 15:00:00", chrono_tz::Asia::Seoul),
            Some(0)
        );
        assert_eq!(
            local_hour("2026-11-26 14:00:00", chrono_tz::Asia::Seoul),
            Some(23)
        );
        assert_eq!(local_hour("garbage", chrono_tz::Asia::Seoul), None);
    }

    #[test]
    fn the_total_adds_every_column_of_every_region() {
        let t = total(&[row("서울특별시", 1), row("부산광역시", 2)]);
        assert_eq!(
            t,
            RegionRow {
                region: String::new(),
                stores: 3,
                supply: 30,
                reserved: 15,
                picked_up: 9,
                no_show: 3,
                walk_in: 6,
                open_free: 3,
                in_draw: 3,
            }
        );
        // 30 − 15 − 9 − 6 = 0 left: nothing to book, whatever the windows say.
        assert_eq!(t.figures(), (0, 0, 0));
        let more = RegionRow {
            supply: 100,
            ..t.clone()
        };
        // 70 left: 3 in a draw, 3 to book, the rest at the counter.
        assert_eq!(more.figures(), (3, 64, 3));
        assert_eq!(total(&[]), RegionRow::default());
    }
}
