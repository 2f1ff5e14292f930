//! Accounts over HTTP: sign-up with national-ID checks, e-mail verification
//! through a real SMTP server, login, logout, password reset, disabled accounts,
//! admin-created accounts, rate limits, and hostile input.

use std::time::Duration;

use crate::common::fixtures::{self, PASSWORD};
use crate::common::{Spawn, TestApp, Visitor, spawn_app, spawn_app_with};
use crate::common::{count_users, sign_up};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{account_tokens, audit_log, mail_outbox, people};
use mask_reservation::rate_limit::{Limit, RateLimits};

const CITIZEN_ID_12: &str = "850101123456";

fn valid_id() -> String {
    fixtures::national_id(CITIZEN_ID_12)
}

/// The first http link in a mail body.
fn link_in(body: &str) -> String {
    let start = body.find("http://").expect("a link in the mail");
    body[start..].split_whitespace().next().unwrap().to_owned()
}

fn path_of(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

#[tokio::test]
async fn sign_up_then_verify_by_mail_then_log_in_reaches_reservations() {
    let app = spawn_app().await;
    assert_eq!(app.get("/signup").await.status(), 200);

    let res = sign_up(&app, &valid_id(), "Hong@Example.com").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/signup/sent");

    // Not logged in: the page says where the mail went and what comes next.
    let html = app.html("/signup/sent").await;
    assert!(html.contains("data-signup-sent"), "{html}");
    assert!(
        html.contains("hong@example.com 주소로 메일을 보냈습니다"),
        "{html}"
    );
    assert_eq!(app.get("/reservations").await.status(), 303);

    let mail = app.smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.recipients, vec!["hong@example.com".to_owned()]);
    assert!(
        mail.subject().contains("이메일 주소를 확인해 주세요"),
        "{}",
        mail.subject()
    );
    let link = link_in(&mail.text_body());
    assert!(link.starts_with(&app.address), "{link}");
    let res = app.get(&path_of(&link)).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("이메일이 확인되었습니다")
    );

    let res = app.login("hong@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/reservations");
    let html = app.html("/reservations").await;
    assert!(!html.contains("data-unverified"));
    assert!(html.contains("data-quota-left=\"2\""));
}

#[tokio::test]
async fn each_kind_of_invalid_national_id_gets_its_own_message_and_the_form_back() {
    let app = spawn_app().await;
    let ok = valid_id();
    let wrong_check = format!("{}{}", &ok[..12], (ok.as_bytes()[12] - b'0' + 1) % 10);
    let cases = [
        ("12345".to_owned(), "13자리"),
        (
            fixtures::national_id("850230123456"),
            "실제 생년월일이 아닙니다",
        ),
        (fixtures::national_id("850101923456"), "1에서 8 사이"),
        (wrong_check, "확인 숫자가 맞지 않습니다"),
    ];
    for (input, message) in cases {
        let res = sign_up(&app, &input, "kim@example.com").await;
        assert_eq!(res.status(), 422, "{input}");
        let html = res.text().await.unwrap();
        assert!(html.contains("data-error-for=\"national_id\""), "{input}");
        assert!(html.contains(message), "{input}: {message}");
        // The rest of what the user typed is still there.
        assert!(html.contains("value=\"kim@example.com\""));
        assert!(html.contains("value=\"홍길동\""));
        assert!(!html.contains(PASSWORD), "passwords are never echoed");
    }
    assert_eq!(count_users(&app), 0, "nothing was written");
}

#[tokio::test]
async fn every_field_is_checked_and_reported_in_english_too() {
    let app = spawn_app().await;
    app.post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id", ""),
                ("name", ""),
                ("email", "not-an-address"),
                ("password", "short"),
                ("password_confirm", "different"),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for field in [
        "national_id",
        "name",
        "email",
        "password",
        "password_confirm",
    ] {
        assert!(
            html.contains(&format!("data-error-for=\"{field}\"")),
            "{field}"
        );
    }
    assert!(html.contains("at least 8 characters"));
    assert!(html.contains("The passwords do not match"));
    assert!(html.contains("not a valid e-mail address"));
}

