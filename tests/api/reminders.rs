//! Pickup reminders: one e-mail per active reservation, `reminder_lead_minutes`
//! before its window starts, never twice (not even from two instances at
//! once), none when the setting is 0, none for a cancelled reservation.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{mail_outbox, pickup_windows, reservations, settings};
use mask_reservation::policy::Policy;
use mask_reservation::reservations::reminders::send_all;

use crate::admin_settings::{form_of, with};
use crate::common::{Spawn, TestApp, fixtures, spawn_app_with};
use crate::expiry::citizen;
use crate::reservations::{seoul, tuesday};

pub fn window_start(app: &TestApp, window: i64) -> DateTime<Utc> {
    let start: chrono::NaiveDateTime = pickup_windows::table
        .find(window)
        .select(pickup_windows::starts_at)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    start.and_utc()
}

fn policy(app: &TestApp) -> Policy {
    Policy::load(&mut app.db.get().unwrap()).unwrap()
}

pub async fn remind(app: &TestApp, now: DateTime<Utc>) -> usize {
    let catalog = app.state.catalog.clone();
    send_all(&app.db, now, &policy(app), catalog, "http://masks.example")
        .await
        .unwrap()
}

/// Reminder rows in the outbox, by recipient.
fn reminders_to(app: &TestApp) -> Vec<String> {
    let mut to: Vec<String> = mail_outbox::table
        .filter(mail_outbox::kind.eq("reservation_reminder"))
        .select(mail_outbox::recipient)
        .load(&mut app.db.get().unwrap())
        .unwrap();
    to.sort();
    to
}

struct Scene {
    app: TestApp,
    windows: Vec<i64>,
    first: i64,
    second: i64,
}

/// Tomorrow's windows at a store, a reservation in the first by
/// first@example.com and one in the second by second@example.com.
async fn scene() -> Scene {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "성모약국");
    let windows = fixtures::supply(&app.db, store, app.today() + TimeDelta::days(1), 90);
    let first = fixtures::reservation(&app.db, windows[0], citizen(&app, "first@example.com"), 2);
    let second = fixtures::reservation(&app.db, windows[1], citizen(&app, "second@example.com"), 1);
    Scene {
        app,
        windows,
        first,
        second,
    }
}

