//! Draws (SPEC §13) on a fixed Monday for the Tuesday's windows: the
//! administrator's draw, registration through its period (and the account
//! checks it shares with the booking and the waiting list), the run booking
//! each registration its highest choice with room in a uniformly random
//! order, `draw-verify` agreeing with it (and finding a record changed
//! after), the run stopped midway and resumed, killed and run again (the
//! command as a process of its own, at the real time), and two instances
//! running it at once — each ending with the invariant check.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{
    draw_entries, draws, pickup_windows, reservations, stores, users, waitlist,
};
use mask_reservation::db::{Backend, write_tx};
use mask_reservation::draws::admin::{NewDraw, create, fresh_secret};
use mask_reservation::draws::check::differences;
use mask_reservation::draws::entries::{Register, register};
use mask_reservation::draws::run::{self, LEASE, Pace, Ran};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::ForWhom;
use mask_reservation::supply::changes::{CapacityOutcome, set_window_capacity};

use crate::booking_steps::citizens;
use crate::common::server::Binary;
use crate::common::{Spawn, TestApp, assert_invariants, attribute, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

fn monday() -> NaiveDate {
    tuesday() - TimeDelta::days(1)
}

/// Registration from Monday 10:00 to 20:00, results at 21:00.
fn draw_times() -> (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) {
    (
        seoul(monday(), 10, 0),
        seoul(monday(), 20, 0),
        seoul(monday(), 21, 0),
    )
}

/// The app at Monday 09:00, before registration opens (on `database` when
/// given), `stores` stores whose
/// three Tuesday windows hold `per_window` places each, and the windows' ids
/// by store.
async fn scene(
    database: Option<std::sync::Arc<crate::common::TestDatabase>>,
    stores: usize,
    per_window: i32,
) -> (TestApp, Vec<Vec<i64>>) {
    let app = spawn_app_with(Spawn {
        database,
        ..Spawn::at(seoul(monday(), 9, 0))
    })
    .await;
    let windows = (0..stores)
        .map(|i| {
            let store = fixtures::store(&app.db, &format!("118{i:05}"), &format!("약국{i}"));
            fixtures::supply_in_windows(&app.db, store, tuesday(), 3 * per_window)
        })
        .collect();
    (app, windows)
}

/// A draw of the Tuesday in every store; its id.
fn new_draw(app: &TestApp) -> i64 {
    let (opens_at, closes_at, results_at) = draw_times();
    let d = NewDraw {
        name: "12월 1일 추첨".into(),
        region: None,
        first_day: tuesday(),
        last_day: tuesday(),
        opens_at,
        closes_at,
        results_at,
    };
    let mut conn = app.db.get().unwrap();
    let now = app.state.clock.now().naive_utc();
    write_tx(&mut conn, |tx| create(tx, &d, &fresh_secret(), None, now)).unwrap()
}

/// A registration's quantity, choices and pseudonym.
type Entered = (i32, i64, Option<i64>, Option<i64>, String);

/// Moves the app's clock to Monday 12:00, when registration is open.
fn open_registration(app: &TestApp) {
    app.state
        .clock
        .advance(seoul(monday(), 12, 0) - app.state.clock.now());
}

/// Registers `user` in draw `draw` for `quantity` with `choices`.
async fn enter(app: &TestApp, draw: i64, user: i64, quantity: i32, choices: Vec<i64>) {
    let policy = app.state.policy().await.unwrap();
    let key = app.state.keys.draw_pseudonym.clone();
    let r = Register {
        user_id: user,
        draw_id: draw,
        person: ForWhom::Own,
        quantity: Quantity::new(quantity).unwrap(),
        choices,
        now: app.state.clock.now(),
        mail_lang: "ko",
    };
    app.db
        .write(move |tx| register(tx, &r, &policy, &key))
        .await
        .unwrap();
}

/// `users` each registered with three choices drawn from `all` by a simple
/// deterministic spread (so that windows are over-asked), quantity 1 or 2.
async fn enter_all(app: &TestApp, draw: i64, users: &[i64], all: &[i64]) {
    for (i, user) in users.iter().enumerate() {
        let pick = |k: usize| all[(i * 7 + k * 5) % all.len()];
        let mut choices = vec![pick(0), pick(1), pick(2)];
        choices.dedup();
        choices.sort_unstable();
        choices.dedup();
        enter(app, draw, *user, 1 + i32::from(i % 3 == 0), choices).await;
    }
}

/// A draw of the Tuesday ([`new_draw`]) with `n` new citizens (their e-mails
/// from `prefix`) registered over all of `windows` ([`enter_all`]); its id.
async fn registered(app: &TestApp, windows: &[Vec<i64>], prefix: &str, n: usize) -> i64 {
    let draw = new_draw(app);
    let users = citizens(app, prefix, n);
    open_registration(app);
    enter_all(app, draw, &users, &windows.concat()).await;
    draw
}

/// Runs the draw at `at` with `pace`, on `app`'s database.
async fn run_at(app: &TestApp, draw: i64, at: DateTime<Utc>, pace: Pace) -> Ran {
    let policy = app.state.policy().await.unwrap();
    let t = Tr::new(app.state.catalog.clone(), Lang::Ko);
    run::run(
        &app.db,
        draw,
        &Clock::manual(at),
        policy,
        t,
        app.state.base_url.clone(),
        pace,
    )
    .await
    .unwrap()
}

/// Each registration's (outcome, won window, reservation) by id.
type Outcomes = HashMap<i64, (Option<String>, Option<i64>, Option<i64>)>;

fn outcomes(app: &TestApp, draw: i64) -> Outcomes {
    draw_entries::table
        .filter(draw_entries::draw_id.eq(draw))
        .select((
            draw_entries::id,
            draw_entries::outcome,
            draw_entries::won_window_id,
            draw_entries::reservation_id,
        ))
        .load::<(i64, Option<String>, Option<i64>, Option<i64>)>(&mut app.db.get().unwrap())
        .unwrap()
        .into_iter()
        .map(|(id, o, w, r)| (id, (o, w, r)))
        .collect()
}

/// Checks what a done draw booked: one active reservation per registration
/// drawn, in its window, none for the others, and `draw-verify` agreeing.
fn assert_drawn_as_recorded(app: &TestApp, draw: i64) {
    let mut conn = app.db.get().unwrap();
    let state: String = draws::table
        .find(draw)
        .select(draws::state)
        .first(&mut conn)
        .unwrap();
    assert_eq!(state, "done");
    let all = outcomes(app, draw);
    let won: Vec<i64> = all.values().filter_map(|(_, _, r)| *r).collect();
    let booked: i64 = reservations::table
        .filter(reservations::status.eq("active"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(
        usize::try_from(booked).unwrap(),
        won.len(),
        "one reservation per win"
    );
    assert!(
        all.values().all(|(o, _, _)| o.is_some()),
        "every registration settled"
    );
    let still: i64 = pickup_windows::table
        .filter(pickup_windows::draw_id.is_not_null())
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(still, 0, "the windows are ordinary again");
    assert_eq!(differences(&mut conn, draw).unwrap(), Vec::<String>::new());
    drop(conn);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn an_administrators_draw_holds_its_windows_and_publishes_its_commitment() {
    let (app, windows) = scene(None, 1, 2).await;
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let form = [
        ("name", "화요일 추첨"),
        ("first_day", "2026-12-01"),
        ("last_day", "2026-12-01"),
        ("region", ""),
        ("opens_at", "2026-11-30T10:00"),
        ("closes_at", "2026-11-30T20:00"),
        ("results_at", "2026-11-30T21:00"),
    ];
    // Times in the wrong order, and results after the windows start.
    let mut bad = form;
    bad[5] = ("closes_at", "2026-11-30T09:00");
    let res = admin.post_form("/admin/draws", &bad).await;
    assert_eq!(res.status(), 422);
    let mut late = form;
    late[6] = ("results_at", "2026-12-01T10:00");
    let res = admin.post_form("/admin/draws", &late).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error-for=\"results_at\"")
    );
    let res = admin.post_form("/admin/draws", &form).await;
    assert_eq!(res.status(), 303);
    let href = res.headers()["location"].to_str().unwrap().to_owned();
    let id: i64 = href.rsplit('/').next().unwrap().parse().unwrap();

    // The commitment is public from the start; the secret is not.
    let (secret, commitment): (String, String) = draws::table
        .find(id)
        .select((draws::secret, draws::commitment))
        .first(&mut app.db.get().unwrap())
        .unwrap();
    let page = app.new_visitor().html(&href).await;
    assert!(page.contains(&commitment), "{page}");
    assert!(!page.contains(&secret));
    assert!(
        admin
            .html("/admin/draws")
            .await
            .contains(&format!("data-draw=\"{id}\""))
    );

    // The draw's windows are not booked first come; the store page says so.
    let citizen = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
    let res = citizen
        .post_form(
            "/reservations",
            &[
                ("window_id", &windows[0][0].to_string()),
                ("quantity", "1"),
                ("request_id", "r1"),
            ],
        )
        .await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("data-refusal=\"draw\""));
    let store_page = citizen.html("/stores/11800000?day=2026-12-01").await;
    assert!(store_page.contains("data-draw-link"), "{store_page}");
    // A second draw of the same days holds no window.
    let mut again = form;
    again[0] = ("name", "또");
    assert_eq!(admin.post_form("/admin/draws", &again).await.status(), 422);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn registration_is_one_per_person_editable_in_its_period_and_refuses_bad_posts() {
    let (app, windows) = scene(None, 1, 2).await;
    let draw = new_draw(&app);
    let w = &windows[0];
    let v = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
    let path = format!("/draws/{draw}/register");
    let post = |choices: [&str; 3], quantity: &str| {
        let (v, path) = (&v, path.clone());
        let fields: Vec<(String, String)> = vec![
            ("choice1".into(), choices[0].into()),
            ("choice2".into(), choices[1].into()),
            ("choice3".into(), choices[2].into()),
            ("quantity".into(), quantity.into()),
            ("person".into(), "self".into()),
        ];
        async move {
            let refs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            v.post_form(&path, &refs).await
        }
    };
    let (w0, w1, w2) = (w[0].to_string(), w[1].to_string(), w[2].to_string());

    // Before it opens.
    let res = post([&w0, "", ""], "2").await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("draw_not_open"));
    open_registration(&app);

    // The form lists the store's windows; a registration, then a change.
    let page = v.html(&format!("/draws/{draw}?store=11800000")).await;
    assert!(page.contains("data-register-form"), "{page}");
    assert_eq!(post([&w0, &w1, ""], "2").await.status(), 303);
    assert_eq!(post([&w2, &w0, &w1], "1").await.status(), 303);
    let mine: Vec<Entered> = draw_entries::table
        .select((
            draw_entries::quantity,
            draw_entries::choice1,
            draw_entries::choice2,
            draw_entries::choice3,
            draw_entries::pseudonym,
        ))
        .load(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(mine.len(), 1, "one registration per person");
    assert_eq!(
        (mine[0].0, mine[0].1, mine[0].2, mine[0].3),
        (1, w[2], Some(w[0]), Some(w[1]))
    );
    let page = v.html(&format!("/draws/{draw}")).await;
    assert!(
        page.contains(&mine[0].4),
        "the citizen sees their pseudonym"
    );

    // Bad posts change nothing.
    for (choices, quantity, status) in [
        (["", "", ""], "1", 422),
        ([w0.as_str(), w0.as_str(), ""], "1", 422),
        (["999999", "", ""], "1", 422),
        (["x", "", ""], "1", 422),
        ([w0.as_str(), "", ""], "3", 409),
        ([w0.as_str(), "", ""], "none", 422),
    ] {
        let res = post(choices, quantity).await;
        assert_eq!(res.status(), status, "{choices:?} {quantity}");
    }
    let res = v
        .post_form_raw(&path, &[("choice1", &w0), ("quantity", "1")])
        .await;
    assert_eq!(res.status(), 403, "without the CSRF token");
    let store: i64 = pickup_windows::table
        .find(w[0])
        .select(pickup_windows::store_id)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let res = pharmacist
        .post_form(&path, &[("choice1", &w0), ("quantity", "1")])
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        v.post_form(
            "/draws/999999/register",
            &[("choice1", &w0), ("quantity", "1")]
        )
        .await
        .status(),
        404
    );
    assert_eq!(app.new_visitor().get("/draws/abc").await.status(), 404);

    // After the close.
    app.state
        .clock
        .advance(seoul(monday(), 20, 0) - app.state.clock.now());
    let res = post([&w0, "", ""], "2").await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("draw_closed"));
    let unchanged: i32 = draw_entries::table
        .select(draw_entries::quantity)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(unchanged, 1);
    assert_invariants(&app.db);
}

