//! Two instances of the real binary on one PostgreSQL database, behind
//! Debian's nginx running the shipped `deploy/nginx/mask-reservation.conf`
//! (`common::nginx`), each instance started as `deploy/env` configures them:
//! one `SECRET_KEY`, `TRUSTED_PROXIES=1`. What must hold there:
//!
//! - a login made through nginx is valid on both instances;
//! - the waiting room lets tickets in by the time they were issued, whichever
//!   instance issued them and whichever one a holder comes back to;
//! - request limits count the address nginx saw, and a client cannot pick
//!   another by sending an `X-Forwarded-For` of its own;
//! - a rush for the last places, spread over both instances, books exactly
//!   the places there are.
//!
//! PostgreSQL only (SQLite is one machine's, one instance's database): on
//! SQLite those tests return at once. The shipped settings are checked
//! against what the app reads on both backends.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use ::surge::phases::{SESSION_COOKIE, session_cookie};
use ::surge::prepare::{self, Prepared, Sizes};
use clap::{CommandFactory, Parser};
use diesel::prelude::*;
use futures_util::future::join_all;
use mask_reservation::accounts::Role;
use mask_reservation::config::{Config, ConfigArgs, SecretKey, TrustedProxies};
use mask_reservation::db::schema::rate_limits;
use mask_reservation::db::{Db, PoolOptions};
use mask_reservation::state::Keys;
use mask_reservation::web::session::SessionUser;
use mask_reservation::web::waiting_room::ticket::{self, Ticket};
use reqwest::redirect::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::db::postgres_server;
use crate::common::nginx::Nginx;
use crate::common::server::{Binary, Server};
use crate::common::{
    TestDatabase, Visitor, assert_invariants, assert_window_went_to, eventually, extract_csrf,
    fixtures, repo_path, retry_after,
};

/// Two instances and nginx in front, on a database prepared with citizens
/// (verified accounts with [`prepare::PASSWORD`]) and tomorrow's supply.
/// Dropped in this order: nginx, the instances, then the database.
struct Fleet {
    nginx: Nginx,
    instances: [Server; 2],
    db: Db,
    keys: Keys,
    prepared: Prepared,
    _binary: Binary,
    _database: TestDatabase,
}

impl Fleet {
    /// `None` on SQLite. `envs` are added to every instance's settings.
    async fn start(citizens: usize, envs: &[(&str, &str)]) -> Option<Fleet> {
        postgres_server()?;
        let database = TestDatabase::fresh();
        let binary = Binary::new(&database.url());
        let keys = Keys::derive(SecretKey::from_base64(&binary.secret).unwrap().bytes());
        let sizes = Sizes {
            stores: 1,
            citizens,
            pickup_stores: 0,
            pickups_per_store: 0,
            freshness_probes: 0,
            hot_window: false,
        };
        let prepared = prepare::prepare(
            &mut database.connect(),
            sizes,
            &keys.national_id,
            chrono_tz::Asia::Seoul,
        )
        .unwrap();
        // As deploy/env has them (one SECRET_KEY: the binary's), with a
        // smaller pool, and a longer database wait for a machine that also
        // runs the other tests.
        let mut settings = vec![
            ("TRUSTED_PROXIES", "1"),
            ("DB_POOL_SIZE", "8"),
            ("WORKERS", "2"),
            ("DB_TIMEOUT", "10"),
        ];
        settings.extend_from_slice(envs);
        let instances = [binary.serve(&settings), binary.serve(&settings)];
        for instance in &instances {
            instance.healthy().await;
        }
        let nginx = Nginx::start([instances[0].port, instances[1].port]).await;
        let db = Db::new(
            &database.url(),
            PoolOptions {
                max_size: 2,
                acquire_timeout: Duration::from_secs(10),
            },
        );
        Some(Fleet {
            nginx,
            instances,
            db,
            keys,
            prepared,
            _binary: binary,
            _database: database,
        })
    }

