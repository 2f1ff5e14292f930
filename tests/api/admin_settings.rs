//! `/admin/settings`: the form shows the policy in force; a valid change
//! answers a review of each changed value, old → new, and is saved only when
//! confirmed, with one audit entry per changed setting, applying at once; an
//! invalid one changes nothing; a form or review rendered before someone
//! else's save is refused with 409.

use std::collections::HashMap;

use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::{audit_log, settings, users};

use crate::common::{TestApp, Visitor, spawn_app};

/// The value of the input named `name` on the page.
pub fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no input {name}"));
    let rest = &html[at..];
    let start = rest.find("value=\"").unwrap() + "value=\"".len();
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_owned()
}

/// The settings form as the page renders it, ready to post back.
pub async fn form_of(admin: &Visitor) -> Vec<(&'static str, String)> {
    let html = admin.html("/admin/settings").await;
    let mut fields: Vec<(&'static str, String)> = [
        "quota_per_period",
        "timezone",
        "booking_horizon_days",
        "cancel_cutoff_minutes",
        "pickup_grace_minutes",
        "window_template",
        "reminder_lead_minutes",
        "walk_in_share_percent",
        "booking_close_minutes",
        "max_dependants",
        "proxy_born_from",
        "proxy_born_until",
        "waitlist_hold_minutes",
        "version",
    ]
    .into_iter()
    .map(|k| (k, input_value(&html, k)))
    .collect();
    fields.push(("period", "iso_week".into()));
    let rotation = if html.contains("value=\"birth_year\" selected") {
        "birth_year"
    } else {
        "off"
    };
    fields.push(("rotation", rotation.into()));
    fields
}

