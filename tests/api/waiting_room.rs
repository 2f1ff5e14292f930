//! The waiting room over HTTP: with a capacity of one and that slot held, the
//! rush's pages answer with the waiting page and a ticket; tickets keep their
//! number, go in oldest first, cannot be forged, expire; everything else stays
//! answerable; a flood gets 429; a booking kept through the wait books once.

use chrono::TimeDelta;
use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::config::SecretKey;
use mask_reservation::db::schema::reservations;
use mask_reservation::web::waiting_room::ticket::{self, Ticket};

use crate::common::{
    Spawn, TestApp, Visitor, assert_invariants, fixtures, retry_after, spawn_app_with,
};
use crate::reservations::{seoul, tuesday};

const STORE: &str = "11800001";
const STORE_PAGE: &str = "/stores/11800001";

/// The app with a room of one slot, its clock standing at 08:00 on Tuesday
/// (moved by hand: a holder's "come back in a second" is a clock step, not a
/// sleep), and a store with supply that day; the windows' ids.
async fn app_with_room_of_one() -> (TestApp, Clock, Vec<i64>) {
    let clock = Clock::manual(seoul(tuesday(), 8, 0));
    let app = spawn_app_with(Spawn {
        clock: Some(clock.clone()),
        configure: Some(Box::new(|c| c.waiting_room_capacity = 1)),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 120);
    (app, clock, windows)
}

fn second(clock: &Clock) {
    clock.advance(TimeDelta::seconds(1));
}

fn ticket_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{}=", ticket::COOKIE_NAME)))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// The number the waiting page gives (`data-position` holds the sentence).
async fn position(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 503);
    let html = res.text().await.unwrap();
    let start = html.find("data-position>").expect("the waiting page") + "data-position>".len();
    html[start..start + html[start..].find('<').unwrap()].to_owned()
}

