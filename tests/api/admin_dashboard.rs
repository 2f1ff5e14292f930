//! The administrator's dashboard charts and the day's CSV export: every figure
//! they show equals a sum over reservations and supply written here.

use chrono::{Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{
    pickup_windows, quota_usage, reservations, stock_ledger, store_days, users,
};
use mask_reservation::db::write_tx;
use mask_reservation::policy::Policy;
use mask_reservation::supply::allocation::allocate_new_day;

use crate::common::{Spawn, TestApp, assert_invariants, attr_values, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

struct Day {
    policy: Policy,
    today: NaiveDate,
}

impl Day {
    fn load(app: &TestApp) -> Day {
        let mut conn = app.db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let today = mask_reservation::reservations::rules::today(&policy, app.state.clock.now());
        Day { policy, today }
    }

    fn tz(&self) -> Tz {
        self.policy.timezone
    }

    /// `hour:minute` on `day` in the service zone, as the UTC instant stored.
    fn at(&self, day: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
        self.tz()
            .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap())
            .earliest()
            .unwrap()
            .naive_utc()
    }

    fn allocate(&self, app: &TestApp, store_id: i64, supply: i32) {
        let mut conn = app.db.get().unwrap();
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, &self.policy, store_id, self.today, supply, None)
        })
        .unwrap();
    }
}

/// A reservation of `quantity` at `store`'s first window today, made at
/// `created_at` by a new citizen and, when `picked_up_at` is given, handed over
/// by `pharmacist` then — with the window, store-day, ledger and quota
/// counters moved as the booking and pickup transactions move them.
fn reservation(
    app: &TestApp,
    day: &Day,
    store: i64,
    quantity: i32,
    created_at: NaiveDateTime,
    picked_up: Option<(NaiveDateTime, i64)>,
) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CODE: AtomicU32 = AtomicU32::new(0);
    let n = CODE.fetch_add(1, Ordering::Relaxed);
    let email = format!("citizen{n}@example.com");
    let key = app.state.keys.national_id.clone();
    let user = fixtures::user(&app.db, Role::Citizen, &email, None, true, &key);
    let mut conn = app.db.get().unwrap();
    let person: i64 = users::table
        .find(user)
        .select(users::person_id)
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap();
    let (window, store_day): (i64, i64) = pickup_windows::table
        .filter(pickup_windows::store_id.eq(store))
        .filter(pickup_windows::day.eq(day.today))
        .order(pickup_windows::starts_at)
        .select((pickup_windows::id, pickup_windows::store_day_id))
        .first(&mut conn)
        .unwrap();
    let period_start = day.policy.period.start_of(day.today);
    let (active, picked) = match picked_up {
        Some(_) => (0, quantity),
        None => (quantity, 0),
    };
    write_tx(&mut conn, |tx| {
        let id: i64 = diesel::insert_into(reservations::table)
            .values((
                reservations::user_id.eq(user),
                reservations::person_id.eq(person),
                reservations::window_id.eq(window),
                reservations::store_id.eq(store),
                reservations::quantity.eq(quantity),
                reservations::period_start.eq(period_start),
                reservations::status.eq(if picked_up.is_some() {
                    "picked_up"
                } else {
                    "active"
                }),
                reservations::pickup_code.eq(format!("T{n:07}")),
                reservations::created_at.eq(created_at),
                reservations::updated_at.eq(picked_up.map_or(created_at, |p| p.0)),
                reservations::picked_up_at.eq(picked_up.map(|p| p.0)),
                reservations::picked_up_by.eq(picked_up.map(|p| p.1)),
            ))
            .returning(reservations::id)
            .get_result(tx.conn())?;
        diesel::update(pickup_windows::table.find(window))
            .set((
                pickup_windows::reserved.eq(pickup_windows::reserved + active),
                pickup_windows::picked_up.eq(pickup_windows::picked_up + picked),
            ))
            .execute(tx.conn())?;
        diesel::update(store_days::table.find(store_day))
            .set((
                store_days::reserved.eq(store_days::reserved + active),
                store_days::picked_up.eq(store_days::picked_up + picked),
            ))
            .execute(tx.conn())?;
        let mut ledger = vec![("reservation", quantity, 0, created_at)];
        if let Some((at, _)) = picked_up {
            ledger.push(("pickup", -quantity, quantity, at));
        }
        for (kind, reserved, picked, at) in ledger {
            diesel::insert_into(stock_ledger::table)
                .values((
                    stock_ledger::store_day_id.eq(store_day),
                    stock_ledger::window_id.eq(window),
                    stock_ledger::reservation_id.eq(id),
                    stock_ledger::kind.eq(kind),
                    stock_ledger::reserved_delta.eq(reserved),
                    stock_ledger::picked_up_delta.eq(picked),
                    stock_ledger::created_at.eq(at),
                ))
                .execute(tx.conn())?;
        }
        diesel::insert_into(quota_usage::table)
            .values((
                quota_usage::person_id.eq(person),
                quota_usage::period_start.eq(period_start),
                quota_usage::used.eq(quantity),
            ))
            .execute(tx.conn())?;
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
}

fn numbers(html: &str, attr: &str) -> Vec<i64> {
    attr_values(html, attr)
        .iter()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// The part of the page inside the element that carries `marker`.
fn section<'a>(html: &'a str, marker: &str, end: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} missing"));
    let rest = &html[start..];
    &rest[..rest.find(end).unwrap()]
}

