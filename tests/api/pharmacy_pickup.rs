//! Handing over at the pickup counter over HTTP on both backends: a scanned
//! code looked up and confirmed, counters and ledger, "came early", confirm on
//! scan, every refusal with its words, bad input, a pharmacist disabled
//! mid-shift, ten confirmations of one code at once (on PostgreSQL across
//! two app instances) handing over once, and the per-pharmacist limit of
//! look-ups that keeps codes from being guessed.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{pickup_windows, reservations, stock_ledger, store_days, users};
use mask_reservation::db::{Backend, Db, write_tx};
use mask_reservation::rate_limit::RateLimits;
use mask_reservation::reservations::expiry::expire_due;
use mask_reservation::supply::changes::set_window_capacity;

use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, extract_csrf, fixtures, generous_limits,
    retry_after, spawn_app_with,
};
use crate::reservations::{seoul, tuesday};

pub const STORE: &str = "11800001";
pub const OTHER_STORE: &str = "11800002";

/// The app at 08:00 on Tuesday; a store with `supply` that day of which
/// `walk_in` is left out of the windows; a logged-in pharmacist of it.
pub struct Counter {
    pub app: TestApp,
    pub store: i64,
    pub windows: Vec<i64>,
    pub pharmacist: Visitor,
    pub pharmacist_id: i64,
}

pub async fn counter(supply: i32, walk_in: i32) -> Counter {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        ..Spawn::default()
    })
    .await;
    counter_on(app, supply, walk_in).await
}

pub async fn counter_on(app: TestApp, supply: i32, walk_in: i32) -> Counter {
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), supply);
    walk_in_stock(&app.db, *windows.last().unwrap(), walk_in);
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let pharmacist_id = user_id(&app.db, "p@example.com");
    Counter {
        app,
        store,
        windows,
        pharmacist,
        pharmacist_id,
    }
}

/// Sets the walk-in stock of `window`'s store-day to exactly `n` by moving
/// capacity into or out of `window` (the allocation kept the policy's walk-in
/// share; a test wants its own figure).
pub fn walk_in_stock(db: &Db, window: i64, n: i32) {
    let mut conn = db.get().unwrap();
    let (capacity, supply, in_windows, sold): (i32, i32, i32, i32) = pickup_windows::table
        .inner_join(store_days::table)
        .filter(pickup_windows::id.eq(window))
        .select((
            pickup_windows::capacity,
            store_days::supply,
            store_days::window_capacity,
            store_days::walk_in,
        ))
        .first(&mut conn)
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let more_in_window = (supply - in_windows - sold) - n;
    write_tx(&mut conn, |tx| {
        set_window_capacity(tx, window, capacity + more_in_window, None, now)
    })
    .unwrap();
}

pub fn user_id(db: &Db, email: &str) -> i64 {
    let mut conn = db.get().unwrap();
    users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(&mut conn)
        .unwrap()
}

/// A logged-in citizen named `name`.
pub async fn citizen(app: &TestApp, email: &str, name: &str) -> Visitor {
    let v = app.logged_in_as(Role::Citizen, email, None).await;
    let mut conn = app.db.get().unwrap();
    diesel::update(users::table.filter(users::email.eq(email)))
        .set(users::name.eq(name))
        .execute(&mut conn)
        .unwrap();
    v
}

/// Books through the store page's form; the reservation's id and pickup code.
pub async fn book(app: &TestApp, v: &Visitor, window: i64, quantity: i32) -> (i64, String) {
    let res = v
        .post_form(
            "/reservations",
            &[
                ("window_id", &window.to_string()),
                ("quantity", &quantity.to_string()),
                ("request_id", &mask_reservation::random::token()),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let id: i64 = res.headers()["location"]
        .to_str()
        .unwrap()
        .strip_prefix("/reservations/")
        .unwrap()
        .parse()
        .unwrap();
    let mut conn = app.db.get().unwrap();
    let code = reservations::table
        .find(id)
        .select(reservations::pickup_code)
        .first(&mut conn)
        .unwrap();
    (id, code)
}

/// `abcd-efgh`: the code as someone might type it.
fn typed(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..]).to_lowercase()
}

pub async fn scan(v: &Visitor, code: &str) -> reqwest::Response {
    v.post_form("/pharmacy/pickup", &[("code", code)]).await
}

