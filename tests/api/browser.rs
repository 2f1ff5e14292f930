//! User journeys in a real browser: headless Chromium over WebDriver.

use fantoccini::Locator;

use crate::common::browser::{Browser, fill, fill_national_id, submit, wait_for, wait_for_text};
use crate::common::spawn_app;

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

#[tokio::test]
async fn a_citizen_signs_up_verifies_by_mail_and_logs_in() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let national_id = crate::common::fixtures::national_id("900215154321");
    let password = crate::common::fixtures::PASSWORD;

    c.goto(&app.url("/signup")).await.unwrap();
    fill_national_id(c, &national_id).await;
    fill(c, "name", "김민지").await;
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", password).await;
    fill(c, "password_confirm", "not the same").await;
    submit(c, "/signup").await;
    // A mistake brings the form back with the values kept and the error by its field.
    wait_for(c, "[data-error-for='password_confirm']").await;
    let kept = c
        .find(Locator::Css("input[name='email']"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("minji@example.com"));

    fill_national_id(c, &national_id).await;
    fill(c, "password", password).await;
    fill(c, "password_confirm", password).await;
    submit(c, "/signup").await;
    // Not logged in yet: the page says a mail went to the address.
    wait_for(c, "[data-signup-sent]").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/signup/sent");

    // The verification mail went through the SMTP server; its link confirms.
    let mail = app.smtp.wait_for(1).await.remove(0);
    let body = mail.text_body();
    let start = body.find("http://").expect("a link in the mail");
    let link = body[start..].split_whitespace().next().unwrap().to_owned();
    c.goto(&link).await.unwrap();
    wait_for(c, "[data-message='verify.done']").await;

    // Then log in, and the reservations page no longer asks for verification.
    c.goto(&app.url("/reservations")).await.unwrap();
    wait_for(c, "form[action='/login']").await;
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", password).await;
    submit(c, "/login").await;
    wait_for(c, "[data-quota-left]").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/reservations");
    assert!(
        c.find(Locator::Css("[data-unverified]")).await.is_err(),
        "verified now"
    );
    let who = wait_for(c, "[data-user-role='citizen']")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(who, "김민지");

    submit(c, "/logout").await;
    wait_for(c, "a[href='/signup']").await;
    browser.close().await;
}
