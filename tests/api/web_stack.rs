//! The layers around every request: bounded metrics and who may read them,
//! caching and transport headers, request ids, the light path of static
//! files and the health probe (no session work), and a bound on the wait for
//! a request body.

use std::time::Duration;

use mask_reservation::accounts::Role;
use mask_reservation::config::{AppEnv, MetricsToken, TrustedProxies};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Spawn, TestApp, spawn_app, spawn_app_with};

const TOKEN: &str = "scraper-token-for-tests-0123";

async fn metrics_text(app: &crate::common::TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn random_unknown_paths_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    app.get("/no-such-page-warm-up").await;
    let before = metrics_text(&app).await;
    let paths: Vec<String> = (0..300)
        .map(|i| format!("/probe/{i}/{:x}?q={i}", i * 7919))
        .collect();
    let requests = paths.iter().map(|p| app.get(p));
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), 404);
    }
    let after = metrics_text(&app).await;
    let grown = after.lines().count() as i64 - before.lines().count() as i64;
    // The first scrape itself adds the `/metrics` series; nothing per path.
    assert!(grown <= 20, "the metrics grew by {grown} lines:\n{after}");
    assert!(after.contains("endpoint=\"unmatched\""), "{after}");
    assert!(!after.contains("/probe/"), "{after}");
}

#[tokio::test]
async fn metrics_are_labelled_by_route_pattern_not_by_path() {
    let app = spawn_app().await;
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    for id in [11, 12, 13] {
        admin
            .post_form(&format!("/admin/users/{id}/disable"), &[])
            .await;
    }
    app.get("/static/css/app.css").await;
    let text = metrics_text(&app).await;
    assert!(
        text.contains("endpoint=\"/admin/users/{id}/disable\""),
        "{text}"
    );
    assert!(text.contains("endpoint=\"/static/css/app.css\""), "{text}");
    assert!(!text.contains("/admin/users/11"), "{text}");
}

fn token_only(config: &mut mask_reservation::config::Config) {
    config.metrics_allow = Vec::new();
    config.metrics_token = Some(MetricsToken::parse(TOKEN).unwrap());
}

#[tokio::test]
async fn metrics_from_an_address_not_allowed_need_the_token() {
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(token_only)),
        ..Spawn::default()
    })
    .await;
    let unknown = app.get_with_lang("/no-such-page", "en").await;
    let unknown_headers = unknown.headers().clone();
    let unknown_page = unknown.text().await.unwrap();

    let refused = app.get_with_lang("/metrics", "en").await;
    assert_eq!(
        refused.status(),
        404,
        "refused like a page that does not exist"
    );
    assert_eq!(
        refused.headers()["content-type"],
        unknown_headers["content-type"]
    );
    let page = refused.text().await.unwrap();
    assert!(page.contains("Page not found"), "{page}");
    assert!(!page.contains("mask_reservation_http"), "{page}");
    assert_eq!(
        page.replace("/metrics", "/no-such-page").len(),
        unknown_page.len(),
        "the same page as for an unknown path"
    );

    for wrong in ["Bearer not-the-token", "Basic c2NyYXBlcjp4", "Bearer"] {
        let res = app
            .client
            .get(app.url("/metrics"))
            .header("Authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{wrong}");
    }

    let res = app
        .client
        .get(app.url("/metrics"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE mask_reservation_http_requests_total counter"),
        "{text}"
    );
}

/// `GET /metrics` from the test (on loopback) with one header; the status.
async fn metrics_with(app: &TestApp, name: &str, value: &str) -> u16 {
    app.client
        .get(app.url("/metrics"))
        .header(name, value)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn behind(proxies: &'static str) -> Spawn {
    Spawn {
        configure: Some(Box::new(move |c| {
            c.trusted_proxies = TrustedProxies::parse(proxies).unwrap();
        })),
        ..Spawn::default()
    }
}

#[tokio::test]
async fn a_request_relayed_by_an_untrusted_proxy_is_not_from_loopback() {
    // Loopback is allowed by default, but a request that says a proxy relayed
    // it comes from elsewhere, whatever address the header names.
    let app = spawn_app().await;
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),
        ("Forwarded", "for=127.0.0.1"),
    ] {
        assert_eq!(
            metrics_with(&app, name, value).await,
            404,
            "{name}: {value}"
        );
    }
    assert_eq!(app.get("/metrics").await.status(), 200, "direct");

    // Proxies known by address: the same from a peer that is none of them.
    let elsewhere = spawn_app_with(behind("10.0.0.0/8")).await;
    assert_eq!(
        metrics_with(&elsewhere, "X-Forwarded-For", "127.0.0.1").await,
        404
    );
    assert_eq!(elsewhere.get("/metrics").await.status(), 200, "direct");
}