/// A visitor without cookies, sending exactly this `Cookie` header.
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url(path))
        .header("Cookie", cookie)
        .header("Accept-Language", "en")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn over_capacity_a_held_page_answers_503_with_the_waiting_page_and_a_ticket_in_ko_and_en() {
    let (app, _clock, _) = app_with_room_of_one().await;
    let _slot = app.state.waiting_room.hold().expect("the one slot");

    let en = app.new_visitor();
    let res = en.get_with_lang(STORE_PAGE, "en").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        retry_after(&res),
        1,
        "the head of the line comes back in a second"
    );
    let cookie = ticket_cookie(&res).expect("a ticket");
    assert!(cookie.len() > 20, "{cookie}");
    let html = res.text().await.unwrap();
    assert!(html.contains("data-waiting-room"), "{html}");
    assert!(html.contains("You are number 1 in line."), "{html}");
    assert!(html.contains("Less than a minute to go."), "{html}");
    assert!(html.contains(r#"data-waiting-retry="1""#), "{html}");
    assert!(
        html.contains(r#"data-waiting-url="/stores/11800001""#),
        "{html}"
    );
    assert!(html.contains(r#"<script src="/static/js/waiting-room.js" defer></script>"#));
    assert!(!html.contains("<script>"), "no inline script");

    let ko = app.new_visitor();
    let res = ko.get_with_lang("/login", "ko").await;
    assert_eq!(res.status(), 503);
    assert!(ticket_cookie(&res).is_some());
    let html = res.text().await.unwrap();
    assert!(html.contains("대기 순서: 2번째"), "{html}");
    assert!(html.contains("lang=\"ko\""));
}

#[tokio::test]
async fn refreshing_with_the_ticket_keeps_the_number() {
    let (app, clock, _) = app_with_room_of_one().await;
    let _slot = app.state.waiting_room.hold().unwrap();
    let visitors: Vec<Visitor> = (0..3).map(|_| app.new_visitor()).collect();
    for (i, v) in visitors.iter().enumerate() {
        let n = position(v.get_with_lang(STORE_PAGE, "en").await).await;
        assert_eq!(n, format!("You are number {} in line.", i + 1));
    }
    for _ in 0..3 {
        second(&clock);
        for (i, v) in visitors.iter().enumerate().rev() {
            let res = v.get_with_lang(STORE_PAGE, "en").await;
            assert!(
                ticket_cookie(&res).is_none(),
                "the ticket is kept, not replaced"
            );
            let n = position(res).await;
            assert_eq!(n, format!("You are number {} in line.", i + 1));
        }
    }
}

#[tokio::test]
async fn the_oldest_ticket_goes_in_first_even_when_the_younger_comes_back_first() {
    let (app, clock, _) = app_with_room_of_one().await;
    let slot = app.state.waiting_room.hold().unwrap();
    let older = app.new_visitor();
    let younger = app.new_visitor();
    assert_eq!(older.get(STORE_PAGE).await.status(), 503);
    assert_eq!(younger.get(STORE_PAGE).await.status(), 503);

    drop(slot);
    second(&clock);
    let n = position(younger.get_with_lang(STORE_PAGE, "en").await).await;
    assert_eq!(
        n, "You are number 2 in line.",
        "the free slot waits for the older"
    );
    assert_eq!(older.get(STORE_PAGE).await.status(), 200);
    second(&clock);
    assert_eq!(younger.get(STORE_PAGE).await.status(), 200);
    assert_eq!(app.state.waiting_room.counts(), (0, 0));
}

#[tokio::test]
async fn when_the_slot_is_given_back_the_holder_goes_in() {
    let (app, clock, _) = app_with_room_of_one().await;
    let slot = app.state.waiting_room.hold().unwrap();
    let v = app.new_visitor();
    assert_eq!(v.get("/login").await.status(), 503);
    second(&clock);
    assert_eq!(v.get("/login").await.status(), 503, "still full");
    drop(slot);
    second(&clock);
    let res = v.get("/login").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("action=\"/login\""));
    // Nobody waits and the slot is free again: a new visitor goes straight in.
    assert_eq!(app.new_visitor().get(STORE_PAGE).await.status(), 200);
}

#[tokio::test]
async fn when_those_waiting_walk_away_a_free_slot_goes_to_whoever_comes_within_seconds() {
    let (app, clock, _) = app_with_room_of_one().await;
    let slot = app.state.waiting_room.hold().unwrap();
    for _ in 0..3 {
        // Told to wait, and never seen again.
        assert_eq!(app.new_visitor().get(STORE_PAGE).await.status(), 503);
    }
    drop(slot);
    let newcomer = app.new_visitor();
    assert_eq!(
        newcomer.get(STORE_PAGE).await.status(),
        503,
        "those ahead may still come"
    );
    clock.advance(TimeDelta::milliseconds(
        mask_reservation::web::waiting_room::line::IDLE_SLOT_MS,
    ));
    assert_eq!(newcomer.get(STORE_PAGE).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(app.new_visitor().get(STORE_PAGE).await.status(), 200);
    }
}

#[tokio::test]
async fn a_ticket_keeps_its_place_on_another_instance_sharing_the_secret() {
    let secret = SecretKey::generate();
    let clock = Clock::manual(seoul(tuesday(), 8, 0));
    let room_of_one = |secret: SecretKey| -> crate::common::ConfigChange {
        Box::new(move |c| {
            c.waiting_room_capacity = 1;
            c.secret = secret;
        })
    };
    let a = spawn_app_with(Spawn {
        clock: Some(clock.clone()),
        configure: Some(room_of_one(secret.clone())),
        ..Spawn::default()
    })
    .await;
    let b = spawn_app_with(Spawn {
        database: Some(a.database.clone()),
        clock: Some(clock.clone()),
        configure: Some(room_of_one(secret)),
        ..Spawn::default()
    })
    .await;
    fixtures::store(&a.db, STORE, "중앙약국");
    let _held_a = a.state.waiting_room.hold().unwrap();
    let _held_b = b.state.waiting_room.hold().unwrap();

    let first = a.new_visitor();
    assert_eq!(
        position(first.get_with_lang(STORE_PAGE, "en").await).await,
        "You are number 1 in line."
    );
    second(&clock);
    let later = b.new_visitor();
    assert_eq!(
        position(later.get_with_lang(STORE_PAGE, "en").await).await,
        "You are number 1 in line."
    );
    // The first visitor's next visit lands on the other instance.
    let first_on_b = Visitor {
        address: b.address.clone(),
        ..first.clone()
    };
    let res = first_on_b.get_with_lang(STORE_PAGE, "en").await;
    assert!(
        ticket_cookie(&res).is_none(),
        "the ticket is honoured, not replaced"
    );
    assert_eq!(position(res).await, "You are number 1 in line.");
    second(&clock);
    assert_eq!(
        position(later.get_with_lang(STORE_PAGE, "en").await).await,
        "You are number 2 in line."
    );
}

#[tokio::test]
async fn a_forged_tampered_or_expired_ticket_is_ignored_and_a_new_one_given() {
    let (app, clock, _) = app_with_room_of_one().await;
    let _slot = app.state.waiting_room.hold().unwrap();
    let now = clock.now().timestamp_millis();
    let name = ticket::COOKIE_NAME;
    // Someone waiting already, so the forged "earlier" tickets would be ahead.
    assert_eq!(app.new_visitor().get(STORE_PAGE).await.status(), 503);

    let early = Ticket {
        issued_ms: now - 60_000,
        nonce: 1,
    };
    let other_key = early.encode(&[9u8; 64]);
    let genuine = early.encode(&app.state.keys.waiting_room);
    let tampered = genuine.replacen(
        &early.issued_ms.to_string(),
        &(now - 120_000).to_string(),
        1,
    );
    let expired = Ticket {
        issued_ms: now - ticket::LIFETIME_MS - 1,
        nonce: 2,
    }
    .encode(&app.state.keys.waiting_room);
    for (what, value) in [
        ("another key", other_key.as_str()),
        ("tampered", &tampered),
        ("expired", &expired),
        ("junk", "not-a-ticket"),
    ] {
        let res = get_with_cookie(&app, STORE_PAGE, &format!("{name}={value}")).await;
        assert_eq!(res.status(), 503, "{what}");
        let fresh = ticket_cookie(&res).unwrap_or_else(|| panic!("{what}: a new ticket"));
        assert_ne!(fresh, format!("{name}={value}"));
        let n = position(res).await;
        assert_ne!(
            n, "You are number 1 in line.",
            "{what}: not ahead of anyone"
        );
    }
    // The genuine one, from another instance sharing the secret, goes first.
    let res = get_with_cookie(&app, STORE_PAGE, &format!("{name}={genuine}")).await;
    assert!(ticket_cookie(&res).is_none());
    assert_eq!(position(res).await, "You are number 1 in line.");
}

#[tokio::test]
async fn everything_but_the_rush_pages_answers_while_the_room_is_full() {
    let (app, _clock, _) = app_with_room_of_one().await;
    let store = fixtures::store(&app.db, "11800002", "서울약국");
    let pharmacist = app
        .logged_in_as(Role::Pharmacist, "pharmacist@example.com", Some(store))
        .await;
    let citizen = app
        .logged_in_as(Role::Citizen, "citizen@example.com", None)
        .await;
    let _slot = app.state.waiting_room.hold().unwrap();
    assert_eq!(app.new_visitor().get(STORE_PAGE).await.status(), 503);

    let anyone = app.new_visitor();
    for path in [
        "/healthz",
        "/",
        "/stores",
        "/status",
        "/map",
        "/corona19-masks/v1/stores/json",
        "/opendata/stock.csv",
        "/static/css/app.css",
        "/static/js/waiting-room.js",
    ] {
        assert_eq!(anyone.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(pharmacist.get("/pharmacy").await.status(), 200);
    assert_eq!(pharmacist.get("/pharmacy/pickup").await.status(), 200);
    assert_eq!(citizen.get("/reservations").await.status(), 200);
    let metrics = anyone.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("mask_reservation_waiting_room_in_flight 1"),
        "{text}"
    );
    assert!(
        text.contains("mask_reservation_waiting_room_waiting 1"),
        "{text}"
    );
    assert!(
        text.contains("mask_reservation_waiting_room_told_to_wait_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429() {
    let (app, clock, _) = app_with_room_of_one().await;
    let _slot = app.state.waiting_room.hold().unwrap();

    // A holder who keeps coming back before their time: 429, place kept.
    let eager = app.new_visitor();
    let first = position(eager.get_with_lang(STORE_PAGE, "en").await).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(eager.get(STORE_PAGE).await.status().as_u16());
    }
    assert_eq!(statuses, [503, 503, 429]);
    second(&clock);
    let again = position(eager.get_with_lang(STORE_PAGE, "en").await).await;
    assert_eq!(again, first);

    // A script that throws its cookie away: a new ticket each time.
    second(&clock);
    let script = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let res = script.get(app.url(STORE_PAGE)).send().await.unwrap();
        if res.status() == 429 {
            assert!(retry_after(&res) >= 1);
            assert!(ticket_cookie(&res).is_none());
        }
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [503, 429].contains(s)),
        "{statuses:?}"
    );
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.contains("mask_reservation_waiting_room_too_many_total 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_login_post_over_capacity_waits_without_the_password_and_refreshes_to_the_form() {
    let (app, _clock, _) = app_with_room_of_one().await;
    let v = app.new_visitor();
    let token = v.csrf_token().await;
    let _slot = app.state.waiting_room.hold().unwrap();
    let res = v
        .post_form_raw(
            "/login",
            &[
                ("email", "someone@example.com"),
                ("password", "secret password 123"),
                ("next", "/stores/11800001"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), 503);
    let html = res.text().await.unwrap();
    assert!(!html.contains("secret password 123"));
    assert!(
        html.contains(r#"data-waiting-url="/login?next=%2Fstores%2F11800001""#),
        "{html}"
    );
}

#[tokio::test]
async fn a_booking_over_capacity_keeps_the_choice_and_books_once_when_sent_again() {
    let (app, clock, windows) = app_with_room_of_one().await;
    let citizen = app
        .logged_in_as(Role::Citizen, "citizen@example.com", None)
        .await;
    let token = citizen.csrf_token().await;
    let request_id = mask_reservation::random::token();
    let window = windows[1].to_string();
    let slot = app.state.waiting_room.hold().unwrap();
    let res = citizen
        .post_form_raw(
            "/reservations",
            &[
                ("window_id", &window),
                ("quantity", "2"),
                ("request_id", &request_id),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), 503);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-waiting-retry="1""#), "{html}");
    assert!(
        !html.contains("data-waiting-url"),
        "a reload would lose the post"
    );
    let kept: Vec<(String, String)> = hidden_fields(&html);
    let get = |name: &str| {
        kept.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} kept in {html}"))
    };
    assert_eq!(get("window_id"), window);
    assert_eq!(get("quantity"), "2");
    assert_eq!(get("request_id"), request_id);
    assert_eq!(get("csrf_token"), token);

    drop(slot);
    second(&clock);
    let fields: Vec<(&str, &str)> = kept.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let first = citizen.post_form_raw("/reservations", &fields).await;
    assert_eq!(first.status(), 303);
    second(&clock);
    let again = citizen.post_form_raw("/reservations", &fields).await;
    assert_eq!(again.status(), 303);
    assert_eq!(first.headers()["location"], again.headers()["location"]);
    let mut conn = app.db.get().unwrap();
    let booked: i64 = reservations::table.count().get_result(&mut conn).unwrap();
    assert_eq!(booked, 1);
    drop(conn);
    assert_invariants(&app.db);
}

/// The `name`/`value` pairs of the hidden inputs of the page's retry form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let form = &html[html.find("data-waiting-form").unwrap()..];
    let form = &form[..form.find("</form>").unwrap()];
    form.split("<input ")
        .skip(1)
        .map(|input| {
            let attr = |a: &str| {
                let start = input.find(&format!("{a}=\"")).unwrap() + a.len() + 2;
                input[start..start + input[start..].find('"').unwrap()].to_owned()
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

#[tokio::test]
async fn with_the_room_off_nothing_is_held() {
    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(|c| c.waiting_room_capacity = 0)),
        ..Spawn::default()
    })
    .await;
    assert!(app.state.waiting_room.hold().is_none());
    for _ in 0..3 {
        assert_eq!(app.get("/login").await.status(), 200);
    }
}

/// In a browser: the booking kept on the waiting page is sent again by the
/// page itself once a slot is free, and books once. The system clock here: the
/// page's countdown runs in real time.
#[tokio::test]
async fn in_a_browser_the_kept_booking_is_sent_again_by_itself_and_books_once() {
    use crate::common::browser::{Browser, fill, submit, wait_for};
    use mask_reservation::db::write_tx;
    use mask_reservation::policy::Policy;
    use mask_reservation::supply::allocation::allocate_new_day;

    let app = spawn_app_with(Spawn {
        configure: Some(Box::new(|c| c.waiting_room_capacity = 1)),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    {
        let mut conn = app.db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let tomorrow = app.today() + chrono::Duration::days(1);
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, &policy, store, tomorrow, 120, None)
        })
        .unwrap();
    }
    let key = app.state.keys.national_id.clone();
    fixtures::user(
        &app.db,
        Role::Citizen,
        "citizen@example.com",
        None,
        true,
        &key,
    );
    let browser = Browser::start_in("en-US").await;
    let c = &browser.client;
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", "citizen@example.com").await;
    fill(c, "password", fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
    c.goto(&app.url(STORE_PAGE)).await.unwrap();
    wait_for(c, "form[action='/reservations']").await;

    let slot = app.state.waiting_room.hold().unwrap();
    submit(c, "/reservations").await;
    wait_for(c, "form[data-waiting-form]").await;
    drop(slot);
    wait_for(c, "[data-pickup-code]").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/reservations/")
    );
    let mut conn = app.db.get().unwrap();
    let booked: i64 = reservations::table.count().get_result(&mut conn).unwrap();
    assert_eq!(booked, 1);
    drop(conn);
    assert_invariants(&app.db);
    browser.close().await;
}
