//! The booking function itself, called as the pages call it (`book_through`), on
//! both backends: a refusal at each of its conditional writes leaves nothing
//! written, many bookings of one window at once never oversell and each
//! refusal names the windows still open, the confirmation mail's outbox row
//! is the one `enqueue` writes, and on PostgreSQL the sequence its reservation
//! ids are drawn from is the table's own.

use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::InstrumentationEvent;
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::national_id::NationalId;
use mask_reservation::accounts::password::{NewPassword, hash};
use mask_reservation::accounts::queries::{NewUser, find_or_insert_person, insert_user};
use mask_reservation::accounts::{Role, SessionClaim};
use mask_reservation::db::schema::{
    mail_outbox, pickup_windows, quota_usage, reservations, stock_ledger, store_days,
};
use mask_reservation::db::{Backend, DbConnection, DbError, write_statements, write_tx};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::mail::outbox::{OutgoingMail, enqueue};
use mask_reservation::policy::Policy;
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{
    self, BookError, Booked, ForWhom, Form, Hold, Request,
};
use mask_reservation::reservations::rules::{OpenWindow, Refusal};

use crate::common::{TestApp, assert_invariants, fixtures};
use crate::reservations::{seoul, tuesday};

/// The app, a store with `supply` on Tuesday (three windows) and the windows.
pub async fn app_with_supply(supply: i32) -> (TestApp, Vec<i64>) {
    let app = crate::common::spawn_app().await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply_in_windows(&app.db, store, tuesday(), supply);
    (app, windows)
}

/// `n` verified citizens in one transaction with one password hash; their ids.
pub fn citizens(app: &TestApp, prefix: &str, n: usize) -> Vec<i64> {
    let password_hash = hash(&NewPassword::parse(fixtures::PASSWORD).unwrap()).unwrap();
    let key = app.state.keys.national_id.clone();
    let today = chrono::Utc::now().date_naive();
    let ids: Vec<NationalId> = (0..n)
        .map(|_| NationalId::parse(&fixtures::unique_national_id(), today).unwrap())
        .collect();
    let mut conn = app.db.get().unwrap();
    write_tx(&mut conn, |tx| {
        let mut users = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let person =
                find_or_insert_person(tx, &id.keyed_hash(&key), id.birth_date(), &id.masked())?;
            users.push(insert_user(
                tx,
                &NewUser {
                    role: Role::Citizen,
                    email: &format!("{prefix}{i}@example.com"),
                    name: "시민",
                    password_hash: &password_hash,
                    person_id: Some(person),
                    store_id: None,
                    email_verified: true,
                },
            )?);
        }
        Ok::<_, diesel::result::Error>(users)
    })
    .unwrap()
}

/// Books through `book_through` at 08:00 on Tuesday, as the page does; a refusal
/// comes back as the value, any other failure fails the test.
async fn book(
    app: &TestApp,
    user_id: i64,
    window_id: i64,
    quantity: i32,
) -> Result<Booked, Refusal> {
    let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
    let t = Tr::new(app.state.catalog.clone(), Lang::En);
    let req = Request {
        user_id,
        window_id,
        quantity: Quantity::new(quantity).unwrap(),
        request_id: Some(mask_reservation::random::token()),
        person: ForWhom::Own,
        now: seoul(tuesday(), 8, 0),
        session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
        hold: Hold::Booking,
    };
    let (form, base_url) = (Form::of(app.backend()), "https://masks.example".to_owned());
    match booking::book_through(&app.db, form, req, Arc::new(policy), t, base_url).await {
        Ok(booked) => Ok(booked),
        Err(DbError::Work(BookError::Refused(r))) => Err(r),
        Err(e) => panic!("booking failed: {e:?}"),
    }
}

/// Everything a booking writes.
#[derive(Debug, PartialEq)]
pub struct Written {
    quota: Vec<(i64, NaiveDate, i32)>,
    windows: Vec<(i64, i32)>,
    days: Vec<(i64, i32, NaiveDateTime)>,
    reservations: i64,
    ledger: i64,
    outbox: i64,
}

pub fn written(app: &TestApp) -> Written {
    let mut conn = app.db.get().unwrap();
    Written {
        quota: quota_usage::table
            .order((quota_usage::person_id, quota_usage::period_start))
            .load(&mut conn)
            .unwrap(),
        windows: pickup_windows::table
            .order(pickup_windows::id)
            .select((pickup_windows::id, pickup_windows::reserved))
            .load(&mut conn)
            .unwrap(),
        days: store_days::table
            .order(store_days::id)
            .select((
                store_days::id,
                store_days::reserved,
                store_days::stock_changed_at,
            ))
            .load(&mut conn)
            .unwrap(),
        reservations: reservations::table.count().get_result(&mut conn).unwrap(),
        ledger: stock_ledger::table.count().get_result(&mut conn).unwrap(),
        outbox: mail_outbox::table.count().get_result(&mut conn).unwrap(),
    }
}

