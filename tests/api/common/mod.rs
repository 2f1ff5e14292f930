//! The test harness: a fresh database per test (an SQLite file copied from a
//! migrated template, or a PostgreSQL database cloned from a template database
//! when `TEST_DATABASE_URL` is set), the app on port 0, and an HTTP client that
//! keeps cookies and knows the CSRF token.

pub mod browser;
pub mod db;
pub mod nginx;
pub mod proxy;
pub mod server;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mask_reservation::app::{Application, Overrides, open_db};
use mask_reservation::clock::Clock;
use mask_reservation::config::{AppEnv, Config, MailTransport, SecretKey};
use mask_reservation::db::{Backend, Db, DbConnection};
use mask_reservation::rate_limit::{Limit, RateLimits};
use mask_reservation::state::AppState;
use reqwest::redirect::Policy;

pub use db::TestDatabase;
pub use smtp::SmtpSink;

/// One browser-like HTTP client with its own cookies.
#[derive(Clone)]
pub struct Visitor {
    pub address: String,
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

pub struct TestApp {
    pub address: String,
    pub visitor: Visitor,
    pub db: Db,
    pub state: actix_web::web::Data<AppState>,
    /// Kept for the app's lifetime: its data directory.
    _data_dir: tempfile::TempDir,
    pub database: Arc<TestDatabase>,
    /// The SMTP server the app sends its mail to.
    pub smtp: SmtpSink,
}

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Spawn {
    /// Run the app against an existing test database (several instances on one
    /// database), instead of a fresh one.
    pub database: Option<Arc<TestDatabase>>,
    /// Route PostgreSQL traffic through this proxy port (to cut the database).
    pub via_proxy: Option<u16>,
    /// Send mail to this port instead of the test's SMTP sink (e.g. a dead one).
    pub smtp_port: Option<u16>,
    /// Request limits; by default high enough never to get in a test's way.
    pub rate_limits: Option<RateLimits>,
    /// The clock request limits count by; by default the system clock.
    pub clock: Option<Clock>,
    /// Changes to the configuration the app starts with.
    pub configure: Option<ConfigChange>,
    /// How often the app's no-show expiry and reminder jobs run. By default
    /// once a day, i.e. never within a test: a test that wants them runs
    /// them itself, or sets a short period here and polls.
    pub jobs_every: Option<Duration>,
}

pub type ConfigChange = Box<dyn FnOnce(&mut Config)>;

impl Spawn {
    /// The app with its clock standing at `at` until the test moves it: a
    /// page test whose scenario names a day does not depend on the day it runs.
    pub fn at(at: chrono::DateTime<chrono::Utc>) -> Spawn {
        Spawn {
            clock: Some(Clock::manual(at)),
            ..Spawn::default()
        }
    }
}

/// Limits that no functional test reaches; rate-limit tests set their own.
pub fn generous_limits() -> RateLimits {
    let lots = Limit::per_minutes(10_000, 60);
    RateLimits {
        login_per_ip: lots,
        login_per_account_ip: lots,
        login_per_device: lots,
        signup_per_ip: lots,
        signup_per_email: lots,
        forgot_per_ip: lots,
        forgot_per_account: lots,
        resend_per_account: lots,
        walk_in_per_account: lots,
        pickup_per_account: lots,
        dependant_add_per_account: lots,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Spawn::default()).await
}

pub async fn spawn_app_with(options: Spawn) -> TestApp {
    let database = match options.database {
        Some(d) => d,
        None => Arc::new(TestDatabase::fresh()),
    };
    let data_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start().await;
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url_via(options.via_proxy),
        secret: SecretKey::generate(),
        mail: MailTransport::Smtp {
            host: "127.0.0.1".into(),
            port: options.smtp_port.unwrap_or(smtp.port),
        },
        mail_from: "공적 마스크 예약 <no-reply@example.com>".into(),
        mail_connections: 4,
        timezone: chrono_tz::Asia::Seoul,
        seed_demo: false,
        app_env: AppEnv::Development,
        data_dir: data_dir.path().to_owned(),
        db_pool_size: 8,
        // Longer than production's 3 s: the race tests post hundreds of
        // requests at once on a small machine; the timeout's own tests set
        // theirs.
        db_timeout: Duration::from_secs(10),
        workers: 2,
        base_url: None,
        trusted_proxies: mask_reservation::config::TrustedProxies::None,
        metrics_allow: mask_reservation::config::loopback(),
        metrics_token: None,
        map_tile_url: mask_reservation::config::DEFAULT_MAP_TILE_URL.to_owned(),
        // Room for every functional test's crowd (the booking races post 200
        // at once); the waiting room's own tests set theirs.
        waiting_room_capacity: 1024,
        body_read_timeout: mask_reservation::web::body_timeout::DEFAULT,
        send_timeout: mask_reservation::web::connections::DEFAULT_SEND_TIMEOUT,
    };
    if let Some(configure) = options.configure {
        configure(&mut config);
    }
    let db = open_db(&config);
    let overrides = Overrides {
        rate_limits: Some(options.rate_limits.unwrap_or_else(generous_limits)),
        clock: options.clock,
        jobs_every: Some(options.jobs_every.unwrap_or(Duration::from_secs(24 * 3600))),
    };
    let app = Application::build_with(config, db.clone(), overrides).expect("the app builds");
    let port = app.port();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let address = format!("http://127.0.0.1:{port}");
    TestApp {
        visitor: Visitor::new(&address),
        address,
        db,
        state,
        _data_dir: data_dir,
        database,
        smtp,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Visitor;

    fn deref(&self) -> &Visitor {
        &self.visitor
    }
}

impl TestApp {
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The date in the service zone by the app's clock: the day its pages,
    /// windows and periods count as today.
    pub fn today(&self) -> chrono::NaiveDate {
        let policy = mask_reservation::policy::Policy::load(&mut self.db.get().unwrap()).unwrap();
        mask_reservation::reservations::rules::today(&policy, self.state.clock.now())
    }

