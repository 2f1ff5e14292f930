//! Probing accounts from outside: sign-up answers the same whether or not an
//! e-mail or a national ID is registered (and tells the owner by mail), and
//! failed logins cannot lock an owner out: they are counted per account *and*
//! address, and a browser that has logged in before gets through on its own
//! small limit. Different client addresses are real ones: the loopback network
//! has many, and a visitor can connect from any of them.

use std::net::IpAddr;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::accounts::email::{DisplayName, Email};
use mask_reservation::accounts::national_id::NationalId;
use mask_reservation::accounts::password::{self, NewPassword};
use mask_reservation::accounts::service::{self, Signup, SignupOutcome};
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{account_tokens, mail_outbox, people, signup_notices};
use mask_reservation::db::write_tx;
use mask_reservation::i18n::{Catalog, Lang, Tr};
use mask_reservation::rate_limit::{Limit, RateLimits};
use reqwest::redirect::Policy;

use crate::common::fixtures::{self, PASSWORD};
use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, extract_csrf, generous_limits, spawn_app,
    spawn_app_with,
};
use crate::common::{count_users, retry_after, sign_up};

const FIRST_ID_12: &str = "850101123456";

/// (kind, recipient) of every queued mail, oldest first.
fn outbox(app: &TestApp) -> Vec<(String, String)> {
    let mut conn = app.db.get().unwrap();
    mail_outbox::table
        .order(mail_outbox::id)
        .select((mail_outbox::kind, mail_outbox::recipient))
        .load(&mut conn)
        .unwrap()
}

fn pair(kind: &str, to: &str) -> (String, String) {
    (kind.to_owned(), to.to_owned())
}

/// What an observer of a response can compare: status, `Location`, the names of
/// the headers, and each `Set-Cookie` with its value reduced to its decoded
/// length (encrypted, it differs every time; its length would tell what it
/// holds).
fn observable(res: &reqwest::Response) -> (u16, Option<String>, Vec<String>, Vec<String>) {
    let mut names: Vec<String> = res
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k != "date" && k != "x-request-id")
        .collect();
    names.sort();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            // Percent-encoding makes the length vary with the random bytes.
            let decoded = value.len() - 2 * value.matches('%').count();
            format!("{name}=<{decoded} bytes>;{attributes}")
        })
        .collect();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), location, names, cookies)
}

/// The "check your e-mail" page with what is this visitor's own (the CSRF
/// token, the address typed) blanked out.
async fn sent_page(v: &Visitor, email: &str) -> String {
    let html = v.html("/signup/sent").await;
    let token = extract_csrf(&html).unwrap();
    html.replace(&token, "TOKEN").replace(email, "EMAIL")
}

#[tokio::test]
async fn a_taken_email_or_national_id_is_answered_exactly_like_a_new_sign_up() {
    let app = spawn_app().await;
    let first_id = fixtures::national_id(FIRST_ID_12);
    assert_eq!(
        sign_up(&app, &first_id, "first@example.com").await.status(),
        303
    );

    // Addresses of one length, so that not even the cookie's size differs.
    let cases = [
        (
            "new",
            fixtures::national_id("900101223456"),
            "fresh@example.com",
        ),
        (
            "taken e-mail",
            fixtures::national_id("910101223456"),
            "first@example.com",
        ),
        ("taken national ID", first_id.clone(), "other@example.com"),
    ];
    let mut answers = Vec::new();
    for (what, national_id, email) in &cases {
        let v = app.new_visitor();
        v.csrf_token().await;
        let res = sign_up(&v, national_id, email).await;
        let seen = observable(&res);
        assert_eq!(res.text().await.unwrap(), "", "{what}");
        answers.push((what, seen, sent_page(&v, email).await));
    }
    let (_, new_seen, new_page) = &answers[0];
    assert_eq!(new_seen.0, 303);
    assert_eq!(new_seen.1.as_deref(), Some("/signup/sent"));
    assert_eq!(new_seen.3.len(), 1, "the session cookie is rewritten");
    for (what, seen, page) in &answers[1..] {
        assert_eq!(seen, new_seen, "{what}: the response");
        assert_eq!(page, new_page, "{what}: the page after it");
    }
    assert!(
        new_page.contains("EMAIL 주소로 메일을 보냈습니다"),
        "{new_page}"
    );
    assert_eq!(count_users(&app), 2, "only the new sign-up made an account");
}

