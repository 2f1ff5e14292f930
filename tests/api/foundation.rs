//! The ground every feature stands on: health, errors, CSRF, security headers,
//! languages, metrics, and the home page's rules.

use std::time::Duration;

use crate::common::proxy::DbProxy;
use crate::common::{
    Spawn, assert_status_page_says, eventually, extract_csrf, spawn_app, spawn_app_with,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::Backend;
use mask_reservation::db::schema::settings;

#[tokio::test]
async fn healthz_reports_the_database_up() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["state"], "up");
    assert_eq!(body["database"]["backend"], app.backend().as_str());
}

// Multi-threaded: the proxy's tasks must keep forwarding while a fixture blocks
// one thread on a query that goes through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_the_database_is_unreachable_and_recovers() {
    match crate::common::db::postgres_server() {
        Some(_) => {
            let database = std::sync::Arc::new(crate::common::TestDatabase::fresh());
            let proxy = DbProxy::start(database.postgres_addr().unwrap()).await;
            let app = spawn_app_with(Spawn {
                database: Some(database),
                via_proxy: Some(proxy.port),
                ..Spawn::default()
            })
            .await;
            assert_eq!(app.get("/healthz").await.status(), 200);
            let citizen = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
            assert_eq!(
                app.get("/").await.status(),
                200,
                "the policy is in memory now"
            );
            proxy.cut();
            let res = eventually(Duration::from_secs(20), "a 503", || async {
                let res = app.get("/healthz").await;
                (res.status() == 503).then_some(res)
            })
            .await;
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["database"]["state"], "down");
            // Pages that need the database say so too, in a page, not a hang;
            // the home page and its rules are served from memory meanwhile.
            assert_eq!(app.get("/").await.status(), 200);
            assert_status_page_says(app.get("/status").await, "down").await;
            let page = citizen.get("/reservations").await;
            assert_eq!(page.status(), 503);
            assert!(
                page.text()
                    .await
                    .unwrap()
                    .contains("잠시 이용할 수 없습니다")
            );
            proxy.restore();
            eventually(Duration::from_secs(20), "recovery", || async {
                (app.get("/healthz").await.status() == 200).then_some(())
            })
            .await;
        }
        None => {
            let app = spawn_app().await;
            assert_eq!(app.get("/healthz").await.status(), 200);
            // Another process holds SQLite's write lock: writes wait their turn,
            // but the database is there, and a rush of writes is not an outage.
            let mut other = app.database.connect();
            other.batch_execute("BEGIN IMMEDIATE").unwrap();
            let res = app.get("/healthz").await;
            assert_eq!(res.status(), 200);
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["database"]["state"], "up");
            other.batch_execute("ROLLBACK").unwrap();
        }
    }
}