    /// Sets a policy value (SPEC §3) and has the app read it at once, as
    /// it would within seconds of an administrator's change.
    pub fn set_setting(&self, key: &str, value: &str) {
        use diesel::prelude::*;
        use mask_reservation::db::schema::settings;
        let mut conn = self.db.get().unwrap();
        let changed = diesel::update(settings::table.find(key))
            .set(settings::value.eq(value))
            .execute(&mut conn)
            .unwrap();
        assert_eq!(changed, 1, "no setting {key}");
        self.state.policy.refresh(&mut conn).unwrap();
    }

    /// Another visitor, with a cookie jar of its own.
    pub fn new_visitor(&self) -> Visitor {
        Visitor::new(&self.address)
    }

    /// A new visitor logged in to a new, verified account with [`fixtures::PASSWORD`].
    pub async fn logged_in_as(
        &self,
        role: mask_reservation::accounts::Role,
        email: &str,
        store_id: Option<i64>,
    ) -> Visitor {
        let key = self.state.keys.national_id.clone();
        fixtures::user(&self.db, role, email, store_id, true, &key);
        let v = self.new_visitor();
        let res = v.login(email, fixtures::PASSWORD).await;
        assert_eq!(res.status(), 303, "{email} logs in");
        v
    }
}

impl Visitor {
    pub fn new(address: &str) -> Visitor {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        Visitor {
            address: address.to_owned(),
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .cookie_provider(jar.clone())
                .timeout(Duration::from_secs(30))
                // Below the server's keep-alive (actix-web's default, 5 s): a
                // connection idle that long may be closed by the server just
                // as a request is sent on it, which fails the request
                // (`IncompleteMessage`) — in the race tests, whose first
                // visitors wait idle while the others log in.
                .pool_idle_timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
            jar,
        }
    }

    /// The `Cookie` header this visitor would send (to copy a session).
    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url = self.address.parse().unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_lang(&self, path: &str, accept_language: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Accept-Language", accept_language)
            .send()
            .await
            .unwrap()
    }

