//! `/stores`: anyone finds stores by name, address or region, with today's
//! remaining stock and status, a page of 20 at a time, or nearest first from
//! where they are.

use chrono::NaiveDate;
use diesel::prelude::*;
use mask_reservation::db::schema::stores;
use mask_reservation::db::write_tx;
use mask_reservation::stores::import::{StoreRow, insert_all};

use crate::common::{Spawn, TestApp, fixtures, spawn_app_with};
use crate::reservations::{seoul, tuesday};

fn store_at(app: &TestApp, code: &str, name: &str, addr: &str, lat: f64, lng: f64) -> i64 {
    let region = addr.split_whitespace().next().unwrap().to_owned();
    let row = StoreRow {
        code: code.into(),
        name: name.into(),
        addr: addr.into(),
        store_type: "01".into(),
        lat,
        lng,
        phone: None,
        region,
    };
    let mut conn = app.db.get().unwrap();
    write_tx(&mut conn, |tx| insert_all(tx, std::slice::from_ref(&row))).unwrap()[0]
}

fn today(app: &TestApp) -> NaiveDate {
    app.today()
}

/// The store codes listed on a results page, in order.
fn codes(html: &str) -> Vec<String> {
    html.split("<tr data-store-code=\"")
        .skip(1)
        .map(|s| s[..8].to_owned())
        .collect()
}

