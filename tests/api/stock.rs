//! What is left of a store-day and of a window, in its two forms: in Rust
//! (`StockDay::remaining`, `StockWindow::remaining`) and in SQL
//! (`day_remaining_sql`, `window_remaining_sql`). Both read the same rows on
//! the test's backend and agree, and the administrator's supply page, which
//! sums the SQL form, adds up what each store's row shows.

use chrono::Duration;
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{pickup_windows, store_days, stores};
use mask_reservation::stock::{
    StockDay, StockWindow, day_remaining_sql, day_taken_sql, window_remaining_sql,
};

use crate::common::{Spawn, TestApp, attr_values, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

/// Supply, then what the counters are set to: window capacity, reserved,
/// picked up, walk-in — each within the table's CHECKs.
const DAYS: [(i32, [i32; 4]); 4] = [
    (300, [300, 0, 0, 0]),
    (300, [250, 120, 30, 50]),
    (7, [5, 3, 2, 2]),
    (1000, [0, 0, 0, 1000]),
];

/// Four stores with supply on Wednesday and the counters of [`DAYS`]; each
/// store's first window half reserved and a quarter handed over.
async fn scene() -> (TestApp, chrono::NaiveDate) {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 9, 0))).await;
    let day = tuesday() + Duration::days(1);
    for (i, (supply, [capacity, reserved, picked_up, walk_in])) in DAYS.into_iter().enumerate() {
        let store = fixtures::store(&app.db, &format!("1180000{}", i + 1), "중앙약국");
        let windows = fixtures::supply(&app.db, store, day, supply);
        let mut conn = app.db.get().unwrap();
        diesel::update(
            store_days::table
                .filter(store_days::store_id.eq(store))
                .filter(store_days::day.eq(day)),
        )
        .set((
            store_days::window_capacity.eq(capacity),
            store_days::reserved.eq(reserved),
            store_days::picked_up.eq(picked_up),
            store_days::walk_in.eq(walk_in),
        ))
        .execute(&mut conn)
        .unwrap();
        diesel::update(pickup_windows::table.find(windows[0]))
            .set((
                pickup_windows::reserved.eq(pickup_windows::capacity / 2),
                pickup_windows::picked_up.eq(pickup_windows::capacity / 4),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    (app, day)
}

#[tokio::test]
async fn remaining_in_sql_is_remaining_in_rust_on_every_row() {
    let (app, _) = scene().await;
    let mut conn = app.db.get().unwrap();

    let days: Vec<(StockDay, i32, i32)> = store_days::table
        .order(store_days::id)
        .select((
            store_days::supply,
            store_days::reserved,
            store_days::picked_up,
            store_days::walk_in,
            day_remaining_sql(),
            day_taken_sql(),
        ))
        .load::<(i32, i32, i32, i32, i32, i32)>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(supply, reserved, picked_up, walk_in, remaining, taken)| {
            let stock = StockDay {
                supply,
                reserved,
                picked_up,
                walk_in,
            };
            (stock, remaining, taken)
        })
        .collect();
    assert_eq!(days.len(), DAYS.len());
    for (stock, remaining, taken) in &days {
        assert_eq!(stock.remaining(), *remaining, "{stock:?}");
        assert_eq!(stock.taken(), *taken, "{stock:?}");
    }
    let left: Vec<i32> = days.iter().map(|d| d.1).collect();
    assert_eq!(left, [300, 100, 0, 0]);

    let windows: Vec<(StockWindow, i32)> = pickup_windows::table
        .order(pickup_windows::id)
        .select((
            pickup_windows::capacity,
            pickup_windows::reserved,
            pickup_windows::picked_up,
            window_remaining_sql(),
        ))
        .load::<(i32, i32, i32, i32)>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(capacity, reserved, picked_up, remaining)| {
            let stock = StockWindow {
                capacity,
                reserved,
                picked_up,
            };
            (stock, remaining)
        })
        .collect();
    assert!(windows.len() >= DAYS.len());
    assert!(
        windows
            .iter()
            .any(|(w, _)| w.reserved > 0 && w.picked_up > 0)
    );
    for (stock, remaining) in &windows {
        assert_eq!(stock.remaining(), *remaining, "{stock:?}");
    }
}

#[tokio::test]
async fn the_supply_page_total_is_the_sum_of_what_each_store_has_left() {
    let (app, day) = scene().await;
    let per_store: Vec<(String, i32)> = {
        let mut conn = app.db.get().unwrap();
        store_days::table
            .inner_join(stores::table)
            .filter(store_days::day.eq(day))
            .order(stores::code)
            .select((
                stores::code,
                store_days::supply,
                store_days::reserved,
                store_days::picked_up,
                store_days::walk_in,
            ))
            .load::<(String, i32, i32, i32, i32)>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|(code, supply, reserved, picked_up, walk_in)| {
                let stock = StockDay {
                    supply,
                    reserved,
                    picked_up,
                    walk_in,
                };
                (code, stock.remaining())
            })
            .collect()
    };
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let html = admin.html(&format!("/admin/supply?date={day}")).await;

    let shown: Vec<String> = attr_values(&html, "data-remaining");
    let expected: Vec<String> = per_store.iter().map(|(_, n)| n.to_string()).collect();
    assert_eq!(shown, expected, "{html}");
    let total: i32 = per_store.iter().map(|(_, n)| n).sum();
    assert_eq!(
        attr_values(&html, "data-total-remaining"),
        [total.to_string()],
        "{html}"
    );
}