/// A draw's registration and a waiting list check the account asking as the
/// booking does (`booking::holder_named`, the booking's own account checks):
/// an unverified or disabled citizen, an account that is not a citizen's and
/// a dependant who is not theirs are refused, each with its refusal.
#[tokio::test]
async fn a_registration_and_a_place_in_line_check_the_account_as_the_booking_does() {
    use mask_reservation::draws::entries::{NotRegistered, RegisterError};
    use mask_reservation::reservations::rules::Refusal;
    use mask_reservation::waitlist::line::{self, Join, JoinError, NotJoined};

    let (app, windows) = scene(None, 1, 1).await;
    let draw = new_draw(&app);
    open_registration(&app);
    let key = app.state.keys.national_id.clone();
    let user = |email: &str, role: Role, verified: bool| {
        fixtures::user(&app.db, role, email, None, verified, &key)
    };
    let unverified = user("unverified@example.com", Role::Citizen, false);
    let disabled = user("disabled@example.com", Role::Citizen, true);
    let admin = user("admin@example.com", Role::Admin, true);
    let citizen = user("citizen@example.com", Role::Citizen, true);
    let now = app.state.clock.now();
    diesel::update(users::table.find(disabled))
        .set(users::disabled_at.eq(Some(now.naive_utc())))
        .execute(&mut app.db.get().unwrap())
        .unwrap();
    let policy = app.state.policy().await.unwrap();
    let pseudonym_key = app.state.keys.draw_pseudonym.clone();
    let quantity = Quantity::new(1).unwrap();
    for (user_id, person, refusal) in [
        (unverified, ForWhom::Own, Refusal::Unverified),
        (disabled, ForWhom::Own, Refusal::AccountDisabled),
        (admin, ForWhom::Own, Refusal::NotCitizen),
        (
            citizen,
            ForWhom::Dependant(i64::MAX),
            Refusal::UnknownPerson,
        ),
    ] {
        let mut conn = app.db.get().unwrap();
        let registered = write_tx(&mut conn, |tx| {
            let r = Register {
                user_id,
                draw_id: draw,
                person,
                quantity,
                choices: vec![windows[0][0]],
                now,
                mail_lang: "ko",
            };
            register(tx, &r, &policy, &pseudonym_key)
        });
        assert!(
            matches!(
                &registered,
                Err(RegisterError::NotRegistered(NotRegistered::Refused(r))) if *r == refusal
            ),
            "{refusal:?}: {registered:?}"
        );
        let joined = write_tx(&mut conn, |tx| {
            let j = Join {
                user_id,
                window_id: windows[0][0],
                person,
                quantity,
                now,
                mail_lang: "ko",
                whole_day: false,
            };
            line::join(tx, &j, &policy)
        });
        assert!(
            matches!(
                &joined,
                Err(JoinError::NotJoined(NotJoined::Refused(r))) if *r == refusal
            ),
            "{refusal:?}: {joined:?}"
        );
    }
    let nothing: (i64, i64) = (
        draw_entries::table
            .count()
            .get_result(&mut app.db.get().unwrap())
            .unwrap(),
        waitlist::table
            .count()
            .get_result(&mut app.db.get().unwrap())
            .unwrap(),
    );
    assert_eq!(nothing, (0, 0));
}

