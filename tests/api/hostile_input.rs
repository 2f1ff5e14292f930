//! Input an attacker or a broken client sends: form fields that are not UTF-8,
//! control and bidi-override characters, and birth dates in the future. Each
//! gets a specific 4xx, and nothing of it is written or echoed.

use chrono::{Datelike, TimeDelta, Utc};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{mail_outbox, people, users};

use crate::common::fixtures::{self, PASSWORD};
use crate::common::{TestApp, spawn_app};

fn count_rows(app: &TestApp) -> (i64, i64, i64) {
    let mut conn = app.db.get().unwrap();
    (
        users::table.count().get_result(&mut conn).unwrap(),
        people::table.count().get_result(&mut conn).unwrap(),
        mail_outbox::table.count().get_result(&mut conn).unwrap(),
    )
}

fn signup_fields<'a>(
    national_id: &'a str,
    name: &'a str,
    email: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("national_id", national_id),
        ("name", name),
        ("email", email),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ]
}

// ---- form fields that are not UTF-8 ------------------------------------------

#[tokio::test]
async fn a_form_field_that_is_not_utf8_is_a_400_page_saying_so_and_nothing_is_written() {
    let app = spawn_app().await;
    let national_id = fixtures::unique_national_id();
    for (lang, says) in [
        ("ko", "양식을 읽을 수 없습니다"),
        ("en", "We could not read the form"),
    ] {
        let token = app.csrf_token().await;
        for body in [
            format!(
                "national_id={national_id}&name=%FF&email=a%40example.com\
                 &password=correct+horse+battery&password_confirm=correct+horse+battery\
                 &csrf_token={token}"
            ),
            format!(
                "national_id={national_id}&name=%ED%99%8D&email=a%40example.com%C3%28\
                 &password=correct+horse+battery&password_confirm=correct+horse+battery\
                 &csrf_token={token}"
            ),
        ] {
            let res = app
                .client
                .post(app.url("/signup"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Accept-Language", lang)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400);
            let html = res.text().await.unwrap();
            assert!(html.contains(says), "{lang}: {html}");
            assert!(!html.contains('\u{fffd}'));
        }
    }
    let token = app.csrf_token().await;
    let res = app
        .post_bytes(
            "/password/forgot",
            "application/x-www-form-urlencoded",
            format!("email=%FF%40example.com&csrf_token={token}").into_bytes(),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(count_rows(&app), (0, 0, 0), "nothing was written");

    // The same form, readable, goes through.
    let fields = signup_fields(&national_id, "홍길동", "a@example.com");
    assert_eq!(app.post_form("/signup", &fields).await.status(), 303);
    assert_eq!(count_rows(&app).0, 1);
}

// ---- control and bidi characters ---------------------------------------------

const UNSAFE: [char; 8] = [
    '\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{202e}', '\u{2066}', '\u{2069}',
];

#[tokio::test]
async fn names_with_control_or_bidi_characters_are_refused_and_no_such_character_is_echoed() {
    let app = spawn_app().await;
    for c in UNSAFE {
        let name = format!("홍{c}길동");
        let national_id = format!("{c}{}", fixtures::unique_national_id());
        let email = format!("kim{c}@example.com");
        let res = app
            .post_form("/signup", &signup_fields(&national_id, &name, &email))
            .await;
        assert_eq!(res.status(), 422, "{c:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("data-error-for=\"name\""), "{c:?}");
        assert!(html.contains("사용할 수 없는 문자"), "{c:?}");
        assert!(!html.contains(c), "{c:?} echoed back");
        // What is left of the value is kept for the user to correct.
        assert!(html.contains("value=\"홍길동\""), "{c:?}");
        assert!(html.contains("value=\"kim@example.com\""), "{c:?}");
    }
    assert_eq!(count_rows(&app), (0, 0, 0));

    // An ordinary name in another script is not caught by the rule.
    let national_id = fixtures::unique_national_id();
    let fields = signup_fields(&national_id, "محمد علي", "ali@example.com");
    assert_eq!(app.post_form("/signup", &fields).await.status(), 303);
}

#[tokio::test]
async fn an_administrator_cannot_create_an_account_whose_name_reorders_the_page() {
    let app = spawn_app().await;
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let res = admin
        .post_form(
            "/admin/users",
            &[
                ("email", "staff@example.com"),
                ("name", "\u{202e}nimda"),
                ("password", PASSWORD),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"name\""), "{html}");
    assert!(!html.contains('\u{202e}'));
    assert_eq!(count_rows(&app).0, 1, "only the administrator");
}

// ---- birth dates in the future -----------------------------------------------

/// A valid number for someone born `days` from today in Seoul (the service zone).
fn born_in(days: i64) -> String {
    let date = Utc::now()
        .with_timezone(&chrono_tz::Asia::Seoul)
        .date_naive()
        + TimeDelta::days(days);
    let century = if date.year() >= 2000 { 3 } else { 1 };
    fixtures::national_id(&format!(
        "{:02}{:02}{:02}{century}23456",
        date.year() % 100,
        date.month(),
        date.day()
    ))
}

#[tokio::test]
async fn a_birth_date_after_today_is_refused_at_sign_up_with_its_own_message() {
    let app = spawn_app().await;
    // Far enough ahead that the date cannot become today while the test runs.
    let future = born_in(30);
    let res = app
        .post_form(
            "/signup",
            &signup_fields(&future, "홍길동", "kim@example.com"),
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"national_id\""));
    assert!(html.contains("오늘보다 뒤입니다"), "{html}");
    assert_eq!(count_rows(&app), (0, 0, 0));

    // Someone born a week ago may sign up.
    let baby = born_in(-7);
    let res = app
        .post_form(
            "/signup",
            &signup_fields(&baby, "홍아기", "baby@example.com"),
        )
        .await;
    assert_eq!(res.status(), 303);
}
