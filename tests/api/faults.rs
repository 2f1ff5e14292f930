//! Fault drills: the service broken on purpose, and what it must do then.
//!
//! A clock that is wrong. An instance started with its clock three days
//! ahead would expire every active reservation at its first minute job and
//! accept logins "issued" in its future. Jobs that act on time take "now"
//! from the database's clock and refuse while this machine's is more than a
//! minute off it; `/healthz` and `/status` say `clock_skew`; a login cookie
//! issued in the future is refused. The instance here is given a wrong clock
//! in the process (`Clock::wrong_by`); the command line is run under
//! libfaketime against PostgreSQL, whose clock is the server's (on SQLite the
//! database's clock is the machine's own, so a faked process clock fakes both
//! and there is no second clock to compare with).

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::reservations;
use mask_reservation::db::{Backend, DatabaseUrl, Db};
use mask_reservation::reservations::expiry::{Round, run_once};

use crate::common::server::{Binary, free_port};
use crate::common::{
    Spawn, TestApp, assert_invariants, assert_status_page_says, fixtures, spawn_app_with,
};
use crate::expiry::citizen;
use crate::reservations::{seoul, tuesday};

fn status(db: &Db, id: i64) -> String {
    reservations::table
        .find(id)
        .select(reservations::status)
        .first(&mut db.get().unwrap())
        .unwrap()
}

/// A store with supply on the real day after tomorrow in Seoul and an active
/// reservation in its first window: not due by the real clock, long due by a
/// clock three days ahead.
fn reservation_due_only_in_three_days(app: &TestApp) -> i64 {
    let day = Utc::now()
        .with_timezone(&chrono_tz::Asia::Seoul)
        .date_naive()
        + TimeDelta::days(2);
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, day, 30);
    fixtures::reservation(&app.db, windows[0], citizen(app, "c@example.com"), 2)
}

#[tokio::test]
async fn an_instance_whose_clock_runs_days_ahead_expires_nothing_and_says_clock_skew() {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::wrong_by(TimeDelta::days(3))),
        ..Spawn::default()
    })
    .await;
    let id = reservation_due_only_in_three_days(&app);
    app.state
        .policy
        .refresh(&mut app.db.get().unwrap())
        .unwrap();

    // The minute job does not run on this instance's clock…
    assert_eq!(
        run_once(&app.db, &app.state.clock, &app.state.policy).await,
        None
    );
    assert_eq!(status(&app.db, id), "active");
    // …while an instance with a right clock runs it, and finds nothing due.
    assert_eq!(
        run_once(&app.db, &Clock::system(), &app.state.policy).await,
        Some(Round::default())
    );
    assert_eq!(status(&app.db, id), "active");

    // The instance takes itself out of rotation, and says why.
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let health: serde_json::Value = res.json().await.unwrap();
    assert_eq!(health["status"], "clock_skew", "{health}");
    assert_eq!(health["database"]["state"], "clock_skew", "{health}");
    let skew = health["database"]["clock_skew_seconds"].as_i64().unwrap();
    assert!((259_100..=259_300).contains(&skew), "{health}");
    assert_status_page_says(app.get("/status").await, "clock_skew").await;
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_login_cookie_issued_in_the_future_is_refused() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    // Logged in while this instance's clock ran three days ahead…
    app.state.clock.advance(TimeDelta::days(3));
    let citizen = app
        .logged_in_as(Role::Citizen, "kim@example.com", None)
        .await;
    assert_eq!(citizen.get("/reservations").await.status(), 200);
    // …the cookie says it was issued three days from now once the clock is
    // right again: no login whose age is unknown is honoured.
    app.state.clock.advance(TimeDelta::days(-3));
    let res = citizen.get("/reservations").await;
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login"),
        "{:?}",
        res.headers()
    );
    // A minute's difference between instances is not a reason to log out.
    app.state
        .clock
        .advance(TimeDelta::days(3) - TimeDelta::seconds(50));
    let again = app
        .logged_in_as(Role::Citizen, "lee@example.com", None)
        .await;
    app.state.clock.advance(TimeDelta::seconds(-50));
    assert_eq!(again.get("/reservations").await.status(), 200);
}

