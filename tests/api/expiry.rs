//! No-show expiry: a reservation not picked up by its window's end plus the
//! grace expires, once, and gives its masks to the store-day's walk-in stock
//! and its quota back to its person — from the job, the command line, or
//! several instances at once.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{
    pickup_windows, quota_usage, reservations, stock_ledger, store_days,
};
use mask_reservation::db::write_tx;
use mask_reservation::policy::Policy;
use mask_reservation::reservations::expiry::{expire_all, expire_due};

use crate::common::server::Binary;
use crate::common::{
    Spawn, TestApp, assert_invariants, eventually, fixtures, spawn_app, spawn_app_with,
};
use crate::reservations::{seoul, tuesday};

/// A new verified citizen.
pub fn citizen(app: &TestApp, email: &str) -> i64 {
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, email, None, true, &key)
}

fn today(app: &TestApp) -> NaiveDate {
    app.today()
}

fn window_end(app: &TestApp, window: i64) -> DateTime<Utc> {
    let end: chrono::NaiveDateTime = pickup_windows::table
        .find(window)
        .select(pickup_windows::ends_at)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    end.and_utc()
}

fn status(app: &TestApp, reservation: i64) -> String {
    reservations::table
        .find(reservation)
        .select(reservations::status)
        .first(&mut app.db.get().unwrap())
        .unwrap()
}

/// (capacity, reserved) of a window.
fn window(app: &TestApp, id: i64) -> (i32, i32) {
    pickup_windows::table
        .find(id)
        .select((pickup_windows::capacity, pickup_windows::reserved))
        .first(&mut app.db.get().unwrap())
        .unwrap()
}

/// (window_capacity, reserved, no_show) of a window's store-day.
fn store_day_of(app: &TestApp, window: i64) -> (i32, i32, i32) {
    let mut conn = app.db.get().unwrap();
    let day: i64 = pickup_windows::table
        .find(window)
        .select(pickup_windows::store_day_id)
        .first(&mut conn)
        .unwrap();
    store_days::table
        .find(day)
        .select((
            store_days::window_capacity,
            store_days::reserved,
            store_days::no_show,
        ))
        .first(&mut conn)
        .unwrap()
}

fn quota_used(app: &TestApp) -> i64 {
    let used: Vec<i32> = quota_usage::table
        .select(quota_usage::used)
        .load(&mut app.db.get().unwrap())
        .unwrap();
    used.into_iter().map(i64::from).sum()
}

