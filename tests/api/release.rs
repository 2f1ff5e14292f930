//! Masks people can actually get (SPEC §3, §6): a window takes bookings until
//! `booking_close_minutes` before it ends; then its unbooked places move to
//! the counter — once, with a ledger row `release`, from the minute job, the
//! command line, or a sale that needs them — and every public figure is what
//! a person could get at that moment: to book, and at the counter.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::{Role, SessionClaim};
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{pickup_windows, reservations, stock_ledger, store_days};
use mask_reservation::db::{Backend, Db, DbError};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::policy::Policy;
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{self, ForWhom, Form, Hold, Request};
use mask_reservation::supply::release::{release_all, release_due};

use crate::booking_steps::citizens;
use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, eventually, fixtures, spawn_app_with,
};
use crate::expiry::citizen;
use crate::reservations::{seoul, tuesday};

const STORE: &str = "11800001";

async fn app_at(h: u32, m: u32) -> TestApp {
    spawn_app_with(Spawn::at(seoul(tuesday(), h, m))).await
}

/// (capacity, reserved) of a window.
fn window(db: &Db, id: i64) -> (i32, i32) {
    pickup_windows::table
        .find(id)
        .select((pickup_windows::capacity, pickup_windows::reserved))
        .first(&mut db.get().unwrap())
        .unwrap()
}

/// (supply, window_capacity, walk_in sold) of the store-day of `window`.
fn day_of(db: &Db, window: i64) -> (i32, i32, i32) {
    pickup_windows::table
        .inner_join(store_days::table)
        .filter(pickup_windows::id.eq(window))
        .select((
            store_days::supply,
            store_days::window_capacity,
            store_days::walk_in,
        ))
        .first(&mut db.get().unwrap())
        .unwrap()
}

/// (window, capacity delta) of every release row, in order.
fn releases(db: &Db) -> Vec<(Option<i64>, i32)> {
    stock_ledger::table
        .filter(stock_ledger::kind.eq("release"))
        .order(stock_ledger::id)
        .select((stock_ledger::window_id, stock_ledger::capacity_delta))
        .load(&mut db.get().unwrap())
        .unwrap()
}

/// Two masks sold at the pharmacist's counter to someone born in 1985.
async fn sell_two(pharmacist: &Visitor) {
    let res = pharmacist
        .post_form(
            "/pharmacy/walk-in",
            &[
                ("national_id", &fixtures::national_id("850101123456")),
                ("quantity", "2"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
}

/// Places the ledger says were released from `window`.
fn releases_of(db: &Db, window: i64) -> i32 {
    releases(db)
        .into_iter()
        .filter(|(w, _)| *w == Some(window))
        .map(|(_, delta)| -delta)
        .sum()
}

async fn release(db: &Db, now: DateTime<Utc>) -> i64 {
    db.write(move |tx| release_due(tx, now, 30, None))
        .await
        .unwrap()
        .places
}

#[tokio::test]
async fn a_closed_windows_unbooked_places_go_to_the_counter_once_with_a_ledger_row() {
    let app = app_at(8, 0).await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    // 100: 30 at the counter, 24/23/23 in the windows.
    let windows = fixtures::supply(&app.db, store, tuesday(), 100);
    assert_eq!(day_of(&app.db, windows[0]), (100, 70, 0));
    fixtures::reservation(&app.db, windows[0], citizen(&app, "a@example.com"), 2);

    // 09:00–12:00 takes bookings until 11:30: before that nothing moves.
    assert_eq!(release(&app.db, seoul(tuesday(), 11, 29)).await, 0);
    assert_eq!(window(&app.db, windows[0]), (24, 2));

    let closed = seoul(tuesday(), 11, 30);
    assert_eq!(release(&app.db, closed).await, 22);
    assert_eq!(
        window(&app.db, windows[0]),
        (2, 2),
        "it keeps what it holds"
    );
    assert_eq!(day_of(&app.db, windows[0]), (100, 48, 0));
    assert_eq!(releases(&app.db), [(Some(windows[0]), -22)]);
    assert_eq!(
        window(&app.db, windows[1]),
        (23, 0),
        "still taking bookings"
    );
    assert_invariants(&app.db);

    // `verify` adds the release up with the rest of the ledger, and knows
    // what a release may move.
    let mut conn = app.db.get().unwrap();
    diesel::update(stock_ledger::table.filter(stock_ledger::kind.eq("release")))
        .set(stock_ledger::reserved_delta.eq(1))
        .execute(&mut conn)
        .unwrap();
    let findings: Vec<&str> = mask_reservation::verify::run(&mut conn)
        .unwrap()
        .into_iter()
        .map(|f| f.check)
        .collect();
    assert!(
        findings.contains(&"release that moves anything but a window's unbooked capacity"),
        "{findings:?}"
    );
    diesel::update(stock_ledger::table.filter(stock_ledger::kind.eq("release")))
        .set(stock_ledger::reserved_delta.eq(0))
        .execute(&mut conn)
        .unwrap();
    drop(conn);
    assert_invariants(&app.db);

    // Once moved, nothing is left to move.
    assert_eq!(release(&app.db, closed).await, 0);
    assert_eq!(release(&app.db, closed + TimeDelta::hours(1)).await, 0);
    assert_eq!(releases(&app.db).len(), 1);

    // The reservation's masks stay its own; as a no-show they join the counter.
    let expired = app
        .db
        .write(|tx| {
            mask_reservation::reservations::expiry::expire_due(tx, seoul(tuesday(), 23, 0), 30)
        })
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(window(&app.db, windows[0]), (0, 0));
    assert_eq!(day_of(&app.db, windows[0]), (100, 46, 0));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_counter_sells_a_closed_windows_places_before_the_job_has_run() {
    // Everything in the windows, nothing at the counter, at 11:45: the first
    // window's booking closed a quarter of an hour ago.
    let app = app_at(11, 45).await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), 30);
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let page = pharmacist.html("/pharmacy/walk-in").await;
    assert!(page.contains("data-walk-in-left=\"10\""), "{page}");
    sell_two(&pharmacist).await;
    // The sale moved the window's places first, then sold two of them.
    assert_eq!(releases(&app.db), [(Some(windows[0]), -10)]);
    assert_eq!(day_of(&app.db, windows[0]), (30, 20, 2));
    let page = pharmacist.html("/pharmacy/walk-in").await;
    assert!(page.contains("data-walk-in-left=\"8\""), "{page}");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_server_releases_closed_windows_in_the_background() {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 12, 0))),
        jobs_every: Some(std::time::Duration::from_millis(100)),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 30);
    eventually(
        std::time::Duration::from_secs(10),
        "the background release",
        || async { (window(&app.db, windows[0]).0 == 0).then_some(()) },
    )
    .await;
    assert_eq!(window(&app.db, windows[1]), (7, 0), "12:00–15:00 is open");
    assert_invariants(&app.db);
}