pub async fn confirm(v: &Visitor, code: &str) -> reqwest::Response {
    v.post_form("/pharmacy/pickup", &[("code", code), ("confirm", "1")])
        .await
}

/// The status and the page's `data-refusal`.
pub async fn refusal(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let html = res.text().await.unwrap();
    let marker = "data-refusal=\"";
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no refusal ({status}): {html}"));
    let rest = &html[at + marker.len()..];
    (status, rest[..rest.find('"').unwrap()].to_owned(), html)
}

fn status_of(db: &Db, id: i64) -> (String, Option<NaiveDateTime>, Option<i64>) {
    let mut conn = db.get().unwrap();
    reservations::table
        .find(id)
        .select((
            reservations::status,
            reservations::picked_up_at,
            reservations::picked_up_by,
        ))
        .first(&mut conn)
        .unwrap()
}

/// (window reserved, window picked up, day reserved, day picked up).
pub fn counters(db: &Db, window: i64) -> (i32, i32, i32, i32) {
    let mut conn = db.get().unwrap();
    pickup_windows::table
        .inner_join(store_days::table)
        .filter(pickup_windows::id.eq(window))
        .select((
            pickup_windows::reserved,
            pickup_windows::picked_up,
            store_days::reserved,
            store_days::picked_up,
        ))
        .first(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_scanned_code_shows_the_reservation_masked_and_confirming_hands_it_over_once() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 2).await;

    // 08:00, before the 09:00 window: looked up, with "came early".
    let res = scan(&c.pharmacist, &typed(&code)).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-found"), "{html}");
    assert!(html.contains("김*수"), "{html}");
    assert!(!html.contains("김지수"));
    assert!(html.contains("850101-"), "{html}");
    assert!(html.contains("******"));
    assert!(html.contains("data-came-early"));
    assert!(html.contains("name=\"confirm\" value=\"1\""));
    // Looking up changes nothing.
    assert_eq!(status_of(&c.app.db, id).0, "active");

    let res = confirm(&c.pharmacist, &code).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-handed data-quantity=\"2\""), "{html}");
    assert!(html.contains("data-came-early"));
    // The field is empty and focused for the next scan.
    assert!(html.contains("name=\"code\" type=\"text\" class=\"scan\" value=\"\""));
    assert!(html.contains("autofocus"));

    let (status, at, by) = status_of(&c.app.db, id);
    assert_eq!(status, "picked_up");
    assert!(at.is_some());
    assert_eq!(by, Some(c.pharmacist_id));
    assert_eq!(counters(&c.app.db, c.windows[0]), (0, 2, 0, 2));
    let mut conn = c.app.db.get().unwrap();
    let ledger: Vec<(String, i32, i32, Option<i64>)> = stock_ledger::table
        .filter(stock_ledger::reservation_id.eq(id))
        .order(stock_ledger::id)
        .select((
            stock_ledger::kind,
            stock_ledger::reserved_delta,
            stock_ledger::picked_up_delta,
            stock_ledger::actor_user_id,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        ledger,
        vec![
            (
                "reservation".to_owned(),
                2,
                0,
                Some(user_id(&c.app.db, "kim@example.com"))
            ),
            ("pickup".to_owned(), -2, 2, Some(c.pharmacist_id)),
        ]
    );

    // The second confirmation says when and by whom.
    let (status, kind, html) = refusal(confirm(&c.pharmacist, &code).await).await;
    assert_eq!((status, kind.as_str()), (409, "picked_up"));
    assert!(html.contains("08:00에 p 님"), "{html}");
    assert_eq!(counters(&c.app.db, c.windows[0]), (0, 2, 0, 2));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn within_the_window_there_is_no_came_early() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (_, code) = book(&c.app, &kim, c.windows[0], 1).await;
    c.app.state.clock.advance(TimeDelta::hours(2));
    let html = confirm(&c.pharmacist, &code).await.text().await.unwrap();
    assert!(html.contains("data-handed"), "{html}");
    assert!(!html.contains("data-came-early"));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn with_confirm_on_scan_the_first_post_hands_over() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 1).await;

    let res = c
        .pharmacist
        .post_form("/pharmacy/pickup/preferences", &[("confirm_on_scan", "1")])
        .await;
    assert_eq!(res.status(), 303);
    let html = c.pharmacist.html("/pharmacy/pickup").await;
    assert!(html.contains("value=\"1\" checked"), "{html}");

    let res = scan(&c.pharmacist, &code).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("data-handed"));
    assert_eq!(status_of(&c.app.db, id).0, "picked_up");

    // Off again: a scan only shows.
    c.pharmacist
        .post_form("/pharmacy/pickup/preferences", &[])
        .await;
    let (_, code2) = book(&c.app, &kim, c.windows[1], 1).await;
    let html = scan(&c.pharmacist, &code2).await.text().await.unwrap();
    assert!(html.contains("data-found") && !html.contains("data-handed"));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn every_refusal_says_what_is_wrong_and_changes_nothing() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let other = fixtures::store(&app.db, OTHER_STORE, "남산약국");
    let other_windows = fixtures::supply(&app.db, other, tuesday(), 30);
    let wednesday = tuesday() + TimeDelta::days(1);
    let tomorrow = fixtures::supply(&app.db, c.store, wednesday, 30);
    let kim = citizen(app, "kim@example.com", "김지수").await;
    let lee = citizen(app, "lee@example.com", "이영희").await;

    // Unknown.
    let (status, kind, _) = refusal(confirm(&c.pharmacist, "ZZZZ-ZZZZ").await).await;
    assert_eq!((status, kind.as_str()), (404, "unknown"));

    // Another store's: which store, not whose.
    let (elsewhere, code) = book(app, &kim, other_windows[0], 1).await;
    for res in [
        scan(&c.pharmacist, &code).await,
        confirm(&c.pharmacist, &code).await,
    ] {
        let (status, kind, html) = refusal(res).await;
        assert_eq!((status, kind.as_str()), (403, "other_store"));
        assert!(html.contains("남산약국"), "{html}");
        assert!(!html.contains("김*수") && !html.contains("850101"));
    }
    assert_eq!(status_of(&app.db, elsewhere).0, "active");

    // Another day's: which day.
    let (later, code) = book(app, &kim, tomorrow[0], 1).await;
    let (status, kind, html) = refusal(confirm(&c.pharmacist, &code).await).await;
    assert_eq!((status, kind.as_str()), (409, "other_day"));
    assert!(html.contains("12월 2일"), "{html}");
    assert_eq!(status_of(&app.db, later).0, "active");

    // Cancelled.
    let (cancelled, code) = book(app, &lee, c.windows[2], 1).await;
    let res = lee
        .post_form(&format!("/reservations/{cancelled}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let (status, kind, _) = refusal(confirm(&c.pharmacist, &code).await).await;
    assert_eq!((status, kind.as_str()), (409, "cancelled"));

    // Too late: the 09–12 window closed at 12:30; then expired by the job.
    let (late, code) = book(app, &lee, c.windows[0], 1).await;
    app.state.clock.advance(TimeDelta::minutes(4 * 60 + 31));
    let (status, kind, html) = refusal(confirm(&c.pharmacist, &code).await).await;
    assert_eq!((status, kind.as_str()), (409, "too_late"));
    assert!(html.contains("12:30"), "{html}");
    assert_eq!(status_of(&app.db, late).0, "active");
    let now = app.state.clock.now();
    app.db
        .write(move |tx| expire_due(tx, now, 30))
        .await
        .unwrap();
    let (status, kind, _) = refusal(confirm(&c.pharmacist, &code).await).await;
    assert_eq!((status, kind.as_str()), (409, "expired"));
    assert_eq!(status_of(&app.db, late).0, "expired");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_counter_and_the_expiry_job_close_a_window_at_the_same_moment() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김지수").await;
    let lee = citizen(app, "lee@example.com", "이영희").await;
    let (on_time, on_time_code) = book(app, &kim, c.windows[0], 1).await;
    let (late, late_code) = book(app, &lee, c.windows[0], 1).await;
    let expire = |now| app.db.write(move |tx| expire_due(tx, now, 30));

    // 12:30, the 09–12 window's end plus the default grace of 30 minutes:
    // the last moment for both. The job leaves them; the counter hands over.
    app.state.clock.advance(TimeDelta::minutes(4 * 60 + 30));
    assert_eq!(expire(app.state.clock.now()).await.unwrap(), 0);
    let res = confirm(&c.pharmacist, &on_time_code).await;
    assert_eq!(res.status(), 200);
    assert_eq!(status_of(&app.db, on_time).0, "picked_up");

    // A second later the counter refuses and the job expires, both.
    app.state.clock.advance(TimeDelta::seconds(1));
    let (status, kind, html) = refusal(confirm(&c.pharmacist, &late_code).await).await;
    assert_eq!((status, kind.as_str()), (409, "too_late"));
    assert!(html.contains("12:30"), "{html}");
    assert_eq!(expire(app.state.clock.now()).await.unwrap(), 1);
    assert_eq!(status_of(&app.db, late).0, "expired");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn bad_codes_and_forms_are_refused_on_the_page() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 1).await;
    let huge = "A".repeat(10 * 1024);
    for bad in [
        "",
        "   ",
        "ABC",
        "ABCD-EFGHJ",
        "ABCD-EFG#",
        "ABCD-EFGU",
        huge.as_str(),
    ] {
        let res = confirm(&c.pharmacist, bad).await;
        assert_eq!(res.status(), 422, "{bad:.20}");
        let html = res.text().await.unwrap();
        assert!(html.contains("data-error-for=\"code\""), "{bad:.20}");
        assert!(!html.contains(&"A".repeat(100)));
    }
    // No CSRF token: refused before anything is read.
    let res = c
        .pharmacist
        .post_form_raw("/pharmacy/pickup", &[("code", &code), ("confirm", "1")])
        .await;
    assert_eq!(res.status(), 403);
    let res = c
        .pharmacist
        .post_form_raw("/pharmacy/pickup/preferences", &[("confirm_on_scan", "1")])
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(status_of(&c.app.db, id).0, "active");
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn a_pharmacist_disabled_mid_shift_is_refused_at_the_next_request() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 1).await;
    let token = extract_csrf(&c.pharmacist.html("/pharmacy/pickup").await).unwrap();
    {
        let mut conn = c.app.db.get().unwrap();
        diesel::update(users::table.find(c.pharmacist_id))
            .set(users::disabled_at.eq(chrono::Utc::now().naive_utc()))
            .execute(&mut conn)
            .unwrap();
    }
    let res = c
        .pharmacist
        .post_form_raw(
            "/pharmacy/pickup",
            &[("code", &code), ("confirm", "1"), ("csrf_token", &token)],
        )
        .await;
    assert_ne!(res.status(), 200);
    assert!(res.status().is_redirection() || res.status().is_client_error());
    assert_eq!(status_of(&c.app.db, id).0, "active");
    assert_invariants(&c.app.db);
}

