//! `/admin/stores`: the list searched and paged, adding and editing a store
//! (suspending it included), and the CSV import — every bad line named,
//! nothing imported from a file with mistakes, counts of what a good file did.

use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{audit_log, stores};

use crate::common::{TestApp, Visitor, fixtures, spawn_app};

/// `n` valid lines of stores numbered from `first`, after the header; odd
/// ones are in Busan, even ones in Seoul.
fn stores_csv(first: u32, n: u32) -> String {
    let mut csv = String::from("code,name,addr,type,lat,lng\n");
    for i in first..first + n {
        let addr = if i % 2 == 0 {
            "서울특별시 중구 세종대로"
        } else {
            "부산광역시 해운대구 해운대로"
        };
        csv.push_str(&format!(
            "{:08},약국 {i},{addr} {i},01,37.5,127.0\n",
            10_000_000 + i
        ));
    }
    csv
}

async fn admin(app: &TestApp) -> Visitor {
    app.logged_in_as(Role::Admin, "admin@example.com", None)
        .await
}

async fn import(v: &Visitor, file: &[u8]) -> (u16, String) {
    let res = v
        .post_file("/admin/stores/import", &[], "stores.csv", file.to_vec())
        .await;
    (res.status().as_u16(), res.text().await.unwrap())
}

fn count_stores(app: &TestApp) -> i64 {
    let mut conn = app.db.get().unwrap();
    stores::table.count().get_result(&mut conn).unwrap()
}

/// The audit entries with this action: (entity id, before, after).
fn audit(app: &TestApp, action: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let mut conn = app.db.get().unwrap();
    audit_log::table
        .filter(audit_log::action.eq(action))
        .filter(audit_log::entity.eq("store"))
        .select((
            audit_log::entity_id,
            audit_log::before_json,
            audit_log::after_json,
        ))
        .order(audit_log::id)
        .load(&mut conn)
        .unwrap()
}

fn rows(html: &str) -> usize {
    html.matches("data-store-code=").count()
}

/// The value of `data-NAME="…"` on the page.
fn data(html: &str, name: &str) -> String {
    let marker = format!("data-{name}=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no data-{name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn store_form<'a>(code: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("code", code),
        ("name", name),
        ("addr", "대구광역시 중구 동성로 1"),
        ("type", "02"),
        ("lat", "35.87"),
        ("lng", "128.6"),
        ("phone", "053-123-4567"),
        ("region", ""),
    ]
}

#[tokio::test]
async fn a_good_file_creates_every_store_with_one_audit_entry() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let (status, html) = import(&admin, stores_csv(1, 120).as_bytes()).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(data(&html, "created"), "120");
    assert_eq!(data(&html, "updated"), "0");
    assert_eq!(count_stores(&app), 120);
    let entries = audit(&app, "store.import");
    assert_eq!(entries.len(), 1, "one entry for the whole file");
    assert_eq!(entries[0].0, "stores.csv");
    assert!(entries[0].2.as_deref().unwrap().contains("\"created\":120"));
    let mut conn = app.db.get().unwrap();
    let (region, phone): (String, Option<String>) = stores::table
        .filter(stores::code.eq("10000001"))
        .select((stores::region, stores::phone))
        .first(&mut conn)
        .unwrap();
    assert_eq!((region.as_str(), phone), ("부산광역시", None));
}

