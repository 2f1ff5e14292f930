//! Traditional Chinese (`zh-TW`, SPEC §10): chosen from `Accept-Language`
//! (Taiwan, Hong Kong, Macau, plain `zh`; Simplified only when nothing else
//! fits), offered by the switch on every page and kept once chosen; error
//! pages, the open data's error messages and the mails in it; and a phone in
//! Chinese walking the citizen's first pages, with what is on screen checked.

use chrono::TimeDelta;
use fantoccini::{Client, Locator};
use mask_reservation::accounts::Role;
use serde_json::Value;

use crate::common::browser::{Browser, fill, fill_national_id, submit, wait_for};
use crate::common::{Spawn, TestApp, fixtures, spawn_app, spawn_app_with};
use crate::reservations::{seoul, tuesday};

const STORE: &str = "11800001";

fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
        || ('\u{1100}'..='\u{11FF}').contains(&c)
        || ('\u{3130}'..='\u{318F}').contains(&c)
}

fn is_han(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

/// Chinese as read: Han characters and no Hangul.
fn reads_chinese(text: &str) -> bool {
    text.chars().any(is_han) && !text.chars().any(is_hangul)
}

/// The app at 10:00 on Tuesday 1 December 2026 in Seoul, with a store that
/// has supply that day.
async fn app_with_a_store() -> (TestApp, Vec<i64>) {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 90);
    (app, windows)
}

#[tokio::test]
async fn traditional_and_plain_chinese_browsers_get_the_pages_in_traditional_chinese() {
    let app = spawn_app().await;
    for header in [
        "zh-TW",
        "zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7",
        "zh-Hant",
        "zh-HK",
        "zh-MO",
        "zh",
        "fr-FR, zh-Hant-TW;q=0.5",
        // Simplified alone: Traditional reads better than Korean.
        "zh-CN",
    ] {
        let res = app.get_with_lang("/", header).await;
        assert_eq!(res.status(), 200, "{header}");
        let html = res.text().await.unwrap();
        assert!(html.contains("<html lang=\"zh-TW\">"), "{header}");
        assert!(html.contains("目前實施的規則"), "{header}");
        assert!(html.contains("每期 2 片"), "{header}: the quota rule");
    }
    // Simplified with a second language they read: that one.
    let html = app
        .get_with_lang("/", "zh-CN,en;q=0.8")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"en\">"));
    // Chinese ranked below Korean: Korean.
    let html = app
        .get_with_lang("/", "ko-KR,zh-TW;q=0.5")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"ko\">"));
}

#[tokio::test]
async fn every_page_offers_traditional_chinese_and_the_choice_sticks_over_the_browser() {
    let (app, _) = app_with_a_store().await;
    for path in [
        "/".to_owned(),
        "/stores?q=중앙".to_owned(),
        format!("/stores/{STORE}"),
        "/signup".to_owned(),
        "/login".to_owned(),
        "/map".to_owned(),
        "/status".to_owned(),
    ] {
        let html = app.html(&path).await;
        assert!(
            html.contains(
                "value=\"zh-TW\" lang=\"zh-TW\" class=\"link-button\" \
                 data-lang-switch=\"zh-TW\">繁體中文</button>"
            ),
            "{path} offers 繁體中文"
        );
    }

    let res = app
        .post_form("/language", &[("lang", "zh-TW"), ("next", "/signup")])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/signup");
    for path in ["/signup".to_owned(), format!("/stores/{STORE}")] {
        let html = app
            .get_with_lang(&path, "ko-KR,ko;q=0.9")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("<html lang=\"zh-TW\">"),
            "{path}: the choice wins"
        );
        assert!(
            html.contains("<span class=\"current-lang\" aria-current=\"true\">繁體中文</span>"),
            "{path}"
        );
        assert!(
            html.contains("data-lang-switch=\"ko\">한국어</button>"),
            "{path}"
        );
        assert!(
            html.contains("data-lang-switch=\"en\">English</button>"),
            "{path}"
        );
    }
    let store = app.html(&format!("/stores/{STORE}")).await;
    assert!(store.contains("領取時段"), "{store}");
    assert!(
        store.contains("12月1日(週二)"),
        "dates as Taiwan writes them"
    );

    // A switch without the form's token changes nothing.
    let res = app
        .post_form_raw("/language", &[("lang", "en"), ("next", "/")])
        .await;
    assert_eq!(res.status(), 403);
    let refused = res.text().await.unwrap();
    assert!(
        refused.contains("無法驗證此請求"),
        "in the language still chosen"
    );
    assert!(app.html("/").await.contains("<html lang=\"zh-TW\">"));

    // An unknown language is ignored, and Korean comes back by the switch.
    let res = app
        .post_form("/language", &[("lang", "zh-CN"), ("next", "/")])
        .await;
    assert_eq!(res.status(), 303);
    assert!(app.html("/").await.contains("<html lang=\"zh-TW\">"));
    app.post_form("/language", &[("lang", "ko"), ("next", "/")])
        .await;
    let html = app.get_with_lang("/", "zh-TW").await.text().await.unwrap();
    assert!(html.contains("<html lang=\"ko\">"));
}

