//! Does a login storm slow everyone else? Drives a running server over loopback
//! with two loads and prints rates and latency percentiles:
//!
//! 1. `readers` citizens' browsers loading `/reservations` as fast as they can,
//!    first alone, then
//! 2. the same, while `logins` clients post the login form as fast as they can.
//!
//! Each login names an address that has no account (one per attempt), so it
//! costs the full argon2 verification (the dummy hash) and never trips the
//! per-account limit; each carries its own `X-Forwarded-For`, so the server must
//! run with `TRUSTED_PROXIES=1` for the per-address limit not to answer 429
//! instead. A login client told to come back later (503 with `Retry-After`)
//! waits as long as it is told, as a person at the waiting page would. Both
//! phases end after `--seconds` or `--max-requests`, whichever comes first.
//!
//! ```text
//! cargo run --release --example login_storm -- \
//!     --base http://127.0.0.1:8080 --citizen citizen@example.com:PASSWORD
//! ```
//! See `docs/benchmarks.md` for the full procedure and recorded figures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::redirect::Policy;
use tokio::sync::Mutex;

#[derive(Parser, Debug)]
struct Args {
    /// The server, on a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// A citizen's `email:password` (the demo citizen printed at start).
    #[arg(long)]
    citizen: String,
    /// Clients loading `/reservations` at once.
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// Clients posting the login form at once, in the second phase.
    #[arg(long, default_value_t = 64)]
    logins: usize,
    /// Length of each phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Requests per phase at most (both loads together).
    #[arg(long, default_value_t = 500_000)]
    max_requests: usize,
}

/// What one load observed: latency of each answered request, and answers by status.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    failures: usize,
}

impl Tally {
    fn report(&mut self, name: &str, elapsed: Duration) {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        let pct = |p: f64| {
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1)) - 1;
            self.latencies
                .get(i)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "  {name:<13} {n:>7} answers  {:>8.1}/s   p50 {:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms   statuses {:?}   failures {}",
            n as f64 / elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0),
            self.statuses,
            self.failures,
        );
    }
}

/// Shared by every client of a phase: when to stop, and how many requests so far.
struct Budget {
    deadline: Instant,
    left: AtomicUsize,
    stop: AtomicBool,
}

impl Budget {
    fn take(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        let ok = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !ok {
            self.stop.store(true, Ordering::Relaxed);
        }
        ok
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

fn csrf_in(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).context("no CSRF token in the page")? + marker.len();
    let end = html[start..].find('"').context("unterminated CSRF token")? + start;
    Ok(html[start..end].to_owned())
}

async fn csrf_token(c: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    csrf_in(&c.get(format!("{base}/login")).send().await?.text().await?)
}

/// A client logged in as the citizen.
async fn citizen(base: &str, email: &str, password: &str) -> anyhow::Result<reqwest::Client> {
    let c = client()?;
    let token = csrf_token(&c, base).await?;
    let res = c
        .post(format!("{base}/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    if res.status() != 303 {
        bail!("the citizen could not log in: {}", res.status());
    }
    Ok(c)
}

async fn read_loop(
    c: reqwest::Client,
    base: String,
    budget: Arc<Budget>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut local = Tally::default();
    while budget.take() {
        let started = Instant::now();
        match c.get(format!("{base}/reservations")).send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let _ = res.bytes().await;
                local.latencies.push(started.elapsed());
                *local.statuses.entry(status).or_default() += 1;
            }
            Err(_) => local.failures += 1,
        }
    }
    merge(&tally, local).await;
}