#[tokio::test]
async fn a_reminder_goes_once_to_each_reservation_whose_window_starts_within_the_lead() {
    let Scene {
        app,
        windows,
        first,
        second,
    } = scene().await;
    let start = window_start(&app, windows[0]);
    // Earlier than the lead (60 minutes by default): nothing yet.
    assert_eq!(remind(&app, start - TimeDelta::minutes(61)).await, 0);
    assert_eq!(remind(&app, start - TimeDelta::minutes(60)).await, 1);
    assert_eq!(reminders_to(&app), ["first@example.com"]);
    // Never twice.
    assert_eq!(remind(&app, start - TimeDelta::minutes(30)).await, 0);
    assert_eq!(remind(&app, start - TimeDelta::minutes(1)).await, 0);
    assert_eq!(reminders_to(&app), ["first@example.com"]);
    let reminded: Vec<(i64, Option<chrono::NaiveDateTime>)> = reservations::table
        .filter(reservations::id.eq_any([first, second]))
        .order(reservations::id)
        .select((reservations::id, reservations::reminded_at))
        .load(&mut app.db.get().unwrap())
        .unwrap();
    assert!(reminded[0].1.is_some() && reminded[1].1.is_none());

    // The mail says where, when and with which code, in Korean.
    let mail = app.smtp.wait_for(1).await;
    let body = mail[0].text_body();
    let code: String = reservations::table
        .find(first)
        .select(reservations::pickup_code)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert!(mail[0].recipients[0].contains("first@example.com"));
    for expected in [
        "성모약국",
        "서울특별시 중구 세종대로",
        "09:00–12:00",
        &format!("{}-{}", &code[..4], &code[4..]),
        &format!("http://masks.example/reservations/{first}"),
    ] {
        assert!(body.contains(expected), "{expected} in {body}");
    }

    // The second window's turn.
    let start = window_start(&app, windows[1]);
    assert_eq!(remind(&app, start - TimeDelta::minutes(10)).await, 1);
    assert_eq!(
        reminders_to(&app),
        ["first@example.com", "second@example.com"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_reminding_at_once_send_one_mail_per_reservation() {
    let Scene { app, windows, .. } = scene().await;
    // Both windows due at once.
    let now = window_start(&app, windows[0]) - TimeDelta::minutes(30);
    let mut conn = app.db.get().unwrap();
    diesel::update(settings::table.filter(settings::key.eq("reminder_lead_minutes")))
        .set(settings::value.eq("600"))
        .execute(&mut conn)
        .unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (db, catalog, policy) = (app.db.clone(), app.state.catalog.clone(), policy(&app));
            tokio::spawn(async move {
                send_all(&db, now, &policy, catalog, "http://x")
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut total = 0;
    for run in runs {
        total += run.await.unwrap();
    }
    assert_eq!(total, 2);
    assert_eq!(
        reminders_to(&app),
        ["first@example.com", "second@example.com"]
    );
}

#[tokio::test]
async fn no_reminder_when_reminders_are_off_or_the_reservation_was_cancelled() {
    let Scene {
        app,
        windows,
        first,
        ..
    } = scene().await;
    let start = window_start(&app, windows[0]);
    let mut conn = app.db.get().unwrap();
    diesel::update(settings::table.filter(settings::key.eq("reminder_lead_minutes")))
        .set(settings::value.eq("0"))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(remind(&app, start - TimeDelta::minutes(1)).await, 0);

    diesel::update(settings::table.filter(settings::key.eq("reminder_lead_minutes")))
        .set(settings::value.eq("60"))
        .execute(&mut conn)
        .unwrap();
    let now = app.state.clock.now().naive_utc();
    diesel::update(reservations::table.find(first))
        .set((
            reservations::status.eq("cancelled"),
            reservations::cancelled_at.eq(now),
        ))
        .execute(&mut conn)
        .unwrap();
    assert_eq!(remind(&app, start - TimeDelta::minutes(30)).await, 0);
    assert!(reminders_to(&app).is_empty());
}

#[tokio::test]
async fn the_server_sends_reminders_in_the_background() {
    let day = crate::reservations::tuesday();
    // A clock standing 20 minutes before the day's first window (09:00 KST).
    let nine = policy_start(day);
    let app = spawn_app_with(Spawn {
        jobs_every: Some(Duration::from_millis(100)),
        clock: Some(Clock::manual(nine - TimeDelta::minutes(20))),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, "11800001", "성모약국");
    let windows = fixtures::supply(&app.db, store, day, 90);
    assert_eq!(window_start(&app, windows[0]), nine);
    fixtures::reservation(&app.db, windows[0], citizen(&app, "soon@example.com"), 1);
    let mail = app.smtp.wait_for(1).await;
    assert!(mail[0].recipients[0].contains("soon@example.com"));
    assert!(mail[0].text_body().contains("성모약국"));
}

/// 09:00 in Seoul on `day`, as a UTC instant.
fn policy_start(day: chrono::NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    chrono_tz::Asia::Seoul
        .from_local_datetime(&day.and_hms_opt(9, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn the_reminder_lead_is_a_setting_from_0_to_1440_shown_on_the_home_page() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;
    let html = admin.html("/").await;
    assert!(html.contains("data-rule=\"reminder_lead_minutes\""));
    for bad in ["1441", "-1", "soon"] {
        let form = with(form_of(&admin).await, &[("reminder_lead_minutes", bad)]);
        let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = admin.post_form("/admin/settings", &fields).await;
        assert_eq!(res.status(), 422, "{bad}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("data-error-for=\"reminder_lead_minutes\""),
            "{bad}"
        );
    }
    assert_eq!(policy(&app).reminder_lead_minutes, 60);
    let form = with(
        form_of(&admin).await,
        &[("reminder_lead_minutes", "0"), ("confirm", "1")],
    );
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = admin.post_form("/admin/settings", &fields).await;
    assert_eq!(res.status(), 303);
    assert_eq!(policy(&app).reminder_lead_minutes, 0);
    let home = app.html("/").await;
    let rule = home
        .split("data-rule=\"reminder_lead_minutes\">")
        .nth(1)
        .unwrap();
    assert!(rule.starts_with("보내지 않습니다"), "{rule}");
}

/// A reservation made in English is reminded in English; its confirmation was
/// too.
#[tokio::test]
async fn a_reservation_made_in_english_is_reminded_in_english() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "성모약국");
    let tomorrow = app.today() + TimeDelta::days(1);
    let windows = fixtures::supply(&app.db, store, tomorrow, 90);
    let v = app
        .logged_in_as(Role::Citizen, "jane@example.com", None)
        .await;
    let switched = v
        .post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    assert_eq!(switched.status(), 303);
    crate::pharmacy_pickup::book(&app, &v, windows[0], 1).await;

    assert_eq!(
        remind(
            &app,
            window_start(&app, windows[0]) - TimeDelta::minutes(30)
        )
        .await,
        1
    );
    let mails = app.smtp.wait_for(2).await;
    let subjects: Vec<String> = mails.iter().map(|m| m.subject()).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("[Public Mask Reservation] Pick up your masks at")),
        "{subjects:?}"
    );
    let reminder = mails
        .iter()
        .find(|m| m.subject().contains("Pick up"))
        .unwrap();
    assert!(
        reminder.text_body().contains("Pickup code:"),
        "{}",
        reminder.text_body()
    );
}
