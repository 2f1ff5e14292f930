//! The phases of a launch morning, each a set of virtual users (tokio tasks,
//! one keep-alive connection each) that run until the phase's time is up or
//! its operation budget is spent. A 503 or 429 is a planned answer: the user
//! waits what `Retry-After` says (keeping its cookies, such as a waiting-room
//! ticket) and asks again. With several instances, users are spread over
//! them round-robin (a load balancer's simplest rule).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

use crate::client::{self, Answer, Connection, Recorder};
use crate::prepare::{self, Citizen, PROBE_QUANTITY, Prepared};
use mask_reservation::accounts::Role;
use mask_reservation::web::session::SessionUser;

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

/// How long a booking may take to show in the open data before the
/// freshness probe gives up on it (SPEC §6 asks for at most 1 s).
pub const FRESHNESS_LIMIT: Duration = Duration::from_secs(10);

/// How often the freshness probe reads the open data (a conditional GET:
/// `304` until the snapshot changes).
const FRESHNESS_POLL: Duration = Duration::from_millis(10);

/// Where the freshness probe reads a store's exact `remain`.
const STOCK_JSON: &str = "/opendata/stock.json";

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
    /// The instances under load (never empty: [`Shared::new`] is given one).
    addrs: std::sync::Mutex<Arc<[SocketAddr]>>,
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
    /// The next of the freshness store's citizens, and the masks its probes
    /// booked so far.
    next_probe: AtomicUsize,
    probe_booked: std::sync::atomic::AtomicI64,
}