/// Ten confirmations of one code, from `visitors` (each with its token) at once.
async fn ten_at_once(visitors: &[(Visitor, String)], code: &str) -> Vec<u16> {
    let posts = (0..10).map(|i| {
        let (v, token) = &visitors[i % visitors.len()];
        async move {
            v.post_form_raw(
                "/pharmacy/pickup",
                &[("code", code), ("confirm", "1"), ("csrf_token", token)],
            )
            .await
            .status()
            .as_u16()
        }
    });
    join_all(posts).await
}

fn handed_once(statuses: &[u16], db: &Db, id: i64, window: i64) {
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(status_of(db, id).0, "picked_up");
    assert_eq!(counters(db, window), (0, 1, 0, 1));
    let mut conn = db.get().unwrap();
    let pickups: i64 = stock_ledger::table
        .filter(stock_ledger::reservation_id.eq(id))
        .filter(stock_ledger::kind.eq("pickup"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(pickups, 1);
    assert_invariants(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_confirmations_of_one_code_at_once_hand_over_once() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 1).await;
    let token = extract_csrf(&c.pharmacist.html("/pharmacy/pickup").await).unwrap();
    let statuses = ten_at_once(&[(c.pharmacist.clone(), token)], &code).await;
    handed_once(&statuses, &c.app.db, id, c.windows[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_instances_confirming_one_code_hand_over_once() {
    let c = counter(30, 0).await;
    if c.app.backend() != Backend::Postgres {
        return;
    }
    let second = spawn_app_with(Spawn {
        database: Some(c.app.database.clone()),
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        ..Spawn::default()
    })
    .await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 1).await;
    let key = c.app.state.keys.national_id.clone();
    fixtures::user(
        &c.app.db,
        Role::Pharmacist,
        "p2@example.com",
        Some(c.store),
        true,
        &key,
    );
    let there = second.new_visitor();
    assert_eq!(
        there
            .login("p2@example.com", fixtures::PASSWORD)
            .await
            .status(),
        303
    );
    let here_token = extract_csrf(&c.pharmacist.html("/pharmacy/pickup").await).unwrap();
    let there_token = extract_csrf(&there.html("/pharmacy/pickup").await).unwrap();
    let statuses = ten_at_once(
        &[(c.pharmacist.clone(), here_token), (there, there_token)],
        &code,
    )
    .await;
    handed_once(&statuses, &c.app.db, id, c.windows[0]);
}

/// `verify` names a handover recorded on another date than its window's, in
/// the service zone: 23:59 the evening before in Seoul is still the wrong day.
#[tokio::test]
async fn verify_names_a_pickup_recorded_on_another_day() {
    use mask_reservation::db::schema::reservations;

    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (id, code) = book(&c.app, &kim, c.windows[0], 1).await;
    assert_eq!(confirm(&c.pharmacist, &code).await.status(), 200);
    assert_invariants(&c.app.db);

    let evening_before = seoul(tuesday() - TimeDelta::days(1), 23, 59).naive_utc();
    let mut conn = c.app.db.get().unwrap();
    diesel::update(reservations::table.find(id))
        .set(reservations::picked_up_at.eq(evening_before))
        .execute(&mut conn)
        .unwrap();
    let findings = mask_reservation::verify::run(&mut conn).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].check,
        "pickup on another date than its window's"
    );
    assert_eq!(findings[0].id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_are_limited_per_pharmacist_and_the_counter_page_stays_usable() {
    // The limit as configured (120 a minute); the clock at the start of a minute.
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        rate_limits: Some(RateLimits {
            pickup_per_account: RateLimits::default().pickup_per_account,
            ..generous_limits()
        }),
        ..Spawn::default()
    })
    .await;
    let c = counter_on(app, 30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let (_, code) = book(&c.app, &kim, c.windows[0], 2).await;
    let token = extract_csrf(&c.pharmacist.html("/pharmacy/pickup").await).unwrap();

    // 130 guesses at once: exactly 120 are looked up, the rest are told to wait.
    let guesses = (0..130).map(|i| {
        let (v, token) = (&c.pharmacist, &token);
        async move {
            let guess = format!("ZZZZ{i:04}");
            let res = v
                .post_form_raw(
                    "/pharmacy/pickup",
                    &[("code", &guess), ("csrf_token", token)],
                )
                .await;
            res.status().as_u16()
        }
    });
    let statuses = join_all(guesses).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        120,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        10,
        "{statuses:?}"
    );

    // Over the limit, even a real code waits: the counter page with the wait
    // next to the code field, the code kept to send again.
    let res = scan(&c.pharmacist, &code).await;
    assert_eq!(res.status(), 429);
    assert_eq!(retry_after(&res), 60);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-scan-form"), "{html}");
    assert!(html.contains("data-error-for=\"code\""), "{html}");
    assert!(html.contains("60초 뒤에 다시 스캔"), "{html}");
    assert!(
        html.contains(&format!(
            "name=\"code\" type=\"text\" class=\"scan\" value=\"{code}\""
        )),
        "{html}"
    );
    assert!(!html.contains("data-found"), "nothing is looked up: {html}");

    // Another pharmacist of the store has a limit of their own.
    let colleague = c
        .app
        .logged_in_as(Role::Pharmacist, "p2@example.com", Some(c.store))
        .await;
    let res = scan(&colleague, &code).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("data-found"));

    // A minute later the counter works again, and hands over.
    c.app.state.clock.advance(TimeDelta::seconds(60));
    let res = confirm(&c.pharmacist, &code).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("data-handed"));
    assert_invariants(&c.app.db);
}

