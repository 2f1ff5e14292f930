//! The end of a pharmacy's day: per window, what was handed over, the
//! no-shows, what is still reserved and what remains; for the day, the walk-in
//! sales and the remaining stock. Read from the reservations and sales
//! themselves, so the figures are those `verify` checks the counters against.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, reservations, store_days, walk_in_sales};
use crate::reservations::status::ReservationStatus;
use crate::stock::{StockDay, StockWindow};

/// One window's figures (masks, not reservations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowFigures {
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub capacity: i32,
    pub handed_over: i32,
    pub no_show: i32,
    pub still_reserved: i32,
    /// Capacity not reserved, handed over or held.
    pub remaining: i32,
}

/// The day at one store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayFigures {
    pub supply: i32,
    pub windows: Vec<WindowFigures>,
    /// Masks sold at the counter (undone sales not counted) and in how many sales.
    pub walk_in: i32,
    pub walk_in_sales: i64,
}

/// The windows added up, with the day's walk-in sales.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub capacity: i32,
    pub handed_over: i32,
    pub no_show: i32,
    pub still_reserved: i32,
    /// The store-day's remaining: supply − reserved − handed over − walk-in
    /// (SPEC §6). No-shows gave their masks back, so they are in it.
    pub remaining: i32,
    pub walk_in: i32,
}

impl DayFigures {
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            walk_in: self.walk_in,
            ..Totals::default()
        };
        for w in &self.windows {
            t.capacity += w.capacity;
            t.handed_over += w.handed_over;
            t.no_show += w.no_show;
            t.still_reserved += w.still_reserved;
        }
        t.remaining = StockDay {
            supply: self.supply,
            reserved: t.still_reserved,
            picked_up: t.handed_over,
            walk_in: self.walk_in,
        }
        .remaining();
        t
    }
}

/// Adds each reservation's quantity to its window's figure for its status.
pub fn tally(
    windows: Vec<(i64, NaiveDateTime, NaiveDateTime, i32)>,
    reservations: &[(i64, ReservationStatus, i32)],
) -> Vec<WindowFigures> {
    windows
        .into_iter()
        .map(|(id, starts_at, ends_at, capacity)| {
            let mut w = WindowFigures {
                starts_at,
                ends_at,
                capacity,
                ..WindowFigures::default()
            };
            for (_, status, q) in reservations.iter().filter(|r| r.0 == id) {
                match status {
                    ReservationStatus::PickedUp => w.handed_over += q,
                    ReservationStatus::Expired => w.no_show += q,
                    // An offer holds its places as a reservation does.
                    ReservationStatus::Active | ReservationStatus::Offered => w.still_reserved += q,
                    ReservationStatus::Cancelled
                    | ReservationStatus::Declined
                    | ReservationStatus::Lapsed => {}
                }
            }
            w.remaining = StockWindow {
                capacity: w.capacity,
                reserved: w.still_reserved,
                picked_up: w.handed_over,
            }
            .remaining();
            w
        })
        .collect()
}

/// The store's figures on `day`, or `None` when it had no supply that day.
pub fn day(
    conn: &mut DbConnection,
    store_id: i64,
    day: NaiveDate,
) -> QueryResult<Option<DayFigures>> {
    let Some((store_day_id, supply)) = store_days::table
        .filter(store_days::store_id.eq(store_id))
        .filter(store_days::day.eq(day))
        .select((store_days::id, store_days::supply))
        .first::<(i64, i32)>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let windows: Vec<(i64, NaiveDateTime, NaiveDateTime, i32)> = pickup_windows::table
        .filter(pickup_windows::store_day_id.eq(store_day_id))
        .order(pickup_windows::starts_at)
        .select((
            pickup_windows::id,
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            pickup_windows::capacity,
        ))
        .load(conn)?;
    let ids: Vec<i64> = windows.iter().map(|w| w.0).collect();
    let booked: Vec<(i64, ReservationStatus, i32)> = reservations::table
        .filter(reservations::window_id.eq_any(ids))
        .select((
            reservations::window_id,
            reservations::status,
            reservations::quantity,
        ))
        .load(conn)?;
    let sales: Vec<i32> = walk_in_sales::table
        .filter(walk_in_sales::store_day_id.eq(store_day_id))
        .filter(walk_in_sales::undone_at.is_null())
        .select(walk_in_sales::quantity)
        .load(conn)?;
    Ok(Some(DayFigures {
        supply,
        windows: tally(windows, &booked),
        walk_in: sales.iter().sum(),
        walk_in_sales: i64::try_from(sales.len()).unwrap_or(i64::MAX),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn reservations_are_counted_by_window_and_status_and_the_day_adds_up() {
        let windows = vec![(1, t(0), t(3), 10), (2, t(3), t(6), 10)];
        let booked = [
            (1, ReservationStatus::PickedUp, 2),
            (1, ReservationStatus::PickedUp, 1),
            (1, ReservationStatus::Expired, 2),
            (1, ReservationStatus::Cancelled, 2),
            (2, ReservationStatus::Active, 1),
        ];
        let day = DayFigures {
            supply: 25,
            windows: tally(windows, &booked),
            walk_in: 3,
            walk_in_sales: 2,
        };
        assert_eq!(
            (
                day.windows[0].handed_over,
                day.windows[0].no_show,
                day.windows[0].remaining
            ),
            (3, 2, 7)
        );
        assert_eq!(
            (day.windows[1].still_reserved, day.windows[1].remaining),
            (1, 9)
        );
        let totals = day.totals();
        assert_eq!(totals.capacity, 20);
        assert_eq!(totals.handed_over, 3);
        assert_eq!(totals.no_show, 2);
        assert_eq!(totals.still_reserved, 1);
        // 25 − 1 reserved − 3 handed over − 3 walk-in.
        assert_eq!(totals.remaining, 18);
    }
}