#[tokio::test]
async fn the_owner_of_a_taken_email_is_told_in_the_visitors_language_how_to_log_in() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "owner@example.com",
        None,
        true,
        &key,
    );
    let tokens_before: i64 = {
        let mut conn = app.db.get().unwrap();
        account_tokens::table.count().get_result(&mut conn).unwrap()
    };

    let v = app.new_visitor();
    v.post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    let res = sign_up(
        &v,
        &fixtures::national_id("900101223456"),
        "Owner@Example.com",
    )
    .await;
    assert_eq!(res.headers()["location"], "/signup/sent");
    assert!(
        v.html("/signup/sent")
            .await
            .contains("We have sent an e-mail to owner@example.com")
    );

    let mail = app.smtp.wait_for(1).await.remove(0);
    assert_eq!(mail.recipients, vec!["owner@example.com".to_owned()]);
    assert_eq!(
        mail.subject(),
        "[Public Mask Reservation] Someone tried to sign up with your e-mail address"
    );
    let body = mail.text_body();
    assert!(body.contains("Hello owner,"), "{body}");
    assert!(body.contains(&format!("{}/login", app.address)), "{body}");
    assert!(
        body.contains(&format!("{}/password/forgot", app.address)),
        "{body}"
    );
    assert_eq!(
        outbox(&app),
        vec![pair("signup_email_taken", "owner@example.com")]
    );
    let mut conn = app.db.get().unwrap();
    let tokens_after: i64 = account_tokens::table.count().get_result(&mut conn).unwrap();
    assert_eq!(tokens_after, tokens_before, "no link that acts is sent");
    assert_eq!(count_users(&app), 1);
    let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
    assert_eq!(persons, 1, "the stranger's national ID is not kept");
}

