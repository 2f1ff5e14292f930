//! Reserving, reading and cancelling over HTTP on both backends: the store
//! page's forms, every refusal with its words and status, a resent form, the
//! reservation page with its pickup code and QR code, cancelling before and
//! after the cut-off, and the citizen's list.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::db::Db;
use mask_reservation::db::schema::{
    pickup_windows, quota_usage, reservations, stock_ledger, store_days, stores, users,
};
use mask_reservation::policy::Policy;

use crate::common::{Spawn, TestApp, Visitor, assert_invariants, fixtures, spawn_app_with};

const STORE: &str = "11800001";

/// Tuesday 1 December 2026 (the week of Monday 30 November).
pub fn tuesday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

/// `h:m` in Seoul on `day`.
pub fn seoul(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Seoul
        .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The app with its clock at 08:00 on Tuesday, a store with `supply` on that
/// day (three windows: 09–12, 12–15, 15–18), and the windows' ids in order.
async fn app_with_supply(supply: i32) -> (TestApp, i64, Vec<i64>) {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), supply);
    (app, store, windows)
}

async fn citizen(app: &TestApp, email: &str) -> Visitor {
    app.logged_in_as(Role::Citizen, email, None).await
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

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Books `quantity` in `window`; the reservation's id.
async fn book(v: &Visitor, window: i64, quantity: &str) -> i64 {
    let res = reserve(v, window, quantity).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    location(&res)
        .strip_prefix("/reservations/")
        .unwrap()
        .parse()
        .unwrap()
}

/// (window reserved, store-day reserved).
fn reserved(db: &Db, window: i64) -> (i32, i32) {
    let mut conn = db.get().unwrap();
    pickup_windows::table
        .inner_join(store_days::table)
        .filter(pickup_windows::id.eq(window))
        .select((pickup_windows::reserved, store_days::reserved))
        .first(&mut conn)
        .unwrap()
}

fn quota_used(db: &Db) -> i32 {
    let mut conn = db.get().unwrap();
    quota_usage::table
        .select(diesel::dsl::sum(quota_usage::used))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0) as i32
}

