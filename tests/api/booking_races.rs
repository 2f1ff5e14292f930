//! Booking under real concurrency, over HTTP: many citizens racing for one
//! window, one citizen racing against their own quota, and on PostgreSQL the
//! same races split across two app instances on one database. Each ends with
//! the invariant check.

use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::Role;
use mask_reservation::accounts::national_id::NationalId;
use mask_reservation::accounts::password::{NewPassword, hash};
use mask_reservation::accounts::queries::{NewUser, find_or_insert_person, insert_user};
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{pickup_windows, quota_usage, reservations};
use mask_reservation::db::{Backend, Db, write_tx};

use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, extract_csrf, fixtures, spawn_app_with,
};
use crate::reservations::{seoul, tuesday};

async fn app_at_eight(database: Option<std::sync::Arc<crate::common::TestDatabase>>) -> TestApp {
    spawn_app_with(Spawn {
        database,
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        ..Spawn::default()
    })
    .await
}

/// `n` verified citizens written in one transaction with one password hash
/// (hashing 200 times would take longer than the race); their e-mails.
fn citizens(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let password_hash = hash(&NewPassword::parse(fixtures::PASSWORD).unwrap()).unwrap();
    let key = app.state.keys.national_id.clone();
    let today = chrono::Utc::now().date_naive();
    let emails: Vec<String> = (0..n).map(|i| format!("{prefix}{i}@example.com")).collect();
    let ids: Vec<NationalId> = (0..n)
        .map(|_| NationalId::parse(&fixtures::unique_national_id(), today).unwrap())
        .collect();
    let mut conn = app.db.get().unwrap();
    write_tx(&mut conn, |tx| {
        for (email, id) in emails.iter().zip(&ids) {
            let person =
                find_or_insert_person(tx, &id.keyed_hash(&key), id.birth_date(), &id.masked())?;
            insert_user(
                tx,
                &NewUser {
                    role: Role::Citizen,
                    email,
                    name: "시민",
                    password_hash: &password_hash,
                    person_id: Some(person),
                    store_id: None,
                    email_verified: true,
                },
            )?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
    emails
}

/// Logs each e-mail in on `app` (a few at a time: each login checks a
/// password hash), with the CSRF token its posts will carry.
async fn log_in_all(app: &TestApp, emails: &[String]) -> Vec<(Visitor, String)> {
    let mut out = Vec::new();
    for chunk in emails.chunks(8) {
        let logins = chunk.iter().map(|email| async move {
            let v = app.new_visitor();
            let res = v.login(email, fixtures::PASSWORD).await;
            assert_eq!(res.status(), 303, "{email} logs in");
            let token = extract_csrf(&v.html("/").await).unwrap();
            (v, token)
        });
        out.extend(join_all(logins).await);
    }
    out
}

/// Posts one reservation per visitor, all at once; how many were booked. Any
/// answer but a booking (303) or a refusal (409) fails the test.
async fn race(visitors: &[(Visitor, String)], window: i64, quantity: &str) -> usize {
    let window = window.to_string();
    let posts = visitors.iter().enumerate().map(|(i, (v, token))| {
        let window = window.clone();
        let request_id = format!("race-{i}");
        async move {
            let res = v
                .post_form_raw(
                    "/reservations",
                    &[
                        ("window_id", &window),
                        ("quantity", quantity),
                        ("request_id", &request_id),
                        ("csrf_token", token),
                    ],
                )
                .await;
            let status = res.status().as_u16();
            assert!(status == 303 || status == 409, "answered {status}");
            status == 303
        }
    });
    join_all(posts).await.into_iter().filter(|ok| *ok).count()
}

fn window_reserved(db: &Db, window: i64) -> i32 {
    pickup_windows::table
        .find(window)
        .select(pickup_windows::reserved)
        .first(&mut db.get().unwrap())
        .unwrap()
}

fn max_used(db: &Db) -> i32 {
    quota_usage::table
        .select(diesel::dsl::max(quota_usage::used))
        .first::<Option<i32>>(&mut db.get().unwrap())
        .unwrap()
        .unwrap_or(0)
}

fn active_reservations(db: &Db) -> i64 {
    reservations::table
        .filter(reservations::status.eq("active"))
        .count()
        .get_result(&mut db.get().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_citizens_racing_for_fifty_places_book_exactly_fifty() {
    let app = app_at_eight(None).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    // 150 over three windows: 50 each.
    let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), 150);
    let emails = citizens(&app, "racer", 200);
    let visitors = log_in_all(&app, &emails).await;
    let booked = race(&visitors, windows[0], "1").await;
    assert_eq!(booked, 50);
    assert_eq!(window_reserved(&app.db, windows[0]), 50);
    assert_eq!(active_reservations(&app.db), 50);
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_citizen_sending_twenty_reservations_at_once_gets_no_more_than_the_quota() {
    let app = app_at_eight(None).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), 150);
    let emails = citizens(&app, "eager", 1);
    let (v, token) = log_in_all(&app, &emails).await.remove(0);
    let same: Vec<(Visitor, String)> = (0..20).map(|_| (v.clone(), token.clone())).collect();
    let booked = race(&same, windows[1], "1").await;
    assert_eq!(booked, 2);
    assert_eq!(max_used(&app.db), 2);
    assert_eq!(window_reserved(&app.db, windows[1]), 2);
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_database_keep_both_limits() {
    let first = app_at_eight(None).await;
    if first.backend() != Backend::Postgres {
        // Several instances share a database only on PostgreSQL.
        return;
    }
    let second = app_at_eight(Some(first.database.clone())).await;
    let store = fixtures::store(&first.db, "11800001", "중앙약국");
    let windows = fixtures::supply_in_windows(&first.db, store, tuesday(), 150);

    // (a) 200 citizens, half on each instance, for 50 places.
    let emails = citizens(&first, "racer", 200);
    let (left, right) = emails.split_at(100);
    let mut visitors = log_in_all(&first, left).await;
    visitors.extend(log_in_all(&second, right).await);
    let booked = race(&visitors, windows[0], "1").await;
    assert_eq!(booked, 50);
    assert_eq!(window_reserved(&first.db, windows[0]), 50);

    // (b) one citizen, logged in on both, 20 posts split across them.
    let one = citizens(&first, "eager", 1);
    let (a, ta) = log_in_all(&first, &one).await.remove(0);
    let (b, tb) = log_in_all(&second, &one).await.remove(0);
    let split: Vec<(Visitor, String)> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                (a.clone(), ta.clone())
            } else {
                (b.clone(), tb.clone())
            }
        })
        .collect();
    let booked = race(&split, windows[1], "1").await;
    assert_eq!(booked, 2);
    assert_eq!(max_used(&first.db), 2);
    assert_invariants(&first.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_form_sent_ten_times_at_once_books_once_and_answers_it_each_time() {
    the_same_form_ten_times(1).await;
}

/// A double click on a form asking for the whole quota: every post after the
/// first waits on the quota row the first took, then finds it used up — and
/// still answers the first reservation, not "quota exceeded".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_form_for_the_whole_quota_sent_ten_times_at_once_answers_the_one_reservation() {
    the_same_form_ten_times(2).await;
}

async fn the_same_form_ten_times(quantity: i32) {
    let app = app_at_eight(None).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), 150);
    let emails = citizens(&app, "double", 1);
    let (v, token) = log_in_all(&app, &emails).await.remove(0);
    let (window, quantity_text) = (windows[0].to_string(), quantity.to_string());
    let posts = (0..10).map(|_| {
        let (v, token) = (v.clone(), token.clone());
        let (window, quantity_text) = (window.clone(), quantity_text.clone());
        async move {
            let res = v
                .post_form_raw(
                    "/reservations",
                    &[
                        ("window_id", window.as_str()),
                        ("quantity", quantity_text.as_str()),
                        ("request_id", "one-form"),
                        ("csrf_token", token.as_str()),
                    ],
                )
                .await;
            assert_eq!(res.status(), 303);
            res.headers()["location"].to_str().unwrap().to_owned()
        }
    });
    let locations = join_all(posts).await;
    assert!(
        locations.iter().all(|l| *l == locations[0]),
        "{locations:?}"
    );
    assert_eq!(active_reservations(&app.db), 1);
    assert_eq!(window_reserved(&app.db, windows[0]), quantity);
    assert_eq!(max_used(&app.db), quantity);
    assert_invariants(&app.db);
}
