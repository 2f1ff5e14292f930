//! The pharmacist's counter pages in a real browser at phone width (390 px),
//! in Korean and in English, checked by what is on screen: which field has
//! the focus, that the answer and the undo button lie inside the viewport,
//! the words as rendered. A walk-in queue, a pickup by national ID for
//! someone without their code, and the camera scan's decoder fed the QR code
//! a citizen's reservation page shows.

use diesel::prelude::*;
use fantoccini::{Client, Locator};
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::reservations;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::common::browser::{Browser, fill, submit, wait_for};
use crate::common::{Spawn, TestApp, assert_invariants, fixtures, spawn_app_with};
use crate::pharmacy_pickup::walk_in_stock;
use crate::pharmacy_walk_in::citizen_with_id;
use crate::reservations::{seoul, tuesday};

const PHONE: (u32, u32) = (390, 844);

/// The words a page shows, by language.
struct Words {
    browser_lang: &'static str,
    site_lang: &'static str,
    sold: &'static str,
    refused_until: &'static str,
    camera: &'static str,
    masks: &'static str,
    none_here: &'static str,
}

const KOREAN: Words = Words {
    browser_lang: "ko-KR",
    site_lang: "ko",
    sold: "판매 완료 · 이번 주 2개 중 2개 사용",
    refused_until: "구매 불가 · 12월 7일(월)부터 가능",
    camera: "카메라로 스캔",
    masks: "마스크 2개",
    none_here: "오늘 이 약국에서 받을 예약이 없습니다.",
};

const ENGLISH: Words = Words {
    browser_lang: "en-US",
    site_lang: "en",
    sold: "Sold · 2 of 2 used this week",
    refused_until: "Not allowed · can buy from Mon 7 Dec",
    camera: "Scan with the camera",
    masks: "2 masks",
    none_here: "No reservation to collect at this pharmacy today.",
};

/// 10:00 on Tuesday 1 December 2026 in Seoul; a store with supply that day,
/// 5 of it for walk-in sales, and its pharmacist. The store and its windows.
async fn counter() -> (TestApp, i64, Vec<i64>) {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 30);
    walk_in_stock(&app.db, windows[2], 5);
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Pharmacist,
        "p@example.com",
        Some(store),
        true,
        &key,
    );
    (app, store, windows)
}

async fn log_in(c: &Client, app: &TestApp, email: &str) {
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", email).await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
}

async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args).await.unwrap()
}

