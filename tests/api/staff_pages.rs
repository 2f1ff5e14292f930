//! What the overview pages say: the pharmacist's and the administrator's, with
//! real stock (each sees the figures of their own scope and nothing of anyone
//! else's), the administrator's account list, and the home page for a visitor
//! and for a citizen.

use crate::common::fixtures;
use crate::common::{Spawn, TestApp, attr_values, spawn_app, spawn_app_with};
use crate::reservations::{seoul, tuesday};
use mask_reservation::accounts::Role;

/// Allocates `supply` to `store_id` for today in the service zone.
/// The app at 08:00 on a Tuesday, before any window of the day has started:
/// what a page counts as bookable or left for walk-ins depends on the hour,
/// never the hour the test runs at.
async fn morning_app() -> TestApp {
    spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await
}

fn allocate_today(app: &TestApp, store_id: i64, supply: i32) {
    let today = app.today();
    fixtures::supply(&app.db, store_id, today, supply);
}

#[tokio::test]
async fn a_pharmacist_sees_todays_windows_and_walk_in_stock_of_their_own_store_only() {
    let app = morning_app().await;
    let mine = fixtures::store(&app.db, "11800001", "중앙약국");
    let other = fixtures::busan_store(&app.db);
    allocate_today(&app, mine, 301);
    allocate_today(&app, other, 50);
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(mine))
        .await;

    let html = pharmacist.html("/pharmacy").await;
    assert!(
        html.contains("중앙약국") && html.contains("11800001"),
        "{html}"
    );
    assert!(!html.contains("해운대약국"), "another store's name leaked");
    // The walk-in share (30 %, rounded down: 90) stays at the counter; the
    // default template's three windows share the rest, the remainder to the
    // earliest.
    assert_eq!(attr_values(&html, "data-capacity"), ["71", "70", "70"]);
    assert_eq!(attr_values(&html, "data-remaining"), ["71", "70", "70"]);
    assert_eq!(attr_values(&html, "data-reserved"), ["0", "0", "0"]);
    assert_eq!(attr_values(&html, "data-supply"), ["301"]);
    assert_eq!(attr_values(&html, "data-walk-in-left"), ["90"]);
}

#[tokio::test]
async fn a_pharmacist_whose_store_has_no_supply_today_is_told_so() {
    let app = spawn_app().await;
    let mine = fixtures::store(&app.db, "11800001", "중앙약국");
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(mine))
        .await;
    let html = pharmacist.html("/pharmacy").await;
    assert!(html.contains("data-no-supply"), "{html}");
    assert!(!html.contains("data-window"));
}

#[tokio::test]
async fn the_admin_dashboard_totals_today_by_region_and_nationally() {
    let app = morning_app().await;
    let seoul_a = fixtures::store(&app.db, "11800001", "중앙약국");
    let seoul_b = fixtures::store(&app.db, "11800002", "시청약국");
    let busan = fixtures::busan_store(&app.db);
    allocate_today(&app, seoul_a, 300);
    allocate_today(&app, seoul_b, 120);
    allocate_today(&app, busan, 50);
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;

    let html = admin.html("/admin").await;
    assert_eq!(
        attr_values(&html, "data-region"),
        ["부산광역시", "서울특별시"]
    );
    assert_eq!(attr_values(&html, "data-stores"), ["1", "2", "3"]);
    assert_eq!(attr_values(&html, "data-supply"), ["50", "420", "470"]);
}

#[tokio::test]
async fn the_admin_dashboard_without_any_supply_today_says_so() {
    let app = spawn_app().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let html = admin.html("/admin").await;
    assert!(html.contains("data-no-supply"), "{html}");
}

#[tokio::test]
async fn disabling_an_account_goes_through_a_confirmation_page_that_names_it() {
    let app = spawn_app().await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let key = app.state.keys.national_id.clone();
    let pharmacist = fixtures::user(
        &app.db,
        Role::Pharmacist,
        "yaksa@example.com",
        Some(store),
        true,
        &key,
    );
    let admin = app
        .logged_in_as(Role::Admin, "admin@example.com", None)
        .await;

    // The list shows roles and states in words, and links to the confirmation
    // instead of disabling in one click.
    let list = admin.html("/admin/users").await;
    assert!(list.contains("data-role=\"pharmacist\">약사<"), "{list}");
    assert!(list.contains(&format!("href=\"/admin/users/{pharmacist}/disable\"")));
    assert!(!list.contains(&format!("action=\"/admin/users/{pharmacist}/disable\"")));
    assert!(list.contains("정상"));

    let confirm = admin
        .html(&format!("/admin/users/{pharmacist}/disable"))
        .await;
    assert!(confirm.contains("yaksa@example.com"), "{confirm}");
    assert!(confirm.contains(&format!("action=\"/admin/users/{pharmacist}/disable\"")));
    assert_eq!(
        admin
            .get(&format!("/admin/users/{pharmacist}/disable"))
            .await
            .status(),
        200,
        "looking at the confirmation changes nothing"
    );
    assert!(
        admin
            .html("/admin/users")
            .await
            .contains("data-disabled=\"false\"")
    );

    let res = admin
        .post_form(&format!("/admin/users/{pharmacist}/disable"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let list = admin.html("/admin/users").await;
    assert!(list.contains("중지됨"), "{list}");
}

#[tokio::test]
async fn the_home_page_asks_a_visitor_to_sign_up_and_a_citizen_sees_the_week_and_quota_instead() {
    let app = spawn_app().await;
    let anonymous = app.html("/").await;
    assert_eq!(
        anonymous.matches("data-cta").count(),
        1,
        "one call to action"
    );
    assert!(anonymous.contains("href=\"/signup\" data-cta"));

    let citizen = app.logged_in_as(Role::Citizen, "c@example.com", None).await;
    let html = citizen.html("/").await;
    assert!(!html.contains("data-cta"));
    assert!(html.contains("data-quota-left=\"2\""), "{html}");
    assert!(
        html.contains("이번 주("),
        "the period is named as this week: {html}"
    );
    assert!(
        html.contains("href=\"/reservations\">내 예약</a>"),
        "the navigation names the page"
    );
}