struct Scene {
    app: TestApp,
    day: Day,
}

/// Three stores in two regions with supply today, and reservations made and
/// picked up at known local hours (one made yesterday for today's window).
async fn scene() -> Scene {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 12, 0))).await;
    let day = Day::load(&app);
    let seoul_a = fixtures::store(&app.db, "11800001", "중앙약국");
    let seoul_b = fixtures::store(&app.db, "11800002", "시청약국");
    let busan = fixtures::busan_store(&app.db);
    day.allocate(&app, seoul_a, 300);
    day.allocate(&app, seoul_b, 120);
    day.allocate(&app, busan, 50);
    let key = app.state.keys.national_id.clone();
    let ph_a = fixtures::user(
        &app.db,
        Role::Pharmacist,
        "pa@example.com",
        Some(seoul_a),
        true,
        &key,
    );
    let ph_busan = fixtures::user(
        &app.db,
        Role::Pharmacist,
        "pb@example.com",
        Some(busan),
        true,
        &key,
    );
    let today = day.today;
    let yesterday = today - Duration::days(1);

    // Made at 09 (2 of them), 10, 23 and the day before; picked up at 10 and 11.
    reservation(
        &app,
        &day,
        seoul_a,
        2,
        day.at(today, 9, 5),
        Some((day.at(today, 10, 30), ph_a)),
    );
    reservation(&app, &day, seoul_a, 1, day.at(today, 9, 59), None);
    reservation(&app, &day, seoul_b, 2, day.at(today, 10, 0), None);
    reservation(
        &app,
        &day,
        busan,
        1,
        day.at(today, 23, 59),
        Some((day.at(today, 11, 0), ph_busan)),
    );
    reservation(&app, &day, busan, 2, day.at(yesterday, 23, 30), None);
    Scene { app, day }
}

#[tokio::test]
async fn the_dashboard_counts_reservations_and_pickups_per_local_hour_today() {
    let Scene { app, .. } = scene().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let html = admin.html("/admin").await;

    let table = section(&html, "data-hourly>", "</table>");
    assert_eq!(numbers(table, "data-hour"), (0..24).collect::<Vec<_>>());
    let mut made = vec![0; 24];
    made[9] = 2;
    made[10] = 1;
    made[23] = 1;
    let mut picked = vec![0; 24];
    picked[10] = 1;
    picked[11] = 1;
    assert_eq!(numbers(table, "data-made"), made);
    assert_eq!(numbers(table, "data-picked"), picked);

    // The chart draws the same figures, hour by hour, made before picked up.
    let chart = section(&html, "data-chart=\"chart-hourly\"", "</svg>");
    let drawn = numbers(chart, "data-value");
    let interleaved: Vec<i64> = made
        .iter()
        .zip(&picked)
        .flat_map(|(m, p)| [*m, *p])
        .collect();
    assert_eq!(drawn, interleaved);
    assert!(html.contains(r#"role="img" aria-labelledby="chart-hourly-title chart-hourly-desc""#));
    assert!(
        !html.contains(" style="),
        "a style attribute would be blocked by the CSP"
    );
    assert_invariants(&app.db);
}

#[tokio::test]
async fn the_dashboard_region_chart_and_table_sum_the_stores_of_each_region() {
    let Scene { app, .. } = scene().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let html = admin.html("/admin").await;

    let table = section(&html, "data-dashboard", "</table>");
    assert_eq!(
        attr_values(table, "data-region"),
        ["부산광역시", "서울특별시"]
    );
    // Busan: 1 picked up + 2 active; Seoul: 2 picked up + 1 + 2 active.
    assert_eq!(numbers(table, "data-supply"), [50, 420, 470]);
    assert_eq!(numbers(table, "data-reserved"), [2, 3, 5]);
    assert_eq!(numbers(table, "data-picked-up"), [1, 2, 3]);

    let chart = section(&html, "data-chart=\"chart-regions\"", "</svg>");
    assert_eq!(numbers(chart, "data-value"), [50, 2, 1, 420, 3, 2]);
    for label in ["부산광역시", "서울특별시"] {
        assert!(
            chart.contains(&format!(">{label}</text>")),
            "{label} not labelled"
        );
    }
    assert!(html.contains("href=\"/admin/export.csv?date="));
}

#[tokio::test]
async fn the_dashboard_names_masks_waiting_for_pickup_and_reservations_made_apart() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 12, 0))).await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::supply(&app.db, store, app.today(), 30);
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let html = admin.html("/admin").await;
    // Two different counts, two different names: never a bare "예약" twice.
    assert!(html.contains(">예약(수령 전)</th>"), "{html}");
    assert!(html.contains(">새로 들어온 예약(건)</th>"), "{html}");
    assert!(!html.contains(">예약</th>"), "{html}");
    let en = admin
        .get_with_lang("/admin", "en")
        .await
        .text()
        .await
        .unwrap();
    assert!(en.contains(">Reserved, not yet collected</th>"), "{en}");
    assert!(en.contains(">New reservations (count)</th>"), "{en}");
}