#[tokio::test]
async fn error_pages_and_form_errors_speak_chinese() {
    let app = spawn_app().await;
    let res = app.get_with_lang("/no-such-page", "zh-TW").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"zh-TW\">"));
    assert!(html.contains("找不到網頁"), "{html}");
    assert!(html.contains("回到首頁"), "{html}");

    // A sign-up with a mistyped number: the form back, the reason in Chinese.
    let wrong_check_digit = {
        let good = fixtures::national_id("850101123456");
        let last = good.chars().last().unwrap().to_digit(10).unwrap();
        format!("{}{}", &good[..good.len() - 1], (last + 1) % 10)
    };
    let res = app
        .client
        .post(app.url("/signup"))
        .header("Accept-Language", "zh-TW")
        .form(&[
            ("national_id", wrong_check_digit.as_str()),
            ("name", "王小明"),
            ("email", "xiaoming@example.com"),
            ("password", fixtures::PASSWORD),
            ("password_confirm", fixtures::PASSWORD),
            ("consent", "on"),
            ("csrf_token", &app.csrf_token().await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("居民登錄號碼最後一碼檢查碼不符"), "{html}");
    assert!(html.contains("xiaoming@example.com"), "the values are kept");
}

#[tokio::test]
async fn the_open_data_error_messages_follow_a_chinese_visitor() {
    let app = spawn_app().await;
    let res = app
        .get_with_lang(
            "/corona19-masks/v1/storesByGeo/json?lat=abc&lng=127",
            "zh-TW,zh;q=0.9",
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "lat 須為 -90 至 90 之間的數字。");
    let res = app
        .get_with_lang("/corona19-masks/v1/stores/json?page=0", "zh-HK")
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "page 須為 1 以上的整數。");
}

#[tokio::test]
async fn a_visitor_signing_up_in_chinese_gets_the_confirmation_mail_in_chinese() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/signup"))
        .header("Accept-Language", "zh-TW")
        .form(&[
            ("national_id", fixtures::unique_national_id().as_str()),
            ("name", "王小明"),
            ("email", "xiaoming@example.com"),
            ("password", fixtures::PASSWORD),
            ("password_confirm", fixtures::PASSWORD),
            ("consent", "on"),
            ("csrf_token", &app.csrf_token().await),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let mail = app.smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.subject(), "[公共口罩預購] 請驗證您的電子郵件地址");
    let body = mail.text_body();
    assert!(body.starts_with("王小明 您好："), "{body}");
    assert!(body.contains("連結於 48 小時內有效"), "{body}");
}

#[tokio::test]
async fn a_reservation_made_in_chinese_is_confirmed_and_reminded_in_chinese() {
    let (app, windows) = app_with_a_store().await;
    let v = app
        .logged_in_as(Role::Citizen, "mei@example.com", None)
        .await;
    let switched = v
        .post_form("/language", &[("lang", "zh-TW"), ("next", "/")])
        .await;
    assert_eq!(switched.status(), 303);
    crate::pharmacy_pickup::book(&app, &v, windows[1], 2).await;

    let start = crate::reminders::window_start(&app, windows[1]);
    assert_eq!(
        crate::reminders::remind(&app, start - TimeDelta::minutes(30)).await,
        1
    );
    let mails = app.smtp.wait_for(2).await;
    let confirmed = mails
        .iter()
        .find(|m| m.subject().contains("預購完成"))
        .expect("the confirmation");
    assert_eq!(
        confirmed.subject(),
        "[公共口罩預購] 預購完成：12月1日(週二) 중앙약국"
    );
    let body = confirmed.text_body();
    assert!(body.contains("數量：2 片"), "{body}");
    assert!(body.contains("領取時間：12月1日(週二) 12:00"), "{body}");
    let reminder = mails
        .iter()
        .find(|m| m.subject().contains("前來領取"))
        .expect("the reminder, in the reservation's language");
    assert!(
        reminder.text_body().contains("領取號碼："),
        "{}",
        reminder.text_body()
    );
    assert!(!reads_korean(&reminder.subject().replace("중앙약국", "")));
}

