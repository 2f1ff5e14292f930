//! One table of handover scenarios, run against every form of the handover at
//! the pickup counter (`db::Form::on`) on the backend the suite runs on — on
//! SQLite the step-by-step form, on PostgreSQL that one and the one-statement
//! form, which is the counter page's there — so that the forms give the same
//! answers and cannot drift. Each scenario starts from the same counter
//! (Tuesday 08:00, a store with 30 masks in three windows), goes through the
//! door its form takes (`pickup::confirm_through`), and ends with the
//! invariant check.

use std::sync::Arc;

use chrono::TimeDelta;
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::db::schema::{pickup_windows, reservations, stock_ledger, store_days};
use mask_reservation::db::{Backend, DbError, Form};
use mask_reservation::pharmacy::pickup::{self, Facts, Handover, PickupError, Refusal};
use mask_reservation::policy::Policy;

use crate::common::{assert_invariants, fixtures};
use crate::pharmacy_pickup::{Counter, OTHER_STORE, book, citizen, counter, counters};
use crate::reservations::tuesday;

/// The handover scenarios. Every form must answer each as described at its
/// variant.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// Ten confirmations of one code at once: one hands over, the other nine
    /// are told it was, and the counters move once.
    TenAtOnce,
    /// A code nobody has: unknown, nothing written.
    UnknownCode,
    /// Another store's reservation: which store, nothing written.
    OtherStore,
    /// Tomorrow's reservation: which day, nothing written.
    OtherDay,
    /// Cancelled by the citizen: said so, nothing written.
    Cancelled,
    /// The window closed with its grace period: said when, nothing written.
    TooLate,
    /// The window's counter no longer holds what the reservation took (data
    /// already wrong): refused as inconsistent, and the handover itself is
    /// undone with the rest.
    CountersDoNotHold,
}

