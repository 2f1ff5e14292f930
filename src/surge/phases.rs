//! The phases of a launch morning, each a set of virtual users (tokio tasks,
//! one keep-alive connection each) that run until the phase's time is up or
//! its operation budget is spent. A 503 or 429 is a planned answer: the user
//! waits what `Retry-After` says (keeping its cookies, such as a waiting-room
//! ticket) and asks again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

use crate::accounts::Role;
use crate::surge::client::{self, Answer, Connection, Recorder};
use crate::surge::prepare::{self, Prepared};
use crate::web::session::SessionUser;

/// The name of the session cookie the server reads.
pub const SESSION_COOKIE: &str = "mr_session";

/// How long a user keeps retrying a reservation answered 503/429 or not at
/// all after its phase's time is up, before giving up on knowing its outcome.
const RESOLVE_GRACE: Duration = Duration::from_secs(30);

/// When a phase stops: after `duration`, or once `max_ops` operations (health
/// probes, reads, logins, reservations) are done, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub duration: Duration,
    pub max_ops: Option<u64>,
}

/// A shared stop condition.
#[derive(Clone)]
struct Stop {
    deadline: Instant,
    ops: Arc<AtomicU64>,
    max_ops: Option<u64>,
    flag: Arc<AtomicBool>,
}