#[tokio::test]
async fn the_list_is_ordered_by_code_paged_by_fifty_and_searched() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let (status, _) = import(&admin, stores_csv(1, 120).as_bytes()).await;
    assert_eq!(status, 200);

    let first = admin.html("/admin/stores").await;
    assert_eq!(data(&first, "total"), "120");
    assert_eq!(rows(&first), 50);
    assert_eq!(data(&first, "store-code"), "10000001");
    assert_eq!(data(&first, "pages"), "3");
    let last = admin.html("/admin/stores?page=3").await;
    assert_eq!(rows(&last), 20);
    assert_eq!(data(&last, "store-code"), "10000101");
    assert_eq!(rows(&admin.html("/admin/stores?page=9").await), 0);
    assert_eq!(admin.get("/admin/stores?page=0").await.status(), 400);

    // By region (the Busan half), keeping the search in the pager's links.
    let busan = admin
        .html("/admin/stores?q=%EB%B6%80%EC%82%B0&page=1")
        .await;
    assert_eq!(data(&busan, "total"), "60");
    assert!(busan.contains("page=2"), "{busan}");
    assert!(busan.contains("q=%EB%B6%80%EC%82%B0"), "{busan}");
    // By code, by name, by address.
    let by_code = admin.html("/admin/stores?q=10000042").await;
    assert_eq!(data(&by_code, "total"), "1");
    let by_name = admin.html("/admin/stores?q=%EC%95%BD%EA%B5%AD+11").await;
    assert_eq!(data(&by_name, "total"), "11", "약국 11, 약국 110–119");
    let by_addr = admin
        .html("/admin/stores?q=%EC%84%B8%EC%A2%85%EB%8C%80%EB%A1%9C")
        .await;
    assert_eq!(data(&by_addr, "total"), "60");
    // `%` and `_` are no wildcards.
    assert_eq!(
        data(&admin.html("/admin/stores?q=%25").await, "total"),
        "120"
    );
    assert_eq!(data(&admin.html("/admin/stores?q=_x").await, "total"), "0");
}

#[tokio::test]
async fn the_search_ignores_case() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let res = admin
        .post_form("/admin/stores", &store_form("20000001", "GS Pharmacy"))
        .await;
    assert_eq!(res.status(), 303);
    for q in ["gs%20pharm", "GS", "pHaRmAcY"] {
        let html = admin.html(&format!("/admin/stores?q={q}")).await;
        assert_eq!(data(&html, "total"), "1", "{q}");
    }
}

#[tokio::test]
async fn a_store_is_added_with_its_region_from_the_address_and_an_audit_entry() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let res = admin
        .post_form("/admin/stores", &store_form("20000001", "동성로우체국"))
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/stores/20000001");
    let html = admin.html("/admin/stores/20000001").await;
    assert!(html.contains("value=\"동성로우체국\""), "{html}");
    assert!(
        html.contains("value=\"대구광역시\""),
        "the region is derived"
    );
    assert!(html.contains("value=\"053-123-4567\""));
    assert!(
        html.contains("data-windows-empty"),
        "no supply yet, so no windows"
    );
    let entries = audit(&app, "store.create");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "20000001");
    assert!(entries[0].2.as_deref().unwrap().contains("동성로우체국"));
}

#[tokio::test]
async fn a_store_with_mistakes_comes_back_with_each_field_marked_and_its_values_kept() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let mut form = store_form("123", "");
    form[3] = ("type", "09");
    form[4] = ("lat", "95");
    form[6] = ("phone", "call me");
    let res = admin.post_form("/admin/stores", &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for field in ["code", "name", "type", "lat", "phone"] {
        assert!(
            html.contains(&format!("data-error-for=\"{field}\"")),
            "{field}: {html}"
        );
    }
    for field in ["addr", "lng"] {
        assert!(!html.contains(&format!("data-error-for=\"{field}\"")));
    }
    assert!(html.contains("value=\"123\""));
    assert!(html.contains("value=\"call me\""));
    assert_eq!(count_stores(&app), 0);
}

#[tokio::test]
async fn a_code_in_use_is_refused_on_create_and_on_edit() {
    let app = spawn_app().await;
    fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::store(&app.db, "11800002", "서울약국");
    let admin = admin(&app).await;
    let res = admin
        .post_form("/admin/stores", &store_form("11800001", "또 하나"))
        .await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"code\""), "{html}");
    assert!(html.contains("value=\"또 하나\""));

    let res = admin
        .post_form(
            "/admin/stores/11800002",
            &store_form("11800001", "서울약국"),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error-for=\"code\"")
    );
    assert_eq!(count_stores(&app), 2);
    assert!(audit(&app, "store.update").is_empty());
}

