//! Drills for the faults that held when they were first tried by hand, kept
//! here so that they keep holding. Each drives the real binary over HTTP
//! (`common::server`) with a crowd of citizens prepared in bulk
//! (`surge::prepare`: verified accounts, tomorrow's supply) whose sessions are
//! sealed with the server's cookie key, as the launch-morning benchmark gives
//! them (no argon2 login per citizen); each citizen posts the reserve form
//! with a request id of its own, and sends it again with the same id after a
//! 503, as the waiting page does.
//!
//! - kill -9 in the middle of a rush (both backends): every acknowledged
//!   booking is stored; everything stored was sent, and what was stored
//!   without an answer was in flight at the kill; the restarted server
//!   serves; a form sent again whose answer was lost finds the reservation
//!   it made.
//! - PostgreSQL crash-stopped in the middle of a rush (the cutting proxy):
//!   503, never 500; nothing acknowledged lost, nothing stored twice; the
//!   server serves again by itself once the database is back.
//! - SMTP down while citizens book: every booking succeeds, the
//!   confirmations wait in the outbox, and once SMTP is back each is
//!   delivered exactly once (one `Message-ID` each).
//! - Two instances on one database racing for 10 places: exactly 10 taken,
//!   the rest refused with the store page's refusal.
//!
//! Each ends with the binary's `verify` command. The figures each drill
//! measures are printed (`--nocapture`) and kept in docs/reliability.md.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::surge::phases::{SESSION_COOKIE, session_cookie};
use ::surge::prepare::{self, Prepared, Sizes};
use actix_web::cookie::Key;
use diesel::prelude::*;
use futures_util::StreamExt;
use mask_reservation::accounts::Role;
use mask_reservation::config::SecretKey;
use mask_reservation::db::schema::{mail_outbox, pickup_windows, reservations};
use mask_reservation::db::{DatabaseUrl, Db, DbConnection, PoolOptions};
use mask_reservation::state::Keys;
use mask_reservation::web::session::SessionUser;
use tokio::sync::Notify;

use crate::common::proxy::DbProxy;
use crate::common::server::{Binary, Server};
use crate::common::{
    SmtpSink, TestDatabase, Visitor, assert_window_went_to, attribute, eventually, extract_csrf,
    fixtures,
};

/// A database ready for a rush: verified citizens, tomorrow's supply at a
/// few stores (more than the crowd can take), and the key the server seals
/// its session cookies with.
struct Crowd {
    prepared: Prepared,
    cookie_key: Key,
    /// Tomorrow's windows, earliest first.
    windows: Vec<i64>,
}

impl Crowd {
    fn prepare(database: &TestDatabase, binary: &Binary, stores: usize, citizens: usize) -> Crowd {
        let keys = Keys::derive(SecretKey::from_base64(&binary.secret).unwrap().bytes());
        let mut conn = database.connect();
        let sizes = Sizes {
            stores,
            citizens,
            pickup_stores: 0,
            pickups_per_store: 0,
            freshness_probes: 0,
            hot_window: false,
        };
        let prepared =
            prepare::prepare(&mut conn, sizes, &keys.national_id, chrono_tz::Asia::Seoul).unwrap();
        let windows = pickup_windows::table
            .filter(pickup_windows::day.eq(prepared.rush_day))
            .order((pickup_windows::starts_at, pickup_windows::id))
            .select(pickup_windows::id)
            .load(&mut conn)
            .unwrap();
        Crowd {
            prepared,
            cookie_key: keys.cookie,
            windows,
        }
    }

    /// The bookers of [`Crowd::bookers`] on one server, spread over the
    /// crowd's windows in turn.
    async fn bookers_spread(&self, server: &Server) -> Vec<Booker> {
        let windows = &self.windows;
        self.bookers(&[server], |i| windows[i % windows.len()])
            .await
    }

