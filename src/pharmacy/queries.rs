//! What a pharmacist sees of their own store: its stock on a day.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, store_days, stores};
use crate::stock::{StockWindow, walk_in_left};

pub struct WindowStock {
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
}

impl WindowStock {
    pub fn remaining(&self) -> i32 {
        StockWindow {
            capacity: self.capacity,
            reserved: self.reserved,
            picked_up: self.picked_up,
        }
        .remaining()
    }
}

pub struct DayStock {
    pub supply: i32,
    pub walk_in_sold: i32,
    /// What the windows do not hold, less what walk-in customers bought.
    pub walk_in_left: i32,
    pub windows: Vec<WindowStock>,
}

pub struct StoreDay {
    pub name: String,
    pub code: String,
    /// `None` when the store has no supply that day.
    pub stock: Option<DayStock>,
}

/// The store's name and code and its stock on `day`, windows in time order.
pub fn store_day(conn: &mut DbConnection, store_id: i64, day: NaiveDate) -> QueryResult<StoreDay> {
    let (name, code): (String, String) = stores::table
        .find(store_id)
        .select((stores::name, stores::code))
        .first(conn)?;
    let totals: Option<(i32, i32, i32)> = store_days::table
        .filter(store_days::store_id.eq(store_id))
        .filter(store_days::day.eq(day))
        .select((
            store_days::supply,
            store_days::window_capacity,
            store_days::walk_in,
        ))
        .first(conn)
        .optional()?;
    let Some((supply, window_capacity, walk_in)) = totals else {
        return Ok(StoreDay {
            name,
            code,
            stock: None,
        });
    };
    let windows = pickup_windows::table
        .filter(pickup_windows::store_id.eq(store_id))
        .filter(pickup_windows::day.eq(day))
        .order(pickup_windows::starts_at)
        .select((
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            pickup_windows::capacity,
            pickup_windows::reserved,
            pickup_windows::picked_up,
        ))
        .load::<(NaiveDateTime, NaiveDateTime, i32, i32, i32)>(conn)?
        .into_iter()
        .map(
            |(starts_at, ends_at, capacity, reserved, picked_up)| WindowStock {
                starts_at,
                ends_at,
                capacity,
                reserved,
                picked_up,
            },
        )
        .collect();
    Ok(StoreDay {
        name,
        code,
        stock: Some(DayStock {
            supply,
            walk_in_sold: walk_in,
            walk_in_left: walk_in_left(supply, window_capacity, walk_in),
            windows,
        }),
    })
}
