//! User journeys in a real browser: headless Chromium over WebDriver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::spawn_app;
use fantoccini::{Client, Locator};

/// Waits until the element's text is `expected`: a click that navigates returns
/// before the next page is there.
async fn wait_for_text(c: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if text == expected {
                return;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{css}` never read `{expected}`; last `{last}`");
}

#[tokio::test]
async fn a_visitor_reads_the_home_page_and_switches_to_english_and_back() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    let c = &browser.client;

    c.goto(&app.url("/")).await.unwrap();
    let lang = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    // Chromium's own language is English, so Accept-Language says en: the
    // switch is what this test is about, so start from Korean explicitly.
    if lang.as_deref() != Some("ko") {
        c.find(Locator::Css("[data-lang-switch='ko']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    wait_for_text(c, "h1", "공적 마스크, 줄 서지 말고 예약하세요").await;
    let rule = c
        .find(Locator::Css("[data-rule='quota_per_period']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(rule.contains("2개"), "{rule}");

    c.find(Locator::Css("[data-lang-switch='en']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(c, "h1", "Public masks: reserve instead of queueing").await;
    let lang = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    assert_eq!(lang.as_deref(), Some("en"));
    assert_eq!(c.current_url().await.unwrap().path(), "/");

    // The choice survives navigation.
    c.goto(&app.url("/no-such-page")).await.unwrap();
    wait_for_text(c, "h1", "Page not found").await;

    c.find(Locator::Css("[data-lang-switch='ko']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(c, "h1", "페이지를 찾을 수 없습니다").await;
    browser.close().await;
}