/// Waits until the element with the focus matches `css`: a page's
/// `autofocus` is applied after it loads, not when it is parsed.
async fn wait_for_focus(c: &Client, css: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let on = js(
            c,
            "const e = document.activeElement; return !!e && e.matches(arguments[0]);",
            vec![json!(css)],
        )
        .await;
        if on == true {
            return;
        }
        if Instant::now() > deadline {
            let now = js(
                c,
                "return document.activeElement.outerHTML.slice(0, 200);",
                vec![],
            )
            .await;
            panic!("{what}: the focus never went to `{css}`; it is on {now}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the first element matching `css` is on screen, and whether it is
/// shown at all: { top, bottom, left, right, width, shown, inside, text }
/// where `inside` means within the viewport (to a pixel) and `text` is its
/// rendered text.
async fn on_screen(c: &Client, css: &str) -> Value {
    js(
        c,
        "const e = document.querySelector(arguments[0]);
         if (!e) return null;
         const r = e.getBoundingClientRect();
         const s = getComputedStyle(e);
         const shown = !e.closest('[hidden]') && s.display !== 'none'
             && s.visibility !== 'hidden' && r.width > 0 && r.height > 0;
         return { top: r.top, bottom: r.bottom, left: r.left, right: r.right,
                  width: r.width, shown: shown,
                  // Within a pixel: scrolling to a focused element may
                  // leave a fraction of one.
                  inside: r.top >= -1 && r.left >= -1 && r.bottom <= innerHeight + 1
                      && r.right <= document.documentElement.clientWidth + 1,
                  text: e.innerText };",
        vec![json!(css)],
    )
    .await
}

fn assert_in_view(seen: &Value, what: &str) {
    assert!(!seen.is_null(), "{what} is not on the page");
    assert_eq!(seen["shown"], true, "{what} is not shown: {seen}");
    assert_eq!(
        seen["inside"], true,
        "{what} is not in the viewport: {seen}"
    );
}

/// The width the page's content has at this size (the heading's box).
async fn content_width(c: &Client) -> f64 {
    js(
        c,
        "return document.querySelector('main h1').getBoundingClientRect().width;",
        vec![],
    )
    .await
    .as_f64()
    .unwrap()
}

#[tokio::test]
async fn a_walk_in_queue_on_a_phone_in_korean() {
    walk_in_queue_on_a_phone(&KOREAN).await;
}

#[tokio::test]
async fn a_walk_in_queue_on_a_phone_in_english() {
    walk_in_queue_on_a_phone(&ENGLISH).await;
}

/// The ID field has the focus on arrival and after each answer; a valid
/// number is kept, masked, when only the quantity was wrong; a sale answers
/// in a full-width green banner naming the week's use, with its undo button
/// on screen; a second sale to the same person answers in red with the date.
async fn walk_in_queue_on_a_phone(w: &Words) {
    let (app, _, _) = counter().await;
    let browser = Browser::start_in(w.browser_lang).await;
    let c = &browser.client;
    log_in(c, &app, "p@example.com").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    c.goto(&app.url("/pharmacy/walk-in")).await.unwrap();
    wait_for(c, "[data-walk-in-left='5']").await;
    let lang = js(c, "return document.documentElement.lang;", vec![]).await;
    assert_eq!(lang, w.site_lang);
    wait_for_focus(c, "[name='national_id']", "focus on arrival").await;

    // A scanner-fast pharmacist types the number into the focused field,
    // then a quantity no sale may have.
    let number = fixtures::national_id("850101123456");
    let field = c.active_element().await.unwrap();
    field.send_keys(&number).await.unwrap();
    fill(c, "quantity", "0").await;
    submit(c, "/pharmacy/walk-in").await;
    wait_for(c, "[data-error-for='quantity']").await;
    wait_for_focus(c, "[data-error-summary]", "focus").await;
    let kept = js(
        c,
        "const f = document.querySelector('input[name=national_id]');
         return [f.type, f.value, document.body.innerText];",
        vec![],
    )
    .await;
    assert_eq!(kept[0], "password", "the number stays masked");
    assert_eq!(kept[1], number.as_str(), "the number is kept");
    assert!(
        !kept[2].as_str().unwrap().contains(&number[7..]),
        "the number is nowhere on screen"
    );
    // The error summary has the focus, on screen; the hint says the number
    // was kept.
    let summary = on_screen(c, "[data-error-summary]").await;
    assert_in_view(&summary, "the error summary");
    assert_eq!(on_screen(c, "[data-id-kept]").await["shown"], true);

    fill(c, "quantity", "2").await;
    submit(c, "/pharmacy/walk-in").await;
    wait_for(c, "[data-result='sold']").await;
    wait_for_focus(c, "[name='national_id']", "focus after a sale").await;
    let banner = on_screen(c, "[data-result='sold']").await;
    assert_in_view(&banner, "the sold banner");
    let width = content_width(c).await;
    assert!(
        banner["width"].as_f64().unwrap() >= width - 1.0,
        "the banner is as wide as the page's content ({width}): {banner}"
    );
    assert!(
        banner["text"].as_str().unwrap().contains(w.sold),
        "{banner}"
    );
    let colour = js(
        c,
        "return getComputedStyle(document.querySelector('[data-result]')).borderTopColor;",
        vec![],
    )
    .await;
    assert_eq!(colour, "rgb(6, 118, 71)", "green");
    assert_eq!(
        js(c, "return document.activeElement.value;", vec![]).await,
        "",
        "empty for the next person"
    );
    assert_in_view(&on_screen(c, "[data-undo-last]").await, "the undo button");
    // The day's list is cards on a phone: its own undo button fits the
    // screen's width too once scrolled to.
    js(
        c,
        "document.querySelector('tr[data-sale-id] button[data-undo]').scrollIntoView({block: 'center'});",
        vec![],
    )
    .await;
    assert_in_view(
        &on_screen(c, "tr[data-sale-id] button[data-undo]").await,
        "the sale card's undo button",
    );
    browser
        .check_page(&format!("walk-in-sold-{}", w.site_lang))
        .await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();

    // The same person again: their week is spent.
    c.goto(&app.url("/pharmacy/walk-in")).await.unwrap();
    wait_for_focus(c, "[name='national_id']", "focus").await;
    c.active_element()
        .await
        .unwrap()
        .send_keys(&number)
        .await
        .unwrap();
    fill(c, "quantity", "1").await;
    submit(c, "/pharmacy/walk-in").await;
    wait_for(c, "[data-result='refused']").await;
    wait_for_focus(c, "[name='national_id']", "focus after a refusal").await;
    let banner = on_screen(c, "[data-result='refused']").await;
    assert_in_view(&banner, "the refused banner");
    assert!(
        banner["width"].as_f64().unwrap() >= content_width(c).await - 1.0,
        "{banner}"
    );
    let text = banner["text"].as_str().unwrap();
    assert!(text.contains(w.refused_until), "{text}");
    assert!(text.contains("850101-1******"), "{text}");
    let colour = js(
        c,
        "return getComputedStyle(document.querySelector('[data-result]')).borderTopColor;",
        vec![],
    )
    .await;
    assert_eq!(colour, "rgb(180, 35, 24)", "red");
    browser
        .check_page(&format!("walk-in-refused-{}", w.site_lang))
        .await;
    assert_invariants(&app.db);
    browser.close().await;
}

#[tokio::test]
async fn a_pickup_by_national_id_on_a_phone_in_korean() {
    pickup_by_national_id_on_a_phone(&KOREAN).await;
}

#[tokio::test]
async fn a_pickup_by_national_id_on_a_phone_in_english() {
    pickup_by_national_id_on_a_phone(&ENGLISH).await;
}

/// Someone who lost their phone: found by national ID, the one reservation
/// listed on screen with its confirm button focused, handed over, and the
/// code field focused again for the next scan.
async fn pickup_by_national_id_on_a_phone(w: &Words) {
    let (app, _, windows) = counter().await;
    let number = fixtures::national_id("870202223456");
    let kim = citizen_with_id(&app, "kim@example.com", &number).await;
    fixtures::reservation(&app.db, windows[0], kim, 2);

    let browser = Browser::start_in(w.browser_lang).await;
    let c = &browser.client;
    log_in(c, &app, "p@example.com").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    c.goto(&app.url("/pharmacy/pickup")).await.unwrap();
    wait_for(c, "form[data-by-id-form]").await;
    wait_for_focus(c, "[name='code']", "the scan field first").await;

    // Someone with nothing here: one sentence.
    fill(c, "national_id", &fixtures::national_id("900303123456")).await;
    c.find(Locator::Css("form[data-by-id-form] button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-by-id-none]").await;
    wait_for_focus(c, "[data-by-id]", "the answer has the focus").await;
    let none = on_screen(c, "[data-by-id]").await;
    assert_in_view(&none, "the answer");
    assert!(
        none["text"].as_str().unwrap().contains(w.none_here),
        "{none}"
    );

    fill(c, "national_id", &number).await;
    c.find(Locator::Css("form[data-by-id-form] button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-by-id][data-count='1']").await;
    wait_for_focus(c, "[data-confirm]", "the confirm button has the focus").await;
    let list = on_screen(c, "[data-by-id]").await;
    assert!(list["shown"] == true && list["top"].as_f64().unwrap() >= 0.0);
    let text = list["text"].as_str().unwrap();
    assert!(text.contains("870202-2******"), "{text}");
    assert!(text.contains(w.masks), "{text}");
    assert!(!text.contains(&number[7..]));
    assert_in_view(
        &on_screen(c, "button[data-confirm]").await,
        "the confirm button",
    );
    browser
        .check_page(&format!("pickup-by-id-{}", w.site_lang))
        .await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();

    c.find(Locator::Css("button[data-confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-handed][data-quantity='2']").await;
    wait_for_focus(c, "[name='code']", "ready for the next scan").await;
    assert_in_view(
        &on_screen(c, "[data-handed]").await,
        "the handed-over answer",
    );
    assert_invariants(&app.db);
    browser.close().await;
}

#[tokio::test]
async fn the_camera_scan_reads_a_reservations_qr_code_in_korean() {
    camera_scan_reads_a_qr_code(&KOREAN).await;
}

#[tokio::test]
async fn the_camera_scan_reads_a_reservations_qr_code_in_english() {
    camera_scan_reads_a_qr_code(&ENGLISH).await;
}

/// Without JavaScript the page has no camera button; with it, the button is
/// on screen, and the decoder reads the very QR code a citizen's reservation
/// page draws, fills the code field and looks the reservation up — the path
/// a camera frame takes, fed a picture.
async fn camera_scan_reads_a_qr_code(w: &Words) {
    let (app, store, windows) = counter().await;
    let kim = fixtures::user(
        &app.db,
        Role::Citizen,
        "kim@example.com",
        None,
        true,
        &app.state.keys.national_id.clone(),
    );
    let reservation = fixtures::reservation(&app.db, windows[0], kim, 2);
    let code: String = reservations::table
        .find(reservation)
        .select(reservations::pickup_code)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    let citizen = app.new_visitor();
    assert_eq!(
        citizen
            .login("kim@example.com", fixtures::PASSWORD)
            .await
            .status(),
        303
    );
    let page = citizen.html(&format!("/reservations/{reservation}")).await;
    let svg = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap() + "</svg>".len()];

    // As served, before any script runs.
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p2@example.com", Some(store))
        .await;
    let html = pharmacist.html("/pharmacy/pickup").await;
    let start = html.find("data-camera-scan").unwrap();
    let box_html = &html[start..start + html[start..].find("</div>").unwrap()];
    assert!(!box_html.contains("<button"), "{box_html}");
    assert!(
        html[..start].ends_with("hidden "),
        "the box is hidden: {html}"
    );
    assert!(
        !html.contains("jsQR.js\"></script>"),
        "loaded only when needed"
    );

    let browser = Browser::start_in(w.browser_lang).await;
    let c = &browser.client;
    log_in(c, &app, "p@example.com").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    c.goto(&app.url("/pharmacy/pickup")).await.unwrap();
    wait_for(c, "button[data-camera-start]").await;
    let button = on_screen(c, "button[data-camera-start]").await;
    assert_in_view(&button, "the camera button");
    assert_eq!(button["text"], w.camera);
    wait_for_focus(c, "[name='code']", "the scan field keeps the focus").await;
    browser
        .check_page(&format!("pickup-camera-{}", w.site_lang))
        .await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();

    // The citizen's QR code, drawn as a camera frame would be, decoded by
    // the vendored jsQR and by whatever the page would use itself.
    let read = c
        .execute_async(
            "const [svg, done] = [arguments[0], arguments[arguments.length - 1]];
             const img = new Image();
             img.onload = async () => {
               const canvas = document.createElement('canvas');
               canvas.width = 480; canvas.height = 480;
               const g = canvas.getContext('2d');
               g.fillStyle = '#fff'; g.fillRect(0, 0, 480, 480);
               g.drawImage(img, 40, 40, 400, 400);
               try {
                 const jsqr = await window.pickupCamera.decodeCanvas(canvas, { detector: false });
                 const own = await window.pickupCamera.decodeCanvas(canvas);
                 done({ jsqr, own, loaded: typeof window.jsQR });
               } catch (e) { done({ error: String(e) }); }
             };
             img.onerror = () => done({ error: 'image' });
             img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);",
            vec![json!(svg)],
        )
        .await
        .unwrap();
    assert_eq!(read["jsqr"], code.as_str(), "{read}");
    assert_eq!(read["own"], code.as_str(), "{read}");
    assert_eq!(read["loaded"], "function");

    // What the camera loop does with a code read: into the field, sent.
    js(
        c,
        "window.pickupCamera.use(arguments[0]);",
        vec![json!(code)],
    )
    .await;
    wait_for(c, "[data-found][data-quantity='2']").await;
    wait_for_focus(c, "[data-confirm]", "Enter hands over").await;
    let found = on_screen(c, "[data-found]").await;
    assert!(
        found["text"].as_str().unwrap().contains(&code[4..]),
        "{found}"
    );
    assert_in_view(
        &on_screen(c, "[data-found] .handover-quantity").await,
        "the quantity to hand over",
    );
    assert_in_view(
        &on_screen(c, "button[data-confirm]").await,
        "the confirm button",
    );
    browser.close().await;
}
