//! Dependants over HTTP on both backends (SPEC §12): adding, listing and
//! removing the people a citizen books for, each refusal with its words and
//! status — the two that must not be told apart with one sentence — booking
//! for a dependant with their quota and day, handing it over only with the
//! family documents checked, a walk-in sale bought for someone, a dependant
//! who signs up, and the races: two guardians adding one person, a booking
//! for a child while the counter sells to them, a sign-up during an addition.

use std::sync::mpsc;

use chrono::NaiveDate;
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::email::{DisplayName, Email};
use mask_reservation::accounts::national_id::NationalId;
use mask_reservation::accounts::password::{NewPassword, hash};
use mask_reservation::accounts::queries::{
    NewUser, ensure_person, find_or_insert_person, insert_user,
};
use mask_reservation::accounts::service::{self as accounts_service, Signup, SignupOutcome};
use mask_reservation::accounts::{Role, SessionClaim};
use mask_reservation::db::schema::{
    audit_log, dependants, mail_outbox, people, quota_usage, reservations, settings, users,
    walk_in_sales,
};
use mask_reservation::db::{AsRetryable, Backend, Db, DbConnection, Tx, write_tx};
use mask_reservation::dependants::rules::{Refusal, RemoveRefusal};
use mask_reservation::dependants::service::{self, AddError, NewDependant, RemoveError};
use mask_reservation::i18n::{Lang, Tr};
use mask_reservation::policy::Policy;
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{self, BookError, ForWhom, Hold, Request};
use mask_reservation::reservations::rules::Refusal as BookRefusal;

use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, fixtures, sign_up, spawn_app_with,
};
use crate::pharmacy_pickup::{Counter, citizen, confirm, counter_on, refusal, scan, user_id};
use crate::reservations::{seoul, tuesday};

/// The app at 08:00 on Tuesday with a store's supply of which `walk_in` is
/// the counter's (none of it set aside by the policy's share), and its
/// pharmacist.
pub async fn counter(supply: i32, walk_in: i32) -> Counter {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 8, 0))).await;
    set_setting(&app, "walk_in_share_percent", "0");
    counter_on(app, supply, walk_in).await
}

/// Born 15 March 2012: a child (rotation: Tuesday, as 1 December 2026 is).
pub fn child_id() -> String {
    fixtures::national_id("120315323456")
}

/// Born 20 July 2014: another child (rotation: Thursday).
fn second_child_id() -> String {
    fixtures::national_id("140720423456")
}

/// Born 1 January 1938: an elderly person.
fn elder_id() -> String {
    fixtures::national_id("380101123456")
}

/// Born 1 January 1990: neither a child nor elderly.
fn adult_id() -> String {
    fixtures::national_id("900101123456")
}

pub async fn add(v: &Visitor, name: &str, national_id: &str) -> reqwest::Response {
    v.post_form(
        "/dependants",
        &[("name", name), ("national_id", national_id)],
    )
    .await
}

/// Adds and expects it done; the new link's id.
pub async fn added(app: &TestApp, v: &Visitor, name: &str, national_id: &str) -> i64 {
    let res = add(v, name, national_id).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(res.headers()["location"], "/dependants");
    let mut conn = app.db.get().unwrap();
    dependants::table
        .order(dependants::id.desc())
        .select(dependants::id)
        .first(&mut conn)
        .unwrap()
}

/// Books through the store page's form for `person` (`self` or a link id).
pub async fn reserve_for(
    v: &Visitor,
    window: i64,
    quantity: &str,
    person: &str,
) -> reqwest::Response {
    v.post_form(
        "/reservations",
        &[
            ("window_id", &window.to_string()),
            ("quantity", quantity),
            ("request_id", &mask_reservation::random::token()),
            ("person", person),
        ],
    )
    .await
}

/// The reservation a 303 points to.
fn booked(res: &reqwest::Response) -> i64 {
    assert_eq!(res.status(), 303);
    res.headers()["location"]
        .to_str()
        .unwrap()
        .strip_prefix("/reservations/")
        .unwrap()
        .parse()
        .unwrap()
}

fn hash_of(app: &TestApp, national_id: &str) -> String {
    NationalId::parse(national_id, NaiveDate::from_ymd_opt(2100, 1, 1).unwrap())
        .unwrap()
        .keyed_hash(&app.state.keys.national_id)
}

fn person_of(app: &TestApp, national_id: &str) -> Option<i64> {
    let mut conn = app.db.get().unwrap();
    people::table
        .filter(people::national_id_hash.eq(hash_of(app, national_id)))
        .select(people::id)
        .first(&mut conn)
        .optional()
        .unwrap()
}

/// What is used of the quota, per person id.
fn used(db: &Db, person: i64) -> i64 {
    let mut conn = db.get().unwrap();
    quota_usage::table
        .filter(quota_usage::person_id.eq(person))
        .select(diesel::dsl::sum(quota_usage::used))
        .first::<Option<i64>>(&mut conn)
        .unwrap()
        .unwrap_or(0)
}

