//! What is left of a store-day's supply and of a pickup window's capacity
//! (SPEC §6): the one place these numbers are computed. Every page, export
//! and job that shows a "remaining" takes it from [`StockDay::remaining`] or
//! [`StockWindow::remaining`]; a query that needs the number inside SQL (a sum
//! over many store-days, a filter on windows with room) takes the same
//! formula as a diesel expression from [`day_remaining_sql`] or
//! [`window_remaining_sql`], written beside the Rust one. What people are
//! shown is that remainder split as they can get it ([`Figures`]): to book
//! now, and at the counter now.
//!
//! Here rather than in one feature: the store page, the search, the open
//! data, the administrator's overview and supply pages and the pharmacist's
//! day all show these figures.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, store_days};
use crate::i18n::Tr;
use crate::policy::Policy;
use crate::reservations::rules;

/// A store-day's counters, as `store_days` holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockDay {
    pub supply: i32,
    /// Masks held by active reservations.
    pub reserved: i32,
    /// Masks handed over to reservations.
    pub picked_up: i32,
    /// Masks sold at the counter (undone sales not counted).
    pub walk_in: i32,
}

impl StockDay {
    /// Masks no one can have any more: held, handed over or sold.
    pub fn taken(&self) -> i32 {
        self.reserved
            .saturating_add(self.picked_up)
            .saturating_add(self.walk_in)
    }

    /// Masks the store-day has left for anyone: supply less what is
    /// [`taken`](Self::taken). No-shows gave theirs back, so they are in it.
    /// Never negative; the database's CHECK `reserved + picked_up + walk_in
    /// <= supply` already keeps it so, which is why [`day_remaining_sql`]
    /// needs no floor to agree with it.
    pub fn remaining(&self) -> i32 {
        self.supply.saturating_sub(self.taken()).max(0)
    }
}

/// A pickup window's counters, as `pickup_windows` holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockWindow {
    pub capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
}

impl StockWindow {
    /// Capacity not reserved or handed over: what can still be booked. Never
    /// negative; the CHECK `reserved + picked_up <= capacity` keeps
    /// [`window_remaining_sql`] in agreement.
    pub fn remaining(&self) -> i32 {
        self.capacity
            .saturating_sub(self.reserved.saturating_add(self.picked_up))
            .max(0)
    }
}

/// [`StockDay::taken`] of a `store_days` row, in SQL.
#[diesel::dsl::auto_type]
pub fn day_taken_sql() -> _ {
    store_days::reserved + store_days::picked_up + store_days::walk_in
}

/// [`StockDay::remaining`] of a `store_days` row, in SQL (for sums over many
/// store-days, which would not fit the `i32` of one).
#[diesel::dsl::auto_type]
pub fn day_remaining_sql() -> _ {
    store_days::supply - store_days::reserved - store_days::picked_up - store_days::walk_in
}

/// The walk-in stock of a `store_days` row, in SQL: its supply less what the
/// pickup windows hold (`window_capacity`) and what the counter has sold —
/// what a sale may take. Never negative: the CHECK `window_capacity + walk_in
/// <= supply` keeps it so. (A closed window's places join it when released,
/// `supply::release`; [`Figures::walk_in`] counts them already.)
#[diesel::dsl::auto_type]
pub fn walk_in_left_sql() -> _ {
    store_days::supply - store_days::window_capacity - store_days::walk_in
}

/// [`StockWindow::remaining`] of a `pickup_windows` row, in SQL.
#[diesel::dsl::auto_type]
pub fn window_remaining_sql() -> _ {
    pickup_windows::capacity - pickup_windows::reserved - pickup_windows::picked_up
}

/// What a person can get of a store-day at a moment, in the two ways there
/// are (SPEC §6): **reservable**, the free places of the windows still taking
/// bookings, and **walk-in**, what the counter can sell — the walk-in stock,
/// the places closed windows left unbooked (released to the counter, or about
/// to be: a sale releases them first) and the masks of no-shows. Their sum is
/// [`Figures::remaining`]: nothing in it is out of everyone's reach. The free
/// places of windows a draw holds (SPEC §13) are **in the draw**: part of
/// [`StockDay::remaining`], but nobody's to book or buy until the draw gives
/// them out, so in neither figure and not in the status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Figures {
    pub reservable: i32,
    pub walk_in: i32,
    pub in_draw: i32,
}

/// The free places of a store-day's windows still taking bookings
/// ([`open_free`]): those anyone may book, and those a draw holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Free {
    pub open: i32,
    pub in_draw: i32,
}

impl Free {
    /// `n` free places of a window that a draw holds (`in_draw`) or not.
    pub fn of(n: i32, in_draw: bool) -> Free {
        if in_draw {
            Free {
                open: 0,
                in_draw: n,
            }
        } else {
            Free {
                open: n,
                in_draw: 0,
            }
        }
    }
}