#[tokio::test]
async fn behind_trusted_proxies_the_client_is_the_rightmost_address_they_did_not_write() {
    // The test speaks as the proxy on loopback would, having appended the
    // address it was reached from.
    for proxies in ["1", "127.0.0.1", "127.0.0.0/8, ::1"] {
        let app = spawn_app_with(behind(proxies)).await;
        let cases = [
            // A client that put loopback first: the proxy appended its real address.
            ("127.0.0.1, 203.0.113.9", 404),
            ("127.0.0.1,203.0.113.9", 404),
            ("203.0.113.5", 404),
            // Garbage where the client's address belongs: the proxy's own.
            ("127.0.0.1, unknown", 200),
            // A client on the proxy's own host.
            ("127.0.0.1", 200),
        ];
        for (xff, status) in cases {
            assert_eq!(
                metrics_with(&app, "X-Forwarded-For", xff).await,
                status,
                "TRUSTED_PROXIES={proxies}, X-Forwarded-For: {xff}"
            );
        }
        assert_eq!(app.get("/metrics").await.status(), 200, "direct");
    }
}

#[tokio::test]
async fn pages_redirects_and_errors_are_not_stored_while_static_files_are_cached() {
    let app = spawn_app().await;
    let anonymous = app.new_visitor();
    let citizen = app
        .logged_in_as(Role::Citizen, "citizen@example.com", None)
        .await;
    let cases = [
        (&anonymous, "/", 200),
        (&anonymous, "/login", 200),
        (&anonymous, "/reservations", 303),
        (&anonymous, "/no-such-page", 404),
        (&anonymous, "/static/css/missing.css", 404),
        (&anonymous, "/healthz", 200),
        (&citizen, "/reservations", 200),
        (&citizen, "/admin", 403),
    ];
    for (visitor, path, status) in cases {
        let res = visitor.get(path).await;
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
    let refused = anonymous
        .post_form_raw("/language", &[("lang", "en")])
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["cache-control"], "no-store");

    let res = citizen.get("/static/css/app.css").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
}

#[tokio::test]
async fn hsts_is_sent_only_in_production() {
    let dev = spawn_app().await;
    for path in ["/", "/static/css/app.css", "/no-such-page"] {
        let res = dev.get(path).await;
        assert!(
            !res.headers().contains_key("strict-transport-security"),
            "{path}"
        );
    }

    let prod = spawn_app_with(Spawn {
        configure: Some(Box::new(|c| c.app_env = AppEnv::Production)),
        ..Spawn::default()
    })
    .await;
    for path in ["/", "/static/css/app.css", "/no-such-page", "/healthz"] {
        let res = prod.get(path).await;
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_response_has_its_own_request_id() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/", "/", "/static/css/app.css", "/healthz", "/no-such-page"] {
        let res = app.get(path).await;
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 16, "{path}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{path}: {id}");
        assert!(seen.insert(id), "{path}: a fresh id");
    }
}

#[tokio::test]
async fn static_files_and_the_health_probe_leave_the_session_alone() {
    let app = spawn_app().await;
    let citizen = app
        .logged_in_as(Role::Citizen, "citizen@example.com", None)
        .await;
    for path in ["/static/css/app.css", "/healthz"] {
        let res = citizen.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            !res.headers().contains_key("set-cookie"),
            "{path}: no session cookie is read or written"
        );
        // A cookie that does not decrypt is no concern of these routes either.
        let res = app
            .client
            .get(app.url(path))
            .header("Cookie", "mr_session=garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    // Pages still have their session.
    assert_eq!(citizen.get("/reservations").await.status(), 200);
    // And a path under /static that is no file gets the 404 page in the
    // visitor's language, like any unknown page.
    let res = app.get_with_lang("/static/css/missing.css", "en").await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("Page not found"));
}

/// Sends `request` on a connection of its own and reads until the server
/// closes it; fails if that takes 30 s.
async fn raw_exchange(app: &TestApp, request: &str) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408_and_its_connection_closed() {
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(|c| c.body_read_timeout = Duration::from_secs(1))),
        ..Spawn::default()
    })
    .await;
    // (path, the language asked for, the part of the 100 bytes announced that is sent)
    let cases = [
        ("/login", "en", "emai", "The request took too long"),
        ("/login", "en", "", "The request took too long"),
        ("/language", "ko", "lang=", "요청 시간이 초과되었습니다"),
    ];
    for (path, lang, sent, title) in cases {
        let answer = raw_exchange(
            &app,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Language: {lang}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100\r\n\r\n{sent}"
            ),
        )
        .await;
        let (head, page) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(
            head.starts_with("HTTP/1.1 408"),
            "{path} {sent:?}: {answer}"
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains("\r\ncontent-security-policy: "), "{head}");
        assert!(head.contains("\r\nx-request-id: "), "{head}");
        assert!(page.contains(title), "{lang}: {page}");
    }
    // The app serves on: a body that arrives whole is read as always.
    assert_eq!(app.get("/login").await.status(), 200);
    let res = app
        .post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    assert_eq!(res.status(), 303);
}