    /// Every citizen as a browser, logged in, that has opened the home page
    /// (its CSRF token) on one of `servers` (the `i`-th citizen on server
    /// `i` modulo their number), with the form it will post: the window
    /// `window_of(i)` and the request id `drill-{i}`.
    async fn bookers(&self, servers: &[&Server], window_of: impl Fn(usize) -> i64) -> Vec<Booker> {
        let browsers: Vec<(usize, i64, Visitor)> = self
            .prepared
            .citizens
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let user =
                    SessionUser::new(c.id, Role::Citizen, c.name.clone(), 0, chrono::Utc::now());
                let cookie = session_cookie(&self.cookie_key, &user).unwrap();
                let server = servers[i % servers.len()];
                let visitor = Visitor::new(&server.base);
                visitor.jar.add_cookie_str(
                    &format!("{SESSION_COOKIE}={cookie}; Path=/"),
                    &server.base.parse().unwrap(),
                );
                (i, c.id, visitor)
            })
            .collect();
        futures_util::stream::iter(browsers)
            .map(|(i, user_id, visitor)| {
                let window = window_of(i);
                async move {
                    let home = visitor.html("/").await;
                    let csrf = extract_csrf(&home).expect("a logged-in page carries a CSRF token");
                    Booker {
                        user_id,
                        email: prepare::citizen_email(i),
                        visitor,
                        csrf,
                        window,
                        request_id: format!("drill-{i}"),
                    }
                }
            })
            .buffered(16)
            .collect()
            .await
    }
}

/// One citizen's browser and the reserve form it posts.
#[derive(Clone)]
struct Booker {
    user_id: i64,
    email: String,
    visitor: Visitor,
    csrf: String,
    window: i64,
    request_id: String,
}

/// What a reserve form was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// 303 to the reservation: acknowledged.
    Booked(i64),
    /// The store page again, its refusal (`data-refusal`) next to the form.
    Refused(u16, String),
    /// 503 or 429: asked to come back.
    Later(u16),
    /// Anything else (a status and the start of the body).
    Other(u16, String),
    /// No answer at all: the connection broke.
    Lost,
}

impl Booker {
    /// The same browser, cookies and all, sent to another server.
    fn on(&self, server: &Server) -> Booker {
        Booker {
            visitor: Visitor {
                address: server.base.clone(),
                ..self.visitor.clone()
            },
            ..self.clone()
        }
    }

    /// Posts the reserve form once.
    async fn post(&self, quantity: u8) -> Answer {
        let quantity = quantity.to_string();
        let window = self.window.to_string();
        let sent = self
            .visitor
            .client
            .post(self.visitor.url("/reservations"))
            .form(&[
                ("csrf_token", self.csrf.as_str()),
                ("window_id", window.as_str()),
                ("quantity", quantity.as_str()),
                ("request_id", self.request_id.as_str()),
            ])
            .send()
            .await;
        let Ok(res) = sent else {
            return Answer::Lost;
        };
        let status = res.status().as_u16();
        match status {
            303 => {
                let location = res
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                match location
                    .strip_prefix("/reservations/")
                    .and_then(|id| id.parse().ok())
                {
                    Some(id) => Answer::Booked(id),
                    None => Answer::Other(303, location),
                }
            }
            503 | 429 => Answer::Later(status),
            _ => {
                let body = res.text().await.unwrap_or_default();
                match attribute(&body, "data-refusal") {
                    Some(kind) if (400..500).contains(&status) => Answer::Refused(status, kind),
                    _ => Answer::Other(status, body.chars().take(300).collect()),
                }
            }
        }
    }

    /// The notice the reservation's page shows after the last post
    /// (`data-flash`): whether it was booked now or found from before.
    async fn flash_on(&self, reservation: i64) -> Option<String> {
        let page = self
            .visitor
            .html(&format!("/reservations/{reservation}"))
            .await;
        attribute(&page, "data-flash")
    }
}

/// Everything one form was answered, in order, and when the last answer came.
#[derive(Debug, Default, Clone)]
struct Sent {
    answers: Vec<Answer>,
    last_at: Option<Instant>,
}

impl Sent {
    fn was_sent(&self) -> bool {
        !self.answers.is_empty()
    }

    fn last(&self) -> Option<&Answer> {
        self.answers.last()
    }

    fn booked(&self) -> Option<i64> {
        match self.last() {
            Some(Answer::Booked(id)) => Some(*id),
            _ => None,
        }
    }
}