#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused_with_403() {
    let app = spawn_app().await;
    // No session, no token.
    let res = app
        .post_form_raw("/language", &[("lang", "en"), ("next", "/")])
        .await;
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("보안 토큰"), "the 403 page explains: {html}");

    // A session, but a forged token.
    let _ = app.csrf_token().await;
    let res = app
        .post_form_raw(
            "/language",
            &[("lang", "en"), ("next", "/"), ("csrf_token", "forged")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        res.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().starts_with("lang="))
    );

    // An empty token is no token.
    let res = app
        .post_form_raw("/language", &[("lang", "en"), ("csrf_token", "")])
        .await;
    assert_eq!(res.status(), 403);

    // The right token is accepted.
    let res = app
        .post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn a_token_from_another_session_is_refused() {
    let app = spawn_app().await;
    let other = spawn_app_with(Spawn {
        database: Some(app.database.clone()),
        ..Spawn::default()
    })
    .await;
    let foreign = other.csrf_token().await;
    let _ = app.csrf_token().await;
    let res = app
        .post_form_raw("/language", &[("lang", "en"), ("csrf_token", &foreign)])
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn an_oversized_form_is_refused_without_a_500() {
    let app = spawn_app().await;
    let token = app.csrf_token().await;
    let big = "x".repeat(300 * 1024);
    let res = app
        .post_form_raw("/language", &[("lang", &big), ("csrf_token", &token)])
        .await;
    assert_eq!(
        res.status(),
        413,
        "a form over the limit is Payload Too Large"
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/healthz", "/no-such-page", "/static/css/app.css"] {
        let res = app.get(path).await;
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_encrypted() {
    let app = spawn_app().await;
    let res = app.get("/").await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mr_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    let html = res.text().await.unwrap();
    let token = extract_csrf(&html).unwrap();
    assert!(
        !cookie.contains(&token),
        "the cookie's content is encrypted"
    );
}

#[tokio::test]
async fn the_language_follows_accept_language_and_korean_is_the_default() {
    let app = spawn_app().await;
    let ko = app.get("/").await.text().await.unwrap();
    assert!(ko.contains("<html lang=\"ko\">"));
    assert!(ko.contains("현재 적용 중인 규칙"));

    let en = app
        .get_with_lang("/", "en-US,en;q=0.9")
        .await
        .text()
        .await
        .unwrap();
    assert!(en.contains("<html lang=\"en\">"));
    assert!(en.contains("Rules in force"));

    let other = app.get_with_lang("/", "fr-FR").await.text().await.unwrap();
    assert!(other.contains("<html lang=\"ko\">"));
}

#[tokio::test]
async fn the_language_switch_is_remembered_over_accept_language() {
    let app = spawn_app().await;
    let res = app
        .post_form("/language", &[("lang", "en"), ("next", "/?from=switch")])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/?from=switch");
    let html = app.get_with_lang("/", "ko-KR").await.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"), "the choice wins");

    // Back to Korean.
    app.post_form("/language", &[("lang", "ko"), ("next", "/")])
        .await;
    let html = app.get_with_lang("/", "en").await.text().await.unwrap();
    assert!(html.contains("<html lang=\"ko\">"));
}

#[tokio::test]
async fn the_language_switch_never_redirects_off_the_site() {
    let app = spawn_app().await;
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
    ] {
        let res = app
            .post_form("/language", &[("lang", "en"), ("next", next)])
            .await;
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/", "{next}");
    }
}

#[tokio::test]
async fn an_unknown_page_is_a_404_page_in_the_visitors_language() {
    let app = spawn_app().await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("페이지를 찾을 수 없습니다")
    );

    let res = app.get_with_lang("/no/such/page", "en").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(html.contains("Page not found"));
    assert!(html.contains("data-status=\"404\""));
}

#[tokio::test]
async fn an_internal_error_is_a_500_page_that_reveals_nothing() {
    let app = spawn_app().await;
    // Break the database under the running app: the settings table disappears.
    let mut conn = app.database.connect();
    conn.batch_execute("DROP TABLE settings").unwrap();
    let res = app.get_with_lang("/", "en").await;
    assert_eq!(res.status(), 500);
    let html = res.text().await.unwrap();
    assert!(html.contains("Something went wrong"));
    assert!(html.contains("data-status=\"500\""));
    assert!(!html.contains("settings"), "no internals leak: {html}");
    assert!(!html.to_lowercase().contains("no such table"));
}

#[tokio::test]
async fn the_home_page_shows_the_policy_in_force() {
    let app = spawn_app().await;
    let html = app.get_with_lang("/", "en").await.text().await.unwrap();
    assert!(html.contains("data-rule=\"quota_per_period\">2 masks per period"));
    assert!(html.contains("09:00-12:00, 12:00-15:00, 15:00-18:00"));
    assert!(html.contains("Korea Standard Time (KST)"));
    assert!(!html.contains("Asia/Seoul"), "no raw time-zone identifier");

    // Another instance (or the settings page) changes the policy: this instance
    // keeps it in memory and notices within a few seconds.
    let mut conn = app.database.connect();
    let now = chrono::Utc::now().naive_utc();
    for (key, value) in [("quota_per_period", "3"), ("rotation", "birth_year")] {
        diesel::update(settings::table.find(key))
            .set((settings::value.eq(value), settings::updated_at.eq(now)))
            .execute(&mut conn)
            .unwrap();
    }
    let html = eventually(
        Duration::from_secs(15),
        "the new policy on the home page",
        || async {
            let html = app.get_with_lang("/", "en").await.text().await.unwrap();
            html.contains("data-rule=\"quota_per_period\">3 masks per period")
                .then_some(html)
        },
    )
    .await;
    assert!(html.contains("Only on the weekday of your birth year"));
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let app = spawn_app().await;
    app.get("/").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE mask_reservation_http_requests_total counter"),
        "{text}"
    );
    assert!(text.contains("endpoint=\"/\""));
}

#[tokio::test]
async fn the_stylesheet_is_served_and_unknown_assets_are_404() {
    let app = spawn_app().await;
    let res = app.get("/static/css/app.css").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(app.get("/static/../Cargo.toml").await.status(), 404);
    assert_eq!(app.get("/static/css/missing.css").await.status(), 404);
}

#[tokio::test]
async fn the_backend_under_test_is_the_one_asked_for() {
    let app = spawn_app().await;
    let expected = if crate::common::db::postgres_server().is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    assert_eq!(app.backend(), expected);
}

#[tokio::test]
async fn the_status_page_tells_people_in_their_language_and_the_footer_links_to_it() {
    let app = spawn_app().await;
    let res = app.get("/status").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("data-status=\"up\""), "{html}");
    assert!(html.contains("서비스 상태"));
    let english = app
        .get_with_lang("/status", "en")
        .await
        .text()
        .await
        .unwrap();
    assert!(english.contains("Service status"));
    assert!(app.html("/").await.contains("href=\"/status\""));
}