#[tokio::test]
async fn the_holder_of_a_taken_national_id_is_told_at_their_own_address() {
    let app = spawn_app().await;
    let id = fixtures::national_id(FIRST_ID_12);
    sign_up(&app, &id, "holder@example.com").await;

    let res = sign_up(&app.new_visitor(), &id, "intruder@example.com").await;
    assert_eq!(res.headers()["location"], "/signup/sent");

    let mails = app.smtp.wait_for(2).await;
    let notice = mails
        .iter()
        .find(|m| m.subject().contains("주민등록번호로 가입 시도"))
        .expect("a notice about the national ID");
    assert_eq!(notice.recipients, vec!["holder@example.com".to_owned()]);
    let body = notice.text_body();
    assert!(body.contains("850101-1******"), "{body}");
    assert!(
        body.contains("118"),
        "what to do if it was not them: {body}"
    );
    assert!(
        body.contains("holder@example.com"),
        "where to log in: {body}"
    );
    assert!(
        body.contains(&format!("{}/password/forgot", app.address)),
        "{body}"
    );
    assert!(!body.contains("intruder@example.com"));
    assert_eq!(
        outbox(&app),
        vec![
            pair("verify_email", "holder@example.com"),
            pair("signup_national_id_taken", "holder@example.com"),
        ],
        "nothing goes to the address that was typed"
    );
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn the_holder_of_a_national_id_is_told_of_sign_ups_with_it_at_most_once_a_day() {
    let clock = Clock::manual(crate::reservations::seoul(
        crate::reservations::tuesday(),
        23,
        0,
    ));
    let app = spawn_app_with(Spawn {
        clock: Some(clock.clone()),
        ..Spawn::default()
    })
    .await;
    let id = fixtures::national_id(FIRST_ID_12);
    sign_up(&app, &id, "holder@example.com").await;
    let notices = |app: &TestApp| {
        outbox(app)
            .into_iter()
            .filter(|(kind, _)| kind == "signup_national_id_taken")
            .collect::<Vec<_>>()
    };

    // Two strangers with the holder's number on one day: one mail.
    for email in ["one@example.com", "two@example.com"] {
        let res = sign_up(&app.new_visitor(), &id, email).await;
        assert_eq!(res.headers()["location"], "/signup/sent");
    }
    assert_eq!(
        notices(&app),
        [pair("signup_national_id_taken", "holder@example.com")]
    );
    // 23:59 in Seoul is still the same day.
    clock.advance(TimeDelta::minutes(59));
    sign_up(&app.new_visitor(), &id, "three@example.com").await;
    assert_eq!(notices(&app).len(), 1);

    // The next day (00:00 in Seoul, 15:00 UTC): another.
    clock.advance(TimeDelta::minutes(1));
    sign_up(&app.new_visitor(), &id, "four@example.com").await;
    sign_up(&app.new_visitor(), &id, "five@example.com").await;
    assert_eq!(notices(&app).len(), 2);
    // The day is remembered per person and only the latest is kept.
    let mut conn = app.db.get().unwrap();
    let days: Vec<chrono::NaiveDate> = signup_notices::table
        .select(signup_notices::day)
        .load(&mut conn)
        .unwrap();
    assert_eq!(days, [crate::reservations::tuesday().succ_opt().unwrap()]);
    // Nobody else's holder is affected, and nothing went to the typed addresses.
    assert!(
        outbox(&app)
            .iter()
            .all(|(_, to)| to == "holder@example.com")
    );
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn a_sign_up_that_meets_two_accounts_tells_both_and_one_account_once() {
    let app = spawn_app().await;
    let id_a = fixtures::national_id(FIRST_ID_12);
    let id_b = fixtures::national_id("900101223456");
    sign_up(&app, &id_a, "a@example.com").await;
    sign_up(&app, &id_b, "b@example.com").await;

    // A's national ID with B's address: both owners hear of it.
    sign_up(&app.new_visitor(), &id_a, "b@example.com").await;
    // A's own details again: one mail to A.
    sign_up(&app.new_visitor(), &id_a, "a@example.com").await;
    assert_eq!(
        outbox(&app)[2..],
        [
            pair("signup_email_taken", "b@example.com"),
            pair("signup_national_id_taken", "a@example.com"),
            pair("signup_email_taken", "a@example.com"),
        ]
    );
    assert_eq!(count_users(&app), 2);
}

#[tokio::test]
async fn a_sign_up_no_longer_logs_in_and_the_sent_page_needs_a_sign_up() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/signup/sent").await.headers()["location"],
        "/signup"
    );
    sign_up(&app, &fixtures::national_id(FIRST_ID_12), "new@example.com").await;
    assert_eq!(app.get("/signup/sent").await.status(), 200);
    let res = app.get("/reservations").await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    // Logging in forgets the sign-up.
    assert_eq!(app.login("new@example.com", PASSWORD).await.status(), 303);
    assert_eq!(
        app.get("/signup/sent").await.headers()["location"],
        "/reservations"
    );
}

/// Eight sign-ups at once that share the national ID or the e-mail.
async fn race(shared_id: bool) -> TestApp {
    let app = spawn_app().await;
    let visitors: Vec<Visitor> = (0..8).map(|_| app.new_visitor()).collect();
    for v in &visitors {
        v.csrf_token().await;
    }
    let shared = fixtures::national_id(FIRST_ID_12);
    let results = futures_util::future::join_all(visitors.iter().enumerate().map(|(i, v)| {
        let (id, email) = if shared_id {
            (shared.clone(), format!("racer{i}@example.com"))
        } else {
            (
                fixtures::national_id(&format!("9001012234{i:02}")),
                "racer@example.com".to_owned(),
            )
        };
        async move {
            let res = sign_up(v, &id, &email).await;
            let location = res
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            (res.status().as_u16(), location)
        }
    }))
    .await;
    assert!(
        results
            .iter()
            .all(|r| *r == (303, Some("/signup/sent".to_owned()))),
        "every racer lands on the same page: {results:?}"
    );
    assert_eq!(count_users(&app), 1);
    let mut conn = app.db.get().unwrap();
    let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
    assert_eq!(persons, 1, "a loser's person row went with its transaction");
    assert_invariants(&app.db);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_sign_ups_for_one_national_id_make_one_account_and_tell_its_holder_once() {
    let app = race(true).await;
    let kinds: Vec<String> = outbox(&app).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "verify_email").count(), 1);
    // Seven sign-ups met the holder's account: one notice for the day.
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "signup_national_id_taken")
            .count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_sign_ups_for_one_email_make_one_account_and_tell_its_owner() {
    let app = race(false).await;
    let mails = outbox(&app);
    assert!(mails.iter().all(|(_, to)| to == "racer@example.com"));
    let kinds: Vec<&str> = mails.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "verify_email").count(), 1);
    assert_eq!(
        kinds.iter().filter(|k| **k == "signup_email_taken").count(),
        7,
        "{kinds:?}"
    );
}