#[tokio::test]
async fn the_run_books_each_registration_its_highest_choice_with_room_and_draw_verify_agrees() {
    let (app, windows) = scene(None, 2, 2).await;
    let draw = registered(&app, &windows, "r", 20).await;

    // Not before the close.
    let (_, closes_at, _) = draw_times();
    let early = closes_at - TimeDelta::seconds(1);
    assert_eq!(
        run_at(&app, draw, early, Pace::default()).await,
        Ran::NotDue
    );
    let ran = run_at(&app, draw, closes_at, Pace::default()).await;
    let Ran::Done { won, not_drawn } = ran else {
        panic!("{ran:?}");
    };
    assert_eq!(won + not_drawn, 20);
    assert!(won > 0 && not_drawn > 0, "{won} drawn, {not_drawn} not");
    assert_drawn_as_recorded(&app, draw);
    // Run again: nothing is due.
    assert_eq!(
        run_at(&app, draw, closes_at, Pace::default()).await,
        Ran::NotDue
    );

    // Nobody skipped a choice that had room at their turn: by the rule's
    // replay (`differences`), and plainly: a registration not drawn found
    // every choice full at the end.
    let mut conn = app.db.get().unwrap();
    let not_drawn: Vec<(i32, i64, Option<i64>, Option<i64>)> = draw_entries::table
        .filter(draw_entries::outcome.eq("not_drawn"))
        .select((
            draw_entries::quantity,
            draw_entries::choice1,
            draw_entries::choice2,
            draw_entries::choice3,
        ))
        .load(&mut conn)
        .unwrap();
    for (q, c1, c2, c3) in not_drawn {
        for w in std::iter::once(c1).chain(c2).chain(c3) {
            let (cap, res): (i32, i32) = pickup_windows::table
                .find(w)
                .select((pickup_windows::capacity, pickup_windows::reserved))
                .first(&mut conn)
                .unwrap();
            assert!(cap - res < q, "window {w} had room for {q}");
        }
    }

    // The page publishes the secret, the seed and the order.
    let page = app.new_visitor().html(&format!("/draws/{draw}")).await;
    assert!(page.contains("data-secret") && page.contains("data-seed"));
    assert!(page.contains("data-position=\"1\""), "{page}");

    // A record changed afterwards is found.
    let first: i64 = draw_entries::table
        .filter(draw_entries::position.eq(1))
        .select(draw_entries::id)
        .first(&mut conn)
        .unwrap();
    diesel::update(draw_entries::table.find(first))
        .set(draw_entries::position.eq(2))
        .execute(&mut conn)
        .unwrap();
    assert!(!differences(&mut conn, draw).unwrap().is_empty());
}