    /// The session's CSRF token, as a page's forms carry it.
    pub async fn csrf_token(&self) -> String {
        let html = self.get("/").await.text().await.unwrap();
        extract_csrf(&html).expect("the home page carries a CSRF token")
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf_token().await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form_raw(path, &all).await
    }

    /// Posts exactly these fields.
    pub async fn post_form_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// Posts a `multipart/form-data` form with a file in the part `file` (as
    /// an import page's form does), plus `fields` and the session's CSRF token.
    pub async fn post_file(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file_name: &str,
        content: Vec<u8>,
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new().text("csrf_token", self.csrf_token().await);
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        let part = reqwest::multipart::Part::bytes(content)
            .file_name(file_name.to_owned())
            .mime_str("text/csv")
            .unwrap();
        form = form.part("file", part);
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Posts a raw body (for malformed input).
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Logs in; returns the response (303 on success).
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_form("/login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }
}

/// A response's `Retry-After`, in whole seconds.
/// `/status` answered 503 and says `state` (its `data-status`).
pub async fn assert_status_page_says(res: reqwest::Response, state: &str) {
    assert_eq!(res.status(), 503, "/status while {state}");
    let page = res.text().await.unwrap();
    assert!(
        page.contains(&format!("data-status=\"{state}\"")),
        "/status should say {state}:\n{page}"
    );
}

pub fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Every value of the attribute `attr` on the page, in order.
pub fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let marker = format!(" {attr}=\"");
    html.match_indices(&marker)
        .filter_map(|(i, _)| {
            let rest = &html[i + marker.len()..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

/// The value of the first attribute `attr` on the page.
pub fn attribute(html: &str, attr: &str) -> Option<String> {
    attr_values(html, attr).into_iter().next()
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs up through the form with [`fixtures::PASSWORD`] and the name 홍길동.
pub async fn sign_up(v: &Visitor, national_id: &str, email: &str) -> reqwest::Response {
    v.post_form(
        "/signup",
        &[
            ("national_id", national_id),
            ("name", "홍길동"),
            ("email", email),
            ("password", fixtures::PASSWORD),
            ("password_confirm", fixtures::PASSWORD),
            ("consent", "on"),
        ],
    )
    .await
}

/// How many accounts the database holds.
pub fn count_users(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use mask_reservation::db::schema::users;
    let mut conn = app.db.get().unwrap();
    users::table.count().get_result(&mut conn).unwrap()
}

/// Every invariant of SPEC §4 holds in this database (`mask-reservation
/// verify`); what every race test ends with.
pub fn assert_invariants(db: &Db) {
    let mut conn = db.get().unwrap();
    let findings = mask_reservation::verify::run(&mut conn).unwrap();
    assert!(findings.is_empty(), "invariants violated: {findings:?}");
}

/// A race for the `places` of `window` ended as its answers said: the window
/// is full, and its reservations are those of exactly the `winners` (user
/// ids) told they had booked.
pub fn assert_window_went_to(
    conn: &mut DbConnection,
    window: i64,
    places: i32,
    winners: &std::collections::HashSet<i64>,
) {
    use diesel::prelude::*;
    use mask_reservation::db::schema::{pickup_windows, reservations};
    let (reserved, capacity): (i32, i32) = pickup_windows::table
        .find(window)
        .select((pickup_windows::reserved, pickup_windows::capacity))
        .first(conn)
        .unwrap();
    assert_eq!((reserved, capacity), (places, places));
    let holders: std::collections::HashSet<i64> = reservations::table
        .filter(reservations::window_id.eq(window))
        .select(reservations::user_id)
        .load::<i64>(conn)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(&holders, winners);
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Test data written straight to the database (fast set-up for HTTP tests).
pub mod fixtures {
    use std::sync::atomic::{AtomicU32, Ordering};

    use diesel::prelude::*;
    use mask_reservation::accounts::Role;
    use mask_reservation::accounts::national_id::{NationalId, with_check_digit};
    use mask_reservation::accounts::password::{NewPassword, hash};
    use mask_reservation::accounts::queries::{NewUser, find_or_insert_person, insert_user};
    use mask_reservation::db::schema::{
        pickup_windows, reservations, stock_ledger, store_days, users,
    };
    use mask_reservation::db::{Db, write_tx};
    use mask_reservation::policy::Policy;
    use mask_reservation::quantity::Quantity;
    use mask_reservation::quota;
    use mask_reservation::stores::import::{StoreRow, insert_all};
    use mask_reservation::supply::allocation::allocate_new_day;

    pub const PASSWORD: &str = "correct horse battery";

    /// A valid resident registration number from its first 12 digits.
    pub fn national_id(first12: &str) -> String {
        with_check_digit(first12).unwrap()
    }

    /// A national ID no other fixture in this process has used: born 1985-01-01,
    /// the serial from a process-wide counter.
    pub fn unique_national_id() -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(serial < 100_000, "fixture national IDs ran out");
        national_id(&format!("8501011{serial:05}"))
    }

    pub fn store(db: &Db, code: &str, name: &str) -> i64 {
        let mut conn = db.get().unwrap();
        let row = StoreRow {
            code: code.into(),
            name: name.into(),
            addr: format!("서울특별시 중구 세종대로 {}", &code[5..]),
            store_type: "01".into(),
            lat: 37.56,
            lng: 126.97,
            phone: None,
            region: "서울특별시".into(),
        };
        write_tx(&mut conn, |tx| insert_all(tx, std::slice::from_ref(&row))).unwrap()[0]
    }

    /// Allocates `quantity` to the store on `day` as the policy in force
    /// does (windows from its template, its walk-in share kept out of them);
    /// answers the new windows' ids, earliest first.
    pub fn supply(db: &Db, store: i64, day: chrono::NaiveDate, quantity: i32) -> Vec<i64> {
        let policy = Policy::load(&mut db.get().unwrap()).unwrap();
        allocate(db, &policy, store, day, quantity)
    }

    /// As [`supply`], with all of `quantity` in the windows and none kept for
    /// the counter (a walk-in share of 0): for tests about the windows alone.
    pub fn supply_in_windows(
        db: &Db,
        store: i64,
        day: chrono::NaiveDate,
        quantity: i32,
    ) -> Vec<i64> {
        let policy = Policy {
            walk_in_share_percent: 0,
            ..Policy::load(&mut db.get().unwrap()).unwrap()
        };
        allocate(db, &policy, store, day, quantity)
    }

    fn allocate(
        db: &Db,
        policy: &Policy,
        store: i64,
        day: chrono::NaiveDate,
        quantity: i32,
    ) -> Vec<i64> {
        let mut conn = db.get().unwrap();
        write_tx(&mut conn, |tx| {
            allocate_new_day(tx, policy, store, day, quantity, None)
        })
        .unwrap();
        pickup_windows::table
            .filter(pickup_windows::store_id.eq(store))
            .filter(pickup_windows::day.eq(day))
            .order(pickup_windows::starts_at)
            .select(pickup_windows::id)
            .load(&mut conn)
            .unwrap()
    }

    /// A pharmacy in Busan (region 부산광역시), for figures split by region.
    /// An active reservation of `quantity` in window `window_id` for the
    /// citizen `user_id`, as booking writes it: the window's and store-day's
    /// `reserved` raised, a ledger row `reservation`, the quota taken
    /// ([`quota::take`], which must allow it) and a unique 8-character pickup
    /// code. Answers the reservation's id.
    pub fn reservation(db: &Db, window_id: i64, user_id: i64, quantity: i32) -> i64 {
        static CODE: AtomicU32 = AtomicU32::new(0);
        let mut conn = db.get().unwrap();
        let policy = Policy::load(&mut conn).unwrap();
        let person: i64 = users::table
            .find(user_id)
            .select(users::person_id)
            .first::<Option<i64>>(&mut conn)
            .unwrap()
            .expect("a citizen has a person");
        let (store_day, store, day): (i64, i64, chrono::NaiveDate) = pickup_windows::table
            .find(window_id)
            .select((
                pickup_windows::store_day_id,
                pickup_windows::store_id,
                pickup_windows::day,
            ))
            .first(&mut conn)
            .unwrap();
        let period_start = policy.period.start_of(day);
        let now = chrono::Utc::now().naive_utc();
        // Process id and a counter: unique across test binaries sharing a
        // PostgreSQL server too, each test having its own database anyway.
        let code = format!(
            "F{:03}{:04}",
            std::process::id() % 1000,
            CODE.fetch_add(1, Ordering::Relaxed)
        );
        write_tx(&mut conn, |tx| {
            let asked = Quantity::new(quantity).expect("a reservation is of one mask or more");
            quota::take(tx, person, period_start, asked, policy.quota_per_period)?
                .expect("the fixture's quota allows the reservation");
            let id: i64 = diesel::insert_into(reservations::table)
                .values((
                    reservations::user_id.eq(user_id),
                    reservations::person_id.eq(person),
                    reservations::window_id.eq(window_id),
                    reservations::store_id.eq(store),
                    reservations::quantity.eq(quantity),
                    reservations::period_start.eq(period_start),
                    reservations::status.eq("active"),
                    reservations::pickup_code.eq(&code),
                    reservations::created_at.eq(now),
                    reservations::updated_at.eq(now),
                ))
                .returning(reservations::id)
                .get_result(tx.conn())?;
            let raised = diesel::update(
                pickup_windows::table.find(window_id).filter(
                    (pickup_windows::reserved + pickup_windows::picked_up + quantity)
                        .le(pickup_windows::capacity),
                ),
            )
            .set(pickup_windows::reserved.eq(pickup_windows::reserved + quantity))
            .execute(tx.conn())?;
            assert_eq!(
                raised, 1,
                "the window has room for the fixture's reservation"
            );
            diesel::update(store_days::table.find(store_day))
                .set((
                    store_days::reserved.eq(store_days::reserved + quantity),
                    store_days::stock_changed_at.eq(now),
                ))
                .execute(tx.conn())?;
            diesel::insert_into(stock_ledger::table)
                .values((
                    stock_ledger::store_day_id.eq(store_day),
                    stock_ledger::window_id.eq(window_id),
                    stock_ledger::reservation_id.eq(id),
                    stock_ledger::kind.eq("reservation"),
                    stock_ledger::reserved_delta.eq(quantity),
                    stock_ledger::created_at.eq(now),
                ))
                .execute(tx.conn())?;
            Ok::<_, diesel::result::Error>(id)
        })
        .unwrap()
    }

    pub fn busan_store(db: &Db) -> i64 {
        let mut conn = db.get().unwrap();
        let row = StoreRow {
            code: "21000001".into(),
            name: "해운대약국".into(),
            addr: "부산광역시 해운대구 해운대로 1".into(),
            store_type: "01".into(),
            lat: 35.16,
            lng: 129.16,
            phone: Some("051-123-4567".into()),
            region: "부산광역시".into(),
        };
        write_tx(&mut conn, |tx| insert_all(tx, std::slice::from_ref(&row))).unwrap()[0]
    }

    /// An account with [`PASSWORD`]. Citizens get a person of their own.
    pub fn user(
        db: &Db,
        role: Role,
        email: &str,
        store_id: Option<i64>,
        verified: bool,
        id_key: &[u8],
    ) -> i64 {
        let mut conn = db.get().unwrap();
        let password_hash = hash(&NewPassword::parse(PASSWORD).unwrap()).unwrap();
        let today = chrono::Utc::now().date_naive();
        let national_id = NationalId::parse(&unique_national_id(), today).unwrap();
        write_tx(&mut conn, |tx| {
            let person_id = match role {
                Role::Citizen => Some(find_or_insert_person(
                    tx,
                    &national_id.keyed_hash(id_key),
                    national_id.birth_date(),
                    &national_id.masked(),
                )?),
                _ => None,
            };
            insert_user(
                tx,
                &NewUser {
                    role,
                    email,
                    name: email.split('@').next().unwrap(),
                    password_hash: &password_hash,
                    person_id,
                    store_id,
                    email_verified: verified,
                },
            )
        })
        .unwrap()
    }
}
