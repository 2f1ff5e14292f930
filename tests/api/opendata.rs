//! Open data: the 2020 public-mask API (against the recorded launch-day
//! answer, key by key), the status thresholds, freshness within a second,
//! geo and paging edges, bad input, CSV, OpenAPI, CORS and ETags, and the map.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use mask_reservation::clock::Clock;
use mask_reservation::db::schema::{stock_ledger, store_days, stores};
use mask_reservation::db::{Db, write_tx};
use mask_reservation::opendata::query::{MAX_ADDRESS_STORES, MIN_ADDRESS_CHARS};
use mask_reservation::policy::Policy;
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::supply::allocation::allocate_new_day;
use serde_json::Value;

use crate::common::browser::{Browser, wait_for};
use crate::common::{Spawn, TestApp, eventually, repo_path, spawn_app_with};
use crate::reservations::{seoul, tuesday};

const API: &str = "/corona19-masks/v1";

/// The keys of a store of `storesByGeo` and `storesByAddr`, as in 2020.
const NINE_KEYS: [&str; 9] = [
    "addr",
    "code",
    "created_at",
    "lat",
    "lng",
    "name",
    "remain_stat",
    "stock_at",
    "type",
];

/// The columns of `stock.csv`, and the keys of a store in `stock.json`.
const STOCK_COLUMNS: [&str; 12] = [
    "code",
    "name",
    "addr",
    "type",
    "lat",
    "lng",
    "remain",
    "reservable",
    "walk_in",
    "in_draw",
    "remain_stat",
    "stock_at",
];

/// How long a test waits for the snapshot to show a change (it is refreshed
/// every second).
const FRESH: Duration = Duration::from_secs(10);

fn sample() -> Value {
    let path =
        repo_path("tests/api/fixtures/opendata/storesByAddr-2020-03-11-seongnam-seohyeon.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_hangul(c: char) -> bool {
    ('가'..='힣').contains(&c)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn store_row(code: &str, name: &str, addr: &str, lat: f64, lng: f64) -> StoreRow {
    StoreRow {
        code: code.into(),
        name: name.into(),
        addr: addr.into(),
        store_type: "01".into(),
        lat,
        lng,
        phone: None,
        region: addr.split(' ').next().unwrap_or("").into(),
    }
}

fn add_stores(db: &Db, rows: &[StoreRow]) -> Vec<i64> {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| insert_all(tx, rows)).unwrap()
}

fn add_store(db: &Db, code: &str, addr: &str, lat: f64, lng: f64) -> i64 {
    add_stores(
        db,
        &[store_row(code, &format!("약국 {code}"), addr, lat, lng)],
    )[0]
}

/// The service day every test here runs on: the app's clock stands at 10:00
/// in Seoul on it, whatever day the tests run.
fn today() -> chrono::NaiveDate {
    tuesday()
}

async fn spawn() -> TestApp {
    spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(today(), 10, 0))),
        ..Spawn::default()
    })
    .await
}

/// Today's supply for a store, split over the default windows.
fn supply(db: &Db, store_id: i64, quantity: i32) {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| {
        allocate_new_day(tx, &Policy::default(), store_id, today(), quantity, None)
    })
    .unwrap();
}