#[tokio::test]
async fn a_run_stopped_midway_resumes_where_it_stopped_booking_nobody_twice() {
    let (app, windows) = scene(None, 2, 2).await;
    let draw = registered(&app, &windows, "s", 15).await;
    let (_, closes_at, _) = draw_times();
    let pace = Pace {
        batch: 4,
        stop_after: Some(2),
    };
    assert_eq!(
        run_at(&app, draw, closes_at, pace).await,
        Ran::Stopped { drawn: 8 }
    );
    // Another instance finds the run held until its lease runs out.
    assert_eq!(
        run_at(&app, draw, closes_at, Pace::default()).await,
        Ran::Busy
    );
    let settled = outcomes(&app, draw)
        .values()
        .filter(|(o, _, _)| o.is_some())
        .count();
    assert_eq!(settled, 8);
    let later = closes_at + LEASE + TimeDelta::seconds(1);
    let Ran::Done { won, not_drawn } = run_at(&app, draw, later, Pace::default()).await else {
        panic!("the resumed run finishes");
    };
    assert_eq!(won + not_drawn, 15);
    assert_drawn_as_recorded(&app, draw);
}

/// Two instances (two app processes' worth of state on PostgreSQL; two
/// calls at once on SQLite) run the same draw as it closes: one settles it,
/// the other finds it held or done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_running_one_draw_at_once_settle_each_registration_once() {
    let (app, windows) = scene(None, 2, 2).await;
    let second = if app.backend() == Backend::Postgres {
        Some(scene(Some(app.database.clone()), 0, 2).await.0)
    } else {
        None
    };
    let other = second.as_ref().unwrap_or(&app);
    let draw = registered(&app, &windows, "t", 25).await;
    let (_, closes_at, _) = draw_times();
    let pace = Pace {
        batch: 3,
        stop_after: None,
    };
    let ran = join_all([
        run_at(&app, draw, closes_at, pace),
        run_at(other, draw, closes_at, pace),
    ])
    .await;
    let done = ran.iter().filter(|r| matches!(r, Ran::Done { .. })).count();
    assert_eq!(done, 1, "{ran:?}");
    assert!(
        ran.iter()
            .all(|r| matches!(r, Ran::Done { .. } | Ran::Busy | Ran::NotDue)),
        "{ran:?}"
    );
    assert_drawn_as_recorded(&app, draw);
}

