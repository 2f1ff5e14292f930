//! The write path under concurrency: every write a caller saw succeed is in the
//! database, a write that fails or panics takes nothing else with it, and the
//! write path keeps serving after. On SQLite the writes go through the one
//! grouping writer, and the tests stall it so that the writes under test are
//! committed as one group; on PostgreSQL they take the pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use mask_reservation::audit::{Entry, record};
use mask_reservation::db::schema::audit_log;
use mask_reservation::db::{Backend, Db, DbError, Tx};
use tokio::task::JoinHandle;

use crate::common::{TestApp, assert_invariants, eventually, spawn_app};

const ENTITY: &str = "writer-test";

/// Writes one audit row named `n`; answers `n`.
fn note(tx: &mut Tx<'_>, n: i64) -> Result<i64, DieselError> {
    record(
        tx,
        Entry {
            actor: None,
            action: "writer.test",
            entity: ENTITY,
            entity_id: n.to_string(),
            before: None,
            after: None,
        },
    )?;
    Ok(n)
}

/// The names of the rows [`note`] wrote, sorted.
fn noted(app: &TestApp) -> Vec<i64> {
    let mut conn = app.db.get().unwrap();
    let mut names: Vec<i64> = audit_log::table
        .filter(audit_log::entity.eq(ENTITY))
        .select(audit_log::entity_id)
        .load::<String>(&mut conn)
        .unwrap()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    names.sort();
    names
}

/// Stalls the write path: on SQLite, a write that holds the writer until the
/// returned sender is used or dropped, so that what is queued meanwhile is
/// committed as one group; on PostgreSQL, nothing to stall.
pub async fn stall(db: &Db) -> Option<(mpsc::Sender<()>, JoinHandle<()>)> {
    if db.backend() != Backend::Sqlite {
        return None;
    }
    let (open, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let running = Arc::new(AtomicBool::new(false));
    let held = {
        let (db, running) = (db.clone(), running.clone());
        tokio::spawn(async move {
            // Its own caller may stop waiting (a test with a short database
            // timeout); the write holds the writer all the same.
            let _ = db
                .write(move |_tx| {
                    running.store(true, Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv();
                    Ok::<_, DieselError>(())
                })
                .await;
        })
    };
    eventually(Duration::from_secs(20), "the writer held", || async {
        running.load(Ordering::SeqCst).then_some(())
    })
    .await;
    Some((open, held))
}

/// Lets the stalled writer go once `queued` writes wait behind it (and maybe
/// one of the app's own background jobs).
async fn release(db: &Db, stalled: Option<(mpsc::Sender<()>, JoinHandle<()>)>, queued: usize) {
    let Some((open, held)) = stalled else {
        return;
    };
    eventually(Duration::from_secs(20), "the writes queued", || async {
        (db.write_queue_len() >= queued).then_some(())
    })
    .await;
    open.send(()).unwrap();
    held.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_in_the_database() {
    let app = spawn_app().await;
    let writes: Vec<_> = (0..500)
        .map(|n| {
            let db = app.db.clone();
            tokio::spawn(async move { db.write(move |tx| note(tx, n)).await })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for w in writes {
        match w.await.unwrap() {
            Ok(n) => acknowledged.push(n),
            Err(e) => panic!("a write failed under no fault: {e}"),
        }
    }
    acknowledged.sort();
    assert_eq!(acknowledged, (0..500).collect::<Vec<_>>());
    assert_eq!(noted(&app), acknowledged);
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_rolls_back_only_itself_among_those_committed_with_it() {
    let app = spawn_app().await;
    let stalled = stall(&app.db).await;
    let writes: Vec<_> = (0..6)
        .map(|n| {
            let db = app.db.clone();
            tokio::spawn(async move {
                db.write(move |tx| {
                    note(tx, n)?;
                    if n == 3 {
                        // Fails after a write of its own.
                        return Err(DieselError::RollbackTransaction);
                    }
                    Ok(n)
                })
                .await
            })
        })
        .collect();
    release(&app.db, stalled, 6).await;

    for (n, w) in writes.into_iter().enumerate() {
        match (n, w.await.unwrap()) {
            (3, Err(DbError::Work(DieselError::RollbackTransaction))) => {}
            (3, other) => panic!("the failing write answered {other:?}"),
            (n, Ok(m)) => assert_eq!(n as i64, m),
            (n, Err(e)) => panic!("write {n} failed: {e}"),
        }
    }
    assert_eq!(noted(&app), vec![0, 1, 2, 4, 5]);
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_answers_an_error_and_the_write_path_keeps_serving() {
    let app = spawn_app().await;
    let stalled = stall(&app.db).await;
    let writes: Vec<_> = (0..4)
        .map(|n| {
            let db = app.db.clone();
            tokio::spawn(async move {
                db.write(move |tx| {
                    note(tx, n)?;
                    assert_ne!(n, 1, "a bug in a write");
                    Ok::<_, DieselError>(n)
                })
                .await
            })
        })
        .collect();
    release(&app.db, stalled, 4).await;

    for (n, w) in writes.into_iter().enumerate() {
        match (n, w.await.unwrap()) {
            (1, Err(DbError::Unavailable(_))) => {}
            (1, other) => panic!("the panicking write answered {other:?}"),
            (n, Ok(m)) => assert_eq!(n as i64, m),
            (n, Err(e)) => panic!("write {n} failed: {e}"),
        }
    }
    assert_eq!(noted(&app), vec![0, 2, 3]);

    // Later writes, enough to reuse every pooled connection on PostgreSQL.
    for n in 10..20 {
        assert_eq!(app.db.write(move |tx| note(tx, n)).await.unwrap(), n);
    }
    assert_eq!(noted(&app).len(), 13);
    assert_invariants(&app.db);
}
