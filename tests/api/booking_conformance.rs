//! One table of booking scenarios, run against every form of the booking
//! (`booking::Form::on`) on the backend the suite runs on — on SQLite the
//! step-by-step form, on PostgreSQL that one and the one-statement form —
//! so that the forms give the same answers and cannot drift. A new form of
//! the booking joins `Form::on` and is held to this table. The set form
//! (`booking::book_many`, a draw's), given a set of one, is held to every
//! scenario but the double posts: its requests carry no request id.
//!
//! Each scenario starts from the same store-day (Tuesday, 6 masks: three
//! windows of 2) and ends with the invariant check. The double posts run
//! twice: as a burst of identical posts, and as one exact interleaving — the
//! second post starts while the first holds its rows uncommitted (on
//! PostgreSQL it is seen waiting on a lock before the first commits), so it
//! meets the first's takes, not its reservation.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::SessionClaim;
use mask_reservation::accounts::email::DisplayName;
use mask_reservation::accounts::national_id::NationalId;
use mask_reservation::db::schema::{
    dependants, quota_usage, reservations, settings, store_days, stores,
};
use mask_reservation::db::{Backend, DbConnection, DbError, write_tx};
use mask_reservation::dependants::service::{self, NewDependant};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::policy::Policy;
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{
    self, BookError, Booked, ForWhom, Form, Hold, Request,
};
use mask_reservation::reservations::rules::Refusal;

use crate::booking_steps::{app_with_supply, citizens, open_besides, written};
use crate::common::{TestApp, assert_invariants, fixtures};
use crate::reservations::{seoul, tuesday};

/// What a booking answered, as the scenarios compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Booked { id: i64, replayed: bool },
    Refused(Refusal),
    SessionEnded,
}

impl Answer {
    fn of(result: Result<Booked, BookError>) -> Answer {
        match result {
            Ok(b) => Answer::Booked {
                id: b.reservation_id,
                replayed: b.replayed,
            },
            Err(BookError::Refused(r)) => Answer::Refused(r),
            Err(BookError::SessionEnded) => Answer::SessionEnded,
            Err(e) => panic!("booking failed: {e:?}"),
        }
    }

    fn booked_id(&self) -> i64 {
        match self {
            Answer::Booked { id, .. } => *id,
            other => panic!("expected a reservation, got {other:?}"),
        }
    }
}

/// The booking scenarios. Every form must answer each as described at its
/// variant.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// The same form (one request id) posted again and again at once, asking
    /// for the whole quota: one reservation, and every post answers it.
    DoublePostAtFullQuota,
    /// The same, asking for a whole window (the quota is larger): one
    /// reservation, and every post answers it.
    DoublePostAtFullWindow,
    /// One citizen, many forms at once, one mask each: the quota's worth is
    /// booked, the rest refused with nothing left.
    QuotaRace,
    /// Many citizens, one window: its capacity is booked, the rest refused
    /// with the windows still open.
    WindowRace,
    /// The login behind the request has ended (a password reset since).
    SessionEnded,
    /// The rotation rule is on and Tuesday is not the citizen's day.
    RotationDay,
    /// The window is beyond the booking horizon at the time of the request.
    Horizon,
    /// The window's booking has closed (30 minutes before its end).
    ClosedWindow,
    /// An administrator stopped sales at the store.
    StoppedSales,
    /// The store-day's supply is used up although the window has room.
    SoldOut,
    /// For a dependant (a child born in 2012, whose day Tuesday is, unlike
    /// the citizen's): booked with the child's day and quota, the link named;
    /// the child's quota spent next; refused as unknown for another account
    /// or a link that does not exist, nothing written.
    ForADependant,
}

const SCENARIOS: [Scenario; 11] = [
    Scenario::DoublePostAtFullQuota,
    Scenario::DoublePostAtFullWindow,
    Scenario::QuotaRace,
    Scenario::WindowRace,
    Scenario::SessionEnded,
    Scenario::RotationDay,
    Scenario::Horizon,
    Scenario::ClosedWindow,
    Scenario::StoppedSales,
    Scenario::SoldOut,
    Scenario::ForADependant,
];