/// The results row of `code`.
fn row<'a>(html: &'a str, code: &str) -> &'a str {
    let start = html
        .find(&format!("data-store-code=\"{code}\""))
        .unwrap_or_else(|| panic!("{code} listed"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

async fn ok(app: &TestApp, path: &str) -> String {
    let res = app.get(path).await;
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

fn q(words: &str) -> String {
    format!("/stores?q={}", urlencoding(words))
}

fn urlencoding(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Three stores in two cities.
fn three_stores(app: &TestApp) {
    store_at(
        app,
        "11800001",
        "성모약국",
        "서울특별시 중구 세종대로 110",
        37.5665,
        126.9780,
    );
    store_at(
        app,
        "11800002",
        "온누리약국",
        "서울특별시 종로구 종로 1",
        37.5700,
        126.9820,
    );
    fixtures::busan_store(&app.db);
}

#[tokio::test]
async fn stores_are_found_by_any_part_of_name_address_or_region() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    three_stores(&app);
    assert_eq!(codes(&ok(&app, &q("성모")).await), ["11800001"]);
    assert_eq!(codes(&ok(&app, &q("성모약국")).await), ["11800001"]);
    assert_eq!(codes(&ok(&app, &q("세종대로")).await), ["11800001"]);
    assert_eq!(codes(&ok(&app, &q("중구")).await), ["11800001"]);
    // Region; ordered by name.
    assert_eq!(
        codes(&ok(&app, &q("서울특별시")).await),
        ["11800001", "11800002"]
    );
    assert_eq!(codes(&ok(&app, &q("부산")).await), ["21000001"]);
    assert_eq!(codes(&ok(&app, &q("약국")).await).len(), 3);
    // Several words: each must match somewhere.
    assert_eq!(codes(&ok(&app, &q("서울 종로")).await), ["11800002"]);
    assert_eq!(
        codes(&ok(&app, &q("  중구   세종대로 ")).await),
        ["11800001"]
    );
    let none = ok(&app, &q("중구 해운대")).await;
    assert!(codes(&none).is_empty());
    assert!(none.contains("data-search-empty"));
    // Wildcards are not wildcards.
    assert!(codes(&ok(&app, &q("%")).await).is_empty());
    // Each name links to the store's page.
    assert!(
        ok(&app, &q("성모"))
            .await
            .contains("href=\"/stores/11800001\"")
    );
}

#[tokio::test]
async fn an_empty_search_asks_for_words_instead_of_listing_every_store() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    three_stores(&app);
    for path in ["/stores", "/stores?q=", "/stores?q=++"] {
        let html = ok(&app, path).await;
        assert!(html.contains("data-search-prompt"), "{path}");
        assert!(codes(&html).is_empty(), "{path}");
        assert!(html.contains("name=\"q\""));
    }
    // The form keeps the words; a very long query is cut, not refused.
    let html = ok(&app, &q("성모")).await;
    assert!(html.contains("value=\"성모\""));
    let long = format!("성모{}", "가".repeat(200));
    let html = ok(&app, &q(&long)).await;
    assert!(html.contains(&format!("value=\"성모{}\"", "가".repeat(98))));
}

#[tokio::test]
async fn results_come_20_a_page_with_links_that_keep_the_search() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    for n in 0..45 {
        store_at(
            &app,
            &format!("3100{n:04}"),
            &format!("가나약국 {n:02}"),
            "경기도 수원시 팔달구",
            37.28,
            127.01,
        );
    }
    let first = ok(&app, &q("수원")).await;
    assert_eq!(codes(&first).len(), 20);
    assert!(first.contains("data-total=\"45\""));
    assert!(first.contains("page=2"));
    let third = ok(&app, &format!("{}&page=3", q("수원"))).await;
    assert_eq!(
        codes(&third),
        (40..45).map(|n| format!("3100{n:04}")).collect::<Vec<_>>()
    );
    assert!(codes(&ok(&app, &format!("{}&page=9", q("수원"))).await).is_empty());
    for bad in ["0", "-1", "x", "1.5"] {
        let res = app.get(&format!("{}&page={bad}", q("수원"))).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn each_result_shows_today_s_remaining_and_status_by_the_public_thresholds() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let day = today(&app);
    let mut codes_by_stat = Vec::new();
    for (i, (supply, stat)) in [
        (150, "plenty"),
        (100, "plenty"),
        (99, "some"),
        (30, "some"),
        (29, "few"),
        (2, "few"),
        (1, "empty"),
        (0, "empty"),
    ]
    .into_iter()
    .enumerate()
    {
        let code = format!("1180{i:04}");
        let id = store_at(
            &app,
            &code,
            &format!("재고약국 {i}"),
            "서울특별시 중구 을지로 1",
            37.56,
            126.98,
        );
        fixtures::supply(&app.db, id, day, supply);
        codes_by_stat.push((code, supply, stat));
    }
    // Supply yesterday only: no data today.
    let stale = store_at(
        &app,
        "11809001",
        "재고약국 어제",
        "서울특별시 중구 을지로 2",
        37.56,
        126.98,
    );
    fixtures::supply(&app.db, stale, day - chrono::TimeDelta::days(1), 500);
    // Suspended: sales stopped, whatever is left.
    let stopped = store_at(
        &app,
        "11809002",
        "재고약국 중지",
        "서울특별시 중구 을지로 3",
        37.56,
        126.98,
    );
    fixtures::supply(&app.db, stopped, day, 500);
    diesel::update(stores::table.find(stopped))
        .set(stores::suspended.eq(true))
        .execute(&mut app.db.get().unwrap())
        .unwrap();
    // A reservation takes from what is left.
    let reserved_at = store_at(
        &app,
        "11809003",
        "재고약국 예약",
        "서울특별시 중구 을지로 4",
        37.56,
        126.98,
    );
    fixtures::supply(&app.db, reserved_at, day, 101);
    let window: i64 = mask_reservation::db::schema::pickup_windows::table
        .filter(mask_reservation::db::schema::pickup_windows::store_id.eq(reserved_at))
        .select(mask_reservation::db::schema::pickup_windows::id)
        .first(&mut app.db.get().unwrap())
        .unwrap();
    let key = app.state.keys.national_id.clone();
    let user = fixtures::user(
        &app.db,
        mask_reservation::accounts::Role::Citizen,
        "c@example.com",
        None,
        true,
        &key,
    );
    fixtures::reservation(&app.db, window, user, 2);

    let html = ok(&app, &q("재고약국")).await;
    for (code, supply, stat) in &codes_by_stat {
        let r = row(&html, code);
        assert!(
            r.contains(&format!("data-remain-stat=\"{stat}\"")),
            "{supply}: {r}"
        );
        assert!(
            r.contains(&format!("data-remain=\"{supply}\"")),
            "{supply}: {r}"
        );
    }
    assert!(row(&html, "11800000").contains("충분"));
    let r = row(&html, "11809001");
    assert!(
        r.contains("data-remain-stat=\"\"") && r.contains("재고 정보 없음"),
        "{r}"
    );
    assert!(!r.contains("data-remain="), "{r}");
    let r = row(&html, "11809002");
    assert!(
        r.contains("data-remain-stat=\"break\"") && r.contains("판매 중지"),
        "{r}"
    );
    assert!(!r.contains("data-remain="), "{r}");
    let r = row(&html, "11809003");
    assert!(
        r.contains("data-remain=\"99\"") && r.contains("data-remain-stat=\"some\""),
        "{r}"
    );
    crate::common::assert_invariants(&app.db);
}

/// From Seoul City Hall.
const HERE: (&str, &str) = ("37.56650", "126.97800");

fn near(extra: &str) -> String {
    format!("/stores?lat={}&lng={}{extra}", HERE.0, HERE.1)
}

#[tokio::test]
async fn near_me_lists_stores_within_5_km_nearest_first_with_their_distance() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    store_at(
        &app,
        "11800003",
        "삼킬로약국",
        "서울특별시 용산구 한강대로 1",
        37.5965,
        126.9780,
    );
    store_at(
        &app,
        "11800001",
        "백미터약국",
        "서울특별시 중구 세종대로 1",
        37.5674,
        126.9780,
    );
    store_at(
        &app,
        "11800004",
        "멀리약국",
        "경기도 고양시 덕양구 1",
        37.6665,
        126.9780,
    );
    store_at(
        &app,
        "11800002",
        "일킬로약국",
        "서울특별시 종로구 종로 1",
        37.5565,
        126.9780,
    );
    fixtures::busan_store(&app.db);

    let html = ok(&app, &near("")).await;
    assert_eq!(codes(&html), ["11800001", "11800002", "11800003"]);
    assert!(
        row(&html, "11800001").contains("data-distance>100m<"),
        "{}",
        row(&html, "11800001")
    );
    assert!(row(&html, "11800002").contains("1.1km"));
    assert!(row(&html, "11800003").contains("3.3km"));
    // Pages keep the place.
    assert!(!html.contains("data-search-prompt"));

    // With words, every match comes, nearest first, however far.
    let html = ok(&app, &near(&format!("&q={}", urlencoding("약국")))).await;
    assert_eq!(
        codes(&html),
        ["11800001", "11800002", "11800003", "11800004", "21000001"]
    );
    let html = ok(&app, &near(&format!("&q={}", urlencoding("서울")))).await;
    assert_eq!(codes(&html), ["11800001", "11800002", "11800003"]);

    // Nothing within reach.
    let html = ok(&app, "/stores?lat=33.2&lng=126.5").await;
    assert!(codes(&html).is_empty());
    assert!(html.contains("data-search-empty"));
}

#[tokio::test]
async fn a_place_that_is_not_one_is_refused() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    for bad in [
        "/stores?lat=abc&lng=126.9",
        "/stores?lat=37.5&lng=",
        "/stores?lng=126.9",
        "/stores?lat=91&lng=126.9",
        "/stores?lat=37.5&lng=181",
        "/stores?lat=NaN&lng=126.9",
        "/stores?lat=inf&lng=126.9",
    ] {
        let res = app.get(bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let html = res.text().await.unwrap();
        assert!(html.contains("<h1"), "an error page for {bad}");
    }
}

#[tokio::test]
async fn the_home_page_has_the_search_form_and_keeps_the_citizen_s_quota() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    let html = ok(&app, "/").await;
    assert!(html.contains("action=\"/stores\""));
    assert!(html.contains("name=\"q\""));
    assert!(html.contains("/static/js/near-me.js"));
    let citizen = app
        .logged_in_as(
            mask_reservation::accounts::Role::Citizen,
            "c@example.com",
            None,
        )
        .await;
    let html = citizen.html("/").await;
    assert!(html.contains("action=\"/stores\""));
    assert!(html.contains("data-quota-left=\"2\""));
    let js = app.get("/static/js/near-me.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("geolocation"));
}

#[tokio::test]
async fn at_most_four_words_are_searched_for_and_the_page_says_which_were_left_out() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    three_stores(&app);
    // Five words: the first four are searched for, the fifth is named as left out.
    let html = ok(&app, &q("서울특별시 중구 세종대로 110 온누리약국")).await;
    assert_eq!(codes(&html), ["11800001"], "found by the first four words");
    assert!(html.contains("data-words-left-out"), "{html}");
    assert!(
        html.contains("‘서울특별시 중구 세종대로 110’(으)로 찾은 결과이며 ‘온누리약국’은(는) 빼고"),
        "{html}"
    );
    let en = app
        .get_with_lang(&q("a b c d e f"), "en")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        en.contains(
            "Only 4 words are searched for: these are the stores for “a b c d”, without “e f”."
        ),
        "{en}"
    );
    // Eight one-letter words: the first four, and the message.
    let html = ok(&app, &q("서 울 중 구 세 종 대 로")).await;
    assert_eq!(codes(&html), ["11800001"]);
    assert!(html.contains("data-words-left-out"));
    // Four words or fewer, or words implied by others: nothing is left out,
    // and the results are those of every word.
    for (query, expected) in [
        ("서울 중구 세종대로 110", vec!["11800001"]),
        ("중 중구 서 서울 세종 세종대로", vec!["11800001"]),
        ("약국 약국 약국 약국 약국 성모약국", vec!["11800001"]),
        ("서울 서울 서울 서울 서울 종로", vec!["11800002"]),
    ] {
        let html = ok(&app, &q(query)).await;
        assert_eq!(codes(&html), expected, "{query}");
        assert!(!html.contains("data-words-left-out"), "{query}");
    }
    // Near a point, the same words.
    let html = ok(
        &app,
        &near(&format!(
            "&q={}",
            urlencoding("서울 중구 세종대로 110 온누리약국")
        )),
    )
    .await;
    assert_eq!(codes(&html), ["11800001"]);
    assert!(html.contains("data-words-left-out"));
}