impl Stop {
    fn new(limit: Limit) -> Stop {
        Stop {
            deadline: Instant::now() + limit.duration,
            ops: Arc::new(AtomicU64::new(0)),
            max_ops: limit.max_ops,
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Claims one operation; `false` when the phase is over.
    fn claim(&self) -> bool {
        if self.is_over() {
            return false;
        }
        let n = self.ops.fetch_add(1, Ordering::Relaxed);
        self.max_ops.is_none_or(|max| n < max)
    }

    fn is_over(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
            || self
                .max_ops
                .is_some_and(|max| self.ops.load(Ordering::Relaxed) >= max)
    }

    fn end(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

/// One row of the report, as measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub recorder: Recorder,
    /// Statuses that are the success of this row (503 and 429 are planned too).
    pub expected: Vec<u16>,
    /// Operations that succeeded (reservations, logins, pickups), if that differs
    /// from requests.
    pub ops: Option<u64>,
    pub elapsed: Duration,
    /// Reads asked for per second, for a paced row.
    pub paced_at: Option<u64>,
}

impl Measured {
    /// Answers that are neither expected nor a planned 503/429 (0: no answer).
    pub fn unplanned(&self) -> u64 {
        self.recorder
            .statuses
            .iter()
            .filter(|(s, _)| !self.expected.contains(s) && **s != 503 && **s != 429)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What every phase shares: where the server is, the prepared data, the
/// cookie key to give prepared users their sessions, and what was
/// acknowledged so far.
pub struct Shared {
    pub addr: SocketAddr,
    pub cookie_key: Key,
    pub prepared: Prepared,
    next_citizen: AtomicUsize,
    next_login: AtomicUsize,
    /// Per pharmacist, the next of its codes to hand over.
    next_code: Vec<AtomicUsize>,
    /// (user, reservation) of every reservation answered 303.
    pub acknowledged: Mutex<Vec<(i64, i64)>>,
    /// Rush users whose reservation's outcome stayed unknown (no answer, or
    /// still 503/429 when the grace ran out).
    pub unresolved: AtomicU64,
}

impl Shared {
    pub fn new(addr: SocketAddr, cookie_key: Key, prepared: Prepared) -> Shared {
        let next_code = prepared
            .pharmacists
            .iter()
            .map(|_| AtomicUsize::new(0))
            .collect();
        Shared {
            addr,
            cookie_key,
            prepared,
            next_citizen: AtomicUsize::new(0),
            next_login: AtomicUsize::new(0),
            next_code,
            acknowledged: Mutex::new(Vec::new()),
            unresolved: AtomicU64::new(0),
        }
    }

    /// Rush citizens not yet used.
    pub fn citizens_left(&self) -> usize {
        self.prepared
            .citizens
            .len()
            .saturating_sub(self.next_citizen.load(Ordering::Relaxed))
    }
}

/// The value of a session cookie saying `user` is logged in, as the server's
/// session middleware writes it: its JSON state map (each value itself JSON)
/// in actix-web's private (encrypted and authenticated) cookie under the
/// server's cookie key.
pub fn session_cookie(key: &Key, user: &SessionUser) -> Result<String, serde_json::Error> {
    let mut state = std::collections::HashMap::new();
    state.insert("user".to_owned(), serde_json::to_string(user)?);
    let mut jar = CookieJar::new();
    jar.private_mut(key)
        .add(Cookie::new(SESSION_COOKIE, serde_json::to_string(&state)?));
    Ok(jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default())
}

/// Sends one request, recording it; `None` when there was no answer.
async fn timed<F, Fut>(rec: &mut Recorder, f: F) -> Option<Answer>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Answer, client::ClientError>>,
{
    let started = Instant::now();
    let result = f().await;
    match result {
        Ok(a) => {
            rec.record(Some(a.status), started.elapsed());
            Some(a)
        }
        Err(e) => {
            tracing::debug!(error = %e, "no answer");
            rec.record(None, started.elapsed());
            None
        }
    }
}

/// The wait a 503/429 asks for (1 s when it says nothing).
fn planned_wait(a: &Answer) -> Option<Duration> {
    matches!(
        a.status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    )
    .then(|| a.retry_after.unwrap_or(Duration::from_secs(1)))
}

/// Sleeps for `wait`, but not past `until`.
async fn sleep_until_or(wait: Duration, until: Instant) {
    let wake = (Instant::now() + wait).min(until);
    tokio::time::sleep_until(wake.into()).await;
}

/// Runs `users` copies of `user` and merges what they recorded.
async fn run_users<F, Fut>(users: usize, user: F) -> Vec<Recorder>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<Recorder>> + Send + 'static,
{
    let handles: Vec<_> = (0..users).map(|u| tokio::spawn(user(u))).collect();
    let mut merged: Vec<Recorder> = Vec::new();
    for h in handles {
        match h.await {
            Ok(recs) => {
                if merged.is_empty() {
                    merged = recs;
                } else {
                    for (m, r) in merged.iter_mut().zip(recs) {
                        m.merge(r);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "a virtual user failed"),
        }
    }
    merged
}

/// GET `path()` as fast as `connections` users can, until `stop`.
async fn closed_loop_gets(
    addr: SocketAddr,
    connections: usize,
    stop: Stop,
    path: fn(&mut StdRng, usize) -> String,
) -> Recorder {
    let recs = run_users(connections, |u| {
        let stop = stop.clone();
        async move {
            let mut conn = Connection::new(addr);
            let mut rec = Recorder::default();
            let mut rng = StdRng::seed_from_u64(u as u64);
            while stop.claim() {
                let p = path(&mut rng, u);
                if let Some(a) = timed(&mut rec, || conn.get(&p)).await
                    && let Some(wait) = planned_wait(&a)
                {
                    sleep_until_or(wait, stop.deadline).await;
                }
            }
            vec![rec]
        }
    })
    .await;
    recs.into_iter().next().unwrap_or_default()
}

fn healthz_path(_: &mut StdRng, _: usize) -> String {
    "/healthz".to_owned()
}

/// One of the open-data JSON reads: nearest stores, or a page of sales or stores.
pub fn opendata_path(rng: &mut StdRng, _: usize) -> String {
    let prefix = crate::opendata::api::API_PREFIX;
    match rng.random_range(0..4) {
        0 | 1 => {
            let lat = 37.45 + rng.random_range(0..25) as f64 / 100.0;
            let lng = 126.80 + rng.random_range(0..35) as f64 / 100.0;
            format!("{prefix}/storesByGeo/json?lat={lat:.2}&lng={lng:.2}&m=1000")
        }
        2 => format!(
            "{prefix}/sales/json?page={}&perPage=100",
            rng.random_range(1..=5)
        ),
        _ => format!(
            "{prefix}/stores/json?page={}&perPage=100",
            rng.random_range(1..=5)
        ),
    }
}

/// A stub HTTP server inside surge that answers every request with the same
/// 2-byte 200, no parsing beyond the end of the head: what the load client
/// reaches against it is the client's own ceiling on this machine (the two
/// share its cores).
pub async fn stub_server() -> std::io::Result<SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut filled = 0;
                loop {
                    let Ok(n) = stream.read(&mut buf[filled..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    // Requests are GETs without a body: one answer per head.
                    let heads = buf[..filled]
                        .windows(4)
                        .filter(|w| w == b"\r\n\r\n")
                        .count();
                    if heads > 0 {
                        let last = buf[..filled]
                            .windows(4)
                            .rposition(|w| w == b"\r\n\r\n")
                            .map_or(0, |i| i + 4);
                        buf.copy_within(last..filled, 0);
                        filled -= last;
                        if stream.write_all(&ANSWER.repeat(heads)).await.is_err() {
                            return;
                        }
                    } else if filled == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// The client alone: GET as fast as it can against [`stub_server`].
pub async fn client_ceiling(connections: usize, limit: Limit) -> std::io::Result<Measured> {
    let addr = stub_server().await?;
    let started = Instant::now();
    let rec = closed_loop_gets(addr, connections, Stop::new(limit), healthz_path).await;
    Ok(Measured {
        name: "client ceiling (stub server in surge)".into(),
        recorder: rec,
        expected: vec![200],
        ops: None,
        elapsed: started.elapsed(),
        paced_at: None,
    })
}

pub async fn healthz(addr: SocketAddr, connections: usize, limit: Limit) -> Measured {
    let started = Instant::now();
    let rec = closed_loop_gets(addr, connections, Stop::new(limit), healthz_path).await;
    Measured {
        name: "healthz".into(),
        recorder: rec,
        expected: vec![200],
        ops: None,
        elapsed: started.elapsed(),
        paced_at: None,
    }
}

pub async fn opendata(addr: SocketAddr, connections: usize, limit: Limit) -> Measured {
    let started = Instant::now();
    let rec = closed_loop_gets(addr, connections, Stop::new(limit), opendata_path).await;
    Measured {
        name: "open-data reads".into(),
        recorder: rec,
        expected: vec![200],
        ops: None,
        elapsed: started.elapsed(),
        paced_at: None,
    }
}

/// Open-loop reads at `per_second`: read `k` is due at `start + k / rate`, and
/// its latency counts from then, so a slow server shows as latency, not as a
/// lower rate the client quietly settled for.
async fn paced_reads(
    addr: SocketAddr,
    per_second: u64,
    connections: usize,
    stop: Stop,
) -> Recorder {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let recs = run_users(connections, |u| {
        let (stop, next) = (stop.clone(), next.clone());
        async move {
            let mut conn = Connection::new(addr);
            let mut rec = Recorder::default();
            let mut rng = StdRng::seed_from_u64(1_000 + u as u64);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let due = start + Duration::from_secs_f64(k as f64 / per_second.max(1) as f64);
                if stop.is_over() || due >= stop.deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                if stop.is_over() {
                    break;
                }
                let p = opendata_path(&mut rng, u);
                let answer = conn.get(&p).await;
                let took = due.elapsed();
                match answer {
                    Ok(a) => rec.record(Some(a.status), took),
                    Err(_) => rec.record(None, took),
                }
            }
            vec![rec]
        }
    })
    .await;
    recs.into_iter().next().unwrap_or_default()
}

/// Real logins: GET /login for the form's token, then POST it with the
/// benchmark password, each attempt from an address of its own
/// (`X-Forwarded-For`; the server trusts it) so the per-address limit does not
/// answer instead of the password check.
pub async fn login_storm(shared: Arc<Shared>, connections: usize, limit: Limit) -> Vec<Measured> {
    let started = Instant::now();
    let stop = Stop::new(limit);
    let logged_in = Arc::new(AtomicU64::new(0));
    let citizens = shared.prepared.citizens.len().max(1);
    let recs = run_users(connections, |_| {
        let (stop, shared, logged_in) = (stop.clone(), shared.clone(), logged_in.clone());
        async move {
            let mut conn = Connection::new(shared.addr);
            let (mut forms, mut posts) = (Recorder::default(), Recorder::default());
            'user: while stop.claim() {
                let n = shared.next_login.fetch_add(1, Ordering::Relaxed);
                let email = prepare::citizen_email(n % citizens);
                conn.forwarded_for = Some(client::address(10, n));
                conn.jar.clear();
                let Some(form) = timed(&mut forms, || conn.get("/login")).await else {
                    continue;
                };
                let Some(token) = client::csrf_token(form.text()).map(str::to_owned) else {
                    continue;
                };
                loop {
                    let fields = [
                        ("csrf_token", token.as_str()),
                        ("next", ""),
                        ("email", email.as_str()),
                        ("password", prepare::PASSWORD),
                    ];
                    let Some(a) = timed(&mut posts, || conn.post_form("/login", &fields)).await
                    else {
                        continue 'user;
                    };
                    if a.status == StatusCode::SEE_OTHER {
                        logged_in.fetch_add(1, Ordering::Relaxed);
                    }
                    match planned_wait(&a) {
                        Some(wait) if !stop.is_over() => {
                            sleep_until_or(wait, stop.deadline).await;
                        }
                        _ => continue 'user,
                    }
                }
            }
            vec![forms, posts]
        }
    })
    .await;
    let elapsed = started.elapsed();
    let mut recs = recs.into_iter();
    let (forms, posts) = (
        recs.next().unwrap_or_default(),
        recs.next().unwrap_or_default(),
    );
    vec![
        Measured {
            name: "login storm: log in (POST)".into(),
            recorder: posts,
            expected: vec![303],
            ops: Some(logged_in.load(Ordering::Relaxed)),
            elapsed,
            paced_at: None,
        },
        Measured {
            name: "login storm: login page (GET)".into(),
            recorder: forms,
            expected: vec![200],
            ops: None,
            elapsed,
            paced_at: None,
        },
    ]
}

/// What a rush asks for.
#[derive(Debug, Clone, Copy)]
pub struct Rush {
    pub connections: usize,
    pub limit: Limit,
    /// Open-data reads per second alongside (paced), if any.
    pub reads_alongside: Option<u64>,
    /// Connections the paced reads use.
    pub read_connections: usize,
    /// Time between two pickups at one pharmacist's counter.
    pub pickup_every: Duration,
    /// Pickups each counter tries at least, however short the rush.
    pub min_pickups: u64,
}

/// The reservation rush: each user takes the next unused citizen (whose
/// session cookie it is given), loads a random store's page as a browser
/// would, and posts the reservation form of one of its windows with the page's
/// CSRF token and a fresh request id. A 303 to `/reservations/{id}` is an
/// acknowledged reservation. Pharmacists hand over prepared pickups alongside,
/// and, when asked, paced open-data reads run too.
pub async fn rush(shared: Arc<Shared>, name: &str, rush: Rush) -> Vec<Measured> {
    let started = Instant::now();
    let stop = Stop::new(rush.limit);
    let reservations = Arc::new(AtomicU64::new(0));
    let pickups = Arc::new(AtomicU64::new(0));

    let pickup_task = {
        let (shared, stop, pickups) = (shared.clone(), stop.clone(), pickups.clone());
        tokio::spawn(async move {
            run_users(shared.prepared.pharmacists.len(), |p| {
                let counter = Counter {
                    every: rush.pickup_every,
                    at_least: rush.min_pickups,
                };
                pharmacist(shared.clone(), p, stop.clone(), counter, pickups.clone())
            })
            .await
        })
    };
    let reads_task = rush.reads_alongside.map(|rate| {
        let (addr, stop) = (shared.addr, stop.clone());
        tokio::spawn(async move { paced_reads(addr, rate, rush.read_connections, stop).await })
    });

    let recs = run_users(rush.connections, |u| {
        let (shared, stop, reservations) = (shared.clone(), stop.clone(), reservations.clone());
        async move { rush_user(shared, u, stop, reservations).await }
    })
    .await;
    // The rush is over when its users are (time, budget, or no citizen left):
    // stop what ran alongside.
    stop.end();
    let elapsed = started.elapsed();
    let mut recs = recs.into_iter();
    let (pages, posts) = (
        recs.next().unwrap_or_default(),
        recs.next().unwrap_or_default(),
    );
    let mut rows = vec![
        Measured {
            name: format!("{name}: reserve (POST)"),
            recorder: posts,
            expected: vec![303],
            ops: Some(reservations.load(Ordering::Relaxed)),
            elapsed,
            paced_at: None,
        },
        Measured {
            name: format!("{name}: store page (GET)"),
            recorder: pages,
            expected: vec![200],
            ops: None,
            elapsed,
            paced_at: None,
        },
    ];
    if let Ok(recs) = pickup_task.await {
        rows.push(Measured {
            name: format!("{name}: pickups alongside"),
            recorder: recs.into_iter().next().unwrap_or_default(),
            expected: vec![200],
            ops: Some(pickups.load(Ordering::Relaxed)),
            elapsed,
            paced_at: None,
        });
    }
    if let Some(task) = reads_task
        && let Ok(rec) = task.await
    {
        rows.push(Measured {
            name: format!("{name}: open-data reads alongside"),
            recorder: rec,
            expected: vec![200],
            ops: None,
            elapsed,
            paced_at: rush.reads_alongside,
        });
    }
    rows
}

/// One rush user: [store page GETs, reservation POSTs].
async fn rush_user(
    shared: Arc<Shared>,
    u: usize,
    stop: Stop,
    reservations: Arc<AtomicU64>,
) -> Vec<Recorder> {
    let mut conn = Connection::new(shared.addr);
    let (mut pages, mut posts) = (Recorder::default(), Recorder::default());
    let mut rng = StdRng::seed_from_u64(10_000 + u as u64);
    let stores = &shared.prepared.store_codes;
    while !stop.is_over() {
        let i = shared.next_citizen.fetch_add(1, Ordering::Relaxed);
        let Some(citizen) = shared.prepared.citizens.get(i) else {
            break;
        };
        if !stop.claim() {
            // Not taken after all: nobody else will either (the phase is over).
            break;
        }
        let user = SessionUser::new(
            citizen.id,
            Role::Citizen,
            citizen.name.clone(),
            0,
            chrono::Utc::now(),
        );
        let Ok(cookie) = session_cookie(&shared.cookie_key, &user) else {
            break;
        };
        conn.jar.clear();
        conn.jar.insert(SESSION_COOKIE, &cookie);
        conn.forwarded_for = Some(client::address(11, i));
        let Some(code) = stores.get(rng.random_range(0..stores.len().max(1))) else {
            break;
        };
        let path = format!("/stores/{code}");
        let hard_deadline = stop.deadline + RESOLVE_GRACE;
        let page = loop {
            match timed(&mut pages, || conn.get(&path)).await {
                Some(a) => match planned_wait(&a) {
                    Some(wait) if Instant::now() < stop.deadline => {
                        sleep_until_or(wait, stop.deadline).await;
                    }
                    _ => break Some(a),
                },
                None => break None,
            }
        };
        let Some(page) = page.filter(|p| p.status == StatusCode::OK) else {
            continue;
        };
        let text = page.text();
        let Some(token) = client::csrf_token(text).map(str::to_owned) else {
            continue;
        };
        let windows: Vec<&str> = client::hidden_values(text, "window_id").collect();
        let Some(window) = windows
            .get(rng.random_range(0..windows.len().max(1)))
            .map(|w| (*w).to_owned())
        else {
            continue;
        };
        let request_id = format!("surge-{}", citizen.id);
        let quantity = prepare::RUSH_QUANTITY.to_string();
        // Asked again with the same request id until it has an answer: a
        // second post of a booked request answers the same reservation.
        loop {
            let fields = [
                ("csrf_token", token.as_str()),
                ("window_id", window.as_str()),
                ("request_id", request_id.as_str()),
                ("quantity", quantity.as_str()),
            ];
            let answer = timed(&mut posts, || conn.post_form("/reservations", &fields)).await;
            let wait = match &answer {
                Some(a) if a.status == StatusCode::SEE_OTHER => {
                    match a.location.as_deref().and_then(client::reservation_id) {
                        Some(id) => {
                            reservations.fetch_add(1, Ordering::Relaxed);
                            shared.acknowledged.lock().await.push((citizen.id, id));
                        }
                        None => {
                            tracing::warn!(location = ?a.location, "a 303 not to a reservation");
                        }
                    }
                    break;
                }
                Some(a) => match planned_wait(a) {
                    Some(wait) => wait,
                    // A refusal: an answer, nothing booked.
                    None => break,
                },
                None => Duration::from_millis(100),
            };
            if Instant::now() + wait > hard_deadline {
                shared.unresolved.fetch_add(1, Ordering::Relaxed);
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
    vec![pages, posts]
}

/// How a pharmacist's counter works during a rush.
#[derive(Debug, Clone, Copy)]
struct Counter {
    every: Duration,
    at_least: u64,
}

/// A pharmacist at the counter: loads the pickup page (for the form's token),
/// then hands over one prepared code every `every` until the rush ends (and
/// at least `at_least` were tried).
async fn pharmacist(
    shared: Arc<Shared>,
    p: usize,
    stop: Stop,
    counter: Counter,
    pickups: Arc<AtomicU64>,
) -> Vec<Recorder> {
    let mut rec = Recorder::default();
    let (Some(who), Some(next)) = (shared.prepared.pharmacists.get(p), shared.next_code.get(p))
    else {
        return vec![rec];
    };
    let mut conn = Connection::new(shared.addr);
    let user = SessionUser::new(
        who.id,
        Role::Pharmacist,
        who.name.clone(),
        0,
        chrono::Utc::now(),
    );
    let Ok(cookie) = session_cookie(&shared.cookie_key, &user) else {
        return vec![rec];
    };
    conn.jar.insert(SESSION_COOKIE, &cookie);
    let mut token = None;
    let mut tried = 0;
    let mut tick = tokio::time::interval(counter.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let over = |tried: u64| stop.is_over() && tried >= counter.at_least;
    while !over(tried) {
        tick.tick().await;
        if over(tried) {
            break;
        }
        let Some(csrf) = &token else {
            if let Some(page) = timed(&mut rec, || conn.get("/pharmacy/pickup")).await {
                token = client::csrf_token(page.text()).map(str::to_owned);
            }
            if token.is_none() && stop.is_over() {
                break;
            }
            continue;
        };
        let Some(code) = who.codes.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        let csrf = csrf.clone();
        tried += 1;
        loop {
            let fields = [
                ("csrf_token", csrf.as_str()),
                ("code", code.as_str()),
                ("confirm", "1"),
            ];
            let Some(a) = timed(&mut rec, || conn.post_form("/pharmacy/pickup", &fields)).await
            else {
                break;
            };
            if a.status == StatusCode::OK {
                pickups.fetch_add(1, Ordering::Relaxed);
            }
            match planned_wait(&a) {
                Some(wait) if !stop.is_over() => sleep_until_or(wait, stop.deadline).await,
                _ => break,
            }
        }
    }
    vec![rec]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unplanned_is_whatever_is_not_expected_503_or_429() {
        let mut rec = Recorder::default();
        for s in [200, 200, 503, 429, 500, 403] {
            rec.record(StatusCode::from_u16(s).ok(), Duration::ZERO);
        }
        rec.record(None, Duration::ZERO);
        let m = Measured {
            name: "x".into(),
            recorder: rec,
            expected: vec![200],
            ops: None,
            elapsed: Duration::from_secs(1),
            paced_at: None,
        };
        assert_eq!(m.unplanned(), 3);
    }

    #[test]
    fn a_minted_session_cookie_opens_with_the_key_only() {
        let key = Key::generate();
        let user = SessionUser::new(7, Role::Citizen, "시민".into(), 0, chrono::Utc::now());
        let value = session_cookie(&key, &user).unwrap();
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(SESSION_COOKIE, value.clone()));
        let opened = jar.private(&key).get(SESSION_COOKIE).unwrap();
        let state: std::collections::HashMap<String, String> =
            serde_json::from_str(opened.value()).unwrap();
        let back: SessionUser = serde_json::from_str(&state["user"]).unwrap();
        assert_eq!(back, user);
        assert!(jar.private(&Key::generate()).get(SESSION_COOKIE).is_none());
    }

    #[test]
    fn stop_ends_at_its_budget() {
        let stop = Stop::new(Limit {
            duration: Duration::from_secs(3600),
            max_ops: Some(2),
        });
        assert!(stop.claim());
        assert!(stop.claim());
        assert!(!stop.claim());
        assert!(stop.is_over());
    }
}
