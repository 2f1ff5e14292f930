//! Bulk administration beside the rush: a supply file is applied in chunks,
//! each its own transaction, with the bookings queued meanwhile committed
//! between them; a refusal that appears between the file's check and its
//! chunk stops the import there and says what was applied; and a request
//! whose write waits past the database timeout is answered 503 — on SQLite
//! without the write ever happening.

use std::time::Duration;

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use mask_reservation::accounts::{Role, SessionClaim};
use mask_reservation::db::schema::{audit_log, reservations, store_days};
use mask_reservation::db::{Backend, DbError};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::policy::Policy;
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{self, ForWhom, Hold, Request};
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::supply::import::{self, CHUNK, ImportError, SupplyRow};
use mask_reservation::supply::rules::Refusal;

use crate::common::{Spawn, TestApp, assert_invariants, eventually, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};
use crate::writer::stall;

/// Stores `00000001`… `n`, in one transaction; their ids.
fn stores(app: &TestApp, n: usize) -> Vec<i64> {
    let rows: Vec<StoreRow> = (1..=n)
        .map(|i| StoreRow {
            code: format!("{i:08}"),
            name: format!("약국 {i}"),
            addr: format!("서울특별시 중구 세종대로 {i}"),
            store_type: "01".into(),
            lat: 37.56,
            lng: 126.97,
            phone: None,
            region: "서울특별시".into(),
        })
        .collect();
    let mut conn = app.db.get().unwrap();
    mask_reservation::db::write_tx(&mut conn, |tx| insert_all(tx, &rows)).unwrap()
}

/// A supply line for store `i` on Tuesday.
fn line(i: usize, quantity: i32) -> SupplyRow {
    SupplyRow {
        line: i as u64 + 1,
        store_code: format!("{i:08}"),
        day: tuesday(),
        quantity,
    }
}

fn imports_audited(app: &TestApp) -> Vec<serde_json::Value> {
    audit_log::table
        .filter(audit_log::action.eq("supply.import"))
        .select(audit_log::after_json)
        .load::<Option<String>>(&mut app.db.get().unwrap())
        .unwrap()
        .into_iter()
        .map(|a| serde_json::from_str(&a.unwrap()).unwrap())
        .collect()
}