async fn expire(app: &TestApp, now: DateTime<Utc>, grace: i32) -> usize {
    app.db
        .write(move |tx| expire_due(tx, now, grace))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_no_show_expires_after_the_grace_and_gives_back_its_stock_and_quota() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let day = today(&app) - TimeDelta::days(1);
    let windows = fixtures::supply(&app.db, store, day, 100);
    let (first, second) = (windows[0], windows[1]);
    let user = citizen(&app, "late@example.com");
    let late = fixtures::reservation(&app.db, first, user, 2);
    let (capacity, _) = window(&app, first);
    let end = window_end(&app, first);

    // Until the grace is over the reservation stands: pickup is still accepted.
    assert_eq!(expire(&app, end, 30).await, 0);
    assert_eq!(expire(&app, end + TimeDelta::minutes(30), 30).await, 0);
    assert_eq!(status(&app, late), "active");

    let now = end + TimeDelta::minutes(31);
    assert_eq!(expire(&app, now, 30).await, 1);
    assert_eq!(status(&app, late), "expired");
    let expired_at: Option<chrono::NaiveDateTime> = reservations::table
        .find(late)
        .select(reservations::expired_at)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert!(expired_at.is_some());
    // The masks leave the window for the store-day's walk-in stock.
    assert_eq!(window(&app, first), (capacity - 2, 0));
    // 70 of the 100 were in the windows (the walk-in share kept 30 out).
    assert_eq!(store_day_of(&app, first), (70 - 2, 0, 2));
    assert_eq!(quota_used(&app), 0, "the quota comes back");
    let ledger: Vec<(String, i32, i32, Option<i64>)> = stock_ledger::table
        .filter(stock_ledger::kind.eq("expiry"))
        .select((
            stock_ledger::kind,
            stock_ledger::reserved_delta,
            stock_ledger::capacity_delta,
            stock_ledger::reservation_id,
        ))
        .load(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(ledger, [("expiry".to_owned(), -2, -2, Some(late))]);
    assert_invariants(&app.db);

    // A second run has nothing left to do.
    assert_eq!(expire(&app, now + TimeDelta::hours(1), 30).await, 0);
    assert_eq!(store_day_of(&app, first), (68, 0, 2));
    assert_eq!(window(&app, second).1, 0);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn only_active_reservations_whose_grace_is_over_expire() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let day = today(&app) - TimeDelta::days(1);
    let windows = fixtures::supply(&app.db, store, day, 90);
    let early = fixtures::reservation(&app.db, windows[0], citizen(&app, "a@example.com"), 1);
    let later = fixtures::reservation(&app.db, windows[2], citizen(&app, "b@example.com"), 1);
    // Just after the first window's grace, the last window has not even ended.
    let now = window_end(&app, windows[0]) + TimeDelta::minutes(31);
    assert_eq!(expire(&app, now, 30).await, 1);
    assert_eq!(status(&app, early), "expired");
    assert_eq!(status(&app, later), "active");
    // A longer grace from the policy keeps the same reservation longer.
    let now = window_end(&app, windows[2]) + TimeDelta::minutes(31);
    assert_eq!(expire(&app, now, 45).await, 0);
    assert_eq!(expire(&app, now, 30).await, 1);
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_expiring_at_once_expire_each_reservation_once() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let other = fixtures::busan_store(&app.db);
    let day = today(&app) - TimeDelta::days(2);
    let mut ids = Vec::new();
    for (s, store) in [store, other].into_iter().enumerate() {
        let windows = fixtures::supply(&app.db, store, day, 300);
        for n in 0..12 {
            let user = citizen(&app, &format!("c{s}-{n}@example.com"));
            ids.push(fixtures::reservation(
                &app.db,
                windows[n % 3],
                user,
                1 + (n % 2) as i32,
            ));
        }
    }
    let now = app.state.clock.now();
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let db = app.db.clone();
            tokio::spawn(async move { expire_all(&db, now, 30).await.unwrap() })
        })
        .collect();
    let mut total = 0;
    for run in runs {
        total += run.await.unwrap();
    }
    assert_eq!(
        total,
        ids.len(),
        "each reservation counted by exactly one run"
    );
    for id in &ids {
        assert_eq!(status(&app, *id), "expired");
        let rows: i64 = stock_ledger::table
            .filter(stock_ledger::reservation_id.eq(*id))
            .filter(stock_ledger::kind.eq("expiry"))
            .count()
            .get_result(&mut app.db.get().unwrap())
            .unwrap();
        assert_eq!(rows, 1, "reservation {id} expired once");
    }
    assert_eq!(quota_used(&app), 0);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_server_expires_no_shows_in_the_background() {
    let app = spawn_app_with(Spawn {
        jobs_every: Some(Duration::from_millis(100)),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, today(&app) - TimeDelta::days(1), 30);
    let id = fixtures::reservation(&app.db, windows[0], citizen(&app, "x@example.com"), 2);
    eventually(Duration::from_secs(10), "the background expiry", || async {
        (status(&app, id) == "expired").then_some(())
    })
    .await;
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_expire_command_expires_what_is_due_and_says_how_many() {
    // The command runs as its own process, on the machine's clock: the days
    // are set around the machine's today (yesterday, tomorrow), whatever the
    // hour, so the outcome does not depend on when it runs.
    let app = spawn_app().await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let past = fixtures::supply(&app.db, store, today(&app) - TimeDelta::days(1), 30);
    let future = fixtures::supply(&app.db, store, today(&app) + TimeDelta::days(1), 30);
    let due = fixtures::reservation(&app.db, past[1], citizen(&app, "a@example.com"), 1);
    let also_due = fixtures::reservation(&app.db, past[2], citizen(&app, "b@example.com"), 2);
    let not_yet = fixtures::reservation(&app.db, future[0], citizen(&app, "c@example.com"), 1);

    let binary = Binary::new(&app.database.url());
    let run = || binary.command(&["expire"]).output().unwrap();
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 reservation(s) expired"), "{stdout}");
    // Yesterday's windows (7 each from 30) are closed: their unbooked places
    // go to the counter (7 + 6 + 5: the no-shows' masks went with expiry).
    assert!(
        stdout.contains("18 unbooked place(s) released to the counter"),
        "{stdout}"
    );
    assert_eq!(status(&app, due), "expired");
    assert_eq!(status(&app, also_due), "expired");
    assert_eq!(status(&app, not_yet), "active");
    let again = run();
    let again = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.contains("0 reservation(s) expired"), "{again}");
    assert!(again.contains("0 unbooked place(s) released"), "{again}");
    assert_invariants(&app.db);
}

/// A citizen cancelling while the expiry job settles the same reservations:
/// the clocks are set so that both would be allowed on their own, and each
/// reservation ends either cancelled or expired — one ledger row, its stock
/// and quota given back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_expiry_of_the_same_reservation_settles_it_once() {
    use mask_reservation::i18n::{Catalog, Lang, Tr};
    use mask_reservation::reservations::cancel::cancel;

    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let tomorrow = today(&app) + TimeDelta::days(1);
    let windows = fixtures::supply(&app.db, store, tomorrow, 300);
    let mut booked = Vec::new();
    for n in 0..16 {
        let user = citizen(&app, &format!("c{n}@example.com"));
        booked.push((user, fixtures::reservation(&app.db, windows[0], user, 1)));
    }
    // Cancelling is judged now, well before the cut-off; expiry an hour after
    // the window's end, well past the grace.
    let expiry_now = window_end(&app, windows[0]) + TimeDelta::hours(1);
    let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
    let t = Tr::new(Catalog::fallback(), Lang::Ko);
    let cancel_now = app.state.clock.now();
    let mut tasks = Vec::new();
    for (user, id) in booked.clone() {
        let (db, policy, t) = (app.db.clone(), policy.clone(), t.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut conn = db.get().unwrap();
            let cancelled = write_tx(&mut conn, |tx| {
                cancel(tx, user, id, cancel_now, &policy, &t, "http://localhost")
            });
            usize::from(cancelled.is_ok())
        }));
        let db = app.db.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut conn = db.get().unwrap();
            write_tx(&mut conn, |tx| expire_due(tx, expiry_now, 30)).unwrap()
        }));
    }
    let mut settled = 0;
    for task in tasks {
        settled += task.await.unwrap();
    }
    assert_eq!(
        settled,
        booked.len(),
        "each reservation settled exactly once"
    );
    for (_, id) in &booked {
        let state = status(&app, *id);
        assert!(state == "cancelled" || state == "expired", "{id}: {state}");
        let rows: i64 = stock_ledger::table
            .filter(stock_ledger::reservation_id.eq(*id))
            .filter(stock_ledger::kind.eq_any(["cancel", "expiry"]))
            .count()
            .get_result(&mut app.db.get().unwrap())
            .unwrap();
        assert_eq!(rows, 1, "reservation {id} has one settling ledger row");
    }
    assert_eq!(quota_used(&app), 0);
    assert_eq!(window(&app, windows[0]).1, 0, "nothing reserved any more");
    assert_invariants(&app.db);
}