/// (links, current links, people, outbox rows): what an addition writes.
fn written(db: &Db) -> (i64, i64, i64, i64) {
    let mut conn = db.get().unwrap();
    (
        dependants::table.count().get_result(&mut conn).unwrap(),
        dependants::table
            .filter(dependants::ended_at.is_null())
            .count()
            .get_result(&mut conn)
            .unwrap(),
        people::table.count().get_result(&mut conn).unwrap(),
        mail_outbox::table.count().get_result(&mut conn).unwrap(),
    )
}

fn set_setting(app: &TestApp, key: &str, value: &str) {
    let mut conn = app.db.get().unwrap();
    diesel::update(settings::table.find(key))
        .set(settings::value.eq(value))
        .execute(&mut conn)
        .unwrap();
    app.state.policy.refresh(&mut conn).unwrap();
}

/// A verified citizen whose account is for `national_id`, named `name`.
pub fn citizen_with_id(app: &TestApp, email: &str, name: &str, national_id: &str) -> i64 {
    let key = app.state.keys.national_id.clone();
    let id = NationalId::parse(national_id, NaiveDate::from_ymd_opt(2100, 1, 1).unwrap()).unwrap();
    let password_hash = hash(&NewPassword::parse(fixtures::PASSWORD).unwrap()).unwrap();
    let mut conn = app.db.get().unwrap();
    write_tx(&mut conn, |tx| {
        let person =
            find_or_insert_person(tx, &id.keyed_hash(&key), id.birth_date(), &id.masked())?;
        insert_user(
            tx,
            &NewUser {
                role: Role::Citizen,
                email,
                name,
                password_hash: &password_hash,
                person_id: Some(person),
                store_id: None,
                email_verified: true,
            },
        )
    })
    .unwrap()
}

/// The text of the message the page shows for `field` (`data-error-for`).
fn message_for(html: &str, field: &str) -> String {
    let marker = format!("data-error-for=\"{field}\">");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no message for {field}: {html}"))
        + marker.len();
    html[at..at + html[at..].find('<').unwrap()].to_owned()
}