/// Sign-up transactions that really overlap: each thread holds a connection
/// and waits at a barrier, then all begin at once. On PostgreSQL the losers
/// meet the UNIQUE constraints inside their transactions, are tried again,
/// and end as notices; on SQLite the write lock puts them in a row.
fn overlapping_sign_ups(app: &TestApp, shared_id: bool) -> Vec<SignupOutcome> {
    const RACERS: usize = 6;
    let today = chrono::Utc::now().date_naive();
    let hash = password::hash(&NewPassword::parse(PASSWORD).unwrap()).unwrap();
    let catalog = Arc::new(Catalog::load().unwrap());
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|i| {
            let (db, barrier) = (app.db.clone(), barrier.clone());
            let key = app.state.keys.national_id.clone();
            let tr = Tr::new(catalog.clone(), Lang::Ko);
            let (id, email) = if shared_id {
                (FIRST_ID_12.to_owned(), format!("racer{i}@example.com"))
            } else {
                (format!("9001012234{i:02}"), "racer@example.com".to_owned())
            };
            let signup = Signup {
                national_id: NationalId::parse(
                    &fixtures::national_id(&id),
                    chrono::Utc::now().date_naive(),
                )
                .unwrap(),
                name: DisplayName::parse("홍길동").unwrap(),
                email: Email::parse(&email).unwrap(),
                password_hash: hash.clone(),
            };
            std::thread::spawn(move || {
                let mut conn = db.get().unwrap();
                barrier.wait();
                write_tx(&mut conn, |tx| {
                    service::sign_up(tx, &key, &signup, &tr, "http://localhost", today)
                })
                .unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_sign_up_transactions_make_one_account_and_notices_for_the_rest() {
    for shared_id in [true, false] {
        let app = spawn_app().await;
        let outcomes = {
            let app = &app;
            tokio::task::block_in_place(|| overlapping_sign_ups(app, shared_id))
        };
        let created = outcomes
            .iter()
            .filter(|o| matches!(o, SignupOutcome::Created { .. }))
            .count();
        assert_eq!(created, 1, "shared ID {shared_id}: {outcomes:?}");
        assert_eq!(count_users(&app), 1);
        let mut conn = app.db.get().unwrap();
        let persons: i64 = people::table.count().get_result(&mut conn).unwrap();
        assert_eq!(persons, 1, "shared ID {shared_id}");
        // Five losers: their e-mail's owner hears of each (the per-address
        // limit bounds those), the national ID's holder once a day.
        let (notice, told) = if shared_id {
            ("signup_national_id_taken", 1)
        } else {
            ("signup_email_taken", 5)
        };
        let kinds: Vec<String> = outbox(&app).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == notice).count(),
            told,
            "{kinds:?}"
        );
        assert_invariants(&app.db);
    }
}

// ---- login failures --------------------------------------------------------

/// 2020-03-09 09:01:40 UTC: 100 seconds into a 15-minute window.
fn at_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_583_744_500, 0).unwrap()
}

struct Login {
    app: TestApp,
    clock: Clock,
}

/// An app with the given login limits (the rest generous), a manual clock, and
/// a verified citizen `owner@example.com`.
async fn login_app(limits: RateLimits) -> Login {
    let clock = Clock::manual(at_start());
    let app = spawn_app_with(Spawn {
        rate_limits: Some(limits),
        clock: Some(clock.clone()),
        ..Spawn::default()
    })
    .await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "owner@example.com",
        None,
        true,
        &key,
    );
    Login { app, clock }
}

fn limits(per_ip: i32, per_account_ip: i32, per_device: i32) -> RateLimits {
    RateLimits {
        login_per_ip: Limit::per_minutes(per_ip, 15),
        login_per_account_ip: Limit::per_minutes(per_account_ip, 15),
        login_per_device: Limit::per_minutes(per_device, 15),
        ..generous_limits()
    }
}

