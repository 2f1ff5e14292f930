//! Input an attacker or a broken client sends: a CSRF token in the URL, multipart
//! bodies with and without their token and beyond the size limit, form fields
//! that are not UTF-8, control and bidi-override characters, and birth dates in
//! the future. Each gets a specific 4xx, and nothing of it is written or echoed.

use std::time::Duration;

use chrono::{Datelike, TimeDelta, Utc};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{mail_outbox, people, users};
use mask_reservation::web::csrf::MAX_MULTIPART_BYTES;
use reqwest::multipart::{Form, Part};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::fixtures::{self, PASSWORD};
use crate::common::{TestApp, Visitor, spawn_app};

fn count_rows(app: &TestApp) -> (i64, i64, i64) {
    let mut conn = app.db.get().unwrap();
    (
        users::table.count().get_result(&mut conn).unwrap(),
        people::table.count().get_result(&mut conn).unwrap(),
        mail_outbox::table.count().get_result(&mut conn).unwrap(),
    )
}

async fn citizen(app: &TestApp) -> Visitor {
    app.logged_in_as(Role::Citizen, "citizen@example.com", None)
        .await
}

/// Whether the visitor's session still stands (a citizen's page answers 200).
async fn logged_in(v: &Visitor) -> bool {
    v.get("/reservations").await.status() == 200
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
        ("consent", "on"),
    ]
}

// ---- CSRF tokens: never from the URL, found in multipart bodies ---------------

#[tokio::test]
async fn a_csrf_token_only_in_the_query_string_is_refused() {
    let app = spawn_app().await;
    let v = citizen(&app).await;
    let token = v.csrf_token().await;

    let res = v
        .post_form_raw(&format!("/logout?csrf_token={token}"), &[])
        .await;
    assert_eq!(res.status(), 403);
    assert!(logged_in(&v).await, "the refused logout changed nothing");

    let res = v
        .post_bytes(
            &format!("/logout?csrf_token={token}"),
            "multipart/form-data; boundary=b",
            b"--b--\r\n".to_vec(),
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(logged_in(&v).await);

    // The same token in the body is accepted: it was the place, not the token.
    let res = v.post_form_raw("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 303);
    assert!(!logged_in(&v).await);
}

fn csv_part(bytes: Vec<u8>) -> Part {
    Part::bytes(bytes)
        .file_name("stores.csv")
        .mime_str("text/csv")
        .unwrap()
}

async fn post_multipart(v: &Visitor, path: &str, form: Form) -> reqwest::Response {
    v.client
        .post(v.url(path))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_multipart_post_passes_with_its_csrf_token_part_and_is_refused_without_it() {
    let app = spawn_app().await;
    let v = citizen(&app).await;
    let token = v.csrf_token().await;
    let csv = b"code,name,addr\r\n31802095,\xEC\x95\xBD\xEA\xB5\xAD,--x\r\n".to_vec();

    let without = Form::new()
        .text("note", format!("csrf_token={token}"))
        .part("file", csv_part(csv.clone()));
    assert_eq!(post_multipart(&v, "/logout", without).await.status(), 403);
    assert!(logged_in(&v).await);

    let forged = Form::new()
        .text("csrf_token", "forged")
        .part("file", csv_part(csv.clone()));
    assert_eq!(post_multipart(&v, "/logout", forged).await.status(), 403);
    assert!(logged_in(&v).await);

    // After the file, as a form that puts its hidden field last sends it.
    let with = Form::new()
        .part("file", csv_part(csv))
        .text("csrf_token", token);
    let res = post_multipart(&v, "/logout", with).await;
    assert_eq!(res.status(), 303);
    assert!(!logged_in(&v).await, "the logout went through");
}

#[tokio::test]
async fn a_multipart_upload_up_to_the_limit_is_read_and_one_beyond_it_is_413() {
    let app = spawn_app().await;
    let v = citizen(&app).await;
    let token = v.csrf_token().await;

    let too_big = Form::new()
        .text("csrf_token", token.clone())
        .part("file", csv_part(vec![b'x'; MAX_MULTIPART_BYTES]));
    let res = post_multipart(&v, "/logout", too_big).await;
    assert_eq!(res.status(), 413);
    assert!(logged_in(&v).await);

    // A large import that fits, with the token after the file.
    let fits = Form::new()
        .part("file", csv_part(vec![b'x'; MAX_MULTIPART_BYTES - 4096]))
        .text("csrf_token", token);
    let res = post_multipart(&v, "/logout", fits).await;
    assert_eq!(res.status(), 303);
    assert!(!logged_in(&v).await);
}

/// A client that does not say how large its body is (chunked) is stopped once
/// it has sent more than the limit, not read to the end.
#[tokio::test]
async fn an_endless_chunked_multipart_body_is_cut_off_with_413() {
    let app = spawn_app().await;
    let v = citizen(&app).await;
    let token = v.csrf_token().await;
    let port = app.address.rsplit(':').next().unwrap();
    let stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /logout HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
        v.cookie_header()
    );
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let opening = "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n";
        write
            .write_all(format!("{:x}\r\n{opening}\r\n", opening.len()).as_bytes())
            .await?;
        let chunk = vec![b'x'; 64 * 1024];
        // Twice the limit, then the token: the server must answer before it.
        for _ in 0..(2 * MAX_MULTIPART_BYTES / chunk.len()) {
            write
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            write.write_all(&chunk).await?;
            write.write_all(b"\r\n").await?;
        }
        let tail = format!(
            "\r\n--b\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n--b--\r\n"
        );
        write
            .write_all(format!("{:x}\r\n{tail}\r\n0\r\n\r\n", tail.len()).as_bytes())
            .await?;
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(30), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server answers");
    writer.abort();
    let status_line = String::from_utf8_lossy(&answer);
    assert!(
        status_line.starts_with("HTTP/1.1 413"),
        "{}",
        status_line.lines().next().unwrap_or_default()
    );
    assert!(logged_in(&v).await);
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
                 &password=correct+horse+battery&password_confirm=correct+horse+battery&consent=on\
                 &csrf_token={token}"
            ),
            format!(
                "national_id={national_id}&name=%ED%99%8D&email=a%40example.com%C3%28\
                 &password=correct+horse+battery&password_confirm=correct+horse+battery&consent=on\
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