fn audit_actions(db: &Db) -> Vec<(String, String)> {
    let mut conn = db.get().unwrap();
    audit_log::table
        .filter(audit_log::entity.eq("dependant"))
        .order(audit_log::id)
        .select((audit_log::action, audit_log::entity_id))
        .load(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_citizen_adds_lists_and_removes_a_child_and_the_link_stays_on_record() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김민지").await;

    let page = kim.html("/dependants").await;
    assert!(page.contains("data-no-dependants"), "{page}");
    assert!(page.contains("data-add-dependant"));
    assert!(page.contains("2010") && page.contains("1940"), "the rule");
    let home = kim.html("/reservations").await;
    assert!(home.contains("data-nav-dependants"), "a link for citizens");

    let link = added(&c.app, &kim, "홍길동", &child_id()).await;
    let page = kim.html("/dependants").await;
    assert!(
        page.contains("data-flash=\"dependants.flash.added\""),
        "{page}"
    );
    assert!(page.contains(&format!("data-dependant-id=\"{link}\"")));
    assert!(page.contains("홍길동"));
    assert!(page.contains("120315-3******"));
    assert!(page.contains("data-birth-year=\"2012\""));
    assert!(!page.contains(&child_id()[6..]), "never the number");
    // The child's own quota, whole.
    assert!(page.contains("data-quota-left=\"2\""), "{page}");
    assert_eq!(
        audit_actions(&c.app.db),
        vec![("dependant.add".to_owned(), link.to_string())]
    );

    let res = kim
        .post_form(&format!("/dependants/{link}/remove"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let page = kim.html("/dependants").await;
    assert!(page.contains("data-no-dependants"), "{page}");
    let mut conn = c.app.db.get().unwrap();
    let (ended, reason): (Option<chrono::NaiveDateTime>, Option<String>) = dependants::table
        .find(link)
        .select((dependants::ended_at, dependants::end_reason))
        .first(&mut conn)
        .unwrap();
    assert!(ended.is_some());
    assert_eq!(reason.as_deref(), Some("removed"));
    assert_eq!(
        audit_actions(&c.app.db).last().unwrap(),
        &("dependant.remove".to_owned(), link.to_string())
    );

    // Added again: a new link, the same person.
    let again = added(&c.app, &kim, "홍길동", &child_id()).await;
    assert_ne!(again, link);
    let people: Vec<i64> = dependants::table
        .select(dependants::person_id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(people[0], people[1]);
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn a_person_known_from_a_walk_in_purchase_is_the_same_person_when_added() {
    let c = counter(30, 10).await;
    let res = c
        .pharmacist
        .post_form(
            "/pharmacy/walk-in",
            &[("national_id", &elder_id()), ("quantity", "1")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let person = person_of(&c.app, &elder_id()).unwrap();
    let kim = citizen(&c.app, "kim@example.com", "김민지").await;
    let link = added(&c.app, &kim, "김할머니", &elder_id()).await;
    let mut conn = c.app.db.get().unwrap();
    let linked: i64 = dependants::table
        .find(link)
        .select(dependants::person_id)
        .first(&mut conn)
        .unwrap();
    assert_eq!(linked, person);
    // What she bought counts: her quota line shows it.
    let page = kim.html("/dependants").await;
    assert!(page.contains("data-quota-left=\"1\""), "{page}");
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn each_mistake_in_the_form_is_said_next_to_its_field_and_nothing_is_written() {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김민지").await;
    let before = written(&c.app.db);

    // A wrong check digit: which part failed; the front is kept, the back not.
    let id = child_id();
    let wrong = format!("{}{}", &id[..12], (id.as_bytes()[12] - b'0' + 1) % 10);
    let res = add(&kim, "홍길동", &wrong).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(
        message_for(&html, "national_id").contains("확인 숫자"),
        "{html}"
    );
    assert!(html.contains("value=\"홍길동\""), "the name is kept");
    assert!(html.contains("value=\"120315\""), "the front is kept");
    assert!(!html.contains(&wrong[6..]), "never the back");
    assert!(html.contains("data-retype-back"));

    // Born neither in nor after 2010 nor in or before 1940: the rule.
    let res = add(&kim, "이철수", &adult_id()).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    let said = message_for(&html, "national_id");
    assert!(said.contains("2010") && said.contains("1940"), "{said}");
    assert!(html.contains("data-refusal=\"proxy_years\""));

    // No name.
    let res = add(&kim, "  ", &child_id()).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-error-for=\"name\""), "{html}");
    // An oversized field is no 500.
    let res = add(&kim, &"가".repeat(5000), &child_id()).await;
    assert_eq!(res.status(), 422);
    assert_eq!(written(&c.app.db), before);
}

#[tokio::test]
async fn more_than_the_policy_allows_twice_the_same_or_oneself_is_refused_clearly() {
    let c = counter(30, 0).await;
    let app = &c.app;
    // Someone born in 1930 may be booked for, but not by themself.
    let own = fixtures::national_id("300101123456");
    citizen_with_id(app, "old@example.com", "박노인", &own);
    let me = app.new_visitor();
    assert_eq!(
        me.login("old@example.com", fixtures::PASSWORD)
            .await
            .status(),
        303
    );

    // Oneself.
    let res = add(&me, "박노인", &own).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("data-refusal=\"oneself\"")
    );

    added(app, &me, "홍길동", &child_id()).await;
    // Twice: that is already known to them.
    let (status, kind, _) = refusal(add(&me, "홍길동", &child_id()).await).await;
    assert_eq!((status, kind.as_str()), (409, "already_yours"));
    set_setting(app, "max_dependants", "1");
    // Over the policy's number: the page says it and shows no form.
    let (status, kind, html) = refusal(add(&me, "홍길순", &second_child_id()).await).await;
    assert_eq!((status, kind.as_str()), (409, "too_many"));
    assert!(html.contains("data-full"), "{html}");
    assert!(!html.contains("data-add-dependant"));
    assert_eq!(written(&app.db).1, 1);
    assert_invariants(&app.db);
}

#[tokio::test]
async fn someone_with_an_account_or_a_guardian_is_refused_with_one_sentence_and_nobody_is_told() {
    let c = counter(30, 0).await;
    let app = &c.app;
    // The elder has an account of their own; the child has a guardian.
    citizen_with_id(app, "elder@example.com", "김노인", &elder_id());
    let lee = citizen(app, "lee@example.com", "이보호").await;
    added(app, &lee, "홍길동", &child_id()).await;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let before = written(&app.db);

    let has_account = add(&kim, "김노인", &elder_id()).await;
    let has_guardian = add(&kim, "홍길동", &child_id()).await;
    assert_eq!(has_account.status(), 409);
    assert_eq!(has_guardian.status(), 409);
    let (a, b) = (
        has_account.text().await.unwrap(),
        has_guardian.text().await.unwrap(),
    );
    assert_eq!(
        message_for(&a, "national_id"),
        message_for(&b, "national_id")
    );
    assert!(a.contains("data-refusal=\"unavailable\""));
    assert!(b.contains("data-refusal=\"unavailable\""));
    // Nothing written, no mail to the account's holder or the guardian.
    assert_eq!(written(&app.db), before);
    // In English too, one sentence.
    kim.post_form("/language", &[("lang", "en"), ("next", "/")])
        .await;
    let a = add(&kim, "Kim", &elder_id()).await.text().await.unwrap();
    let b = add(&kim, "Hong", &child_id()).await.text().await.unwrap();
    assert_eq!(
        message_for(&a, "national_id"),
        message_for(&b, "national_id")
    );
    assert!(message_for(&a, "national_id").contains("cannot be added"));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn without_a_csrf_token_or_a_verified_address_nothing_is_added_or_removed() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let link = added(app, &kim, "홍길동", &child_id()).await;
    let before = written(&app.db);

    let res = kim
        .post_form_raw(
            "/dependants",
            &[("name", "홍길순"), ("national_id", &second_child_id())],
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = kim
        .post_form_raw(&format!("/dependants/{link}/remove"), &[])
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(written(&app.db), before);

    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "new@example.com", None, false, &key);
    let before = written(&app.db);
    let unverified = app.new_visitor();
    unverified
        .login("new@example.com", fixtures::PASSWORD)
        .await;
    let page = unverified.html("/dependants").await;
    assert!(page.contains("data-verify-first"), "{page}");
    assert!(!page.contains("data-add-dependant"));
    let (status, kind, _) = refusal(add(&unverified, "홍길순", &second_child_id()).await).await;
    assert_eq!((status, kind.as_str()), (403, "unverified"));
    assert_eq!(written(&app.db), before);
}

#[tokio::test]
async fn a_dependant_with_an_active_reservation_stays_and_only_their_guardian_removes_them() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let lee = citizen(app, "lee@example.com", "이보호").await;
    let link = added(app, &kim, "홍길동", &child_id()).await;
    let id = booked(&reserve_for(&kim, c.windows[1], "1", &link.to_string()).await);

    let (status, kind, html) = refusal(
        kim.post_form(&format!("/dependants/{link}/remove"), &[])
            .await,
    )
    .await;
    assert_eq!((status, kind.as_str()), (409, "active_reservation"));
    assert!(html.contains("data-has-active"), "{html}");
    // Another citizen: as if there were no such dependant.
    let res = lee
        .post_form(&format!("/dependants/{link}/remove"), &[])
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(written(&app.db).1, 1);

    let res = kim
        .post_form(&format!("/reservations/{id}/cancel"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let res = kim
        .post_form(&format!("/dependants/{link}/remove"), &[])
        .await;
    assert_eq!(res.status(), 303);
    // The cancelled reservation still names the link, which is kept.
    let mut conn = app.db.get().unwrap();
    let under: Option<i64> = reservations::table
        .find(id)
        .select(reservations::dependant_id)
        .first(&mut conn)
        .unwrap();
    assert_eq!(under, Some(link));
    assert_invariants(&app.db);
}

/// The store page reads what it shows in one statement, whoever looks:
/// nobody, the store's pharmacist, a citizen with two dependants of whom one
/// has used the week's quota — and the page says what that statement read.
#[tokio::test]
async fn the_store_page_reads_in_one_statement_whoever_looks() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let link = added(app, &kim, "홍길동", &child_id()).await;
    added(app, &kim, "김하나", &second_child_id()).await;
    booked(&reserve_for(&kim, c.windows[1], "2", &link.to_string()).await);
    let page = kim.html("/stores/11800001").await;
    assert!(page.contains("홍길동 0개, 김하나 2개"), "{page}");

    let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
    let kim_id = user_id(&app.db, "kim@example.com");
    for (who, user) in [
        ("nobody", None),
        ("the pharmacist", Some(c.pharmacist_id)),
        ("a citizen with dependants", Some(kim_id)),
    ] {
        let mut conn = app.db.get().unwrap();
        let statements = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = statements.clone();
        let count = move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
                seen.lock().unwrap().push(query.to_string());
            }
        };
        match &mut *conn {
            DbConnection::Postgres(c) => c.set_instrumentation(count),
            DbConnection::Sqlite(c) => c.set_instrumentation(count),
        }
        let loaded = mask_reservation::stores::page::load(
            &mut conn,
            &policy,
            "11800001",
            seoul(tuesday(), 8, 0),
            user,
        )
        .unwrap();
        match &mut *conn {
            DbConnection::Postgres(c) => {
                c.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {})
            }
            DbConnection::Sqlite(c) => {
                c.set_instrumentation(|_: diesel::connection::InstrumentationEvent<'_>| {})
            }
        }
        assert!(loaded.is_some(), "{who}");
        let sent = statements.lock().unwrap();
        assert_eq!(sent.len(), 1, "{who}: {sent:#?}");
    }
}

#[tokio::test]
async fn booking_for_a_child_takes_the_childs_quota_and_day_and_says_who_collects() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let link = added(app, &kim, "홍길동", &child_id()).await;
    let child = person_of(app, &child_id()).unwrap();
    let own: i64 = {
        let mut conn = app.db.get().unwrap();
        users::table
            .filter(users::email.eq("kim@example.com"))
            .select(users::person_id)
            .first::<Option<i64>>(&mut conn)
            .unwrap()
            .unwrap()
    };

    // The form offers the child, with the child's week.
    let page = kim.html("/stores/11800001").await;
    assert!(page.contains("name=\"person\""), "{page}");
    assert!(page.contains(&format!("<option value=\"{link}\"")));
    assert!(page.contains("홍길동 (2012년생, 대리 예약)"));
    assert!(page.contains("data-dependants-note"));

    // The rotation rule: Tuesday is the child's day (2012), not Kim's (1985).
    set_setting(app, "rotation", "birth_year");
    let (status, kind) = {
        let (s, k, _) = refusal(reserve_for(&kim, c.windows[1], "1", "self").await).await;
        (s, k)
    };
    assert_eq!((status, kind.as_str()), (409, "rotation"));
    let id = booked(&reserve_for(&kim, c.windows[1], "2", &link.to_string()).await);
    assert_eq!((used(&app.db, child), used(&app.db, own)), (2, 0));
    let mut conn = app.db.get().unwrap();
    let (user, person, under): (i64, i64, Option<i64>) = reservations::table
        .find(id)
        .select((
            reservations::user_id,
            reservations::person_id,
            reservations::dependant_id,
        ))
        .first(&mut conn)
        .unwrap();
    assert_eq!(
        (user, person, under),
        (user_id(&app.db, "kim@example.com"), child, Some(link))
    );

    // The reservation page, the list and the mail say who collects for whom.
    let html = kim.html(&format!("/reservations/{id}")).await;
    assert!(
        html.contains("대리 수령: 홍*동(2012년생) 대신 김*지"),
        "{html}"
    );
    let list = kim.html("/reservations").await;
    assert!(list.contains("data-for-dependant"), "{list}");
    assert!(list.contains("data-dependant-quota"));
    let mail = app.smtp.wait_for(1).await.remove(0);
    assert!(
        mail.text_body()
            .contains("대리 수령: 홍*동(2012년생) 대신 김*지"),
        "{}",
        mail.text_body()
    );

    // The child's quota is spent; Kim's own is whole (rotation off again).
    set_setting(app, "rotation", "off");
    let (status, kind, _) =
        refusal(reserve_for(&kim, c.windows[2], "1", &link.to_string()).await).await;
    assert_eq!((status, kind.as_str()), (409, "quota"));
    booked(&reserve_for(&kim, c.windows[2], "2", "self").await);
    assert_eq!((used(&app.db, child), used(&app.db, own)), (2, 2));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn booking_for_someone_who_is_not_ones_current_dependant_is_refused_as_unknown() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let lee = citizen(app, "lee@example.com", "이보호").await;
    let leess = added(app, &lee, "이아이", &second_child_id()).await;
    let removed = added(app, &kim, "홍길동", &child_id()).await;
    kim.post_form(&format!("/dependants/{removed}/remove"), &[])
        .await;
    let before = crate::booking_steps::written(app);
    for person in [
        leess.to_string(),
        removed.to_string(),
        "999999".to_owned(),
        "someone".to_owned(),
    ] {
        let (status, kind, html) =
            refusal(reserve_for(&kim, c.windows[0], "1", &person).await).await;
        assert_eq!((status, kind.as_str()), (404, "unknown_person"), "{person}");
        // The form comes back with what was chosen.
        assert!(html.contains("data-reserve-form"), "{html}");
    }
    assert_eq!(crate::booking_steps::written(app), before);
}

/// A proxy reservation of `quantity` for a fresh child of Kim (김민지); the
/// counter, Kim's link id and the pickup code.
async fn proxy_reservation(quantity: &str) -> (Counter, i64, i64, String) {
    let c = counter(30, 0).await;
    let kim = citizen(&c.app, "kim@example.com", "김민지").await;
    let link = added(&c.app, &kim, "홍길동", &child_id()).await;
    let id = booked(&reserve_for(&kim, c.windows[0], quantity, &link.to_string()).await);
    let mut conn = c.app.db.get().unwrap();
    let code: String = reservations::table
        .find(id)
        .select(reservations::pickup_code)
        .first(&mut conn)
        .unwrap();
    (c, link, id, code)
}

fn handed(db: &Db, id: i64) -> (String, Option<chrono::NaiveDateTime>) {
    let mut conn = db.get().unwrap();
    reservations::table
        .find(id)
        .select((reservations::status, reservations::proxy_checked_at))
        .first(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn a_proxy_reservation_is_handed_over_only_with_the_family_documents_checked() {
    let (c, _, id, code) = proxy_reservation("2").await;

    let html = scan(&c.pharmacist, &code).await.text().await.unwrap();
    assert!(html.contains("data-found"), "{html}");
    assert!(
        html.contains("대리 수령: 홍*동(2012년생) 대신 김*지"),
        "{html}"
    );
    assert!(html.contains("name=\"proxy_checked\""));
    assert!(html.contains("120315-3******"), "the child's masked number");

    // The button without the box: refused, with the reservation to tick.
    let (status, kind, html) = refusal(confirm(&c.pharmacist, &code).await).await;
    assert_eq!((status, kind.as_str()), (422, "proxy_unchecked"));
    assert!(html.contains("data-found") && html.contains("name=\"proxy_checked\""));
    assert_eq!(handed(&c.app.db, id), ("active".to_owned(), None));

    let res = c
        .pharmacist
        .post_form(
            "/pharmacy/pickup",
            &[("code", &code), ("confirm", "1"), ("proxy_checked", "1")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-handed"), "{html}");
    assert!(html.contains("data-proxy-checked"));
    let (status, checked) = handed(&c.app.db, id);
    assert_eq!(status, "picked_up");
    assert!(checked.is_some(), "the tick is recorded with the handover");
    assert_invariants(&c.app.db);
}

#[tokio::test]
async fn confirm_on_scan_shows_a_proxy_reservation_with_its_box_instead_of_handing_it_over() {
    let (c, _, id, code) = proxy_reservation("1").await;
    c.pharmacist
        .post_form("/pharmacy/pickup/preferences", &[("confirm_on_scan", "1")])
        .await;
    let res = scan(&c.pharmacist, &code).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("data-found") && html.contains("data-proxy-needed"),
        "{html}"
    );
    assert!(!html.contains("data-handed"));
    assert!(!html.contains("data-refusal"));
    assert_eq!(handed(&c.app.db, id).0, "active");

    // Ticked and confirmed from that page: handed over.
    let res = c
        .pharmacist
        .post_form(
            "/pharmacy/pickup",
            &[("code", &code), ("confirm", "1"), ("proxy_checked", "1")],
        )
        .await;
    assert!(res.text().await.unwrap().contains("data-handed"));
    assert_eq!(handed(&c.app.db, id).0, "picked_up");
    assert_invariants(&c.app.db);
}

async fn sell_for(
    c: &Counter,
    buyer: &str,
    for_person: &str,
    quantity: &str,
    checked: bool,
) -> reqwest::Response {
    let mut fields = vec![
        ("national_id", buyer),
        ("for_national_id", for_person),
        ("quantity", quantity),
    ];
    if checked {
        fields.push(("proxy_checked", "1"));
    }
    c.pharmacist.post_form("/pharmacy/walk-in", &fields).await
}

#[tokio::test]
async fn a_walk_in_sale_for_a_child_takes_the_childs_quota_and_day_and_records_the_buyer() {
    let c = counter(30, 10).await;
    let app = &c.app;
    let buyer = fixtures::national_id("850101123456");
    // The child's day (Tuesday), not the buyer's (Friday).
    set_setting(app, "rotation", "birth_year");
    let count = || {
        let mut conn = app.db.get().unwrap();
        walk_in_sales::table
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap()
    };

    // Each mistake of a proxy purchase is said by its field; nothing sold.
    for (for_person, checked, field, kind) in [
        (child_id(), false, "proxy_checked", "proxy_unchecked"),
        (adult_id(), true, "for_national_id", "proxy_years"),
        (buyer.clone(), true, "for_national_id", "proxy_oneself"),
    ] {
        let res = sell_for(&c, &buyer, &for_person, "2", checked).await;
        assert_eq!(res.status(), 422, "{kind}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("data-error-for=\"{field}\"")),
            "{html}"
        );
        assert!(html.contains(&format!("data-refusal=\"{kind}\"")), "{html}");
        assert!(!html.contains(&for_person[7..]), "never the number");
    }
    let res = sell_for(&c, &buyer, "12031", "2", true).await;
    assert_eq!(res.status(), 422);
    assert_eq!(count(), 0);

    let res = sell_for(&c, &buyer, &child_id(), "2", true).await;
    assert_eq!(res.status(), 303);
    let child = person_of(app, &child_id()).unwrap();
    let bought_by = person_of(app, &buyer).unwrap();
    let mut conn = app.db.get().unwrap();
    let (person, proxy): (i64, Option<i64>) = walk_in_sales::table
        .select((walk_in_sales::person_id, walk_in_sales::proxy_person_id))
        .first(&mut conn)
        .unwrap();
    assert_eq!((person, proxy), (child, Some(bought_by)));
    assert_eq!((used(&app.db, child), used(&app.db, bought_by)), (2, 0));
    let html = c.pharmacist.html("/pharmacy/walk-in").await;
    assert!(html.contains("data-proxy-sale"), "{html}");
    // The look-up is audited under the child's keyed hash, naming the buyer's.
    let (entity, after): (String, Option<String>) = audit_log::table
        .filter(audit_log::action.eq("walk_in.lookup"))
        .order(audit_log::id.desc())
        .select((audit_log::entity_id, audit_log::after_json))
        .first(&mut conn)
        .unwrap();
    assert_eq!(entity, hash_of(app, &child_id()));
    assert!(after.unwrap().contains(&hash_of(app, &buyer)));

    // The child's quota is spent, whoever buys.
    let (status, kind, _) = refusal(sell_for(&c, &buyer, &child_id(), "1", true).await).await;
    assert_eq!((status, kind.as_str()), (409, "quota"));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn a_dependant_who_signs_up_books_for_themself_and_their_link_ends() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let link = added(app, &kim, "김할머니", &elder_id()).await;
    let mails_before = written(&app.db).3;

    let elder = app.new_visitor();
    let res = sign_up(&elder, &elder_id(), "grandma@example.com").await;
    assert_eq!(res.status(), 303);
    let mut conn = app.db.get().unwrap();
    let (ended, reason): (Option<chrono::NaiveDateTime>, Option<String>) = dependants::table
        .find(link)
        .select((dependants::ended_at, dependants::end_reason))
        .first(&mut conn)
        .unwrap();
    assert!(ended.is_some());
    assert_eq!(reason.as_deref(), Some("own_account"));
    let person: Option<i64> = users::table
        .filter(users::email.eq("grandma@example.com"))
        .select(users::person_id)
        .first(&mut conn)
        .unwrap();
    assert_eq!(person, person_of(app, &elder_id()));
    // Only the new account's verification mail: the guardian is not told.
    assert_eq!(written(&app.db).3, mails_before + 1);
    assert!(kim.html("/dependants").await.contains("data-no-dependants"));
    // And the guardian can no longer book for her.
    let (status, kind, _) =
        refusal(reserve_for(&kim, c.windows[0], "1", &link.to_string()).await).await;
    assert_eq!((status, kind.as_str()), (404, "unknown_person"));
    assert!(audit_actions(&app.db).contains(&("dependant.end".to_owned(), link.to_string())));
    assert_invariants(&app.db);
}

#[tokio::test]
async fn verify_finds_a_reservation_for_someone_who_is_neither_the_account_nor_its_dependant() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let key = app.state.keys.national_id.clone();
    let kim = fixtures::user(&app.db, Role::Citizen, "kim@example.com", None, true, &key);
    let id = fixtures::reservation(&app.db, c.windows[0], kim, 1);
    assert_invariants(&app.db);
    let stranger = fixtures::user(&app.db, Role::Citizen, "lee@example.com", None, true, &key);
    let mut conn = app.db.get().unwrap();
    let other: Option<i64> = users::table
        .find(stranger)
        .select(users::person_id)
        .first(&mut conn)
        .unwrap();
    // Moving the reservation's quota along with it, so that only this is wrong.
    let (own, period): (i64, NaiveDate) = reservations::table
        .find(id)
        .select((reservations::person_id, reservations::period_start))
        .first(&mut conn)
        .unwrap();
    diesel::update(quota_usage::table.find((own, period)))
        .set(quota_usage::person_id.eq(other.unwrap()))
        .execute(&mut conn)
        .unwrap();
    diesel::update(reservations::table.find(id))
        .set(reservations::person_id.eq(other.unwrap()))
        .execute(&mut conn)
        .unwrap();
    let findings = mask_reservation::verify::run(&mut conn).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].id, id);
    assert!(findings[0].check.contains("dependant"));
}