#[test]
fn the_pickup_look_up_limit_is_120_a_minute() {
    let limit = RateLimits::default().pickup_per_account;
    assert_eq!((limit.max, limit.window_secs), (120, 60));
}

/// A look-up by national ID at the pickup counter (no code, lost phone).
pub async fn by_id(v: &Visitor, number: &str) -> reqwest::Response {
    v.post_form("/pharmacy/pickup", &[("national_id", number)])
        .await
}

/// The codes a look-up by national ID lists, as shown.
fn listed_codes(html: &str) -> Vec<String> {
    let marker = "data-by-id-code=\"";
    html.match_indices(marker)
        .map(|(i, _)| {
            let rest = &html[i + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// Every pickup look-up by national ID in the audit log, oldest first:
/// (actor, entity id, after).
fn pickup_lookups(db: &Db) -> Vec<(Option<i64>, String, serde_json::Value)> {
    use mask_reservation::db::schema::audit_log;
    let mut conn = db.get().unwrap();
    let rows: Vec<(Option<i64>, String, Option<String>)> = audit_log::table
        .filter(audit_log::action.eq("pickup.lookup"))
        .order(audit_log::id)
        .select((
            audit_log::actor_user_id,
            audit_log::entity_id,
            audit_log::after_json,
        ))
        .load(&mut conn)
        .unwrap();
    rows.into_iter()
        .map(|(actor, id, after)| (actor, id, serde_json::from_str(&after.unwrap()).unwrap()))
        .collect()
}

fn code_of(db: &Db, id: i64) -> String {
    let mut conn = db.get().unwrap();
    reservations::table
        .find(id)
        .select(reservations::pickup_code)
        .first(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_look_up_by_national_id_lists_only_that_persons_active_reservations_here_today() {
    use crate::pharmacy_walk_in::{citizen_with_id, hash_of, id_1987};
    use mask_reservation::reservations::code::display as display_code;

    let c = counter(30, 10).await;
    c.app.set_setting("quota_per_period", "10");
    let number = id_1987();
    let kim = citizen_with_id(&c.app, "kim@example.com", &number).await;
    // Two to collect here today, in two windows.
    let first = fixtures::reservation(&c.app.db, c.windows[0], kim, 1);
    let second = fixtures::reservation(&c.app.db, c.windows[1], kim, 2);
    // Not listed: another store today, this store tomorrow, one already
    // collected, and someone else's here today.
    let other = fixtures::store(&c.app.db, OTHER_STORE, "시청약국");
    let other_windows = fixtures::supply(&c.app.db, other, tuesday(), 30);
    let elsewhere = fixtures::reservation(&c.app.db, other_windows[0], kim, 1);
    let tomorrow = fixtures::supply(&c.app.db, c.store, tuesday() + TimeDelta::days(1), 30);
    let later = fixtures::reservation(&c.app.db, tomorrow[0], kim, 1);
    let collected = fixtures::reservation(&c.app.db, c.windows[2], kim, 1);
    assert_eq!(
        confirm(&c.pharmacist, &code_of(&c.app.db, collected))
            .await
            .status(),
        200
    );
    let lee = crate::pharmacy_walk_in::citizen_with_id(
        &c.app,
        "lee@example.com",
        &fixtures::national_id("850101123456"),
    )
    .await;
    let someone_else = fixtures::reservation(&c.app.db, c.windows[0], lee, 1);

    let res = by_id(&c.pharmacist, &number).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(
        listed_codes(&html),
        [
            display_code(&code_of(&c.app.db, first)),
            display_code(&code_of(&c.app.db, second)),
        ],
        "{html}"
    );
    for not_listed in [elsewhere, later, collected, someone_else] {
        let code = code_of(&c.app.db, not_listed);
        assert!(!html.contains(&code) && !html.contains(&display_code(&code)));
    }
    assert!(!html.contains("시청약국"), "nothing about another store");
    assert!(html.contains("870202-2******"), "{html}");
    assert!(!html.contains(&number) && !html.contains(&number[7..]));
    assert_eq!(html.matches("data-confirm-form").count(), 2);

    // Each entry hands over through the usual confirm.
    let code = code_of(&c.app.db, second);
    let res = confirm(&c.pharmacist, &code).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("data-handed"));
    assert_eq!(status_of(&c.app.db, second).0, "picked_up");
    let html = by_id(&c.pharmacist, &number).await.text().await.unwrap();
    assert_eq!(listed_codes(&html).len(), 1);

    // A person with nothing here today: one neutral sentence.
    let stranger = fixtures::national_id("900303123456");
    let html = by_id(&c.pharmacist, &stranger).await.text().await.unwrap();
    assert!(html.contains("data-by-id-none"), "{html}");
    assert!(html.contains("오늘 이 약국에서 받을 예약이 없습니다."));
    assert!(listed_codes(&html).is_empty());
    let lee_number = fixtures::national_id("850101123456");
    let lee_html = by_id(&c.pharmacist, &lee_number)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(listed_codes(&lee_html).len(), 1);

    // Every look-up on record: who, where, whom by keyed hash, how many.
    let seen = pickup_lookups(&c.app.db);
    let found: Vec<(String, i64)> = seen
        .iter()
        .map(|(_, id, after)| (id.clone(), after["found"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            (hash_of(&c.app, &number), 2),
            (hash_of(&c.app, &number), 1),
            (hash_of(&c.app, &stranger), 0),
            (hash_of(&c.app, &lee_number), 1),
        ]
    );
    for (actor, _, after) in &seen {
        assert_eq!(*actor, Some(c.pharmacist_id));
        assert_eq!(after["store"], STORE);
        assert!(!after.to_string().contains(&number[..6]));
    }

    // In English too.
    c.pharmacist
        .post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    let html = by_id(&c.pharmacist, &stranger).await.text().await.unwrap();
    assert!(
        html.contains("No reservation to collect at this pharmacy today."),
        "{html}"
    );
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn a_look_up_by_national_id_refuses_bad_numbers_other_roles_and_posts_without_csrf() {
    use crate::pharmacy_walk_in::CHECK_DIGIT_WORDS;

    let c = counter(30, 10).await;
    let good = fixtures::national_id("850101123456");
    let mut wrong_check = good.clone();
    let last = wrong_check.pop().unwrap().to_digit(10).unwrap();
    wrong_check.push(char::from_digit((last + 1) % 10, 10).unwrap());

    let res = by_id(&c.pharmacist, &wrong_check).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"national_id\""), "{html}");
    assert!(html.contains(CHECK_DIGIT_WORDS), "{html}");
    assert!(!html.contains(&wrong_check) && !html.contains(&wrong_check[7..]));
    assert!(!html.contains("data-by-id="));
    for (typed, words) in [
        ("", "필수 입력 항목"),
        ("12345", "YYMMDD-SNNNNNC 형식"),
        ("851301-1234567", "실제 생년월일이 아닙니다"),
    ] {
        let res = by_id(&c.pharmacist, typed).await;
        assert_eq!(res.status(), 422, "{typed}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("data-error-for=\"national_id\""),
            "{typed}: {html}"
        );
        assert!(html.contains(words), "{typed}: {html}");
    }

    // Not a pharmacist; no CSRF token.
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    assert_eq!(by_id(&kim, &good).await.status(), 403);
    let res = c
        .pharmacist
        .post_form_raw("/pharmacy/pickup", &[("national_id", &good)])
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        pickup_lookups(&c.app.db).is_empty(),
        "nothing was looked up"
    );
}

#[tokio::test]
async fn look_ups_by_national_id_share_the_walk_in_limit() {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        rate_limits: Some(RateLimits {
            walk_in_per_account: mask_reservation::rate_limit::Limit::per_minutes(2, 10),
            ..generous_limits()
        }),
        ..Spawn::default()
    })
    .await;
    let c = counter_on(app, 30, 10).await;
    let number = fixtures::national_id("850101123456");
    let sold = c
        .pharmacist
        .post_form(
            "/pharmacy/walk-in",
            &[("national_id", &number), ("quantity", "1")],
        )
        .await;
    assert_eq!(sold.status(), 303);
    assert_eq!(by_id(&c.pharmacist, &number).await.status(), 200);
    let res = by_id(&c.pharmacist, &number).await;
    assert_eq!(res.status(), 429);
    assert!(retry_after(&res) > 0);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"national_id\""), "{html}");
    assert_eq!(pickup_lookups(&c.app.db).len(), 1, "the refused one is not");
    // Codes are limited apart: scanning still works.
    assert_eq!(scan(&c.pharmacist, "ABCD2345").await.status(), 404);
}