async fn app_at_eight() -> TestApp {
    spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_several_chunks_is_applied_whole_and_audited_once() {
    let app = app_at_eight().await;
    let n = CHUNK * 2 + 1;
    stores(&app, n);
    let rows: Vec<SupplyRow> = (1..=n).map(|i| line(i, 30)).collect();
    let policy = app.state.policy().await.unwrap();
    let now = app.state.clock.now().naive_utc();
    let done = import::import(&app.db, policy.clone(), rows.clone(), Vec::new(), None, now)
        .await
        .unwrap();
    assert_eq!(done.created, n);
    let days: i64 = store_days::table
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(days, n as i64);
    let audited = imports_audited(&app);
    assert_eq!(audited.len(), 1, "one entry for the whole file");
    assert_eq!(audited[0]["rows"], n);
    assert_eq!(audited[0]["created"], n);
    // The same file again: every line unchanged.
    let again = import::import(&app.db, policy, rows, Vec::new(), None, now)
        .await
        .unwrap();
    assert_eq!(again.unchanged, n);
    assert_invariants(&app.db);
}

/// The file passes its check; a booking committed between its first and its
/// second chunk makes the second chunk's line a refusal. The first chunk
/// stays applied, the rest is not, and the answer and the audit say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_appears_after_the_check_stops_the_import_at_its_line() {
    let app = app_at_eight().await;
    if app.backend() != Backend::Sqlite {
        // The interleaving is made with the single writer's queue.
        return;
    }
    let n = CHUNK + 1;
    let ids = stores(&app, n);
    // The last line, in the second chunk, lowers this store-day to 0: allowed
    // when the file is checked, nothing being reserved yet.
    let windows = fixtures::supply(&app.db, ids[n - 1], tuesday(), 6);
    let citizen = fixtures::user(
        &app.db,
        Role::Citizen,
        "c@example.com",
        None,
        true,
        &app.state.keys.national_id,
    );
    let mut rows: Vec<SupplyRow> = (1..n).map(|i| line(i, 30)).collect();
    rows.push(line(n, 0));
    let policy = app.state.policy().await.unwrap();
    let now = app.state.clock.now().naive_utc();

    let held = stall(&app.db).await.unwrap();
    let importing = {
        let (db, policy) = (app.db.clone(), policy.clone());
        tokio::spawn(async move { import::import(&db, policy, rows, Vec::new(), None, now).await })
    };
    // The first chunk waits behind the held write; the booking queues after it.
    eventually(
        Duration::from_secs(20),
        "the first chunk queued",
        || async { (app.db.write_queue_len() >= 1).then_some(()) },
    )
    .await;
    let booking = {
        let db = app.db.clone();
        let policy: Policy = (*policy).clone();
        let t = Tr::new(app.state.catalog.clone(), Lang::En);
        let req = Request {
            user_id: citizen,
            window_id: windows[0],
            quantity: Quantity::ONE,
            request_id: Some("between-chunks".into()),
            person: ForWhom::Own,
            now: seoul(tuesday(), 8, 0),
            session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
            hold: Hold::Booking,
        };
        tokio::spawn(async move {
            db.write(move |tx| booking::book(tx, &req, &policy, &t, "https://m.example"))
                .await
        })
    };
    eventually(Duration::from_secs(20), "the booking queued", || async {
        (app.db.write_queue_len() >= 2).then_some(())
    })
    .await;
    let (open, holder) = held;
    open.send(()).unwrap();
    holder.await.unwrap();
    booking.await.unwrap().unwrap();

    match importing.await.unwrap() {
        Err(DbError::Work(ImportError::Refused {
            line,
            refusal,
            applied,
            ..
        })) => {
            assert_eq!(line, n as u64 + 1);
            assert_eq!(
                refusal,
                Refusal::SupplyBelowTaken {
                    taken: 1,
                    quantity: 0
                }
            );
            assert_eq!(applied.created, CHUNK, "the first chunk is applied");
        }
        other => panic!("expected a refusal at the last line, got {other:?}"),
    }
    let supply: i32 = store_days::table
        .filter(store_days::store_id.eq(ids[n - 1]))
        .select(store_days::supply)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(supply, 6, "the refused line changed nothing");
    let audited = imports_audited(&app);
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["created"], CHUNK);
    assert_eq!(audited[0]["stopped_at_line"], n + 1);
    assert_invariants(&app.db);
}

/// A booking whose write waits past `DB_TIMEOUT` gets the 503 page that asks
/// to try again; on SQLite the write, not yet begun, never happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_that_waits_past_the_database_timeout_is_answered_503() {
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(|c| c.db_timeout = Duration::from_millis(500))),
        ..Spawn::at(seoul(tuesday(), 8, 0))
    })
    .await;
    if app.backend() != Backend::Sqlite {
        // On PostgreSQL a write is not queued: it waits on the rows it needs,
        // and once begun it cannot be called back.
        return;
    }
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 30);
    let v = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
    let held = stall(&app.db).await.unwrap();
    let res = v
        .post_form(
            "/reservations",
            &[
                ("window_id", &windows[0].to_string()),
                ("quantity", "1"),
                ("request_id", "too-late"),
            ],
        )
        .await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let (open, holder) = held;
    open.send(()).unwrap();
    holder.await.unwrap();
    // The writer has moved on past where the booking was queued.
    app.db.write(|_tx| Ok::<_, DieselError>(())).await.unwrap();
    let booked: i64 = reservations::table
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(booked, 0, "the abandoned booking was not written");
    assert_invariants(&app.db);
}