    /// `127.0.0.1:PORT` of each instance, as nginx's log names them.
    fn upstreams(&self) -> BTreeSet<String> {
        self.instances
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The instances that answered requests matching `matches`, once nginx
    /// has logged `count` of them.
    async fn answered_by(
        &self,
        count: usize,
        matches: impl Fn(&crate::common::nginx::Access) -> bool,
    ) -> Vec<String> {
        eventually(Duration::from_secs(10), "nginx's access log", || {
            let lines: Vec<String> = self
                .nginx
                .access_log()
                .into_iter()
                .filter(|a| matches(a))
                .map(|a| a.upstream)
                .collect();
            async move { (lines.len() >= count).then_some(lines) }
        })
        .await
    }

    /// A browser at nginx, logged in as the `i`-th citizen by a session
    /// cookie sealed with the instances' key (no argon2 login each).
    fn citizen(&self, i: usize) -> Visitor {
        let c = &self.prepared.citizens[i];
        let user = SessionUser::new(c.id, Role::Citizen, c.name.clone(), 0, chrono::Utc::now());
        let cookie = session_cookie(&self.keys.cookie, &user).unwrap();
        let visitor = Visitor::new(&self.nginx.base);
        visitor.jar.add_cookie_str(
            &format!("{SESSION_COOKIE}={cookie}; Path=/"),
            &self.nginx.base.parse().unwrap(),
        );
        visitor
    }
}

/// The same browser, cookies and all, speaking to `server` directly.
fn straight_to(visitor: &Visitor, server: &Server) -> Visitor {
    Visitor {
        address: server.base.clone(),
        ..visitor.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_through_nginx_is_valid_on_both_instances() {
    let Some(f) = Fleet::start(1, &[]).await else {
        return;
    };
    let name = &f.prepared.citizens[0].name;
    let v = Visitor::new(&f.nginx.base);
    let res = v.login(&prepare::citizen_email(0), prepare::PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/reservations");

    // The cookie nginx passed on opens the citizen's page on each instance.
    for instance in &f.instances {
        let res = straight_to(&v, instance).get("/reservations").await;
        assert_eq!(res.status(), 200, "{}", instance.base);
        let html = res.text().await.unwrap();
        assert!(html.contains(name.as_str()), "{}: {html}", instance.base);
    }
    // Through nginx, turn about: both instances answer, both know the session.
    for _ in 0..4 {
        assert_eq!(v.get("/reservations").await.status(), 200);
    }
    let answered = f
        .answered_by(4, |a| a.path == "/reservations" && a.method == "GET")
        .await;
    assert_eq!(
        answered.iter().cloned().collect::<BTreeSet<_>>(),
        f.upstreams(),
        "{answered:?}"
    );
    assert_eq!(
        Visitor::new(&f.nginx.base)
            .get("/reservations")
            .await
            .status(),
        303,
        "without the cookie, to the login page"
    );

    // Plain HTTP only sends to HTTPS, the path and query kept.
    let plain = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let res = plain
        .get(format!(
            "{}/stores?q=%EC%A4%91%EA%B5%AC",
            f.nginx.plain_base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        "https://127.0.0.1/stores?q=%EC%A4%91%EA%B5%AC"
    );
}

/// What the English waiting page says before the visitor's number.
const NUMBER_EN: &str = "You are number";

/// A visit to a held page through nginx, in English: its status, the number
/// the waiting page gives (if it is one), and the ticket it set (if any).
async fn visit(v: &Visitor, path: &str) -> (u16, Option<usize>, Option<String>) {
    let res = v.get_with_lang(path, "en").await;
    let status = res.status().as_u16();
    let ticket = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| h.strip_prefix(&format!("{}=", ticket::COOKIE_NAME)))
        .map(|h| h.split(';').next().unwrap().to_owned());
    let html = res.text().await.unwrap();
    let position = html.find(NUMBER_EN).map(|at| {
        let rest = &html[at + NUMBER_EN.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    });
    (status, position, ticket)
}

/// A `POST /login` sent straight to an instance, its body held back: the
/// instance's one waiting-room slot stays taken until [`Held::release`].
/// Straight, because nginx reads a whole body before it passes a request on;
/// the CSRF token in its header, because the CSRF layer, outside the room,
/// would otherwise read the body before the room took the slot.
struct Held {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl Held {
    async fn take(instance: &Server) -> Held {
        let v = Visitor::new(&instance.base);
        let token = v.csrf_token().await;
        let body = b"email=nobody%40example.com&password=not-the-password".to_vec();
        let head = format!(
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\n\
             X-CSRF-Token: {token}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n",
            v.cookie_header(),
            body.len()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", instance.port))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..6]).await.unwrap();
        let metrics = instance.url("/metrics");
        eventually(
            Duration::from_secs(10),
            "the held login in flight",
            || async {
                let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
                text.contains("mask_reservation_waiting_room_in_flight 1")
                    .then_some(())
            },
        )
        .await;
        Held {
            stream,
            rest: body[6..].to_vec(),
        }
    }

    /// Sends the rest of the body; the login is refused (401), and the slot
    /// is free once the answer is here.
    async fn release(mut self) {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            self.stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head);
        assert!(line.starts_with("HTTP/1.1 401"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_lets_tickets_in_by_issue_time_across_both_instances() {
    // One slot per instance, and a held body waits long enough.
    let room = [("WAITING_ROOM_CAPACITY", "1"), ("BODY_READ_TIMEOUT", "60")];
    let Some(f) = Fleet::start(1, &room).await else {
        return;
    };
    let store_page = format!("/stores/{}", f.prepared.store_codes[0]);
    let held = [
        Held::take(&f.instances[0]).await,
        Held::take(&f.instances[1]).await,
    ];
    let decode = |cookie: &str| {
        Ticket::decode(
            cookie,
            &f.keys.waiting_room,
            chrono::Utc::now().timestamp_millis(),
        )
        .expect("a ticket signed with the shared key")
    };

    // Both full: an earlier visitor, then a later one, each given a ticket by
    // the instance nginx sent them to — one each.
    let earlier = Visitor::new(&f.nginx.base);
    let later = Visitor::new(&f.nginx.base);
    let (status, position, cookie) = visit(&earlier, &store_page).await;
    assert_eq!((status, position), (503, Some(1)));
    let earlier_ticket = decode(&cookie.unwrap());
    eventually(Duration::from_secs(5), "the next millisecond", || async {
        (chrono::Utc::now().timestamp_millis() > earlier_ticket.issued_ms).then_some(())
    })
    .await;
    let (status, position, cookie) = visit(&later, &store_page).await;
    // The later visitor's instance has not seen the earlier one yet.
    assert_eq!((status, position), (503, Some(1)));
    let later_ticket = decode(&cookie.unwrap());
    assert!(earlier_ticket.issued_ms < later_ticket.issued_ms);
    let issuers = f.answered_by(2, |a| a.path == store_page).await;
    assert_ne!(issuers[0], issuers[1], "one ticket from each instance");

    // Each comes back (as the waiting page does) and nginx sends each to the
    // other instance: there too the earlier ticket is ahead.
    let (status, position, cookie) = visit(&later, &store_page).await;
    assert_eq!((status, position, cookie), (503, Some(2), None));
    let (status, position, cookie) = visit(&earlier, &store_page).await;
    assert_eq!((status, position, cookie), (503, Some(1), None));
    let visits = f.answered_by(4, |a| a.path == store_page).await;
    assert_eq!(
        visits[2], issuers[0],
        "the later one on the earlier's issuer"
    );
    assert_eq!(
        visits[3], issuers[1],
        "the earlier one on the later's issuer"
    );

    // Both slots free: the earlier ticket goes in on the instance it comes
    // to; on the other, the later ticket still waits for the earlier one.
    for h in held {
        h.release().await;
    }
    let (status, _, _) = visit(&earlier, &store_page).await;
    assert_eq!(status, 200, "the earlier ticket first");
    let (status, position, _) = visit(&later, &store_page).await;
    assert_eq!((status, position), (503, Some(2)), "the later one after it");
    // …and in within seconds, coming back when told to.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = later.get_with_lang(&store_page, "en").await;
        if res.status() == 200 {
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(Instant::now() < deadline, "the later ticket never got in");
        tokio::time::sleep(Duration::from_secs(retry_after(&res))).await;
    }
}

/// A browser whose connections come from `ip` (a loopback address): what
/// nginx sees as its address.
fn browser_at(nginx: &Nginx, ip: &str) -> Visitor {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    Visitor {
        address: nginx.base.clone(),
        client: reqwest::Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        jar,
    }
}

/// A login with a wrong password and the session's CSRF token, with
/// `X-Forwarded-For` if given: its status.
async fn wrong_login(
    (v, token): &(Visitor, String),
    email: &str,
    forwarded_for: Option<&str>,
) -> u16 {
    let mut req = v.client.post(v.url("/login")).form(&[
        ("email", email),
        ("password", "not-the-password"),
        ("csrf_token", token),
    ]);
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_count_the_address_nginx_saw_and_not_one_the_client_sends() {
    let Some(f) = Fleet::start(1, &[]).await else {
        return;
    };
    let email = prepare::citizen_email(0);
    // The token once: then the posts alone take turns between the instances.
    let mut browsers = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let v = browser_at(&f.nginx, ip);
        let token = v.csrf_token().await;
        browsers.push((v, token));
    }
    let (here, there) = (&browsers[0], &browsers[1]);
    // Failed logins on one account from one address: 10 in 15 minutes, on
    // both instances together (nginx sends them to each in turn).
    for i in 0..10 {
        assert_eq!(wrong_login(here, &email, None).await, 401, "failure {i}");
    }
    assert_eq!(wrong_login(here, &email, None).await, 429);
    // Naming another address does not help: nginx appends the one it saw,
    // and that is the one the app takes.
    for spoof in ["127.0.0.3", "203.0.113.7", "203.0.113.7, 127.0.0.3"] {
        assert_eq!(wrong_login(here, &email, Some(spoof)).await, 429, "{spoof}");
    }
    // Another address nginx saw has a limit of its own.
    assert_eq!(wrong_login(there, &email, None).await, 401);

    let logins = f
        .answered_by(15, |a| a.path == "/login" && a.method == "POST")
        .await;
    assert_eq!(
        logins.iter().cloned().collect::<BTreeSet<_>>(),
        f.upstreams(),
        "both instances counted"
    );
    let clients: BTreeSet<String> = f
        .nginx
        .access_log()
        .into_iter()
        .filter(|a| a.path == "/login")
        .map(|a| a.client)
        .collect();
    assert_eq!(
        clients,
        BTreeSet::from(["127.0.0.2".into(), "127.0.0.3".into()])
    );
    let buckets: BTreeSet<String> = rate_limits::table
        .select(rate_limits::bucket)
        .load(&mut f.db.get().unwrap())
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        buckets,
        BTreeSet::from([
            "login:ip:127.0.0.2".to_owned(),
            format!("login:account-ip:127.0.0.2 {email}"),
            "login:ip:127.0.0.3".to_owned(),
            format!("login:account-ip:127.0.0.3 {email}"),
        ]),
        "counted by the addresses nginx saw, never its own or a client's say"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rush_for_ten_places_through_nginx_books_ten_across_both_instances() {
    const CITIZENS: usize = 40;
    let Some(f) = Fleet::start(CITIZENS, &[]).await else {
        return;
    };
    let store = fixtures::store(&f.db, "11800001", "중앙약국");
    // Three windows of ten, none kept for the counter; the rush is for the first.
    let window = fixtures::supply_in_windows(&f.db, store, f.prepared.rush_day, 30)[0];
    let bookers: Vec<(Visitor, String)> = join_all((0..CITIZENS).map(|i| {
        let v = f.citizen(i);
        async move {
            let csrf = extract_csrf(&v.html("/").await).expect("a CSRF token");
            (v, csrf)
        }
    }))
    .await;

    // Every form at once; one answered 503 is sent again with its request id.
    let answers: Vec<(u16, String)> = join_all(bookers.iter().enumerate().map(|(i, (v, csrf))| {
        let window = window.to_string();
        async move {
            let request_id = format!("nginx-rush-{i}");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let res = v
                    .post_form_raw(
                        "/reservations",
                        &[
                            ("csrf_token", csrf.as_str()),
                            ("window_id", &window),
                            ("quantity", "1"),
                            ("request_id", &request_id),
                        ],
                    )
                    .await;
                let status = res.status().as_u16();
                let location = res
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned());
                let body = res.text().await.unwrap();
                if status != 503 || Instant::now() > deadline {
                    break (status, location.unwrap_or(body));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }))
    .await;

    let booked: Vec<usize> = (0..CITIZENS)
        .filter(|&i| answers[i].0 == 303 && answers[i].1.starts_with("/reservations/"))
        .collect();
    let mut tally: HashMap<u16, usize> = HashMap::new();
    for (status, _) in &answers {
        *tally.entry(*status).or_default() += 1;
    }
    assert_eq!(booked.len(), 10, "{tally:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 303) {
        assert_eq!(*status, 409, "{body}");
        assert!(body.contains(r#"data-refusal="full""#), "{body}");
    }
    let posts = f
        .answered_by(CITIZENS, |a| {
            a.path == "/reservations" && a.method == "POST"
        })
        .await;
    let mut per_instance: HashMap<&str, usize> = HashMap::new();
    for upstream in &posts {
        *per_instance.entry(upstream.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_instance
            .keys()
            .map(|u| u.to_string())
            .collect::<BTreeSet<_>>(),
        f.upstreams(),
        "the rush went to both instances: {per_instance:?}"
    );

    let mut conn = f.db.get().unwrap();
    let winners: HashSet<i64> = booked.iter().map(|&i| f.prepared.citizens[i].id).collect();
    assert_window_went_to(&mut conn, window, 10, &winners);
    drop(conn);
    assert_invariants(&f.db);
}

/// The settings of a `deploy/env` file, in order.
fn env_file(name: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(repo_path(&format!("deploy/env/{name}")))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{name}: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[derive(Parser)]
struct ServeFlags {
    #[command(flatten)]
    config: ConfigArgs,
}

/// One number from a `deploy/` file's `NAME = N` (PostgreSQL) or
/// `NAME N;` (nginx) line.
fn setting(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(repo_path(file)).unwrap();
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(name).filter(|r| r.starts_with([' ', '='])))
        .map(|r| {
            r.trim_start_matches([' ', '='])
                .trim_end_matches(';')
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| panic!("{file} sets {name}"))
}

#[test]
fn the_shipped_settings_are_ones_the_app_reads_and_fit_nginx_and_postgresql() {
    // Every variable the example files set is a setting of the app's, with a
    // value it accepts (the key's placeholder aside).
    let command = ServeFlags::command();
    let flags: HashMap<String, String> = command
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_owned();
            Some((env, format!("--{}", a.get_long()?)))
        })
        .collect();
    let upstream: Vec<String> =
        std::fs::read_to_string(repo_path("deploy/nginx/mask-reservation.conf"))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("server "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|a| a.parse::<std::net::SocketAddr>().is_ok())
            .map(str::to_owned)
            .collect();
    assert_eq!(upstream, ["127.0.0.1:8081", "127.0.0.1:8082"]);
    let mut connections = 0;
    for port in ["8081", "8082"] {
        let mut argv = vec!["serve".to_owned()];
        for (name, value) in env_file("common.env")
            .into_iter()
            .chain(env_file(&format!("{port}.env")))
        {
            let flag = flags
                .get(&name)
                .unwrap_or_else(|| panic!("the app reads no setting {name}"));
            let value = match name.as_str() {
                "SECRET_KEY" => SecretKey::generate().to_base64(),
                _ => value,
            };
            argv.extend([flag.clone(), value]);
        }
        let config = Config::from_args(&ServeFlags::try_parse_from(&argv).unwrap().config)
            .unwrap_or_else(|e| panic!("{port}.env: {e}"));
        assert_eq!(config.bind.to_string(), format!("127.0.0.1:{port}"));
        assert!(
            upstream.contains(&config.bind.to_string()),
            "nginx sends to {port}"
        );
        assert_eq!(
            config.trusted_proxies,
            TrustedProxies::parse("1").unwrap(),
            "nginx is the one proxy"
        );
        // The pool, and at most two more for the health probe.
        connections += config.db_pool_size + 2;
    }
    // What deploy/postgresql/mask-reservation.conf counts besides.
    let (commands, reserved) = (10, 3);
    let max: u32 = setting("deploy/postgresql/mask-reservation.conf", "max_connections")
        .parse()
        .unwrap();
    assert!(
        connections + commands + reserved <= max,
        "{connections} + {commands} + {reserved} > max_connections {max}"
    );

    // nginx takes what the app takes, and keeps no idle connection longer than it.
    let site = "deploy/nginx/mask-reservation.conf";
    let body = setting(site, "client_max_body_size");
    let body_mib: usize = body.strip_suffix('m').unwrap().parse().unwrap();
    assert!(body_mib * 1024 * 1024 > mask_reservation::web::csrf::MAX_MULTIPART_BYTES);
    let idle: u64 = setting(site, "keepalive_timeout")
        .strip_suffix('s')
        .unwrap()
        .parse()
        .unwrap();
    assert!(Duration::from_secs(idle) < mask_reservation::web::connections::KEEP_ALIVE);
    assert_eq!(
        setting(site, "proxy_next_upstream"),
        "error timeout",
        "never a POST again, never past the app's own 503"
    );
}
