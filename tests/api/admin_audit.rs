//! `/admin/audit`: entries with their actor and values, newest first, filtered
//! and paginated; query values that make no sense answer 400.

use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::audit::{Entry, record};
use mask_reservation::db::schema::users;
use mask_reservation::db::write_tx;
use serde_json::json;

use crate::admin_settings::{form_of, user_id, with};
use crate::common::{TestApp, fixtures, spawn_app};

/// Writes `n` entries about `entity` by `actor`, numbered from 1.
fn entries(app: &TestApp, n: usize, entity: &str, actor: Option<i64>) {
    let mut conn = app.db.get().unwrap();
    write_tx(&mut conn, |tx| {
        for i in 1..=n {
            record(
                tx,
                Entry {
                    actor,
                    action: "test.change",
                    entity,
                    entity_id: i.to_string(),
                    before: Some(json!({ "n": i - 1 })),
                    after: Some(json!({ "n": i })),
                },
            )?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
}

fn rows(html: &str) -> usize {
    html.matches("data-audit-id=").count()
}

#[tokio::test]
async fn user_and_setting_changes_appear_with_their_actor_and_values() {
    let app = spawn_app().await;
    fixtures::store(&app.db, "11800001", "중앙약국");
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let res = admin
        .post_form(
            "/admin/users",
            &[
                ("email", "p@example.com"),
                ("name", "김약사"),
                ("role", "pharmacist"),
                ("store_code", "11800001"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let pharmacist = user_id(&app, "p@example.com");
    let res = admin
        .post_form(&format!("/admin/users/{pharmacist}/disable"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let form = with(
        form_of(&admin).await,
        &[("quota_per_period", "3"), ("confirm", "1")],
    );
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        admin.post_form("/admin/settings", &fields).await.status(),
        303
    );

    let res = admin.get_with_lang("/admin/audit", "en").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(rows(&html), 3);
    // Newest first.
    let setting = html.find("data-action=\"setting.update\"").unwrap();
    let disable = html.find("data-action=\"user.disable\"").unwrap();
    let create = html.find("data-action=\"user.create\"").unwrap();
    assert!(setting < disable && disable < create);
    assert!(html.contains("a (a@example.com)"));
    // Each entry in words, in the reader's language, with its values by name.
    for sentence in [
        "Administrator a changed the policy setting “Quota per person per period (masks)” from 2 to 3.",
        &format!("Administrator a disabled the account 김약사 (#{pharmacist})."),
        "Administrator a created an account for 김약사 (p@example.com), role: Pharmacist.",
    ] {
        assert!(html.contains(sentence), "{sentence} missing from {html}");
    }
    assert!(html.contains("Disabled: <span data-before>no</span> → <span data-after>yes</span>"));
    assert!(html.contains("E-mail: <span data-after>p@example.com</span>"));
    assert!(!html.contains(">setting.update<") && !html.contains("quota_per_period:"));
    let ko = admin.html("/admin/audit").await;
    assert!(
        ko.contains(
            "관리자 a 님이 운영 정책의 ‘1인당 기간 한도 (개)’ 값을 2에서 3(으)로 바꿨습니다."
        ),
        "{ko}"
    );
    assert!(html.contains(&format!("data-entity-id=\"{pharmacist}\"")));
}

#[tokio::test]
async fn fifty_entries_a_page_newest_first_with_links_that_keep_the_filters() {
    let app = spawn_app().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    let admin_id = user_id(&app, "a@example.com");
    entries(&app, 60, "store", Some(admin_id));

    let first = admin.html("/admin/audit?entity=store").await;
    assert_eq!(rows(&first), 50);
    assert!(first.contains("data-entity-id=\"60\""));
    assert!(!first.contains("data-entity-id=\"10\""));
    let older = first.find("data-older").unwrap();
    let link = &first[first[..older].rfind("href=").unwrap()..older];
    assert!(
        link.contains("entity=store") && link.contains("page=2"),
        "{link}"
    );
    assert!(!first.contains("data-newer"));

    let second = admin.html("/admin/audit?entity=store&page=2").await;
    assert_eq!(rows(&second), 10);
    assert!(second.contains("data-entity-id=\"1\""));
    assert!(second.contains("data-newer"));
    assert!(!second.contains("data-older"));

    let past_the_end = admin.get("/admin/audit?page=9").await;
    assert_eq!(past_the_end.status(), 200);
    assert_eq!(rows(&past_the_end.text().await.unwrap()), 0);
}

#[tokio::test]
async fn the_list_filters_by_entity_and_by_actor_id_or_email() {
    let app = spawn_app().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    app.logged_in_as(Role::Admin, "b@example.com", None).await;
    let a = user_id(&app, "a@example.com");
    let b = user_id(&app, "b@example.com");
    entries(&app, 3, "store", Some(a));
    entries(&app, 2, "supply", Some(b));
    entries(&app, 1, "window", None);

    assert_eq!(rows(&admin.html("/admin/audit").await), 6);
    let page = admin.html("/admin/audit").await;
    for entity in ["store", "supply", "window"] {
        assert!(
            page.contains(&format!("<option value=\"{entity}\"")),
            "{entity}"
        );
    }
    assert_eq!(rows(&admin.html("/admin/audit?entity=supply").await), 2);
    assert_eq!(
        rows(&admin.html(&format!("/admin/audit?actor={a}")).await),
        3
    );
    assert_eq!(
        rows(&admin.html("/admin/audit?actor=b%40example.com").await),
        2
    );
    assert_eq!(rows(&admin.html("/admin/audit?actor=B@EXAMPLE").await), 2);
    assert_eq!(
        rows(
            &admin
                .html(&format!("/admin/audit?actor={b}&entity=store"))
                .await
        ),
        0
    );
    let none = admin.html("/admin/audit?entity=user").await;
    assert_eq!(rows(&none), 0);
    assert!(none.contains("data-audit-empty"));
    assert!(none.contains("<option value=\"user\" selected"));
    // An entry no account made says so.
    let window = admin.html("/admin/audit?entity=window").await;
    assert!(window.contains("data-actor"));
    let mut conn = app.db.get().unwrap();
    let n: i64 = users::table.count().get_result(&mut conn).unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn page_values_that_are_not_a_page_and_malformed_entities_answer_400() {
    let app = spawn_app().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    for query in [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=99999999999999999999",
        "entity=Store",
        "entity=store%27%3B--",
    ] {
        let res = admin.get(&format!("/admin/audit?{query}")).await;
        assert_eq!(res.status(), 400, "{query}");
    }
    assert_eq!(
        admin
            .get("/admin/audit?page=1&entity=&actor=")
            .await
            .status(),
        200
    );
}
