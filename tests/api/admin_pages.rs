//! The administrator's pages in a browser at phone width (390 px), in Korean
//! and in English, checked by what is on screen: a supply file's preview
//! (its totals above the fold, its lines fitting the screen as cards) and its
//! confirmation; the review of a settings change (each changed value, old →
//! new) and its confirmation; the audit log as sentences; the store page's
//! heading and its suspension, away from the save button. The app's clock
//! stands on a fixed Tuesday.

use serde_json::Value;

use diesel::prelude::*;
use fantoccini::{Client, Locator};
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{settings, store_days};

use crate::common::browser::{Browser, fill, submit, wait_for};
use crate::common::{Spawn, TestApp, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

const PHONE: (u32, u32) = (390, 844);
const CODE: &str = "11800001";

/// Where an element is and whether it shows: its box, the viewport's size,
/// whether it is displayed (not `display:none`, not hidden, not empty) and
/// its text as rendered.
const ON_SCREEN: &str = "
    const e = document.querySelector(arguments[0]);
    if (!e) return null;
    const r = e.getBoundingClientRect();
    const s = getComputedStyle(e);
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right,
             width: document.documentElement.clientWidth, height: window.innerHeight,
             shown: s.display !== 'none' && s.visibility !== 'hidden'
                    && !e.closest('[hidden]') && r.width > 0 && r.height > 0,
             text: e.innerText };";

async fn on_screen(c: &Client, css: &str) -> Value {
    let found = c.execute(ON_SCREEN, vec![Value::from(css)]).await.unwrap();
    assert!(!found.is_null(), "no {css} on the page");
    found
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap()
}

/// The element shows, and lies within the screen's width (and, with
/// `above_the_fold`, within its height without scrolling).
async fn assert_visible(c: &Client, css: &str, above_the_fold: bool) -> String {
    let v = on_screen(c, css).await;
    assert_eq!(v["shown"], Value::Bool(true), "{css} is not shown: {v}");
    assert!(
        num(&v, "left") >= -0.5 && num(&v, "right") <= num(&v, "width") + 0.5,
        "{css} sticks out sideways: {v}"
    );
    if above_the_fold {
        assert!(
            num(&v, "top") >= 0.0 && num(&v, "bottom") <= num(&v, "height"),
            "{css} is not above the fold: {v}"
        );
    }
    v["text"].as_str().unwrap_or_default().to_owned()
}

/// The app on a Tuesday morning, a store in Seoul and one in Busan, and a
/// browser in `lang` logged in as an administrator, at phone width.
async fn admin_browser(lang: &str) -> (TestApp, Browser) {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 9, 0))).await;
    fixtures::store(&app.db, CODE, "중앙약국");
    fixtures::busan_store(&app.db);
    app.logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let browser = Browser::start_in(lang).await;
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "admin@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "[data-dashboard], [data-no-supply]").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    (app, browser)
}

fn supply_of(app: &TestApp, code: &str) -> Option<i32> {
    use mask_reservation::db::schema::stores;
    store_days::table
        .inner_join(stores::table)
        .filter(stores::code.eq(code))
        .filter(store_days::day.eq(tuesday().succ_opt().unwrap()))
        .select(store_days::supply)
        .first(&mut app.db.get().unwrap())
        .optional()
        .unwrap()
}

async fn a_supply_file_is_previewed_readably_on_a_phone_and_applies_once_confirmed(
    lang: &str,
    before_label: &str,
) {
    let (app, browser) = admin_browser(lang).await;
    let c = &browser.client;
    let tomorrow = tuesday().succ_opt().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("supply.csv");
    std::fs::write(
        &file,
        format!("store_code,date,quantity\n{CODE},{tomorrow},120\n21000001,{tomorrow},80\n"),
    )
    .unwrap();
    c.goto(&app.url("/admin/supply")).await.unwrap();
    c.find(Locator::Css(
        "form[action='/admin/supply/import'] input[type='file']",
    ))
    .await
    .unwrap()
    .send_keys(file.to_str().unwrap())
    .await
    .unwrap();
    submit(c, "/admin/supply/import").await;
    wait_for(c, "[data-preview-totals]").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();

    // The totals are on the first screen.
    let after = assert_visible(c, "[data-total-after]", true).await;
    assert_eq!(after.trim(), "200");
    assert_visible(c, "[data-total-before]", true).await;
    // Each line fits the screen, each value under its name.
    let row = assert_visible(c, &format!("tr[data-store='{CODE}']"), false).await;
    assert!(row.contains("중앙약국") && row.contains("120"), "{row}");
    // On a phone each value is named on screen (generated text, so not in
    // innerText): the "now" figure says what it is.
    let named = c
        .execute(
            "return getComputedStyle(document.querySelector(arguments[0]), '::before').content;",
            vec![Value::from(format!(
                "tr[data-store='{CODE}'] td[data-before]"
            ))],
        )
        .await
        .unwrap();
    assert!(
        named.as_str().unwrap_or_default().contains(before_label),
        "{named}"
    );
    assert_visible(c, "tr[data-store='21000001']", false).await;
    assert_visible(c, "[data-confirm-import] button", false).await;
    assert_eq!(supply_of(&app, CODE), None, "the preview wrote nothing");
    browser
        .check_page(&format!("admin-supply-preview-{lang}"))
        .await;

    submit(c, "/admin/supply/import").await;
    wait_for(c, "[data-import-result]").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    let done = assert_visible(c, "[data-import-result]", true).await;
    assert!(done.contains('2'), "{done}");
    assert_eq!(supply_of(&app, CODE), Some(120));
    assert_eq!(supply_of(&app, "21000001"), Some(80));
    browser.close().await;
}