/// A new browser connecting from `ip` (any 127.x.y.z address reaches the app).
fn browser_at(app: &TestApp, ip: &str) -> Visitor {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    Visitor {
        address: app.address.clone(),
        client: reqwest::Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .local_address(ip.parse::<IpAddr>().unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        jar,
    }
}

async fn status_of_login(v: &Visitor, email: &str, password: &str) -> u16 {
    v.login(email, password).await.status().as_u16()
}

#[tokio::test]
async fn a_guesser_is_stopped_with_retry_after_until_the_window_ends() {
    let Login { app, clock } = login_app(limits(1000, 3, 2)).await;
    let guesser = browser_at(&app, "127.0.0.2");
    for _ in 0..3 {
        assert_eq!(
            status_of_login(&guesser, "owner@example.com", "guess").await,
            401
        );
    }
    let res = guesser.login("owner@example.com", "guess").await;
    assert_eq!(res.status(), 429, "the fourth failure in the window");
    assert_eq!(retry_after(&res), 800, "the window ends 800 s from now");
    // Right or wrong, this address waits for this account.
    assert_eq!(
        status_of_login(&guesser, "Owner@example.com", PASSWORD).await,
        429
    );

    clock.advance(TimeDelta::seconds(799));
    let res = guesser.login("owner@example.com", "guess").await;
    assert_eq!((res.status().as_u16(), retry_after(&res)), (429, 1));
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(
        status_of_login(&guesser, "owner@example.com", "guess").await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_failures_pass_exactly_up_to_the_limit() {
    let Login { app, .. } = login_app(limits(1000, 4, 2)).await;
    let guesser = browser_at(&app, "127.0.0.9");
    guesser.csrf_token().await;
    let statuses = futures_util::future::join_all(
        (0..12).map(|_| status_of_login(&guesser, "owner@example.com", "guess")),
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        8,
        "{statuses:?}"
    );
    assert_eq!(
        status_of_login(
            &browser_at(&app, "127.0.0.10"),
            "owner@example.com",
            PASSWORD
        )
        .await,
        303
    );
    assert_invariants(&app.db);
}

#[tokio::test]
async fn failures_from_one_address_do_not_block_the_right_password_from_another() {
    let Login { app, .. } = login_app(limits(1000, 3, 2)).await;
    let stranger = browser_at(&app, "127.0.0.2");
    for _ in 0..3 {
        stranger.login("owner@example.com", "guess").await;
    }
    assert_eq!(
        status_of_login(&stranger, "owner@example.com", "guess").await,
        429
    );

    let owner = browser_at(&app, "127.0.0.3");
    let res = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303, "the owner, elsewhere, is not locked out");
    assert_eq!(res.headers()["location"], "/reservations");
    // And the owner's own failures there are counted on their own.
    let other = browser_at(&app, "127.0.0.3");
    assert_eq!(
        status_of_login(&other, "owner@example.com", "typo").await,
        401
    );
}

#[tokio::test]
async fn only_failures_count_so_many_people_behind_one_address_can_log_in() {
    let Login { app, .. } = login_app(limits(3, 2, 1)).await;
    let key = app.state.keys.national_id.clone();
    for i in 0..5 {
        let email = format!("neighbour{i}@example.com");
        fixtures::user(&app.db, Role::Citizen, &email, None, true, &key);
        // Each from a fresh browser (no device cookie) behind the same address.
        let v = browser_at(&app, "127.0.0.4");
        assert_eq!(status_of_login(&v, &email, PASSWORD).await, 303, "{email}");
    }
    for _ in 0..4 {
        let v = browser_at(&app, "127.0.0.4");
        assert_eq!(
            status_of_login(&v, "owner@example.com", PASSWORD).await,
            303
        );
    }
    // Failures still count: two on the account, then a third address-wide.
    let v = browser_at(&app, "127.0.0.4");
    assert_eq!(status_of_login(&v, "owner@example.com", "typo").await, 401);
    assert_eq!(status_of_login(&v, "owner@example.com", "typo").await, 401);
    assert_eq!(status_of_login(&v, "owner@example.com", "typo").await, 429);
    assert_eq!(status_of_login(&v, "nobody@example.com", "typo").await, 401);
    assert_eq!(
        status_of_login(&v, "neighbour0@example.com", PASSWORD).await,
        429,
        "the address has had its three failures"
    );
}

#[tokio::test]
async fn a_browser_that_logged_in_before_gets_through_while_the_account_is_under_attack() {
    let Login { app, .. } = login_app(limits(5, 3, 2)).await;
    let owner = browser_at(&app, "127.0.0.5");
    let res = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mr_device="))
        .expect("a device cookie on login");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP in development");
    owner.post_form("/logout", &[]).await;

    // Strangers on the same address use up both the account's and the
    // address's failures.
    let stranger = browser_at(&app, "127.0.0.5");
    for _ in 0..3 {
        stranger.login("owner@example.com", "guess").await;
    }
    stranger.login("someone@example.com", "guess").await;
    stranger.login("someone@example.com", "guess").await;
    assert_eq!(
        status_of_login(&stranger, "owner@example.com", PASSWORD).await,
        429
    );
    assert_eq!(
        status_of_login(
            &browser_at(&app, "127.0.0.5"),
            "owner@example.com",
            PASSWORD
        )
        .await,
        429,
        "a new browser there waits too"
    );

    let res = owner.login("owner@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303, "the remembered browser gets through");
    assert_eq!(owner.get("/reservations").await.status(), 200);
    // A mistyped password there does not lock it either, up to its own limit.
    owner.post_form("/logout", &[]).await;
    assert_eq!(
        status_of_login(&owner, "owner@example.com", "typo").await,
        401
    );
    assert_eq!(
        status_of_login(&owner, "owner@example.com", PASSWORD).await,
        303
    );
}

#[tokio::test]
async fn a_stolen_device_cookie_gets_only_a_few_guesses() {
    let Login { app, clock } = login_app(limits(1000, 1000, 2)).await;
    let owner = browser_at(&app, "127.0.0.6");
    owner.login("owner@example.com", PASSWORD).await;

    // The thief copies every cookie into a browser of their own, elsewhere.
    let thief = reqwest::Client::builder()
        .redirect(Policy::none())
        .local_address("127.0.0.7".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let cookies = owner.cookie_header();
    assert!(cookies.contains("mr_device="), "{cookies}");
    let token = extract_csrf(&owner.html("/").await).unwrap();
    let cookies = owner.cookie_header();
    let guess = |password: &'static str| {
        let (thief, cookies, token, url) = (
            thief.clone(),
            cookies.clone(),
            token.clone(),
            owner.url("/login"),
        );
        async move {
            thief
                .post(url)
                .header("Cookie", cookies)
                .form(&[
                    ("email", "owner@example.com"),
                    ("password", password),
                    ("csrf_token", &token),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(guess("guess 1").await.status(), 401);
    assert_eq!(guess("guess 2").await.status(), 401);
    let res = guess("guess 3").await;
    assert_eq!(res.status(), 429);
    assert_eq!(retry_after(&res), 800);
    clock.advance(TimeDelta::minutes(15));
    assert_eq!(guess("guess 4").await.status(), 401);
}

#[tokio::test]
async fn a_device_cookie_of_another_account_or_a_forged_one_exempts_nothing() {
    let Login { app, .. } = login_app(limits(1000, 2, 5)).await;
    let key = app.state.keys.national_id.clone();
    let victim = fixtures::user(
        &app.db,
        Role::Citizen,
        "victim@example.com",
        None,
        true,
        &key,
    );

    // An attacker logs in to their own account, then turns on another one.
    let attacker = browser_at(&app, "127.0.0.8");
    assert_eq!(
        status_of_login(&attacker, "owner@example.com", PASSWORD).await,
        303
    );
    attacker.post_form("/logout", &[]).await;
    for _ in 0..2 {
        assert_eq!(
            status_of_login(&attacker, "victim@example.com", "guess").await,
            401
        );
    }
    assert_eq!(
        status_of_login(&attacker, "victim@example.com", "guess").await,
        429
    );

    // A cookie made up to name the victim, without the key, is no better.
    let forged = format!("d1.{victim}.made-up.{}.AAAA", at_start().timestamp());
    let url: reqwest::Url = app.address.parse().unwrap();
    attacker
        .jar
        .add_cookie_str(&format!("mr_device={forged}; Path=/"), &url);
    assert!(attacker.cookie_header().contains(&forged));
    assert_eq!(
        status_of_login(&attacker, "victim@example.com", PASSWORD).await,
        429
    );
}