/// The rush for a window's last places as its booking closes, with the
/// release run meanwhile by an instance whose clock is already past the
/// close (on PostgreSQL a second instance on the same database): every
/// place ends either booked or released, never both and never neither, in
/// every form of the booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_of_the_last_places_racing_the_release_books_or_releases_each_place_once() {
    let first = app_at(11, 29).await;
    let backend = first.backend();
    let second = match backend {
        Backend::Postgres => Some(
            spawn_app_with(Spawn {
                database: Some(first.database.clone()),
                ..Spawn::at(seoul(tuesday(), 11, 31))
            })
            .await,
        ),
        Backend::Sqlite => None,
    };
    let releaser = second.as_ref().map_or(&first.db, |s| &s.db);
    let store = fixtures::store(&first.db, STORE, "중앙약국");
    let policy = Policy::load(&mut first.db.get().unwrap()).unwrap();
    let t = Tr::new(first.state.catalog.clone(), Lang::Ko);
    let mut day = tuesday();
    for form in Form::on(backend) {
        // A day of its own for each form: 10 places in the first window.
        let windows = fixtures::supply_in_windows(&first.db, store, day, 30);
        let w = windows[0];
        let open_at = seoul(day, 11, 29);
        let closed_at = seoul(day, 11, 31);
        let users = citizens(&first, &format!("race{day}-"), 12);
        let bookings = users.iter().map(|&user_id| {
            let req = Request {
                user_id,
                window_id: w,
                person: ForWhom::Own,
                quantity: Quantity::new(1).unwrap(),
                request_id: Some(format!("r{user_id}")),
                now: open_at,
                session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
                hold: Hold::Booking,
            };
            let (db, policy, t, form) = (first.db.clone(), policy.clone(), t.clone(), *form);
            async move {
                let answer = db
                    .write(move |tx| booking::book_in(form, tx, &req, &policy, &t, "http://m"))
                    .await;
                match answer {
                    Ok(_) => 1,
                    Err(DbError::Work(_)) => 0,
                    Err(e) => panic!("{form:?}: {e:?}"),
                }
            }
        });
        let releases = (0..4).map(|_| {
            let db = releaser.clone();
            async move { release_all(&db, closed_at, 30).await.unwrap() }
        });
        let (booked, _) = tokio::join!(join_all(bookings), join_all(releases));
        let booked: i32 = booked.into_iter().sum();
        // A release that found its window changed under it left the rest to
        // the next run: this one.
        release_all(releaser, closed_at, 30).await.unwrap();
        let released: i32 = releases_of(&first.db, w);

        let (capacity, reserved) = window(&first.db, w);
        assert_eq!(reserved, booked, "{form:?}");
        assert_eq!(capacity, reserved, "{form:?}: no place left in between");
        assert_eq!(booked + released, 10, "{form:?}");
        let rows: i64 = reservations::table
            .filter(reservations::window_id.eq(w))
            .count()
            .get_result(&mut first.db.get().unwrap())
            .unwrap();
        assert_eq!(rows, i64::from(booked), "{form:?}");
        assert_invariants(&first.db);
        day += TimeDelta::days(1);
    }
}

