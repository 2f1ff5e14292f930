//! `/healthz` tells `up` from `busy` from `down`, and never waits for the write
//! lock: a database that is writing hard, or an instance whose connections are
//! all in use, still answers 200. The public hears only the status; the
//! details are for whoever may read `/metrics`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use mask_reservation::config::MetricsToken;
use mask_reservation::db::{Backend, DatabaseUrl, lane};
use serde_json::json;

use crate::common::{Spawn, TestApp, eventually, spawn_app, spawn_app_with};

const TOKEN: &str = "health-scraper-token-0123";

/// `GET /healthz` with these headers: the status and the body.
async fn health_with(app: &TestApp, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut req = app.client.get(app.url("/healthz"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// No address may read `/metrics` without the token.
fn token_only(config: &mut mask_reservation::config::Config) {
    config.metrics_allow = Vec::new();
    config.metrics_token = Some(MetricsToken::parse(TOKEN).unwrap());
}

#[tokio::test]
async fn the_public_hears_only_the_status_and_the_operator_the_details() {
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(token_only)),
        ..Spawn::default()
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    for anyone in [
        &[][..],
        &[("Authorization", "Bearer not-the-token")][..],
        &[("X-Forwarded-For", "127.0.0.1")][..],
    ] {
        let (status, body) = health_with(&app, anyone).await;
        assert_eq!(
            (status, &body),
            (200, &json!({ "status": "ok" })),
            "{anyone:?}"
        );
    }
    let (status, body) = health_with(&app, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"]["backend"], app.backend().as_str());
    assert_eq!(body["database"]["state"], "up");
    assert!(body["database"]["connections"].is_u64(), "{body}");
    assert!(body["database"]["idle"].is_u64(), "{body}");

    // The page for people says how things are, not what runs them.
    for lang in ["ko", "en"] {
        let res = app.get_with_lang("/status", lang).await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap().to_lowercase();
        assert!(page.contains("data-status=\"up\""), "{page}");
        for detail in [
            "sqlite",
            "postgres",
            "backend",
            "connections",
            "idle",
            "pool",
        ] {
            assert!(
                !page.contains(detail),
                "{lang}: `{detail}` on /status:\n{page}"
            );
        }
    }
}

#[tokio::test]
async fn while_the_database_is_unreachable_the_public_hears_503_and_only_the_status() {
    // A database file under a plain file: it can never be opened.
    let file = tempfile::NamedTempFile::new().unwrap();
    let missing = file.path().join("db/mask.db");
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(move |c| {
            c.database_url =
                DatabaseUrl::parse(&format!("sqlite://{}", missing.display())).unwrap();
        })),
        ..Spawn::default()
    })
    .await;
    let (status, body) = health_with(&app, &[("X-Forwarded-For", "198.51.100.7")]).await;
    assert_eq!((status, &body), (503, &json!({ "status": "unavailable" })));
    // From loopback, an address of `METRICS_ALLOW`: the details.
    let (status, body) = health_with(&app, &[]).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"]["state"], "down");
}

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
    // The crowd may hold all but the counter's share (`db::lane`); the
    // counters hold the rest.
    let size = app.state.config.db_pool_size;
    let public = size - lane::reserved_for_counter(size as usize) as u32;
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let running = Arc::new(AtomicU32::new(0));
    let held: Vec<_> = (0..size)
        .map(|i| {
            let (db, gate, running) = (app.db.clone(), gate.clone(), running.clone());
            tokio::spawn(async move {
                let hold = db.run(move |_conn| {
                    running.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv();
                    Ok::<(), Infallible>(())
                });
                if i < public {
                    hold.await.unwrap();
                } else {
                    lane::counter(hold).await.unwrap();
                }
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

/// On SQLite, a write that waits for the one writer longer than a second makes
/// the instance `busy`: reads are fine, bookings queue (a long bulk write, a
/// slow disk). Once the writer catches up it is `up` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_busy_while_writes_wait_for_the_sqlite_writer() {
    use diesel::result::Error as DieselError;

    let app = spawn_app().await;
    if app.backend() != Backend::Sqlite {
        return;
    }
    let (open, held) = crate::writer::stall(&app.db).await.unwrap();
    let queued = {
        let db = app.db.clone();
        tokio::spawn(async move { db.write(|_tx| Ok::<_, DieselError>(())).await })
    };
    let body = eventually(Duration::from_secs(20), "a busy probe", || async {
        let (status, body) = health(&app).await;
        assert_eq!(status, 200, "the instance still serves: {body}");
        (body["status"] == "busy").then_some(body)
    })
    .await;
    assert_eq!(body["database"]["state"], "busy");
    open.send(()).unwrap();
    held.await.unwrap();
    queued.await.unwrap().unwrap();
    eventually(Duration::from_secs(20), "up again", || async {
        let (_, body) = health(&app).await;
        (body["status"] == "ok").then_some(())
    })
    .await;
}