#[tokio::test]
async fn editing_saves_every_field_suspends_and_follows_a_new_code() {
    let app = spawn_app().await;
    let id = fixtures::store(&app.db, "11800001", "중앙약국");
    let admin = admin(&app).await;
    let mut form = store_form("11800009", "새이름약국");
    form[7] = ("region", "대구");
    form.push(("suspended", "1"));
    let res = admin.post_form("/admin/stores/11800001", &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/stores/11800009");
    let mut conn = app.db.get().unwrap();
    let (code, name, store_type, region, suspended): (String, String, String, String, bool) =
        stores::table
            .find(id)
            .select((
                stores::code,
                stores::name,
                stores::store_type,
                stores::region,
                stores::suspended,
            ))
            .first(&mut conn)
            .unwrap();
    assert_eq!(
        (
            code.as_str(),
            name.as_str(),
            store_type.as_str(),
            region.as_str()
        ),
        ("11800009", "새이름약국", "02", "대구")
    );
    assert!(suspended);
    let html = admin.html("/admin/stores/11800009").await;
    assert!(html.contains(" checked"), "the box shows the suspension");
    let listed = admin.html("/admin/stores").await;
    assert_eq!(data(&listed, "suspended"), "true");
    assert_eq!(admin.get("/admin/stores/11800001").await.status(), 404);

    let entries = audit(&app, "store.update");
    assert_eq!(entries.len(), 1);
    let (before, after) = (entries[0].1.clone().unwrap(), entries[0].2.clone().unwrap());
    assert!(before.contains("\"suspended\":false") && before.contains("11800001"));
    assert!(after.contains("\"suspended\":true") && after.contains("11800009"));

    // Lifting the suspension: the box unticked is not sent.
    form.pop();
    let res = admin.post_form("/admin/stores/11800009", &form).await;
    assert_eq!(res.status(), 303);
    let suspended: bool = stores::table
        .find(id)
        .select(stores::suspended)
        .first(&mut conn)
        .unwrap();
    assert!(!suspended);
    // The same values again: nothing written, no entry.
    let res = admin.post_form("/admin/stores/11800009", &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(audit(&app, "store.update").len(), 2);
}

#[tokio::test]
async fn an_unknown_or_malformed_code_is_not_found() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    for path in [
        "/admin/stores/99999999",
        "/admin/stores/1234",
        "/admin/stores/abc",
    ] {
        assert_eq!(admin.get(path).await.status(), 404, "{path}");
        let res = admin.post_form(path, &store_form("99999999", "x")).await;
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_file_with_one_bad_line_imports_nothing_and_names_that_line() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let mut csv = stores_csv(1, 10);
    csv.push_str("10000099,나쁜약국,서울특별시 중구,04,37.5,127\n");
    let (status, html) = import(&admin, csv.as_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(data(&html, "bad-lines"), "1");
    assert!(html.contains("12"), "line 12 is named: {html}");
    assert!(html.contains("“04”"), "{html}");
    assert_eq!(count_stores(&app), 0);
    assert!(audit(&app, "store.import").is_empty());
}

#[tokio::test]
async fn a_file_again_with_some_rows_changed_updates_those_and_keeps_the_rest() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let (status, _) = import(&admin, stores_csv(1, 10).as_bytes()).await;
    assert_eq!(status, 200);
    // Suspended by hand: a file has no say in it.
    let res = admin
        .post_form(
            "/admin/stores/10000001",
            &[
                ("code", "10000001"),
                ("name", "약국 1"),
                ("addr", "부산광역시 해운대구 해운대로 1"),
                ("type", "01"),
                ("lat", "37.5"),
                ("lng", "127"),
                ("suspended", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let mut csv = String::from("code,name,addr,type,lat,lng,phone\n");
    for i in 1..=12u32 {
        let addr = if i % 2 == 0 {
            "서울특별시 중구 세종대로"
        } else {
            "부산광역시 해운대구 해운대로"
        };
        let name = if i == 3 {
            "새 약국 3".to_owned()
        } else {
            format!("약국 {i}")
        };
        let lng = if i == 4 { "127.5" } else { "127.0" };
        let phone = if i == 6 { "02-1234-5678" } else { "" };
        csv.push_str(&format!(
            "{:08},{name},{addr} {i},01,37.5,{lng},{phone}\n",
            10_000_000 + i
        ));
    }
    let (status, html) = import(&admin, csv.as_bytes()).await;
    assert_eq!(status, 200, "{html}");
    // 3 renamed, 4 moved, 6 given a phone; 11 and 12 new.
    assert_eq!(data(&html, "created"), "2", "{html}");
    assert_eq!(data(&html, "updated"), "3", "{html}");
    assert_eq!(data(&html, "unchanged"), "7", "{html}");
    let mut conn = app.db.get().unwrap();
    let get = |conn: &mut _, code: &str| -> (String, f64, Option<String>, bool) {
        stores::table
            .filter(stores::code.eq(code))
            .select((stores::name, stores::lng, stores::phone, stores::suspended))
            .first(conn)
            .unwrap()
    };
    assert_eq!(get(&mut conn, "10000003").0, "새 약국 3");
    assert_eq!(get(&mut conn, "10000004").1, 127.5);
    assert_eq!(
        get(&mut conn, "10000006").2.as_deref(),
        Some("02-1234-5678")
    );
    assert!(get(&mut conn, "10000001").3, "still suspended");
    assert_eq!(count_stores(&app), 12);
    assert_eq!(audit(&app, "store.import").len(), 2);
}

#[tokio::test]
async fn a_file_with_a_byte_order_mark_imports() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let mut file = b"\xEF\xBB\xBF".to_vec();
    file.extend_from_slice(stores_csv(1, 3).as_bytes());
    let (status, html) = import(&admin, &file).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(data(&html, "created"), "3");
}

#[tokio::test]
async fn a_file_that_is_not_utf8_names_its_lines_and_imports_nothing() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let mut file = stores_csv(1, 2).into_bytes();
    // "약국" in EUC-KR, on lines 4 and 5.
    file.extend_from_slice(b"10000003,\xbe\xe0\xb1\xb9,addr,01,37.5,127\n");
    file.extend_from_slice(b"10000004,\xbe\xe0\xb1\xb9,addr,01,37.5,127\n");
    let (status, html) = import(&admin, &file).await;
    assert_eq!(status, 422);
    assert_eq!(data(&html, "bad-lines"), "2");
    assert!(html.contains("UTF-8"), "{html}");
    assert_eq!(count_stores(&app), 0);
}

#[tokio::test]
async fn a_wrong_header_is_one_error_on_line_1_naming_the_columns() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let file = "code,name,address,type,lat,lng\n10000001,a,b,01,37,127\n";
    let (status, html) = import(&admin, file.as_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(data(&html, "bad-lines"), "1");
    assert!(html.contains("addr") && html.contains("address"), "{html}");
    assert_eq!(count_stores(&app), 0);
}

#[tokio::test]
async fn bad_values_and_duplicate_codes_are_each_named_by_line() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let file = "code,name,addr,type,lat,lng\n\
                10000001,a,서울특별시 1,01,37,127\n\
                10000002,b,서울특별시 2,07,37,127\n\
                10000003,c,서울특별시 3,01,91.5,127\n\
                10000001,d,서울특별시 4,01,37,127\n";
    let (status, html) = import(&admin, file.as_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(data(&html, "bad-lines"), "3");
    let lines: Vec<&str> = html
        .split("<li data-import-line>")
        .skip(1)
        .map(|l| l.split("</li>").next().unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{html}");
    assert!(
        lines[0].starts_with("3") && lines[0].contains("07"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("4") && lines[1].contains("91.5"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("5") && lines[2].contains("10000001") && lines[2].contains('2'),
        "the duplicate names both lines: {lines:?}"
    );
}

#[tokio::test]
async fn at_most_fifty_bad_lines_are_listed_with_how_many_more() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let file = stores_csv(1, 70).replace(",01,", ",05,");
    let (status, html) = import(&admin, file.as_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(html.matches("<li data-import-line>").count(), 50);
    assert_eq!(data(&html, "import-more"), "20");
}

#[tokio::test]
async fn an_empty_upload_or_a_header_alone_is_refused_next_to_the_file_field() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    for file in [&b""[..], b"code,name,addr,type,lat,lng\n"] {
        let (status, html) = import(&admin, file).await;
        assert_eq!(status, 422, "{file:?}");
        assert!(html.contains("data-error-for=\"file\""), "{html}");
    }
    // A form sent with no file part at all.
    let form = reqwest::multipart::Form::new().text("csrf_token", admin.csrf_token().await);
    let res = admin
        .client
        .post(admin.url("/admin/stores/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error-for=\"file\"")
    );
}

#[tokio::test]
async fn an_import_without_the_csrf_token_or_by_a_pharmacist_is_refused() {
    let app = spawn_app().await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let admin = admin(&app).await;
    let part = reqwest::multipart::Part::bytes(stores_csv(1, 2).into_bytes()).file_name("s.csv");
    let res = admin
        .client
        .post(admin.url("/admin/stores/import"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "p@example.com", Some(store))
        .await;
    let (status, _) = import(&pharmacist, stores_csv(1, 2).as_bytes()).await;
    assert_eq!(status, 403);
    assert_eq!(count_stores(&app), 1);
}

#[tokio::test]
async fn a_file_over_ten_mebibytes_gets_the_413_page() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let big = vec![b'a'; 10 * 1024 * 1024 + 1];
    let (status, html) = import(&admin, &big).await;
    assert_eq!(status, 413);
    assert!(html.contains("<html"), "a page, not a bare status: {html}");
}

#[tokio::test]
async fn zero_width_and_direction_marks_are_refused_in_the_form_the_edit_and_the_file() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    // A name that looks like "성모약국" but is not the same text.
    for mark in ["\u{200b}", "\u{200d}", "\u{200e}", "\u{200f}", "\u{061c}"] {
        let name = format!("성모{mark}약국");
        let res = admin
            .post_form("/admin/stores", &store_form("11800001", &name))
            .await;
        assert_eq!(res.status(), 422, "{mark:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("data-error-for=\"name\""), "{mark:?}: {html}");
        assert!(html.contains("보이지 않는 문자"), "{mark:?}: {html}");
        let code = format!("U+{:04X}", u32::from(mark.chars().next().unwrap()));
        assert!(html.contains(&code), "{code}: {html}");
    }
    let mut form = store_form("11800001", "성모약국");
    form[2] = ("addr", "대구광역시 중구\u{200b} 동성로 1");
    let res = admin.post_form("/admin/stores", &form).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-error-for=\"addr\"")
    );
    assert_eq!(count_stores(&app), 0);

    // Editing an existing store the same way.
    fixtures::store(&app.db, "11800002", "중앙약국");
    let res = admin
        .post_form(
            "/admin/stores/11800002",
            &store_form("11800002", "중앙\u{200c}약국"),
        )
        .await;
    assert_eq!(res.status(), 422);
    let mut conn = app.db.get().unwrap();
    let name: String = stores::table
        .filter(stores::code.eq("11800002"))
        .select(stores::name)
        .first(&mut conn)
        .unwrap();
    assert_eq!(name, "중앙약국");

    // And in a file: the line is named with the mark, nothing is imported.
    let mut csv = stores_csv(1, 3);
    csv.push_str("10000099,성모\u{200f}약국,서울특별시 중구 세종대로 1,01,37.5,127\n");
    let (status, html) = import(&admin, csv.as_bytes()).await;
    assert_eq!(status, 422);
    assert_eq!(data(&html, "bad-lines"), "1");
    assert!(html.contains("U+200F"), "{html}");
    assert_eq!(count_stores(&app), 1);
    assert!(audit(&app, "store.import").is_empty());
    assert!(audit(&app, "store.create").is_empty());
}
