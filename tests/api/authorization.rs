//! The authorization matrix: every route × every kind of visitor → the answer
//! it must get. A new route adds a row here; a row that does not match fails
//! with the whole table of differences, not just the first.

use crate::common::fixtures::{self, PASSWORD};
use crate::common::{TestApp, Visitor, spawn_app};
use mask_reservation::accounts::Role;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Unverified,
    Citizen,
    Pharmacist,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::Unverified,
    Who::Citizen,
    Who::Pharmacist,
    Who::Admin,
];

/// What the answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This status, whatever the body.
    Status(u16),
    /// `303` to the login page, carrying where to come back to.
    Login,
    /// `303` to exactly this place.
    Redirect(&'static str),
}

use Expect::{Login, Redirect, Status};

struct Row {
    method: &'static str,
    path: &'static str,
    /// Answers in the order of [`EVERYONE`].
    expect: [Expect; 5],
}

const fn get(path: &'static str, expect: [Expect; 5]) -> Row {
    Row {
        method: "GET",
        path,
        expect,
    }
}

const fn post(path: &'static str, expect: [Expect; 5]) -> Row {
    Row {
        method: "POST",
        path,
        expect,
    }
}

const OK: Expect = Status(200);
const FORBIDDEN: Expect = Status(403);

/// Posts carry a valid CSRF token and no other field, so a request that gets
/// past the door fails validation or acts harmlessly: the point is who gets
/// in, not what the form does.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    const IN: Expect = Redirect("/reservations");
    vec![
        //                                  anonymous    unverified    citizen       pharmacist              admin
        get("/",                              [OK,         OK,           OK,           OK,                     OK]),
        get("/healthz",                       [OK,         OK,           OK,           OK,                     OK]),
        get("/status",                        [OK,         OK,           OK,           OK,                     OK]),
        get("/stores",                        [OK,         OK,           OK,           OK,                     OK]),
        get("/stores?q=%EC%A4%91%EA%B5%AC&page=2", [OK,    OK,           OK,           OK,                     OK]),
        get("/stores?lat=37.56&lng=126.97",   [OK,         OK,           OK,           OK,                     OK]),
        get("/stores?lat=north&lng=126.97",   [Status(400), Status(400), Status(400),  Status(400),            Status(400)]),
        get("/stores?q=x&page=0",             [Status(400), Status(400), Status(400),  Status(400),            Status(400)]),
        get("/static/js/near-me.js",          [OK,         OK,           OK,           OK,                     OK]),
        get("/static/js/waiting-room.js",     [OK,         OK,           OK,           OK,                     OK]),
        get("/map",                           [OK,         OK,           OK,           OK,                     OK]),
        get("/corona19-masks/v1/stores/json", [OK,         OK,           OK,           OK,                     OK]),
        get("/corona19-masks/v1/sales/json",  [OK,         OK,           OK,           OK,                     OK]),
        get("/corona19-masks/v1/storesByGeo/json?lat=37.56&lng=126.97", [OK, OK,       OK,           OK,                     OK]),
        get("/corona19-masks/v1/storesByAddr/json?address=abc", [OK, OK,   OK,           OK,                     OK]),
        get("/corona19-masks/v1/storesByAddr/json?address=a", [Status(400), Status(400), Status(400), Status(400), Status(400)]),
        get("/opendata/stock.csv",            [OK,         OK,           OK,           OK,                     OK]),
        get("/opendata/stock.json",           [OK,         OK,           OK,           OK,                     OK]),
        get("/opendata/openapi.json",         [OK,         OK,           OK,           OK,                     OK]),
        get("/metrics",                       [OK,         OK,           OK,           OK,                     OK]),
        get("/signup",                        [OK,         IN,           IN,           Redirect("/pharmacy"),  Redirect("/admin")]),
        post("/signup",                       [Status(422), Status(422), Status(422),  Status(422),            Status(422)]),
        get("/signup/sent",                   [Redirect("/signup"), IN,  IN,           Redirect("/pharmacy"),  Redirect("/admin")]),
        get("/login",                         [OK,         IN,           IN,           Redirect("/pharmacy"),  Redirect("/admin")]),
        // A login that fails answers 401 whatever was wrong with it.
        post("/login",                        [Status(401), Status(401), Status(401),  Status(401),            Status(401)]),
        get("/verify-email?token=nonsense",   [Status(400), Status(400), Status(400),  Status(400),            Status(400)]),
        post("/verify-email/resend",          [Login,      IN,           IN,           FORBIDDEN,              FORBIDDEN]),
        get("/password/forgot",               [OK,         OK,           OK,           OK,                     OK]),
        post("/password/forgot",              [Status(422), Status(422), Status(422),  Status(422),            Status(422)]),
        get("/password/reset?token=nonsense", [Status(400), Status(400), Status(400),  Status(400),            Status(400)]),
        // No token: refused as a dead link before the form is judged.
        post("/password/reset",               [Status(400), Status(400), Status(400),  Status(400),            Status(400)]),
        get("/reservations",                  [Login,      OK,           OK,           FORBIDDEN,              FORBIDDEN]),
        // No window: the post is not the store page's form.
        post("/reservations",                 [Login,      Status(400),  Status(400),  FORBIDDEN,              FORBIDDEN]),
        get("/reservations/999999",           [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        get("/reservations/abc",              [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        get("/reservations/999999/cancel",    [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/reservations/999999/cancel",   [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/reservations/999999/accept",   [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/reservations/999999/decline",  [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/reservations/abc/accept",      [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        // No such window: nothing to wait for, nothing to leave.
        post("/windows/999999/waitlist",      [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/windows/abc/waitlist",         [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/windows/999999/waitlist/leave", [Login,     Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        get("/draws/999999",                  [Status(404), Status(404), Status(404),  Status(404),            Status(404)]),
        get("/draws/abc",                     [Status(404), Status(404), Status(404),  Status(404),            Status(404)]),
        post("/draws/999999/register",        [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        get("/admin/draws",                   [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        // No field: every value is invalid, no draw is made.
        post("/admin/draws",                  [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        get("/dependants",                    [Login,      OK,           OK,           FORBIDDEN,              FORBIDDEN]),
        // No field: an unverified citizen is refused first, a verified one
        // gets both fields back as missing.
        post("/dependants",                   [Login,      FORBIDDEN,    Status(422),  FORBIDDEN,              FORBIDDEN]),
        post("/dependants/999999/remove",     [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        post("/dependants/abc/remove",        [Login,      Status(404),  Status(404),  FORBIDDEN,              FORBIDDEN]),
        get("/stores/11800001",               [OK,         OK,           OK,           OK,                     OK]),
        get("/stores/99999999",               [Status(404), Status(404), Status(404),  Status(404),            Status(404)]),
        get("/stores/abc",                    [Status(404), Status(404), Status(404),  Status(404),            Status(404)]),
        get("/pharmacy",                      [Login,      FORBIDDEN,    FORBIDDEN,    OK,                     FORBIDDEN]),
        get("/pharmacy/pickup",               [Login,      FORBIDDEN,    FORBIDDEN,    OK,                     FORBIDDEN]),
        // No code: the field is required.
        post("/pharmacy/pickup",              [Login,      FORBIDDEN,    FORBIDDEN,    Status(422),            FORBIDDEN]),
        post("/pharmacy/pickup/preferences",  [Login,      FORBIDDEN,    FORBIDDEN,    Redirect("/pharmacy/pickup"), FORBIDDEN]),
        get("/pharmacy/walk-in",              [Login,      FORBIDDEN,    FORBIDDEN,    OK,                     FORBIDDEN]),
        // No national ID, no quantity: both fields refused.
        post("/pharmacy/walk-in",             [Login,      FORBIDDEN,    FORBIDDEN,    Status(422),            FORBIDDEN]),
        post("/pharmacy/walk-in/999999/undo", [Login,      FORBIDDEN,    FORBIDDEN,    Status(404),            FORBIDDEN]),
        post("/pharmacy/walk-in/abc/undo",    [Login,      FORBIDDEN,    FORBIDDEN,    Status(404),            FORBIDDEN]),
        get("/pharmacy/summary",              [Login,      FORBIDDEN,    FORBIDDEN,    OK,                     FORBIDDEN]),
        get("/pharmacy/summary?date=2026-13-01", [Login,   FORBIDDEN,    FORBIDDEN,    Status(400),            FORBIDDEN]),
        get("/pharmacy/summary.csv",          [Login,      FORBIDDEN,    FORBIDDEN,    OK,                     FORBIDDEN]),
        get("/admin",                         [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        get("/admin/export.csv",              [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        get("/admin/stores",                  [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        get("/admin/stores?q=x&page=2",       [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        // No field: every value is invalid, nothing is saved.
        post("/admin/stores",                 [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        get("/admin/stores/11800001",         [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        post("/admin/stores/11800001",        [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        get("/admin/stores/99999999",         [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(404)]),
        post("/admin/stores/99999999",        [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        // Not a multipart form: unreadable as an upload.
        post("/admin/stores/import",          [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(400)]),
        get("/admin/users",                   [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        post("/admin/users",                  [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        get("/admin/users/999999/disable",    [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(404)]),
        post("/admin/users/999999/disable",   [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(404)]),
        post("/admin/users/999999/enable",    [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(404)]),
        get("/admin/settings",                [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        // No field: every setting is invalid, nothing is saved.
        post("/admin/settings",               [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        get("/admin/audit",                   [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        get("/admin/supply",                  [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              OK]),
        // No store code: nothing to set.
        post("/admin/supply",                 [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(422)]),
        // No date: the form's hidden field is missing.
        post("/admin/supply/copy",            [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(400)]),
        // Not multipart: no file to read.
        post("/admin/supply/import",          [Login,      FORBIDDEN,    FORBIDDEN,    FORBIDDEN,              Status(400)]),
        get("/admin/stores/11800001/windows/999999",  [Login, FORBIDDEN, FORBIDDEN,    FORBIDDEN,              Status(404)]),
        post("/admin/stores/11800001/windows/999999", [Login, FORBIDDEN, FORBIDDEN,    FORBIDDEN,              Status(404)]),
        get("/no-such-page",                  [Status(404), Status(404), Status(404),  Status(404),            Status(404)]),
        // Last: it ends every session.
        post("/logout",                       [Redirect("/"), Redirect("/"), Redirect("/"), Redirect("/"),     Redirect("/")]),
    ]
}

async fn visitor_for(app: &TestApp, who: Who, store_id: i64) -> Visitor {
    let v = app.new_visitor();
    let (role, email, store, verified) = match who {
        Who::Anonymous => return v,
        Who::Unverified => (Role::Citizen, "new@example.com", None, false),
        Who::Citizen => (Role::Citizen, "citizen@example.com", None, true),
        Who::Pharmacist => (
            Role::Pharmacist,
            "pharmacist@example.com",
            Some(store_id),
            true,
        ),
        Who::Admin => (Role::Admin, "admin@example.com", None, true),
    };
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, role, email, store, verified, &key);
    let res = v.login(email, PASSWORD).await;
    assert_eq!(res.status(), 303, "{who:?} logs in");
    v
}

async fn answer(v: &Visitor, row: &Row) -> Expect {
    let res = if row.method == "GET" {
        v.get(row.path).await
    } else {
        v.post_form(row.path, &[]).await
    };
    let status = res.status().as_u16();
    if status != 303 {
        return Status(status);
    }
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    if location.starts_with("/login?next=") {
        return Login;
    }
    // Leak the string: the table compares against static expectations.
    Redirect(Box::leak(location.into_boxed_str()))
}

#[tokio::test]
async fn every_route_answers_each_kind_of_visitor_as_the_table_says() {
    let app = spawn_app().await;
    let store = fixtures::store(&app.db, "11800001", "중앙약국");
    let mut visitors = Vec::new();
    for who in EVERYONE {
        visitors.push((who, visitor_for(&app, who, store).await));
    }
    let mut wrong = Vec::new();
    for row in table() {
        for (i, (who, v)) in visitors.iter().enumerate() {
            let got = answer(v, &row).await;
            if got != row.expect[i] {
                wrong.push(format!(
                    "{} {} as {who:?}: expected {:?}, got {got:?}",
                    row.method, row.path, row.expect[i]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "authorization table mismatches:\n{}",
        wrong.join("\n")
    );
}