/// A refused post: its status, and the page's `data-refusal` message.
async fn refused(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let html = res.text().await.unwrap();
    let marker = "data-refusal=\"";
    let kind = html
        .find(marker)
        .map(|i| {
            let rest = &html[i + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .unwrap_or_else(|| panic!("no refusal on the page ({status}): {html}"));
    (status, kind)
}

#[tokio::test]
async fn booking_takes_stock_and_quota_records_it_mails_and_shows_the_code_and_qr() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;

    let page = v.html(&format!("/stores/{STORE}")).await;
    assert!(page.contains(&format!("data-reserve-form=\"{}\"", windows[0])));
    assert!(page.contains("name=\"request_id\""));

    // The 12:00 window: cancellable until 11:00.
    let id = book(&v, windows[1], "2").await;
    assert_eq!(reserved(&app.db, windows[1]), (2, 2));
    assert_eq!(quota_used(&app.db), 2);
    let mut conn = app.db.get().unwrap();
    let (code, status, period): (String, String, NaiveDate) = reservations::table
        .find(id)
        .select((
            reservations::pickup_code,
            reservations::status,
            reservations::period_start,
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!(status, "active");
    assert_eq!(period, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    assert_eq!(code.len(), 8);
    let ledger: Vec<(String, i32)> = stock_ledger::table
        .filter(stock_ledger::reservation_id.eq(id))
        .select((stock_ledger::kind, stock_ledger::reserved_delta))
        .load(&mut conn)
        .unwrap();
    assert_eq!(ledger, vec![("reservation".to_owned(), 2)]);

    let res = v.get(&format!("/reservations/{id}")).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!("data-pickup-code=\"{code}\"")));
    assert!(html.contains(&format!("{}-{}", &code[..4], &code[4..])));
    assert!(html.contains("<svg") && html.contains("role=\"img\""));
    assert!(html.contains("data-flash=\"reservation.flash.booked\""));
    assert!(html.contains(&format!("href=\"/reservations/{id}/cancel\"")));

    let mail = app
        .smtp
        .wait_for(1)
        .await
        .into_iter()
        .find(|m| m.recipients == ["kim@example.com"])
        .unwrap();
    let body = mail.text_body();
    assert!(
        body.contains(&format!("{}-{}", &code[..4], &code[4..])),
        "{body}"
    );
    assert!(body.contains(&format!("/reservations/{id}")), "{body}");
    assert!(body.contains("중앙약국"), "{body}");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn reserving_beyond_the_quota_is_refused_with_what_is_left_and_the_quantity_kept() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    book(&v, windows[0], "1").await;
    let res = reserve(&v, windows[1], "2").await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-refusal=\"quota\""), "{html}");
    assert!(
        html.contains("1 mask(s) left") || html.contains("1개만"),
        "{html}"
    );
    assert!(html.contains(&format!("id=\"q-{}\"", windows[1])));
    assert!(html.contains("value=\"2\""), "the quantity is kept");
    book(&v, windows[1], "1").await;
    assert_eq!(
        refused(reserve(&v, windows[2], "1").await).await,
        (409, "quota".into())
    );
    assert_eq!(quota_used(&app.db), 2);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_full_window_is_refused_with_the_windows_still_open_that_day() {
    let (app, _, windows) = app_with_supply(3).await;
    let a = citizen(&app, "a@example.com").await;
    let b = citizen(&app, "b@example.com").await;
    book(&a, windows[0], "1").await;
    let res = b
        .client
        .post(b.url("/reservations"))
        .header("Accept-Language", "en")
        .form(&[
            ("window_id", windows[0].to_string()),
            ("quantity", "1".into()),
            ("csrf_token", b.csrf_token().await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-refusal=\"full\""), "{html}");
    assert!(html.contains("12:00–15:00 (1 left)"), "{html}");
    assert!(html.contains("15:00–18:00 (1 left)"), "{html}");
    assert_eq!(reserved(&app.db, windows[0]), (1, 1));
    assert_eq!(quota_used(&app.db), 1, "the refused take was rolled back");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn windows_whose_booking_closed_or_that_lie_beyond_the_horizon_are_refused() {
    let (app, store, windows) = app_with_supply(30).await;
    let far = fixtures::supply(&app.db, store, tuesday() + chrono::Duration::days(8), 30);
    let v = citizen(&app, "kim@example.com").await;
    assert_eq!(
        refused(reserve(&v, far[0], "1").await).await,
        (409, "horizon".into())
    );
    // 09:00–12:00 has started and still takes bookings until 11:30.
    app.state.clock.advance(chrono::TimeDelta::minutes(210 - 1));
    let page = v.html(&format!("/stores/{STORE}")).await;
    assert!(!page.contains("data-not-bookable=\"closed\""), "{page}");
    app.state.clock.advance(chrono::TimeDelta::minutes(1));
    assert_eq!(
        refused(reserve(&v, windows[0], "1").await).await,
        (409, "closed".into())
    );
    let page = v.html(&format!("/stores/{STORE}")).await;
    assert!(page.contains("data-not-bookable=\"closed\""), "{page}");
    // The next window still can be.
    book(&v, windows[1], "1").await;
    assert_invariants(&app.db);
}

#[tokio::test]
async fn rotation_suspension_and_unverified_accounts_are_refused_with_their_reason() {
    let (app, store, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    // Fixture citizens are born in 1985: Friday. 1 December 2026 is a Tuesday.
    app.set_setting("rotation", "birth_year");
    let res = reserve(&v, windows[0], "1").await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-refusal=\"rotation\""));
    assert!(html.contains("금요일"), "{html}");
    app.set_setting("rotation", "off");

    {
        let mut conn = app.db.get().unwrap();
        diesel::update(stores::table.find(store))
            .set(stores::suspended.eq(true))
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(
        refused(reserve(&v, windows[0], "1").await).await,
        (409, "suspended".into())
    );
    let page = v.html(&format!("/stores/{STORE}")).await;
    assert!(page.contains("data-sales-stopped"));
    assert!(page.contains("data-remain-stat=\"break\""));
    assert!(!page.contains("data-reserve-form"));
    {
        let mut conn = app.db.get().unwrap();
        diesel::update(stores::table.find(store))
            .set(stores::suspended.eq(false))
            .execute(&mut conn)
            .unwrap();
    }

    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "new@example.com", None, false, &key);
    let unverified = app.new_visitor();
    assert_eq!(
        unverified
            .login("new@example.com", fixtures::PASSWORD)
            .await
            .status(),
        303
    );
    assert_eq!(
        refused(reserve(&unverified, windows[0], "1").await).await,
        (403, "unverified".into())
    );
    let page = unverified.html(&format!("/stores/{STORE}")).await;
    assert!(page.contains("data-verify-to-reserve"));
    assert!(!page.contains("data-reserve-form"));
    assert_eq!(quota_used(&app.db), 0);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn bad_quantities_and_window_ids_are_refused_without_a_server_error() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    for typed in ["abc", "0", "-1", "101", "99999999999999", "", "1.5"] {
        let res = reserve(&v, windows[0], typed).await;
        assert_eq!(res.status(), 422, "{typed:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("data-refusal=\"quantity\""), "{typed:?}");
        assert!(
            html.contains(&format!("value=\"{typed}\"")),
            "{typed:?} kept"
        );
    }
    assert_eq!(reserve(&v, 999_999, "1").await.status(), 404);
    for id in ["abc", "", "1e3"] {
        let res = v
            .post_form("/reservations", &[("window_id", id), ("quantity", "1")])
            .await;
        assert_eq!(res.status(), 400, "{id:?}");
    }
    // No CSRF token.
    let res = v
        .post_form_raw(
            "/reservations",
            &[("window_id", &windows[0].to_string()), ("quantity", "1")],
        )
        .await;
    assert_eq!(res.status(), 403);
    // Staff do not reserve.
    let store = fixtures::store(&app.db, "11800002", "다른약국");
    for (role, email, store) in [
        (Role::Pharmacist, "ph@example.com", Some(store)),
        (Role::Admin, "ad@example.com", None),
    ] {
        let staff = app.logged_in_as(role, email, store).await;
        assert_eq!(reserve(&staff, windows[0], "1").await.status(), 403);
        let page = staff.html(&format!("/stores/{STORE}")).await;
        assert!(!page.contains("data-reserve-form"));
    }
    assert_eq!(reserved(&app.db, windows[0]), (0, 0));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_resent_form_returns_the_first_reservation_and_a_form_without_request_id_still_books() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    let fields = |rid: &'static str| {
        vec![
            ("window_id", windows[0].to_string()),
            ("quantity", "1".to_owned()),
            ("request_id", rid.to_owned()),
        ]
    };
    let post = |f: Vec<(&'static str, String)>| {
        let v = v.clone();
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            v.post_form("/reservations", &f).await
        }
    };
    let first = post(fields("form-1")).await;
    let again = post(fields("form-1")).await;
    assert_eq!(first.status(), 303);
    assert_eq!(again.status(), 303);
    assert_eq!(location(&first), location(&again));
    let page = v.html(&location(&again)).await;
    assert!(page.contains("reservation.flash.already_booked"));
    assert_eq!(reserved(&app.db, windows[0]), (1, 1));

    let res = v
        .post_form(
            "/reservations",
            &[("window_id", &windows[1].to_string()), ("quantity", "1")],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_ne!(location(&res), location(&first));
    assert_eq!(quota_used(&app.db), 2);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_store_page_counts_each_windows_quota_in_the_week_of_its_date() {
    let (app, store, this_week) = app_with_supply(30).await;
    let next_week = fixtures::supply(&app.db, store, tuesday() + chrono::Days::new(7), 30);
    let v = citizen(&app, "kim@example.com").await;
    book(&v, this_week[0], "2").await;

    let day = |d: NaiveDate| format!("/stores/{STORE}?day={d}");
    let page = v.html(&day(tuesday())).await;
    let form = |w: &i64| format!("data-reserve-form=\"{w}\"");
    for w in &this_week[1..] {
        assert!(!page.contains(&form(w)), "this week's quota is used up");
        assert!(page.contains(&format!("id=\"quota-{w}\"")));
    }
    let page = v.html(&day(tuesday() + chrono::Days::new(7))).await;
    for w in &next_week {
        assert!(page.contains(&form(w)), "next week's quota is whole");
    }
    // With nothing left this week, the page opens on the first day that can
    // still be booked.
    let page = v.html(&format!("/stores/{STORE}")).await;
    assert!(page.contains(&form(&next_week[0])), "{page}");
}

#[tokio::test]
async fn a_session_that_ended_books_nothing_not_even_a_resent_form_and_is_logged_out() {
    let (app, _, windows) = app_with_supply(30).await;
    let resent = [
        ("window_id", windows[0].to_string()),
        ("quantity", "1".to_owned()),
        ("request_id", "form-1".to_owned()),
    ];
    let resent: Vec<(&str, &str)> = resent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let kim = citizen(&app, "kim@example.com").await;
    assert_eq!(kim.post_form("/reservations", &resent).await.status(), 303);
    let lee = citizen(&app, "lee@example.com").await;
    let mut conn = app.db.get().unwrap();
    // Kim's password is reset elsewhere (the epoch moves on); Lee is disabled.
    diesel::update(users::table.filter(users::email.eq("kim@example.com")))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(&mut conn)
        .unwrap();
    diesel::update(users::table.filter(users::email.eq("lee@example.com")))
        .set(users::disabled_at.eq(Some(Utc::now().naive_utc())))
        .execute(&mut conn)
        .unwrap();

    for (v, fields) in [(&kim, resent.clone()), (&lee, resent.clone())] {
        let res = v.post_form("/reservations", &fields).await;
        assert_eq!(res.status(), 303);
        assert_eq!(location(&res), "/login?next=%2Freservations");
        assert_eq!(
            v.get("/reservations").await.status(),
            303,
            "the session is over"
        );
    }
    assert_eq!(reserved(&app.db, windows[0]), (1, 1), "only Kim's first");
    assert_eq!(quota_used(&app.db), 1);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn cancelling_gives_stock_and_quota_back_once_and_only_before_the_cutoff() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    // 12:00 window: cancellable until 11:00.
    let id = book(&v, windows[1], "2").await;
    let res = v
        .post_form(&format!("/reservations/{id}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/reservations/{id}"));
    assert_eq!(reserved(&app.db, windows[1]), (0, 0));
    assert_eq!(quota_used(&app.db), 0);
    {
        let mut conn = app.db.get().unwrap();
        let kinds: Vec<(String, i32)> = stock_ledger::table
            .filter(stock_ledger::reservation_id.eq(id))
            .order(stock_ledger::id)
            .select((stock_ledger::kind, stock_ledger::reserved_delta))
            .load(&mut conn)
            .unwrap();
        assert_eq!(
            kinds,
            vec![("reservation".into(), 2), ("cancel".into(), -2)]
        );
    }
    let html = v.html(&format!("/reservations/{id}")).await;
    assert!(html.contains("data-status=\"cancelled\""));
    assert!(!html.contains("data-cancel-link"));
    let mails = app.smtp.wait_for(2).await;
    assert!(mails.iter().any(|m| m.subject().contains("취소")));

    let again = v
        .post_form(&format!("/reservations/{id}/cancel"), &[])
        .await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("data-cancel-refused"));

    let late = book(&v, windows[1], "1").await;
    app.state.clock.advance(chrono::TimeDelta::hours(3)); // 11:00
    let html = v.html(&format!("/reservations/{late}")).await;
    assert!(!html.contains("data-cancel-link"));
    let res = v
        .post_form(&format!("/reservations/{late}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        reserved(&app.db, windows[1]),
        (1, 1),
        "nothing was given back"
    );
    assert_eq!(quota_used(&app.db), 1);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn another_citizens_reservation_is_not_found_to_read_or_cancel() {
    let (app, _, windows) = app_with_supply(30).await;
    let owner = citizen(&app, "owner@example.com").await;
    let other = citizen(&app, "other@example.com").await;
    let id = book(&owner, windows[0], "1").await;
    assert_eq!(
        other.get(&format!("/reservations/{id}")).await.status(),
        404
    );
    let res = other
        .post_form(&format!("/reservations/{id}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(other.get("/reservations/abc").await.status(), 404);
    assert_eq!(
        other
            .post_form("/reservations/abc/cancel", &[])
            .await
            .status(),
        404
    );
    assert_eq!(reserved(&app.db, windows[0]), (1, 1));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_list_links_each_reservation_newest_first_with_its_status() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    let first = book(&v, windows[1], "1").await;
    v.post_form(&format!("/reservations/{first}/cancel"), &[])
        .await;
    let second = book(&v, windows[2], "1").await;
    let html = v.html("/reservations").await;
    let a = html
        .find(&format!("href=\"/reservations/{second}\""))
        .unwrap();
    let b = html
        .find(&format!("href=\"/reservations/{first}\""))
        .unwrap();
    assert!(a < b, "newest first");
    assert!(html.contains("data-status=\"cancelled\""));
    assert!(html.contains("data-status=\"active\""));
    assert!(html.contains("data-quota-left=\"1\""));
}

#[tokio::test]
async fn the_store_page_is_public_and_unknown_codes_are_not_found() {
    let (app, _, windows) = app_with_supply(150).await;
    let anon = app.new_visitor();
    let res = anon.get(&format!("/stores/{STORE}")).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("중앙약국"));
    assert!(html.contains("data-remain-stat=\"plenty\""));
    assert!(html.contains(&format!("data-window=\"{}\"", windows[0])));
    assert!(html.contains("/login?next=%2Fstores%2F11800001"));
    assert!(!html.contains("data-reserve-form"));
    assert_eq!(anon.get("/stores/99999999").await.status(), 404);
    assert_eq!(anon.get("/stores/abc").await.status(), 404);
}

/// `verify` names a reservation counted against another week than its
/// window's date, with its quota.
#[tokio::test]
async fn verify_names_a_reservation_counted_in_another_period() {
    let app = crate::common::spawn_app().await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let day = tuesday();
    let window = fixtures::supply(&app.db, store, day, 30)[0];
    let key = app.state.keys.national_id.clone();
    let user = fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    let id = fixtures::reservation(&app.db, window, user, 1);
    assert_invariants(&app.db);

    // Moved, with its quota row, to the week before: every sum still agrees,
    // only the period is wrong.
    let mut conn = app.db.get().unwrap();
    let week_before = day - chrono::Days::new(7);
    let monday = Policy::load(&mut conn)
        .unwrap()
        .period
        .start_of(week_before);
    diesel::update(reservations::table.find(id))
        .set(reservations::period_start.eq(monday))
        .execute(&mut conn)
        .unwrap();
    diesel::update(quota_usage::table)
        .set(quota_usage::period_start.eq(monday))
        .execute(&mut conn)
        .unwrap();
    let findings = mask_reservation::verify::run(&mut conn).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        findings[0].check,
        "reservation counted in another period than its window's date"
    );
    assert_eq!(
        (findings[0].what.as_str(), findings[0].id),
        ("reservation", id)
    );
}

#[tokio::test]
async fn the_cancel_page_names_what_it_would_cancel_and_offers_no_button_once_too_late() {
    let (app, _, windows) = app_with_supply(30).await;
    let v = citizen(&app, "kim@example.com").await;
    let other = citizen(&app, "other@example.com").await;
    // 12:00–15:00: cancellable until 11:00.
    let kept = book(&v, windows[1], "1").await;
    let cancelled = book(&v, windows[2], "1").await;
    let page = |id: i64| format!("/reservations/{id}/cancel");

    let res = v.get(&page(kept)).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("중앙약국"), "{html}");
    assert!(html.contains("12:00–15:00"), "{html}");
    assert!(html.contains("data-quantity=\"1\"") && html.contains("마스크 1개"));
    assert!(html.contains(&format!("action=\"/reservations/{kept}/cancel\"")));
    assert!(html.contains(&format!("href=\"/reservations/{kept}\"")));
    assert!(html.contains("11:00까지 취소할 수 있습니다"), "{html}");

    // Someone else's reservation is as absent as one that does not exist.
    assert_eq!(other.get(&page(kept)).await.status(), 404);
    assert_eq!(v.get("/reservations/abc/cancel").await.status(), 404);
    // A post without the form's token changes nothing.
    let res = v.post_form_raw(&page(kept), &[]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(reserved(&app.db, windows[1]), (1, 2));

    // Cancelled already: the page says so, with no button.
    let res = v.post_form(&page(cancelled), &[]).await;
    assert_eq!(res.status(), 303);
    let html = v.html(&page(cancelled)).await;
    assert!(html.contains("data-cancel-closed"), "{html}");
    assert!(html.contains("취소됨"), "{html}");
    assert!(!html.contains("data-cancel-form"));

    // Past the cut-off: the page says until when it could have been done.
    app.state.clock.advance(chrono::TimeDelta::hours(3)); // 11:00
    let res = v.get(&page(kept)).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-cancel-closed"), "{html}");
    assert!(html.contains("취소 가능 시간이 지났습니다"), "{html}");
    assert!(!html.contains("data-cancel-form"));
    let english = v
        .get_with_lang(&page(kept), "en")
        .await
        .text()
        .await
        .unwrap();
    assert!(english.contains("data-cancel-closed"), "{english}");
    assert_eq!(reserved(&app.db, windows[1]), (1, 1));
    assert_invariants(&app.db);
}

/// The whole tag around byte `at` of `html`.
fn tag_at(html: &str, at: usize) -> &str {
    let start = html[..at].rfind('<').unwrap();
    &html[start..at + html[at..].find('>').unwrap() + 1]
}

/// The `data-suggested-window` of a refused booking's page, if any.
fn suggested(html: &str) -> Option<i64> {
    let marker = "data-suggested-window=\"";
    let at = html.find(marker)? + marker.len();
    html[at..html[at..].find('"')? + at].parse().ok()
}

#[tokio::test]
async fn a_refused_booking_is_said_at_the_top_with_the_nearest_window_that_can_be_booked() {
    let (app, store, windows) = app_with_supply(30).await;
    let next_week = fixtures::supply(&app.db, store, tuesday() + chrono::Days::new(7), 30);
    // Each window holds 7 (30 less the walk-in share, in three): six taken.
    for (i, q) in ["2", "2", "2"].iter().enumerate() {
        let rival = citizen(&app, &format!("rival{i}@example.com")).await;
        book(&rival, windows[0], q).await;
    }
    let v = citizen(&app, "kim@example.com").await;

    // Lost race: the window has one place, two asked. The summary comes
    // first, takes the focus, and offers the next window for the two.
    let res = reserve(&v, windows[0], "2").await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    let summary = html.find("data-error-summary").unwrap();
    assert!(
        summary < html.find("<h1").unwrap(),
        "the refusal comes first"
    );
    assert!(html[..summary].contains("data-refusal=\"full\""));
    assert!(tag_at(&html, summary).contains("autofocus"));
    assert!(html.contains("이 수령 시간은 마감되었습니다"), "{html}");
    assert_eq!(suggested(&html), Some(windows[1]), "{html}");
    let form = &html[html.find("data-suggested-window").unwrap()..];
    assert!(form.contains("name=\"quantity\" value=\"2\""), "{form}");
    assert!(form.contains("name=\"csrf_token\""));

    // Over the quota: the nearest window is in the week that has some left.
    book(&v, windows[1], "2").await;
    let res = reserve(&v, windows[2], "1").await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-refusal=\"quota\""));
    assert_eq!(suggested(&html), Some(next_week[0]), "{html}");

    // A mistake in the form itself is not answered with another window.
    let res = reserve(&v, next_week[0], "0").await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-summary") && html.contains("data-refusal=\"quantity\""));
    assert_eq!(suggested(&html), None);

    // In English too.
    let res = v
        .client
        .post(v.url("/reservations"))
        .header("accept-language", "en")
        .form(&[
            ("window_id", windows[2].to_string().as_str()),
            ("quantity", "1"),
            ("csrf_token", &v.csrf_token().await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("You have no masks left in this window"),
        "{html}"
    );
    assert_eq!(suggested(&html), Some(next_week[0]));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_store_page_shows_one_day_without_ended_windows_the_quota_once_and_the_rotation_day() {
    let (app, store, tuesday_windows) = app_with_supply(30).await;
    let wednesday = tuesday() + chrono::Days::new(1);
    let wednesday_windows = fixtures::supply(&app.db, store, wednesday, 30);
    let v = citizen(&app, "kim@example.com").await;
    app.state.clock.advance(chrono::TimeDelta::minutes(270)); // 12:30
    let html = v.html(&format!("/stores/{STORE}")).await;
    let window = |w: &i64| format!("data-window=\"{w}\"");
    assert!(!html.contains(&window(&tuesday_windows[0])), "ended");
    assert!(html.contains(&window(&tuesday_windows[1])));
    assert!(
        !html.contains(&window(&wednesday_windows[0])),
        "another day"
    );
    assert!(html.contains(&format!(
        "data-day-link=\"{}\" aria-current=\"true\"",
        tuesday()
    )));
    assert!(html.contains(&format!(
        "href=\"/stores/{STORE}?day={wednesday}#windows-title\""
    )));
    // The quota once, at the top; the quantity preset to all of it.
    assert_eq!(html.matches("data-quota>").count(), 1, "{html}");
    assert_eq!(
        html.matches("data-quota-left=").count(),
        2,
        "this week and next"
    );
    assert!(!html.contains("더 예약할 수 있습니다"));
    let input = tag_at(
        &html,
        html.find(&format!("id=\"q-{}\"", tuesday_windows[1]))
            .unwrap(),
    );
    assert!(input.contains("value=\"2\""), "{input}");

    let html = v.html(&format!("/stores/{STORE}?day={wednesday}")).await;
    assert!(html.contains(&window(&wednesday_windows[0])));
    assert!(!html.contains(&window(&tuesday_windows[1])));
    assert!(html.contains(&format!(
        "data-day-link=\"{wednesday}\" aria-current=\"true\""
    )));
    let res = v.get(&format!("/stores/{STORE}?day=tomorrow")).await;
    assert_eq!(res.status(), 400);
    let res = v.get(&format!("/stores/{STORE}?day=2030-01-01")).await;
    assert_eq!(res.status(), 200, "a day without windows shows the first");

    // Rotation: born in 1985, the citizen buys on Fridays (and weekends).
    app.set_setting("rotation", "birth_year");
    let html = v.html(&format!("/stores/{STORE}?day={wednesday}")).await;
    assert!(html.contains("data-rotation-line"), "{html}");
    assert!(html.contains("회원님의 구매 요일: 금요일"), "{html}");
    assert_eq!(html.matches("data-not-bookable=\"rotation\"").count(), 3);
    assert!(!html.contains("data-reserve-form"));
    // Anyone not logged in sees no rotation line: it is about a person.
    let html = app.new_visitor().html(&format!("/stores/{STORE}")).await;
    assert!(!html.contains("data-rotation-line"));
    assert!(!html.contains("data-not-bookable=\"rotation\""));
}