fn reads_korean(text: &str) -> bool {
    text.chars().any(is_hangul)
}

/// What the browser shows of the first element matching `css`, at the
/// window's present size.
#[derive(Debug)]
struct Shown {
    text: String,
    /// Laid out, not `display: none`, not hidden, not invisible.
    visible: bool,
    /// Within the viewport's width.
    inside: bool,
    /// Its top within the first screen.
    above_the_fold: bool,
}

async fn shown(c: &Client, css: &str) -> Shown {
    let v = c
        .execute(
            "const el = document.querySelector(arguments[0]);
             if (!el) return null;
             const r = el.getBoundingClientRect();
             const s = getComputedStyle(el);
             const vw = document.documentElement.clientWidth;
             return {
               text: el.innerText,
               visible: r.width > 0 && r.height > 0 && s.display !== 'none'
                 && s.visibility !== 'hidden' && !el.closest('[hidden]'),
               inside: r.left >= 0 && r.right <= vw + 0.5,
               above: r.top >= 0 && r.top < window.innerHeight,
             };",
            vec![Value::from(css)],
        )
        .await
        .unwrap();
    assert!(!v.is_null(), "`{css}` is not on the page");
    Shown {
        text: v["text"].as_str().unwrap_or("").to_owned(),
        visible: v["visible"].as_bool().unwrap_or(false),
        inside: v["inside"].as_bool().unwrap_or(false),
        above_the_fold: v["above"].as_bool().unwrap_or(false),
    }
}

async fn at_phone_width(c: &Client) {
    let (width, height) = crate::common::browser::WIDTHS[1];
    c.set_window_size(width, height).await.unwrap();
    c.execute("window.scrollTo(0, 0); return true;", vec![])
        .await
        .unwrap();
}

/// Waits until the page's `<html lang>` is `lang`: a click that navigates
/// returns before the next page is there.
async fn wait_for_lang(c: &Client, lang: &str) {
    crate::common::eventually(
        std::time::Duration::from_secs(15),
        &format!("a page in {lang}"),
        || async {
            let el = c.find(Locator::Css("html")).await.ok()?;
            (el.attr("lang").await.ok()?.as_deref() == Some(lang)).then_some(())
        },
    )
    .await;
}

async fn assert_heading_in_chinese_on_screen(c: &Client, css: &str, expected: &str) {
    let s = shown(c, css).await;
    assert_eq!(s.text, expected);
    assert!(reads_chinese(&s.text), "{s:?}");
    assert!(s.visible && s.inside && s.above_the_fold, "{css}: {s:?}");
}

