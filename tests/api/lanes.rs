//! The pharmacy counter's lane (`db::lane`): with every database permit the
//! public may hold taken by slow work, the counter's pages still answer at
//! once, while a citizen's page waits and gets the 503 page; once the crowd's
//! work is done the citizen is served again.

use std::sync::mpsc;
use std::time::Duration;

use mask_reservation::accounts::Role;
use mask_reservation::db::lane;

use crate::common::{Spawn, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_is_served_while_the_crowd_holds_every_public_permit() {
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(|c| c.db_timeout = Duration::from_secs(1))),
        ..Spawn::at(seoul(tuesday(), 8, 0))
    })
    .await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::supply(&app.db, store, tuesday(), 30);
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let citizen = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
    assert_eq!(citizen.get("/reservations").await.status(), 200);

    // The crowd: slow reads holding every permit the public lane may hold.
    let pool = app.state.config.db_pool_size as usize;
    let public = pool - lane::reserved_for_counter(pool);
    assert!(public < pool);
    let (started_tx, started) = mpsc::channel();
    let mut releases = Vec::new();
    for _ in 0..public {
        let (release, held) = mpsc::channel::<()>();
        releases.push(release);
        let (db, started_tx) = (app.db.clone(), started_tx.clone());
        tokio::spawn(async move {
            // Its caller gives up at the deadline; the work goes on holding
            // its permit until released.
            let _ = db
                .run(move |_conn| {
                    started_tx.send(()).unwrap();
                    let _ = held.recv_timeout(Duration::from_secs(60));
                    Ok::<_, std::convert::Infallible>(())
                })
                .await;
        });
    }
    for _ in 0..public {
        started.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    let counter = pharmacist.get("/pharmacy").await;
    assert_eq!(counter.status(), 200, "{}", counter.text().await.unwrap());
    let scan = pharmacist
        .post_form("/pharmacy/pickup", &[("code", "ZZZZZZZZ")])
        .await;
    assert_eq!(scan.status(), 404, "an unknown code, answered, not a 503");
    assert_eq!(citizen.get("/reservations").await.status(), 503);

    drop(releases);
    let mut status = 0;
    for _ in 0..50 {
        status = citizen.get("/reservations").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the citizen is served again once the crowd is gone"
    );
}
