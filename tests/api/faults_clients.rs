//! Fault drills on clients, against the real binary with a few thousand
//! stores, so that the open-data answers and the map are large:
//!
//! - A thousand connections that ask for the largest answers, pipelined, and
//!   never read them. Before, each kept a private copy of an answer in the
//!   process for as long as it stayed open (1.41 GB for a thousand at
//!   national scale), and the memory stayed after they left. Now an answer
//!   goes to a connection in slices of the one shared copy, a connection
//!   whose client does not read is dropped after `SEND_TIMEOUT`, and the
//!   allocator gives the freed memory back.
//! - A thousand connections that send their request head a byte at a time
//!   (slowloris): each is answered 408 and closed when its head has not come
//!   within the request timeout, and the pages answer meanwhile.
//!
//! Memory is the server's resident set (`/proc/PID/status`), in the debug
//! build the tests run; docs/reliability.md has the release figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use mask_reservation::db::write_tx;
use mask_reservation::policy::Policy;
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::supply::allocation::{NewDay, allocate_days};
use mask_reservation::web::connections::REQUEST_HEAD_TIMEOUT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::server::{Binary, Server, rss_of};
use crate::common::{TestDatabase, eventually};

/// Stores in the drills' country: `stock.json` is then about a megabyte, and
/// the map lists its most (200).
const STORES: usize = 5_000;

/// Connections in each drill.
const CLIENTS: usize = 1_000;

const MB: u64 = 1024 * 1024;

/// The most the server may hold while the clients that never read are
/// connected.
const PEAK_LIMIT: u64 = 200 * MB;

/// What it must be back under once they are gone.
const AFTER_LIMIT: u64 = 100 * MB;

/// The send timeout the first drill runs the server with: short, to keep the
/// drill short.
const SEND_TIMEOUT_SECS: u64 = 8;

/// A database with [`STORES`] stores in Seoul, each with supply today.
struct Country {
    _database: TestDatabase,
    binary: Binary,
}

fn country() -> Country {
    let database = TestDatabase::fresh();
    let rows: Vec<StoreRow> = (0..STORES)
        .map(|i| StoreRow {
            code: store_code(i),
            name: store_name(i),
            addr: format!("서울특별시 중구 세종대로 {} 건강빌딩 1층", i + 1),
            store_type: "01".into(),
            lat: 37.55 + (i % 100) as f64 * 0.0002,
            lng: 126.97 + (i / 100) as f64 * 0.0002,
            phone: Some("02-123-4567".into()),
            region: "서울특별시".into(),
        })
        .collect();
    let mut conn = database.connect();
    let ids = write_tx(&mut conn, |tx| insert_all(tx, &rows)).unwrap();
    // Today by the real clock, as the server will see it: the supply only
    // makes the rows longer; no assertion depends on the day.
    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Seoul)
        .date_naive();
    let days: Vec<NewDay> = ids
        .iter()
        .map(|&store_id| NewDay {
            store_id,
            day: today,
            supply: 250,
        })
        .collect();
    write_tx(&mut conn, |tx| {
        allocate_days(tx, &Policy::default(), &days, None, Utc::now().naive_utc())
    })
    .unwrap();
    let binary = Binary::new(&database.url());
    Country {
        _database: database,
        binary,
    }
}

fn store_code(i: usize) -> String {
    format!("{:08}", 11_000_000 + i)
}

fn store_name(i: usize) -> String {
    format!("온누리건강약국 {i}호점")
}

/// A thousand sockets here and as many in the server, which inherits this
/// process's limit: the soft limit is raised to the hard one.
fn enough_open_files() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        soft >= 2 * CLIENTS as u64 + 256,
        "the open-file limit ({soft}) is too low for {CLIENTS} connections each side"
    );
}

/// The server, up, its open-data snapshot loaded.
async fn serve(country: &Country, envs: &[(&str, &str)]) -> Server {
    let server = country.binary.serve(envs);
    server.healthy().await;
    server.until_ok("/opendata/stock.csv").await;
    server
}

