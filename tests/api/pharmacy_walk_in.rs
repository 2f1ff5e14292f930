//! Walk-in sales over HTTP on both backends: within and beyond the quota, the
//! rotation rule, beyond the walk-in stock, bad input (which part of a national
//! ID failed, never echoed back), the look-up limit, undoing within five
//! minutes by the seller only, the end-of-day summary and its CSV, and one
//! person bought for at two pharmacies at once (on PostgreSQL across two app
//! instances) getting only their quota. A look-up is no oracle: without stock
//! the person is not looked up, a quota refusal names a date and never a
//! count, and every look-up is in the audit log.

use chrono::{NaiveDate, TimeDelta};
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::Role;
use mask_reservation::accounts::national_id::NationalId;
use mask_reservation::clock::Clock;
use mask_reservation::config::SecretKey;
use mask_reservation::db::schema::{
    audit_log, people, quota_usage, settings, stock_ledger, store_days, users, walk_in_sales,
};
use mask_reservation::db::{Backend, Db, DbError};
use mask_reservation::pharmacy::walk_in::{self, Refusal, Sale, WalkInError};
use mask_reservation::quantity::Quantity;
use mask_reservation::rate_limit::Limit;
use mask_reservation::reservations::rules::MAX_QUANTITY;

use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, extract_csrf, fixtures, generous_limits,
    spawn_app_with,
};
use crate::pharmacy_pickup::{
    OTHER_STORE, book, citizen, confirm, counter, counter_on, walk_in_stock,
};
use crate::reservations::{seoul, tuesday};

/// Part of the message that says the check digit failed.
pub const CHECK_DIGIT_WORDS: &str = "마지막 확인 숫자가 맞지 않습니다";

/// Born 1 January 1985 (rotation: Friday).
fn id_1985() -> String {
    fixtures::national_id("850101123456")
}

/// Born 2 February 1987 (rotation: Tuesday, as 1 December 2026 is).
pub fn id_1987() -> String {
    fixtures::national_id("870202223456")
}

async fn sell(v: &Visitor, national_id: &str, quantity: &str) -> reqwest::Response {
    v.post_form(
        "/pharmacy/walk-in",
        &[("national_id", national_id), ("quantity", quantity)],
    )
    .await
}

/// (walk_in, quota used in all, sales not undone, ledger walk_in sum).
fn figures(db: &Db) -> (i32, i64, i64, i64) {
    let mut conn = db.get().unwrap();
    let walk_in: i32 = store_days::table
        .select(diesel::dsl::sum(store_days::walk_in))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0) as i32;
    let quota: i64 = quota_usage::table
        .select(diesel::dsl::sum(quota_usage::used))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0);
    let sales: i64 = walk_in_sales::table
        .filter(walk_in_sales::undone_at.is_null())
        .count()
        .get_result(&mut conn)
        .unwrap();
    let ledger: i64 = stock_ledger::table
        .filter(stock_ledger::kind.eq("walk_in"))
        .select(diesel::dsl::sum(stock_ledger::walk_in_delta))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0);
    (walk_in, quota, sales, ledger)
}

async fn refused(res: reqwest::Response) -> (u16, String, String) {
    crate::pharmacy_pickup::refusal(res).await
}