/// Logins answered (the password checked) and logins sent to the waiting page
/// are tallied apart: their latencies have nothing in common.
async fn login_loop(
    id: usize,
    base: String,
    budget: Arc<Budget>,
    tally: Arc<Mutex<Tally>>,
    waiting: Arc<Mutex<Tally>>,
) -> anyhow::Result<()> {
    let c = client()?;
    let mut token = csrf_token(&c, &base).await?;
    let mut local = Tally::default();
    let mut refused = Tally::default();
    let mut n = 0usize;
    while budget.take() {
        n += 1;
        let email = format!("storm-{id}-{n}@example.com");
        // A distinct client address per attempt: 10.x.y.z from (id, n).
        let forwarded = format!("10.{}.{}.{}", id % 256, (n / 256) % 256, n % 256);
        let started = Instant::now();
        let sent = c
            .post(format!("{base}/login"))
            .header("X-Forwarded-For", forwarded)
            .form(&[
                ("email", email.as_str()),
                ("password", "not the password"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        match sent {
            Ok(res) => {
                let status = res.status().as_u16();
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                let _ = res.bytes().await;
                let into = if status == 503 {
                    &mut refused
                } else {
                    &mut local
                };
                into.latencies.push(started.elapsed());
                *into.statuses.entry(status).or_default() += 1;
                if status == 403 {
                    token = csrf_token(&c, &base).await?;
                }
                // Told to come back later, a person does (the waiting page says
                // when); a client that retried at once would only measure how
                // fast the refusal is.
                if let (503, Some(secs)) = (status, retry_after) {
                    let wake = Instant::now() + Duration::from_secs(secs);
                    tokio::time::sleep_until(wake.min(budget.deadline).into()).await;
                }
            }
            Err(_) => local.failures += 1,
        }
    }
    merge(&tally, local).await;
    merge(&waiting, refused).await;
    Ok(())
}

async fn merge(into: &Mutex<Tally>, from: Tally) {
    let mut t = into.lock().await;
    t.latencies.extend(from.latencies);
    for (status, n) in from.statuses {
        *t.statuses.entry(status).or_default() += n;
    }
    t.failures += from.failures;
}

async fn phase(args: &Args, readers: &[reqwest::Client], logins: usize) -> anyhow::Result<()> {
    let budget = Arc::new(Budget {
        deadline: Instant::now() + Duration::from_secs(args.seconds),
        left: AtomicUsize::new(args.max_requests),
        stop: AtomicBool::new(false),
    });
    let pages = Arc::new(Mutex::new(Tally::default()));
    let login_tally = Arc::new(Mutex::new(Tally::default()));
    let waiting = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in readers {
        tasks.push(tokio::spawn(read_loop(
            c.clone(),
            args.base.clone(),
            budget.clone(),
            pages.clone(),
        )));
    }
    let mut login_tasks = Vec::new();
    for id in 0..logins {
        login_tasks.push(tokio::spawn(login_loop(
            id,
            args.base.clone(),
            budget.clone(),
            login_tally.clone(),
            waiting.clone(),
        )));
    }
    for t in tasks {
        t.await?;
    }
    for t in login_tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    pages.lock().await.report("/reservations", elapsed);
    if logins > 0 {
        login_tally.lock().await.report("POST /login", elapsed);
        waiting.lock().await.report("  waiting page", elapsed);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let host = url::Url::parse(&args.base)?
        .host_str()
        .map(str::to_owned)
        .unwrap_or_default();
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host.as_str()) {
        bail!("this load is for a server on this machine only (got {host})");
    }
    let base = args.base.trim_end_matches('/').to_owned();
    let (email, password) = args
        .citizen
        .split_once(':')
        .context("--citizen is email:password")?;
    // One login shared by every reader (clones share the cookie store): the
    // account's login limit allows only a few logins per quarter hour.
    let session = citizen(&base, email, password).await?;
    let readers = vec![session; args.readers];
    let args = Args { base, ..args };

    println!(
        "phase 1: {} readers alone, {} s at most",
        args.readers, args.seconds
    );
    phase(&args, &readers, 0).await?;
    println!(
        "phase 2: {} readers while {} clients log in, {} s at most",
        args.readers, args.logins, args.seconds
    );
    phase(&args, &readers, args.logins).await?;
    Ok(())
}