impl std::ops::AddAssign for Free {
    fn add_assign(&mut self, other: Free) {
        self.open = self.open.saturating_add(other.open);
        self.in_draw = self.in_draw.saturating_add(other.in_draw);
    }
}

impl Figures {
    /// The figures of `day` whose open windows have `free` places free
    /// ([`open_free`]).
    pub fn of(day: &StockDay, free: Free) -> Figures {
        let (reservable, walk_in, in_draw) =
            split_remaining(day.remaining(), free.open, free.in_draw);
        Figures {
            reservable,
            walk_in,
            in_draw,
        }
    }

    /// Everything someone can still get: what the status colour and
    /// `remain_stat` are made of.
    pub fn remaining(&self) -> i32 {
        self.reservable.saturating_add(self.walk_in)
    }

    /// "예약 가능 N · 현장 구매 M", in `t`'s language: the words every page
    /// shows the two figures in (and the places in a draw, while there are).
    pub fn text(&self, t: &Tr) -> String {
        let key = if self.in_draw > 0 {
            "stock.figures_with_draw"
        } else {
            "stock.figures"
        };
        t.fmt(
            key,
            &[
                ("reservable", &self.reservable),
                ("walk_in", &self.walk_in),
                ("in_draw", &self.in_draw),
            ],
        )
    }
}

/// [`open_free`] of one store-day's windows already read, in Rust: the free
/// places of those (each its counters and its end) still taking bookings at
/// `now`, `close_minutes` before their end. The page that has the windows in
/// hand sums them here rather than asking again.
pub fn open_free_of(
    windows: impl IntoIterator<Item = (StockWindow, chrono::NaiveDateTime, bool)>,
    close_minutes: i32,
    now: DateTime<Utc>,
) -> Free {
    let mut free = Free::default();
    for (w, ends_at, in_draw) in windows {
        if rules::booking_open(close_minutes, ends_at, now) {
            free += Free::of(w.remaining(), in_draw);
        }
    }
    free
}

/// Which store-days [`open_free`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Days<'a> {
    /// These store-days.
    Ids(&'a [i64]),
    /// Every store-day of this date.
    On(NaiveDate),
}

/// What is left (`remaining`) as (reservable, walk-in, in a draw): the free
/// places of windows a draw holds (`in_draw`), never more than is left; then
/// the open windows' free places (`open_free`), never more than is left of
/// that; and the rest, the counter's. The rule of [`Figures::of`], also for
/// sums over many store-days.
pub fn split_remaining<N>(remaining: N, open_free: N, in_draw: N) -> (N, N, N)
where
    N: Ord + Copy + Default + std::ops::Sub<Output = N>,
{
    let remaining = remaining.max(N::default());
    let in_draw = in_draw.clamp(N::default(), remaining);
    let left = remaining - in_draw;
    let reservable = open_free.clamp(N::default(), left);
    (reservable, left - reservable, in_draw)
}

/// The free places of the windows that still take bookings at `now`
/// (`close_minutes` before their end, [`rules::booking_open`]), summed by
/// store-day, apart for those a draw holds; a store-day with none is missing
/// from the map. One statement for a date, one per 10,000 store-days for a
/// list.
pub fn open_free(
    conn: &mut DbConnection,
    days: Days<'_>,
    close_minutes: i32,
    now: DateTime<Utc>,
) -> QueryResult<HashMap<i64, Free>> {
    let open_end = rules::earliest_bookable_end(close_minutes, now);
    let rows = |conn: &mut DbConnection, ids: Option<&[i64]>, day: Option<NaiveDate>| {
        let mut q = pickup_windows::table
            .filter(pickup_windows::ends_at.gt(open_end))
            .filter(window_remaining_sql().gt(0))
            .select((
                pickup_windows::store_day_id,
                window_remaining_sql(),
                pickup_windows::draw_id.is_not_null(),
            ))
            .into_boxed();
        if let Some(ids) = ids {
            q = q.filter(pickup_windows::store_day_id.eq_any(ids.to_vec()));
        }
        if let Some(day) = day {
            // By the store-days of the date: windows are indexed by store-day.
            q = q.filter(
                pickup_windows::store_day_id.eq_any(
                    store_days::table
                        .filter(store_days::day.eq(day))
                        .select(store_days::id),
                ),
            );
        }
        q.load::<(i64, i32, bool)>(conn)
    };
    let mut free: HashMap<i64, Free> = HashMap::new();
    let mut add = |found: Vec<(i64, i32, bool)>| {
        for (id, n, in_draw) in found {
            *free.entry(id).or_default() += Free::of(n, in_draw);
        }
    };
    match days {
        Days::On(day) => add(rows(conn, None, Some(day))?),
        Days::Ids(ids) => {
            for chunk in ids.chunks(10_000) {
                add(rows(conn, Some(chunk), None)?);
            }
        }
    }
    Ok(free)
}