/// How a rush goes.
struct Rush {
    /// Forms in flight at once.
    at_once: usize,
    quantity: u8,
    /// Once set, no form is posted any more (the server is gone).
    stopped: AtomicBool,
    /// Acknowledged bookings so far.
    acked: AtomicUsize,
    /// 503s and 429s answered so far.
    later: AtomicUsize,
    /// Told once the acknowledged bookings reach the number given: "the
    /// middle of the rush", for the fault to strike.
    middle: Option<(usize, Notify)>,
    /// A form answered 503 is sent again, with the same request id, a second
    /// later (the page's `Retry-After` says 5: sooner is harder on the
    /// server), until this long after the rush began.
    resend_for: Duration,
}

impl Rush {
    fn new(at_once: usize, quantity: u8, resend_for: Duration) -> Rush {
        Rush {
            at_once,
            quantity,
            stopped: AtomicBool::new(false),
            acked: AtomicUsize::new(0),
            later: AtomicUsize::new(0),
            middle: None,
            resend_for,
        }
    }

    /// The same rush, with [`Rush::middle`] told once `acked` bookings are
    /// acknowledged.
    fn middle_at(self, acked: usize) -> Rush {
        Rush {
            middle: Some((acked, Notify::new())),
            ..self
        }
    }

    /// Waits for the middle of the rush (never, without [`Rush::middle_at`]).
    async fn middle(&self) {
        match &self.middle {
            Some((_, told)) => told.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Posts every booker's form; what each got, in the bookers' order.
    async fn run(&self, bookers: &[Booker]) -> Vec<Sent> {
        let until = Instant::now() + self.resend_for;
        // Unordered: a form waiting to be sent again holds no other's place.
        let mut sent: Vec<(usize, Sent)> = futures_util::stream::iter(bookers.iter().enumerate())
            .map(|(i, b)| async move {
                let mut sent = Sent::default();
                while !self.stopped.load(Ordering::SeqCst) {
                    let answer = b.post(self.quantity).await;
                    sent.answers.push(answer.clone());
                    sent.last_at = Some(Instant::now());
                    match answer {
                        Answer::Booked(_) => {
                            let n = self.acked.fetch_add(1, Ordering::SeqCst) + 1;
                            if let Some((at, middle)) = &self.middle
                                && n == *at
                            {
                                middle.notify_one();
                            }
                            break;
                        }
                        Answer::Later(_) => {
                            self.later.fetch_add(1, Ordering::SeqCst);
                            if Instant::now() >= until {
                                break;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        _ => break,
                    }
                }
                (i, sent)
            })
            .buffer_unordered(self.at_once)
            .collect()
            .await;
        sent.sort_by_key(|(i, _)| *i);
        sent.into_iter().map(|(_, s)| s).collect()
    }
}

/// A handle on the drill's database for the test's own reads and set-up.
fn open(database: &TestDatabase) -> Db {
    Db::new(
        &database.url(),
        PoolOptions {
            max_size: 2,
            acquire_timeout: Duration::from_secs(10),
        },
    )
}

/// A stored reservation: (id, user, request id, status).
type Stored = (i64, i64, Option<String>, String);

fn stored(conn: &mut DbConnection) -> Vec<Stored> {
    reservations::table
        .order(reservations::id)
        .select((
            reservations::id,
            reservations::user_id,
            reservations::request_id,
            reservations::status,
        ))
        .load(conn)
        .unwrap()
}

/// `mask-reservation verify` on the drill's database finds every invariant
/// of SPEC §4 holding.
fn verify_clean(binary: &Binary) {
    let out = binary.command(&["verify"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "verify: {text}");
    assert!(text.contains("every invariant holds"), "verify: {text}");
}

/// How many answers of each kind, for the messages of failed asserts and
/// the printed figures.
fn tally(sent: &[Sent]) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for answer in sent.iter().flat_map(|s| &s.answers) {
        let key = match answer {
            Answer::Booked(_) => "303".to_owned(),
            Answer::Refused(status, kind) => format!("{status} {kind}"),
            Answer::Later(status) => status.to_string(),
            Answer::Other(status, _) => format!("{status} (other)"),
            Answer::Lost => "no answer".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unexpected(sent: &[Sent]) -> Vec<&Answer> {
    sent.iter()
        .flat_map(|s| &s.answers)
        .filter(|a| matches!(a, Answer::Other(..)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_rush_loses_no_acknowledged_booking_and_stores_nothing_unsent() {
    const CITIZENS: usize = 400;
    let database = TestDatabase::fresh();
    let binary = Binary::new(&database.url());
    let crowd = Crowd::prepare(&database, &binary, 2, CITIZENS);
    let mut server = binary.serve(&[]);
    server.healthy().await;
    let bookers = crowd.bookers_spread(&server).await;

    let rush = Rush::new(64, 2, Duration::from_secs(20)).middle_at(CITIZENS / 3);
    let kill = async {
        rush.middle().await;
        // No form is posted from now on: those without an answer were in
        // flight at the kill.
        rush.stopped.store(true, Ordering::SeqCst);
        server.kill9().await;
        rush.acked.load(Ordering::SeqCst)
    };
    let (sent, acked_at_kill) = tokio::join!(rush.run(&bookers), kill);
    assert!(unexpected(&sent).is_empty(), "{}", tally(&sent));

    let mut conn = database.connect_when_alone();
    let rows = stored(&mut conn);
    let by_id: HashMap<i64, &Stored> = rows.iter().map(|r| (r.0, r)).collect();
    let index: HashMap<(i64, &str), usize> = bookers
        .iter()
        .enumerate()
        .map(|(i, b)| ((b.user_id, b.request_id.as_str()), i))
        .collect();
    // Every acknowledged booking is stored, the citizen's, from that form.
    for (b, s) in bookers.iter().zip(&sent) {
        if let Some(id) = s.booked() {
            let row = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("acknowledged {id} is lost"));
            assert_eq!(row.1, b.user_id);
            assert_eq!(row.2.as_deref(), Some(b.request_id.as_str()));
            assert_eq!(row.3, "active");
        }
    }
    // Everything stored was sent; what was stored unacknowledged was in
    // flight when the server died (or answered 503 and waiting to be sent
    // again: a write that had begun commits all the same).
    let mut lost_but_stored = HashMap::new();
    let mut users = HashSet::new();
    for row in &rows {
        assert!(users.insert(row.1), "two reservations for user {}", row.1);
        let i = *index
            .get(&(row.1, row.2.as_deref().unwrap_or_default()))
            .unwrap_or_else(|| panic!("stored {row:?} is no form of the rush"));
        assert!(sent[i].was_sent(), "stored {row:?}, never sent");
        match sent[i].last() {
            Some(Answer::Booked(id)) => assert_eq!(*id, row.0),
            Some(Answer::Lost | Answer::Later(_)) => {
                lost_but_stored.insert(i, row.0);
            }
            other => panic!("stored {row:?}, answered {other:?}"),
        }
    }
    let acknowledged = sent.iter().filter(|s| s.booked().is_some()).count();
    let lost: Vec<usize> = (0..bookers.len())
        .filter(|&i| matches!(sent[i].last(), Some(Answer::Lost | Answer::Later(_))))
        .collect();
    let never_sent = sent.iter().filter(|s| !s.was_sent()).count();
    assert_eq!(rows.len(), acknowledged + lost_but_stored.len());
    assert!(!lost.is_empty(), "forms in flight at the kill");
    verify_clean(&binary);

    // The server started again on the same database serves…
    let restarting = Instant::now();
    let again = binary.serve(&[]);
    again.healthy().await;
    let recovered_in = restarting.elapsed();
    let store_page = format!("/stores/{}", crowd.prepared.store_codes[0]);
    assert_eq!(
        bookers[0]
            .on(&again)
            .visitor
            .get(&store_page)
            .await
            .status(),
        200
    );
    // …and a form sent again finds what it made: the first reservation, not
    // a second one, whether its answer came (a resubmitted form) or was lost.
    // A 503 on the way is sent again, as the waiting page does.
    let resend: Vec<usize> = lost
        .iter()
        .copied()
        .chain(
            (0..bookers.len())
                .filter(|&i| sent[i].booked().is_some())
                .take(5),
        )
        .collect();
    let answers = futures_util::future::join_all(resend.iter().map(|&i| {
        let b = bookers[i].on(&again);
        async move {
            let until = Instant::now() + Duration::from_secs(30);
            let mut answer = b.post(2).await;
            while matches!(answer, Answer::Later(_)) && Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(1)).await;
                answer = b.post(2).await;
            }
            let flash = match answer {
                Answer::Booked(id) => b.flash_on(id).await,
                _ => None,
            };
            (answer, flash)
        }
    }))
    .await;
    for (&i, (answer, flash)) in resend.iter().zip(&answers) {
        let Answer::Booked(id) = answer else {
            panic!("form {i} sent again: {answer:?}");
        };
        match sent[i].booked().or(lost_but_stored.get(&i).copied()) {
            Some(first) => {
                assert_eq!(*id, first, "form {i} sent again made a second reservation");
                assert_eq!(
                    flash.as_deref(),
                    Some("reservation.flash.already_booked"),
                    "form {i}"
                );
            }
            None => assert_eq!(
                flash.as_deref(),
                Some("reservation.flash.booked"),
                "form {i}"
            ),
        }
    }
    let after = stored(&mut conn);
    assert_eq!(after.len(), acknowledged + lost.len());
    verify_clean(&binary);
    eprintln!(
        "kill -9 mid-rush on {:?}: {} forms, {} sent, {} acknowledged ({} at the kill), \
         {} in flight (no answer), {} of them stored, {} never sent; stored after the kill {}; \
         restarted and healthy in {} ms; answers: {}",
        database.url().backend(),
        CITIZENS,
        CITIZENS - never_sent,
        acknowledged,
        acked_at_kill,
        lost.len(),
        lost_but_stored.len(),
        never_sent,
        rows.len(),
        recovered_in.as_millis(),
        tally(&sent)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_crash_stopped_mid_rush_answers_503_loses_nothing_and_the_server_comes_back_by_itself()
 {
    let Some(_) = crate::common::db::postgres_server() else {
        // An SQLite file is opened by the process itself: nothing to cut.
        return;
    };
    const CITIZENS: usize = 300;
    let database = TestDatabase::fresh();
    let proxy = DbProxy::start(database.postgres_addr().unwrap()).await;
    let DatabaseUrl::Postgres(via_proxy) = database.url_via(Some(proxy.port)) else {
        unreachable!("a PostgreSQL database");
    };
    let binary = Binary::with_url(&via_proxy);
    let crowd = Crowd::prepare(&database, &binary, 2, CITIZENS);
    let mut server = binary.serve(&[]);
    server.healthy().await;
    let bookers = crowd.bookers_spread(&server).await;

    let rush = Rush::new(32, 2, Duration::from_secs(60)).middle_at(CITIZENS / 3);
    let health = reqwest::Client::new();
    let healthz = server.url("/healthz");
    let outage = async {
        rush.middle().await;
        // The database stops dead: every connection dropped, none taken.
        proxy.cut();
        let cut = Instant::now();
        let acked_at_cut = rush.acked.load(Ordering::SeqCst);
        // Down until the server has said so: /healthz 503, and more 503s
        // than there were forms in flight at the cut, so that forms posted
        // during the cut (which wait `DB_TIMEOUT` for a connection) were
        // answered too.
        let later_at_cut = rush.later.load(Ordering::SeqCst);
        eventually(Duration::from_secs(30), "503s during the cut", || async {
            let down = health.get(&healthz).send().await.ok()?.status() == 503;
            let answered = rush.later.load(Ordering::SeqCst) - later_at_cut;
            (down && answered > rush.at_once).then_some(())
        })
        .await;
        proxy.restore();
        let restored = Instant::now();
        server.healthy().await;
        (cut, acked_at_cut, restored, restored.elapsed())
    };
    let (sent, (cut, acked_at_cut, restored, healthy_in)) =
        tokio::join!(rush.run(&bookers), outage);

    // 503 while the database was gone, never 500, never a lost answer.
    assert!(unexpected(&sent).is_empty(), "{}", tally(&sent));
    assert!(
        sent.iter()
            .flat_map(|s| &s.answers)
            .all(|a| matches!(a, Answer::Booked(_) | Answer::Later(503))),
        "{}",
        tally(&sent)
    );
    assert!(server.running(), "the server kept running");
    // Its log says so too: 503s ("service unavailable"), no 500 ("request
    // failed").
    let log = server.log_text();
    assert!(log.contains("service unavailable"), "{log}");
    assert!(!log.contains("request failed"), "{log}");
    // Every form ended booked, resent until the database was back.
    assert!(
        sent.iter().all(|s| s.booked().is_some()),
        "{}",
        tally(&sent)
    );
    let answered_503: Vec<usize> = (0..bookers.len())
        .filter(|&i| sent[i].answers.contains(&Answer::Later(503)))
        .collect();
    assert!(!answered_503.is_empty());

    // Stored is exactly what was acknowledged: nothing lost, nothing twice
    // (a commit whose answer the cut swallowed is found again by its
    // request id).
    let mut conn = database.connect();
    let rows = stored(&mut conn);
    let acknowledged: HashSet<(i64, i64)> = bookers
        .iter()
        .zip(&sent)
        .filter_map(|(b, s)| Some((s.booked()?, b.user_id)))
        .collect();
    let on_disk: HashSet<(i64, i64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(rows.len(), CITIZENS);
    assert_eq!(on_disk, acknowledged);
    verify_clean(&binary);

    // Among the forms answered 503, those whose booking had in fact been
    // committed (the answer lost with the connection) say so on resend.
    let flashes = futures_util::future::join_all(answered_503.iter().map(|&i| {
        let (b, id) = (&bookers[i], sent[i].booked().unwrap_or_default());
        async move { b.flash_on(id).await }
    }))
    .await;
    let found_again = flashes
        .iter()
        .filter(|f| f.as_deref() == Some("reservation.flash.already_booked"))
        .count();
    let first_booking_after = sent
        .iter()
        .filter_map(|s| s.last_at)
        .filter(|at| *at > restored)
        .min()
        .map(|at| at - restored);
    eprintln!(
        "PostgreSQL cut mid-rush: {CITIZENS} forms, {acked_at_cut} acknowledged before the cut, \
         cut for {} ms; {} forms answered 503 ({} 503s in all), {} of them found committed \
         on resend; /healthz 200 {} ms after the restore, first booking after it in {:?}; \
         stored {} = acknowledged {}; answers: {}",
        (restored - cut).as_millis(),
        answered_503.len(),
        rush.later.load(Ordering::SeqCst),
        found_again,
        healthy_in.as_millis(),
        first_booking_after,
        rows.len(),
        acknowledged.len(),
        tally(&sent)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_made_while_smtp_is_down_succeed_and_each_confirmation_is_delivered_once_it_is_back()
 {
    const CITIZENS: usize = 40;
    let database = TestDatabase::fresh();
    let binary = Binary::new(&database.url());
    let crowd = Crowd::prepare(&database, &binary, 1, CITIZENS);
    let smtp = SmtpSink::start_down().await;
    let server = binary.serve(&[("MAIL_URL", &format!("smtp://127.0.0.1:{}", smtp.port))]);
    server.healthy().await;
    let bookers = crowd.bookers_spread(&server).await;

    let sent = Rush::new(CITIZENS, 2, Duration::from_secs(20))
        .run(&bookers)
        .await;
    // Every booking succeeds without a mail server.
    assert!(
        sent.iter().all(|s| s.booked().is_some()),
        "{}",
        tally(&sent)
    );

    // The sender tries, the server turns it away, and every confirmation
    // waits in the outbox.
    type Row = (i64, String, String, i32, Option<String>);
    let outbox = |conn: &mut DbConnection| -> Vec<Row> {
        mail_outbox::table
            .filter(mail_outbox::kind.eq("reservation_confirmed"))
            .select((
                mail_outbox::id,
                mail_outbox::recipient,
                mail_outbox::status,
                mail_outbox::attempts,
                mail_outbox::last_error,
            ))
            .load(conn)
            .unwrap()
    };
    let mut conn = database.connect();
    // A claim counts an attempt at once, and gives it back if the message was
    // not tried: the refused ones are those with an error recorded.
    let waiting = eventually(Duration::from_secs(30), "three refused messages", || {
        let rows = outbox(&mut conn);
        let refused = rows.iter().filter(|r| r.4.is_some()).count();
        std::future::ready((rows.len() == CITIZENS && refused >= 3).then_some(rows))
    })
    .await;
    assert!(waiting.iter().all(|r| r.2 == "pending"), "{waiting:?}");
    assert!(
        waiting
            .iter()
            .filter_map(|r| r.4.as_deref())
            .all(|e| e.contains("421")),
        "{waiting:?}"
    );
    assert!(smtp.messages().is_empty());
    let refused_in_outage = waiting.iter().filter(|r| r.4.is_some()).count();

    // SMTP comes back: every confirmation goes, each once.
    smtp.come_back();
    let back = Instant::now();
    let settled = eventually(Duration::from_secs(60), "every confirmation sent", || {
        let rows = outbox(&mut conn);
        std::future::ready(rows.iter().all(|r| r.2 == "sent").then_some(rows))
    })
    .await;
    let delivered_in = back.elapsed();
    assert_eq!(settled.len(), CITIZENS);
    let mails = smtp.messages();
    assert_eq!(mails.len(), CITIZENS, "one delivery per confirmation");
    let ids: HashSet<String> = mails
        .iter()
        .map(|m| m.header("Message-ID").expect("a Message-ID"))
        .collect();
    assert_eq!(ids.len(), CITIZENS, "one Message-ID per confirmation");
    // Each to its citizen, about their reservation.
    let reservation_of: HashMap<&str, i64> = bookers
        .iter()
        .zip(&sent)
        .filter_map(|(b, s)| Some((b.email.as_str(), s.booked()?)))
        .collect();
    let mut to: Vec<&str> = Vec::new();
    for mail in &mails {
        assert_eq!(mail.recipients.len(), 1);
        let recipient = mail.recipients[0].as_str();
        let id = reservation_of
            .get(recipient)
            .unwrap_or_else(|| panic!("a mail to {recipient}, who booked nothing"));
        assert!(
            mail.text_body().contains(&format!("/reservations/{id}")),
            "{}",
            mail.text_body()
        );
        to.push(recipient);
    }
    to.sort_unstable();
    to.dedup();
    assert_eq!(to.len(), CITIZENS, "every citizen, once");
    verify_clean(&binary);
    eprintln!(
        "SMTP outage: {CITIZENS} bookings, all 303; {refused_in_outage} confirmations \
         refused while down; every confirmation delivered {} ms after SMTP came back; {} mails, \
         {} Message-IDs",
        delivered_in.as_millis(),
        mails.len(),
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_for_ten_places_take_exactly_ten_and_refuse_the_rest_with_the_page() {
    const CITIZENS: usize = 80;
    let database = TestDatabase::fresh();
    let binary = Binary::new(&database.url());
    let crowd = Crowd::prepare(&database, &binary, 1, CITIZENS);
    let db = open(&database);
    let store = fixtures::store(&db, "11800001", "중앙약국");
    // Three windows of ten, none kept for the counter.
    let window = fixtures::supply_in_windows(&db, store, crowd.prepared.rush_day, 30)[0];
    let (first, second) = (binary.serve(&[]), binary.serve(&[]));
    first.healthy().await;
    second.healthy().await;
    let bookers = crowd.bookers(&[&first, &second], |_| window).await;

    let sent = Rush::new(CITIZENS, 1, Duration::from_secs(20))
        .run(&bookers)
        .await;

    assert!(unexpected(&sent).is_empty(), "{}", tally(&sent));
    let booked: Vec<usize> = (0..CITIZENS)
        .filter(|&i| sent[i].booked().is_some())
        .collect();
    assert_eq!(booked.len(), 10, "{}", tally(&sent));
    for s in sent.iter().filter(|s| s.booked().is_none()) {
        assert_eq!(
            s.last(),
            Some(&Answer::Refused(409, "full".to_owned())),
            "{}",
            tally(&sent)
        );
    }
    let mut conn = database.connect();
    let winners: HashSet<i64> = booked.iter().map(|&i| bookers[i].user_id).collect();
    assert_window_went_to(&mut conn, window, 10, &winners);
    verify_clean(&binary);
    eprintln!(
        "two instances on {:?}: {CITIZENS} citizens, 10 places: {} booked ({} through the \
         first instance, {} through the second); answers: {}",
        database.url().backend(),
        booked.len(),
        booked.iter().filter(|&&i| i % 2 == 0).count(),
        booked.iter().filter(|&&i| i % 2 == 1).count(),
        tally(&sent)
    );
}