#[tokio::test]
async fn a_second_sign_up_for_the_same_id_or_email_creates_nothing_and_lands_like_any_other() {
    let app = spawn_app().await;
    assert_eq!(
        sign_up(&app, &valid_id(), "first@example.com")
            .await
            .status(),
        303
    );

    let other = app.new_visitor();
    let same_id = sign_up(&other, &valid_id(), "second@example.com").await;
    let same_email = sign_up(
        &other,
        &fixtures::national_id("900101223456"),
        "FIRST@example.com",
    )
    .await;
    for res in [same_id, same_email] {
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/signup/sent");
    }
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn concurrent_sign_ups_with_one_national_id_create_exactly_one_account() {
    let app = spawn_app().await;
    let visitors: Vec<Visitor> = (0..8).map(|_| app.new_visitor()).collect();
    let id = valid_id();
    let results = futures_util::future::join_all(visitors.iter().enumerate().map(|(i, v)| {
        let id = id.clone();
        async move {
            sign_up(v, &id, &format!("racer{i}@example.com"))
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    assert!(
        results.iter().all(|s| *s == 303),
        "every racer lands on the same page: {results:?}"
    );
    assert_eq!(count_users(&app), 1);
    let mut conn = app.db.get().unwrap();
    let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
    assert_eq!(persons, 1);
}

#[tokio::test]
async fn login_answers_the_same_for_an_unknown_email_and_a_wrong_password() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "known@example.com",
        None,
        true,
        &key,
    );
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    let wrong = app.login("known@example.com", "wrong password").await;
    assert_eq!(unknown.status(), wrong.status());
    assert_eq!(unknown.status(), 401);
    let (unknown, wrong) = (unknown.text().await.unwrap(), wrong.text().await.unwrap());
    let message = "이메일 또는 비밀번호가 올바르지 않습니다";
    assert!(unknown.contains(message) && wrong.contains(message));
    // The e-mail typed is kept; the password is not.
    assert!(wrong.contains("value=\"known@example.com\""));
    assert!(!wrong.contains("wrong password"));
}

#[tokio::test]
async fn each_role_lands_on_its_own_page_and_the_session_changes_on_login() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    fixtures::user(
        &app.db,
        Role::Pharmacist,
        "p@example.com",
        Some(store),
        true,
        &key,
    );
    fixtures::user(&app.db, Role::Admin, "a@example.com", None, true, &key);
    for (email, home) in [
        ("c@example.com", "/reservations"),
        ("p@example.com", "/pharmacy"),
        ("a@example.com", "/admin"),
    ] {
        let v = app.new_visitor();
        let before = v.csrf_token().await;
        let res = v.login(email, PASSWORD).await;
        assert_eq!(res.status(), 303, "{email}");
        assert_eq!(res.headers()["location"], home, "{email}");
        assert_eq!(v.get(home).await.status(), 200, "{email}");
        let after = v.csrf_token().await;
        assert_ne!(before, after, "a new session (and CSRF token) after login");
    }
}

#[tokio::test]
async fn login_returns_to_the_page_that_asked_for_it_but_never_off_site() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Admin, "a@example.com", None, true, &key);
    let res = app.get("/admin/users?q=x").await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Fadmin%2Fusers%3Fq%3Dx"
    );
    let res = app
        .post_form(
            "/login",
            &[
                ("email", "a@example.com"),
                ("password", PASSWORD),
                ("next", "/admin/users?q=x"),
            ],
        )
        .await;
    assert_eq!(res.headers()["location"], "/admin/users?q=x");

    let v = app.new_visitor();
    let res = v
        .post_form(
            "/login",
            &[
                ("email", "a@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(res.headers()["location"], "/admin");
}

#[tokio::test]
async fn logout_ends_the_session_and_a_copied_cookie_stops_working() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    app.login("c@example.com", PASSWORD).await;
    assert_eq!(app.get("/reservations").await.status(), 200);
    // Copy the session cookie as a thief would.
    let stolen = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let jar_cookie = app.cookie_header();
    assert!(jar_cookie.contains("mr_session="), "{jar_cookie}");
    let ok = stolen
        .get(app.url("/reservations"))
        .header("Cookie", &jar_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the copy works while the session lives");

    let res = app.post_form("/logout", &[]).await;
    assert_eq!(res.status(), 303);
    let home = app.html("/").await;
    assert!(
        home.contains("data-flash=\"logout.done\""),
        "logging out says so: {home}"
    );
    assert!(home.contains("로그아웃되었습니다"));
    assert_eq!(app.get("/reservations").await.status(), 303);
    let replay = stolen
        .get(app.url("/reservations"))
        .header("Cookie", &jar_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "a replayed cookie is logged out too");
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_and_its_live_sessions_stop() {
    use crate::reservations::{seoul, tuesday};
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    let key = app.state.keys.national_id.clone();
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let pharmacist = fixtures::user(
        &app.db,
        Role::Pharmacist,
        "p@example.com",
        Some(store),
        true,
        &key,
    );
    fixtures::user(&app.db, Role::Admin, "a@example.com", None, true, &key);

    let pharmacy = app.new_visitor();
    pharmacy.login("p@example.com", PASSWORD).await;
    assert_eq!(pharmacy.get("/pharmacy").await.status(), 200);

    app.login("a@example.com", PASSWORD).await;
    let res = app
        .post_form(&format!("/admin/users/{pharmacist}/disable"), &[])
        .await;
    assert_eq!(res.status(), 303);

    assert_eq!(
        pharmacy.get("/pharmacy").await.status(),
        303,
        "the live session ended"
    );
    let res = pharmacy.login("p@example.com", PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("사용이 중지된 계정입니다")
    );

    let mut conn = app.db.get().unwrap();
    let actions: Vec<String> = audit_log::table
        .select(audit_log::action)
        .load(&mut conn)
        .unwrap();
    assert_eq!(actions, vec!["user.disable".to_owned()]);
    // Stamped by the app's clock, not the machine's.
    let disabled_at: Option<chrono::NaiveDateTime> = mask_reservation::db::schema::users::table
        .find(pharmacist)
        .select(mask_reservation::db::schema::users::disabled_at)
        .first(&mut conn)
        .unwrap();
    assert_eq!(disabled_at, Some(seoul(tuesday(), 10, 0).naive_utc()));

    app.post_form(&format!("/admin/users/{pharmacist}/enable"), &[])
        .await;
    assert_eq!(
        pharmacy.login("p@example.com", PASSWORD).await.status(),
        303
    );
}

#[tokio::test]
async fn password_reset_by_mail_sets_a_new_password_and_ends_every_session() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    let elsewhere = app.new_visitor();
    elsewhere.login("c@example.com", PASSWORD).await;
    assert_eq!(elsewhere.get("/reservations").await.status(), 200);

    // Known and unknown addresses get the same answer.
    let unknown = app
        .post_form("/password/forgot", &[("email", "nobody@example.com")])
        .await;
    let known = app
        .post_form("/password/forgot", &[("email", "C@example.com")])
        .await;
    assert_eq!(unknown.status(), 200);
    assert_eq!(known.status(), 200);
    let (unknown, known) = (unknown.text().await.unwrap(), known.text().await.unwrap());
    assert!(unknown.contains("data-forgot-sent") && known.contains("data-forgot-sent"));

    let mail = app.smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.recipients, vec!["c@example.com".to_owned()]);
    let reset_path = path_of(&link_in(&mail.text_body()));
    let token = reset_path.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(app.get(&reset_path).await.status(), 200);

    let mismatch = app
        .post_form(
            "/password/reset",
            &[
                ("token", &token),
                ("password", "new password 1"),
                ("password_confirm", "new password 2"),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), 422);

    let res = app
        .post_form(
            "/password/reset",
            &[
                ("token", &token),
                ("password", "a brand new password"),
                ("password_confirm", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login");

    assert_eq!(
        elsewhere.get("/reservations").await.status(),
        303,
        "other sessions ended"
    );
    assert_eq!(app.login("c@example.com", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("c@example.com", "a brand new password")
            .await
            .status(),
        303
    );

    // The link works once.
    let again = app
        .post_form(
            "/password/reset",
            &[
                ("token", &token),
                ("password", "yet another password"),
                ("password_confirm", "yet another password"),
            ],
        )
        .await;
    assert_eq!(again.status(), 400);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("이미 사용한 링크입니다")
    );
    assert_eq!(app.get(&reset_path).await.status(), 400);
}

#[tokio::test]
async fn verification_links_are_single_use_and_expire() {
    let app = spawn_app().await;
    sign_up(&app, &valid_id(), "c@example.com").await;
    let mail = app.smtp.wait_for(1).await.remove(0);
    let path = path_of(&link_in(&mail.text_body()));
    assert_eq!(app.get(&path).await.status(), 200);
    // Opened again (from the mail, on another device): the address is confirmed,
    // so the page says so and leads to logging in, not to an error.
    let replay = app.get(&path).await;
    assert_eq!(replay.status(), 200);
    let html = replay.text().await.unwrap();
    assert!(html.contains("이미 인증됨"), "{html}");
    assert!(html.contains("href=\"/login\""));
    assert_eq!(app.get("/verify-email?token=forged").await.status(), 400);
    assert_eq!(app.get("/verify-email").await.status(), 400);

    // An expired one.
    let v = app.new_visitor();
    sign_up(
        &v,
        &fixtures::national_id("900101223456"),
        "late@example.com",
    )
    .await;
    let mail = app.smtp.wait_for(2).await.remove(1);
    let path = path_of(&link_in(&mail.text_body()));
    {
        let mut conn = app.db.get().unwrap();
        diesel::update(account_tokens::table.filter(account_tokens::used_at.is_null()))
            .set(
                account_tokens::expires_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1)),
            )
            .execute(&mut conn)
            .unwrap();
    }
    let res = app.get(&path).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("유효 기간이 지났습니다"));

    // A new one can be asked for, once logged in.
    assert_eq!(v.login("late@example.com", PASSWORD).await.status(), 303);
    let res = v.post_form("/verify-email/resend", &[]).await;
    assert_eq!(res.status(), 303);
    let mail = app.smtp.wait_for(3).await.remove(2);
    assert_eq!(
        v.get(&path_of(&link_in(&mail.text_body()))).await.status(),
        200
    );
}

#[tokio::test]
async fn an_smtp_outage_delays_the_mail_but_never_fails_or_loses_the_sign_up() {
    let smtp = crate::common::SmtpSink::start_down().await;
    let app = spawn_app_with(Spawn {
        smtp_port: Some(smtp.port),
        ..Spawn::default()
    })
    .await;
    let res = sign_up(&app, &valid_id(), "c@example.com").await;
    assert_eq!(
        res.status(),
        303,
        "the sign-up succeeds without a mail server"
    );
    let attempts =
        crate::common::eventually(Duration::from_secs(20), "a failed attempt", || async {
            let mut conn = app.db.get().unwrap();
            let (status, attempts): (String, i32) = mail_outbox::table
                .select((mail_outbox::status, mail_outbox::attempts))
                .first(&mut conn)
                .unwrap();
            (attempts >= 1).then_some((status, attempts))
        })
        .await;
    assert_eq!(attempts.0, "pending", "kept for retry");

    // The server comes back: the mail goes out.
    smtp.come_back();
    {
        let mut conn = app.db.get().unwrap();
        diesel::update(mail_outbox::table)
            .set(mail_outbox::next_attempt_at.eq(chrono::Utc::now().naive_utc()))
            .execute(&mut conn)
            .unwrap();
    }
    app.state.mail_wake.notify_one();
    let mail = smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.recipients, vec!["c@example.com".to_owned()]);
}