#[tokio::test]
async fn the_dashboard_without_any_activity_draws_charts_that_say_so() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 12, 0))).await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let html = admin.html("/admin").await;
    let chart = section(&html, "data-chart=\"chart-hourly\"", "</svg>");
    assert!(chart.contains("data-no-data"), "{chart}");
    assert_eq!(numbers(&html, "data-made"), vec![0; 24]);
}

#[tokio::test]
async fn the_csv_export_lists_each_store_with_supply_that_day_and_adds_up() {
    let Scene { app, day } = scene().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let res = admin
        .get(&format!("/admin/export.csv?date={}", day.today))
        .await;
    assert_eq!(res.status().as_u16(), 200);
    let header = |name: &str| res.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"masks-{}.csv\"", day.today)
    );
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "no byte order mark");
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "store_code",
            "store_name",
            "region",
            "supply",
            "window_capacity",
            "reserved",
            "picked_up",
            "no_show",
            "walk_in",
            "remaining"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let expect = |code: &str, name: &str, region: &str, figures: [i64; 7]| {
        let mut row = vec![code.to_owned(), name.to_owned(), region.to_owned()];
        row.extend(figures.iter().map(i64::to_string));
        row
    };
    assert_eq!(
        rows,
        [
            expect(
                "11800001",
                "중앙약국",
                "서울특별시",
                [300, 210, 1, 2, 0, 0, 297]
            ),
            expect(
                "11800002",
                "시청약국",
                "서울특별시",
                [120, 84, 2, 0, 0, 0, 118]
            ),
            expect(
                "21000001",
                "해운대약국",
                "부산광역시",
                [50, 35, 2, 1, 0, 0, 47]
            ),
        ]
    );
    // The columns add up to the dashboard's national figures.
    let sum = |col: usize| {
        rows.iter()
            .map(|r| r[col].parse::<i64>().unwrap())
            .sum::<i64>()
    };
    assert_eq!((sum(3), sum(5), sum(6), sum(9)), (470, 5, 3, 462));

    // Without a date, today; a day without supply is just the header.
    let default = admin.get("/admin/export.csv").await;
    assert_eq!(default.bytes().await.unwrap(), bytes);
    let empty = admin.get("/admin/export.csv?date=2020-03-09").await;
    assert_eq!(empty.status().as_u16(), 200);
    let text = String::from_utf8(empty.bytes().await.unwrap().to_vec()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[tokio::test]
async fn the_csv_export_refuses_a_date_that_is_not_one() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 12, 0))).await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    for bad in ["2026-13-01", "yesterday", "2026-02-30", "26-11-26"] {
        let res = admin.get(&format!("/admin/export.csv?date={bad}")).await;
        assert_eq!(res.status().as_u16(), 400, "{bad}");
        let body = res.text().await.unwrap();
        assert!(body.contains("<html"), "an error page, not CSV: {body}");
    }
}
