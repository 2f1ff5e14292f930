//! Waiting lists for full windows (SPEC §13), over HTTP on a fixed Tuesday:
//! joining and leaving, the place freed by a cancel, a decline, a lapse or a
//! capacity raised going to the first in line whose quota allows, the offer
//! accepted into a reservation with its pickup code, every refusal, and the
//! races — two instances offering one freed place, an offer accepted as it
//! lapses — each ending with the invariant check.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{mail_outbox, pickup_windows, reservations, users, waitlist};
use mask_reservation::db::{Backend, write_tx};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::supply::changes::set_window_capacity;
use mask_reservation::waitlist::offers::{self, Round};

use crate::common::{Spawn, TestApp, Visitor, assert_invariants, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

const STORE: &str = "11800001";

/// The app at 07:00 on the Tuesday (when the first window can still be
/// cancelled), a store whose three windows (09–12, 12–15, 15–18) hold
/// `per_window` places each and whose supply keeps `spare` more for the
/// counter, and the windows' ids.
async fn scene(per_window: i32, spare: i32) -> (TestApp, Vec<i64>) {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 7, 0))).await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), 3 * per_window);
    if spare > 0 {
        raise_supply(&app, store, 3 * per_window + spare);
    }
    (app, windows)
}

/// Raises the store-day's supply to `supply`, the windows as they are: the
/// rest is the counter's, from which an administrator may raise a window.
fn raise_supply(app: &TestApp, store: i64, supply: i32) {
    use mask_reservation::db::schema::{stock_ledger, store_days};
    let mut conn = app.db.get().unwrap();
    write_tx(&mut conn, |tx| {
        let (id, before): (i64, i32) = store_days::table
            .filter(store_days::store_id.eq(store))
            .select((store_days::id, store_days::supply))
            .first(tx.conn())?;
        diesel::update(store_days::table.find(id))
            .set(store_days::supply.eq(supply))
            .execute(tx.conn())?;
        diesel::insert_into(stock_ledger::table)
            .values((
                stock_ledger::store_day_id.eq(id),
                stock_ledger::kind.eq("allocation"),
                stock_ledger::supply_delta.eq(supply - before),
                stock_ledger::created_at.eq(Utc::now().naive_utc()),
            ))
            .execute(tx.conn())
    })
    .unwrap();
}

async fn citizen(app: &TestApp, email: &str) -> Visitor {
    app.logged_in_as(Role::Citizen, email, None).await
}

fn user_id(app: &TestApp, email: &str) -> i64 {
    users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(&mut app.db.get().unwrap())
        .unwrap()
}

async fn reserve(v: &Visitor, window: i64, quantity: &str) -> reqwest::Response {
    v.post_form(
        "/reservations",
        &[
            ("window_id", &window.to_string()),
            ("quantity", quantity),
            ("request_id", &mask_reservation::random::token()),
        ],
    )
    .await
}

/// The reservation a 303 after booking points to.
fn booked_id(res: &reqwest::Response) -> i64 {
    assert_eq!(res.status(), 303, "booked");
    let location = res.headers()["location"].to_str().unwrap();
    location.rsplit('/').next().unwrap().parse().unwrap()
}

async fn join(v: &Visitor, window: i64, quantity: &str) -> reqwest::Response {
    v.post_form(
        &format!("/windows/{window}/waitlist"),
        &[("quantity", quantity), ("person", "self")],
    )
    .await
}

/// The reservations of `user` in `window`, as (id, status), oldest first.
fn held_by(app: &TestApp, user: i64, window: i64) -> Vec<(i64, String)> {
    reservations::table
        .filter(reservations::user_id.eq(user))
        .filter(reservations::window_id.eq(window))
        .order(reservations::id)
        .select((reservations::id, reservations::status))
        .load(&mut app.db.get().unwrap())
        .unwrap()
}

/// The one offer held for `user` in `window`.
fn offer_of(app: &TestApp, user: i64, window: i64) -> i64 {
    let held = held_by(app, user, window);
    let offers: Vec<i64> = held
        .iter()
        .filter(|(_, s)| s == "offered")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(offers.len(), 1, "one offer for user {user}: {held:?}");
    offers[0]
}

/// (user, has an offer) of each place in `window`'s line, in order.
fn line(app: &TestApp, window: i64) -> Vec<(i64, bool)> {
    waitlist::table
        .filter(waitlist::window_id.eq(window))
        .order(waitlist::id)
        .select((waitlist::user_id, waitlist::offer_id.is_not_null()))
        .load(&mut app.db.get().unwrap())
        .unwrap()
}

