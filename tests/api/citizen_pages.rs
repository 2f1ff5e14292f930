//! The citizen's booking pages on a phone (390 px), in Korean and in English,
//! judged by what is on screen: a refused booking said at the top with the
//! focus on it and the nearest open window one tap away; a store page that
//! shows one day at a time, no ended window, the quota once and the quantity
//! preset; the rotation rule told before booking; the reservation list as
//! cards; cancelling asked before it is done.

use chrono::{Days, NaiveDate};
use diesel::prelude::*;
use fantoccini::{Client, Locator};
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::reservations;
use serde_json::Value;

use crate::common::browser::{Browser, fill, submit, wait_for};
use crate::common::{Spawn, TestApp, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

const LANGS: [&str; 2] = ["ko-KR", "en-US"];
const PHONE: (u32, u32) = (390, 844);

fn korean(lang: &str) -> bool {
    lang.starts_with("ko")
}

/// A browser in `lang`, its window the size of a phone.
async fn phone(lang: &str) -> Browser {
    let browser = Browser::start_in(lang).await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .unwrap();
    browser
}

/// Runs the page check (which leaves the window at desktop size), then goes
/// back to the phone's size.
async fn check_on_phone(browser: &Browser, name: &str) {
    browser.check_page(name).await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .unwrap();
}

async fn log_in(app: &TestApp, c: &Client, email: &str) {
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", email).await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
}

/// Runs `script` (a function body) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Waits until `condition` (a JavaScript expression) holds in the page, for
/// up to ten seconds: a deferred script may run late on a loaded machine.
async fn wait_until(c: &Client, condition: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if js(c, &format!("return !!({condition});")).await == Value::Bool(true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never true: {condition} on {:?}",
            c.current_url().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Where the first element matching `css` is on screen, and whether it can
/// be seen at all: `{found, visible, top, bottom, left, right, text}`, with
/// the viewport's `width` and `height`.
async fn on_screen(c: &Client, css: &str) -> Value {
    let css = serde_json::to_string(css).unwrap();
    js(
        c,
        &format!(
            "const e = document.querySelector({css});
             const w = document.documentElement.clientWidth, h = window.innerHeight;
             if (!e) return {{ found: false, width: w, height: h }};
             const r = e.getBoundingClientRect(), s = getComputedStyle(e);
             return {{ found: true,
                       visible: r.width > 0 && r.height > 0 && s.visibility !== 'hidden'
                                && s.display !== 'none' && !e.closest('[hidden]'),
                       top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                       text: e.innerText, width: w, height: h }};"
        ),
    )
    .await
}

/// Asserts the element is visible and wholly inside the viewport.
fn assert_in_view(what: &str, v: &Value) {
    assert_eq!(v["found"], true, "{what} is on the page: {v}");
    assert_eq!(v["visible"], true, "{what} is visible: {v}");
    let (top, bottom) = (v["top"].as_f64().unwrap(), v["bottom"].as_f64().unwrap());
    let (left, right) = (v["left"].as_f64().unwrap(), v["right"].as_f64().unwrap());
    assert!(
        top >= 0.0 && bottom <= v["height"].as_f64().unwrap(),
        "{what} is above the fold: {v}"
    );
    assert!(
        left >= 0.0 && right <= v["width"].as_f64().unwrap() + 0.5,
        "{what} fits the width: {v}"
    );
}

fn text(v: &Value) -> &str {
    v["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_booking_lost_to_another_is_said_at_the_top_with_focus_and_the_nearest_window_one_tap_away()
 {
    for lang in LANGS {
        let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
        let key = app.state.keys.national_id.clone();
        let minji = fixtures::user(
            &app.db,
            Role::Citizen,
            "minji@example.com",
            None,
            true,
            &key,
        );
        let store = fixtures::store(&app.db, "11800001", "세종로약국");
        // Two places in each window: one rival's booking fills the first.
        let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), 6);
        let browser = phone(lang).await;
        let c = &browser.client;
        log_in(&app, c, "minji@example.com").await;
        c.goto(&app.url("/stores/11800001")).await.unwrap();
        let form = wait_for(c, &format!("form[data-reserve-form='{}']", windows[0])).await;

        // While the page is open, someone else takes the window's last places.
        let rival = app
            .logged_in_as(Role::Citizen, "rival@example.com", None)
            .await;
        let res = rival
            .post_form(
                "/reservations",
                &[
                    ("window_id", &windows[0].to_string()),
                    ("quantity", "2"),
                    ("request_id", &mask_reservation::random::token()),
                ],
            )
            .await;
        assert_eq!(res.status(), 303);

        form.find(Locator::Css("button[type='submit']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-refusal-summary][data-refusal='full']").await;
        wait_until(
            c,
            "document.activeElement && document.activeElement.closest('[data-error-summary]')",
        )
        .await;
        let summary = on_screen(c, "[data-error-summary]").await;
        assert_in_view("the refusal", &summary);
        let (heading, said) = if korean(lang) {
            ("예약하지 못했습니다", "마감되었습니다")
        } else {
            ("Not booked", "is full")
        };
        // Its heading says what happened, not "check what you typed".
        let title = on_screen(c, "[data-error-summary] h2").await;
        assert_eq!(text(&title).trim(), heading, "{lang}: {title}");
        assert!(text(&summary).contains(said), "{lang}: {summary}");
        let button = on_screen(c, "[data-suggest-button]").await;
        assert_in_view("the suggested window", &button);
        assert!(text(&button).contains("12:00–15:00"), "{lang}: {button}");
        check_on_phone(&browser, &format!("store-refused-{lang}")).await;

        // One tap books the suggested window.
        c.find(Locator::Css("[data-suggest-button]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-pickup-code]").await;
        let booked: Vec<(i64, i32)> = reservations::table
            .filter(reservations::user_id.eq(minji))
            .select((reservations::window_id, reservations::quantity))
            .load(&mut app.db.get().unwrap())
            .unwrap();
        assert_eq!(booked, vec![(windows[1], 2)], "{lang}");
        crate::common::assert_invariants(&app.db);
        browser.close().await;
    }
}

#[tokio::test]
async fn the_store_page_on_a_phone_shows_one_day_the_quota_once_and_tells_the_rotation_day_first() {
    for lang in LANGS {
        // 13:00 on the Tuesday: its 09:00–12:00 window has ended.
        let app = spawn_app_with(Spawn::at(seoul(tuesday(), 13, 0))).await;
        let key = app.state.keys.national_id.clone();
        fixtures::user(
            &app.db,
            Role::Citizen,
            "minji@example.com",
            None,
            true,
            &key,
        );
        let store = fixtures::store(&app.db, "11800001", "세종로약국");
        let week: Vec<(NaiveDate, Vec<i64>)> = (0..7)
            .map(|d| {
                let day = tuesday() + Days::new(d);
                (day, fixtures::supply(&app.db, store, day, 90))
            })
            .collect();
        let ended = week[0].1[0];
        let browser = phone(lang).await;
        let c = &browser.client;
        log_in(&app, c, "minji@example.com").await;
        c.goto(&app.url("/stores/11800001")).await.unwrap();
        wait_for(c, "[data-day-picker]").await;

        let page = js(
            c,
            &format!(
                "return {{
                   ended: document.querySelector('[data-window=\"{ended}\"]') !== null,
                   windows: document.querySelectorAll('[data-window]').length,
                   chosen: document.querySelector('[data-day-link][aria-current]').dataset.dayLink,
                   quotaBoxes: document.querySelectorAll('[data-quota]').length,
                   line: document.querySelector('[data-quota] [data-quota-left]').innerText,
                   body: document.body.innerText,
                   height: document.body.scrollHeight }};"
            ),
        )
        .await;
        assert_eq!(page["ended"], false, "{lang}: an ended window is not shown");
        assert_eq!(page["windows"], 2, "{lang}: the rest of today only");
        assert_eq!(page["chosen"], tuesday().to_string());
        assert_eq!(page["quotaBoxes"], 1);
        let line = page["line"].as_str().unwrap();
        assert_eq!(
            page["body"].as_str().unwrap().matches(line).count(),
            1,
            "{lang}: the quota is said once: {line}"
        );
        let height = page["height"].as_f64().unwrap();
        assert!(height < 2600.0, "{lang}: the page is {height} px tall");
        // The quantity offered is all the week's quota.
        let quantity = on_screen(c, &format!("#q-{}", week[0].1[1])).await;
        assert_eq!(quantity["visible"], true);
        let value = js(
            c,
            &format!(
                "return document.querySelector('#q-{}').value;",
                week[0].1[1]
            ),
        )
        .await;
        assert_eq!(value, "2", "{lang}");
        check_on_phone(&browser, &format!("store-day-{lang}")).await;

        // Another day is one link away, without a script.
        let wednesday = week[1].0;
        c.find(Locator::Css(&format!("[data-day-link='{wednesday}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, &format!("section[data-day='{wednesday}']")).await;
        let picked = js(
            c,
            "return [document.querySelector('[data-day-link][aria-current]').dataset.dayLink,
                     document.querySelectorAll('[data-window]').length];",
        )
        .await;
        assert_eq!(picked, serde_json::json!([wednesday.to_string(), 3]));

        // Rotation: the citizen (born 1985) buys on Fridays; the page says so
        // at the top and opens on Friday; another weekday's windows say why
        // they are not for them.
        app.set_setting("rotation", "birth_year");
        c.goto(&app.url("/stores/11800001")).await.unwrap();
        let line = on_screen(c, "[data-rotation-line]").await;
        assert_in_view("the rotation line", &line);
        let friday = if korean(lang) { "금요일" } else { "Friday" };
        assert!(text(&line).contains(friday), "{lang}: {line}");
        let chosen = js(
            c,
            "return document.querySelector('[data-day-link][aria-current]').dataset.dayLink;",
        )
        .await;
        assert_eq!(chosen, week[3].0.to_string(), "{lang}: Friday first");
        c.goto(&app.url(&format!("/stores/11800001?day={wednesday}")))
            .await
            .unwrap();
        wait_for(c, &format!("section[data-day='{wednesday}']")).await;
        let marks = js(
            c,
            "return { rotation: document.querySelectorAll('[data-not-bookable=\"rotation\"]').length,
                      forms: document.querySelectorAll('form[data-reserve-form]').length };",
        )
        .await;
        assert_eq!(
            marks,
            serde_json::json!({ "rotation": 3, "forms": 0 }),
            "{lang}"
        );
        let reason = on_screen(c, "[data-not-bookable='rotation'] .window-reason").await;
        assert_eq!(reason["visible"], true);
        assert!(text(&reason).contains(friday), "{lang}: {reason}");
        check_on_phone(&browser, &format!("store-rotation-{lang}")).await;
        browser.close().await;
    }
}

#[tokio::test]
async fn on_a_phone_reservations_are_cards_and_cancelling_is_asked_first_and_can_be_declined() {
    for lang in LANGS {
        let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
        let key = app.state.keys.national_id.clone();
        let minji = fixtures::user(
            &app.db,
            Role::Citizen,
            "minji@example.com",
            None,
            true,
            &key,
        );
        let store = fixtures::store(&app.db, "11800001", "세종로약국");
        let wednesday = tuesday() + Days::new(1);
        let windows = fixtures::supply(&app.db, store, wednesday, 90);
        let first = fixtures::reservation(&app.db, windows[0], minji, 1);
        let second = fixtures::reservation(&app.db, windows[1], minji, 1);
        let browser = phone(lang).await;
        let c = &browser.client;
        log_in(&app, c, "minji@example.com").await;
        c.goto(&app.url("/reservations")).await.unwrap();
        wait_for(c, "[data-reservation-id]").await;
        for id in [first, second] {
            let card = format!("tr[data-reservation-id='{id}']");
            let badge = on_screen(c, &format!("{card} [data-status-badge]")).await;
            assert_eq!(badge["visible"], true, "{lang}: {badge}");
            assert!(badge["right"].as_f64().unwrap() <= badge["width"].as_f64().unwrap());
            let active = if korean(lang) {
                "예약됨"
            } else {
                "Reserved"
            };
            assert_eq!(text(&badge), active, "{lang}");
            let code = on_screen(c, &format!("{card} [data-list-code]")).await;
            assert_eq!(code["visible"], true, "{lang}: {code}");
            assert!(code["right"].as_f64().unwrap() <= code["width"].as_f64().unwrap());
            assert_eq!(text(&code).len(), 9, "ABCD-EFGH: {code}");
        }
        // A card, not a table row: the column heads are out of sight.
        let stacked = js(
            c,
            "return getComputedStyle(document.querySelector('tr[data-reservation-id]')).display;",
        )
        .await;
        assert_eq!(stacked, "grid", "{lang}");
        check_on_phone(&browser, &format!("reservations-cards-{lang}")).await;

        // The reservation, then the question: what is cancelled, and a way back.
        c.goto(&app.url(&format!("/reservations/{first}")))
            .await
            .unwrap();
        wait_for(c, "[data-cancel-link]")
            .await
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-cancel-form]").await;
        let what = on_screen(c, "[data-cancel-what]").await;
        let words = text(&what);
        assert!(words.contains("세종로약국"), "{lang}: {words}");
        assert!(words.contains("09:00–12:00"), "{lang}: {words}");
        let one = if korean(lang) {
            "마스크 1개"
        } else {
            "1 mask"
        };
        assert!(words.contains(one), "{lang}: {words}");
        assert_in_view(
            "the confirm button",
            &on_screen(c, "[data-confirm-cancel]").await,
        );
        check_on_phone(&browser, &format!("reservation-cancel-{lang}")).await;
        c.find(Locator::Css("[data-keep-reservation]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-status='active'][data-reservation-id]").await;
        let status = |id: i64| -> String {
            reservations::table
                .find(id)
                .select(reservations::status)
                .first(&mut app.db.get().unwrap())
                .unwrap()
        };
        assert_eq!(status(first), "active", "{lang}: kept");

        wait_for(c, "[data-cancel-link]")
            .await
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-confirm-cancel]")
            .await
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-status='cancelled'][data-reservation-id]").await;
        assert_eq!(status(first), "cancelled", "{lang}");
        assert_eq!(status(second), "active", "{lang}");
        crate::common::assert_invariants(&app.db);
        browser.close().await;
    }
}