/// The drill: `draw-run` killed (`kill -9`) midway, run again, then `verify`
/// and `draw-verify`, on both backends.
///
/// The command is a process of its own that takes this machine's clock, and
/// refuses to run when the database's clock (PostgreSQL's server) is off it:
/// so the drill is set at the real time, not at a test's clock — registration
/// closed a minute ago, the windows two days on. Nothing in it depends on
/// the day or hour (rotation is off; the windows are one day's). The killed
/// run's lease is then moved back by [`LEASE`], as if that long had passed,
/// for the second run to take it over.
#[tokio::test]
async fn the_draw_run_command_killed_midway_and_run_again_books_everyone_once() {
    let now = Utc::now();
    let day = now.with_timezone(&chrono_tz::Asia::Seoul).date_naive() + TimeDelta::days(2);
    let app = spawn_app_with(Spawn::at(now - TimeDelta::hours(2))).await;
    let windows: Vec<i64> = (0..3)
        .flat_map(|i| {
            let store = fixtures::store(&app.db, &format!("118{i:05}"), &format!("약국{i}"));
            fixtures::supply_in_windows(&app.db, store, day, 9)
        })
        .collect();
    let d = NewDraw {
        name: "이틀 뒤 추첨".into(),
        region: None,
        first_day: day,
        last_day: day,
        opens_at: now - TimeDelta::hours(1),
        closes_at: now - TimeDelta::minutes(1),
        results_at: now,
    };
    let created_at = app.state.clock.now().naive_utc();
    let draw = write_tx(&mut app.db.get().unwrap(), |tx| {
        create(tx, &d, &fresh_secret(), None, created_at)
    })
    .unwrap();
    let users = citizens(&app, "k", 120);
    app.state.clock.advance(TimeDelta::minutes(90));
    enter_all(&app, draw, &users, &windows).await;
    let binary = Binary::new(&app.database.url());
    let mut child = binary
        .command(&["draw-run", &draw.to_string(), "--batch", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let drawn: i32 = draws::table
            .find(draw)
            .select(draws::drawn)
            .first(&mut app.db.get().unwrap())
            .unwrap();
        if drawn > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (drawn, state): (i32, String) = draws::table
        .find(draw)
        .select((draws::drawn, draws::state))
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert!(
        drawn < 120 && state == "drawing",
        "killed midway: {drawn} {state}"
    );

    // Run again once the killed run's lease has run out. On PostgreSQL, a
    // batch whose COMMIT the killed run had sent may still be committing,
    // holding the draw's row: the first update waits for it, so that the
    // lease moved back is the one that batch renewed.
    write_tx(&mut app.db.get().unwrap(), |tx| {
        diesel::update(draws::table.find(draw))
            .set(draws::claimed_at.eq(draws::claimed_at))
            .execute(tx.conn())?;
        let claimed: Option<chrono::NaiveDateTime> = draws::table
            .find(draw)
            .select(draws::claimed_at)
            .first(tx.conn())?;
        diesel::update(draws::table.find(draw))
            .set(draws::claimed_at.eq(claimed.map(|at| at - LEASE - TimeDelta::seconds(1))))
            .execute(tx.conn())
    })
    .unwrap();
    let out = binary
        .command(&["draw-run", &draw.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_drawn_as_recorded(&app, draw);
    for args in [vec!["verify"], vec!["draw-verify", &draw.to_string()]] {
        let out = binary.command(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let users_won: i64 = reservations::table
        .inner_join(users::table.on(users::id.eq(reservations::user_id)))
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap();
    let won = outcomes(&app, draw)
        .values()
        .filter(|(o, _, _)| o.as_deref() == Some("won"))
        .count();
    assert_eq!(usize::try_from(users_won).unwrap(), won);
}

/// While a draw holds today's windows, the open data, the pharmacist's day
/// and the administrator's overview count their free places as in the draw,
/// not as anything someone can get; once drawn, the stock is as usual.
#[tokio::test]
async fn the_open_data_and_staff_pages_show_the_places_in_a_draw_and_after_it_the_stock_as_usual() {
    use crate::common::eventually;
    use serde_json::Value;

    let app = spawn_app_with(Spawn::at(seoul(monday(), 6, 0))).await;
    let store = fixtures::store(&app.db, "11800000", "약국");
    fixtures::supply_in_windows(&app.db, store, monday(), 30);
    let d = NewDraw {
        name: "새벽 추첨".into(),
        region: None,
        first_day: monday(),
        last_day: monday(),
        opens_at: seoul(monday(), 6, 0),
        closes_at: seoul(monday(), 7, 0),
        results_at: seoul(monday(), 7, 30),
    };
    let now = app.state.clock.now().naive_utc();
    let mut conn = app.db.get().unwrap();
    let draw = write_tx(&mut conn, |tx| create(tx, &d, &fresh_secret(), None, now)).unwrap();
    drop(conn);
    let figures = |app: &TestApp| {
        let url = app.url("/opendata/stock.json");
        async move {
            let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let s = &body["stores"][0];
            Some((
                s["remain"].as_i64()?,
                s["reservable"].as_i64()?,
                s["in_draw"].as_i64()?,
            ))
        }
    };
    let during = eventually(Duration::from_secs(10), "the draw's places", || async {
        figures(&app).await.filter(|f| f.2 == 30)
    })
    .await;
    assert_eq!(during, (0, 0, 30));
    // The map's list says so beside the store.
    let map = app.new_visitor().html("/map").await;
    assert!(map.contains("data-in-draw=\"30\""), "{map}");
    // So do the pharmacist's day and the administrator's overview.
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "pharmacist@example.com", Some(store))
        .await;
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let staff_figures = || async {
        let day = pharmacist.html("/pharmacy").await;
        let overview = admin.html("/admin").await;
        let total = &overview[overview.find("data-total").unwrap()..];
        [
            attribute(&day, "data-reservable"),
            attribute(&day, "data-in-draw"),
            attribute(total, "data-reservable"),
            attribute(total, "data-in-draw"),
        ]
    };
    assert_eq!(
        staff_figures().await,
        ["0", "30", "0", "30"].map(|n| Some(n.to_owned()))
    );

    let users = citizens(&app, "o", 4);
    let windows: Vec<i64> = pickup_windows::table
        .filter(pickup_windows::store_id.eq(store))
        .select(pickup_windows::id)
        .load(&mut app.db.get().unwrap())
        .unwrap();
    enter_all(&app, draw, &users, &windows).await;
    let Ran::Done { .. } = run_at(&app, draw, seoul(monday(), 7, 0), Pace::default()).await else {
        panic!("drawn");
    };
    let won: i64 = reservations::table
        .select(diesel::dsl::sum(reservations::quantity))
        .first::<Option<i64>>(&mut app.db.get().unwrap())
        .unwrap()
        .unwrap_or(0);
    let after = eventually(Duration::from_secs(10), "the stock as usual", || async {
        figures(&app).await.filter(|f| f.2 == 0)
    })
    .await;
    assert_eq!(after, (30 - won, 30 - won, 0));
    let left = Some((30 - won).to_string());
    let none = Some("0".to_owned());
    assert_eq!(
        staff_figures().await,
        [left.clone(), none.clone(), left, none]
    );
    assert_drawn_as_recorded(&app, draw);
}

/// On a phone, in each language: a citizen finds the draw from a store's
/// page, registers ranked choices, sees their draw number; once drawn, the
/// page tells them their place and outcome and leads to the pickup code.
#[tokio::test]
async fn on_a_phone_a_citizen_registers_for_a_draw_and_reads_the_result_in_each_language() {
    use crate::common::browser::{self, Browser, wait_for};
    use fantoccini::{Client, Locator};

    const PHONE: (u32, u32) = (390, 844);
    const LANGS: [(&str, &str); 3] = [("ko-KR", "ko"), ("en-US", "en"), ("zh-TW", "zh-tw")];
    let (app, _windows) = scene(None, 1, 3).await;
    let draw = new_draw(&app);
    open_registration(&app);
    for (_, who) in LANGS {
        app.logged_in_as(Role::Citizen, &format!("{who}@example.com"), None)
            .await;
    }
    async fn log_in(app: &TestApp, c: &Client, email: &str) {
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        browser::log_in(c, app, email).await;
    }

    for (lang, who) in LANGS {
        let browser = Browser::start_in(lang).await;
        let c = &browser.client;
        log_in(&app, c, &format!("{who}@example.com")).await;
        c.goto(&app.url("/stores/11800000?day=2026-12-01"))
            .await
            .unwrap();
        let link = wait_for(c, "a[data-draw-link]").await;
        browser.check_page(&format!("draw-store-{who}")).await;
        link.click().await.unwrap();
        wait_for(c, "form[data-register-form]").await;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        browser.check_page(&format!("draw-register-{who}")).await;
        // The first window first, then the second and the third.
        for (choice, index) in [("choice2", 2), ("choice3", 3)] {
            c.find(Locator::Css(&format!("select[name='{choice}']")))
                .await
                .unwrap()
                .select_by_index(index)
                .await
                .unwrap();
        }
        c.find(Locator::Css("button[data-register-button]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-my-registration]").await;
        browser.check_page(&format!("draw-registered-{who}")).await;
        browser.close().await;
    }

    let (_, closes_at, _) = draw_times();
    let Ran::Done { won, .. } = run_at(&app, draw, closes_at, Pace::default()).await else {
        panic!("drawn");
    };
    assert_eq!(won, 3, "nine places for three registrations of two");
    app.state
        .clock
        .advance(seoul(monday(), 21, 0) - app.state.clock.now());
    for (lang, who) in LANGS {
        let browser = Browser::start_in(lang).await;
        let c = &browser.client;
        log_in(&app, c, &format!("{who}@example.com")).await;
        c.goto(&app.url(&format!("/draws/{draw}"))).await.unwrap();
        wait_for(c, "[data-draw-result]").await;
        wait_for(c, "[data-secret]").await;
        browser.check_page(&format!("draw-result-{who}")).await;
        c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
        c.find(Locator::Css("a[data-won-reservation]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(c, "[data-status='active'] [data-pickup-code]").await;
        browser.close().await;
    }
    assert_drawn_as_recorded(&app, draw);
}

/// After the draw is frozen, an administrator stops sales at one store and
/// cuts a window of another below what the draw counted on. The stopped
/// store's windows are refused by the booking's own rules at each turn, so
/// nobody is drawn there and `draw-verify` agrees; the cut window holds less
/// than the rule grants, so the run books what the database allows — never
/// more than the window holds — and `draw-verify` names the registrations
/// the rule would have given it.
#[tokio::test]
async fn sales_stopped_and_a_window_cut_after_the_freeze_oversell_nothing() {
    let (app, windows) = scene(None, 3, 2).await;
    let draw = registered(&app, &windows, "f", 24).await;
    let (_, closes_at, _) = draw_times();
    let freeze = Pace {
        batch: 4,
        stop_after: Some(0),
    };
    assert_eq!(
        run_at(&app, draw, closes_at, freeze).await,
        Ran::Stopped { drawn: 0 }
    );
    let (stopped, cut) = (windows[0].clone(), windows[1][0]);
    let mut conn = app.db.get().unwrap();
    let store: i64 = pickup_windows::table
        .find(stopped[0])
        .select(pickup_windows::store_id)
        .first(&mut conn)
        .unwrap();
    diesel::update(stores::table.find(store))
        .set(stores::suspended.eq(true))
        .execute(&mut conn)
        .unwrap();
    let now = closes_at.naive_utc();
    let changed = write_tx(&mut conn, |tx| set_window_capacity(tx, cut, 1, None, now)).unwrap();
    assert_eq!(changed, CapacityOutcome::Changed { from: 2, to: 1 });
    drop(conn);

    let later = closes_at + LEASE + TimeDelta::seconds(1);
    let Ran::Done { won, not_drawn } = run_at(&app, draw, later, Pace::default()).await else {
        panic!("the run finishes");
    };
    assert_eq!(won + not_drawn, 24);
    assert!(won > 0);
    let mut conn = app.db.get().unwrap();
    let in_stopped: i64 = reservations::table
        .filter(reservations::window_id.eq_any(&stopped))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(in_stopped, 0, "nobody is drawn where sales stopped");
    let (capacity, reserved): (i32, i32) = pickup_windows::table
        .find(cut)
        .select((pickup_windows::capacity, pickup_windows::reserved))
        .first(&mut conn)
        .unwrap();
    assert!(
        reserved <= capacity && capacity == 1,
        "{reserved} of {capacity}"
    );
    let found = differences(&mut conn, draw).unwrap();
    assert!(!found.is_empty(), "the cut window's difference is reported");
    for line in &found {
        assert!(
            line.ends_with(&format!("the rule gives Some({cut})")),
            "only the cut window differs: {found:?}"
        );
    }
    drop(conn);
    assert_invariants(&app.db);
}
