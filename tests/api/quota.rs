//! The quota counter on both backends: a take within the quota passes, one
//! beyond it says what is left, giving back frees it, and concurrent takes by
//! one person never pass the quota together.

use std::sync::Arc;

use chrono::NaiveDate;
use diesel::prelude::*;
use mask_reservation::accounts::queries::find_or_insert_person;
use mask_reservation::db::schema::quota_usage;
use mask_reservation::db::{Db, write_tx};
use mask_reservation::quantity::Quantity;
use mask_reservation::quota::{self, QuotaExceeded};

use crate::common::spawn_app;

fn person(db: &Db) -> i64 {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| {
        find_or_insert_person(tx, &"ab".repeat(32), day(1), "850101-1******")
    })
    .unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn q(n: i32) -> Quantity {
    Quantity::new(n).unwrap()
}

fn take(db: &Db, person: i64, quantity: i32) -> Result<(), QuotaExceeded> {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| {
        quota::take(tx, person, day(23), q(quantity), 2)
    })
    .unwrap()
}

fn used(db: &Db, person: i64) -> i32 {
    quota_usage::table
        .find((person, day(23)))
        .select(quota_usage::used)
        .first(&mut db.get().unwrap())
        .unwrap()
}

#[tokio::test]
async fn takes_pass_within_the_quota_and_say_what_is_left_beyond_it() {
    let app = spawn_app().await;
    let p = person(&app.db);
    assert_eq!(take(&app.db, p, 3), Err(QuotaExceeded { left: 2 }));
    assert_eq!(take(&app.db, p, 1), Ok(()));
    assert_eq!(take(&app.db, p, 2), Err(QuotaExceeded { left: 1 }));
    assert_eq!(take(&app.db, p, 1), Ok(()));
    assert_eq!(take(&app.db, p, 1), Err(QuotaExceeded { left: 0 }));
    assert_eq!(used(&app.db, p), 2);

    let mut conn = app.db.get().unwrap();
    let gave = write_tx(&mut conn, |tx| {
        quota::give_back(tx, p, day(23), Quantity::ONE)
    })
    .unwrap();
    assert!(gave);
    assert_eq!(used(&app.db, p), 1);
    // More than was used: refused, nothing changed.
    let gave = write_tx(&mut conn, |tx| quota::give_back(tx, p, day(23), q(5))).unwrap();
    assert!(!gave);
    assert_eq!(used(&app.db, p), 1);
    // Another period starts from nothing.
    let other = write_tx(&mut conn, |tx| quota::take(tx, p, day(30), q(2), 2)).unwrap();
    assert_eq!(other, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_takes_by_one_person_never_pass_the_quota_together() {
    let app = spawn_app().await;
    let p = person(&app.db);
    let db = Arc::new(app.db.clone());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let db = db.clone();
            tokio::task::spawn_blocking(move || take(&db, p, 1))
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 2);
    assert_eq!(used(&app.db, p), 2);
}