/// `mask-reservation expire` on a machine whose clock is three days ahead
/// (libfaketime), against PostgreSQL: it refuses, says why, exits 2, and
/// expires nothing.
#[tokio::test]
async fn the_expire_command_on_a_machine_three_days_ahead_refuses_and_expires_nothing() {
    let app = spawn_app_with(Spawn::default()).await;
    let DatabaseUrl::Postgres(url) = app.database.url() else {
        assert_eq!(app.backend(), Backend::Sqlite);
        // SQLite reads the time from the same (faked) process clock.
        return;
    };
    let id = reservation_due_only_in_three_days(&app);
    let binary = Binary::with_url(&url);
    let run = |faked: Option<&str>| {
        match faked {
            Some(offset) => binary.command_faked(offset, &["expire"]),
            None => binary.command(&["expire"]),
        }
        .output()
        .unwrap()
    };
    let out = run(Some("+3d"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not expiring"), "{stderr}");
    assert_eq!(status(&app.db, id), "active");
    // The same command on the right clock runs, and finds nothing due.
    let out = run(None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("0 reservation(s) expired"), "{stdout}");
    assert_eq!(status(&app.db, id), "active");
    assert_invariants(&app.db);
}

/// A database that refuses connections: the PostgreSQL client's messages
/// hold line breaks ("…failed: Connection refused\n\tIs the server
/// running…"). Every line the server writes is one event: a time and a level,
/// no continuation lines. (The server keeps running, trying the database.)
#[tokio::test]
async fn pool_errors_are_logged_one_line_per_event() {
    use tokio::io::AsyncBufReadExt;

    let binary = Binary::with_url("postgres://postgres@127.0.0.1:1/nowhere");
    let mut cmd = binary.command(&["serve"]);
    cmd.env("BIND", format!("127.0.0.1:{}", free_port()))
        .env("DEMO", "0")
        .env("LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut server = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let read = async {
        // The first attempt's pool errors, then the retry's.
        while seen
            .iter()
            .filter(|l: &&String| l.contains("Connection refused"))
            .count()
            < 3
        {
            match lines.next_line().await.unwrap() {
                Some(line) => seen.push(line),
                None => break,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("three refusals logged within a minute");
    server.kill().await.unwrap();
    for line in seen.iter().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("20") && line.contains("Z "),
            "a line that is not an event of its own: {line:?}\n{seen:#?}"
        );
    }
}

/// The server started while PostgreSQL is unreachable (a cut proxy in front
/// of it): it stays up, answers `/healthz` and `/status` with 503, and begins
/// serving by itself once the database answers — without a restart, so that
/// every instance restarted during an outage comes back with the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_the_database_is_down_serves_503_then_comes_back_by_itself() {
    let Some(_) = crate::common::db::postgres_server() else {
        // SQLite is a file the process opens itself: not "down" at start.
        return;
    };
    let database = std::sync::Arc::new(crate::common::TestDatabase::fresh());
    let proxy = crate::common::proxy::DbProxy::start(database.postgres_addr().unwrap()).await;
    proxy.cut();
    let DatabaseUrl::Postgres(url) = database.url_via(Some(proxy.port)) else {
        unreachable!("a PostgreSQL database");
    };
    let binary = Binary::with_url(&url);
    let mut server = binary.serve(&[]);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let health = server.answering().await;
    assert_eq!(health.status(), 503);
    assert_status_page_says(get("/status").await.unwrap(), "down").await;
    let page = get("/stores/11800001").await.unwrap();
    assert_eq!(page.status(), 503, "a page that needs the database");
    assert!(server.running(), "still running");

    proxy.restore();
    server.healthy().await;
    let page = get("/stores/11800001").await.unwrap();
    assert_eq!(page.status(), 404, "served: no such store");
    assert_eq!(get("/login").await.unwrap().status(), 200);
}

/// Logged in, then the database gone (PostgreSQL behind a cut proxy): a
/// page that needs the account and its own reads, the store page and a
/// booking each answer the 503 page with `Retry-After` once the request's one
/// deadline (`DB_TIMEOUT`, 1 s here) has passed — not after one wait per read
/// (the sum was 10 s with the 5 s default). Nothing is written; with the
/// database back, the same booking goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_every_page_answers_503_after_one_deadline() {
    let Some(_) = crate::common::db::postgres_server() else {
        // The SQLite form of "gone" is a file held by another connection:
        // the next drill.
        return;
    };
    let database = std::sync::Arc::new(crate::common::TestDatabase::fresh());
    let proxy = crate::common::proxy::DbProxy::start(database.postgres_addr().unwrap()).await;
    let app = spawn_app_with(Spawn {
        database: Some(database),
        via_proxy: Some(proxy.port),
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        configure: Some(Box::new(|c| c.db_timeout = Duration::from_secs(1))),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 30);
    let citizen = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
    let token = citizen.csrf_token().await;
    let booking = [
        ("window_id", windows[0].to_string()),
        ("quantity", "1".to_owned()),
        ("request_id", "gone-1".to_owned()),
        ("csrf_token", token),
    ];

    proxy.cut();
    for what in ["/reservations", "/stores/11800001", "POST /reservations"] {
        let started = std::time::Instant::now();
        let res = match what.strip_prefix("POST ") {
            Some(path) => citizen.client.post(citizen.url(path)).form(&booking),
            None => citizen.client.get(citizen.url(what)),
        }
        .send()
        .await
        .unwrap();
        // The figure for docs/reliability.md; not asserted (a loaded machine
        // is slow), only that the answer is the 503 page rather than a hang.
        eprintln!("{what}: {} after {:?}", res.status(), started.elapsed());
        assert_eq!(res.status(), 503, "{what}");
        assert_eq!(crate::common::retry_after(&res), 5, "{what}");
    }

    proxy.restore();
    let res = citizen
        .client
        .post(citizen.url("/reservations"))
        .form(&booking)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "booked once the database is back");
    // Every pooled connection the cut killed is replaced, not handed out again.
    for _ in 0..12 {
        assert_eq!(citizen.get("/reservations").await.status(), 200);
    }
    let stored: i64 = reservations::table
        .filter(reservations::request_id.eq("gone-1"))
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(stored, 1);
    assert_invariants(&app.db);
}

/// SQLite's one write lock held by another connection (the command line, a
/// backup, a second process) for longer than `DB_TIMEOUT`: bookings queued
/// behind it answer the 503 page once the request's deadline passes, instead
/// of waiting for as long as the lock is held; pages that only read keep
/// answering (WAL readers do not wait for the writer). Once the lock goes, the
/// writer does not run the bookings it answered 503 — none of them is stored
/// — and the same forms sent again each book once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_connection_answers_503_and_stores_nothing_it_refused() {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        configure: Some(Box::new(|c| c.db_timeout = Duration::from_secs(1))),
        ..Spawn::default()
    })
    .await;
    if app.backend() != Backend::Sqlite {
        // PostgreSQL has no file lock: a lock on rows is the booking race's
        // business, and a database gone is the drill above.
        return;
    }
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 30);
    let mut citizens = Vec::new();
    for i in 0..6 {
        let v = app
            .logged_in_as(Role::Citizen, &format!("c{i}@example.com"), None)
            .await;
        let token = v.csrf_token().await;
        citizens.push((v, token));
    }
    let book = |i: usize| {
        let (v, token) = citizens[i].clone();
        let window = windows[0].to_string();
        async move {
            v.client
                .post(v.url("/reservations"))
                .form(&[
                    ("window_id", window.as_str()),
                    ("quantity", "1"),
                    ("request_id", &format!("locked-{i}")),
                    ("csrf_token", &token),
                ])
                .send()
                .await
                .unwrap()
        }
    };

    let mut holder = app.database.connect();
    holder.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let answers = futures_util::future::join_all((0..citizens.len()).map(book)).await;
    for res in &answers {
        assert_eq!(res.status(), 503, "a booking behind the lock");
        assert_eq!(crate::common::retry_after(res), 5);
    }
    let page = citizens[0].0.get("/stores/11800001").await;
    assert_eq!(page.status(), 200, "a page that only reads");
    holder.batch_execute("ROLLBACK").unwrap();

    // The writer, free again, must not run what it answered 503: give it
    // the time to, then look.
    let answered_later = book(0).await;
    assert_eq!(answered_later.status(), 303, "the writer is free again");
    let stored: Vec<String> = reservations::table
        .select(reservations::request_id.assume_not_null())
        .order(reservations::request_id)
        .load(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(
        stored,
        vec!["locked-0".to_owned()],
        "only the one sent again"
    );
    let again = futures_util::future::join_all((0..citizens.len()).map(book)).await;
    assert!(again.iter().all(|r| r.status() == 303));
    let count: i64 = reservations::table
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(count, citizens.len() as i64, "each request id booked once");
    assert_invariants(&app.db);
}
