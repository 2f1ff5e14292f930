//! What is left of a store-day's supply and of a pickup window's capacity
//! (SPEC §6): the one place these numbers are computed. Every page, export
//! and job that shows a "remaining" takes it from [`StockDay::remaining`] or
//! [`StockWindow::remaining`]; a query that needs the number inside SQL (a sum
//! over many store-days, a filter on windows with room) takes the same
//! formula as a diesel expression from [`day_remaining_sql`] or
//! [`window_remaining_sql`], written beside the Rust one.
//!
//! Here rather than in one feature: the store page, the search, the open
//! data, the administrator's overview and supply pages and the pharmacist's
//! day all show these figures.

use crate::db::schema::{pickup_windows, store_days};

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

/// Walk-in stock a store-day still has: its supply less what the pickup
/// windows hold (`window_capacity`) and what the counter has sold. Never
/// negative, as [`walk_in_left_sql`] is kept by the CHECK `window_capacity +
/// walk_in <= supply`.
pub fn walk_in_left(supply: i32, window_capacity: i32, walk_in: i32) -> i32 {
    supply
        .saturating_sub(window_capacity.saturating_add(walk_in))
        .max(0)
}

/// [`walk_in_left`] of a `store_days` row, in SQL: what a sale may take.
#[diesel::dsl::auto_type]
pub fn walk_in_left_sql() -> _ {
    store_days::supply - store_days::window_capacity - store_days::walk_in
}

/// [`StockWindow::remaining`] of a `pickup_windows` row, in SQL.
#[diesel::dsl::auto_type]
pub fn window_remaining_sql() -> _ {
    pickup_windows::capacity - pickup_windows::reserved - pickup_windows::picked_up
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
    fn walk_in_stock_is_the_supply_the_windows_do_not_hold_less_what_was_sold() {
        assert_eq!(walk_in_left(100, 70, 0), 30);
        assert_eq!(walk_in_left(100, 70, 12), 18);
        assert_eq!(walk_in_left(100, 100, 0), 0);
        assert_eq!(walk_in_left(100, 95, 10), 0, "never less than nothing");
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
