//! The map in a browser with hostile data: a store's name is text wherever the
//! map shows it, never markup.

use std::time::Duration;

use serde_json::Value;

use crate::common::browser::{Browser, wait_for};
use crate::common::{Spawn, eventually, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

/// A name that would become a live element, and run, if rendered as HTML.
const HOSTILE: &str = "<img src=x onerror=\"document.body.dataset.injected='yes'\"> 약국";

/// Sends the marker of `arguments[0]` the mouse events of `arguments[1]` (a
/// hover, or a click) as a visitor's pointer would, and answers what the box
/// `arguments[2]` then holds: its text and the elements made inside it, with
/// any trace of the name's markup on the whole page.
const POINT_AND_READ: &str = "
    const [code, events, css] = arguments;
    const marker = document.querySelector('[data-marker=\"' + code + '\"]');
    const box = marker.getBoundingClientRect();
    const at = { bubbles: true, cancelable: true, view: window,
                 clientX: box.left + box.width / 2, clientY: box.top + box.height / 2 };
    for (const type of events) {
        marker.dispatchEvent(new MouseEvent(type, at));
    }
    const el = document.querySelector(css);
    return el && { text: el.textContent,
                   img: el.querySelectorAll('img').length,
                   elements: el.querySelectorAll('*').length,
                   stray: document.querySelectorAll('img[src=\"x\"]').length,
                   injected: document.body.dataset.injected || null };";

/// What the box `css` holds once the marker of `code` got `events`.
async fn point_and_read(c: &fantoccini::Client, code: &str, events: &[&str], css: &str) -> Value {
    let args = vec![
        Value::from(code),
        Value::from(events.to_vec()),
        Value::from(css),
    ];
    eventually(Duration::from_secs(15), css, || async {
        let seen = c.execute(POINT_AND_READ, args.clone()).await.unwrap();
        (!seen.is_null()).then_some(seen)
    })
    .await
}

#[tokio::test]
async fn a_store_name_with_markup_shows_as_text_in_the_map_tooltip_and_popup() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    let store = fixtures::store(&app.db, "11800001", HOSTILE);
    // 100 today: the windows (all still taking bookings at 10:00) hold 70,
    // the counter 30.
    fixtures::supply(&app.db, store, tuesday(), 100);
    eventually(
        Duration::from_secs(10),
        "the snapshot to hold the store",
        || async {
            let res = app.get("/corona19-masks/v1/stores/json?perPage=1").await;
            let v: Value = res.json().await.ok()?;
            (v["totalCount"] == 1).then_some(())
        },
    )
    .await;

    let browser = Browser::start_in("ko-KR").await;
    let c = &browser.client;
    c.goto(&app.url("/map?lat=37.56&lng=126.97")).await.unwrap();
    wait_for(c, "[data-markers='1']").await;
    let tooltip = point_and_read(c, "11800001", &["mouseover"], ".leaflet-tooltip").await;
    assert!(
        tooltip["text"].as_str().unwrap().starts_with(HOSTILE),
        "the name as written: {tooltip}"
    );
    assert_eq!(
        tooltip["img"], 0,
        "no element made from the name: {tooltip}"
    );
    assert_eq!(
        tooltip["elements"], 1,
        "only the text's own span: {tooltip}"
    );

    let popup = point_and_read(
        c,
        "11800001",
        &["mousedown", "mouseup", "click"],
        ".leaflet-popup-content",
    )
    .await;
    assert!(
        popup["text"].as_str().unwrap().starts_with(HOSTILE),
        "{popup}"
    );
    assert_eq!(popup["img"], 0, "{popup}");
    // The popup has the two figures the list beside the map shows.
    assert!(
        popup["text"]
            .as_str()
            .unwrap()
            .contains("예약 가능 70 · 현장 구매 30"),
        "{popup}"
    );
    for seen in [&tooltip, &popup] {
        assert_eq!(seen["stray"], 0, "no image of the name anywhere: {seen}");
        assert!(seen["injected"].is_null(), "{seen}");
    }
    browser.close().await;
}