/// The moment figures are taken at, with what of the policy they depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub now: DateTime<Utc>,
    /// The service day at `now`.
    pub today: NaiveDate,
    /// The policy's `booking_close_minutes`.
    pub close_minutes: i32,
}

impl At {
    pub fn of(policy: &Policy, now: DateTime<Utc>) -> At {
        At {
            now,
            today: rules::today(policy, now),
            close_minutes: policy.booking_close_minutes,
        }
    }
}

/// The [`Figures`] of each store-day of `days` (its id and counters) at `at`.
pub fn figures_of(
    conn: &mut DbConnection,
    days: &[(i64, StockDay)],
    at: At,
) -> QueryResult<HashMap<i64, Figures>> {
    let ids: Vec<i64> = days.iter().map(|(id, _)| *id).collect();
    let free = open_free(conn, Days::Ids(&ids), at.close_minutes, at.now)?;
    Ok(days
        .iter()
        .map(|(id, day)| {
            (
                *id,
                Figures::of(day, free.get(id).copied().unwrap_or_default()),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(supply: i32, reserved: i32, picked_up: i32, walk_in: i32) -> StockDay {
        StockDay {
            supply,
            reserved,
            picked_up,
            walk_in,
        }
    }

    #[test]
    fn a_store_day_has_its_supply_less_what_is_taken() {
        assert_eq!(day(250, 40, 10, 3).taken(), 53);
        assert_eq!(day(250, 40, 10, 3).remaining(), 197);
        assert_eq!(day(0, 0, 0, 0).remaining(), 0);
        assert_eq!(day(100, 0, 0, 0).remaining(), 100);
        assert_eq!(day(100, 60, 30, 10).remaining(), 0);
    }

    #[test]
    fn a_store_day_never_shows_less_than_nothing() {
        // Not a state the database admits; a page still says 0, not −5.
        assert_eq!(day(10, 10, 3, 2).remaining(), 0);
        assert_eq!(day(i32::MAX, i32::MAX, i32::MAX, i32::MAX).remaining(), 0);
        assert_eq!(day(i32::MAX, 0, 0, 0).remaining(), i32::MAX);
    }

    #[test]
    fn what_is_left_is_either_reservable_now_or_sold_at_the_counter() {
        // 100 supply, 30 reserved, 5 sold: 65 left, of which open windows hold 40.
        let d = day(100, 30, 0, 5);
        let open = |open| Free { open, in_draw: 0 };
        let f = Figures::of(&d, open(40));
        assert_eq!((f.reservable, f.walk_in), (40, 25));
        assert_eq!(f.remaining(), d.remaining());
        // Every window closed: all of it at the counter.
        assert_eq!(Figures::of(&d, open(0)).walk_in, 65);
        // Never more reservable than is left, never negative.
        assert_eq!(
            Figures::of(&d, open(90)),
            Figures {
                reservable: 65,
                walk_in: 0,
                in_draw: 0
            }
        );
        assert_eq!(
            Figures::of(&d, open(-3)),
            Figures {
                reservable: 0,
                walk_in: 65,
                in_draw: 0
            }
        );
    }

    #[test]
    fn the_places_a_draw_holds_are_in_the_draw_and_nobody_can_get_them_yet() {
        // 65 left: windows hold 20 free places anyone may book and 30 a draw
        // holds; the counter has the other 15.
        let d = day(100, 30, 0, 5);
        let f = Figures::of(
            &d,
            Free {
                open: 20,
                in_draw: 30,
            },
        );
        assert_eq!((f.reservable, f.walk_in, f.in_draw), (20, 15, 30));
        assert_eq!(f.remaining(), 35, "what someone can get now");
        // Never more in the draw than is left.
        let f = Figures::of(
            &d,
            Free {
                open: 0,
                in_draw: 90,
            },
        );
        assert_eq!((f.reservable, f.walk_in, f.in_draw), (0, 0, 65));
        let mut sum = Free::default();
        sum += Free {
            open: 1,
            in_draw: 2,
        };
        sum += Free {
            open: 3,
            in_draw: 4,
        };
        assert_eq!(
            sum,
            Free {
                open: 4,
                in_draw: 6
            }
        );
    }

    #[test]
    fn a_window_has_its_capacity_less_what_is_reserved_or_handed_over() {
        let w = |capacity, reserved, picked_up| StockWindow {
            capacity,
            reserved,
            picked_up,
        };
        assert_eq!(w(40, 12, 3).remaining(), 25);
        assert_eq!(w(40, 0, 0).remaining(), 40);
        assert_eq!(w(40, 30, 10).remaining(), 0);
        assert_eq!(w(5, 4, 3).remaining(), 0);
    }
}