#[tokio::test]
async fn a_store_is_found_by_its_text_as_written_last_by_any_path() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    three_stores(&app);
    let admin = app
        .logged_in_as(
            mask_reservation::accounts::Role::Admin,
            "a@example.com",
            None,
        )
        .await;
    // Created by the form.
    let res = admin
        .post_form(
            "/admin/stores",
            &[
                ("code", "11800007"),
                ("name", "Olive약국"),
                ("addr", "대구광역시 중구 동성로 7"),
                ("type", "01"),
                ("lat", "35.87"),
                ("lng", "128.6"),
                ("phone", ""),
                ("region", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(codes(&ok(&app, &q("olive 동성로")).await), ["11800007"]);
    assert_eq!(codes(&ok(&app, &q("OLIVE")).await), ["11800007"]);
    // Renamed and moved by the form: found by the new text, not the old.
    let res = admin
        .post_form(
            "/admin/stores/11800007",
            &[
                ("code", "11800007"),
                ("name", "새올리브약국"),
                ("addr", "대구광역시 수성구 달구벌대로 9"),
                ("type", "01"),
                ("lat", "35.87"),
                ("lng", "128.6"),
                ("phone", ""),
                ("region", "대구"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(codes(&ok(&app, &q("olive")).await).is_empty());
    assert!(codes(&ok(&app, &q("동성로")).await).is_empty());
    assert_eq!(
        codes(&ok(&app, &q("새올리브 달구벌대로")).await),
        ["11800007"]
    );
    // Renamed by a CSV import (an upsert), and a new one created by it.
    let csv = "code,name,addr,type,lat,lng\n\
               11800002,종각약국,서울특별시 종로구 종로 1,01,37.57,126.98\n\
               11800008,광화문약국,서울특별시 종로구 세종대로 172,01,37.57,126.97\n";
    let res = admin
        .post_file(
            "/admin/stores/import",
            &[],
            "stores.csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(codes(&ok(&app, &q("온누리")).await).is_empty());
    assert_eq!(codes(&ok(&app, &q("종각")).await), ["11800002"]);
    assert_eq!(
        codes(&ok(&app, &q("세종대로")).await),
        ["11800008", "11800001"],
        "ordered by name"
    );
    // A word never spans two fields (name, then address).
    assert!(codes(&ok(&app, &q("약국서울특별시")).await).is_empty());
}

#[tokio::test]
async fn the_migration_fills_the_search_text_of_the_stores_there_are() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    three_stores(&app);
    let mut conn = app.db.get().unwrap();
    // As a store written before the column existed.
    diesel::update(stores::table)
        .set(stores::search_text.eq(""))
        .execute(&mut conn)
        .unwrap();
    assert!(codes(&ok(&app, &q("성모")).await).is_empty());
    let tree = match app.backend() {
        mask_reservation::db::Backend::Sqlite => "sqlite",
        mask_reservation::db::Backend::Postgres => "postgres",
    };
    let up = std::fs::read_to_string(crate::common::repo_path(&format!(
        "migrations/{tree}/2026-11-29-093200_store_search_text/up.sql"
    )))
    .unwrap();
    let fill = up
        .lines()
        .find(|l| l.starts_with("UPDATE stores"))
        .expect("the migration fills the column");
    diesel::sql_query(fill).execute(&mut conn).unwrap();
    let filled: Vec<String> = stores::table
        .order(stores::code)
        .select(stores::search_text)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        filled[0],
        mask_reservation::stores::search::queries::search_text(
            "성모약국",
            "서울특별시 중구 세종대로 110",
            "서울특별시"
        )
    );
    assert_eq!(codes(&ok(&app, &q("성모 세종대로")).await), ["11800001"]);
    assert_eq!(codes(&ok(&app, &q("부산")).await), ["21000001"]);
}
