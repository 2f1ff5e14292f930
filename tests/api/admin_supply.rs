//! The administrator's daily supply and window capacities: allocation, changes
//! that move only unreserved capacity, refusals with their numbers, copying
//! the previous day, the CSV import, and concurrent edits of one store-day.

use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{audit_log, pickup_windows, stock_ledger, store_days, stores};

use crate::common::{Spawn, TestApp, Visitor, assert_invariants, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

const CODE: &str = "11800001";

struct Scene {
    app: TestApp,
    admin: Visitor,
    store: i64,
    /// Tomorrow in the service zone: no window has ended.
    day: NaiveDate,
}

async fn scene() -> Scene {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, CODE, "중앙약국");
    // Large reservations by one citizen in these tests stay within the quota.
    app.set_setting("quota_per_period", "100");
    // These tests follow the windows' split and an administrator's own
    // margin; the walk-in share has tests of its own below.
    app.set_setting("walk_in_share_percent", "0");
    let day = app.today() + Duration::days(1);
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    Scene {
        app,
        admin,
        store,
        day,
    }
}

async fn set_supply(
    admin: &Visitor,
    code: &str,
    day: NaiveDate,
    quantity: &str,
) -> reqwest::Response {
    admin
        .post_form(
            "/admin/supply",
            &[
                ("store_code", code),
                ("date", &day.to_string()),
                ("quantity", quantity),
                ("q", ""),
                ("page", "1"),
            ],
        )
        .await
}

/// (supply, window capacity) of the store-day.
fn store_day(app: &TestApp, store: i64, day: NaiveDate) -> Option<(i32, i32)> {
    let mut conn = app.db.get().unwrap();
    store_days::table
        .filter(store_days::store_id.eq(store))
        .filter(store_days::day.eq(day))
        .select((store_days::supply, store_days::window_capacity))
        .first(&mut conn)
        .optional()
        .unwrap()
}

/// (id, capacity) of each window, earliest first.
fn windows(app: &TestApp, store: i64, day: NaiveDate) -> Vec<(i64, i32)> {
    let mut conn = app.db.get().unwrap();
    pickup_windows::table
        .filter(pickup_windows::store_id.eq(store))
        .filter(pickup_windows::day.eq(day))
        .order(pickup_windows::starts_at)
        .select((pickup_windows::id, pickup_windows::capacity))
        .load(&mut conn)
        .unwrap()
}

fn capacities(app: &TestApp, store: i64, day: NaiveDate) -> Vec<i32> {
    windows(app, store, day).into_iter().map(|w| w.1).collect()
}

