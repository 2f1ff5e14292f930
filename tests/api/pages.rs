//! Every page there is, seen in a Korean-, an English- and a Chinese-language
//! browser at desktop and phone width: each passes axe-core's serious and
//! critical rules, fits the phone's width, and leaves a screenshot under
//! `target/screenshots/` for review.

use fantoccini::Locator;
use mask_reservation::accounts::Role;
use mask_reservation::db::write_tx;
use mask_reservation::policy::Policy;
use mask_reservation::supply::allocation::allocate_new_day;

use crate::common::browser::{Browser, fill, fill_national_id, submit, tick, wait_for};
use mask_reservation::clock::Clock;

use crate::common::{Spawn, TestApp, fixtures, spawn_app_with};

/// Whether the error summary has the focus, once the page's deferred script
/// has run: polled for up to ten seconds (a loaded machine runs it late).
async fn focused_on_error_summary(c: &fantoccini::Client) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let focused = c
            .execute(
                "return document.activeElement !== null
                    && document.activeElement.hasAttribute('data-error-summary');",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap();
        if focused || std::time::Instant::now() >= deadline {
            return focused;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Logs the browser in through the login form.
async fn log_in(app: &TestApp, browser: &Browser, email: &str) {
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", email).await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
}

async fn log_out(browser: &Browser) {
    let c = &browser.client;
    submit(c, "/logout").await;
    wait_for(c, "a[href='/login']").await;
}

/// Opens `path` and checks it once `ready` is on the page.
async fn check(app: &TestApp, browser: &Browser, name: &str, path: &str, ready: &str) {
    browser.client.goto(&app.url(path)).await.unwrap();
    wait_for(&browser.client, ready).await;
    browser.check_page(name).await;
}

/// The name a page's screenshot is saved under: Korean pages as they are
/// named, the other languages' with their tag after.
fn shot(lang: &str, name: &str) -> String {
    match lang {
        "ko-KR" => name.to_owned(),
        _ => format!("{name}-{lang}"),
    }
}

#[tokio::test]
async fn every_page_passes_the_accessibility_check_in_korean() {
    every_page_passes_the_accessibility_check_at_desktop_and_phone_width("ko-KR").await;
}

#[tokio::test]
async fn every_page_passes_the_accessibility_check_in_english() {
    every_page_passes_the_accessibility_check_at_desktop_and_phone_width("en-US").await;
}

#[tokio::test]
async fn every_page_passes_the_accessibility_check_in_traditional_chinese() {
    every_page_passes_the_accessibility_check_at_desktop_and_phone_width("zh-TW").await;
}

async fn every_page_passes_the_accessibility_check_at_desktop_and_phone_width(lang: &str) {
    use crate::reservations::{seoul, tuesday};
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "citizen@example.com",
        None,
        true,
        &key,
    );
    let pharmacist = fixtures::user(
        &app.db,
        Role::Pharmacist,
        "pharmacist@example.com",
        Some(store),
        true,
        &key,
    );
    fixtures::user(&app.db, Role::Admin, "admin@example.com", None, true, &key);
    let browser = Browser::start_in(lang).await;
    let c = &browser.client;

    // Anyone.
    check(
        &app,
        &browser,
        &shot(lang, "home"),
        "/",
        "form[data-store-search]",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "signup"),
        "/signup",
        "form[action='/signup']",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "login"),
        "/login",
        "form[action='/login']",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "forgot"),
        "/password/forgot",
        "form[action='/password/forgot']",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "token-unknown"),
        "/verify-email?token=nothing",
        "h1",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "not-found"),
        "/no-such-page",
        "h1",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "status"),
        "/status",
        "[data-status]",
    )
    .await;
    // Supply tomorrow, so that its windows can be reserved whatever the time.
    {
        let mut conn = app.db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let tomorrow = app.today() + chrono::Duration::days(1);
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, &policy, store, tomorrow, 120, None)
        })
        .unwrap();
    }
    check(
        &app,
        &browser,
        &shot(lang, "store-anonymous"),
        "/stores/11800001",
        "[data-login-to-reserve]",
    )
    .await;
    check(&app, &browser, &shot(lang, "map"), "/map", "[data-markers]").await;

    // Forms sent back with mistakes.
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "citizen@example.com").await;
    fill(c, "password", "not the password").await;
    submit(c, "/login").await;
    wait_for(c, "[data-error-summary]").await;
    assert!(
        focused_on_error_summary(c).await,
        "after a failed post the focus is on the error summary"
    );
    browser.check_page(&shot(lang, "login-failed")).await;

    c.goto(&app.url("/signup")).await.unwrap();
    fill_national_id(c, "850101-1234567").await;
    fill(c, "email", "not an address").await;
    submit(c, "/signup").await;
    wait_for(c, "[data-error-for='national_id']").await;
    assert!(focused_on_error_summary(c).await);
    // The summary links to each field with a message, and the field says which
    // message describes it.
    let links = c
        .execute(
            "return [...document.querySelectorAll('[data-error-summary] a')]
                .map(a => a.getAttribute('href'));",
            vec![],
        )
        .await
        .unwrap();
    let links: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in ["national_id", "email"] {
        assert!(links.contains(&format!("#f-{field}").as_str()), "{links:?}");
        let described = c
            .find(Locator::Css(&format!("#f-{field}")))
            .await
            .unwrap()
            .attr("aria-describedby")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            described.contains(&format!("err-{field}")),
            "{field}: {described}"
        );
    }
    browser.check_page(&shot(lang, "signup-errors")).await;

    // The same form put right: "check your e-mail".
    fill_national_id(c, &fixtures::national_id("900215154321")).await;
    fill(c, "name", "김민지").await;
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    fill(c, "password_confirm", fixtures::PASSWORD).await;
    tick(c, "consent").await;
    submit(c, "/signup").await;
    wait_for(c, "[data-signup-sent]").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/signup/sent");
    browser.check_page(&shot(lang, "signup-sent")).await;

    // A forgotten password: the request, then the form the mailed link opens.
    c.goto(&app.url("/password/forgot")).await.unwrap();
    fill(c, "email", "citizen@example.com").await;
    submit(c, "/password/forgot").await;
    wait_for(c, "[data-forgot-sent]").await;
    browser.check_page(&shot(lang, "forgot-sent")).await;
    let mail = app
        .smtp
        .wait_for(2)
        .await
        .into_iter()
        .find(|m| m.recipients == ["citizen@example.com"])
        .unwrap();
    let body = mail.text_body();
    let link = body[body.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    c.goto(&link).await.unwrap();
    wait_for(c, "form[action='/password/reset']").await;
    browser.check_page(&shot(lang, "reset")).await;

    // A citizen.
    log_in(&app, &browser, "citizen@example.com").await;
    check(
        &app,
        &browser,
        &shot(lang, "reservations"),
        "/reservations",
        "[data-quota-left]",
    )
    .await;
    check(&app, &browser, &shot(lang, "home-citizen"), "/", "h1").await;
    check(
        &app,
        &browser,
        &shot(lang, "store-citizen"),
        "/stores/11800001",
        "form[data-reserve-form]",
    )
    .await;
    // A refused reservation: the browser's own check is switched off, as an
    // old browser would not have it, to see the server's answer.
    c.execute(
        "document.querySelector('form[data-reserve-form]').noValidate = true;",
        vec![],
    )
    .await
    .unwrap();
    fill(c, "quantity", "0").await;
    submit(c, "/reservations").await;
    wait_for(c, "[data-refusal='quantity']").await;
    browser.check_page(&shot(lang, "store-refused")).await;
    fill(c, "quantity", "1").await;
    submit(c, "/reservations").await;
    wait_for(c, "[data-pickup-code]").await;
    browser.check_page(&shot(lang, "reservation")).await;
    log_out(&browser).await;

    // A pharmacist.
    log_in(&app, &browser, "pharmacist@example.com").await;
    check(&app, &browser, &shot(lang, "pharmacy"), "/pharmacy", "h1").await;
    check(
        &app,
        &browser,
        &shot(lang, "pharmacy-walk-in"),
        "/pharmacy/walk-in",
        "form[data-walk-in-form]",
    )
    .await;
    c.execute(
        "document.querySelector('form[data-walk-in-form]').noValidate = true;",
        vec![],
    )
    .await
    .unwrap();
    fill(c, "national_id", "850101-1234567").await;
    fill(c, "quantity", "0").await;
    submit(c, "/pharmacy/walk-in").await;
    wait_for(c, "[data-error-for='national_id']").await;
    browser
        .check_page(&shot(lang, "pharmacy-walk-in-refused"))
        .await;
    check(
        &app,
        &browser,
        &shot(lang, "pharmacy-summary-none"),
        "/pharmacy/summary",
        "[data-no-supply]",
    )
    .await;
    log_out(&browser).await;

    // A pharmacy with a window open all day today, and a reservation in it:
    // the pickup page empty, with a reservation looked up, handed over, and
    // refused.
    {
        let mut conn = app.db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let all_day = Policy {
            window_template: mask_reservation::policy::parse_window_template("00:00-23:59")
                .unwrap(),
            ..policy.clone()
        };
        let counter = fixtures::store(&app.db, "11800009", "남산약국");
        fixtures::user(
            &app.db,
            Role::Pharmacist,
            "counter@example.com",
            Some(counter),
            true,
            &key,
        );
        let buyer = fixtures::user(
            &app.db,
            Role::Citizen,
            "buyer@example.com",
            None,
            true,
            &key,
        );
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, &all_day, counter, app.today(), 50, None)
        })
        .unwrap();
        use diesel::prelude::*;
        use mask_reservation::db::schema::pickup_windows;
        let window: i64 = pickup_windows::table
            .filter(pickup_windows::store_id.eq(counter))
            .select(pickup_windows::id)
            .first(&mut conn)
            .unwrap();
        fixtures::reservation(&app.db, window, buyer, 2);
    }
    let code: String = {
        use diesel::prelude::*;
        use mask_reservation::db::schema::reservations;
        reservations::table
            .order(reservations::id.desc())
            .select(reservations::pickup_code)
            .first(&mut app.db.get().unwrap())
            .unwrap()
    };
    log_in(&app, &browser, "counter@example.com").await;
    check(
        &app,
        &browser,
        &shot(lang, "pickup"),
        "/pharmacy/pickup",
        "form[data-scan-form]",
    )
    .await;
    fill(c, "code", "AB").await;
    submit(c, "/pharmacy/pickup").await;
    wait_for(c, "[data-error-for='code']").await;
    browser.check_page(&shot(lang, "pickup-invalid")).await;
    fill(c, "code", &code).await;
    submit(c, "/pharmacy/pickup").await;
    wait_for(c, "[data-found]").await;
    browser.check_page(&shot(lang, "pickup-found")).await;
    c.find(Locator::Css("button[data-confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-handed]").await;
    browser.check_page(&shot(lang, "pickup-handed")).await;
    fill(c, "code", &code).await;
    c.find(Locator::Css("form[data-scan-form] button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-refusal='picked_up']").await;
    browser.check_page(&shot(lang, "pickup-refused")).await;
    check(
        &app,
        &browser,
        &shot(lang, "pharmacy-summary"),
        "/pharmacy/summary",
        "[data-summary]",
    )
    .await;
    log_out(&browser).await;

    // An administrator; the dashboard with supply today draws its region chart.
    {
        let mut conn = app.db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let today = app.today();
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, &policy, store, today, 120, None)
        })
        .unwrap();
    }
    // The store search, with today's stock now allocated; the "near me"
    // button is added by its script.
    check(
        &app,
        &browser,
        &shot(lang, "stores-search"),
        "/stores?q=%EC%A4%91%EC%95%99",
        "[data-search-results] [data-remain-stat='plenty']",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "stores-near"),
        "/stores?lat=37.5600&lng=126.9700",
        "[data-search-results] [data-distance]",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "stores-prompt"),
        "/stores",
        "[data-search-prompt]",
    )
    .await;
    wait_for(c, "button[data-near-me]").await;
    log_in(&app, &browser, "admin@example.com").await;
    check(
        &app,
        &browser,
        &shot(lang, "admin"),
        "/admin",
        "[data-region-chart] svg",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "admin-users"),
        "/admin/users",
        "table",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "admin-stores"),
        "/admin/stores",
        "table[data-stores]",
    )
    .await;
    // The search form posts to the same path: press the creation form's button.
    c.find(Locator::Css("form[data-store-form] button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-error-for='code']").await;
    assert!(focused_on_error_summary(c).await);
    browser.check_page(&shot(lang, "admin-stores-errors")).await;
    check(
        &app,
        &browser,
        &shot(lang, "admin-store"),
        "/admin/stores/11800001",
        "[data-store-form]",
    )
    .await;
    // An import with mistakes: the answer lists the lines.
    let csv_dir = tempfile::tempdir().unwrap();
    let csv = csv_dir.path().join("stores.csv");
    std::fs::write(
        &csv,
        "code,name,addr,type,lat,lng\n1180000,약국,서울특별시 중구,01,37.5,127\n11800003,약국,서울특별시 중구,04,95,127\n",
    )
    .unwrap();
    c.goto(&app.url("/admin/stores")).await.unwrap();
    c.find(Locator::Css("input[type='file'][name='file']"))
        .await
        .unwrap()
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    submit(c, "/admin/stores/import").await;
    wait_for(c, "[data-import-errors]").await;
    assert!(focused_on_error_summary(c).await);
    browser
        .check_page(&shot(lang, "admin-stores-import-errors"))
        .await;
    check(
        &app,
        &browser,
        &shot(lang, "admin-supply"),
        "/admin/supply",
        "table[data-supply]",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("supply.csv");
    std::fs::write(
        &file,
        "store_code,date,quantity\n1180001,2026-02-30,-1\n99999999,2026-12-01,5\n",
    )
    .unwrap();
    c.find(Locator::Css("input[name='file']"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    submit(c, "/admin/supply/import").await;
    wait_for(c, "[data-import-errors]").await;
    browser
        .check_page(&shot(lang, "admin-supply-import-errors"))
        .await;
    let window: i64 = {
        use diesel::prelude::*;
        use mask_reservation::db::schema::pickup_windows;
        let mut conn = app.db.get().unwrap();
        pickup_windows::table
            .filter(pickup_windows::store_id.eq(store))
            .select(pickup_windows::id)
            .first(&mut conn)
            .unwrap()
    };
    check(
        &app,
        &browser,
        &shot(lang, "admin-window"),
        &format!("/admin/stores/11800001/windows/{window}"),
        "[data-window-form]",
    )
    .await;
    check(
        &app,
        &browser,
        &shot(lang, "admin-settings"),
        "/admin/settings",
        "[data-settings-form]",
    )
    .await;
    fill(c, "quota_per_period", "0").await;
    submit(c, "/admin/settings").await;
    wait_for(c, "[data-error-for='quota_per_period']").await;
    assert!(focused_on_error_summary(c).await);
    browser
        .check_page(&shot(lang, "admin-settings-errors"))
        .await;
    fill(c, "quota_per_period", "3").await;
    fill(c, "timezone", "Asia/Tokyo").await;
    submit(c, "/admin/settings").await;
    wait_for(c, "[data-confirm-timezone]").await;
    browser
        .check_page(&shot(lang, "admin-settings-confirm-timezone"))
        .await;
    submit(c, "/admin/settings").await;
    wait_for(
        c,
        "[data-settings-form]:not(:has([data-confirm-timezone-button]))",
    )
    .await;
    // The two changes just saved are in the log.
    check(
        &app,
        &browser,
        &shot(lang, "admin-audit"),
        "/admin/audit",
        "table[data-audit]",
    )
    .await;
    let confirm = format!("/admin/users/{pharmacist}/disable");
    check(
        &app,
        &browser,
        &shot(lang, "admin-confirm-disable"),
        &confirm,
        "[data-confirm-disable]",
    )
    .await;
    log_out(&browser).await;

    browser.close().await;
}

/// The waiting page, for a page and for a booking, with the room of one slot
/// held and 200 tickets ahead (so the page waits 30 seconds before it
/// refreshes, long enough to be checked).
#[tokio::test]
async fn the_waiting_page_passes_the_accessibility_check_in_every_language() {
    for lang in ["ko-KR", "en-US", "zh-TW"] {
        the_waiting_page_passes_the_accessibility_check(lang).await;
    }
}

async fn the_waiting_page_passes_the_accessibility_check(lang: &str) {
    use crate::reservations::{seoul, tuesday};
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 10, 0))),
        configure: Some(Box::new(|c| c.waiting_room_capacity = 1)),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "citizen@example.com",
        None,
        true,
        &key,
    );
    {
        let mut conn = app.db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let tomorrow = app.today() + chrono::Duration::days(1);
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, &policy, store, tomorrow, 120, None)
        })
        .unwrap();
    }
    let browser = Browser::start_in(lang).await;
    let c = &browser.client;
    log_in(&app, &browser, "citizen@example.com").await;
    c.goto(&app.url("/stores/11800001")).await.unwrap();
    wait_for(c, "form[action='/reservations']").await;

    let room = &app.state.waiting_room;
    let _slot = room.hold().expect("the one slot");
    for i in 0..200 {
        let _ = room.arrive(None, &format!("10.0.{}.{}", i / 100, i % 100));
    }
    submit(c, "/reservations").await;
    wait_for(c, "form[data-waiting-form]").await;
    browser
        .check_page(&shot(lang, "waiting-room-booking"))
        .await;
    check(
        &app,
        &browser,
        &shot(lang, "waiting-room"),
        "/stores/11800001",
        "[data-waiting-room]",
    )
    .await;
    browser.close().await;
}