fn reserved(app: &TestApp, window: i64) -> i32 {
    pickup_windows::table
        .find(window)
        .select(pickup_windows::reserved)
        .first(&mut app.db.get().unwrap())
        .unwrap()
}

fn mails_of_kind(app: &TestApp, to: &str, kind: &str) -> i64 {
    mail_outbox::table
        .filter(mail_outbox::recipient.eq(to))
        .filter(mail_outbox::kind.eq(kind))
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap()
}

/// One round of the waiting lists' job at `now`, as every instance runs it.
async fn job(app: &TestApp, now: DateTime<Utc>) -> Round {
    let policy = app.state.policy().await.unwrap();
    let t = Tr::new(app.state.catalog.clone(), Lang::Ko);
    offers::run_once(&app.db, now, policy, t, app.state.base_url.clone())
        .await
        .unwrap()
}

/// On PostgreSQL, a second instance of the app on `app`'s database with its
/// clock at the same moment; on SQLite, whose one writer serves one process,
/// none.
async fn second_instance(app: &TestApp) -> Option<TestApp> {
    if app.backend() != Backend::Postgres {
        return None;
    }
    Some(
        spawn_app_with(Spawn {
            database: Some(app.database.clone()),
            ..Spawn::at(app.state.clock.now())
        })
        .await,
    )
}

/// `a` fills the first window (2 of 2); `b` then `c` join its line for 2.
async fn full_window_with_a_line(app: &TestApp, w: i64) -> (Visitor, i64, Visitor, Visitor) {
    let a = citizen(app, "a@example.com").await;
    let booked = booked_id(&reserve(&a, w, "2").await);
    let b = citizen(app, "b@example.com").await;
    let c = citizen(app, "c@example.com").await;
    assert_eq!(join(&b, w, "2").await.status(), 303);
    assert_eq!(join(&c, w, "2").await.status(), 303);
    (a, booked, b, c)
}