/// Every figure the public and the counter see — the store page, the map's
/// list, `stock.csv`, the pharmacist's day — is what a person could get at
/// that moment, before and after a window's booking closes, after the
/// release and after a sale.
#[tokio::test]
async fn every_public_figure_is_what_a_person_can_get_at_that_moment() {
    let app = app_at(8, 0).await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 100);
    for n in 0..2 {
        let user = citizen(&app, &format!("c{n}@example.com"));
        fixtures::reservation(&app.db, windows[0], user, 2);
    }
    // The fixtures stamp the stock with the wall clock; the app's stands on
    // Tuesday morning, and the open data reads changes by their stamps.
    diesel::update(store_days::table)
        .set(store_days::stock_changed_at.eq(app.state.clock.now().naive_utc()))
        .execute(&mut app.db.get().unwrap())
        .unwrap();
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let visitor = app.new_visitor();

    // 08:00: 96 left; 20 + 23 + 23 = 66 to book, the 30 of the share at the counter.
    everywhere(&visitor, &pharmacist, &admin, (66, 30)).await;

    // 11:30: the first window stops taking bookings; its 20 free places are
    // the counter's at once, before any job has moved them.
    app.state.clock.advance(TimeDelta::minutes(210));
    everywhere(&visitor, &pharmacist, &admin, (46, 50)).await;

    // The release moves them in the ledger; nothing anyone sees changes.
    assert_eq!(release(&app.db, app.state.clock.now()).await, 20);
    everywhere(&visitor, &pharmacist, &admin, (46, 50)).await;

    // A sale at the counter takes from the counter's figure only.
    sell_two(&pharmacist).await;
    everywhere(&visitor, &pharmacist, &admin, (46, 48)).await;
    assert_invariants(&app.db);
}

/// The store page, the search results, the map's list, `stock.csv`, the
/// pharmacist's day and the administrator's overview all show `(reservable,
/// walk_in)`, and the status of their sum (30–99: `some`).
async fn everywhere(visitor: &Visitor, pharmacist: &Visitor, admin: &Visitor, want: (i32, i32)) {
    let (reservable, walk_in) = want;
    let both = format!("data-reservable=\"{reservable}\" data-walk-in=\"{walk_in}\"");
    let found = visitor.html("/stores?q=%EC%A4%91%EC%95%99").await;
    assert!(found.contains(&both), "search, {want:?}: {found}");
    let overview = admin.html("/admin").await;
    assert!(
        overview.contains(&format!(
            "data-reservable=\"{reservable}\" data-walk-in-now=\"{walk_in}\""
        )),
        "overview, {want:?}: {overview}"
    );
    let store_page = visitor.html(&format!("/stores/{STORE}")).await;
    assert!(
        store_page.contains(&both),
        "store page, {want:?}: {store_page}"
    );
    assert!(
        store_page.contains(&format!("data-remaining=\"{}\"", reservable + walk_in)),
        "{store_page}"
    );
    let counter = pharmacist.html("/pharmacy").await;
    assert!(counter.contains(&both), "pharmacist, {want:?}: {counter}");
    assert!(
        counter.contains(&format!("data-walk-in-left=\"{walk_in}\"")),
        "{counter}"
    );
    // The open data comes from a snapshot refreshed every second.
    // No draw holds any of it: `in_draw` is 0.
    let line = format!("{},{reservable},{walk_in},0,some,", reservable + walk_in);
    eventually(std::time::Duration::from_secs(10), "stock.csv", || async {
        let csv = visitor
            .get("/opendata/stock.csv")
            .await
            .text()
            .await
            .unwrap();
        csv.contains(&line).then_some(())
    })
    .await;
    let map = visitor
        .html("/map?address=%EC%84%9C%EC%9A%B8%ED%8A%B9%EB%B3%84%EC%8B%9C")
        .await;
    assert!(
        map.contains(&format!(
            "data-store-code=\"{STORE}\" data-remain-stat=\"some\" data-reservable=\"{reservable}\" data-walk-in=\"{walk_in}\""
        )),
        "map, {want:?}: {map}"
    );
}
