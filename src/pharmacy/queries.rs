//! What a pharmacist sees of their own store: its stock on a day.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, store_days, stores};
use crate::reservations::rules;
use crate::stock::{self, At, Figures, StockDay, StockWindow};

pub struct WindowStock {
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
    /// Still taking bookings; after that, what it does not hold is the
    /// counter's.
    pub booking_open: bool,
    /// Held by a draw whose results are not out yet (SPEC §13): its free
    /// places are nobody's to book or buy until then.
    pub in_draw: bool,
}

impl WindowStock {
    fn stock(&self) -> StockWindow {
        StockWindow {
            capacity: self.capacity,
            reserved: self.reserved,
            picked_up: self.picked_up,
        }
    }

    pub fn remaining(&self) -> i32 {
        self.stock().remaining()
    }
}

pub struct DayStock {
    pub supply: i32,
    pub walk_in_sold: i32,
    /// What is left to book now and to sell at the counter now
    /// ([`Figures`]): the counter's includes the places of windows whose
    /// booking has closed.
    pub figures: Figures,
    pub windows: Vec<WindowStock>,
}

pub struct StoreDay {
    pub name: String,
    pub code: String,
    /// `None` when the store has no supply that day.
    pub stock: Option<DayStock>,
}

/// The store's name and code and its stock today (of `at`), windows in time
/// order.
pub fn store_day(conn: &mut DbConnection, store_id: i64, at: At) -> QueryResult<StoreDay> {
    let day: NaiveDate = at.today;
    let (name, code): (String, String) = stores::table
        .find(store_id)
        .select((stores::name, stores::code))
        .first(conn)?;
    let totals: Option<(i32, i32, i32, i32)> = store_days::table
        .filter(store_days::store_id.eq(store_id))
        .filter(store_days::day.eq(day))
        .select((
            store_days::supply,
            store_days::reserved,
            store_days::picked_up,
            store_days::walk_in,
        ))
        .first(conn)
        .optional()?;
    let Some((supply, reserved, picked_up, walk_in)) = totals else {
        return Ok(StoreDay {
            name,
            code,
            stock: None,
        });
    };
    let windows: Vec<WindowStock> = pickup_windows::table
        .filter(pickup_windows::store_id.eq(store_id))
        .filter(pickup_windows::day.eq(day))
        .order(pickup_windows::starts_at)
        .select((
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            pickup_windows::capacity,
            pickup_windows::reserved,
            pickup_windows::picked_up,
            pickup_windows::draw_id.is_not_null(),
        ))
        .load::<(NaiveDateTime, NaiveDateTime, i32, i32, i32, bool)>(conn)?
        .into_iter()
        .map(
            |(starts_at, ends_at, capacity, reserved, picked_up, in_draw)| WindowStock {
                starts_at,
                ends_at,
                capacity,
                reserved,
                picked_up,
                booking_open: rules::booking_open(at.close_minutes, ends_at, at.now),
                in_draw,
            },
        )
        .collect();
    // A draw over today's own windows holds them until its results, which
    // come before the first of them starts.
    let open_free = stock::open_free_of(
        windows.iter().map(|w| (w.stock(), w.ends_at, w.in_draw)),
        at.close_minutes,
        at.now,
    );
    let stock = StockDay {
        supply,
        reserved,
        picked_up,
        walk_in,
    };
    Ok(StoreDay {
        name,
        code,
        stock: Some(DayStock {
            supply,
            walk_in_sold: walk_in,
            figures: Figures::of(&stock, open_free),
            windows,
        }),
    })
}