pub fn with(
    mut form: Vec<(&'static str, String)>,
    changes: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (k, v) in changes {
        match form.iter_mut().find(|(name, _)| name == k) {
            Some(field) => field.1 = (*v).to_owned(),
            None => form.push((k, (*v).to_owned())),
        }
    }
    form
}

/// Posts the form as its button does: the answer is a review.
async fn post(admin: &Visitor, form: &[(&'static str, String)]) -> reqwest::Response {
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    admin.post_form("/admin/settings", &fields).await
}

/// Posts the form as the review's confirmation does.
pub async fn save(admin: &Visitor, form: &[(&'static str, String)]) -> reqwest::Response {
    post(admin, &with(form.to_vec(), &[("confirm", "1")])).await
}

fn stored(app: &TestApp) -> HashMap<String, String> {
    let mut conn = app.db.get().unwrap();
    settings::table
        .select((settings::key, settings::value))
        .load::<(String, String)>(&mut conn)
        .unwrap()
        .into_iter()
        .collect()
}

type AuditRow = (Option<i64>, String, String, Option<String>, Option<String>);

fn setting_entries(app: &TestApp) -> Vec<AuditRow> {
    let mut conn = app.db.get().unwrap();
    audit_log::table
        .filter(audit_log::entity.eq("setting"))
        .select((
            audit_log::actor_user_id,
            audit_log::action,
            audit_log::entity_id,
            audit_log::before_json,
            audit_log::after_json,
        ))
        .order(audit_log::entity_id)
        .load(&mut conn)
        .unwrap()
}

pub fn user_id(app: &TestApp, email: &str) -> i64 {
    let mut conn = app.db.get().unwrap();
    users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(&mut conn)
        .unwrap()
}

async fn admin(app: &TestApp) -> Visitor {
    app.logged_in_as(Role::Admin, "a@example.com", None).await
}

#[tokio::test]
async fn the_form_shows_the_values_in_force() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let res = admin.get("/admin/settings").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(input_value(&html, "quota_per_period"), "2");
    assert_eq!(input_value(&html, "timezone"), "Asia/Seoul");
    assert_eq!(input_value(&html, "booking_horizon_days"), "7");
    assert_eq!(input_value(&html, "cancel_cutoff_minutes"), "60");
    assert_eq!(input_value(&html, "pickup_grace_minutes"), "30");
    assert_eq!(
        input_value(&html, "window_template"),
        "09:00-12:00,12:00-15:00,15:00-18:00"
    );
    assert!(html.contains("value=\"off\" selected"));
    assert!(html.contains("value=\"iso_week\" selected"));
    assert!(html.contains("data-settings-help"));
    assert!(!input_value(&html, "version").is_empty());
}

#[tokio::test]
async fn a_valid_change_is_saved_audited_per_key_and_applies_on_the_home_page_at_once() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let admin_id = user_id(&app, "a@example.com");
    let form = with(
        form_of(&admin).await,
        &[
            ("quota_per_period", "3"),
            ("rotation", "birth_year"),
            ("window_template", "09:00–12:00, 13:00-16:00"),
        ],
    );
    let res = save(&admin, &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/settings");

    let now = stored(&app);
    assert_eq!(now["quota_per_period"], "3");
    assert_eq!(now["rotation"], "birth_year");
    assert_eq!(now["window_template"], "09:00-12:00,13:00-16:00");
    assert_eq!(now["pickup_grace_minutes"], "30");

    let mut conn = app.db.get().unwrap();
    let stamped: Vec<(String, Option<i64>)> = settings::table
        .filter(settings::updated_by.is_not_null())
        .select((settings::key, settings::updated_by))
        .order(settings::key)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        stamped,
        [
            ("quota_per_period".to_owned(), Some(admin_id)),
            ("rotation".to_owned(), Some(admin_id)),
            ("window_template".to_owned(), Some(admin_id)),
        ]
    );
    let entries = setting_entries(&app);
    assert_eq!(entries.len(), 3, "{entries:?}");
    let (actor, action, key, before, after) = &entries[0];
    assert_eq!(
        (*actor, action.as_str(), key.as_str()),
        (Some(admin_id), "setting.update", "quota_per_period")
    );
    assert_eq!(before.as_deref(), Some(r#"{"quota_per_period":"2"}"#));
    assert_eq!(after.as_deref(), Some(r#"{"quota_per_period":"3"}"#));

    // The saved page says so, and the home page lists the new rules now.
    let page = admin.html("/admin/settings").await;
    assert_eq!(input_value(&page, "quota_per_period"), "3");
    let home = app
        .new_visitor()
        .get_with_lang("/", "en")
        .await
        .text()
        .await
        .unwrap();
    let at = home.find("data-rule=\"quota_per_period\"").unwrap();
    assert!(home[at..at + 80].contains('3'), "{}", &home[at..at + 80]);

    // Saving the same values again writes nothing.
    let again = form_of(&admin).await;
    assert_eq!(save(&admin, &again).await.status(), 303);
    assert_eq!(setting_entries(&app).len(), 3);
}

#[tokio::test]
async fn each_invalid_field_gets_its_message_and_nothing_changes() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let before = stored(&app);
    let form = with(
        form_of(&admin).await,
        &[
            ("quota_per_period", "0"),
            ("timezone", "Mars/Olympus"),
            ("rotation", "odd_even"),
            ("booking_horizon_days", "61"),
            ("cancel_cutoff_minutes", "abc"),
            ("pickup_grace_minutes", "-5"),
            ("window_template", "12:00-09:00"),
            ("period", "month"),
        ],
    );
    let res = post(&admin, &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for key in [
        "quota_per_period",
        "period",
        "timezone",
        "rotation",
        "booking_horizon_days",
        "cancel_cutoff_minutes",
        "pickup_grace_minutes",
        "window_template",
    ] {
        assert!(html.contains(&format!("data-error-for=\"{key}\"")), "{key}");
    }
    assert_eq!(input_value(&html, "booking_horizon_days"), "61");
    assert_eq!(input_value(&html, "window_template"), "12:00-09:00");
    assert_eq!(stored(&app), before);
    assert!(setting_entries(&app).is_empty());

    // One bad field among good changes: still nothing is saved.
    let form = with(
        form_of(&admin).await,
        &[
            ("quota_per_period", "5"),
            ("window_template", "09:00-12:00,11:00-13:00"),
        ],
    );
    let res = post(&admin, &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"window_template\""));
    assert!(!html.contains("data-error-for=\"quota_per_period\""));
    assert_eq!(input_value(&html, "quota_per_period"), "5");
    assert_eq!(stored(&app), before);
}

#[tokio::test]
async fn a_change_answers_a_review_of_each_changed_value_and_is_saved_only_once_confirmed() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let form = with(
        form_of(&admin).await,
        &[("timezone", "Europe/London"), ("quota_per_period", "4")],
    );
    let res = post(&admin, &form).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-settings-review"), "{html}");
    let listed: Vec<&str> = html
        .split("<li data-key=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(listed, ["quota_per_period", "timezone"], "{html}");
    assert!(html.contains("<span data-before>2</span> → <strong data-after>4</strong>"));
    assert!(html.contains(
        "<span data-before>Asia/Seoul</span> → <strong data-after>Europe/London</strong>"
    ));
    // A new time zone says what it changes.
    assert!(html.contains("data-confirm-timezone"));
    assert!(html.contains("name=\"confirm\" value=\"1\""));
    assert_eq!(input_value(&html, "quota_per_period"), "4");
    assert_eq!(stored(&app)["timezone"], "Asia/Seoul");
    assert_eq!(stored(&app)["quota_per_period"], "2");
    assert!(
        setting_entries(&app).is_empty(),
        "the review writes nothing"
    );

    // Back to the form from the review: the values as they were typed.
    let res = post(&admin, &with(form.clone(), &[("edit", "1")])).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-settings-form"));
    assert_eq!(input_value(&html, "timezone"), "Europe/London");
    assert_eq!(stored(&app)["timezone"], "Asia/Seoul");

    assert_eq!(save(&admin, &form).await.status(), 303);
    assert_eq!(stored(&app)["timezone"], "Europe/London");
    assert_eq!(stored(&app)["quota_per_period"], "4");
    let entries = setting_entries(&app);
    assert!(
        entries
            .iter()
            .any(|(_, _, key, before, after)| key == "timezone"
                && before.as_deref() == Some(r#"{"timezone":"Asia/Seoul"}"#)
                && after.as_deref() == Some(r#"{"timezone":"Europe/London"}"#))
    );
}

#[tokio::test]
async fn a_review_with_nothing_changed_says_so_and_offers_nothing_to_apply() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let res = post(&admin, &form_of(&admin).await).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-review-nothing"), "{html}");
    assert!(html.contains("바뀐 값이 없습니다"), "{html}");
    assert!(!html.contains("data-confirm-settings"));
}

#[tokio::test]
async fn a_confirmation_after_another_save_applies_nothing_and_shows_a_fresh_review() {
    let app = spawn_app().await;
    let first = admin(&app).await;
    let second = app.logged_in_as(Role::Admin, "b@example.com", None).await;
    // The second administrator reviews a change of the grace period...
    let reviewed = with(form_of(&second).await, &[("pickup_grace_minutes", "45")]);
    let html = post(&second, &reviewed).await.text().await.unwrap();
    let confirm_form = with(
        reviewed.clone(),
        &[("version", &input_value(&html, "version"))],
    );
    // ...while the first saves a new quota.
    let first_form = with(form_of(&first).await, &[("quota_per_period", "3")]);
    assert_eq!(save(&first, &first_form).await.status(), 303);

    let res = save(&second, &confirm_form).await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-settings-stale"), "{html}");
    // The fresh review shows that this form would put the quota back.
    assert!(
        html.contains("<li data-key=\"quota_per_period\">"),
        "{html}"
    );
    assert!(html.contains("<span data-before>3</span> → <strong data-after>2</strong>"));
    assert_eq!(stored(&app)["quota_per_period"], "3");
    assert_eq!(stored(&app)["pickup_grace_minutes"], "30");
    assert_eq!(setting_entries(&app).len(), 1);
}

#[tokio::test]
async fn a_form_rendered_before_another_save_is_refused_with_the_values_in_force() {
    let app = spawn_app().await;
    let first = admin(&app).await;
    let second = app.logged_in_as(Role::Admin, "b@example.com", None).await;
    let first_form = form_of(&first).await;
    let second_form = form_of(&second).await;

    let res = save(&first, &with(first_form, &[("quota_per_period", "3")])).await;
    assert_eq!(res.status(), 303);
    // The second administrator only meant to change the grace period, but the
    // form still says quota 2: saving it must not put quota back to 2.
    let res = post(
        &second,
        &with(second_form, &[("pickup_grace_minutes", "45")]),
    )
    .await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-summary"));
    assert_eq!(input_value(&html, "quota_per_period"), "3");
    assert_eq!(input_value(&html, "pickup_grace_minutes"), "30");
    assert_eq!(stored(&app)["quota_per_period"], "3");
    assert_eq!(stored(&app)["pickup_grace_minutes"], "30");

    // The page it answered with carries the new version: saving from it works.
    let fresh = with(form_of(&second).await, &[("pickup_grace_minutes", "45")]);
    assert_eq!(save(&second, &fresh).await.status(), 303);
    assert_eq!(stored(&app)["quota_per_period"], "3");
    assert_eq!(stored(&app)["pickup_grace_minutes"], "45");
}

#[tokio::test]
async fn two_saves_at_once_from_the_same_version_are_one_success_and_one_conflict() {
    let app = spawn_app().await;
    let first = admin(&app).await;
    let second = app.logged_in_as(Role::Admin, "b@example.com", None).await;
    let a = with(form_of(&first).await, &[("quota_per_period", "3")]);
    let b = with(form_of(&second).await, &[("booking_horizon_days", "14")]);
    let (ra, rb) = tokio::join!(save(&first, &a), save(&second, &b));
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [303, 409]);
    let now = stored(&app);
    let applied = [
        now["quota_per_period"] == "3",
        now["booking_horizon_days"] == "14",
    ];
    assert_eq!(applied.iter().filter(|x| **x).count(), 1, "{now:?}");
    assert_eq!(setting_entries(&app).len(), 1);
}

#[tokio::test]
async fn the_walk_in_share_booking_close_dependant_and_waitlist_rules_are_settings_with_their_bounds()
 {
    let app = spawn_app().await;
    let admin = app.logged_in_as(Role::Admin, "a@example.com", None).await;
    for (key, bad) in [
        ("walk_in_share_percent", "101"),
        ("walk_in_share_percent", "-1"),
        ("booking_close_minutes", "1441"),
        ("max_dependants", "21"),
        ("proxy_born_from", "10"),
        ("proxy_born_until", "year"),
        ("waitlist_hold_minutes", "0"),
        ("waitlist_hold_minutes", "1441"),
    ] {
        let res = post(&admin, &with(form_of(&admin).await, &[(key, bad)])).await;
        assert_eq!(res.status(), 422, "{key}={bad}");
        let html = res.text().await.unwrap();
        assert!(html.contains(&format!("data-error-for=\"{key}\"")), "{key}");
    }
    assert_eq!(stored(&app)["walk_in_share_percent"], "30");

    let form = with(
        form_of(&admin).await,
        &[
            ("walk_in_share_percent", "25"),
            ("booking_close_minutes", "45"),
            ("max_dependants", "3"),
            ("waitlist_hold_minutes", "15"),
        ],
    );
    assert_eq!(save(&admin, &form).await.status(), 303);
    let now = stored(&app);
    assert_eq!(
        (
            now["walk_in_share_percent"].as_str(),
            now["booking_close_minutes"].as_str(),
            now["max_dependants"].as_str(),
            now["waitlist_hold_minutes"].as_str()
        ),
        ("25", "45", "3", "15")
    );
    // Each change is audited with its values before and after.
    let audited: Vec<(String, Option<String>, Option<String>)> = audit_log::table
        .filter(audit_log::entity.eq("setting"))
        .filter(audit_log::entity_id.eq("walk_in_share_percent"))
        .select((
            audit_log::entity_id,
            audit_log::before_json,
            audit_log::after_json,
        ))
        .load(&mut app.db.get().unwrap())
        .unwrap();
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(audited[0].1.as_deref().unwrap_or("").contains("30"));
    assert!(audited[0].2.as_deref().unwrap_or("").contains("25"));
    // The home page states the rules in force.
    let home = app.html("/").await;
    let rule = |key: &str| {
        home.split(&format!("data-rule=\"{key}\">"))
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert!(rule("booking_close_minutes").contains("45분"), "{home}");
    assert!(rule("walk_in_share_percent").contains("25%"), "{home}");
}