/// An active reservation of `quantity` in `window` by a new citizen, with the
/// counters, ledger and quota moved as the booking transaction moves them.
fn reserve(app: &TestApp, window: i64, quantity: i32) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let key = app.state.keys.national_id.clone();
    let email = format!("reserver{n}@example.com");
    let user = fixtures::user(&app.db, Role::Citizen, &email, None, true, &key);
    fixtures::reservation(&app.db, window, user, quantity);
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn setting_supply_for_a_new_store_day_creates_its_windows_split_by_the_template() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    let res = admin
        .post_form(
            "/admin/supply",
            &[
                ("store_code", CODE),
                ("date", &day.to_string()),
                ("quantity", "100"),
                ("q", "중앙"),
                ("page", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        format!("/admin/supply?date={day}&q=%EC%A4%91%EC%95%99&page=1")
    );
    assert_eq!(store_day(&app, store, day), Some((100, 100)));
    assert_eq!(capacities(&app, store, day), [34, 33, 33]);

    let mut conn = app.db.get().unwrap();
    let ledger: Vec<(String, i32, i32)> = stock_ledger::table
        .order(stock_ledger::id)
        .select((
            stock_ledger::kind,
            stock_ledger::supply_delta,
            stock_ledger::capacity_delta,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        ledger,
        [
            ("allocation".to_owned(), 100, 0),
            ("capacity".to_owned(), 0, 34),
            ("capacity".to_owned(), 0, 33),
            ("capacity".to_owned(), 0, 33),
        ]
    );
    let audit: Vec<(String, String, String)> = audit_log::table
        .select((audit_log::action, audit_log::entity, audit_log::entity_id))
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        audit,
        [(
            "supply.allocate".to_owned(),
            "supply".to_owned(),
            format!("{CODE}/{day}")
        )]
    );
    assert_invariants(&app.db);

    // The list shows it, with the flash.
    let html = admin.html(&location(&res)).await;
    assert!(html.contains("data-flash=\"admin.supply.saved\""), "{html}");
    assert!(html.contains(
        r#"id="qty-11800001" name="quantity" type="text" inputmode="numeric" size="7" value="100""#
    ));
    assert!(html.contains("data-total-supply=\"100\""));

    // The same quantity again writes nothing.
    assert_eq!(set_supply(&admin, CODE, day, "100").await.status(), 303);
    let rows: i64 = stock_ledger::table.count().get_result(&mut conn).unwrap();
    assert_eq!(rows, 4);
}

#[tokio::test]
async fn changing_supply_up_and_down_moves_only_unreserved_capacity() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    assert_eq!(set_supply(&admin, CODE, day, "90").await.status(), 303);
    let first = windows(&app, store, day)[0].0;
    reserve(&app, first, 20);

    // Up: 150 − 20 reserved = 130 free, 44/43/43 on top of what is held.
    assert_eq!(set_supply(&admin, CODE, day, "150").await.status(), 303);
    assert_eq!(capacities(&app, store, day), [64, 43, 43]);
    assert_eq!(store_day(&app, store, day), Some((150, 150)));

    // Down: 30 − 20 = 10 free.
    assert_eq!(set_supply(&admin, CODE, day, "30").await.status(), 303);
    assert_eq!(capacities(&app, store, day), [24, 3, 3]);

    // A walk-in margin the administrator left (one window lowered) is kept.
    let third = windows(&app, store, day)[2].0;
    let path = format!("/admin/stores/{CODE}/windows/{third}");
    assert_eq!(
        admin.post_form(&path, &[("capacity", "0")]).await.status(),
        303
    );
    assert_eq!(store_day(&app, store, day), Some((30, 27)));
    assert_eq!(set_supply(&admin, CODE, day, "60").await.status(), 303);
    assert_eq!(store_day(&app, store, day), Some((60, 57)));
    assert_eq!(capacities(&app, store, day), [33, 12, 12]);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_fresh_allocation_keeps_the_walk_in_share_at_the_counter_and_a_change_the_share_of_the_change()
 {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    app.set_setting("walk_in_share_percent", "30"); // the default
    assert_eq!(set_supply(&admin, CODE, day, "100").await.status(), 303);
    // 30 stay at the counter; the windows share 70, the remainder first.
    assert_eq!(store_day(&app, store, day), Some((100, 70)));
    assert_eq!(capacities(&app, store, day), [24, 23, 23]);
    let first = windows(&app, store, day)[0].0;
    reserve(&app, first, 20);

    // 200: the counter keeps 60; 140 − 20 reserved = 120 free over the windows.
    assert_eq!(set_supply(&admin, CODE, day, "200").await.status(), 303);
    assert_eq!(store_day(&app, store, day), Some((200, 140)));
    assert_eq!(capacities(&app, store, day), [60, 40, 40]);
    // 50: the counter keeps 15; 35 − 20 = 15 free.
    assert_eq!(set_supply(&admin, CODE, day, "50").await.status(), 303);
    assert_eq!(store_day(&app, store, day), Some((50, 35)));
    assert_eq!(capacities(&app, store, day), [25, 5, 5]);

    // A new share does not split existing days again…
    app.set_setting("walk_in_share_percent", "0");
    assert_eq!(store_day(&app, store, day), Some((50, 35)));
    // …and their next change keeps what the counter has, with no new share.
    assert_eq!(set_supply(&admin, CODE, day, "60").await.status(), 303);
    assert_eq!(store_day(&app, store, day), Some((60, 45)));
    assert_eq!(capacities(&app, store, day), [29, 8, 8]);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn lowering_supply_below_what_is_reserved_is_refused_with_the_numbers() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    assert_eq!(set_supply(&admin, CODE, day, "60").await.status(), 303);
    let w = windows(&app, store, day);
    reserve(&app, w[0].0, 7);
    reserve(&app, w[1].0, 5);

    let res = set_supply(&admin, CODE, day, "10").await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("이미 12개가 예약·판매되어 공급량을 10개로 줄일 수 없습니다."),
        "{html}"
    );
    assert!(
        html.contains(r#"value="10" aria-invalid="true""#),
        "value kept"
    );
    assert!(html.contains("data-error-summary"));
    assert_eq!(store_day(&app, store, day), Some((60, 60)));
    assert_eq!(capacities(&app, store, day), [20, 20, 20]);

    // Exactly what is reserved is allowed.
    assert_eq!(set_supply(&admin, CODE, day, "12").await.status(), 303);
    assert_eq!(capacities(&app, store, day), [7, 5, 0]);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn supply_input_mistakes_are_shown_next_to_the_field() {
    let Scene {
        app, admin, day, ..
    } = scene().await;
    for bad in ["-1", "ten", "1000001", ""] {
        let res = set_supply(&admin, CODE, day, bad).await;
        assert_eq!(res.status(), 422, "{bad}");
        let html = res.text().await.unwrap();
        assert!(html.contains("data-error-for=\"quantity\""), "{bad}");
    }
    let res = set_supply(&admin, "99999999", day, "5").await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("99999999"));
    let res = admin.get("/admin/supply?date=2026-02-30").await;
    assert_eq!(res.status(), 400);
    assert_eq!(admin.get("/admin/supply?page=0").await.status(), 400);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_supply_list_searches_and_defaults_to_tomorrow() {
    let Scene {
        app, admin, day, ..
    } = scene().await;
    fixtures::busan_store(&app.db);
    let html = admin.html("/admin/supply").await;
    assert!(html.contains(&format!(r#"name="date" type="date" value="{day}""#)));
    assert!(html.contains("data-store=\"11800001\"") && html.contains("data-store=\"21000001\""));
    let html = admin.html("/admin/supply?q=부산").await;
    assert!(!html.contains("data-store=\"11800001\"") && html.contains("data-store=\"21000001\""));
}

#[tokio::test]
async fn a_window_capacity_is_edited_within_reservations_and_supply() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    fixtures::busan_store(&app.db);
    assert_eq!(set_supply(&admin, CODE, day, "150").await.status(), 303);
    let w = windows(&app, store, day);
    reserve(&app, w[0].0, 41);
    let path = format!("/admin/stores/{CODE}/windows/{}", w[0].0);

    let page = admin.get(&path).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-reserved=\"41\"") && html.contains("09:00–12:00"));

    let res = admin.post_form(&path, &[("capacity", "40")]).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(
            "09:00–12:00 시간대에 이미 41개가 예약되어 배정량을 40개로 줄일 수 없습니다."
        ),
        "{html}"
    );
    assert!(html.contains(r#"value="40""#));

    // 50 + 50 + 51 = 151 > 150.
    let res = admin.post_form(&path, &[("capacity", "51")]).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("151") && html.contains("150"), "{html}");
    assert_eq!(capacities(&app, store, day), [50, 50, 50]);

    let res = admin.post_form(&path, &[("capacity", "41")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/admin/stores/{CODE}#windows"));
    assert_eq!(capacities(&app, store, day), [41, 50, 50]);
    assert_eq!(store_day(&app, store, day), Some((150, 141)));
    // The store page lists the windows of the booking horizon, each editable.
    let html = admin.html(&format!("/admin/stores/{CODE}")).await;
    let row = &html[html.find(&format!("data-window=\"{}\"", w[0].0)).unwrap()..];
    assert!(row.contains(r#"name="capacity""#) && row.contains(r#"value="41""#));
    assert_eq!(html.matches("data-window=").count(), 3);

    assert_eq!(
        admin.post_form(&path, &[("capacity", "x")]).await.status(),
        422
    );
    // Another store's code, or no such window: not found.
    let other = format!("/admin/stores/21000001/windows/{}", w[0].0);
    assert_eq!(admin.get(&other).await.status(), 404);
    assert_eq!(
        admin
            .post_form(&other, &[("capacity", "41")])
            .await
            .status(),
        404
    );
    assert_eq!(
        admin
            .get(&format!("/admin/stores/{CODE}/windows/x"))
            .await
            .status(),
        404
    );

    let mut conn = app.db.get().unwrap();
    let audit: Vec<(String, String)> = audit_log::table
        .filter(audit_log::entity.eq("capacity"))
        .select((audit_log::action, audit_log::entity_id))
        .load(&mut conn)
        .unwrap();
    assert_eq!(audit, [("capacity.change".to_owned(), w[0].0.to_string())]);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn copying_the_previous_day_gives_stores_without_supply_the_same_quantity() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    let busan = fixtures::busan_store(&app.db);
    let closed = fixtures::store(&app.db, "11800009", "휴업약국");
    {
        let mut conn = app.db.get().unwrap();
        diesel::update(stores::table.find(closed))
            .set(stores::suspended.eq(true))
            .execute(&mut conn)
            .unwrap();
    }
    let before = day - Duration::days(1);
    for (code, quantity) in [(CODE, "80"), ("21000001", "40"), ("11800009", "10")] {
        assert_eq!(
            set_supply(&admin, code, before, quantity).await.status(),
            303
        );
    }
    assert_eq!(set_supply(&admin, "21000001", day, "5").await.status(), 303);

    let res = admin
        .post_form("/admin/supply/copy", &[("date", &day.to_string())])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/admin/supply?date={day}"));
    assert_eq!(store_day(&app, store, day), Some((80, 80)));
    assert_eq!(store_day(&app, busan, day), Some((5, 5)));
    assert_eq!(store_day(&app, closed, day), None);
    assert_eq!(capacities(&app, store, day), [27, 27, 26]);

    // Again: nothing left to copy.
    let res = admin
        .post_form("/admin/supply/copy", &[("date", &day.to_string())])
        .await;
    let html = admin.html(&location(&res)).await;
    assert!(html.contains("data-flash=\"admin.supply.copied_none\""));
    assert_eq!(
        admin
            .post_form("/admin/supply/copy", &[("date", "tomorrow")])
            .await
            .status(),
        400
    );
    assert_invariants(&app.db);
}

/// Sends a file: the answer is its preview (or what is wrong with it).
async fn preview(admin: &Visitor, content: impl Into<Vec<u8>>) -> (u16, String) {
    let res = admin
        .post_file("/admin/supply/import", &[], "supply.csv", content.into())
        .await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// Confirms the preview of the file whose hash is `hash`, as the preview's
/// button does (a multipart form without a file).
async fn confirm(admin: &Visitor, hash: &str) -> (u16, String) {
    let fields = [("confirm", "1"), ("file_hash", hash)];
    let res = admin
        .post_file("/admin/supply/import", &fields, "", Vec::new())
        .await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// The `file_hash` a preview's confirmation carries.
fn file_hash(html: &str) -> String {
    crate::admin_settings::input_value(html, "file_hash")
}

/// Sends a file and confirms its preview: what an administrator does to
/// import it. A file refused at its preview answers that.
async fn import(admin: &Visitor, content: impl Into<Vec<u8>>) -> (u16, String) {
    let (status, html) = preview(admin, content).await;
    if status != 200 {
        return (status, html);
    }
    confirm(admin, &file_hash(&html)).await
}

fn supply_imports(app: &TestApp) -> i64 {
    let mut conn = app.db.get().unwrap();
    audit_log::table
        .filter(audit_log::action.eq("supply.import"))
        .count()
        .get_result(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_supply_file_answers_a_preview_old_to_new_and_writes_nothing_until_confirmed() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    let busan = fixtures::busan_store(&app.db);
    assert_eq!(set_supply(&admin, CODE, day, "90").await.status(), 303);
    let file = format!("store_code,date,quantity\n{CODE},{day},120\n21000001,{day},60\n");
    let (status, html) = preview(&admin, file.clone()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-preview-lines=\"2\""), "{html}");
    assert!(html.contains("data-total-before=\"90\""), "{html}");
    assert!(html.contains("data-total-after=\"180\""), "{html}");
    let row = |code: &str| {
        let at = html.find(&format!("data-store=\"{code}\"")).unwrap();
        html[at..].split("</tr>").next().unwrap().to_owned()
    };
    assert!(row(CODE).contains("data-effect=\"change\""));
    assert!(row(CODE).contains("data-before=\"90\"") && row(CODE).contains("data-after=\"120\""));
    assert!(row("21000001").contains("data-effect=\"create\""));
    assert!(row("21000001").contains("data-before=\"\""));
    let hash = file_hash(&html);
    assert_eq!(hash.len(), 64);
    // The preview wrote nothing.
    assert_eq!(store_day(&app, store, day), Some((90, 90)));
    assert_eq!(store_day(&app, busan, day), None);
    assert_eq!(supply_imports(&app), 0);

    let (status, html) = confirm(&admin, &hash).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-created="1" data-changed="1" data-unchanged="0""#));
    assert_eq!(store_day(&app, store, day), Some((120, 120)));
    assert_eq!(store_day(&app, busan, day), Some((60, 60)));
    assert_eq!(supply_imports(&app), 1);

    // The confirmation again (a reload, a double click) applies nothing more.
    let (status, html) = confirm(&admin, &hash).await;
    assert_eq!(status, 404, "{html}");
    assert!(html.contains("파일을 다시 올려 주세요"), "{html}");
    assert_eq!(supply_imports(&app), 1);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_confirmation_with_an_unknown_or_malformed_hash_or_another_admins_preview_applies_nothing()
 {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    let other = app.logged_in_as(Role::Admin, "b@example.com", None).await;
    let (status, html) = preview(
        &admin,
        format!("store_code,date,quantity\n{CODE},{day},50\n"),
    )
    .await;
    assert_eq!(status, 200);
    let hash = file_hash(&html);
    for wrong in [
        "0".repeat(64),
        "not a hash".to_owned(),
        hash.to_uppercase(),
        String::new(),
    ] {
        let (status, _) = confirm(&admin, &wrong).await;
        assert_eq!(status, 404, "{wrong}");
    }
    // A preview belongs to the administrator who saw it.
    let (status, _) = confirm(&other, &hash).await;
    assert_eq!(status, 404);
    assert_eq!(store_day(&app, store, day), None);
    // Without the CSRF token, the confirmation is refused before anything.
    let form = reqwest::multipart::Form::new()
        .text("confirm", "1")
        .text("file_hash", hash.clone());
    let res = admin
        .client
        .post(admin.url("/admin/supply/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A pharmacist may not confirm either.
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let res = pharmacist
        .post_file(
            "/admin/supply/import",
            &[("confirm", "1"), ("file_hash", &hash)],
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(store_day(&app, store, day), None);
    // The owner's own preview still applies.
    let (status, _) = confirm(&admin, &hash).await;
    assert_eq!(status, 200);
    assert_eq!(store_day(&app, store, day), Some((50, 50)));
}

#[tokio::test]
async fn a_confirmation_after_the_supply_changed_meanwhile_applies_nothing_and_previews_again() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    assert_eq!(set_supply(&admin, CODE, day, "90").await.status(), 303);
    let file = format!("store_code,date,quantity\n{CODE},{day},120\n");
    let (_, html) = preview(&admin, file).await;
    let hash = file_hash(&html);
    // Someone changes the store-day after the preview showed 90.
    assert_eq!(set_supply(&admin, CODE, day, "100").await.status(), 303);

    let (status, html) = confirm(&admin, &hash).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("data-changed-meanwhile"), "{html}");
    assert!(
        html.contains("data-before=\"100\""),
        "the fresh preview: {html}"
    );
    assert_eq!(store_day(&app, store, day), Some((100, 100)));
    assert_eq!(supply_imports(&app), 0);

    // The fresh preview can be confirmed.
    let (status, _) = confirm(&admin, &file_hash(&html)).await;
    assert_eq!(status, 200);
    assert_eq!(store_day(&app, store, day), Some((120, 120)));
    assert_eq!(supply_imports(&app), 1);
    assert_invariants(&app.db);
}

fn count_store_days(app: &TestApp) -> i64 {
    let mut conn = app.db.get().unwrap();
    store_days::table.count().get_result(&mut conn).unwrap()
}

#[tokio::test]
async fn importing_a_good_file_allocates_several_dates_and_changes_existing_ones() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    let busan = fixtures::busan_store(&app.db);
    assert_eq!(set_supply(&admin, CODE, day, "90").await.status(), 303);
    let next = day + Duration::days(1);
    let file = format!(
        "\u{feff}quantity,store_code,date\n120,{CODE},{day}\n60,21000001,{day}\n30,{CODE},{next}\n7,21000001,{next}\n"
    );
    let (status, html) = import(&admin, file.clone()).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(r#"data-created="3" data-changed="1" data-unchanged="0""#),
        "{html}"
    );
    assert_eq!(store_day(&app, store, day), Some((120, 120)));
    assert_eq!(capacities(&app, store, day), [40, 40, 40]);
    assert_eq!(capacities(&app, busan, day), [20, 20, 20]);
    assert_eq!(capacities(&app, store, next), [10, 10, 10]);
    assert_eq!(capacities(&app, busan, next), [3, 2, 2]);
    assert_invariants(&app.db);

    // The same file again changes nothing.
    let (status, html) = import(&admin, file).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-created="0" data-changed="0" data-unchanged="4""#));
    assert_eq!(supply_imports(&app), 2);
}

#[tokio::test]
async fn an_import_with_one_bad_line_imports_nothing_and_names_the_line() {
    let Scene {
        app, admin, day, ..
    } = scene().await;
    let file = format!(
        "store_code,date,quantity\n{CODE},{day},100\n{CODE},{},-3\n",
        day + Duration::days(1)
    );
    let (status, html) = import(&admin, file).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("3번째 줄: 수량 -3이(가) 음수입니다."),
        "{html}"
    );
    assert!(!html.contains("2번째 줄"));
    assert_eq!(count_store_days(&app), 0);
}

#[tokio::test]
async fn every_kind_of_bad_line_is_reported_by_number() {
    let Scene {
        app, admin, day, ..
    } = scene().await;
    let file = format!(
        "store_code,date,quantity\n\
         99999999,{day},1\n\
         1180001,{day},1\n\
         {CODE},2026-02-30,1\n\
         {CODE},{day},-1\n\
         {CODE},{day},many\n\
         {CODE},{day},1000001\n\
         {CODE},{day},5\n\
         {CODE},{day},6\n"
    );
    let (status, html) = import(&admin, file).await;
    assert_eq!(status, 422);
    for expected in [
        "2번째 줄: 코드가 99999999인 판매처가 없습니다.",
        "3번째 줄: 판매처 코드 1180001이(가) 8자리 숫자가 아닙니다.",
        "4번째 줄: 2026-02-30은(는) 날짜(YYYY-MM-DD)가 아닙니다.",
        "5번째 줄: 수량 -1이(가) 음수입니다.",
        "6번째 줄: 수량 many이(가) 정수가 아닙니다.",
        "7번째 줄: 수량 1000001이(가) 1000000보다 많습니다.",
        "9번째 줄: 판매처 11800001의",
    ] {
        assert!(html.contains(expected), "{expected} missing from {html}");
    }
    assert_eq!(count_store_days(&app), 0);

    // A file that is not UTF-8 (EUC-KR, as Excel saves it in Korea).
    let mut bytes = format!("store_code,date,quantity\n{CODE},{day},1\n").into_bytes();
    bytes.extend_from_slice(b"\xc1\xdf\xbe\xd3,2026-12-01,1\n");
    let (status, html) = import(&admin, bytes).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("3번째 줄: 파일이 UTF-8 텍스트가 아닙니다."),
        "{html}"
    );
    let (status, _) = import(&admin, "store_code,quantity\n").await;
    assert_eq!(status, 422);
    let (status, _) = import(&admin, Vec::new()).await;
    assert_eq!(status, 422);

    // More than 50 bad lines: 50 shown, the rest counted.
    let mut many = "store_code,date,quantity\n".to_owned();
    for _ in 0..60 {
        many.push_str("x,y,z\n");
    }
    let (status, html) = import(&admin, many).await;
    assert_eq!(status, 422);
    assert!(html.contains("data-more-errors=\"10\""));
    assert_eq!(count_store_days(&app), 0);
}

#[tokio::test]
async fn an_import_that_would_lower_supply_below_reservations_is_refused_whole() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    fixtures::busan_store(&app.db);
    assert_eq!(set_supply(&admin, CODE, day, "60").await.status(), 303);
    reserve(&app, windows(&app, store, day)[1].0, 9);
    let file = format!("store_code,date,quantity\n21000001,{day},50\n{CODE},{day},8\n");
    let (status, html) = import(&admin, file).await;
    assert_eq!(status, 409);
    // The preview names the refused store-day and offers no confirmation.
    assert!(html.contains("data-preview-refused=\"1\""), "{html}");
    let at = html.find(&format!("data-store=\"{CODE}\"")).unwrap();
    assert!(
        html[at..].contains("data-refused")
            && html.contains("이미 9개가 예약·판매되어 공급량을 8개로"),
        "{html}"
    );
    assert!(!html.contains("data-confirm-import"));
    assert_eq!(count_store_days(&app), 1, "the Busan line was rolled back");
    assert_eq!(store_day(&app, store, day), Some((60, 60)));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn supply_forms_without_a_csrf_token_are_refused() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    assert_eq!(set_supply(&admin, CODE, day, "30").await.status(), 303);
    let window = windows(&app, store, day)[0].0;
    let d = day.to_string();
    for (path, fields) in [
        (
            "/admin/supply",
            vec![("store_code", CODE), ("date", &d), ("quantity", "5")],
        ),
        ("/admin/supply/copy", vec![("date", &d)]),
        (
            &*format!("/admin/stores/{CODE}/windows/{window}"),
            vec![("capacity", "1")],
        ),
    ] {
        assert_eq!(
            admin.post_form_raw(path, &fields).await.status(),
            403,
            "{path}"
        );
    }
    let part = reqwest::multipart::Part::bytes(
        format!("store_code,date,quantity\n{CODE},{d},5\n").into_bytes(),
    )
    .file_name("s.csv");
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = admin
        .client
        .post(admin.url("/admin/supply/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(store_day(&app, store, day), Some((30, 30)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_supply_and_capacity_edits_of_one_store_day_keep_every_invariant() {
    let Scene {
        app,
        admin,
        store,
        day,
    } = scene().await;
    assert_eq!(set_supply(&admin, CODE, day, "90").await.status(), 303);
    let w = windows(&app, store, day);
    reserve(&app, w[0].0, 10);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let admin = admin.clone();
        let path = format!("/admin/stores/{CODE}/windows/{}", w[i % 3].0);
        tasks.push(tokio::spawn(async move {
            let status = if i % 2 == 0 {
                let quantity = (20 + i * 7).to_string();
                set_supply(&admin, CODE, day, &quantity).await.status()
            } else {
                let capacity = (5 + i * 3).to_string();
                admin
                    .post_form(&path, &[("capacity", &capacity)])
                    .await
                    .status()
            };
            status.as_u16()
        }));
    }
    for t in futures_util::future::join_all(tasks).await {
        let status = t.unwrap();
        assert!([303, 409, 422].contains(&status), "{status}");
    }
    let (supply, capacity) = store_day(&app, store, day).unwrap();
    let caps = capacities(&app, store, day);
    assert_eq!(caps.iter().sum::<i32>(), capacity);
    assert!(capacity <= supply && caps[0] >= 10);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn supply_dates_further_than_a_year_from_today_are_refused_everywhere_with_the_range() {
    // Today is Tuesday 1 December 2026 (the app's clock, in Seoul): supply
    // may be given from 2025-12-01 to 2027-12-01.
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 10, 0))),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, CODE, "중앙약국");
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let range = "2025-12-01부터 2027-12-01까지";
    let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();

    // The form.
    for wrong in ["1900-01-01", "2025-11-30", "2027-12-02", "9999-12-31"] {
        let res = set_supply(&admin, CODE, date(wrong), "100").await;
        assert_eq!(res.status(), 422, "{wrong}");
        let html = res.text().await.unwrap();
        assert!(html.contains(range), "{wrong}: {html}");
    }
    assert_eq!(count_store_days(&app), 0);
    for fine in ["2025-12-01", "2027-12-01"] {
        let res = set_supply(&admin, CODE, date(fine), "100").await;
        assert_eq!(res.status(), 303, "{fine}: both ends are allowed");
    }
    assert_eq!(store_day(&app, store, date("2027-12-01")), Some((100, 70)));

    // Copying the previous day into a date out of range.
    for wrong in ["1900-01-01", "2027-12-02", "9999-12-31"] {
        let res = admin
            .post_form("/admin/supply/copy", &[("date", wrong)])
            .await;
        assert_eq!(res.status(), 422, "{wrong}");
        assert!(res.text().await.unwrap().contains(range));
    }
    assert_eq!(count_store_days(&app), 2, "nothing copied");

    // The file: every such line named with the range, nothing imported.
    let file = format!(
        "store_code,date,quantity\n\
         {CODE},2026-12-02,10\n\
         {CODE},1900-01-01,10\n\
         {CODE},9999-12-31,10\n"
    );
    let (status, html) = import(&admin, file).await;
    assert_eq!(status, 422);
    for line in [3, 4] {
        assert!(
            html.contains(&format!(
                "{line}번째 줄: 공급 날짜는 2025-12-01부터 2027-12-01까지"
            )),
            "line {line}: {html}"
        );
    }
    assert!(!html.contains("2번째 줄"), "{html}");
    assert_eq!(count_store_days(&app), 2);
    assert_invariants(&app.db);
}