fn last_sale(db: &Db) -> i64 {
    let mut conn = db.get().unwrap();
    walk_in_sales::table
        .order(walk_in_sales::id.desc())
        .select(walk_in_sales::id)
        .first(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_sale_within_the_quota_takes_stock_and_quota_and_never_shows_the_number() {
    let c = counter(30, 10).await;
    let page = c.pharmacist.html("/pharmacy/walk-in").await;
    assert!(page.contains("data-walk-in-left=\"10\""), "{page}");

    let number = id_1985();
    let res = sell(&c.pharmacist, &number, "2").await;
    assert_eq!(res.status(), 303);
    let sale = last_sale(&c.app.db);
    assert_eq!(
        res.headers()["location"],
        format!("/pharmacy/walk-in?sold={sale}").as_str()
    );
    assert_eq!(figures(&c.app.db), (2, 2, 1, 2));
    let html = c
        .pharmacist
        .html(&format!("/pharmacy/walk-in?sold={sale}"))
        .await;
    assert!(html.contains("data-result=\"sold\""), "{html}");
    assert!(
        html.contains("판매 완료 · 이번 주 2개 중 2개 사용"),
        "{html}"
    );
    assert!(html.contains("data-walk-in-left=\"8\""));
    assert!(html.contains("850101-1******"), "{html}");
    assert!(html.contains("data-undo"));
    assert!(!html.contains(&number) && !html.contains(&number[6..]));
    let today = c.pharmacist.html("/pharmacy").await;
    assert!(today.contains("data-walk-in-left=\"8\""));

    // The quota is spent: the refusal shows the masked number, not the number.
    let res = sell(&c.pharmacist, &number, "1").await;
    let (status, kind, html) = refused(res).await;
    assert_eq!((status, kind.as_str()), (409, "quota"));
    assert!(html.contains("850101-1******"));
    assert!(!html.contains(&number));
    assert!(html.contains("name=\"national_id\" type=\"password\" value=\"\""));
    assert_eq!(figures(&c.app.db), (2, 2, 1, 2));
    let mut conn = c.app.db.get().unwrap();
    let kept: Vec<String> = people::table
        .select(people::national_id_masked)
        .load(&mut conn)
        .unwrap();
    assert!(kept.contains(&"850101-1******".to_owned()));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn reservations_and_walk_in_sales_share_one_quota() {
    let c = counter(30, 10).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    // Kim's person is the one with this national ID.
    let number = id_1987();
    let key = c.app.state.keys.national_id.clone();
    let today = chrono::Utc::now().date_naive();
    let hash = NationalId::parse(&number, today).unwrap().keyed_hash(&key);
    {
        let mut conn = c.app.db.get().unwrap();
        let person: i64 = users::table
            .filter(users::email.eq("kim@example.com"))
            .select(users::person_id)
            .first::<Option<i64>>(&mut conn)
            .unwrap()
            .unwrap();
        diesel::update(people::table.find(person))
            .set(people::national_id_hash.eq(&hash))
            .execute(&mut conn)
            .unwrap();
    }
    let (_, code) = book(&c.app, &kim, c.windows[0], 1).await;
    assert_eq!(confirm(&c.pharmacist, &code).await.status(), 200);
    let (status, kind, html) = refused(sell(&c.pharmacist, &number, "2").await).await;
    assert_eq!((status, kind.as_str()), (409, "quota"));
    // Not how many are left: from when two may be bought.
    assert!(html.contains("data-may-buy-from=\"2026-12-07\""), "{html}");
    assert!(!html.contains("1개만"), "{html}");
    assert_eq!(sell(&c.pharmacist, &number, "1").await.status(), 303);
    let mut conn = c.app.db.get().unwrap();
    let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
    assert_eq!(persons, 1, "the walk-in found Kim's person");
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn the_rotation_rule_and_the_walk_in_stock_refuse_with_their_reasons() {
    let c = counter(30, 3).await;
    {
        let mut conn = c.app.db.get().unwrap();
        diesel::update(settings::table.find("rotation"))
            .set(settings::value.eq("birth_year"))
            .execute(&mut conn)
            .unwrap();
        c.app.state.policy.refresh(&mut conn).unwrap();
    }
    // Born 1985: Friday. Tuesday is not their day.
    let (status, kind, html) = refused(sell(&c.pharmacist, &id_1985(), "1").await).await;
    assert_eq!((status, kind.as_str()), (409, "rotation"));
    assert!(html.contains("금요일"), "{html}");
    // Born 1987: Tuesday. Only 3 in walk-in stock: 4 is refused for the
    // stock, before the person is looked up.
    let (status, kind, html) = refused(sell(&c.pharmacist, &id_1987(), "4").await).await;
    assert_eq!((status, kind.as_str()), (409, "stock"), "{html}");
    assert!(html.contains("3개 남았습니다"), "{html}");
    let other = fixtures::national_id("870303123456");
    assert_eq!(sell(&c.pharmacist, &id_1987(), "2").await.status(), 303);
    assert_eq!(sell(&c.pharmacist, &other, "1").await.status(), 303);
    let (status, kind, html) =
        refused(sell(&c.pharmacist, &fixtures::national_id("870404123456"), "1").await).await;
    assert_eq!((status, kind.as_str()), (409, "stock"));
    assert!(html.contains("현장 판매 재고가 없습니다"), "{html}");
    assert_eq!(figures(&c.app.db), (3, 3, 2, 3));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn bad_input_is_refused_next_to_its_field_and_changes_nothing() {
    let c = counter(30, 10).await;
    let good = id_1985();
    let mut wrong_check = good.clone();
    let last = wrong_check.pop().unwrap().to_digit(10).unwrap();
    wrong_check.push(char::from_digit((last + 1) % 10, 10).unwrap());
    let cases: Vec<(String, &str, &str)> = vec![
        (String::new(), "1", "national_id"),
        ("12345".into(), "1", "national_id"),
        (wrong_check.clone(), "1", "national_id"),
        ("851301-1234567".into(), "1", "national_id"),
        ("850101-9234567".into(), "1", "national_id"),
        ("x".repeat(10 * 1024), "1", "national_id"),
        (good.clone(), "0", "quantity"),
        (good.clone(), "-1", "quantity"),
        (good.clone(), "abc", "quantity"),
        (good.clone(), "", "quantity"),
        (good.clone(), "101", "quantity"),
    ];
    for (id, quantity, field) in &cases {
        let res = sell(&c.pharmacist, id, quantity).await;
        assert_eq!(res.status(), 422, "{id:.20} {quantity}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("data-error-for=\"{field}\"")),
            "{id:.20} {quantity}: {html}"
        );
        assert!(!html.contains("xxxxxxxxxx"));
        // A valid number with a wrong quantity is kept, in its password
        // field and nowhere else; a number that failed is not kept at all.
        let kept = format!("name=\"national_id\" type=\"password\" value=\"{good}\"");
        if *field == "quantity" {
            assert!(html.contains(&kept), "{quantity}: {html}");
            assert_eq!(html.matches(good.as_str()).count(), 1, "{html}");
            assert!(html.contains("data-id-kept"));
        } else {
            assert!(!html.contains(&good) && !html.contains("data-id-kept"));
        }
    }
    // The check digit is named as what failed.
    let html = sell(&c.pharmacist, &wrong_check, "1")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(CHECK_DIGIT_WORDS), "{html}");
    // A quantity no sale may have is a mistake, like a mistyped number: no
    // look-up happened.
    assert!(lookups(&c.app.db).is_empty());
    // Beyond the stock (10), and without a CSRF token.
    let (status, kind, _) = refused(sell(&c.pharmacist, &good, "11").await).await;
    assert_eq!(status, 409);
    assert!(kind == "quota" || kind == "stock");
    let res = c
        .pharmacist
        .post_form_raw(
            "/pharmacy/walk-in",
            &[("national_id", &good), ("quantity", "1")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(figures(&c.app.db), (0, 0, 0, 0));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn the_walk_in_look_up_is_limited_per_pharmacist() {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        rate_limits: Some(mask_reservation::rate_limit::RateLimits {
            walk_in_per_account: Limit::per_minutes(2, 10),
            ..generous_limits()
        }),
        ..Spawn::default()
    })
    .await;
    let c = counter_on(app, 30, 10).await;
    assert_eq!(sell(&c.pharmacist, "bad", "1").await.status(), 422);
    assert_eq!(sell(&c.pharmacist, &id_1985(), "1").await.status(), 303);
    let res = sell(&c.pharmacist, &id_1987(), "1").await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(figures(&c.app.db), (1, 1, 1, 1));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn a_sales_banner_shows_to_its_seller_only_while_it_can_be_undone() {
    let c = counter(30, 10).await;
    let key = c.app.state.keys.national_id.clone();
    fixtures::user(
        &c.app.db,
        Role::Pharmacist,
        "p2@example.com",
        Some(c.store),
        true,
        &key,
    );
    let colleague = c.app.new_visitor();
    colleague.login("p2@example.com", fixtures::PASSWORD).await;

    assert_eq!(sell(&c.pharmacist, &id_1985(), "1").await.status(), 303);
    let first = last_sale(&c.app.db);
    let banner = |sale: i64| format!("/pharmacy/walk-in?sold={sale}");
    let html = c.pharmacist.html(&banner(first)).await;
    assert!(
        html.contains("판매 완료 · 이번 주 2개 중 1개 사용"),
        "{html}"
    );
    assert!(html.contains(&format!("action=\"/pharmacy/walk-in/{first}/undo\"")));
    assert!(html.contains("data-undo-last"));
    // The week's use is the answer to one's own sale, not a way to read it:
    // not for a colleague, not for a sale undone, not after the undo minutes,
    // not for what is not a sale id.
    let html = colleague.html(&banner(first)).await;
    assert!(
        !html.contains("data-result") && !html.contains("이번 주"),
        "{html}"
    );
    for nonsense in ["abc", "-1", "999999", ""] {
        let html = c
            .pharmacist
            .html(&format!("/pharmacy/walk-in?sold={nonsense}"))
            .await;
        assert!(!html.contains("data-result"), "{nonsense}");
    }
    assert_eq!(sell(&c.pharmacist, &id_1987(), "1").await.status(), 303);
    let second = last_sale(&c.app.db);
    let res = c
        .pharmacist
        .post_form(&format!("/pharmacy/walk-in/{second}/undo"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        !c.pharmacist
            .html(&banner(second))
            .await
            .contains("data-result")
    );
    c.app.state.clock.advance(TimeDelta::minutes(6));
    assert!(
        !c.pharmacist
            .html(&banner(first))
            .await
            .contains("data-result")
    );
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn the_seller_undoes_within_five_minutes_and_nobody_else_or_later() {
    let c = counter(30, 10).await;
    let key = c.app.state.keys.national_id.clone();
    fixtures::user(
        &c.app.db,
        Role::Pharmacist,
        "p2@example.com",
        Some(c.store),
        true,
        &key,
    );
    let colleague = c.app.new_visitor();
    assert_eq!(
        colleague
            .login("p2@example.com", fixtures::PASSWORD)
            .await
            .status(),
        303
    );

    assert_eq!(sell(&c.pharmacist, &id_1985(), "2").await.status(), 303);
    let sale = last_sale(&c.app.db);
    let undo = format!("/pharmacy/walk-in/{sale}/undo");

    let (status, kind, _) = refused(colleague.post_form(&undo, &[]).await).await;
    assert_eq!((status, kind.as_str()), (403, "undo_not_yours"));
    assert_eq!(figures(&c.app.db), (2, 2, 1, 2));

    c.app.state.clock.advance(TimeDelta::minutes(4));
    let res = c.pharmacist.post_form(&undo, &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(figures(&c.app.db), (0, 0, 0, 0));
    let html = c.pharmacist.html("/pharmacy/walk-in").await;
    assert!(html.contains("data-undone=\"true\""));
    assert!(html.contains("data-walk-in-left=\"10\""));
    let (status, kind, _) = refused(c.pharmacist.post_form(&undo, &[]).await).await;
    assert_eq!((status, kind.as_str()), (409, "undo_done"));

    // Quota given back: the person buys again, and that sale is too old to
    // undo six minutes later.
    assert_eq!(sell(&c.pharmacist, &id_1985(), "2").await.status(), 303);
    let again = last_sale(&c.app.db);
    c.app.state.clock.advance(TimeDelta::minutes(6));
    let (status, kind, _) = refused(
        c.pharmacist
            .post_form(&format!("/pharmacy/walk-in/{again}/undo"), &[])
            .await,
    )
    .await;
    assert_eq!((status, kind.as_str()), (409, "undo_too_late"));
    // Another store's pharmacist cannot even see it.
    let other = fixtures::store(&c.app.db, OTHER_STORE, "남산약국");
    fixtures::user(
        &c.app.db,
        Role::Pharmacist,
        "q@example.com",
        Some(other),
        true,
        &key,
    );
    let stranger = c.app.new_visitor();
    stranger.login("q@example.com", fixtures::PASSWORD).await;
    let res = stranger
        .post_form(&format!("/pharmacy/walk-in/{again}/undo"), &[])
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(figures(&c.app.db), (2, 2, 1, 2));
    let mut conn = c.app.db.get().unwrap();
    let deltas: Vec<i32> = stock_ledger::table
        .filter(stock_ledger::kind.eq("walk_in"))
        .order(stock_ledger::id)
        .select(stock_ledger::walk_in_delta)
        .load(&mut conn)
        .unwrap();
    assert_eq!(deltas, vec![2, -2, 2]);
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn the_summary_adds_up_the_day_and_exports_it() {
    let c = counter(30, 10).await;
    let kim = citizen(&c.app, "kim@example.com", "김지수").await;
    let lee = citizen(&c.app, "lee@example.com", "이영희").await;
    let (_, handed) = book(&c.app, &kim, c.windows[0], 2).await;
    let (_, no_show) = book(&c.app, &lee, c.windows[0], 1).await;
    let _ = no_show;
    assert_eq!(confirm(&c.pharmacist, &handed).await.status(), 200);
    assert_eq!(sell(&c.pharmacist, &id_1985(), "2").await.status(), 303);
    // After 12:30 the 09–12 no-show expires.
    c.app.state.clock.advance(TimeDelta::minutes(4 * 60 + 31));
    let now = c.app.state.clock.now();
    c.app
        .db
        .write(move |tx| mask_reservation::reservations::expiry::expire_due(tx, now, 30))
        .await
        .unwrap();

    let html = c.pharmacist.html("/pharmacy/summary").await;
    assert!(
        html.contains("data-handed-over=\"2\" data-no-show=\"1\""),
        "{html}"
    );
    assert!(html.contains("data-walk-in=\"2\""));
    // 30 − 2 handed over − 2 walk-in.
    assert!(html.contains("data-day-remaining=\"26\""), "{html}");
    let other_day = c.pharmacist.html("/pharmacy/summary?date=2026-12-05").await;
    assert!(other_day.contains("data-no-supply"));
    assert_eq!(
        c.pharmacist
            .get("/pharmacy/summary?date=yesterday")
            .await
            .status(),
        400
    );

    let res = c
        .pharmacist
        .get("/pharmacy/summary.csv?date=2026-12-01")
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBFwindow,"));
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("09:00–12:00,"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("day,"), "{text}");
    assert!(text.lines().last().unwrap().ends_with(",2,26"), "{text}");
    assert_invariants(&c.app.db);
}

/// One person (one national ID) bought for at two pharmacies, ten sales of
/// one at once, five at each: only the quota (2) is sold.
async fn race_for_one_person(here: &TestApp, there: &TestApp) {
    let store_a = fixtures::store(&here.db, "11800001", "중앙약국");
    let store_b = fixtures::store(&here.db, OTHER_STORE, "남산약국");
    for store in [store_a, store_b] {
        let windows = fixtures::supply(&here.db, store, tuesday(), 30);
        walk_in_stock(&here.db, windows[2], 10);
    }
    let key = here.state.keys.national_id.clone();
    fixtures::user(
        &here.db,
        Role::Pharmacist,
        "a@example.com",
        Some(store_a),
        true,
        &key,
    );
    fixtures::user(
        &here.db,
        Role::Pharmacist,
        "b@example.com",
        Some(store_b),
        true,
        &key,
    );
    let a = here.new_visitor();
    assert_eq!(
        a.login("a@example.com", fixtures::PASSWORD).await.status(),
        303
    );
    let b = there.new_visitor();
    assert_eq!(
        b.login("b@example.com", fixtures::PASSWORD).await.status(),
        303
    );
    let tokens = [
        extract_csrf(&a.html("/pharmacy/walk-in").await).unwrap(),
        extract_csrf(&b.html("/pharmacy/walk-in").await).unwrap(),
    ];
    let number = id_1985();
    let posts = (0..10).map(|i| {
        let (v, token) = if i % 2 == 0 {
            (&a, &tokens[0])
        } else {
            (&b, &tokens[1])
        };
        let number = number.clone();
        async move {
            v.post_form_raw(
                "/pharmacy/walk-in",
                &[
                    ("national_id", &number),
                    ("quantity", "1"),
                    ("csrf_token", token),
                ],
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = join_all(posts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        8,
        "{statuses:?}"
    );
    let mut conn = here.db.get().unwrap();
    let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
    assert_eq!(persons, 1, "one person, created once");
    assert_eq!(figures(&here.db), (2, 2, 2, 2));
    assert_invariants(&here.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_bought_for_at_two_pharmacies_at_once_gets_only_the_quota() {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 10, 0))),
        ..Spawn::default()
    })
    .await;
    race_for_one_person(&app, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_instances_selling_to_one_person_sell_only_the_quota() {
    // Both instances key the national-ID hash with the same secret, as a
    // deployment's instances do.
    let secret = SecretKey::generate();
    let (s1, s2) = (secret.clone(), secret);
    let here = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 10, 0))),
        configure: Some(Box::new(move |c| c.secret = s1)),
        ..Spawn::default()
    })
    .await;
    if here.backend() != Backend::Postgres {
        return;
    }
    let there = spawn_app_with(Spawn {
        database: Some(here.database.clone()),
        clock: Some(Clock::manual(seoul(tuesday(), 10, 0))),
        configure: Some(Box::new(move |c| c.secret = s2)),
        ..Spawn::default()
    })
    .await;
    race_for_one_person(&here, &there).await;
}

/// The keyed hash the app keeps of `number`.
pub fn hash_of(app: &TestApp, number: &str) -> String {
    let today = chrono::Utc::now().date_naive();
    NationalId::parse(number, today)
        .unwrap()
        .keyed_hash(&app.state.keys.national_id)
}

/// A citizen whose person is the holder of `number`; the account's id.
pub async fn citizen_with_id(app: &TestApp, email: &str, number: &str) -> i64 {
    citizen(app, email, "김지수").await;
    let hash = hash_of(app, number);
    let mut conn = app.db.get().unwrap();
    let (user, person): (i64, Option<i64>) = users::table
        .filter(users::email.eq(email))
        .select((users::id, users::person_id))
        .first(&mut conn)
        .unwrap();
    diesel::update(people::table.find(person.unwrap()))
        .set(people::national_id_hash.eq(&hash))
        .execute(&mut conn)
        .unwrap();
    user
}

/// Every walk-in look-up in the audit log, oldest first: (actor, entity,
/// entity id, after).
fn lookups(db: &Db) -> Vec<(Option<i64>, String, String, serde_json::Value)> {
    let mut conn = db.get().unwrap();
    let rows: Vec<(Option<i64>, String, String, Option<String>)> = audit_log::table
        .filter(audit_log::action.eq("walk_in.lookup"))
        .order(audit_log::id)
        .select((
            audit_log::actor_user_id,
            audit_log::entity,
            audit_log::entity_id,
            audit_log::after_json,
        ))
        .load(&mut conn)
        .unwrap();
    rows.into_iter()
        .map(|(actor, entity, id, after)| {
            (
                actor,
                entity,
                id,
                serde_json::from_str(&after.unwrap()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn without_walk_in_stock_nobody_is_looked_up_and_the_answer_is_the_same_for_everyone() {
    // No walk-in stock: every mask of the day is in the windows.
    let c = counter(30, 0).await;
    let number = id_1987();
    // This person has reserved their whole quota this week.
    let kim = citizen_with_id(&c.app, "kim@example.com", &number).await;
    fixtures::reservation(&c.app.db, c.windows[0], kim, 2);
    let stranger = fixtures::national_id("870505123456");

    let mut answers = Vec::new();
    for who in [&number, &stranger] {
        let (status, kind, html) = refused(sell(&c.pharmacist, who, "3").await).await;
        assert_eq!((status, kind.as_str()), (409, "stock"), "{html}");
        assert!(html.contains("현장 판매 재고가 없습니다"), "{html}");
        assert!(!html.contains("data-may-buy-from"), "{html}");
        assert!(
            !html.contains("개만") && !html.contains("이번 주"),
            "{html}"
        );
        assert!(!html.contains(who.as_str()));
        assert!(
            html.contains("role=\"alert\" data-result=\"refused\""),
            "{html}"
        );
        let start = html.find("data-result-detail").unwrap();
        let message = &html[start..start + html[start..].find("</p>").unwrap()];
        answers.push(message.to_owned());
    }
    assert_eq!(
        answers[0], answers[1],
        "the holder of a full quota and a stranger alike"
    );

    // Both look-ups are on record: who, where, whom (by keyed hash), what.
    let seen = lookups(&c.app.db);
    assert_eq!(seen.len(), 2);
    for ((actor, entity, id, after), who) in seen.iter().zip([&number, &stranger]) {
        assert_eq!(*actor, Some(c.pharmacist_id));
        assert_eq!(entity, "person");
        assert_eq!(id, &hash_of(&c.app, who));
        assert_eq!(after["store"], "11800001");
        assert_eq!(after["outcome"], "stock");
        assert_eq!(after["quantity"], 3);
        assert!(after["sale"].is_null());
    }
    let mut conn = c.app.db.get().unwrap();
    let texts: Vec<(String, Option<String>)> = audit_log::table
        .select((audit_log::entity_id, audit_log::after_json))
        .load(&mut conn)
        .unwrap();
    for (id, after) in texts {
        let all = format!("{id} {}", after.unwrap_or_default());
        assert!(
            !all.contains(&number[..6]) && !all.contains(&stranger[..6]),
            "{all}"
        );
    }
    // The stranger was not even written down as a person.
    let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
    assert_eq!(persons, 1);
    assert_eq!(figures(&c.app.db), (0, 2, 0, 0));
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn a_spent_quota_is_refused_with_the_day_it_comes_back_never_the_count() {
    let c = counter(30, 10).await;
    let number = id_1987();
    let kim = citizen_with_id(&c.app, "kim@example.com", &number).await;
    // One reserved this week (Tuesday 1 December): one more would be allowed,
    // two are not.
    fixtures::reservation(&c.app.db, c.windows[0], kim, 1);
    let (status, kind, html) = refused(sell(&c.pharmacist, &number, "2").await).await;
    assert_eq!((status, kind.as_str()), (409, "quota"), "{html}");
    assert!(html.contains("구매 불가 · 12월 7일(월)부터 가능"), "{html}");
    assert!(
        html.contains("role=\"alert\" data-result=\"refused\""),
        "{html}"
    );
    assert!(html.contains("data-may-buy-from=\"2026-12-07\""));
    assert!(!html.contains("개만") && !html.contains("1개"), "{html}");

    // Next week is taken too, by a reservation made ahead: the week after.
    let monday = tuesday() + TimeDelta::days(6);
    let next_week = fixtures::supply(&c.app.db, c.store, monday, 30);
    fixtures::reservation(&c.app.db, next_week[0], kim, 2);
    let (status, kind, html) = refused(sell(&c.pharmacist, &number, "2").await).await;
    assert_eq!((status, kind.as_str()), (409, "quota"));
    assert!(html.contains("data-may-buy-from=\"2026-12-14\""), "{html}");
    // More than the quota itself is said plainly, whoever it is for.
    let (status, kind, html) = refused(sell(&c.pharmacist, &number, "3").await).await;
    assert_eq!((status, kind.as_str()), (409, "above_quota"));
    assert!(html.contains("2개까지"), "{html}");
    // In English too, with the date and without the count.
    c.pharmacist
        .post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    let html = sell(&c.pharmacist, &number, "2")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Not allowed · can buy from Mon 14 Dec"),
        "{html}"
    );

    let seen = lookups(&c.app.db);
    let outcomes: Vec<&str> = seen
        .iter()
        .map(|s| s.3["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["quota", "quota", "above_quota", "quota"]);
    assert!(seen.iter().all(|s| s.2 == hash_of(&c.app, &number)));
    assert_eq!(
        figures(&c.app.db),
        (0, 3, 0, 0),
        "nothing sold, nothing taken"
    );
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn a_sale_is_audited_with_it_and_the_audit_page_shows_the_look_up() {
    let c = counter(30, 10).await;
    let number = id_1985();
    assert_eq!(sell(&c.pharmacist, &number, "2").await.status(), 303);
    let sale = last_sale(&c.app.db);
    let seen = lookups(&c.app.db);
    assert_eq!(seen.len(), 1);
    let (actor, entity, id, after) = &seen[0];
    assert_eq!((*actor, entity.as_str()), (Some(c.pharmacist_id), "person"));
    assert_eq!(id, &hash_of(&c.app, &number));
    assert_eq!(after["outcome"], "sold");
    assert_eq!(after["sale"], sale);
    assert_eq!(after["store"], "11800001");
    // Written with the sale, at the sale's time (the app's clock).
    let mut conn = c.app.db.get().unwrap();
    let sold_at: chrono::NaiveDateTime = walk_in_sales::table
        .find(sale)
        .select(walk_in_sales::created_at)
        .first(&mut conn)
        .unwrap();
    let logged_at: chrono::NaiveDateTime = audit_log::table
        .filter(audit_log::action.eq("walk_in.lookup"))
        .select(audit_log::created_at)
        .first(&mut conn)
        .unwrap();
    assert_eq!(logged_at, sold_at);
    assert_eq!(sold_at, seoul(tuesday(), 8, 0).naive_utc());

    let admin = c
        .app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let html = admin.html("/admin/audit?entity=person").await;
    assert!(html.contains("data-action=\"walk_in.lookup\""), "{html}");
    assert!(html.contains(&format!("data-entity-id=\"{id}\"")), "{html}");
    assert!(
        html.contains("결과: <span data-after>판매함</span>"),
        "{html}"
    );
    assert!(
        html.contains(&format!("판매 번호: <span data-after>{sale}</span>")),
        "{html}"
    );
    assert!(
        html.contains("판매처: <span data-after>11800001</span>"),
        "{html}"
    );
    assert!(
        html.contains("(판매처 11800001, 2개, 결과 판매함)"),
        "{html}"
    );
    assert!(
        !html.contains(&number) && !html.contains("850101"),
        "{html}"
    );
    assert_invariants(&c.app.db);
}

/// The bound of a sale's quantity is the sale's own (`walk_in::sell`), not
/// only its page's: a caller that skips the page is refused the same way,
/// before anything is read or written, and no look-up is recorded; at the
/// bound the sale goes on to its other checks. Through the page the refusal
/// sits next to the quantity, with the bound, in the pharmacist's language.
#[tokio::test]
async fn a_sale_beyond_the_bound_of_a_form_is_refused_by_the_sale_itself() {
    // Walk-in stock for more than the bound: only the bound can refuse.
    let c = counter(600, 150).await;
    let policy = c.app.state.policy().await.unwrap();
    let sale = |n: i32| Sale {
        pharmacist_id: c.pharmacist_id,
        store_id: c.store,
        national_id_hash: "ab".repeat(32),
        birth_date: NaiveDate::from_ymd_opt(1985, 1, 1).unwrap(),
        national_id_masked: "850101-1******".into(),
        for_person: None,
        proxy_checked: false,
        quantity: Quantity::new(n).unwrap(),
        now: seoul(tuesday(), 8, 0),
    };
    let beyond = Refusal::BadQuantity { max: MAX_QUANTITY };

    let (asked, p) = (sale(MAX_QUANTITY + 1), policy.clone());
    let direct = c
        .app
        .db
        .write(move |tx| walk_in::sell(tx, &asked, &p))
        .await;
    match direct {
        Err(DbError::Work(WalkInError::Refused(r))) => assert_eq!(r, beyond),
        other => panic!("not refused for its quantity: {other:?}"),
    }
    let recorded = walk_in::sell_recorded(&c.app.db, sale(MAX_QUANTITY + 1), policy.clone())
        .await
        .unwrap();
    assert_eq!(recorded, Err(beyond));
    assert!(lookups(&c.app.db).is_empty());
    let persons: i64 = people::table
        .count()
        .get_result(&mut c.app.db.get().unwrap())
        .unwrap();
    assert_eq!(persons, 0, "nobody was looked up");

    // At the bound: past this check, refused by the quota (2) and recorded.
    let at_bound = walk_in::sell_recorded(&c.app.db, sale(MAX_QUANTITY), policy)
        .await
        .unwrap();
    assert_eq!(at_bound, Err(Refusal::AboveQuota { quota: 2 }));
    assert_eq!(lookups(&c.app.db).len(), 1);

    // Through the page: 422, next to the field, with the bound, in Korean
    // and in English.
    let res = sell(&c.pharmacist, &id_1985(), "101").await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"quantity\""), "{html}");
    assert!(
        html.contains("수량은 1에서 100 사이의 숫자로 입력하세요."),
        "{html}"
    );
    assert!(!html.contains("data-refusal"), "{html}");
    c.pharmacist
        .post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    let html = sell(&c.pharmacist, &id_1985(), "101")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Enter a number of masks from 1 to 100."),
        "{html}"
    );
    assert_eq!(lookups(&c.app.db).len(), 1);
    assert_eq!(figures(&c.app.db), (0, 0, 0, 0));
    assert_invariants(&c.app.db);
}