/// The server's largest resident memory from now until [`PeakRss::finish`].
struct PeakRss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let peak = Arc::new(AtomicU64::new(rss_of(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        PeakRss { peak, stop, task }
    }

    fn now(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// The server's end of its established connections on `port` (from
/// `/proc/net/tcp`: the server listens on 127.0.0.1).
fn established(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local = fields.next().unwrap_or_default();
            let state = fields.nth(1).unwrap_or_default();
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && state == "01"
        })
        .count()
}

/// What one client that never reads asks for, pipelined in one write: the
/// largest open-data answers twice, the map for one client in ten, a store
/// page for one in fifty.
fn greedy_requests(i: usize) -> String {
    let mut paths = vec![
        "/opendata/stock.json".to_owned(),
        "/opendata/stock.csv".to_owned(),
        "/corona19-masks/v1/sales/json?perPage=5000".to_owned(),
    ];
    let turn = i % paths.len();
    paths.rotate_left(turn);
    paths.extend(paths.clone());
    if i.is_multiple_of(10) {
        paths.insert(1, "/map".to_owned());
    }
    if i.is_multiple_of(50) {
        paths.insert(1, format!("/stores/{}", store_code(i)));
    }
    paths
        .iter()
        .map(|path| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: drill\r\n\r\n"))
        .collect()
}

/// A visitor who reads what they asked for: the pages answer, whole and right.
async fn pages_answer(server: &Server) {
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(server.url(path)).send();

    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);

    let csv = get("/opendata/stock.csv").await.unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert_eq!(csv.lines().count(), STORES + 1, "a header and every store");
    assert!(csv.contains(&store_code(STORES - 1)), "the last store");

    let json = get("/opendata/stock.json").await.unwrap();
    assert_eq!(json.status(), 200);
    let json: serde_json::Value = json.json().await.unwrap();
    assert_eq!(json["count"], STORES);

    let i = 4_321;
    let page = get(&format!("/stores/{}", store_code(i))).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&store_name(i)));

    let map = get("/map").await.unwrap();
    assert_eq!(map.status(), 200);
    assert!(map.text().await.unwrap().contains("data-remain-stat"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_that_never_read_hold_little_and_are_dropped_and_the_memory_comes_back()
{
    enough_open_files();
    let country = country();
    let timeout = SEND_TIMEOUT_SECS.to_string();
    let server = serve(&country, &[("WORKERS", "2"), ("SEND_TIMEOUT", &timeout)]).await;
    let pid = server.pid();
    let before = server.rss_bytes();
    let peak = PeakRss::watch(pid);

    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        stream
            .write_all(greedy_requests(i).as_bytes())
            .await
            .unwrap();
        clients.push(stream);
    }
    // Answered while the thousand hold their connections.
    pages_answer(&server).await;
    let held = established(server.port);

    // Half of them leave; the other half stay, reading nothing: the server
    // drops those itself once their answers have waited SEND_TIMEOUT.
    let mut stay: Vec<TcpStream> = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        if i % 2 == 1 {
            stay.push(client);
        }
    }
    eventually(
        Duration::from_secs(45),
        "the server to drop every connection",
        || async { (established(server.port) == 0).then_some(()) },
    )
    .await;
    let peak_while_held = peak.now();

    // The memory comes back while nobody asks for anything.
    let gone = Instant::now();
    let mut after = rss_of(pid);
    while after >= AFTER_LIMIT && gone.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = rss_of(pid);
    }
    let back_in = gone.elapsed();
    let peak = peak.finish().await;
    eprintln!(
        "never-reading clients: before {} MB, peak {} MB, after {} MB ({:.0?} after the last \
         was dropped); {held} connections held at the visitor's check",
        before / MB,
        peak / MB,
        after / MB,
        back_in,
    );
    assert!(
        peak <= PEAK_LIMIT,
        "peak {} MB (while held: {} MB)\n{}",
        peak / MB,
        peak_while_held / MB,
        server.log_text()
    );
    assert!(
        after < AFTER_LIMIT,
        "still {} MB {back_in:.0?} after the last connection was dropped",
        after / MB
    );
    drop(stay);
    pages_answer(&server).await;
}

/// A slowloris client: sends `head` a byte every half second, and reads
/// whatever comes back until the server closes the connection. Returns how
/// long after connecting that was, and what came.
async fn drip(stream: TcpStream, head: String) -> (Duration, String) {
    let connected = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let (mut sent, mut got, mut answered) = (0, Vec::new(), false);
    let mut buf = [0u8; 1024];
    let head = head.into_bytes();
    loop {
        tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    answered = true;
                }
            },
            _ = tick.tick(), if !answered && sent < head.len() => {
                if wr.write_all(&head[sent..=sent]).await.is_err() {
                    answered = true;
                }
                sent += 1;
            }
        }
    }
    (
        connected.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slowloris_clients_are_closed_at_the_request_timeout_and_the_pages_answer() {
    enough_open_files();
    let country = country();
    let server = serve(&country, &[("WORKERS", "2")]).await;
    let before = server.rss_bytes();
    let peak = PeakRss::watch(server.pid());
    // About 70 bytes at two a second: 35 s, well past the request timeout.
    let head = format!(
        "GET /stores/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n\r\n",
        store_code(7)
    );
    assert!(Duration::from_millis(500) * head.len() as u32 > 3 * REQUEST_HEAD_TIMEOUT);
    let mut slow = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        slow.push(tokio::spawn(drip(stream, head.clone())));
    }
    // While the thousand drip, a visitor's pages answer, whole and right.
    pages_answer(&server).await;
    let held = established(server.port);

    let mut ended = Vec::with_capacity(CLIENTS);
    for task in slow {
        ended.push(task.await.unwrap());
    }
    let peak = peak.finish().await;
    let (first, last) = (
        ended.iter().map(|(t, _)| *t).min().unwrap(),
        ended.iter().map(|(t, _)| *t).max().unwrap(),
    );
    eprintln!(
        "slowloris: {held} connections held at the visitor's check; closed {first:.1?}–{last:.1?} \
         after connecting; server {} MB before, peak {} MB",
        before / MB,
        peak / MB
    );
    for (after, answer) in &ended {
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "closed after {after:?} with {answer:?}"
        );
        // Closed by the request timeout: not before it (actix reckons the
        // deadline from a clock it updates every 500 ms, so up to that much
        // early), and not long after.
        assert!(
            *after >= REQUEST_HEAD_TIMEOUT - Duration::from_secs(1),
            "closed after {after:?}"
        );
        assert!(*after <= 3 * REQUEST_HEAD_TIMEOUT, "closed after {after:?}");
    }
    assert_eq!(established(server.port), 0);
    pages_answer(&server).await;
}
