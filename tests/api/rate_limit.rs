//! The rate-limit counter under concurrency, on the real database: hits that
//! race on one key are all counted, none is refused below the limit, and none
//! passes above it. And the address a limit counts by is the client's, which a
//! client behind a proxy cannot choose.

use std::sync::{Arc, Barrier};

use chrono::{DateTime, TimeDelta, Utc};
use mask_reservation::clock::Clock;
use mask_reservation::config::TrustedProxies;
use mask_reservation::db::{Db, write_tx};
use mask_reservation::rate_limit::{Decision, Limit, RateLimits, hit};

use crate::common::{Spawn, assert_invariants, generous_limits, spawn_app, spawn_app_with};

/// 2100-01-01 00:01:40 UTC: 100 seconds into a ten-minute window. In the
/// future, so that the app's clean-up of windows older than a day (which runs
/// as the app starts) never removes a window a test is counting in.
fn at_start() -> DateTime<Utc> {
    DateTime::from_timestamp(4_102_444_900, 0).unwrap()
}

fn hit_at(db: &Db, bucket: &str, limit: Limit, now: DateTime<Utc>) -> Decision {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| hit(tx, bucket, limit, now)).unwrap()
}

/// `threads` hits at once on a fresh key per round; the allowed count per round.
fn race(db: &Db, rounds: usize, threads: usize, limit: Limit) -> Vec<usize> {
    (0..rounds)
        .map(|round| {
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let db = db.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let mut conn = db.get().unwrap();
                        barrier.wait();
                        let bucket = format!("race:{round}");
                        write_tx(&mut conn, |tx| hit(tx, &bucket, limit, at_start())).unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|d| *d == Decision::Allowed)
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_hits_below_the_limit_are_all_allowed() {
    let app = spawn_app().await;
    let db = app.db.clone();
    let allowed =
        tokio::task::spawn_blocking(move || race(&db, 20, 6, Limit::per_minutes(100, 60)))
            .await
            .unwrap();
    assert!(allowed.iter().all(|n| *n == 6), "{allowed:?}");
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_hits_above_the_limit_pass_exactly_up_to_it() {
    let app = spawn_app().await;
    let db = app.db.clone();
    let allowed = tokio::task::spawn_blocking(move || race(&db, 20, 6, Limit::per_minutes(4, 60)))
        .await
        .unwrap();
    assert!(allowed.iter().all(|n| *n == 4), "{allowed:?}");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_full_window_refuses_says_when_it_ends_and_the_next_window_starts_afresh() {
    let app = spawn_app().await;
    let db = &app.db;
    let limit = Limit::per_minutes(2, 10);
    let now = at_start();
    assert_eq!(hit_at(db, "k", limit, now), Decision::Allowed);
    assert_eq!(hit_at(db, "k", limit, now), Decision::Allowed);
    assert_eq!(
        hit_at(db, "k", limit, now),
        Decision::Limited {
            retry_after_secs: 500
        },
        "a third hit in a window of two is refused until the window ends"
    );
    // Another key has its own count.
    assert_eq!(hit_at(db, "other", limit, now), Decision::Allowed);
    // The last second of the window is still in it; the next one is not.
    let last = now + TimeDelta::seconds(499);
    assert_eq!(
        hit_at(db, "k", limit, last),
        Decision::Limited {
            retry_after_secs: 1
        }
    );
    assert_eq!(
        hit_at(db, "k", limit, last + TimeDelta::seconds(1)),
        Decision::Allowed
    );
}

#[tokio::test]
async fn a_limit_of_zero_refuses_every_hit() {
    let app = spawn_app().await;
    let limit = Limit::per_minutes(0, 10);
    assert!(matches!(
        hit_at(&app.db, "k", limit, at_start()),
        Decision::Limited { .. }
    ));
}

#[tokio::test]
async fn behind_a_proxy_rotating_the_leftmost_forwarded_address_does_not_escape_the_login_limit() {
    let app = spawn_app_with(Spawn {
        rate_limits: Some(RateLimits {
            login_per_ip: Limit::per_minutes(3, 10),
            ..generous_limits()
        }),
        clock: Some(Clock::manual(at_start())),
        configure: Some(Box::new(|c| {
            c.trusted_proxies = TrustedProxies::parse("1").unwrap();
        })),
        ..Spawn::default()
    })
    .await;
    let token = app.csrf_token().await;
    // The test speaks as a proxy on loopback that appended the address it
    // was reached from to what the client sent.
    let login = |forwarded_for: String| {
        app.client
            .post(app.url("/login"))
            .header("X-Forwarded-For", forwarded_for)
            .form(&[
                ("email", "nobody@example.com"),
                ("password", "wrong password"),
                ("csrf_token", token.as_str()),
            ])
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..25 {
        let res = login(format!("198.51.100.{i}, 203.0.113.9")).await.unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses[..3], [401; 3], "{statuses:?}");
    assert!(
        statuses[3..].iter().all(|s| *s == 429),
        "one client, however it names itself: {statuses:?}"
    );
    // Another client behind the same proxy has a count of its own.
    let other = login("198.51.100.0, 203.0.113.10".into()).await.unwrap();
    assert_eq!(other.status(), 401);
}