fn suspend(db: &Db, store_id: i64) {
    let mut conn = db.get().unwrap();
    diesel::update(stores::table.find(store_id))
        .set((
            stores::suspended.eq(true),
            stores::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(&mut conn)
        .unwrap();
}

/// Moves today's counters of a store as a booking or a pickup would, stamped
/// `at`, with its ledger row.
fn move_stock(
    db: &Db,
    store_id: i64,
    kind: &str,
    reserved: i32,
    picked_up: i32,
    at: NaiveDateTime,
) {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| {
        let day_id: i64 = store_days::table
            .filter(store_days::store_id.eq(store_id))
            .filter(store_days::day.eq(today()))
            .select(store_days::id)
            .first(tx.conn())?;
        diesel::update(store_days::table.find(day_id))
            .set((
                store_days::reserved.eq(store_days::reserved + reserved),
                store_days::picked_up.eq(store_days::picked_up + picked_up),
                store_days::stock_changed_at.eq(at),
            ))
            .execute(tx.conn())?;
        diesel::insert_into(stock_ledger::table)
            .values((
                stock_ledger::store_day_id.eq(day_id),
                stock_ledger::kind.eq(kind),
                stock_ledger::reserved_delta.eq(reserved),
                stock_ledger::picked_up_delta.eq(picked_up),
                stock_ledger::created_at.eq(at),
            ))
            .execute(tx.conn())
    })
    .unwrap();
}

async fn get_json(app: &TestApp, path: &str) -> (reqwest::StatusCode, Value) {
    let res = app.get(path).await;
    let status = res.status();
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/json; charset=utf-8", "{path}");
    (status, res.json().await.unwrap())
}

async fn ok_json(app: &TestApp, path: &str) -> Value {
    let (status, body) = get_json(app, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The answer once the snapshot has `n` stores (right after they were
/// written, the next refresh may not have run yet).
async fn when_stores(app: &TestApp, n: u64) {
    eventually(FRESH, "the snapshot to hold the stores", || async {
        let v = ok_json(app, &format!("{API}/stores/json?perPage=1")).await;
        (v["totalCount"] == n).then_some(())
    })
    .await;
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The `storesByAddr` question for `address`.
fn by_addr(address: &str) -> String {
    format!("{API}/storesByAddr/json?address={}", enc(address))
}

fn by_code<'a>(stores: &'a Value, code: &str) -> &'a Value {
    stores
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == code)
        .unwrap_or_else(|| panic!("{code} not in {stores}"))
}

fn key_set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// Asserts that every element of `list` has exactly `expected` keys.
fn each_has_exactly(list: &Value, expected: &BTreeSet<String>, what: &str) {
    let list = list.as_array().unwrap();
    assert!(!list.is_empty(), "{what}: no objects to check");
    for item in list {
        assert_eq!(&keys(item), expected, "{what}: {item}");
    }
}

#[tokio::test]
async fn every_object_of_every_endpoint_has_exactly_its_keys() {
    let app = spawn().await;
    let addr = "경기도 성남시 분당구 서현로 184 (서현동)";
    let with = add_store(&app.db, "31811931", addr, 37.3883743, 127.1237889);
    add_store(&app.db, "41805801", addr, 37.3884, 127.1238);
    supply(&app.db, with, 250);
    when_stores(&app, 2).await;

    // The question the recorded answer was given: its road-name addresses
    // hold the dong only in parentheses.
    let recorded = sample();
    let answer = ok_json(&app, &by_addr(recorded["address"].as_str().unwrap())).await;
    assert_eq!(keys(&answer), keys(&recorded), "top-level keys");
    for k in keys(&recorded) {
        assert_eq!(kind(&answer[&k]), kind(&recorded[&k]), "type of {k}");
    }
    assert_eq!(answer["address"], "경기도 성남시 분당구 서현동");
    assert_eq!(answer["count"], answer["stores"].as_array().unwrap().len());
    assert_eq!(answer["count"], 2);

    // Every store object: exactly the nine recorded keys, each of the types
    // recorded — or null where the recorded answer has null for a store
    // without data.
    let recorded_store = &recorded["stores"][0];
    let nine = key_set(&NINE_KEYS);
    each_has_exactly(&recorded["stores"], &nine, "the recorded answer");
    let geo = ok_json(
        &app,
        &format!("{API}/storesByGeo/json?lat=37.3883743&lng=127.1237889"),
    )
    .await;
    assert_eq!(keys(&geo), key_set(&["count", "stores"]));
    assert_eq!(geo["count"], 2);
    for (list, what) in [
        (&answer["stores"], "storesByAddr"),
        (&geo["stores"], "storesByGeo"),
    ] {
        each_has_exactly(list, &nine, what);
        for store in list.as_array().unwrap() {
            for k in &nine {
                let nullable = ["created_at", "remain_stat", "stock_at"].contains(&k.as_str());
                let t = kind(&store[k]);
                assert!(
                    t == kind(&recorded_store[k]) || (nullable && t == "null"),
                    "{what}: {k} is {t} in {store}"
                );
            }
        }
    }
    let supplied = by_code(&answer["stores"], "31811931");
    assert_eq!(supplied["remain_stat"], "plenty");
    assert_eq!(supplied["type"], "01");
    assert_eq!(supplied["lat"], 37.3883743);
    let time =
        |v: &Value| NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y/%m/%d %H:%M:%S").is_ok();
    assert!(
        time(&supplied["created_at"]) && time(&supplied["stock_at"]),
        "{supplied}"
    );
    // As the recorded 41805801: every key kept, the stock ones null.
    let bare = by_code(&answer["stores"], "41805801");
    for k in ["created_at", "remain_stat", "stock_at"] {
        assert!(bare[k].is_null(), "{k} in {bare}");
    }

    let stores = ok_json(&app, &format!("{API}/stores/json")).await;
    assert_eq!(
        keys(&stores),
        key_set(&["count", "page", "storeInfos", "totalCount", "totalPages"])
    );
    assert_eq!(stores["page"], "1");
    assert!(stores["totalCount"].is_u64() && stores["totalPages"].is_u64());
    each_has_exactly(
        &stores["storeInfos"],
        &key_set(&["addr", "code", "lat", "lng", "name", "type"]),
        "stores/json",
    );
    let sales = ok_json(&app, &format!("{API}/sales/json")).await;
    assert_eq!(
        keys(&sales),
        key_set(&["count", "page", "sales", "totalCount", "totalPages"])
    );
    each_has_exactly(
        &sales["sales"],
        &key_set(&["code", "created_at", "remain_stat", "stock_at"]),
        "sales/json",
    );

    // The exact figures are ours, in stock.json, with the CSV's columns.
    let stock = ok_json(&app, "/opendata/stock.json").await;
    assert_eq!(keys(&stock), key_set(&["count", "created_at", "stores"]));
    each_has_exactly(&stock["stores"], &key_set(&STOCK_COLUMNS), "stock.json");
    assert_eq!(by_code(&stock["stores"], "31811931")["remain"], 250);
    assert!(by_code(&stock["stores"], "41805801")["remain"].is_null());
}

#[tokio::test]
async fn remain_stat_follows_the_thresholds_of_spec_section_6() {
    let app = spawn().await;
    let cases: &[(&str, Option<i32>, bool, Option<&str>)] = &[
        ("10000000", Some(0), false, Some("empty")),
        ("10000001", Some(1), false, Some("empty")),
        ("10000002", Some(2), false, Some("few")),
        ("10000029", Some(29), false, Some("few")),
        ("10000030", Some(30), false, Some("some")),
        ("10000099", Some(99), false, Some("some")),
        ("10000100", Some(100), false, Some("plenty")),
        ("20000100", Some(100), true, Some("break")),
        ("30000000", None, false, None),
        ("30000001", None, true, Some("break")),
    ];
    for (code, quantity, suspended, _) in cases {
        let id = add_store(&app.db, code, "서울특별시 중구 세종대로 1", 37.56, 126.97);
        if let Some(q) = quantity {
            supply(&app.db, id, *q);
        }
        if *suspended {
            suspend(&app.db, id);
        }
    }
    when_stores(&app, cases.len() as u64).await;
    let sales = eventually(FRESH, "the suspensions", || async {
        let v = ok_json(&app, &format!("{API}/sales/json")).await;
        (by_code(&v["sales"], "30000001")["remain_stat"] == "break").then_some(v)
    })
    .await;
    let stock = ok_json(&app, "/opendata/stock.json").await;
    let html = app
        .html(&format!("/map?address={}", enc("서울특별시")))
        .await;
    for (code, quantity, _, stat) in cases {
        let sale = by_code(&sales["sales"], code);
        assert_eq!(sale["remain_stat"].as_str(), *stat, "{code}");
        let exact = by_code(&stock["stores"], code);
        assert_eq!(exact["remain_stat"].as_str(), *stat, "{code}");
        assert_eq!(exact["remain"].as_i64(), quantity.map(i64::from), "{code}");
        assert_eq!(sale["stock_at"].is_null(), quantity.is_none(), "{code}");
        let shown = stat.unwrap_or("");
        assert!(
            html.contains(&format!(
                "data-store-code=\"{code}\" data-remain-stat=\"{shown}\""
            )),
            "{code} as {shown} on the map page"
        );
    }
}

#[tokio::test]
async fn a_reservation_and_a_pickup_show_in_the_next_answers_within_a_second() {
    let app = spawn().await;
    let id = add_store(
        &app.db,
        "11800001",
        "서울특별시 중구 세종대로 1",
        37.56,
        126.97,
    );
    supply(&app.db, id, 100);
    let path = format!("{API}/storesByGeo/json?lat=37.56&lng=126.97&m=100");
    let exact = async || ok_json(&app, "/opendata/stock.json").await["stores"][0].clone();
    eventually(FRESH, "the supply", || async {
        (exact().await["remain"] == 100).then_some(())
    })
    .await;

    let booked_at = Utc::now().naive_utc();
    move_stock(&app.db, id, "reservation", 71, 0, booked_at);
    eventually(FRESH, "the reservation", || async {
        (exact().await["remain"] == 29).then_some(())
    })
    .await;
    let v = ok_json(&app, &path).await;
    assert_eq!(v["stores"][0]["remain_stat"], "few");
    let seoul = |at: NaiveDateTime| {
        at.and_utc()
            .with_timezone(&chrono_tz::Asia::Seoul)
            .format("%Y/%m/%d %H:%M:%S")
            .to_string()
    };
    assert_eq!(v["stores"][0]["stock_at"], seoul(booked_at));

    // A pickup leaves the count as it is and moves `stock_at`.
    let picked_at = booked_at + chrono::TimeDelta::seconds(3);
    move_stock(&app.db, id, "pickup", -1, 1, picked_at);
    eventually(FRESH, "the pickup", || async {
        let v = ok_json(&app, &path).await;
        (v["stores"][0]["stock_at"] == seoul(picked_at)).then_some(())
    })
    .await;
    let csv = app.get("/opendata/stock.csv").await.text().await.unwrap();
    // Reservations written straight into the store-day's counters (not its
    // windows'): the open windows still show room, but never more than is left.
    assert!(
        csv.contains(&format!(",29,29,0,0,few,{}", seoul(picked_at))),
        "{csv}"
    );
}

#[tokio::test]
async fn stores_by_geo_answers_within_the_radius_nearest_first() {
    let app = spawn().await;
    // Metres north of the centre: about 111 m per 0.001° of latitude.
    let (lat, lng) = (37.5, 127.0);
    for (code, north) in [
        ("10000300", 0.0027), // ~300 m
        ("10000100", 0.0009), // ~100 m
        ("10000700", 0.0063), // ~700 m
        ("10004900", 0.0440), // ~4.9 km
        ("10006000", 0.0540), // ~6 km
    ] {
        add_store(
            &app.db,
            code,
            "서울특별시 중구 세종대로 1",
            lat + north,
            lng,
        );
    }
    when_stores(&app, 5).await;
    let codes = |v: Value| -> Vec<String> {
        assert_eq!(v["count"], v["stores"].as_array().unwrap().len());
        v["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let at = |q: &str| format!("{API}/storesByGeo/json?lat={lat}&lng={lng}{q}");
    assert_eq!(
        codes(ok_json(&app, &at("")).await),
        ["10000100", "10000300"]
    );
    assert_eq!(
        codes(ok_json(&app, &at("&m=1000")).await),
        ["10000100", "10000300", "10000700"]
    );
    assert_eq!(
        codes(ok_json(&app, &at("&m=50")).await),
        Vec::<String>::new()
    );
    // Clamped to 5,000 m, not refused.
    assert_eq!(
        codes(ok_json(&app, &at("&m=100000")).await),
        ["10000100", "10000300", "10000700", "10004900"]
    );
}

#[tokio::test]
async fn pages_cover_every_store_once_and_past_the_end_is_empty() {
    let app = spawn().await;
    let rows: Vec<StoreRow> = (0..7)
        .map(|i| {
            store_row(
                &format!("1000000{i}"),
                "약국",
                "서울특별시 중구 1",
                37.5,
                127.0,
            )
        })
        .collect();
    add_stores(&app.db, &rows);
    when_stores(&app, 7).await;
    let mut seen = Vec::new();
    for (page, count) in [(1, 3), (2, 3), (3, 1), (4, 0), (4_000_000_000u64, 0)] {
        for kind in ["stores", "sales"] {
            let v = ok_json(&app, &format!("{API}/{kind}/json?page={page}&perPage=3")).await;
            let array = if kind == "stores" {
                "storeInfos"
            } else {
                "sales"
            };
            assert_eq!(v["page"], page.to_string());
            assert_eq!(v["count"], count, "{kind} page {page}");
            assert_eq!(v[array].as_array().unwrap().len(), count);
            assert_eq!(v["totalCount"], 7);
            assert_eq!(v["totalPages"], 3);
            if kind == "stores" {
                seen.extend(
                    v[array]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["code"].as_str().unwrap().to_owned()),
                );
            }
        }
    }
    let mut expected: Vec<String> = rows.iter().map(|r| r.code.clone()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every store once, by code");
}

#[tokio::test]
async fn per_page_defaults_to_500_and_is_capped_at_5000() {
    let app = spawn().await;
    let rows: Vec<StoreRow> = (0..5001)
        .map(|i| {
            store_row(
                &format!("{:08}", 10_000_000 + i),
                "약국",
                "서울특별시 중구 1",
                37.5,
                127.0,
            )
        })
        .collect();
    add_stores(&app.db, &rows);
    when_stores(&app, 5001).await;
    let v = ok_json(&app, &format!("{API}/sales/json")).await;
    assert_eq!(
        (v["count"].as_u64(), v["totalPages"].as_u64()),
        (Some(500), Some(11))
    );
    let v = ok_json(&app, &format!("{API}/stores/json?perPage=9999")).await;
    assert_eq!(
        (v["count"].as_u64(), v["totalPages"].as_u64()),
        (Some(5000), Some(2))
    );
    let v = ok_json(&app, &format!("{API}/stores/json?perPage=9999&page=2")).await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["storeInfos"][0]["code"], "10005000");
}

#[tokio::test]
async fn bad_input_is_a_400_with_a_json_message_and_unknown_paths_a_json_404() {
    let app = spawn().await;
    add_store(
        &app.db,
        "11800001",
        "서울특별시 중구 세종대로 1",
        37.56,
        126.97,
    );
    let long = format!("{API}/stores/json?page=1&x={}", "a".repeat(10 * 1024));
    let cases = [
        format!("{API}/storesByGeo/json"),
        format!("{API}/storesByGeo/json?lng=127"),
        format!("{API}/storesByGeo/json?lat=37.5"),
        format!("{API}/storesByGeo/json?lat=abc&lng=127"),
        format!("{API}/storesByGeo/json?lat=37.5&lng=x"),
        format!("{API}/storesByGeo/json?lat=200&lng=127"),
        format!("{API}/storesByGeo/json?lat=37.5&lng=127&m=-5"),
        format!("{API}/stores/json?page=0"),
        format!("{API}/sales/json?page=-1"),
        format!("{API}/stores/json?perPage=abc"),
        format!("{API}/sales/json?perPage=0"),
        format!("{API}/storesByAddr/json?address="),
        format!("{API}/storesByAddr/json?address=%20"),
        format!("{API}/storesByAddr/json"),
        by_addr("서"),
        long,
    ];
    for path in &cases {
        // In Korean by default, in English when asked.
        let (status, body) = get_json(&app, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(keys(&body), key_set(&["message"]), "{path}: {body}");
        let korean = body["message"].as_str().unwrap();
        assert!(korean.chars().any(is_hangul), "{path}: {korean}");
        let res = app
            .client
            .get(app.url(path))
            .header("Accept-Language", "en-US,en;q=0.9")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let english: Value = res.json().await.unwrap();
        let english = english["message"].as_str().unwrap();
        // The too short address's message gives Korean examples.
        assert!(
            english.is_ascii() || english.contains("e.g."),
            "{path}: {english}"
        );
        assert_ne!(english, korean);
    }
    let (_, body) = get_json(&app, &format!("{API}/storesByGeo/json?lat=abc&lng=127")).await;
    assert_eq!(
        body["message"],
        "lat은(는) -90부터 90까지의 숫자여야 합니다."
    );
    for path in [
        format!("{API}/nothing"),
        format!("{API}/stores/xml"),
        "/opendata/nothing".into(),
    ] {
        let (status, body) = get_json(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["message"].is_string());
    }
    let res = app
        .client
        .post(app.url(&format!("{API}/stores/json")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn stores_by_addr_matches_the_start_or_any_part_of_the_address() {
    let app = spawn().await;
    add_store(
        &app.db,
        "11800001",
        "서울특별시 중구 세종대로 110",
        37.56,
        126.97,
    );
    add_store(
        &app.db,
        "11800002",
        "서울특별시 종로구 종로 6",
        37.57,
        126.98,
    );
    add_store(
        &app.db,
        "31800001",
        "경기도 성남시 분당구 서현로 184",
        37.38,
        127.12,
    );
    when_stores(&app, 3).await;
    let codes = |v: &Value| -> Vec<String> {
        v["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let ask = |a: &str| {
        format!(
            "{API}/storesByAddr/json?address={}",
            form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>()
        )
    };
    let v = ok_json(&app, &ask("서울특별시")).await;
    assert_eq!(codes(&v), ["11800001", "11800002"]);
    let v = ok_json(&app, &ask("서울특별시 중구")).await;
    assert_eq!(
        (v["address"].as_str(), codes(&v)),
        (Some("서울특별시 중구"), vec!["11800001".to_owned()])
    );
    let v = ok_json(&app, &ask("분당구")).await;
    assert_eq!(codes(&v), ["31800001"]);
    let v = ok_json(&app, &ask("부산광역시")).await;
    assert_eq!((v["count"].as_u64(), codes(&v).len()), (Some(0), 0));
}

#[tokio::test]
async fn stores_by_addr_finds_road_name_addresses_by_every_word_as_in_2020() {
    let app = spawn().await;
    // The 37 stores of the recorded answer, road-name addresses with the dong
    // in parentheses, and two in the same district but not in 서현동.
    let recorded = sample();
    let mut rows: Vec<StoreRow> = recorded["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            store_row(
                s["code"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["addr"].as_str().unwrap(),
                s["lat"].as_f64().unwrap(),
                s["lng"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<String> = rows.iter().map(|r| r.code.clone()).collect();
    expected.sort();
    rows.push(store_row(
        "31899001",
        "분당약국",
        "경기도 성남시 분당구 서현로 170, 1층 (분당동)",
        37.38,
        127.12,
    ));
    rows.push(store_row(
        "31899002",
        "정자약국",
        "경기도 성남시 분당구 정자일로 95 (정자동)",
        37.36,
        127.11,
    ));
    add_stores(&app.db, &rows);
    when_stores(&app, rows.len() as u64).await;
    let codes = |v: &Value| -> Vec<String> {
        assert_eq!(v["count"], v["stores"].as_array().unwrap().len());
        v["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"].as_str().unwrap().to_owned())
            .collect()
    };

    let v = ok_json(&app, &by_addr("경기도 성남시 분당구 서현동")).await;
    assert_eq!(v["address"], "경기도 성남시 분당구 서현동");
    assert_eq!(codes(&v), expected, "every recorded store, by code");
    // Words in any order, any spacing.
    let v = ok_json(&app, &by_addr("서현동  분당구")).await;
    assert_eq!(codes(&v), expected);
    // A road: every store on it or one of its side streets (서현로210번길
    // is one), 분당동's too.
    let on = |road: &str| -> Vec<String> {
        let mut found: Vec<String> = rows
            .iter()
            .filter(|r| r.addr.contains(road))
            .map(|r| r.code.clone())
            .collect();
        found.sort();
        assert!(!found.is_empty() && found.len() < rows.len(), "{road}");
        found
    };
    let v = ok_json(&app, &by_addr("분당구 서현로210번길")).await;
    assert_eq!(codes(&v), on("서현로210번길"));
    let v = ok_json(&app, &by_addr("분당구 서현로")).await;
    assert_eq!(codes(&v), on("서현로"));
    assert!(codes(&v).contains(&"31899001".to_owned()));
    let v = ok_json(&app, &by_addr("성남시 정자동")).await;
    assert_eq!(codes(&v), ["31899002"]);
    let v = ok_json(&app, &by_addr("경기도 성남시 분당구 이매동")).await;
    assert_eq!((v["count"].as_u64(), codes(&v).len()), (Some(0), 0));
}

#[tokio::test]
async fn stores_by_addr_refuses_less_than_a_district_and_answers_at_most_the_cap() {
    let app = spawn().await;
    // More stores in one district than an answer holds, and two elsewhere.
    let mut rows: Vec<StoreRow> = (0..=MAX_ADDRESS_STORES)
        .map(|i| {
            store_row(
                &format!("{:08}", 11_000_000 + i),
                "약국",
                &format!("서울특별시 중구 세종대로 {i}"),
                37.56,
                126.97,
            )
        })
        .collect();
    rows.push(store_row(
        "31811931",
        "성민약국",
        "경기도 성남시 분당구 서현로 184, 219호 (서현동, 엘지에클라트)",
        37.3883743,
        127.1237889,
    ));
    rows.push(store_row(
        "31819991",
        "우리약국",
        "경기도 성남시 분당구 분당로 43, 1층 (서현동)",
        37.3840714,
        127.1202711,
    ));
    add_stores(&app.db, &rows);
    when_stores(&app, rows.len() as u64).await;

    // One or two characters, spaces aside, would match a province or the
    // country: refused with a JSON message, whatever the stores.
    for short in ["서", "서울", "중구", " 서 울 ", "a"] {
        let (status, body) = get_json(&app, &by_addr(short)).await;
        assert_eq!(status, 400, "{short}");
        assert_eq!(keys(&body), key_set(&["message"]), "{short}: {body}");
        assert!(body["message"].as_str().unwrap().contains("3"), "{body}");
    }
    let res = app.get(&by_addr("서")).await;
    assert_eq!(res.headers()["access-control-allow-origin"], "*");

    // A dong, a district: answered.
    let v = ok_json(&app, &by_addr("서현동")).await;
    assert_eq!(v["count"], 2);
    let v = ok_json(&app, &by_addr("분당구")).await;
    assert_eq!(v["count"], 2);

    // A district with more stores than the cap: the first by code, and
    // `count` says how many are in the answer.
    let v = ok_json(&app, &by_addr("서울특별시 중구")).await;
    let stores = v["stores"].as_array().unwrap();
    assert_eq!(stores.len(), MAX_ADDRESS_STORES);
    assert_eq!(v["count"], MAX_ADDRESS_STORES);
    let codes: Vec<&str> = stores.iter().map(|s| s["code"].as_str().unwrap()).collect();
    let mut first: Vec<String> = rows[..=MAX_ADDRESS_STORES]
        .iter()
        .map(|r| r.code.clone())
        .collect();
    first.sort();
    first.truncate(MAX_ADDRESS_STORES);
    assert_eq!(codes, first);
    // And so does the country-wide question that is long enough.
    let v = ok_json(&app, &by_addr("서울특별시")).await;
    assert_eq!(v["stores"].as_array().unwrap().len(), MAX_ADDRESS_STORES);

    // The map asks the same question: the same refusal, next to the field.
    let res = app.get(&format!("/map?address={}", enc("서"))).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("공백을 빼고 3자 이상"), "{html}");
}

#[tokio::test]
async fn stock_csv_has_every_store_and_keeps_formulas_inert() {
    let app = spawn().await;
    let ids = add_stores(
        &app.db,
        &[
            store_row(
                "11800001",
                "=HYPERLINK(\"http://x\")",
                "서울특별시 중구 1, 1층",
                37.56,
                126.97,
            ),
            store_row("11800002", "약국", "@서울특별시 중구 2", 37.57, 126.98),
        ],
    );
    supply(&app.db, ids[0], 42);
    when_stores(&app, 2).await;
    let res = app.get("/opendata/stock.csv").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        STOCK_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][0], "11800001");
    assert_eq!(&rows[0][1], "'=HYPERLINK(\"http://x\")");
    // 42 left at 10:00: the windows (all still taking bookings) hold 30, the
    // counter the walk-in share, 12.
    assert_eq!(&rows[0][6], "42");
    assert_eq!(
        (&rows[0][7], &rows[0][8], &rows[0][9]),
        ("30", "12", "0"),
        "no draw holds any of it"
    );
    assert_eq!(&rows[0][10], "some");
    assert_eq!(&rows[1][2], "'@서울특별시 중구 2");
    assert!(
        rows[1].iter().skip(6).all(str::is_empty),
        "no supply: no figures, status or time: {:?}",
        rows[1]
    );
}

#[tokio::test]
async fn stock_json_has_the_csv_columns_and_figures_from_the_same_snapshot() {
    let app = spawn().await;
    let ids = add_stores(
        &app.db,
        &[
            store_row(
                "11800001",
                "=HYPERLINK(\"http://x\")",
                "서울특별시 중구 세종대로 1, 1층 (태평로1가)",
                37.5663121,
                126.9779692,
            ),
            store_row(
                "11800002",
                "중앙약국",
                "서울특별시 중구 을지로 2",
                37.57,
                126.98,
            ),
            store_row(
                "11800003",
                "세종약국",
                "서울특별시 중구 세종대로 3",
                37.565,
                126.977,
            ),
            store_row(
                "11800004",
                "무재고약국",
                "서울특별시 중구 세종대로 4",
                37.564,
                126.976,
            ),
        ],
    );
    supply(&app.db, ids[0], 42);
    supply(&app.db, ids[1], 150);
    supply(&app.db, ids[2], 5);
    move_stock(&app.db, ids[1], "reservation", 3, 0, Utc::now().naive_utc());
    suspend(&app.db, ids[2]);
    let stock = eventually(FRESH, "the stock of every store", || async {
        let v = ok_json(&app, "/opendata/stock.json").await;
        let moved = v["count"] == 4
            && by_code(&v["stores"], "11800002")["remain"] == 147
            && by_code(&v["stores"], "11800003")["remain_stat"] == "break";
        moved.then_some(v)
    })
    .await;
    let res = app.get("/opendata/stock.csv").await;
    let csv_tag = res.headers()["etag"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();

    // The envelope: when the data was read (as the API's `created_at`), how
    // many stores, and the stores by code.
    let stores = stock["stores"].as_array().unwrap();
    assert_eq!(stock["count"], stores.len());
    let sales = ok_json(&app, &format!("{API}/sales/json")).await;
    assert_eq!(
        stock["created_at"],
        by_code(&sales["sales"], "11800001")["created_at"],
        "the same snapshot as the 2020 API"
    );
    let codes: Vec<&str> = stores.iter().map(|s| s["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["11800001", "11800002", "11800003", "11800004"]);

    // Line by line, the CSV's figures.
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        STOCK_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), stores.len());
    for (row, store) in rows.iter().zip(stores) {
        assert_eq!(keys(store), key_set(&STOCK_COLUMNS), "{store}");
        for (column, cell) in STOCK_COLUMNS.iter().zip(row.iter()) {
            let value = &store[*column];
            match *column {
                "lat" | "lng" => {
                    assert_eq!(cell.parse::<f64>().unwrap(), value.as_f64().unwrap())
                }
                "remain" | "reservable" | "walk_in" | "in_draw" => {
                    assert_eq!(cell.parse::<i64>().ok(), value.as_i64(), "{store}")
                }
                // The CSV makes formulas inert for spreadsheets; JSON keeps
                // the name as it is.
                "name" | "addr" => assert_eq!(
                    cell.strip_prefix('\'').unwrap_or(cell),
                    value.as_str().unwrap()
                ),
                _ => assert_eq!(cell, value.as_str().unwrap_or(""), "{column} of {store}"),
            }
        }
    }
    let exact = |code: &str| {
        let s = by_code(&stock["stores"], code);
        (s["remain"].as_i64(), s["remain_stat"].as_str())
    };
    assert_eq!(exact("11800001"), (Some(42), Some("some")));
    assert_eq!(exact("11800002"), (Some(147), Some("plenty")));
    assert_eq!(exact("11800003"), (Some(5), Some("break")));
    assert_eq!(exact("11800004"), (None, None));
    assert_eq!(
        by_code(&stock["stores"], "11800001")["name"],
        "=HYPERLINK(\"http://x\")"
    );
    assert_eq!(by_code(&stock["stores"], "11800001")["type"], "01");
    assert!(by_code(&stock["stores"], "11800004")["stock_at"].is_null());

    // Served like the rest: open to any origin, tagged, revalidated.
    let res = app
        .client
        .get(app.url("/opendata/stock.json"))
        .header("Origin", "https://maps.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert_eq!(res.headers()["cache-control"], "max-age=1");
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(tag, csv_tag, "a tag per answer");
    let again = app
        .client
        .get(app.url("/opendata/stock.json"))
        .header("If-None-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/opendata/stock.json"))
        .header("Origin", "https://maps.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let post = app
        .client
        .post(app.url("/opendata/stock.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

/// The JSON type name an OpenAPI schema says.
fn schema_type(s: &openapiv3::Schema) -> (&'static str, bool) {
    use openapiv3::{SchemaKind, Type};
    let t = match &s.schema_kind {
        SchemaKind::Type(Type::String(_)) => "string",
        SchemaKind::Type(Type::Number(_)) => "number",
        SchemaKind::Type(Type::Integer(_)) => "integer",
        SchemaKind::Type(Type::Object(_)) => "object",
        SchemaKind::Type(Type::Array(_)) => "array",
        SchemaKind::Type(Type::Boolean(_)) => "bool",
        other => panic!("unexpected schema {other:?}"),
    };
    (t, s.schema_data.nullable)
}

fn resolve<'a>(
    doc: &'a openapiv3::OpenAPI,
    r: &'a openapiv3::ReferenceOr<openapiv3::Schema>,
) -> &'a openapiv3::Schema {
    match r {
        openapiv3::ReferenceOr::Item(s) => s,
        openapiv3::ReferenceOr::Reference { reference } => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc.components.as_ref().unwrap().schemas[name])
        }
    }
}

fn resolve_boxed<'a>(
    doc: &'a openapiv3::OpenAPI,
    r: &'a openapiv3::ReferenceOr<Box<openapiv3::Schema>>,
) -> &'a openapiv3::Schema {
    match r {
        openapiv3::ReferenceOr::Item(s) => s,
        openapiv3::ReferenceOr::Reference { reference } => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc.components.as_ref().unwrap().schemas[name])
        }
    }
}

/// Checks a live value against its schema: type, nullability, required and
/// documented properties, array items.
fn conforms(doc: &openapiv3::OpenAPI, schema: &openapiv3::Schema, value: &Value, at: &str) {
    use openapiv3::{SchemaKind, Type};
    let (t, nullable) = schema_type(schema);
    if value.is_null() {
        assert!(nullable, "{at} is null but not nullable");
        return;
    }
    let matches = match t {
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => value.is_boolean(),
    };
    assert!(matches, "{at}: {value} is not {t}");
    match &schema.schema_kind {
        SchemaKind::Type(Type::Object(o)) => {
            let obj = value.as_object().unwrap();
            for r in &o.required {
                assert!(obj.contains_key(r), "{at}: {r} missing");
            }
            if o.additional_properties == Some(openapiv3::AdditionalProperties::Any(false)) {
                // A closed object: every documented key is required, so the
                // document states its exact key set.
                let documented: BTreeSet<&String> = o.properties.keys().collect();
                assert_eq!(
                    o.required.iter().collect::<BTreeSet<_>>(),
                    documented,
                    "{at}: a closed object requires every key it documents"
                );
            }
            for key in obj.keys() {
                let prop = o
                    .properties
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}.{key} is not documented"));
                conforms(
                    doc,
                    resolve_boxed(doc, prop),
                    &obj[key],
                    &format!("{at}.{key}"),
                );
            }
        }
        SchemaKind::Type(Type::Array(a)) => {
            let items = resolve_boxed(doc, a.items.as_ref().unwrap());
            for (i, item) in value.as_array().unwrap().iter().enumerate() {
                conforms(doc, items, item, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_description_covers_every_endpoint_and_fits_live_answers() {
    let app = spawn().await;
    let id = add_store(
        &app.db,
        "11800001",
        "서울특별시 중구 세종대로 1",
        37.56,
        126.97,
    );
    add_store(
        &app.db,
        "11800002",
        "서울특별시 중구 세종대로 2",
        37.5601,
        126.97,
    );
    supply(&app.db, id, 120);
    when_stores(&app, 2).await;
    let res = app.get("/opendata/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: openapiv3::OpenAPI = res.json().await.unwrap();
    assert!(doc.openapi.starts_with("3.0"));
    let questions = [
        ("/corona19-masks/v1/stores/json", "?page=1&perPage=10"),
        ("/corona19-masks/v1/sales/json", ""),
        (
            "/corona19-masks/v1/storesByGeo/json",
            "?lat=37.56&lng=126.97&m=1000",
        ),
        (
            "/corona19-masks/v1/storesByAddr/json",
            "?address=%EC%84%9C%EC%9A%B8%ED%8A%B9%EB%B3%84%EC%8B%9C",
        ),
        ("/opendata/stock.csv", ""),
        ("/opendata/stock.json", ""),
        ("/opendata/openapi.json", ""),
    ];
    let documented: BTreeSet<&str> = doc.paths.paths.keys().map(String::as_str).collect();
    assert_eq!(documented, questions.iter().map(|q| q.0).collect());
    for (path, query) in questions {
        let item = doc.paths.paths[path].as_item().unwrap();
        let op = item.get.as_ref().unwrap_or_else(|| panic!("GET {path}"));
        let res = app.get(&format!("{path}{query}")).await;
        assert_eq!(res.status(), 200, "{path}");
        let ok = op.responses.responses[&openapiv3::StatusCode::Code(200)]
            .as_item()
            .unwrap();
        let Some(media) = ok.content.get("application/json") else {
            assert!(ok.content.contains_key("text/csv"), "{path}");
            continue;
        };
        if path.ends_with("openapi.json") {
            continue;
        }
        let live: Value = res.json().await.unwrap();
        let schema = resolve(&doc, media.schema.as_ref().unwrap());
        conforms(&doc, schema, &live, path);
        assert_eq!(
            op.responses
                .responses
                .contains_key(&openapiv3::StatusCode::Code(400)),
            !op.parameters.is_empty(),
            "{path}: a 400 where there are parameters to get wrong"
        );
    }
    // The address rule and the cap, as the server applies them.
    let by_addr_op = doc.paths.paths["/corona19-masks/v1/storesByAddr/json"]
        .as_item()
        .unwrap()
        .get
        .as_ref()
        .unwrap();
    let openapiv3::ReferenceOr::Item(param) = &by_addr_op.parameters[0] else {
        panic!("the address parameter is inline");
    };
    let openapiv3::ParameterSchemaOrContent::Schema(schema) = &param.parameter_data_ref().format
    else {
        panic!("the address parameter has a schema");
    };
    let openapiv3::SchemaKind::Type(openapiv3::Type::String(text)) =
        &resolve(&doc, schema).schema_kind
    else {
        panic!("address is a string");
    };
    assert_eq!(text.min_length, Some(MIN_ADDRESS_CHARS));
    let description = by_addr_op.description.as_deref().unwrap();
    assert!(
        description.contains(&MAX_ADDRESS_STORES.to_string()),
        "{description}"
    );
    let answer = resolve(
        &doc,
        &doc.components.as_ref().unwrap().schemas["StoresByAddr"],
    );
    let openapiv3::SchemaKind::Type(openapiv3::Type::Object(o)) = &answer.schema_kind else {
        panic!("StoresByAddr is an object");
    };
    let openapiv3::SchemaKind::Type(openapiv3::Type::Array(list)) =
        &resolve_boxed(&doc, &o.properties["stores"]).schema_kind
    else {
        panic!("stores is an array");
    };
    assert_eq!(list.max_items, Some(MAX_ADDRESS_STORES));

    // The objects of the 2020 API and ours are closed: exactly their keys.
    let schemas = &doc.components.as_ref().unwrap().schemas;
    for (name, exact) in [
        ("Store", &NINE_KEYS[..]),
        (
            "StoreInfo",
            &["addr", "code", "lat", "lng", "name", "type"][..],
        ),
        (
            "Sale",
            &["code", "created_at", "remain_stat", "stock_at"][..],
        ),
        ("StockRow", &STOCK_COLUMNS[..]),
        ("StockList", &["count", "created_at", "stores"][..]),
    ] {
        let schema = resolve(&doc, &schemas[name]);
        let openapiv3::SchemaKind::Type(openapiv3::Type::Object(o)) = &schema.schema_kind else {
            panic!("{name} is not an object");
        };
        assert_eq!(
            o.additional_properties,
            Some(openapiv3::AdditionalProperties::Any(false)),
            "{name} is closed"
        );
        let documented: BTreeSet<String> = o.properties.keys().cloned().collect();
        assert_eq!(documented, key_set(exact), "{name}");
    }
    // stock.json's store keys in the CSV's column order.
    let row = resolve(&doc, &schemas["StockRow"]);
    let openapiv3::SchemaKind::Type(openapiv3::Type::Object(o)) = &row.schema_kind else {
        panic!("StockRow is not an object");
    };
    assert_eq!(
        o.properties.keys().map(String::as_str).collect::<Vec<_>>(),
        STOCK_COLUMNS
    );
}

#[tokio::test]
async fn answers_are_open_to_any_origin_and_tagged_for_revalidation() {
    let app = spawn().await;
    let id = add_store(
        &app.db,
        "11800001",
        "서울특별시 중구 세종대로 1",
        37.56,
        126.97,
    );
    supply(&app.db, id, 100);
    when_stores(&app, 1).await;
    let path = format!("{API}/storesByGeo/json?lat=37.56&lng=126.97");
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url(&path))
        .header("Origin", "https://maps.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "if-none-match")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(h["access-control-allow-headers"], "if-none-match");

    let first = app
        .client
        .get(app.url(&path))
        .header("Origin", "https://maps.example")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["access-control-allow-origin"], "*");
    assert_eq!(first.headers()["cache-control"], "max-age=1");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    for paged in [format!("{API}/sales/json"), by_addr("서울특별시")] {
        let a = app.get(&paged).await;
        let tag = a.headers()["etag"].to_str().unwrap().to_owned();
        let b = app
            .client
            .get(app.url(&paged))
            .header("If-None-Match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(b.status(), 304, "{paged}");
    }

    move_stock(&app.db, id, "reservation", 1, 0, Utc::now().naive_utc());
    eventually(FRESH, "a new tag after the stock moved", || async {
        let res = app
            .client
            .get(app.url(&path))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        (res.status() == 200 && res.headers()["etag"] != etag.as_str()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_map_page_lists_the_stores_without_javascript() {
    let app = spawn().await;
    let id = add_store(
        &app.db,
        "11800001",
        "서울특별시 중구 세종대로 1",
        37.5665,
        126.978,
    );
    add_store(
        &app.db,
        "11800002",
        "서울특별시 중구 세종대로 2",
        37.5666,
        126.978,
    );
    add_store(&app.db, "21000001", "부산광역시 해운대구 1", 35.16, 129.16);
    supply(&app.db, id, 50);
    when_stores(&app, 3).await;
    let res = app.get("/map").await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("img-src 'self' data: https://tile.openstreetmap.org"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("data-store-list"));
    assert!(html.contains("data-store-code=\"11800001\" data-remain-stat=\"some\""));
    assert!(html.contains("data-store-code=\"11800002\" data-remain-stat=\"\""));
    assert!(
        !html.contains("data-store-code=\"21000001\""),
        "Busan is not near"
    );
    assert!(html.contains("src=\"/static/js/map.js\""));
    assert!(!html.contains("<script>"), "no inline script");

    let html = app
        .html(&format!("/map?address={}", enc("부산광역시")))
        .await;
    assert!(html.contains("data-store-code=\"21000001\""));
    let res = app.get("/map?lat=200&lng=x").await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("map-point-error"));

    for file in [
        "/static/js/map.js",
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/leaflet/leaflet.css",
        "/static/vendor/leaflet/images/marker-icon.png",
    ] {
        assert_eq!(app.get(file).await.status(), 200, "{file}");
    }
    let home = app.html("/").await;
    assert!(home.contains("href=\"/map\""), "the site links to the map");
}

#[tokio::test]
async fn the_map_draws_a_marker_per_demo_store() {
    let app = spawn().await;
    {
        let mut conn = app.db.get().unwrap();
        let key = app.state.keys.national_id.clone();
        mask_reservation::demo::seed(&mut conn, &key)
            .unwrap()
            .unwrap();
    }
    let demo_stores = mask_reservation::demo::STORES_CSV.lines().count() - 1;
    when_stores(&app, demo_stores as u64).await;
    let browser = Browser::start_in("ko-KR").await;
    let c = &browser.client;
    c.goto(&app.url("/map?address=%EC%84%9C%EC%9A%B8%ED%8A%B9%EB%B3%84%EC%8B%9C"))
        .await
        .unwrap();
    wait_for(c, "[data-markers]").await;
    let drawn = c
        .execute(
            "return [document.querySelectorAll('[data-marker]').length,
                     document.querySelector('[data-map]').getAttribute('data-map-error'),
                     document.querySelectorAll('tr[data-remain-stat]').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(drawn[0], demo_stores, "a marker per store: {drawn}");
    assert!(drawn[1].is_null(), "no error drawing the map: {drawn}");
    assert_eq!(drawn[2], demo_stores, "and the list beside it");
    browser.close().await;
}