/// The windows other than `except` that still have room, with their room, as
/// a full window's refusal lists them.
pub fn open_besides(app: &TestApp, windows: &[i64], except: i64) -> Vec<OpenWindow> {
    let mut conn = app.db.get().unwrap();
    windows
        .iter()
        .filter(|w| **w != except)
        .map(|w| {
            let (starts_at, ends_at, capacity, reserved): (NaiveDateTime, NaiveDateTime, i32, i32) =
                pickup_windows::table
                    .find(w)
                    .select((
                        pickup_windows::starts_at,
                        pickup_windows::ends_at,
                        pickup_windows::capacity,
                        pickup_windows::reserved,
                    ))
                    .first(&mut conn)
                    .unwrap();
            OpenWindow {
                id: *w,
                starts_at,
                ends_at,
                remaining: capacity - reserved,
            }
        })
        .filter(|w| w.remaining > 0)
        .collect()
}

#[tokio::test]
async fn a_refusal_at_each_conditional_write_leaves_nothing_written() {
    let (app, windows) = app_with_supply(6).await;
    let users = citizens(&app, "step", 3);

    // The quota, the first step: two taken already, one more refused.
    book(&app, users[0], windows[1], 2).await.unwrap();
    let before = written(&app);
    assert_eq!(
        book(&app, users[0], windows[0], 1).await,
        Err(Refusal::QuotaExceeded { left: 0 })
    );
    assert_eq!(written(&app), before);

    // The window, after the quota was taken: full, the quota given back.
    book(&app, users[1], windows[0], 2).await.unwrap();
    let before = written(&app);
    assert_eq!(
        book(&app, users[2], windows[0], 1).await,
        Err(Refusal::WindowFull {
            open: open_besides(&app, &windows, windows[0])
        })
    );
    assert_eq!(written(&app), before, "the quota's take was rolled back");

    // The store-day, after the quota and the window: its own check, which
    // the windows' capacities normally keep out of reach; here its supply is
    // made to look used up.
    let mut conn = app.db.get().unwrap();
    diesel::update(store_days::table)
        .set(store_days::reserved.eq(store_days::supply))
        .execute(&mut conn)
        .unwrap();
    let before = written(&app);
    assert_eq!(
        book(&app, users[2], windows[2], 1).await,
        Err(Refusal::SoldOut)
    );
    assert_eq!(
        written(&app),
        before,
        "the quota's and the window's takes were rolled back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_bookings_of_one_window_at_once_never_oversell_and_each_refusal_names_the_open_windows()
 {
    // 30 over three windows: 10 each; 40 citizens for the first.
    let (app, windows) = app_with_supply(30).await;
    let users = citizens(&app, "rush", 40);
    let open = open_besides(&app, &windows, windows[0]);
    let answers = join_all(users.iter().map(|u| book(&app, *u, windows[0], 1))).await;
    let booked = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(booked, 10);
    for refusal in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(refusal, &Refusal::WindowFull { open: open.clone() });
    }
    let after = written(&app);
    assert_eq!(after.reservations, 10);
    let mut conn = app.db.get().unwrap();
    let booking_rows: i64 = stock_ledger::table
        .filter(stock_ledger::kind.eq("reservation"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(booking_rows, 10);
    assert_eq!(after.outbox, 10);
    assert_eq!(after.quota.len(), 10, "only the booked took their quota");
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_confirmation_is_queued_as_enqueue_queues_a_mail() {
    let (app, windows) = app_with_supply(30).await;
    let user = citizens(&app, "mail", 1)[0];
    let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
    let t = Tr::new(app.state.catalog.clone(), Lang::En);
    let req = Request {
        user_id: user,
        window_id: windows[0],
        quantity: Quantity::ONE,
        request_id: None,
        person: ForWhom::Own,
        now: seoul(tuesday(), 8, 0),
        session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
        hold: Hold::Booking,
    };
    type Shape = (
        String,
        String,
        i32,
        Option<String>,
        Option<String>,
        Option<NaiveDateTime>,
        NaiveDateTime,
        NaiveDateTime,
    );
    // Booked, queued and read in one transaction: the app's running mail
    // sender cannot claim either message in between.
    let mut conn = app.db.get().unwrap();
    let (booked, rows) = write_tx(&mut conn, |tx| -> Result<_, BookError> {
        let booked = booking::book(tx, &req, &policy, &t, "https://masks.example")?;
        enqueue(
            tx,
            &OutgoingMail {
                to: "other@example.com",
                kind: "reservation_confirmed",
                subject: "s",
                body_text: "b",
            },
        )?;
        let rows: Vec<(String, String, Shape)> = mail_outbox::table
            .order(mail_outbox::id)
            .select((
                mail_outbox::subject,
                mail_outbox::body_text,
                (
                    mail_outbox::kind,
                    mail_outbox::status,
                    mail_outbox::attempts,
                    mail_outbox::body_html,
                    mail_outbox::last_error,
                    mail_outbox::sent_at,
                    mail_outbox::next_attempt_at,
                    mail_outbox::created_at,
                ),
            ))
            .load(tx.conn())?;
        Ok((booked, rows))
    })
    .unwrap();
    let [(subject, body, booking), (_, _, enqueued)] = &rows[..] else {
        panic!("two mails: {rows:?}");
    };
    let shape = |s: &Shape| (s.0.clone(), s.1.clone(), s.2, s.3.clone(), s.4.clone(), s.5);
    assert_eq!(shape(booking), shape(enqueued));
    assert_eq!(booking.6, booking.7, "due when queued");
    assert!(
        booking.6 <= enqueued.6,
        "due at once, not at the booking's clock"
    );
    assert!(subject.contains("중앙약국"), "{subject}");
    let code = &booked.pickup_code;
    assert!(
        body.contains(&format!("{}-{}", &code[..4], &code[4..])),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "https://masks.example/reservations/{}",
            booked.reservation_id
        )),
        "{body}"
    );
}

#[tokio::test]
async fn reservation_ids_are_drawn_from_the_tables_own_sequence() {
    let (app, windows) = app_with_supply(30).await;
    if app.backend() != Backend::Postgres {
        // Only PostgreSQL books with an id allocated beforehand.
        return;
    }
    #[derive(QueryableByName)]
    struct Sequence {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = app.db.get().unwrap();
    let seq: Sequence =
        diesel::sql_query("SELECT pg_get_serial_sequence('reservations', 'id') AS name")
            .get_result(&mut conn)
            .unwrap();
    assert_eq!(
        seq.name,
        format!("public.{}", booking::RESERVATION_ID_SEQUENCE)
    );
    // And a reservation inserted the ordinary way afterwards does not collide.
    let users = citizens(&app, "seq", 2);
    let first = book(&app, users[0], windows[0], 1).await.unwrap();
    let other = fixtures::reservation(&app.db, windows[1], users[1], 1);
    assert!(other > first.reservation_id);
    assert_invariants(&app.db);
}

/// On PostgreSQL, a booking through its door is two statements and no
/// transaction around them: the read of its facts, then the one statement
/// that writes, which is a transaction of its own. Each connection prepares
/// the two once.
#[tokio::test]
async fn on_postgresql_a_booking_is_two_statements_without_a_transaction_prepared_once() {
    let (app, windows) = app_with_supply(30).await;
    if app.backend() != Backend::Postgres {
        return;
    }
    let users = citizens(&app, "prep", 3);
    let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
    let t = Tr::new(app.state.catalog.clone(), Lang::Ko);
    let mut conn = app.db.get().unwrap();
    let statements = Arc::new(Mutex::new(Vec::<String>::new()));
    let DbConnection::Postgres(pg) = &mut *conn else {
        unreachable!("a PostgreSQL app hands out PostgreSQL connections");
    };
    let seen = statements.clone();
    pg.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            seen.lock().unwrap().push(query.to_string());
        }
    });
    for user_id in users {
        let req = Request {
            user_id,
            window_id: windows[0],
            quantity: Quantity::ONE,
            request_id: None,
            person: ForWhom::Own,
            now: seoul(tuesday(), 8, 0),
            session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
            hold: Hold::Booking,
        };
        write_statements(&mut conn, |tx| {
            booking::book(tx, &req, &policy, &t, "https://masks.example")
        })
        .unwrap();
        let sent: Vec<String> = std::mem::take(&mut *statements.lock().unwrap());
        assert_eq!(sent.len(), 2, "{sent:#?}");
        assert!(sent[0].starts_with("SELECT r.id AS replay_id"), "{sent:#?}");
        assert!(sent[1].starts_with("WITH taken AS ("), "{sent:#?}");
    }
    if let DbConnection::Postgres(pg) = &mut *conn {
        pg.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    }
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        facts: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        writes: i64,
    }
    let prepared: Prepared = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE statement LIKE 'SELECT r.id AS replay_id%') AS facts, \
                count(*) FILTER (WHERE statement LIKE 'WITH taken AS (%') AS writes \
         FROM pg_prepared_statements",
    )
    .get_result(&mut *conn)
    .unwrap();
    assert_eq!(
        prepared,
        Prepared {
            facts: 1,
            writes: 1
        }
    );
}