#[tokio::test]
async fn a_cancelled_place_is_offered_to_the_first_in_line_who_accepts_it_for_a_pickup_code() {
    let (app, windows) = scene(2, 0).await;
    let w = windows[0];
    let a = citizen(&app, "a@example.com").await;
    let booked = booked_id(&reserve(&a, w, "2").await);

    // The full window offers its line, and says where one stands in it.
    let b = citizen(&app, "b@example.com").await;
    let page = b.html(&format!("/stores/{STORE}")).await;
    assert!(
        page.contains(&format!("data-waitlist-form=\"{w}\"")),
        "{page}"
    );
    assert!(!page.contains(&format!("data-waitlist-form=\"{}\"", windows[1])));
    let res = join(&b, w, "2").await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&format!("/stores/{STORE}?day=")), "{back}");
    let page = b.html(&back).await;
    assert!(page.contains("data-waiting=\"self\""), "{page}");
    assert!(page.contains("대기 1번째"), "{page}");
    assert!(!page.contains(&format!("data-waitlist-form=\"{w}\"")));
    let c = citizen(&app, "c@example.com").await;
    assert_eq!(join(&c, w, "2").await.status(), 303);
    assert!(c.html("/reservations").await.contains("대기 2번째"));

    // A cancels: the place is held for B in the same transaction.
    let res = a
        .post_form(&format!("/reservations/{booked}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let (bid, cid) = (
        user_id(&app, "b@example.com"),
        user_id(&app, "c@example.com"),
    );
    let offer = offer_of(&app, bid, w);
    assert_eq!(reserved(&app, w), 2, "an offer holds its places");
    assert_eq!(line(&app, w), vec![(bid, true), (cid, false)]);
    assert_eq!(mails_of_kind(&app, "b@example.com", "waitlist_offer"), 1);
    assert_invariants(&app.db);

    // B sees it, without a code, and accepts it.
    let list = b.html("/reservations").await;
    assert!(list.contains("data-status=\"offered\""), "{list}");
    assert!(list.contains("data-offer-until"), "{list}");
    let shown = b.html(&format!("/reservations/{offer}")).await;
    assert!(shown.contains("data-offer"), "{shown}");
    assert!(!shown.contains("data-pickup-code"), "{shown}");
    let res = b
        .post_form(&format!("/reservations/{offer}/accept"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(held_by(&app, bid, w), vec![(offer, "active".to_owned())]);
    let shown = b.html(&format!("/reservations/{offer}")).await;
    assert!(shown.contains("data-pickup-code"), "{shown}");
    assert_eq!(line(&app, w), vec![(cid, false)]);
    assert_eq!(mails_of_kind(&app, "b@example.com", "waitlist_accepted"), 1);

    // Accepting again changes nothing.
    let res = b
        .post_form(&format!("/reservations/{offer}/accept"), &[])
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(reserved(&app, w), 2);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_declined_offer_goes_to_the_next_in_line() {
    let (app, windows) = scene(2, 0).await;
    let w = windows[0];
    let (a, booked, b, _c) = full_window_with_a_line(&app, w).await;
    a.post_form(&format!("/reservations/{booked}/cancel"), &[])
        .await;
    let (bid, cid) = (
        user_id(&app, "b@example.com"),
        user_id(&app, "c@example.com"),
    );
    let offer = offer_of(&app, bid, w);
    let res = b
        .post_form(&format!("/reservations/{offer}/decline"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(held_by(&app, bid, w), vec![(offer, "declined".to_owned())]);
    offer_of(&app, cid, w);
    assert_eq!(line(&app, w), vec![(cid, true)]);
    assert_eq!(reserved(&app, w), 2);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn an_offer_not_accepted_in_time_lapses_and_goes_to_the_next_in_line() {
    let (app, windows) = scene(2, 0).await;
    let w = windows[0];
    let (a, booked, b, _c) = full_window_with_a_line(&app, w).await;
    a.post_form(&format!("/reservations/{booked}/cancel"), &[])
        .await;
    let (bid, cid) = (
        user_id(&app, "b@example.com"),
        user_id(&app, "c@example.com"),
    );
    let offer = offer_of(&app, bid, w);

    // 29 minutes on the offer still holds; at 30 it lapses.
    let start = app.state.clock.now();
    assert_eq!(
        job(&app, start + TimeDelta::minutes(29)).await,
        Round::default()
    );
    offer_of(&app, bid, w);
    let round = job(&app, start + TimeDelta::minutes(30)).await;
    assert_eq!(
        (round.lapsed, round.offered),
        (1, 0),
        "passed on in the lapse"
    );
    assert_eq!(held_by(&app, bid, w), vec![(offer, "lapsed".to_owned())]);
    offer_of(&app, cid, w);
    // A second run, or another instance's, changes nothing.
    assert_eq!(
        job(&app, start + TimeDelta::minutes(30)).await,
        Round::default()
    );

    // B answers too late.
    app.state.clock.advance(TimeDelta::minutes(31));
    let res = b
        .post_form(&format!("/reservations/{offer}/accept"), &[])
        .await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("data-cancel-refused"));
    assert_eq!(reserved(&app, w), 2);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_first_in_line_whose_quota_went_elsewhere_keeps_their_place_and_the_next_is_offered() {
    let (app, windows) = scene(2, 0).await;
    let w = windows[0];
    let (a, booked, b, _c) = full_window_with_a_line(&app, w).await;
    // B books the other window: their week's quota is used up.
    booked_id(&reserve(&b, windows[1], "2").await);
    a.post_form(&format!("/reservations/{booked}/cancel"), &[])
        .await;
    let (bid, cid) = (
        user_id(&app, "b@example.com"),
        user_id(&app, "c@example.com"),
    );
    assert!(held_by(&app, bid, w).is_empty());
    offer_of(&app, cid, w);
    assert_eq!(line(&app, w), vec![(bid, false), (cid, true)]);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_capacity_raised_by_an_administrator_goes_to_the_line_first() {
    let (app, windows) = scene(2, 4).await;
    let w = windows[0];
    let (_a, _booked, _b, _c) = full_window_with_a_line(&app, w).await;
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let res = admin
        .post_form(
            &format!("/admin/stores/{STORE}/windows/{w}"),
            &[("capacity", "6")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (bid, cid) = (
        user_id(&app, "b@example.com"),
        user_id(&app, "c@example.com"),
    );
    offer_of(&app, bid, w);
    offer_of(&app, cid, w);
    assert_eq!(reserved(&app, w), 6);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn joining_leaving_and_answering_refuse_what_they_must_and_change_nothing() {
    let (app, windows) = scene(2, 0).await;
    let w = windows[0];
    let (a, booked, b, c) = full_window_with_a_line(&app, w).await;
    let before = line(&app, w);

    // A window with room is booked, not waited for.
    let res = join(&b, windows[1], "2").await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-refusal=\"waitlist_not_full\"")
    );
    // One place per person per window.
    let res = join(&b, w, "1").await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-refusal=\"waitlist_already\"")
    );
    // More than the quota, a quantity that is none, someone who is nobody.
    let d = citizen(&app, "d@example.com").await;
    let res = join(&d, w, "3").await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("data-refusal=\"quota\""));
    assert_eq!(join(&d, w, "two").await.status(), 422);
    let res = d
        .post_form(
            &format!("/windows/{w}/waitlist"),
            &[("quantity", "1"), ("person", "someone")],
        )
        .await;
    assert_eq!(res.status(), 404);
    // No such window, or not a window at all.
    assert_eq!(join(&d, 999_999, "1").await.status(), 404);
    assert_eq!(
        d.post_form("/windows/x/waitlist", &[("quantity", "1")])
            .await
            .status(),
        404
    );
    // Without the form's CSRF token.
    let res = d
        .post_form_raw(
            &format!("/windows/{w}/waitlist"),
            &[("quantity", "1"), ("person", "self")],
        )
        .await;
    assert_eq!(res.status(), 403);
    // An account whose e-mail is not confirmed.
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "late@example.com",
        None,
        false,
        &key,
    );
    let late = app.new_visitor();
    late.login("late@example.com", fixtures::PASSWORD).await;
    assert_eq!(join(&late, w, "1").await.status(), 403);
    // Staff do not queue for masks; nobody does without logging in.
    let store: i64 = pickup_windows::table
        .find(w)
        .select(pickup_windows::store_id)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    assert_eq!(join(&pharmacist, w, "1").await.status(), 403);
    let res = join(&app.new_visitor(), w, "1").await;
    assert!(
        res.status() == 303 || res.status() == 401,
        "{}",
        res.status()
    );
    assert_eq!(line(&app, w), before);

    // An active reservation is no offer; another's offer is not found.
    let res = a
        .post_form(&format!("/reservations/{booked}/accept"), &[])
        .await;
    assert_eq!(res.status(), 409);
    a.post_form(&format!("/reservations/{booked}/cancel"), &[])
        .await;
    let offer = offer_of(&app, user_id(&app, "b@example.com"), w);
    for path in ["accept", "decline"] {
        let res = c
            .post_form(&format!("/reservations/{offer}/{path}"), &[])
            .await;
        assert_eq!(res.status(), 404, "{path} by another");
        let res = b
            .post_form_raw(&format!("/reservations/{offer}/{path}"), &[])
            .await;
        assert_eq!(res.status(), 403, "{path} without the token");
    }
    offer_of(&app, user_id(&app, "b@example.com"), w);

    // Leaving: once, from the list page, which it returns to.
    let res = c
        .post_form(
            &format!("/windows/{w}/waitlist/leave"),
            &[("person", "self"), ("next", "/reservations")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/reservations");
    let res = c
        .post_form(
            &format!("/windows/{w}/waitlist/leave"),
            &[("person", "self")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(line(&app, w), vec![(user_id(&app, "b@example.com"), true)]);
    assert_invariants(&app.db);
}

/// Waiting for the whole day (`whole_day=1`) queues the person in every
/// full window of that day that has not started; the first place offered in
/// any of them withdraws the others, and someone waiting for one window
/// keeps their place.
#[tokio::test]
async fn waiting_for_the_whole_day_joins_each_full_window_and_the_first_offer_withdraws_the_rest() {
    let (app, windows) = scene(2, 0).await;
    let mut fillers = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let v = citizen(&app, &format!("fill{i}@example.com")).await;
        let id = booked_id(&reserve(&v, *w, "2").await);
        fillers.push((v, id));
    }
    let b = citizen(&app, "b@example.com").await;
    let res = b
        .post_form(
            &format!("/windows/{}/waitlist", windows[0]),
            &[("quantity", "1"), ("person", "self"), ("whole_day", "1")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    let page = b.html(&back).await;
    assert!(
        page.contains("이 날의 만석 시간대에 모두 대기 신청했습니다"),
        "{page}"
    );
    assert_eq!(page.matches("data-waiting=\"self\"").count(), 3, "{page}");
    let c = citizen(&app, "c@example.com").await;
    assert_eq!(join(&c, windows[0], "1").await.status(), 303);
    let (bid, cid) = (
        user_id(&app, "b@example.com"),
        user_id(&app, "c@example.com"),
    );
    for w in &windows {
        assert_eq!(line(&app, *w)[0], (bid, false));
    }

    // A place frees in the last window: it is held for B, whose places in
    // the other two leave their lines; C keeps theirs.
    let (v, id) = &fillers[2];
    let res = v
        .post_form(&format!("/reservations/{id}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 303);
    offer_of(&app, bid, windows[2]);
    assert_eq!(line(&app, windows[2]), vec![(bid, true)]);
    assert_eq!(line(&app, windows[1]), vec![]);
    assert_eq!(line(&app, windows[0]), vec![(cid, false)]);
    assert_invariants(&app.db);

    // Without the box, one window's line only.
    let d = citizen(&app, "d@example.com").await;
    assert_eq!(join(&d, windows[1], "1").await.status(), 303);
    let did = user_id(&app, "d@example.com");
    assert_eq!(line(&app, windows[1]), vec![(did, false)]);
    assert_eq!(line(&app, windows[0]), vec![(cid, false)]);
}

/// Two instances (on PostgreSQL; two calls at once on SQLite, whose one
/// writer serialises them) each run the offer step for the same freed
/// places: each place gets one offer, to the first in line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_offering_the_same_freed_places_make_one_offer_each() {
    let (app, windows) = scene(2, 6).await;
    let second = second_instance(&app).await;
    let other = second.as_ref().unwrap_or(&app);
    for (round, w) in windows.iter().copied().enumerate() {
        let a = citizen(&app, &format!("a{round}@example.com")).await;
        booked_id(&reserve(&a, w, "2").await);
        let mut waiting = Vec::new();
        for i in 0..4 {
            let email = format!("w{round}-{i}@example.com");
            let v = citizen(&app, &email).await;
            assert_eq!(join(&v, w, "1").await.status(), 303);
            waiting.push(user_id(&app, &email));
        }
        // Two more places, made outside any transaction that offers them.
        let mut conn = app.db.get().unwrap();
        let now = app.state.clock.now();
        write_tx(&mut conn, |tx| {
            set_window_capacity(tx, w, 4, None, now.naive_utc())
        })
        .unwrap();
        drop(conn);
        let rounds = join_all([job(&app, now), job(other, now)]).await;
        let made: usize = rounds.iter().map(|r| r.offered).sum();
        assert_eq!(made, 2, "round {round}: {rounds:?}");
        let offered: Vec<bool> = waiting
            .iter()
            .map(|u| held_by(&app, *u, w).iter().any(|(_, s)| s == "offered"))
            .collect();
        assert_eq!(offered, [true, true, false, false], "round {round}");
        assert_eq!(reserved(&app, w), 4);
        assert_invariants(&app.db);
    }
}

/// The citizen accepts on one instance just before the hold ends while the
/// job on another lapses it just after: the offer is accepted, or lapsed and
/// passed on, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_accepted_as_it_lapses_is_accepted_or_passed_on_never_both() {
    let (app, windows) = scene(2, 0).await;
    let second = second_instance(&app).await;
    let other = Arc::new(second);
    for (round, w) in windows.iter().copied().enumerate() {
        let a = citizen(&app, &format!("a{round}@example.com")).await;
        let booked = booked_id(&reserve(&a, w, "2").await);
        let first = format!("first{round}@example.com");
        let next = format!("next{round}@example.com");
        let (b, c) = (citizen(&app, &first).await, citizen(&app, &next).await);
        assert_eq!(join(&b, w, "2").await.status(), 303);
        assert_eq!(join(&c, w, "2").await.status(), 303);
        drop(c);
        a.post_form(&format!("/reservations/{booked}/cancel"), &[])
            .await;
        let (bid, cid) = (user_id(&app, &first), user_id(&app, &next));
        let offer = offer_of(&app, bid, w);
        let until: chrono::NaiveDateTime = reservations::table
            .find(offer)
            .select(reservations::offer_until)
            .first::<Option<chrono::NaiveDateTime>>(&mut app.db.get().unwrap())
            .unwrap()
            .unwrap();

        // The citizen's instance stands a second before the end of the hold,
        // the job's a second after it.
        let before = until.and_utc() - TimeDelta::seconds(1);
        let after = until.and_utc() + TimeDelta::seconds(1);
        app.state.clock.advance(before - app.state.clock.now());
        let path = format!("/reservations/{offer}/accept");
        let accept = b.post_form(&path, &[]);
        let lapse = job(other.as_ref().as_ref().unwrap_or(&app), after);
        let (res, round_done) = tokio::join!(accept, lapse);
        let status = held_by(&app, bid, w);
        match res.status().as_u16() {
            303 => {
                assert_eq!(status, vec![(offer, "active".to_owned())]);
                assert_eq!(round_done.lapsed, 0);
                assert!(held_by(&app, cid, w).is_empty(), "no second offer");
            }
            409 => {
                assert_eq!(status, vec![(offer, "lapsed".to_owned())]);
                assert_eq!(round_done.lapsed, 1);
                offer_of(&app, cid, w);
            }
            other => panic!("round {round}: accept answered {other}"),
        }
        assert_eq!(reserved(&app, w), 2);
        assert_invariants(&app.db);
        // The next round's clock starts from 07:00 again.
        app.state
            .clock
            .advance(seoul(tuesday(), 7, 0) - app.state.clock.now());
    }
}

/// On a phone, in each language: a citizen finds a full window, joins its
/// line, and when a cancel frees the place, finds the offer on their
/// reservations page and accepts it for a pickup code.
#[tokio::test]
async fn on_a_phone_a_citizen_joins_a_full_windows_line_and_accepts_the_place_in_each_language() {
    use crate::common::browser::{Browser, log_in, wait_for};
    use fantoccini::Locator;

    const PHONE: (u32, u32) = (390, 844);
    let (app, windows) = scene(2, 0).await;
    for ((lang, code), w) in [("ko-KR", "ko"), ("en-US", "en"), ("zh-TW", "zh-TW")]
        .into_iter()
        .zip(windows.iter().copied())
    {
        // E-mail addresses are stored in lower case.
        let who = code.to_lowercase();
        let filler = format!("fills-{who}@example.com");
        let a = citizen(&app, &filler).await;
        let booked = booked_id(&reserve(&a, w, "2").await);
        let email = format!("waits-{who}@example.com");
        citizen(&app, &email).await;

        let browser = Browser::start_in(lang).await;
        let c = &browser.client;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        log_in(c, &app, &email).await;
        let html_lang = c
            .find(Locator::Css("html"))
            .await
            .unwrap()
            .attr("lang")
            .await
            .unwrap();
        assert_eq!(html_lang.as_deref(), Some(code));

        // The full window offers its line.
        c.goto(&app.url(&format!("/stores/{STORE}?day={}", tuesday())))
            .await
            .unwrap();
        let form = wait_for(c, &format!("form[data-waitlist-form='{w}']")).await;
        browser.check_page(&format!("waitlist-join-{code}")).await;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        // For the whole day: from the second language on, the windows
        // filled before are full too, and the first place offered withdraws
        // the others.
        form.find(Locator::Css("input[data-whole-day]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        form.find(Locator::Css("button[data-join-waitlist]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, &format!("#window-{w} [data-waiting='self']")).await;
        browser
            .check_page(&format!("waitlist-waiting-{code}"))
            .await;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();

        // A cancel elsewhere frees the place; the offer waits on the list.
        let res = a
            .post_form(&format!("/reservations/{booked}/cancel"), &[])
            .await;
        assert_eq!(res.status(), 303);
        c.goto(&app.url("/reservations")).await.unwrap();
        let row = wait_for(c, "tr[data-status='offered']").await;
        wait_for(c, "tr[data-status='offered'] [data-offer-until]").await;
        browser
            .check_page(&format!("waitlist-offered-{code}"))
            .await;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        row.find(Locator::Css("td.card-action a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-offer] [data-offer-until]").await;
        browser.check_page(&format!("waitlist-offer-{code}")).await;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        c.find(Locator::Css("button[data-accept-offer]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-status='active'] [data-pickup-code]").await;
        let user = user_id(&app, &email);
        assert!(
            held_by(&app, user, w)
                .iter()
                .any(|(_, status)| status == "active")
        );
        for other in windows.iter().filter(|o| **o != w) {
            assert!(
                !line(&app, *other).iter().any(|(u, _)| *u == user),
                "the offer withdrew the other places of the day"
            );
        }
        browser.close().await;
    }
    assert_invariants(&app.db);
}