async fn spawn_with_limits(limits: RateLimits) -> TestApp {
    spawn_app_with(Spawn {
        rate_limits: Some(limits),
        ..Spawn::default()
    })
    .await
}

#[tokio::test]
async fn too_many_login_attempts_get_a_429_page_in_the_visitors_language() {
    let tight = RateLimits {
        login_per_ip: Limit::per_minutes(3, 10),
        ..crate::common::generous_limits()
    };
    let app = spawn_with_limits(tight).await;
    app.post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.login("x@example.com", "wrong password").await.status(),
            401
        );
    }
    // The login form comes back with the address kept and the wait in minutes.
    let res = app.login("x@example.com", "wrong password").await;
    assert_eq!(res.status(), 429);
    let secs: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let html = res.text().await.unwrap();
    let minutes = secs.div_ceil(60);
    let wait = if minutes == 1 {
        "try again in 1 minute".to_owned()
    } else {
        format!("try again in {minutes} minutes")
    };
    assert!(html.contains(&wait), "{html}");
    assert!(html.contains("value=\"x@example.com\""));
    assert!(!html.contains("wrong password"));
}

#[tokio::test]
async fn sign_up_and_forgot_password_are_rate_limited_per_address() {
    let tight = RateLimits {
        signup_per_ip: Limit::per_minutes(1, 60),
        forgot_per_ip: Limit::per_minutes(1, 60),
        ..crate::common::generous_limits()
    };
    let app = spawn_with_limits(tight).await;
    // A malformed sign-up costs nothing and is not counted.
    assert_eq!(sign_up(&app, "bad", "a@example.com").await.status(), 422);
    assert_eq!(
        sign_up(&app, &valid_id(), "a@example.com").await.status(),
        303
    );
    // Over the limit, the form comes back with what was typed and when to retry.
    let res = sign_up(
        &app,
        &fixtures::national_id("900101223456"),
        "b@example.com",
    )
    .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let html = res.text().await.unwrap();
    assert!(html.contains("value=\"b@example.com\""), "{html}");
    assert!(html.contains("분 뒤에 다시 시도해 주세요"), "{html}");
    assert_eq!(count_users(&app), 1);
    assert_eq!(
        app.post_form("/password/forgot", &[("email", "a@example.com")])
            .await
            .status(),
        200
    );
    let res = app
        .post_form("/password/forgot", &[("email", "a@example.com")])
        .await;
    assert_eq!(res.status(), 429);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("value=\"a@example.com\"")
    );
}

