//! The rate-limit counter under concurrency, on the real database: hits that
//! race on one key are all counted, none is refused below the limit, and none
//! passes above it.


use std::sync::{Arc, Barrier};

use crate::common::spawn_app;
use mask_reservation::db::Db;
use mask_reservation::web::rate_limit::{Decision, Limit, hit};

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
                        hit(&mut conn, &format!("race:{round}"), limit).unwrap()
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_hits_above_the_limit_pass_exactly_up_to_it() {
    let app = spawn_app().await;
    let db = app.db.clone();
    let allowed = tokio::task::spawn_blocking(move || race(&db, 20, 6, Limit::per_minutes(4, 60)))
        .await
        .unwrap();
    assert!(allowed.iter().all(|n| *n == 4), "{allowed:?}");
}

#[tokio::test]
async fn a_full_window_refuses_and_says_when_to_come_back() {
    let app = spawn_app().await;
    let mut conn = app.db.get().unwrap();
    let limit = Limit::per_minutes(2, 10);
    assert_eq!(hit(&mut conn, "k", limit).unwrap(), Decision::Allowed);
    assert_eq!(hit(&mut conn, "k", limit).unwrap(), Decision::Allowed);
    match hit(&mut conn, "k", limit).unwrap() {
        Decision::Limited { retry_after_secs } => {
            assert!((1..=600).contains(&retry_after_secs), "{retry_after_secs}");
        }
        Decision::Allowed => panic!("a third hit in a window of two passed"),
    }
    // Another key has its own count.
    assert_eq!(hit(&mut conn, "other", limit).unwrap(), Decision::Allowed);
}
