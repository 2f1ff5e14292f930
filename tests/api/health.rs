//! `/healthz` tells `up` from `busy` from `down`, and never waits for the write
//! lock: a database that is writing hard, or an instance whose connections are
//! all in use, still answers 200.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use mask_reservation::db::Backend;

use crate::common::{TestApp, eventually, spawn_app};

async fn health(app: &TestApp) -> (u16, serde_json::Value) {
    let res = app.get("/healthz").await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn healthz_is_up_while_another_connection_holds_a_write_transaction() {
    let app = spawn_app().await;
    let mut writer = app.database.connect();
    // On SQLite this is the one write lock; on PostgreSQL, the rows' locks.
    let begin = match app.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    writer.batch_execute(begin).unwrap();
    writer
        .batch_execute("UPDATE settings SET value = value")
        .unwrap();

    // The lock is held until after the answer: a probe that waited for it
    // would never answer.
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["state"], "up");
    assert_eq!(body["database"]["backend"], app.backend().as_str());

    writer.batch_execute("ROLLBACK").unwrap();
}

#[tokio::test]
async fn healthz_is_busy_but_200_while_every_pooled_connection_is_in_use() {
    let app = spawn_app().await;
    let (status, body) = health(&app).await;
    assert_eq!((status, &body["database"]["state"]), (200, &"up".into()));

    // Requests hold every connection, as in a rush: each waits on a gate.
    let size = app.state.config.db_pool_size;
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let running = Arc::new(AtomicU32::new(0));
    let held: Vec<_> = (0..size)
        .map(|_| {
            let (db, gate, running) = (app.db.clone(), gate.clone(), running.clone());
            tokio::spawn(async move {
                db.run(move |_conn| {
                    running.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv();
                    Ok::<(), Infallible>(())
                })
                .await
                .unwrap();
            })
        })
        .collect();
    eventually(
        Duration::from_secs(20),
        "every connection taken",
        || async { (running.load(Ordering::SeqCst) == size).then_some(()) },
    )
    .await;

    // The answer of the probe before may be reused for a moment.
    let (status, body) = eventually(Duration::from_secs(20), "a busy probe", || async {
        let (status, body) = health(&app).await;
        assert_eq!(status, 200, "the instance still serves: {body}");
        (body["database"]["state"] == "busy").then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "the instance still serves: {body}");
    assert_eq!(body["status"], "busy");
    assert_eq!(body["database"]["state"], "busy");
    assert_eq!(body["database"]["backend"], app.backend().as_str());
    assert_eq!(body["database"]["connections"], size);
    assert_eq!(body["database"]["idle"], 0);

    drop(open);
    for h in held {
        h.await.unwrap();
    }
    eventually(Duration::from_secs(20), "up again", || async {
        let (status, body) = health(&app).await;
        (status == 200 && body["database"]["state"] == "up").then_some(())
    })
    .await;
}