#[tokio::test]
async fn a_supply_file_is_previewed_readably_on_a_phone_and_applies_once_confirmed_in_korean() {
    a_supply_file_is_previewed_readably_on_a_phone_and_applies_once_confirmed("ko-KR", "지금")
        .await;
}

#[tokio::test]
async fn a_supply_file_is_previewed_readably_on_a_phone_and_applies_once_confirmed_in_english() {
    a_supply_file_is_previewed_readably_on_a_phone_and_applies_once_confirmed("en-US", "Now").await;
}

fn quota(app: &TestApp) -> String {
    settings::table
        .find("quota_per_period")
        .select(settings::value)
        .first(&mut app.db.get().unwrap())
        .unwrap()
}

async fn a_settings_change_is_reviewed_old_to_new_on_a_phone_then_applied(lang: &str, lead: &str) {
    let (app, browser) = admin_browser(lang).await;
    let c = &browser.client;
    c.goto(&app.url("/admin/settings")).await.unwrap();
    wait_for(c, "[data-settings-form]").await;
    fill(c, "quota_per_period", "3").await;
    submit(c, "/admin/settings").await;
    wait_for(c, "[data-settings-review]").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();

    let lead_text = assert_visible(c, "[data-review-lead]", true).await;
    assert!(lead_text.contains(lead), "{lead_text}");
    let line = assert_visible(c, "li[data-key='quota_per_period']", true).await;
    assert!(line.contains("2 → 3"), "{line}");
    let listed = c
        .find_all(Locator::Css("[data-settings-review] li"))
        .await
        .unwrap()
        .len();
    assert_eq!(listed, 1, "only the changed value is listed");
    assert_visible(c, "[data-confirm-settings]", false).await;
    assert_eq!(quota(&app), "2", "the review wrote nothing");
    browser
        .check_page(&format!("admin-settings-review-{lang}"))
        .await;

    c.find(Locator::Css("[data-confirm-settings]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-settings-form]").await;
    assert_eq!(quota(&app), "3");
    browser.close().await;
}

#[tokio::test]
async fn a_settings_change_is_reviewed_old_to_new_on_a_phone_then_applied_in_korean() {
    a_settings_change_is_reviewed_old_to_new_on_a_phone_then_applied("ko-KR", "바뀝니다").await;
}

#[tokio::test]
async fn a_settings_change_is_reviewed_old_to_new_on_a_phone_then_applied_in_english() {
    a_settings_change_is_reviewed_old_to_new_on_a_phone_then_applied("en-US", "will change").await;
}

async fn the_audit_log_reads_as_sentences_on_a_phone(lang: &str, sentence: &str) {
    let (app, browser) = admin_browser(lang).await;
    let c = &browser.client;
    c.goto(&app.url("/admin/settings")).await.unwrap();
    wait_for(c, "[data-settings-form]").await;
    fill(c, "quota_per_period", "3").await;
    submit(c, "/admin/settings").await;
    wait_for(c, "[data-confirm-settings]").await;
    submit(c, "/admin/settings").await;
    wait_for(c, "[data-settings-form]").await;

    c.goto(&app.url("/admin/audit")).await.unwrap();
    wait_for(c, "[data-audit]").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    let said = assert_visible(c, "tr[data-action='setting.update'] [data-sentence]", false).await;
    assert!(said.contains(sentence), "{said}");
    assert!(!said.contains("setting.update"), "{said}");
    let values = assert_visible(c, "tr[data-action='setting.update'] [data-values]", false).await;
    assert!(values.contains("2 → 3"), "{values}");
    browser.check_page(&format!("admin-audit-{lang}")).await;
    browser.close().await;
}

#[tokio::test]
async fn the_audit_log_reads_as_sentences_on_a_phone_in_korean() {
    the_audit_log_reads_as_sentences_on_a_phone(
        "ko-KR",
        "님이 운영 정책의 ‘1인당 기간 한도 (개)’ 값을 2에서 3(으)로 바꿨습니다.",
    )
    .await;
}

#[tokio::test]
async fn the_audit_log_reads_as_sentences_on_a_phone_in_english() {
    the_audit_log_reads_as_sentences_on_a_phone("en-US", "changed the policy setting").await;
}

async fn the_store_page_names_the_store_and_keeps_the_suspension_away_from_save(lang: &str) {
    let (app, browser) = admin_browser(lang).await;
    let c = &browser.client;
    c.goto(&app.url(&format!("/admin/stores/{CODE}")))
        .await
        .unwrap();
    wait_for(c, "[data-store-form]").await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    let heading = assert_visible(c, "h1", true).await;
    assert!(
        heading.contains("중앙약국") && heading.contains(CODE),
        "{heading}"
    );
    assert_visible(c, "#f-suspended", false).await;
    let suspend = on_screen(c, "#f-suspended").await;
    let save = on_screen(c, "[data-store-form] > button[type='submit']").await;
    // Between them lie the store's fields: a hurried tap on one is not a tap
    // on the other.
    assert!(
        num(&save, "top") - num(&suspend, "bottom") > 300.0,
        "suspend {suspend} save {save}"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_store_page_names_the_store_and_keeps_the_suspension_away_from_save_in_korean() {
    the_store_page_names_the_store_and_keeps_the_suspension_away_from_save("ko-KR").await;
}

#[tokio::test]
async fn the_store_page_names_the_store_and_keeps_the_suspension_away_from_save_in_english() {
    the_store_page_names_the_store_and_keeps_the_suspension_away_from_save("en-US").await;
}