// ---- races ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_guardians_adding_the_same_person_at_once_link_them_to_exactly_one() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let mut guardians = Vec::new();
    for i in 0..6 {
        guardians.push(citizen(app, &format!("g{i}@example.com"), "보호자").await);
    }
    let child = child_id();
    let answers = join_all(guardians.iter().map(|g| add(g, "홍길동", &child))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![303, 409, 409, 409, 409, 409]);
    let (links, current, ..) = written(&app.db);
    assert_eq!((links, current), (1, 1));
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_for_a_child_while_the_counter_sells_to_them_never_exceeds_their_quota() {
    let c = counter(60, 20).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let link = added(app, &kim, "홍길동", &child_id()).await.to_string();
    let buyer = fixtures::national_id("850101123456");
    let child = person_of(app, &child_id()).unwrap();

    let bookings = (0..4).map(|i| reserve_for(&kim, c.windows[i % 2], "1", &link));
    let for_child = child_id();
    let sales = (0..4).map(|_| sell_for(&c, &buyer, &for_child, "1", true));
    let (booked, sold) = tokio::join!(join_all(bookings), join_all(sales));
    let ok = booked.iter().filter(|r| r.status() == 303).count()
        + sold.iter().filter(|r| r.status() == 303).count();
    assert_eq!(ok, 2, "the child's quota, and no more");
    for r in booked.iter().chain(sold.iter()) {
        assert!(matches!(r.status().as_u16(), 303 | 409), "{}", r.status());
    }
    assert_eq!(used(&app.db, child), 2);
    assert_invariants(&app.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dependant_signing_up_while_being_added_ends_with_an_account_and_no_guardian() {
    let c = counter(30, 0).await;
    let app = &c.app;
    let kim = citizen(app, "kim@example.com", "김민지").await;
    let elders: Vec<String> = (0..4)
        .map(|i| fixtures::national_id(&format!("3{i}0101123456")))
        .collect();
    for (i, id) in elders.iter().enumerate() {
        let elder = app.new_visitor();
        let email = format!("elder{i}@example.com");
        let (added, signed) = tokio::join!(add(&kim, "어르신", id), sign_up(&elder, id, &email));
        assert_eq!(signed.status(), 303);
        assert!(
            matches!(added.status().as_u16(), 303 | 409),
            "{}",
            added.status()
        );
        // Whichever went first: an account of their own, and no guardian.
        let person = person_of(app, id).unwrap();
        let mut conn = app.db.get().unwrap();
        let accounts: i64 = users::table
            .filter(users::person_id.eq(person))
            .count()
            .get_result(&mut conn)
            .unwrap();
        let current: i64 = dependants::table
            .filter(dependants::person_id.eq(person))
            .filter(dependants::ended_at.is_null())
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!((accounts, current), (1, 0), "{id}");
    }
    assert_invariants(&app.db);
}

/// Runs `first` in a transaction that stays open until `second` has started
/// in one of its own — on PostgreSQL until `second` is seen waiting on a
/// lock — then lets both finish; their answers.
fn interleave<A, B, EA, EB>(
    app: &TestApp,
    mut first: impl FnMut(&mut Tx<'_>) -> Result<A, EA> + Send + 'static,
    mut second: impl FnMut(&mut Tx<'_>) -> Result<B, EB> + Send + 'static,
) -> (Result<A, EA>, Result<B, EB>)
where
    A: Send + 'static,
    B: Send + 'static,
    EA: From<diesel::result::Error> + AsRetryable + Send + 'static,
    EB: From<diesel::result::Error> + AsRetryable + Send + 'static,
{
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let mut conn = app.db.get().unwrap();
    let first = std::thread::spawn(move || {
        write_tx(&mut conn, |tx| {
            let answer = first(tx);
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            answer
        })
    });
    held_rx.recv().unwrap();
    let mut conn = app.db.get().unwrap();
    let second = std::thread::spawn(move || write_tx(&mut conn, |tx| second(tx)));
    if app.backend() == Backend::Postgres {
        crate::booking_conformance::wait_for_a_lock_waiter(&mut app.db.get().unwrap());
    }
    go_tx.send(()).unwrap();
    (first.join().unwrap(), second.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addition_and_a_sign_up_of_one_person_at_once_take_turns_on_their_row() {
    for addition_first in [true, false] {
        let c = counter(30, 0).await;
        let app = &c.app;
        citizen(app, "kim@example.com", "김민지").await;
        let guardian = user_id(&app.db, "kim@example.com");
        let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
        let key = app.state.keys.national_id.clone();
        let t = Tr::new(app.state.catalog.clone(), Lang::Ko);
        let parse = || {
            NationalId::parse(&elder_id(), NaiveDate::from_ymd_opt(2100, 1, 1).unwrap()).unwrap()
        };
        let id = parse();
        let new = NewDependant {
            name: DisplayName::parse("김할머니").unwrap(),
            national_id_hash: id.keyed_hash(&key),
            birth_date: id.birth_date(),
            national_id_masked: id.masked(),
        };
        let signup = Signup {
            national_id: parse(),
            name: DisplayName::parse("김할머니").unwrap(),
            email: Email::parse("grandma@example.com").unwrap(),
            password_hash: hash(&NewPassword::parse(fixtures::PASSWORD).unwrap()).unwrap(),
        };
        let now = seoul(tuesday(), 8, 0);
        // Known already (a walk-in purchase): the two meet on her row, not on
        // the insert of a new one.
        write_tx(&mut app.db.get().unwrap(), |tx| {
            ensure_person(
                tx,
                &new.national_id_hash,
                new.birth_date,
                &new.national_id_masked,
                now.naive_utc(),
            )
        })
        .unwrap();
        let add = move |tx: &mut Tx<'_>| service::add(tx, guardian, &new, &policy, now);
        let sign = move |tx: &mut Tx<'_>| {
            accounts_service::sign_up(tx, &key, &signup, &t, "http://localhost", tuesday())
        };
        let (added, signed) = if addition_first {
            interleave(app, add, sign)
        } else {
            let (signed, added) = interleave(app, sign, add);
            (added, signed)
        };
        assert!(
            matches!(signed, Ok(SignupOutcome::Created { .. })),
            "{signed:?}"
        );
        match added {
            Ok(link) => {
                assert!(addition_first, "an addition after the sign-up must fail");
                let mut conn = app.db.get().unwrap();
                let reason: Option<String> = dependants::table
                    .find(link)
                    .select(dependants::end_reason)
                    .first(&mut conn)
                    .unwrap();
                assert_eq!(reason.as_deref(), Some("own_account"));
            }
            Err(AddError::Refused(Refusal::Unavailable)) => assert!(!addition_first),
            Err(e) => panic!("addition failed: {e:?}"),
        }
        let person = person_of(app, &elder_id()).unwrap();
        let mut conn = app.db.get().unwrap();
        let accounts: i64 = users::table
            .filter(users::person_id.eq(person))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!((accounts, written(&app.db).1), (1, 0));
        assert_invariants(&app.db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_for_a_dependant_and_their_removal_at_once_never_leave_a_reservation_unexplained()
{
    for booking_first in [true, false] {
        let c = counter(30, 0).await;
        let app = &c.app;
        let kim = citizen(app, "kim@example.com", "김민지").await;
        let link = added(app, &kim, "홍길동", &child_id()).await;
        let guardian = user_id(&app.db, "kim@example.com");
        let policy = Policy::load(&mut app.db.get().unwrap()).unwrap();
        let t = Tr::new(app.state.catalog.clone(), Lang::Ko);
        let req = Request {
            user_id: guardian,
            window_id: c.windows[0],
            quantity: Quantity::ONE,
            request_id: None,
            person: ForWhom::Dependant(link),
            now: seoul(tuesday(), 8, 0),
            session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
            hold: Hold::Booking,
        };
        let book = move |tx: &mut Tx<'_>| booking::book(tx, &req, &policy, &t, "http://localhost");
        let now = seoul(tuesday(), 8, 0);
        let remove = move |tx: &mut Tx<'_>| service::remove(tx, guardian, link, now);
        let (booked, removed) = if booking_first {
            interleave(app, book, remove)
        } else {
            let (removed, booked) = interleave(app, remove, book);
            (booked, removed)
        };
        if booking_first {
            // The reservation is seen: the link stays.
            assert!(booked.is_ok(), "{booked:?}");
            assert!(
                matches!(
                    removed,
                    Err(RemoveError::Refused(RemoveRefusal::ActiveReservation))
                ),
                "{removed:?}"
            );
            assert_eq!(written(&app.db).1, 1);
        } else {
            // The link ended first: nobody to book for.
            assert!(removed.is_ok(), "{removed:?}");
            assert!(
                matches!(booked, Err(BookError::Refused(BookRefusal::UnknownPerson))),
                "{booked:?}"
            );
            assert_eq!(written(&app.db).1, 0);
        }
        assert_invariants(&app.db);
    }
}
