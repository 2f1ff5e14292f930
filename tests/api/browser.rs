//! User journeys in a real browser: headless Chromium over WebDriver.

use fantoccini::Locator;

use crate::common::browser::{
    Browser, fill, fill_national_id, submit, tick, wait_for, wait_for_text,
};
use chrono::{DateTime, NaiveDate, Utc};

use crate::common::{Spawn, TestApp, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

/// The app with its clock at 10:00 on a Tuesday in Seoul: no journey depends
/// on the day it runs.
async fn spawn_on_a_tuesday() -> TestApp {
    spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await
}

#[tokio::test]
async fn a_visitor_reads_the_home_page_and_switches_to_english_and_back() {
    let app = spawn_on_a_tuesday().await;
    let browser = Browser::start().await;
    let c = &browser.client;

    c.goto(&app.url("/")).await.unwrap();
    let lang = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    // Chromium's own language is English, so Accept-Language says en: the
    // switch is what this test is about, so start from Korean explicitly.
    if lang.as_deref() != Some("ko") {
        c.find(Locator::Css("[data-lang-switch='ko']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    wait_for_text(c, "h1", "공적 마스크, 줄 서지 말고 예약하세요").await;
    let rule = c
        .find(Locator::Css("[data-rule='quota_per_period']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(rule.contains("2개"), "{rule}");

    c.find(Locator::Css("[data-lang-switch='en']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(c, "h1", "Public masks: reserve instead of queueing").await;
    let lang = c
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    assert_eq!(lang.as_deref(), Some("en"));
    assert_eq!(c.current_url().await.unwrap().path(), "/");

    // The choice survives navigation.
    c.goto(&app.url("/no-such-page")).await.unwrap();
    wait_for_text(c, "h1", "Page not found").await;

    c.find(Locator::Css("[data-lang-switch='ko']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(c, "h1", "페이지를 찾을 수 없습니다").await;
    browser.close().await;
}

#[tokio::test]
async fn a_citizen_signs_up_verifies_by_mail_and_logs_in() {
    let app = spawn_on_a_tuesday().await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let national_id = crate::common::fixtures::national_id("900215154321");
    let password = crate::common::fixtures::PASSWORD;

    c.goto(&app.url("/signup")).await.unwrap();
    fill_national_id(c, &national_id).await;
    fill(c, "name", "김민지").await;
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", password).await;
    fill(c, "password_confirm", "not the same").await;
    tick(c, "consent").await;
    submit(c, "/signup").await;
    // A mistake brings the form back with the values kept and the error by its field.
    wait_for(c, "[data-error-for='password_confirm']").await;
    let kept = c
        .find(Locator::Css("input[name='email']"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("minji@example.com"));

    fill_national_id(c, &national_id).await;
    fill(c, "password", password).await;
    fill(c, "password_confirm", password).await;
    tick(c, "consent").await;
    submit(c, "/signup").await;
    // Not logged in yet: the page says a mail went to the address.
    wait_for(c, "[data-signup-sent]").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/signup/sent");

    // The verification mail went through the SMTP server; its link confirms.
    let mail = app.smtp.wait_for(1).await.remove(0);
    let body = mail.text_body();
    let start = body.find("http://").expect("a link in the mail");
    let link = body[start..].split_whitespace().next().unwrap().to_owned();
    c.goto(&link).await.unwrap();
    wait_for(c, "[data-message='verify.done']").await;

    // Then log in, and the reservations page no longer asks for verification.
    c.goto(&app.url("/reservations")).await.unwrap();
    wait_for(c, "form[action='/login']").await;
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", password).await;
    submit(c, "/login").await;
    wait_for(c, "[data-quota-left]").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/reservations");
    assert!(
        c.find(Locator::Css("[data-unverified]")).await.is_err(),
        "verified now"
    );
    let who = wait_for(c, "[data-user-role='citizen']")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(who, "김민지");

    submit(c, "/logout").await;
    wait_for(c, "a[href='/signup']").await;
    browser.close().await;
}

/// An administrator's day: import the store list, allocate today's and
/// tomorrow's supply from a file, give one window less, and read the
/// dashboard's chart of today by region.
#[tokio::test]
async fn an_administrator_imports_stores_allocates_supply_by_file_edits_a_window_and_sees_the_chart()
 {
    use diesel::prelude::*;
    use mask_reservation::accounts::Role;
    use mask_reservation::db::schema::{pickup_windows, store_days, stores};

    let app = spawn_on_a_tuesday().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Admin, "admin@example.com", None, true, &key);
    let today = app.today();
    let tomorrow = today + chrono::Days::new(1);
    let files = tempfile::tempdir().unwrap();
    let stores_csv = files.path().join("stores.csv");
    std::fs::write(
        &stores_csv,
        "\u{feff}code,name,addr,type,lat,lng,phone\n\
         31802095,온누리약국,서울특별시 중구 세종대로 1,01,37.5665,126.9780,02-123-4567\n\
         31802096,해운대약국,부산광역시 해운대구 해운대로 1,01,35.1631,129.1635,\n\
         31802097,광화문우체국,서울특별시 종로구 세종대로 152,02,37.5700,126.9769,\n",
    )
    .unwrap();
    let supply_csv = files.path().join("supply.csv");
    let mut supply = "store_code,date,quantity\n".to_owned();
    for (code, quantity) in [("31802095", 120), ("31802096", 90), ("31802097", 60)] {
        supply.push_str(&format!(
            "{code},{today},{quantity}\n{code},{tomorrow},{quantity}\n"
        ));
    }
    std::fs::write(&supply_csv, supply).unwrap();

    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "admin@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "[data-dashboard], [data-no-supply]").await;

    // The store list, from a file.
    c.goto(&app.url("/admin/stores")).await.unwrap();
    upload(c, "/admin/stores/import", &stores_csv).await;
    let done = wait_for(c, "[data-import-done]").await;
    assert_eq!(
        done.attr("data-created").await.unwrap().as_deref(),
        Some("3")
    );
    let store_count: i64 = stores::table
        .count()
        .get_result(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(store_count, 3);

    // Today's and tomorrow's supply, from a file: windows for every store-day.
    c.goto(&app.url(&format!("/admin/supply?date={tomorrow}")))
        .await
        .unwrap();
    upload(c, "/admin/supply/import", &supply_csv).await;
    // The preview first; the file applies once confirmed.
    wait_for(c, "[data-confirm-import]").await;
    submit(c, "/admin/supply/import").await;
    let done = wait_for(c, "[data-import-result]").await;
    assert_eq!(
        done.attr("data-created").await.unwrap().as_deref(),
        Some("6")
    );
    let windows: Vec<(i64, i32)> = pickup_windows::table
        .inner_join(stores::table)
        .filter(stores::code.eq("31802095"))
        .filter(pickup_windows::day.eq(tomorrow))
        .order(pickup_windows::starts_at)
        .select((pickup_windows::id, pickup_windows::capacity))
        .load(&mut app.db.get().unwrap())
        .unwrap();
    // 120 supplied: the walk-in share (36) stays at the counter.
    assert_eq!(
        windows.iter().map(|w| w.1).collect::<Vec<_>>(),
        [28, 28, 28]
    );

    // One window gets less; what it gives up becomes walk-in stock too.
    c.goto(&app.url("/admin/stores/31802095")).await.unwrap();
    let first = windows[0].0;
    let input = wait_for(c, &format!("#cap-{first}")).await;
    input.clear().await.unwrap();
    input.send_keys("25").await.unwrap();
    submit(c, &format!("/admin/stores/31802095/windows/{first}")).await;
    wait_for(c, "[data-flash='admin.windows.saved']").await;
    let (capacity, window_capacity): (i32, i32) = pickup_windows::table
        .inner_join(store_days::table)
        .filter(pickup_windows::id.eq(first))
        .select((pickup_windows::capacity, store_days::window_capacity))
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!((capacity, window_capacity), (25, 81));

    // Today's supply by region, as a chart and as a table.
    c.goto(&app.url("/admin")).await.unwrap();
    let chart = wait_for(c, "[data-region-chart] svg").await;
    let text = chart.text().await.unwrap();
    assert!(
        text.contains("서울특별시") && text.contains("부산광역시"),
        "{text}"
    );
    let seoul = wait_for(c, "tr[data-region='서울특별시']")
        .await
        .attr("data-supply")
        .await
        .unwrap();
    assert_eq!(seoul.as_deref(), Some("180"));
    browser.close().await;
}

/// Chooses `file` in the page's file input and sends the form posting to
/// `action`.
async fn upload(c: &fantoccini::Client, action: &str, file: &std::path::Path) {
    c.find(Locator::Css(&format!(
        "form[action='{action}'] input[type='file']"
    )))
    .await
    .unwrap()
    .send_keys(file.to_str().unwrap())
    .await
    .unwrap();
    submit(c, action).await;
}

/// A citizen's week at 23:00 on a Sunday in Seoul: every window they can
/// book is in the next week, whose quota is the one that goes down.
#[tokio::test]
async fn a_citizen_reserves_on_a_sunday_night_for_the_next_week() {
    let sunday = tuesday() + chrono::Days::new(5);
    let monday = sunday + chrono::Days::new(1);
    citizen_journey(seoul(sunday, 23, 0), monday).await;
}

/// The same at 00:30 on a Monday in Seoul (still Sunday in UTC): today's
/// windows count in the week that has just begun.
#[tokio::test]
async fn a_citizen_reserves_just_after_midnight_on_a_monday_for_the_same_day() {
    let monday = tuesday() + chrono::Days::new(6);
    citizen_journey(seoul(monday, 0, 30), monday).await;
}

/// A citizen's week: find a pharmacy by a word of its name, reserve the first
/// window of `day` with the clock at `now`, show the pickup code and its QR
/// code, then cancel and get the quota back — each step read in the line of
/// the week the window is in.
async fn citizen_journey(now: DateTime<Utc>, day: NaiveDate) {
    use diesel::prelude::*;
    use mask_reservation::accounts::Role;
    use mask_reservation::db::schema::reservations;
    use mask_reservation::policy::Policy;
    use mask_reservation::reservations::rules;

    let app = spawn_app_with(Spawn::at(now)).await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "minji@example.com",
        None,
        true,
        &key,
    );
    let store = fixtures::store(&app.db, "11800001", "세종로약국");
    fixtures::store(&app.db, "11800002", "광화문약국");
    fixtures::supply(&app.db, store, day, 90);
    let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
    let booked_week = rules::period_of(&policy, day);
    let this_week = rules::period_of(&policy, rules::today(&policy, now));
    // The week of the window, and — on Sunday night — the week ending.
    let quota_left = |week: NaiveDate| format!("[data-period='{week}'][data-quota-left]");

    let browser = Browser::start_in("ko-KR").await;
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    assert_left(c, &quota_left(booked_week), "2").await;

    // The search form on the home page finds the store by its name.
    c.goto(&app.url("/")).await.unwrap();
    fill(c, "q", "세종로").await;
    submit(c, "/stores").await;
    let results = wait_for(c, "[data-search-results]").await;
    let rows = results
        .find_all(Locator::Css("tr[data-store-code]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only the matching store");
    c.find(Locator::Css("tr[data-store-code='11800001'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The first window of the day: reserve one mask.
    let form = wait_for(c, "form[data-reserve-form]").await;
    reserve_with(&form, "1").await;

    // The reservation page: the code, large and grouped, with its QR code.
    let code = wait_for(c, "[data-pickup-code]").await;
    let plain = code.attr("data-pickup-code").await.unwrap().unwrap();
    assert_eq!(plain.len(), 8);
    let shown = code.text().await.unwrap();
    assert_eq!(shown, format!("{}-{}", &plain[..4], &plain[4..]));
    wait_for(c, ".qr-box svg[role='img']").await;
    let stored: String = reservations::table
        .select(reservations::pickup_code)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(stored, plain);

    // The list, the home page and the store page all count the booked week
    // down, and any other week they show stays whole.
    for page in ["/reservations", "/", "/stores/11800001"] {
        c.goto(&app.url(page)).await.unwrap();
        assert_left(c, &quota_left(booked_week), "1").await;
        if this_week != booked_week {
            assert_left(c, &quota_left(this_week), "2").await;
        }
    }

    // Cancelled: the quota comes back.
    c.goto(&app.url("/reservations")).await.unwrap();
    c.find(Locator::Css("[data-reservation-id] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-cancel-link]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-cancel-form]").await;
    c.find(Locator::Css("[data-cancel-form] button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-status='cancelled']").await;
    c.goto(&app.url("/reservations")).await.unwrap();
    assert_left(c, &quota_left(booked_week), "2").await;
    crate::common::assert_invariants(&app.db);
    browser.close().await;
}

/// The quota line `selector` shows `left`.
async fn assert_left(c: &fantoccini::Client, selector: &str, left: &str) {
    let line = wait_for(c, selector).await;
    assert_eq!(
        line.attr("data-quota-left").await.unwrap().as_deref(),
        Some(left),
        "{selector}"
    );
}

#[tokio::test]
async fn a_pharmacist_scans_a_code_hands_it_over_and_sells_to_a_walk_in_customer() {
    use mask_reservation::accounts::Role;
    use mask_reservation::clock::Clock;

    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 10, 0))),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 30);
    crate::pharmacy_pickup::walk_in_stock(&app.db, windows[2], 5);
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Pharmacist,
        "p@example.com",
        Some(store),
        true,
        &key,
    );
    let buyer = fixtures::user(&app.db, Role::Citizen, "kim@example.com", None, true, &key);
    let reservation = fixtures::reservation(&app.db, windows[0], buyer, 2);
    let code: String = {
        use diesel::prelude::*;
        use mask_reservation::db::schema::reservations;
        reservations::table
            .find(reservation)
            .select(reservations::pickup_code)
            .first(&mut app.db.get().unwrap())
            .unwrap()
    };

    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "p@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
    c.goto(&app.url("/pharmacy/pickup")).await.unwrap();

    // A scanner types into the focused field and ends with Enter.
    let field = wait_for(c, "input[name='code'][autofocus]").await;
    let typed = format!("{}-{}\u{E007}", &code[..4], &code[4..]).to_lowercase();
    field.send_keys(&typed).await.unwrap();
    wait_for(c, "[data-found][data-quantity='2']").await;
    c.find(Locator::Css("button[data-confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-handed][data-quantity='2']").await;
    let focused: bool = c
        .execute(
            "return document.activeElement && document.activeElement.name === 'code'
                && document.activeElement.value === '';",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(focused, "the empty code field waits for the next scan");

    // A walk-in sale.
    c.find(Locator::Css("a[data-nav-walk-in]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-walk-in-left='5']").await;
    fill(c, "national_id", &fixtures::national_id("850101123456")).await;
    fill(c, "quantity", "2").await;
    submit(c, "/pharmacy/walk-in").await;
    wait_for(c, "[data-result='sold']").await;
    wait_for(c, "[data-walk-in-left='3']").await;
    wait_for(c, "tr[data-sale-id] button[data-undo]").await;
    crate::common::assert_invariants(&app.db);
    browser.close().await;
}

/// A parent adds their child, reserves the child's masks, and the pharmacist
/// hands them over once the family documents are ticked as seen.
#[tokio::test]
async fn a_citizen_adds_a_child_reserves_for_them_and_the_pharmacist_hands_over_with_the_tick() {
    use diesel::prelude::*;
    use mask_reservation::accounts::Role;
    use mask_reservation::db::schema::reservations;

    let app = spawn_on_a_tuesday().await;
    let key = app.state.keys.national_id.clone();
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::supply(&app.db, store, tuesday(), 60);
    fixtures::user(
        &app.db,
        Role::Citizen,
        "minji@example.com",
        None,
        true,
        &key,
    );
    fixtures::user(
        &app.db,
        Role::Pharmacist,
        "p@example.com",
        Some(store),
        true,
        &key,
    );

    let browser = Browser::start_in("ko-KR").await;
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "minji@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "[data-quota-left]").await;

    // The child, from the navigation's link.
    c.find(Locator::Css("a[data-nav-dependants]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "form[data-add-dependant]").await;
    browser.check_page("dependants-empty").await;
    fill(c, "name", "홍길동").await;
    fill_national_id(c, &crate::dependants::child_id()).await;
    submit(c, "/dependants").await;
    let row = wait_for(c, "[data-dependant-id]").await;
    let link = row.attr("data-dependant-id").await.unwrap().unwrap();
    wait_for(c, "[data-birth-year='2012']").await;
    browser.check_page("dependants").await;

    // The store page: the first window's form, for the child.
    c.goto(&app.url("/stores/11800001")).await.unwrap();
    let form = wait_for(c, "form[data-reserve-form]").await;
    browser.check_page("store-with-dependants").await;
    form.find(Locator::Css("select[name='person']"))
        .await
        .unwrap()
        .select_by_value(&link)
        .await
        .unwrap();
    reserve_with(&form, "2").await;
    let code = wait_for(c, "[data-pickup-code]")
        .await
        .attr("data-pickup-code")
        .await
        .unwrap()
        .unwrap();
    let line = wait_for(c, "[data-proxy-line]").await.text().await.unwrap();
    assert!(line.contains("홍*동(2012년생)"), "{line}");
    submit(c, "/logout").await;
    wait_for(c, "a[href='/signup']").await;

    // At the counter: scanned, shown with the box; ticked, handed over.
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "p@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
    c.goto(&app.url("/pharmacy/pickup")).await.unwrap();
    let field = wait_for(c, "input[name='code'][autofocus]").await;
    field.send_keys(&format!("{code}\u{E007}")).await.unwrap();
    wait_for(c, "[data-found][data-proxy]").await;
    browser.check_page("pickup-proxy").await;
    c.find(Locator::Css("input[name='proxy_checked']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("button[data-confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(c, "[data-handed][data-quantity='2']").await;
    wait_for(c, "[data-proxy-checked]").await;
    let checked: Option<chrono::NaiveDateTime> = reservations::table
        .select(reservations::proxy_checked_at)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    assert!(checked.is_some());
    crate::common::assert_invariants(&app.db);
    browser.close().await;
}

/// Types `quantity` into a reserve form and sends it.
async fn reserve_with(form: &fantoccini::elements::Element, quantity: &str) {
    let field = form
        .find(Locator::Css("input[name='quantity']"))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(quantity).await.unwrap();
    form.find(Locator::Css("button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}