#[tokio::test]
async fn a_phone_switched_to_chinese_finds_a_store_and_reaches_the_sign_up_form_in_chinese() {
    let (app, _) = app_with_a_store().await;
    let browser = Browser::start_in("ko-KR").await;
    let c = &browser.client;

    c.goto(&app.url("/")).await.unwrap();
    wait_for_lang(c, "ko").await;
    at_phone_width(c).await;
    // The switch is where a thumb finds it, and names the language in itself.
    let switch = shown(c, "[data-lang-switch='zh-TW']").await;
    assert_eq!(switch.text, "繁體中文");
    assert!(
        switch.visible && switch.inside && switch.above_the_fold,
        "{switch:?}"
    );
    c.find(Locator::Css("[data-lang-switch='zh-TW']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_lang(c, "zh-TW").await;
    browser.check_page("zh-tw-home").await;
    at_phone_width(c).await;
    assert_heading_in_chinese_on_screen(c, "h1", "公共口罩，不必排隊，線上預購").await;
    let current = shown(c, ".current-lang").await;
    assert_eq!(current.text, "繁體中文");
    assert!(current.visible && current.inside, "{current:?}");

    // The search, as typed on the phone.
    fill(c, "q", "중앙").await;
    submit(c, "/stores").await;
    wait_for(c, "#results-heading").await;
    browser.check_page("zh-tw-store-search").await;
    at_phone_width(c).await;
    assert_heading_in_chinese_on_screen(c, "h1", "搜尋藥局").await;
    let count = shown(c, "#results-heading").await;
    assert_eq!(count.text, "搜尋到的販售點");
    assert!(count.visible && count.inside, "{count:?}");

    // The store: its name is Korean, what the page says about it is not.
    c.goto(&app.url(&format!("/stores/{STORE}"))).await.unwrap();
    wait_for(c, "#windows-title").await;
    browser.check_page("zh-tw-store").await;
    at_phone_width(c).await;
    let windows = shown(c, "#windows-title").await;
    assert_eq!(windows.text, "領取時段");
    assert!(windows.visible && windows.inside, "{windows:?}");
    let day = shown(c, "section.day h3").await;
    assert_eq!(day.text, "12月1日(週二)");
    assert!(day.visible && day.inside, "{day:?}");
    let login = shown(c, "[data-login-to-reserve]").await;
    assert_eq!(login.text, "登入後預購");
    assert!(login.visible && login.inside, "{login:?}");

    // Sign-up: the form, then a mistake told in Chinese where the eye lands.
    c.goto(&app.url("/signup")).await.unwrap();
    wait_for(c, "form[action='/signup']").await;
    browser.check_page("zh-tw-signup").await;
    at_phone_width(c).await;
    assert_heading_in_chinese_on_screen(c, "h1", "註冊").await;
    let hint = shown(c, "form[action='/signup']").await;
    assert!(hint.text.contains("例如 850101-1234566"), "{hint:?}");
    assert!(hint.visible && hint.inside, "{hint:?}");
    fill_national_id(c, &fixtures::unique_national_id()).await;
    fill(c, "name", "王小明").await;
    fill(c, "email", "xiaoming@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    fill(c, "password_confirm", "not the same").await;
    submit(c, "/signup").await;
    wait_for(c, "[data-error-summary]").await;
    browser.check_page("zh-tw-signup-error").await;
    at_phone_width(c).await;
    let focused = c
        .execute(
            "return document.activeElement.matches('[data-error-summary]');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focused, Value::Bool(true), "the summary has the focus");
    let summary = shown(c, "[data-error-summary]").await;
    assert!(summary.text.contains("兩次輸入的密碼不一致"), "{summary:?}");
    assert!(reads_chinese(&summary.text), "{summary:?}");
    assert!(summary.visible && summary.inside, "{summary:?}");

    // And on to English, the same way.
    c.find(Locator::Css("[data-lang-switch='en']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_lang(c, "en").await;
    at_phone_width(c).await;
    let h1 = shown(c, "h1").await;
    assert!(h1.text.is_ascii() && h1.visible && h1.inside, "{h1:?}");
    browser.close().await;
}

#[tokio::test]
async fn a_phone_whose_language_is_chinese_opens_the_site_in_chinese() {
    let (app, _) = app_with_a_store().await;
    let browser = Browser::start_in("zh-TW").await;
    let c = &browser.client;
    c.goto(&app.url("/")).await.unwrap();
    wait_for_lang(c, "zh-TW").await;
    at_phone_width(c).await;
    assert_heading_in_chinese_on_screen(c, "h1", "公共口罩，不必排隊，線上預購").await;
    let rules = shown(c, "#rules-heading").await;
    assert_eq!(rules.text, "目前實施的規則");
    assert!(rules.visible && rules.inside, "{rules:?}");
    // Only the search hint's example place names are Korean.
    for section in ["section.how", "section.rules"] {
        let s = shown(c, section).await;
        assert!(reads_chinese(&s.text), "{section}: {}", s.text);
        assert!(s.visible && s.inside, "{section}: {s:?}");
    }

    c.goto(&app.url("/no-such-page")).await.unwrap();
    wait_for(c, "h1").await;
    browser.check_page("zh-tw-not-found").await;
    at_phone_width(c).await;
    assert_heading_in_chinese_on_screen(c, "h1", "找不到網頁").await;
    browser.close().await;
}