#[tokio::test]
async fn many_sign_ups_from_one_shared_address_pass_but_one_mailbox_gets_few_mails() {
    let tight = RateLimits {
        signup_per_email: Limit::per_minutes(2, 60),
        ..crate::common::generous_limits()
    };
    let app = spawn_with_limits(tight).await;
    // Strangers behind one carrier address: each signs up.
    for i in 0..12 {
        let id = fixtures::national_id(&format!("9001012234{i:02}"));
        let res = sign_up(&app, &id, &format!("person{i}@example.com")).await;
        assert_eq!(res.status(), 303, "sign-up {i}");
    }
    assert_eq!(count_users(&app), 12);
    // One address named again and again: after two, no more mail goes to it.
    let victim = "victim@example.com";
    for i in 0..2 {
        let id = fixtures::national_id(&format!("8001012234{i:02}"));
        assert_eq!(sign_up(&app, &id, victim).await.status(), 303);
    }
    let id = fixtures::national_id("800101223499");
    assert_eq!(sign_up(&app, &id, victim).await.status(), 429);
}

#[tokio::test]
async fn hostile_input_gets_a_4xx_and_is_rendered_escaped() {
    let app = spawn_app().await;
    // Overlong fields.
    let long = "가".repeat(5000);
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id", &valid_id()),
                ("name", &long),
                ("email", "a@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error-for=\"name\"")
    );

    // Invalid UTF-8 in a form body.
    let token = app.csrf_token().await;
    let body = format!(
        "national_id=%FF%FE&name=%C3%28&email=x%40example.com&password=x&password_confirm=x&consent=on&csrf_token={token}"
    );
    let res = app
        .post_bytes(
            "/signup",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await;
    assert_eq!(
        res.status(),
        400,
        "a field that is not UTF-8 makes the form unreadable"
    );

    // Markup and SQL in a name are data, shown escaped.
    let name = "<script>alert(1)</script>'; DROP TABLE users; --";
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id", &valid_id()),
                ("name", name),
                ("email", "x@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.login("x@example.com", PASSWORD).await.status(), 303);
    let html = app.html("/").await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert_eq!(count_users(&app), 1);

    // No CSRF token.
    let v = app.new_visitor();
    let res = v
        .post_form_raw(
            "/signup",
            &[
                ("national_id", &valid_id()),
                ("name", "a"),
                ("email", "y@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn the_database_never_holds_the_national_id_in_clear() {
    let app = spawn_app().await;
    let id = valid_id();
    assert_eq!(sign_up(&app, &id, "c@example.com").await.status(), 303);
    app.smtp.wait_for(1).await;
    let dashed = format!("{}-{}", &id[..6], &id[6..]);
    let tail = &id[6..];
    match app.database.url() {
        mask_reservation::db::DatabaseUrl::Sqlite(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
                bytes.extend(wal);
            }
            let haystack = String::from_utf8_lossy(&bytes);
            for needle in [&id, &dashed, &tail.to_owned()] {
                assert!(
                    !haystack.contains(needle.as_str()),
                    "{needle} found in the database file"
                );
            }
            assert!(
                haystack.contains("850101-1******"),
                "the masked form is kept"
            );
        }
        mask_reservation::db::DatabaseUrl::Postgres(_) => {
            #[derive(QueryableByName)]
            struct Line {
                #[diesel(sql_type = diesel::sql_types::Text)]
                line: String,
            }
            let mut conn = app.db.get().unwrap();
            let mut dump = String::new();
            for table in [
                "people",
                "users",
                "account_tokens",
                "mail_outbox",
                "audit_log",
                "rate_limits",
            ] {
                let rows: Vec<Line> = diesel::sql_query(format!(
                    "SELECT row_to_json(t)::text AS line FROM {table} t"
                ))
                .load(&mut conn)
                .unwrap();
                for r in rows {
                    dump.push_str(&r.line);
                }
            }
            for needle in [&id, &dashed, &tail.to_owned()] {
                assert!(
                    !dump.contains(needle.as_str()),
                    "{needle} found in the database"
                );
            }
            assert!(dump.contains("850101-1******"));
        }
    }
}

#[tokio::test]
async fn admins_create_pharmacist_and_admin_accounts_with_checked_input() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::user(&app.db, Role::Admin, "a@example.com", None, true, &key);
    app.login("a@example.com", PASSWORD).await;

    let create = |email: &'static str, role: &'static str, code: &'static str| {
        let app = &app;
        async move {
            app.post_form(
                "/admin/users",
                &[
                    ("email", email),
                    ("name", "새 약사"),
                    ("role", role),
                    ("store_code", code),
                ],
            )
            .await
        }
    };
    let res = create("p@example.com", "pharmacist", "123").await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error-for=\"store_code\"")
    );
    let res = create("p@example.com", "pharmacist", "99999999").await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("그 코드의 약국이 없습니다")
    );
    let res = create("p@example.com", "citizen", "").await;
    assert_eq!(res.status(), 422, "citizens sign up themselves");
    assert_eq!(
        create("p@example.com", "pharmacist", "11800001")
            .await
            .status(),
        303
    );
    assert_eq!(create("P@example.com", "admin", "").await.status(), 409);
    assert_eq!(
        create("second-admin@example.com", "admin", "")
            .await
            .status(),
        303
    );

    let html = app.html("/admin/users").await;
    assert!(html.contains("data-user-email=\"p@example.com\""));

    // Nobody knows the new account's password until its owner sets one
    // through the link the invitation mail carries.
    let v = app.new_visitor();
    assert_eq!(v.login("p@example.com", PASSWORD).await.status(), 401);
    let mails = app.smtp.wait_for(2).await;
    let invitation = mails
        .iter()
        .find(|m| m.recipients == ["p@example.com"])
        .expect("an invitation to the pharmacist");
    let body = invitation.text_body();
    assert!(body.contains("약사 계정"), "{body}");
    assert!(body.contains("72시간"), "{body}");
    let link = path_of(&link_in(&body));
    let res = v.get(&link).await;
    assert_eq!(res.status(), 200);
    // A new account sets its first password; it has none to change.
    let page = res.text().await.unwrap();
    assert!(page.contains("<h1>비밀번호 설정</h1>"), "{page}");
    assert!(!page.contains("비밀번호 변경"), "{page}");
    let token = link.split("token=").nth(1).unwrap();
    let res = v
        .post_form(
            "/password/reset",
            &[
                ("token", token),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let res = v.login("p@example.com", PASSWORD).await;
    assert_eq!(res.headers()["location"], "/pharmacy");
    let html = v.html("/pharmacy").await;
    assert!(html.contains("중앙약국"));

    let mut conn = app.db.get().unwrap();
    let created: i64 = audit_log::table
        .filter(audit_log::action.eq("user.create"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(created, 2);
}

#[tokio::test]
async fn an_admin_cannot_disable_themselves_and_unknown_users_are_404() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    let me = fixtures::user(&app.db, Role::Admin, "a@example.com", None, true, &key);
    app.login("a@example.com", PASSWORD).await;
    let res = app
        .post_form(&format!("/admin/users/{me}/disable"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.get("/admin").await.status(), 200, "still logged in");
    assert_eq!(
        app.post_form("/admin/users/999999/disable", &[])
            .await
            .status(),
        404
    );
    assert_eq!(
        app.post_form("/admin/users/not-a-number/disable", &[])
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn one_reset_link_used_by_racing_requests_sets_exactly_one_password() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    app.post_form("/password/forgot", &[("email", "c@example.com")])
        .await;
    let mail = app.smtp.wait_for(1).await.remove(0);
    let reset_path = path_of(&link_in(&mail.text_body()));
    let token = reset_path.split("token=").nth(1).unwrap().to_owned();

    let visitors: Vec<Visitor> = (0..6).map(|_| app.new_visitor()).collect();
    let results = futures_util::future::join_all(visitors.iter().enumerate().map(|(i, v)| {
        let token = token.clone();
        async move {
            let password = format!("racing password {i}");
            let status = v
                .post_form(
                    "/password/reset",
                    &[
                        ("token", &token),
                        ("password", &password),
                        ("password_confirm", &password),
                    ],
                )
                .await
                .status()
                .as_u16();
            (status, password)
        }
    }))
    .await;
    let winners: Vec<&String> = results
        .iter()
        .filter(|(s, _)| *s == 303)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results.iter().all(|(s, _)| *s == 303 || *s == 400),
        "{results:?}"
    );
    assert_eq!(
        app.new_visitor()
            .login("c@example.com", winners[0])
            .await
            .status(),
        303
    );
    assert_eq!(
        app.new_visitor()
            .login("c@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    crate::common::assert_invariants(&app.db);
}

#[tokio::test]
async fn a_dead_reset_link_is_refused_before_the_form_is_judged() {
    let app = spawn_app().await;
    let res = app
        .post_form(
            "/password/reset",
            &[
                ("token", "forged"),
                ("password", "a fine new password"),
                ("password_confirm", "a fine new password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-message=\"token.unknown\"")
    );
}

#[tokio::test]
async fn the_sign_up_page_takes_the_national_id_in_two_fields_and_an_empty_one_is_required() {
    let app = spawn_app().await;
    let html = app.html("/signup").await;
    assert!(html.contains("name=\"national_id_front\""));
    assert!(html.contains("name=\"national_id_back\" type=\"password\" inputmode=\"numeric\""));

    // Nothing typed: the message says the field is required, not how it is shaped.
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id_front", ""),
                ("national_id_back", ""),
                ("name", "홍길동"),
                ("email", "c@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("필수 입력 항목입니다"), "{html}");

    // A mistyped back part is not sent back: the front is kept, the back
    // field is empty, to be typed again.
    let id = valid_id();
    let (front, back) = id.split_at(6);
    let wrong_back = format!("{}{}", &back[..back.len() - 1], "0");
    let wrong_back = if wrong_back == back {
        format!("{}{}", &back[..back.len() - 1], "1")
    } else {
        wrong_back
    };
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id_front", front),
                ("national_id_back", &wrong_back),
                ("name", "홍길동"),
                ("email", "c@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!("value=\"{front}\"")));
    assert!(!html.contains(&wrong_back), "{html}");
    assert!(html.contains("name=\"national_id_back\" type=\"password\""));
    assert!(html.contains("data-retype-back"), "{html}");

    // The two fields together sign up as the one field does.
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id_front", front),
                ("national_id_back", back),
                ("name", "홍길동"),
                ("email", "c@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn a_sign_up_page_sent_back_keeps_only_the_front_six_digits_of_the_national_id() {
    let app = spawn_app().await;
    // Not the number the page's hint shows as an example.
    let id = fixtures::national_id("900303212345");
    let (front, back) = id.split_at(6);
    let back = back.trim_start_matches('-');
    // A valid number, whole in the one field or in the page's two, with
    // another field wrong: the page comes back with the front alone.
    let whole = [("national_id", id.as_str())];
    let halves = [("national_id_front", front), ("national_id_back", back)];
    for id_fields in [&whole[..], &halves[..]] {
        let mut fields = id_fields.to_vec();
        fields.extend([
            ("name", "홍길동"),
            ("email", "c@example.com"),
            ("password", PASSWORD),
            ("password_confirm", "a different password"),
            ("consent", "on"),
        ]);
        let res = app.post_form("/signup", &fields).await;
        assert_eq!(res.status(), 422);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("data-error-for=\"password_confirm\""),
            "{html}"
        );
        assert!(
            html.contains(&format!("name=\"national_id_front\" type=\"text\" inputmode=\"numeric\" pattern=\"[0-9]*\" maxlength=\"6\" size=\"6\" autocomplete=\"off\" value=\"{front}\"")),
            "{html}"
        );
        assert!(
            html.contains("maxlength=\"7\" size=\"7\" autocomplete=\"off\" value=\"\""),
            "the back field is empty: {html}"
        );
        assert!(!html.contains(back), "no part of the back half: {html}");
        assert!(html.contains("data-retype-back"));
        assert!(
            html.contains("value=\"c@example.com\""),
            "the other values stay"
        );
    }
    // A first visit has nothing to type again.
    assert!(!app.html("/signup").await.contains("data-retype-back"));
    assert_eq!(count_users(&app), 0);
}

#[tokio::test]
async fn a_common_password_is_refused_at_sign_up_with_the_other_values_kept() {
    let app = spawn_app().await;
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id", &valid_id()),
                ("name", "홍길동"),
                ("email", "c@example.com"),
                ("password", "qwerty123"),
                ("password_confirm", "qwerty123"),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"password\""), "{html}");
    assert!(html.contains("추측하기 쉬운 비밀번호"), "{html}");
    assert!(html.contains("value=\"c@example.com\""));
    assert!(!html.contains("qwerty123"), "a password is never echoed");
    assert_eq!(count_users(&app), 0);
}