impl Shared {
    pub fn new(addr: SocketAddr, cookie_key: Key, prepared: Prepared) -> Shared {
        let next_code = prepared
            .pharmacists
            .iter()
            .map(|_| AtomicUsize::new(0))
            .collect();
        Shared {
            addrs: std::sync::Mutex::new(Arc::from([addr])),
            cookie_key,
            prepared,
            next_citizen: AtomicUsize::new(0),
            next_login: AtomicUsize::new(0),
            next_code,
            acknowledged: Mutex::new(Vec::new()),
            unresolved: AtomicU64::new(0),
            next_probe: AtomicUsize::new(0),
            probe_booked: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// The instances the next phase loads.
    pub fn addrs(&self) -> Arc<[SocketAddr]> {
        self.addrs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Loads these instances from the next phase on; an empty list is ignored.
    pub fn set_addrs(&self, addrs: &[SocketAddr]) {
        if !addrs.is_empty() {
            *self
                .addrs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::from(addrs);
        }
    }

    /// The instance of the `n`-th user: round-robin.
    pub fn addr_for(&self, n: usize) -> SocketAddr {
        pick(&self.addrs(), n)
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
    session_cookie_with(key, user, None)
}

/// [`session_cookie`], holding `csrf` as the session's CSRF token when given
/// (as the server stores the one it puts in a page's forms).
pub fn session_cookie_with(
    key: &Key,
    user: &SessionUser,
    csrf: Option<&str>,
) -> Result<String, serde_json::Error> {
    let mut state = std::collections::HashMap::new();
    state.insert("user".to_owned(), serde_json::to_string(user)?);
    if let Some(token) = csrf {
        state.insert("csrf".to_owned(), serde_json::to_string(token)?);
    }
    let mut jar = CookieJar::new();
    jar.private_mut(key)
        .add(Cookie::new(SESSION_COOKIE, serde_json::to_string(&state)?));
    Ok(jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default())
}

/// The `n`-th of `addrs`, round-robin (the unspecified address, which
/// answers nothing, for an empty list).
fn pick(addrs: &[SocketAddr], n: usize) -> SocketAddr {
    addrs
        .get(n % addrs.len().max(1))
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
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

/// What a reading user asks for.
#[derive(Debug, Clone, Copy)]
pub enum Reads {
    Healthz,
    /// The 2020 API's reads over a country of `stores` stores.
    OpenData {
        stores: usize,
    },
}

impl Reads {
    pub fn path(self, rng: &mut StdRng) -> String {
        match self {
            Reads::Healthz => "/healthz".to_owned(),
            Reads::OpenData { stores } => opendata_path(rng, stores),
        }
    }
}

/// GET what `reads` says as fast as `connections` users can, until `stop`.
async fn closed_loop_gets(
    addrs: Arc<[SocketAddr]>,
    connections: usize,
    stop: Stop,
    reads: Reads,
) -> Recorder {
    let recs = run_users(connections, |u| {
        let stop = stop.clone();
        let addr = pick(&addrs, u);
        async move {
            let mut conn = Connection::new(addr);
            let mut rec = Recorder::default();
            let mut rng = StdRng::seed_from_u64(u as u64);
            while stop.claim() {
                let p = reads.path(&mut rng);
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

/// Items per page of the paged open-data reads.
const PER_PAGE: usize = 100;

/// One of the open-data JSON reads, spread over the whole country: the
/// stores near a point (half of them near a store, where people ask from;
/// half anywhere within Korea's bounds, sea and mountains included), or a
/// random page of sales or stores among all the pages there are.
pub fn opendata_path(rng: &mut StdRng, stores: usize) -> String {
    let prefix = mask_reservation::opendata::api::API_PREFIX;
    let pages = stores.div_ceil(PER_PAGE).max(1);
    let geo =
        |lat: f64, lng: f64| format!("{prefix}/storesByGeo/json?lat={lat:.4}&lng={lng:.4}&m=1000");
    match rng.random_range(0..4) {
        0 => {
            let (_, _, lat, lng) = prepare::store_place(rng.random_range(0..stores.max(1)));
            geo(
                lat + rng.random_range(-0.02..0.02),
                lng + rng.random_range(-0.02..0.02),
            )
        }
        1 => geo(
            rng.random_range(prepare::LAT_RANGE),
            rng.random_range(prepare::LNG_RANGE),
        ),
        2 => format!(
            "{prefix}/sales/json?page={}&perPage={PER_PAGE}",
            rng.random_range(1..=pages)
        ),
        _ => format!(
            "{prefix}/stores/json?page={}&perPage={PER_PAGE}",
            rng.random_range(1..=pages)
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
    let rec = closed_loop_gets(
        Arc::from([addr]),
        connections,
        Stop::new(limit),
        Reads::Healthz,
    )
    .await;
    Ok(Measured {
        name: "client ceiling (stub server in surge)".into(),
        recorder: rec,
        expected: vec![200],
        ops: None,
        elapsed: started.elapsed(),
        paced_at: None,
    })
}

pub async fn healthz(addrs: Arc<[SocketAddr]>, connections: usize, limit: Limit) -> Measured {
    let started = Instant::now();
    let rec = closed_loop_gets(addrs, connections, Stop::new(limit), Reads::Healthz).await;
    Measured {
        name: "healthz".into(),
        recorder: rec,
        expected: vec![200],
        ops: None,
        elapsed: started.elapsed(),
        paced_at: None,
    }
}

pub async fn opendata(
    addrs: Arc<[SocketAddr]>,
    stores: usize,
    connections: usize,
    limit: Limit,
) -> Measured {
    let started = Instant::now();
    let reads = Reads::OpenData { stores };
    let rec = closed_loop_gets(addrs, connections, Stop::new(limit), reads).await;
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
    addrs: Arc<[SocketAddr]>,
    reads: Reads,
    per_second: u64,
    connections: usize,
    stop: Stop,
) -> Recorder {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let recs = run_users(connections, |u| {
        let (stop, next) = (stop.clone(), next.clone());
        let addr = pick(&addrs, u);
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
                let p = reads.path(&mut rng);
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
    let recs = run_users(connections, |u| {
        let (stop, shared, logged_in) = (stop.clone(), shared.clone(), logged_in.clone());
        async move {
            let mut conn = Connection::new(shared.addr_for(u));
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
/// the freshness probe books and watches the open data, and, when asked,
/// paced open-data reads run too.
pub async fn rush(shared: Arc<Shared>, name: &str, rush: Rush) -> RushOutcome {
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
        let (addrs, stop) = (shared.addrs(), stop.clone());
        let reads = Reads::OpenData {
            stores: shared.prepared.store_codes.len(),
        };
        tokio::spawn(
            async move { paced_reads(addrs, reads, rate, rush.read_connections, stop).await },
        )
    });
    let probe_task = tokio::spawn(freshness_probe(shared.clone(), stop.clone()));

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
    let reserved = reservations.load(Ordering::Relaxed);
    let mut rows = vec![
        Measured {
            name: format!("{name}: reserve (POST)"),
            recorder: posts,
            expected: vec![303],
            ops: Some(reserved),
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
    let freshness = probe_task.await.unwrap_or_default();
    RushOutcome {
        rows,
        reservations: reserved,
        elapsed,
        freshness,
    }
}

/// Everyone on one window: each user takes the next unused citizen and posts
/// the reservation form of the hot store's one window straight away, with
/// the CSRF token its session was given (no page first), then the next
/// citizen, until the phase ends. It measures the booking where every
/// request wants the same rows.
pub async fn hot_window(
    shared: Arc<Shared>,
    name: &str,
    connections: usize,
    limit: Limit,
) -> RushOutcome {
    let started = Instant::now();
    let stop = Stop::new(limit);
    let reservations = Arc::new(AtomicU64::new(0));
    let Some(window) = shared.prepared.hot_window else {
        return RushOutcome {
            rows: Vec::new(),
            reservations: 0,
            elapsed: started.elapsed(),
            freshness: Vec::new(),
        };
    };
    let recs = run_users(connections, |u| {
        let (shared, stop, reservations) = (shared.clone(), stop.clone(), reservations.clone());
        async move { hot_user(shared, u, window, stop, reservations).await }
    })
    .await;
    let elapsed = started.elapsed();
    let reserved = reservations.load(Ordering::Relaxed);
    RushOutcome {
        rows: vec![Measured {
            name: format!("{name}: reserve (POST)"),
            recorder: recs.into_iter().next().unwrap_or_default(),
            expected: vec![303],
            ops: Some(reserved),
            elapsed,
            paced_at: None,
        }],
        reservations: reserved,
        elapsed,
        freshness: Vec::new(),
    }
}

async fn hot_user(
    shared: Arc<Shared>,
    u: usize,
    window: i64,
    stop: Stop,
    reservations: Arc<AtomicU64>,
) -> Vec<Recorder> {
    let mut conn = Connection::new(shared.addr_for(u));
    let mut posts = Recorder::default();
    let window = window.to_string();
    let token = format!("surge-hot-{u}");
    while !stop.is_over() {
        let Some(citizen) = log_in_next(&shared, &stop, &mut conn, 12, Some(&token)) else {
            break;
        };
        let booking = Booking {
            citizen_id: citizen,
            window: &window,
            token: &token,
            hard_deadline: stop.deadline + RESOLVE_GRACE,
        };
        post_booking(&shared, &mut conn, &mut posts, &booking, &reservations).await;
    }
    vec![posts]
}

/// What one rush measured.
#[derive(Debug)]
pub struct RushOutcome {
    pub rows: Vec<Measured>,
    /// Acknowledged reservations (the rush's, not the probe's).
    pub reservations: u64,
    pub elapsed: Duration,
    /// Per probe and instance, the time from the booking's acknowledgement
    /// until that instance's open data showed it; `None`: not within
    /// [`FRESHNESS_LIMIT`].
    pub freshness: Vec<Option<Duration>>,
}

/// How a probe's booking ended.
enum Probe {
    /// Answered 303, at this instant.
    Acknowledged(Instant),
    /// Answered otherwise (the window closed, say): nothing booked.
    Refused,
    /// No answer in time: booked or not, nobody knows.
    Unknown,
}

/// The open-data freshness probe: one at a time, a citizen of the freshness
/// store books one mask there (today's window, so today's stock moves) on one
/// instance after the other; then every instance's `/opendata/stock.json` is
/// read (conditionally, every 10 ms) until it shows that store's `remain`
/// lowered by every probe so far. Runs until the rush ends (at least one
/// probe).
async fn freshness_probe(shared: Arc<Shared>, stop: Stop) -> Vec<Option<Duration>> {
    let mut samples = Vec::new();
    let Some(store) = &shared.prepared.freshness else {
        return samples;
    };
    let addrs = shared.addrs();
    let mut readers: Vec<StockReader> = addrs.iter().map(|a| StockReader::new(*a)).collect();
    // At least one probe, however short the rush.
    let mut tried = 0;
    while tried == 0 || !stop.is_over() {
        tried += 1;
        let n = shared.next_probe.fetch_add(1, Ordering::Relaxed);
        let Some(citizen) = store.citizens.get(n) else {
            break;
        };
        let at = match probe_booking(&shared, pick(&addrs, n), n, citizen, &store.code).await {
            Probe::Acknowledged(at) => at,
            Probe::Refused => continue,
            // What the store's remain should be is no longer known.
            Probe::Unknown => break,
        };
        let booked = shared
            .probe_booked
            .fetch_add(PROBE_QUANTITY, Ordering::Relaxed)
            + PROBE_QUANTITY;
        let expected = store.supply - booked;
        for reader in &mut readers {
            samples.push(reader.wait_until(&store.code, expected, at).await);
        }
    }
    samples
}

/// One probe's booking, as the rush books: the store page for the form's
/// token and window, then the form, asked again after a 503/429 or no answer.
async fn probe_booking(
    shared: &Shared,
    addr: SocketAddr,
    n: usize,
    citizen: &Citizen,
    code: &str,
) -> Probe {
    let user = SessionUser::new(
        citizen.id,
        Role::Citizen,
        citizen.name.clone(),
        0,
        chrono::Utc::now(),
    );
    let Ok(cookie) = session_cookie(&shared.cookie_key, &user) else {
        return Probe::Refused;
    };
    let mut conn = Connection::new(addr);
    conn.jar.insert(SESSION_COOKIE, &cookie);
    conn.forwarded_for = Some(client::address(12, n));
    let give_up = Instant::now() + RESOLVE_GRACE;
    let path = format!("/stores/{code}");
    let page = loop {
        let wait = match conn.get(&path).await {
            Ok(a) if a.status == StatusCode::OK => break a,
            Ok(a) => match planned_wait(&a) {
                Some(wait) => wait,
                None => {
                    tracing::warn!(status = %a.status, "the freshness store's page");
                    return Probe::Refused;
                }
            },
            Err(_) => Duration::from_millis(100),
        };
        if Instant::now() + wait > give_up {
            return Probe::Refused;
        }
        tokio::time::sleep(wait).await;
    };
    let text = page.text();
    let (Some(token), Some(window)) = (
        client::csrf_token(text).map(str::to_owned),
        client::hidden_values(text, "window_id")
            .next()
            .map(str::to_owned),
    ) else {
        tracing::warn!("the freshness store's page has no reserve form");
        return Probe::Refused;
    };
    let request_id = format!("surge-probe-{}", citizen.id);
    let quantity = PROBE_QUANTITY.to_string();
    loop {
        let fields = [
            ("csrf_token", token.as_str()),
            ("window_id", window.as_str()),
            ("request_id", request_id.as_str()),
            ("quantity", quantity.as_str()),
        ];
        let wait = match conn.post_form("/reservations", &fields).await {
            Ok(a) if a.status == StatusCode::SEE_OTHER => {
                return Probe::Acknowledged(Instant::now());
            }
            Ok(a) => match planned_wait(&a) {
                Some(wait) => wait,
                None => {
                    tracing::warn!(status = %a.status, "a freshness probe's booking was refused");
                    return Probe::Refused;
                }
            },
            Err(_) => Duration::from_millis(100),
        };
        if Instant::now() + wait > give_up {
            return Probe::Unknown;
        }
        tokio::time::sleep(wait).await;
    }
}

/// One instance's `/opendata/stock.json`, read conditionally (`ETag`).
struct StockReader {
    conn: Connection,
    etag: Option<String>,
    body: Option<hyper::body::Bytes>,
}

#[derive(serde::Deserialize)]
struct StockJson {
    stores: Vec<StockStore>,
}

#[derive(serde::Deserialize)]
struct StockStore {
    code: String,
    remain: Option<i64>,
}

impl StockReader {
    fn new(addr: SocketAddr) -> StockReader {
        StockReader {
            conn: Connection::new(addr),
            etag: None,
            body: None,
        }
    }

    /// The time from `since` until an answer showed `code` with `remain` at
    /// most `expected`; `None` past [`FRESHNESS_LIMIT`].
    async fn wait_until(&mut self, code: &str, expected: i64, since: Instant) -> Option<Duration> {
        let deadline = since + FRESHNESS_LIMIT;
        loop {
            let answer = self
                .conn
                .get_if_none_match(STOCK_JSON, self.etag.as_deref())
                .await;
            let answered = Instant::now();
            if let Ok(a) = answer
                && a.status == StatusCode::OK
            {
                self.etag = a.etag;
                self.body = Some(a.body);
            }
            if self
                .body
                .as_deref()
                .and_then(|b| remain_of(b, code))
                .is_some_and(|r| r <= expected)
            {
                return Some(answered.saturating_duration_since(since));
            }
            if answered >= deadline {
                return None;
            }
            tokio::time::sleep(FRESHNESS_POLL).await;
        }
    }
}

/// The `remain` of store `code` in a `stock.json` answer.
fn remain_of(body: &[u8], code: &str) -> Option<i64> {
    let stock: StockJson = serde_json::from_slice(body).ok()?;
    stock.stores.into_iter().find(|s| s.code == code)?.remain
}

/// One rush user: [store page GETs, reservation POSTs].
async fn rush_user(
    shared: Arc<Shared>,
    u: usize,
    stop: Stop,
    reservations: Arc<AtomicU64>,
) -> Vec<Recorder> {
    let mut conn = Connection::new(shared.addr_for(u));
    let (mut pages, mut posts) = (Recorder::default(), Recorder::default());
    let mut rng = StdRng::seed_from_u64(10_000 + u as u64);
    let stores = &shared.prepared.store_codes;
    while !stop.is_over() {
        let Some(citizen) = log_in_next(&shared, &stop, &mut conn, 11, None) else {
            break;
        };
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
        let booking = Booking {
            citizen_id: citizen,
            window: &window,
            token: &token,
            hard_deadline,
        };
        post_booking(&shared, &mut conn, &mut posts, &booking, &reservations).await;
    }
    vec![pages, posts]
}

/// Takes the next unused citizen for a user of `stop`'s phase and gives
/// `conn` their session (with `csrf` as its token when given), speaking from
/// an address of their own (`first.…`: one citizen is one person, so the
/// per-address limits do not take the crowd for one client); their id, or
/// `None` when no citizen is left or the phase is over.
fn log_in_next(
    shared: &Shared,
    stop: &Stop,
    conn: &mut Connection,
    first: u8,
    csrf: Option<&str>,
) -> Option<i64> {
    let i = shared.next_citizen.fetch_add(1, Ordering::Relaxed);
    let citizen = shared.prepared.citizens.get(i)?;
    if !stop.claim() {
        // Not taken after all: nobody else will either (the phase is over).
        return None;
    }
    let user = SessionUser::new(
        citizen.id,
        Role::Citizen,
        citizen.name.clone(),
        0,
        chrono::Utc::now(),
    );
    let cookie = session_cookie_with(&shared.cookie_key, &user, csrf).ok()?;
    conn.jar.clear();
    conn.jar.insert(SESSION_COOKIE, &cookie);
    conn.forwarded_for = Some(client::address(first, i));
    Some(citizen.id)
}

/// One booking a virtual user posts.
struct Booking<'a> {
    citizen_id: i64,
    window: &'a str,
    /// The session's CSRF token.
    token: &'a str,
    /// When to stop asking for an answer (then the booking is unresolved).
    hard_deadline: Instant,
}

/// Posts `booking`'s reservation form with a fresh request id, again with the
/// same id until it has an answer (a second post of a booked request answers
/// the same reservation), or until its deadline; an acknowledged reservation
/// is counted and kept for the checks.
async fn post_booking(
    shared: &Shared,
    conn: &mut Connection,
    posts: &mut Recorder,
    booking: &Booking<'_>,
    reservations: &AtomicU64,
) {
    let request_id = format!("surge-{}", booking.citizen_id);
    let quantity = prepare::RUSH_QUANTITY.to_string();
    loop {
        let fields = [
            ("csrf_token", booking.token),
            ("window_id", booking.window),
            ("request_id", request_id.as_str()),
            ("quantity", quantity.as_str()),
        ];
        let answer = timed(posts, || conn.post_form("/reservations", &fields)).await;
        let wait = match &answer {
            Some(a) if a.status == StatusCode::SEE_OTHER => {
                match a.location.as_deref().and_then(client::reservation_id) {
                    Some(id) => {
                        reservations.fetch_add(1, Ordering::Relaxed);
                        shared
                            .acknowledged
                            .lock()
                            .await
                            .push((booking.citizen_id, id));
                    }
                    None => {
                        tracing::warn!(location = ?a.location, "a 303 not to a reservation");
                    }
                }
                return;
            }
            Some(a) => match planned_wait(a) {
                Some(wait) => wait,
                // A refusal: an answer, nothing booked.
                None => return,
            },
            None => Duration::from_millis(100),
        };
        if Instant::now() + wait > booking.hard_deadline {
            shared.unresolved.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(wait).await;
    }
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
    let mut conn = Connection::new(shared.addr_for(p));
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
    fn open_data_reads_cover_every_page_and_the_whole_country() {
        let mut rng = StdRng::seed_from_u64(1);
        let paths: Vec<String> = (0..4_000)
            .map(|_| opendata_path(&mut rng, 25_000))
            .collect();
        assert!(
            paths.iter().any(|p| p.contains("page=250&")),
            "the last page"
        );
        assert!(!paths.iter().any(|p| p.contains("page=251&")));
        let far_south = paths.iter().any(|p| {
            p.split("lat=")
                .nth(1)
                .and_then(|l| l.split('&').next()?.parse::<f64>().ok())
                .is_some_and(|lat| lat < 34.0)
        });
        assert!(far_south, "Jeju's latitudes are asked for too");
    }

    #[test]
    fn a_store_remain_is_read_from_stock_json() {
        let body = br#"{"created_at":"2026/12/01 10:00:00","count":2,"stores":[
            {"code":"20000000","name":"a","remain":250,"reservable":175,"walk_in":75},
            {"code":"20000001","name":"b","remain":null}]}"#;
        assert_eq!(remain_of(body, "20000000"), Some(250));
        assert_eq!(remain_of(body, "20000001"), None);
        assert_eq!(remain_of(body, "20000002"), None);
        assert_eq!(remain_of(b"not json", "20000000"), None);
    }

    #[test]
    fn users_are_spread_over_the_instances_round_robin() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(pick(&[a, b], 0), a);
        assert_eq!(pick(&[a, b], 3), b);
        assert_eq!(pick(&[], 3).port(), 0);
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