const SCENARIOS: [Scenario; 7] = [
    Scenario::TenAtOnce,
    Scenario::UnknownCode,
    Scenario::OtherStore,
    Scenario::OtherDay,
    Scenario::Cancelled,
    Scenario::TooLate,
    Scenario::CountersDoNotHold,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_of_the_handover_answers_every_scenario_alike() {
    let backend = counter(30, 0).await.app.backend();
    assert_eq!(
        Form::on(backend),
        match backend {
            Backend::Sqlite => &[Form::StepByStep][..],
            Backend::Postgres => &[Form::StepByStep, Form::OneStatement][..],
        }
    );
    for form in Form::on(backend) {
        for scenario in SCENARIOS {
            let c = counter(30, 0).await;
            play(&c, *form, scenario).await;
            assert_invariants(&c.app.db);
        }
    }
}

/// Confirms `code` at the counter's store in `form`, as the page does.
async fn confirm(c: &Counter, form: Form, code: &str) -> Result<Facts, PickupError> {
    let policy = Arc::new(Policy::load(&mut c.app.db.get().unwrap()).unwrap());
    let handover = Handover {
        by: c.pharmacist_id,
        store_id: c.store,
        code: code.to_owned(),
        now: c.app.state.clock.now(),
        proxy_checked: false,
    };
    match pickup::confirm_through(&c.app.db, form, handover, policy).await {
        Ok(facts) => Ok(facts),
        Err(DbError::Work(e)) => Err(e),
        Err(e) => panic!("the handover failed: {e:?}"),
    }
}

/// `code` is refused with `refusal` in `form`, and nothing is written.
async fn refused(c: &Counter, form: Form, code: &str, refusal: Refusal) {
    let before = written(c);
    match confirm(c, form, code).await {
        Err(PickupError::Refused(r)) => assert_eq!(r, refusal, "{form:?}"),
        other => panic!("{form:?}: expected {refusal:?}, got {other:?}"),
    }
    assert_eq!(written(c), before, "{form:?}");
}

async fn play(c: &Counter, form: Form, scenario: Scenario) {
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김지수").await;
    match scenario {
        Scenario::TenAtOnce => {
            let (id, code) = book(app, &kim, c.windows[0], 2).await;
            let before = counters(&c.app.db, c.windows[0]);
            let answers = join_all((0..10).map(|_| confirm(c, form, &code))).await;
            let handed: Vec<_> = answers.iter().filter(|a| a.is_ok()).collect();
            assert_eq!(handed.len(), 1, "{form:?}: {answers:?}");
            for a in answers.iter().filter(|a| a.is_err()) {
                assert!(
                    matches!(
                        a,
                        Err(PickupError::Refused(Refusal::AlreadyPickedUp { .. }))
                    ),
                    "{form:?}: {a:?}"
                );
            }
            let (w_res, w_up, d_res, d_up) = before;
            assert_eq!(
                counters(&c.app.db, c.windows[0]),
                (w_res - 2, w_up + 2, d_res - 2, d_up + 2),
                "{form:?}"
            );
            assert_eq!(pickups_in_ledger(c, id), 1, "{form:?}");
        }
        Scenario::UnknownCode => {
            refused(c, form, "ZZZZZZZZ", Refusal::UnknownCode).await;
        }
        Scenario::OtherStore => {
            let other = fixtures::store(&app.db, OTHER_STORE, "남산약국");
            let there = fixtures::supply(&app.db, other, tuesday(), 30);
            let (_, code) = book(app, &kim, there[0], 1).await;
            let store = "남산약국".to_owned();
            refused(c, form, &code, Refusal::OtherStore { store }).await;
        }
        Scenario::OtherDay => {
            let wednesday = tuesday() + TimeDelta::days(1);
            let later = fixtures::supply(&app.db, c.store, wednesday, 30);
            let (_, code) = book(app, &kim, later[0], 1).await;
            refused(c, form, &code, Refusal::OtherDay { day: wednesday }).await;
        }
        Scenario::Cancelled => {
            let (id, code) = book(app, &kim, c.windows[1], 1).await;
            let res = kim
                .post_form(&format!("/reservations/{id}/cancel"), &[])
                .await;
            assert_eq!(res.status(), 303);
            refused(c, form, &code, Refusal::Cancelled).await;
        }
        Scenario::TooLate => {
            let (_, code) = book(app, &kim, c.windows[0], 1).await;
            // 09:00–12:00 is open for pickup until 12:30.
            app.state.clock.advance(TimeDelta::minutes(4 * 60 + 31));
            let closed_at = match confirm(c, form, &code).await {
                Err(PickupError::Refused(Refusal::TooLate { closed_at })) => closed_at,
                other => panic!("{form:?}: expected too late, got {other:?}"),
            };
            refused(c, form, &code, Refusal::TooLate { closed_at }).await;
        }
        Scenario::CountersDoNotHold => {
            let (id, code) = book(app, &kim, c.windows[0], 2).await;
            // The window is made to hold fewer reserved places than the
            // reservation took, and put back for the invariant check.
            let fake_reserved = |reserved: i32| {
                diesel::update(pickup_windows::table.find(c.windows[0]))
                    .set(pickup_windows::reserved.eq(reserved))
                    .execute(&mut app.db.get().unwrap())
                    .unwrap();
            };
            let (reserved, ..) = counters(&c.app.db, c.windows[0]);
            fake_reserved(1);
            let before = written(c);
            match confirm(c, form, &code).await {
                Err(PickupError::Inconsistent(which)) => assert_eq!(which, id, "{form:?}"),
                other => panic!("{form:?}: expected inconsistent, got {other:?}"),
            }
            assert_eq!(written(c), before, "{form:?}");
            fake_reserved(reserved);
        }
    }
}

/// Everything a handover writes: each reservation's status, each window's
/// and store-day's counters, and the ledger's length.
#[derive(Debug, PartialEq)]
struct Written {
    reservations: Vec<(i64, String)>,
    windows: Vec<(i64, i32, i32)>,
    days: Vec<(i64, i32, i32)>,
    ledger: i64,
}

fn written(c: &Counter) -> Written {
    let mut conn = c.app.db.get().unwrap();
    Written {
        reservations: reservations::table
            .order(reservations::id)
            .select((reservations::id, reservations::status))
            .load(&mut conn)
            .unwrap(),
        windows: pickup_windows::table
            .order(pickup_windows::id)
            .select((
                pickup_windows::id,
                pickup_windows::reserved,
                pickup_windows::picked_up,
            ))
            .load(&mut conn)
            .unwrap(),
        days: store_days::table
            .order(store_days::id)
            .select((store_days::id, store_days::reserved, store_days::picked_up))
            .load(&mut conn)
            .unwrap(),
        ledger: stock_ledger::table.count().get_result(&mut conn).unwrap(),
    }
}

fn pickups_in_ledger(c: &Counter, reservation: i64) -> i64 {
    stock_ledger::table
        .filter(stock_ledger::reservation_id.eq(reservation))
        .filter(stock_ledger::kind.eq("pickup"))
        .count()
        .get_result(&mut c.app.db.get().unwrap())
        .unwrap()
}