/// How many identical posts a burst sends.
const BURST: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_of_the_booking_answers_every_scenario_alike() {
    let backend = app_with_supply(6).await.0.backend();
    let doors = Form::on(backend).iter().map(|f| Door::Form(*f));
    for door in doors.chain([Door::Set]) {
        for scenario in SCENARIOS {
            if door == Door::Set && scenario.replays() {
                continue;
            }
            let scene = Scene::new(door).await;
            scene.play(scenario).await;
            assert_invariants(&scene.app.db);
        }
    }
}

/// A way into the booking: one of its forms, or the set form with a set of
/// one request (its request id dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Form(Form),
    Set,
}

impl Scenario {
    /// Whether the scenario is about a request id answered again.
    fn replays(self) -> bool {
        matches!(
            self,
            Scenario::DoublePostAtFullQuota | Scenario::DoublePostAtFullWindow
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_that_does_not_fit_whole_is_refused_whole_and_one_that_fits_is_booked_whole() {
    let (app, windows) = app_with_supply(6).await;
    let users = citizens(&app, "s", 3);
    let policy = Arc::new(Policy::load(&mut app.db.get().unwrap()).unwrap());
    let t = Tr::new(app.state.catalog.clone(), Lang::En);
    let ask = |user: i64, window: i64, quantity: i32| {
        let req = Request {
            user_id: user,
            window_id: window,
            quantity: Quantity::new(quantity).unwrap(),
            request_id: None,
            person: ForWhom::Own,
            now: seoul(tuesday(), 8, 0),
            session: None,
            hold: Hold::Booking,
        };
        (req, t.clone())
    };
    let book_set = |asks: Vec<(Request, Tr)>| {
        let policy = policy.clone();
        app.db.write(move |tx| {
            let facts = booking::Facts::load(tx, &policy, asks.iter().map(|(r, _)| r))?;
            booking::book_many(tx, &facts, &asks, &policy, "https://m.example")
        })
    };
    // Three masks in a window of two (three windows of two masks each):
    // nothing of the set is written.
    let before = written(&app);
    let too_many = vec![
        ask(users[0], windows[0], 1),
        ask(users[1], windows[0], 1),
        ask(users[2], windows[0], 1),
    ];
    match book_set(too_many).await {
        Err(DbError::Work(BookError::NotAll)) => {}
        other => panic!("a set over a window's room was answered {other:?}"),
    }
    assert_eq!(written(&app), before);
    // A set over two windows that fits: each booked, each with its own
    // reservation, ledger row and mail.
    let fits = vec![
        ask(users[0], windows[0], 2),
        ask(users[1], windows[1], 1),
        ask(users[2], windows[1], 1),
    ];
    let booked = book_set(fits).await.unwrap();
    assert_eq!(booked.len(), 3);
    let mut conn = app.db.get().unwrap();
    for (b, (user, window, quantity)) in booked.iter().zip([
        (users[0], windows[0], 2),
        (users[1], windows[1], 1),
        (users[2], windows[1], 1),
    ]) {
        let row: (i64, i64, i32, String) = reservations::table
            .find(b.reservation_id)
            .select((
                reservations::user_id,
                reservations::window_id,
                reservations::quantity,
                reservations::pickup_code,
            ))
            .first(&mut conn)
            .unwrap();
        assert_eq!(row, (user, window, quantity, b.pickup_code.clone()));
    }
    let used: Vec<i32> = quota_usage::table
        .order(quota_usage::person_id)
        .select(quota_usage::used)
        .load(&mut conn)
        .unwrap();
    assert_eq!(used, vec![2, 1, 1]);
    assert_invariants(&app.db);
}

#[test]
fn postgresql_runs_both_forms_and_sqlite_its_own() {
    assert_eq!(Form::on(Backend::Sqlite), &[Form::StepByStep]);
    assert_eq!(
        Form::on(Backend::Postgres),
        &[Form::StepByStep, Form::OneStatement]
    );
}

struct Scene {
    app: TestApp,
    form: Door,
    windows: Vec<i64>,
}

impl Scene {
    async fn new(form: Door) -> Scene {
        let (app, windows) = app_with_supply(6).await;
        Scene { app, form, windows }
    }

    fn request(&self, user_id: i64, window_id: i64, quantity: i32, request_id: &str) -> Request {
        Request {
            user_id,
            window_id,
            quantity: Quantity::new(quantity).unwrap(),
            request_id: Some(request_id.to_owned()),
            person: ForWhom::Own,
            now: seoul(tuesday(), 8, 0),
            session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
            hold: Hold::Booking,
        }
    }

    fn policy(&self) -> Policy {
        Policy::load(&mut self.app.db.get().unwrap()).unwrap()
    }

    fn set(&self, key: &str, value: &str) {
        diesel::update(settings::table.find(key))
            .set(settings::value.eq(value))
            .execute(&mut self.app.db.get().unwrap())
            .unwrap();
    }

    /// Books `req` in this scene's form, through the door the pages use for
    /// it (the one-statement form without an explicit transaction).
    async fn book(&self, req: Request) -> Answer {
        let policy = Arc::new(self.policy());
        let t = Tr::new(self.app.state.catalog.clone(), Lang::En);
        let base_url = "https://m.example".to_owned();
        let result = match self.form {
            Door::Form(form) => {
                booking::book_through(&self.app.db, form, req, policy, t, base_url).await
            }
            Door::Set => {
                let asks = [(
                    Request {
                        request_id: None,
                        ..req
                    },
                    t,
                )];
                self.app
                    .db
                    .write(move |tx| {
                        let facts = booking::Facts::load(tx, &policy, asks.iter().map(|(r, _)| r))?;
                        booking::book_many(tx, &facts, &asks, &policy, &base_url)
                            .map(|mut booked| booked.remove(0))
                    })
                    .await
            }
        };
        match result {
            Ok(b) => Answer::of(Ok(b)),
            Err(DbError::Work(e)) => Answer::of(Err(e)),
            Err(e) => panic!("booking failed: {e:?}"),
        }
    }

    async fn play(&self, scenario: Scenario) {
        let user = citizens(&self.app, "c", 1)[0];
        let w = self.windows[0];
        match scenario {
            Scenario::DoublePostAtFullQuota => {
                self.burst_of_one_form(self.request(user, w, 2, "full-quota"))
                    .await;
                let second = citizens(&self.app, "d", 1)[0];
                self.interleaved(self.request(second, self.windows[1], 2, "held"));
            }
            Scenario::DoublePostAtFullWindow => {
                self.set("quota_per_period", "6");
                self.burst_of_one_form(self.request(user, w, 2, "full-window"))
                    .await;
                // The same citizen again, for the next window: the second
                // post's quota take passes once the first commits, its
                // window take does not.
                self.interleaved(self.request(user, self.windows[1], 2, "held"));
            }
            Scenario::QuotaRace => {
                self.set("quota_per_period", "2");
                let answers = join_all((0..6).map(|i| {
                    let window = self.windows[i % 3];
                    self.book(self.request(user, window, 1, &format!("r{i}")))
                }))
                .await;
                let refused: Vec<_> = answers
                    .iter()
                    .filter(|a| !matches!(a, Answer::Booked { .. }))
                    .collect();
                assert_eq!(
                    refused.len(),
                    4,
                    "{scenario:?} {:?}: {answers:?}",
                    self.form
                );
                for a in refused {
                    assert_eq!(a, &Answer::Refused(Refusal::QuotaExceeded { left: 0 }));
                }
                assert_eq!(self.reservations(), 2);
            }
            Scenario::WindowRace => {
                let users = citizens(&self.app, "w", 6);
                let open = open_besides(&self.app, &self.windows, w);
                let answers = join_all(
                    users
                        .iter()
                        .map(|u| self.book(self.request(*u, w, 1, &format!("w{u}")))),
                )
                .await;
                let booked = answers
                    .iter()
                    .filter(|a| matches!(a, Answer::Booked { .. }))
                    .count();
                assert_eq!(booked, 2, "{scenario:?} {:?}: {answers:?}", self.form);
                for a in answers
                    .iter()
                    .filter(|a| !matches!(a, Answer::Booked { .. }))
                {
                    assert_eq!(
                        a,
                        &Answer::Refused(Refusal::WindowFull { open: open.clone() })
                    );
                }
            }
            Scenario::SessionEnded => {
                let before = written(&self.app);
                let mut req = self.request(user, w, 1, "ended");
                req.session = Some(SessionClaim {
                    epoch: 1,
                    ..SessionClaim::FIRST_CITIZEN_LOGIN
                });
                assert_eq!(self.book(req).await, Answer::SessionEnded);
                assert_eq!(written(&self.app), before);
            }
            Scenario::RotationDay => {
                self.set("rotation", "birth_year");
                // Fixture citizens are born in 1985: Fridays.
                self.refused(
                    self.request(user, w, 1, "rotation"),
                    Refusal::Rotation {
                        weekday: chrono::Weekday::Fri,
                    },
                )
                .await;
            }
            Scenario::Horizon => {
                let mut req = self.request(user, w, 1, "horizon");
                let earlier = tuesday() - chrono::Days::new(8);
                req.now = seoul(earlier, 8, 0);
                self.refused(
                    req,
                    Refusal::BeyondHorizon {
                        last_day: earlier + chrono::Days::new(7),
                    },
                )
                .await;
            }
            Scenario::ClosedWindow => {
                let mut req = self.request(user, w, 1, "closed");
                // 09:00–12:00 takes bookings until 11:30, after it started.
                req.now = seoul(tuesday(), 11, 29);
                assert!(
                    matches!(self.book(req).await, Answer::Booked { .. }),
                    "{:?}",
                    self.form
                );
                let mut req = self.request(user, w, 1, "closed-2");
                req.now = seoul(tuesday(), 11, 30);
                self.refused(req, Refusal::BookingClosed).await;
            }
            Scenario::StoppedSales => {
                diesel::update(stores::table)
                    .set(stores::suspended.eq(true))
                    .execute(&mut self.app.db.get().unwrap())
                    .unwrap();
                self.refused(self.request(user, w, 1, "stopped"), Refusal::StoreSuspended)
                    .await;
            }
            Scenario::ForADependant => {
                self.set("rotation", "birth_year");
                let (link, child) = self.dependant_of(user);
                self.refused(
                    self.request(user, w, 1, "own"),
                    Refusal::Rotation {
                        weekday: chrono::Weekday::Fri,
                    },
                )
                .await;
                let mut req = self.request(user, w, 2, "child");
                req.person = ForWhom::Dependant(link);
                let id = self.book(req).await.booked_id();
                let mut conn = self.app.db.get().unwrap();
                let (person, under): (i64, Option<i64>) = reservations::table
                    .find(id)
                    .select((reservations::person_id, reservations::dependant_id))
                    .first(&mut conn)
                    .unwrap();
                assert_eq!((person, under), (child, Some(link)), "{:?}", self.form);
                let used: Vec<(i64, i32)> = quota_usage::table
                    .select((quota_usage::person_id, quota_usage::used))
                    .load(&mut conn)
                    .unwrap();
                assert_eq!(used, vec![(child, 2)], "{:?}", self.form);

                let mut req = self.request(user, self.windows[1], 1, "child-again");
                req.person = ForWhom::Dependant(link);
                self.refused(req, Refusal::QuotaExceeded { left: 0 }).await;
                let other = citizens(&self.app, "o", 1)[0];
                for (who, person) in [(other, link), (user, link + 1000)] {
                    let mut req = self.request(who, w, 1, &format!("unknown-{who}-{person}"));
                    req.person = ForWhom::Dependant(person);
                    self.refused(req, Refusal::UnknownPerson).await;
                }
            }
            Scenario::SoldOut => {
                // The windows' capacities keep the store-day's own check out
                // of reach; its counter is made to look used up for the
                // refusal, and put back for the invariant check.
                let fake_use = |reserved| {
                    diesel::update(store_days::table)
                        .set(store_days::reserved.eq(reserved))
                        .execute(&mut self.app.db.get().unwrap())
                        .unwrap();
                };
                fake_use(6);
                self.refused(self.request(user, w, 1, "sold-out"), Refusal::SoldOut)
                    .await;
                fake_use(0);
            }
        }
    }

    /// `req` is refused with `refusal`, and nothing is written.
    async fn refused(&self, req: Request, refusal: Refusal) {
        let before = written(&self.app);
        assert_eq!(
            self.book(req).await,
            Answer::Refused(refusal),
            "{:?}",
            self.form
        );
        assert_eq!(written(&self.app), before, "{:?}", self.form);
    }

    /// [`BURST`] posts of `req` at once: one reservation, every answer it.
    async fn burst_of_one_form(&self, req: Request) {
        let before = self.reservations();
        let answers = join_all((0..BURST).map(|_| self.book(req.clone()))).await;
        let id = answers[0].booked_id();
        for a in &answers {
            assert_eq!(a.booked_id(), id, "{:?}: {answers:?}", self.form);
        }
        let fresh = answers
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Answer::Booked {
                        replayed: false,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(fresh, 1, "{:?}: {answers:?}", self.form);
        assert_eq!(self.reservations(), before + 1);
    }

    /// Two posts of `req`, the second started while the first holds its
    /// takes uncommitted: both answer the one reservation.
    fn interleaved(&self, req: Request) {
        let before = self.reservations();
        let policy = self.policy();
        let t = Tr::new(self.app.state.catalog.clone(), Lang::En);
        let Door::Form(form) = self.form else {
            panic!("the set form takes no request id to answer again");
        };
        let (held, go) = (mpsc::channel::<()>(), mpsc::channel::<()>());
        let first = {
            let (mut conn, req, policy, t) = (
                self.app.db.get().unwrap(),
                req.clone(),
                policy.clone(),
                t.clone(),
            );
            let (held_tx, go_rx) = (held.0, go.1);
            std::thread::spawn(move || {
                write_tx(&mut conn, |tx| {
                    let booked = booking::book_in(form, tx, &req, &policy, &t, "https://m.example");
                    held_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    booked
                })
            })
        };
        held.1.recv().unwrap();
        let second = {
            let mut conn = self.app.db.get().unwrap();
            std::thread::spawn(move || {
                write_tx(&mut conn, |tx| {
                    booking::book_in(form, tx, &req, &policy, &t, "https://m.example")
                })
            })
        };
        if self.app.backend() == Backend::Postgres {
            wait_for_a_lock_waiter(&mut self.app.db.get().unwrap());
        }
        go.0.send(()).unwrap();
        let first = Answer::of(first.join().unwrap());
        let second = Answer::of(second.join().unwrap());
        assert_eq!(
            second,
            Answer::Booked {
                id: first.booked_id(),
                replayed: true
            },
            "{:?}",
            self.form
        );
        assert_eq!(self.reservations(), before + 1);
    }

    /// Links a child born in 2012 to the citizen `user`; the link's id and
    /// the child's person.
    fn dependant_of(&self, user: i64) -> (i64, i64) {
        let key = self.app.state.keys.national_id.clone();
        let today = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap();
        let id = NationalId::parse(&fixtures::national_id("120315323456"), today).unwrap();
        let new = NewDependant {
            name: DisplayName::parse("홍길동").unwrap(),
            national_id_hash: id.keyed_hash(&key),
            birth_date: id.birth_date(),
            national_id_masked: id.masked(),
        };
        let policy = self.policy();
        let mut conn = self.app.db.get().unwrap();
        let link = write_tx(&mut conn, |tx| {
            service::add(tx, user, &new, &policy, seoul(tuesday(), 7, 0))
        })
        .unwrap();
        let child = dependants::table
            .find(link)
            .select(dependants::person_id)
            .first(&mut conn)
            .unwrap();
        (link, child)
    }

    fn reservations(&self) -> i64 {
        reservations::table
            .count()
            .get_result(&mut self.app.db.get().unwrap())
            .unwrap()
    }
}

/// Polls until a session of this database waits on a lock (the second post
/// on the first's rows), for at most ten seconds.
pub fn wait_for_a_lock_waiter(conn: &mut DbConnection) {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(conn)
        .unwrap();
        if waiting.n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the second post never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
}
