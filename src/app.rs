//! Builds the HTTP server: state, middleware and routes. Used by `main` and by
//! the tests, which bind port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::SameSite;
use actix_web::dev::{Server, ServiceRequest};
use actix_web::http::header::{self, HeaderName};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use tokio::sync::Notify;

use crate::accounts::hashing::{HashPool, PoolSize};
use crate::clock::Clock;
use crate::config::{AppEnv, Config};
use crate::db::{Db, PoolOptions};
use crate::i18n::Catalog;
use crate::mail::sender::{MessageIds, Sender};
use crate::opendata::snapshot::{self as stock, StockCache};
use crate::rate_limit::RateLimits;
use crate::reservations::{expiry, reminders};
use crate::settings::{self, PolicyCache};
use crate::state::{AppState, Keys};
use crate::web::access_log::{self, RequestLog};
use crate::web::metrics::{self, Metrics};
use crate::web::waiting_room::{self, WaitingRoom};
use crate::web::{body_timeout, connections, csrf, errors, health, home, language};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    jobs_every: Option<Duration>,
    stock: Arc<StockCache>,
    metrics: Arc<Metrics>,
}

/// What a test may set differently from a real start.
#[derive(Default)]
pub struct Overrides {
    pub rate_limits: Option<RateLimits>,
    /// The clock request limits are counted by.
    pub clock: Option<Clock>,
    /// How often no-show expiry and reminders run (each a minute by default).
    pub jobs_every: Option<Duration>,
}

impl Application {
    /// Binds the listener and builds the server; the database is used lazily, so
    /// the server starts (and reports 503) even when the database is down.
    pub fn build(config: Config, db: Db) -> anyhow::Result<Application> {
        Application::build_with(config, db, Overrides::default())
    }

    /// As [`Application::build`], with some parts replaced (for tests).
    pub fn build_with(config: Config, db: Db, overrides: Overrides) -> anyhow::Result<Application> {
        let listener = connections::listen(config.bind)?;
        let local = listener.local_addr()?;
        let port = local.port();
        let catalog = Arc::new(Catalog::load()?);
        let keys = Keys::derive(config.secret.bytes());
        let metrics = Arc::new(Metrics::new()?);
        let clock = overrides.clock.unwrap_or_default();
        let waiting_room = Arc::new(WaitingRoom::new(
            config.waiting_room_capacity,
            clock.clone(),
            Some(metrics.waiting_room()?),
        ));
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        let state = web::Data::new(AppState {
            db,
            config: Arc::new(config),
            catalog,
            keys,
            base_url,
            rate_limits: overrides.rate_limits.unwrap_or_default(),
            clock,
            mail_wake: Arc::new(Notify::new()),
            policy: Arc::new(PolicyCache::default()),
            hashing: HashPool::start(PoolSize::for_this_machine())?,
            health: Default::default(),
            waiting_room,
        });
        let stock = Arc::new(StockCache::default());
        let server = server(listener, state.clone(), metrics.clone(), stock.clone())?;
        Ok(Application {
            port,
            server,
            state,
            jobs_every: overrides.jobs_every,
            stock,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from outside (tests, signal handling).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until stopped, with the background work beside it: the mail
    /// sender, the policy refresh, no-show expiry, pickup reminders and
    /// periodic clean-up.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let room = state.waiting_room.clone();
        let sender = Sender::new(
            state.db.clone(),
            state.config.mail.clone(),
            state.config.mail_from.clone(),
            MessageIds::for_base_url(&state.base_url),
            state.mail_wake.clone(),
        )
        .connections(state.config.mail_connections)
        .yielding_to(move || room.crowded());
        let mail = tokio::spawn(sender.run());
        let upkeep = tokio::spawn(upkeep(state.db.clone(), state.clock.clone()));
        let policy = tokio::spawn(refresh_policy(state.db.clone(), state.policy.clone()));
        let every = self.jobs_every;
        let expiry = tokio::spawn(expiry::run_every(
            every.unwrap_or(expiry::EVERY),
            state.db.clone(),
            state.clock.clone(),
            state.policy.clone(),
        ));
        let reminders = tokio::spawn(reminders::run_every(
            every.unwrap_or(reminders::EVERY),
            crate::jobs::Job::of(&state),
        ));
        let waitlist = tokio::spawn(crate::waitlist::offers::run_every(
            every.unwrap_or(crate::waitlist::offers::EVERY),
            crate::jobs::Job::of(&state),
        ));
        let draws = tokio::spawn(crate::draws::run::run_every(
            every.unwrap_or(crate::draws::run::EVERY),
            crate::jobs::Job::of(&state),
        ));
        let freshness = match self.metrics.stock_freshness() {
            Ok(gauges) => Some(gauges),
            Err(e) => {
                tracing::warn!(error = %e, "stock snapshot gauges not registered");
                None
            }
        };
        let stock = tokio::spawn(stock::refresh_loop(
            state.db.clone(),
            self.stock.clone(),
            state.policy.clone(),
            state.clock.clone(),
            freshness,
        ));
        let result = self.server.await;
        mail.abort();
        upkeep.abort();
        policy.abort();
        expiry.abort();
        reminders.abort();
        waitlist.abort();
        draws.abort();
        stock.abort();
        result
    }
}

/// Keeps the policy in memory up to date with the settings table, so that a
/// change saved on another instance takes effect here within a few seconds.
async fn refresh_policy(db: Db, cache: Arc<PolicyCache>) {
    let mut tick = tokio::time::interval(settings::REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cache = cache.clone();
        if let Err(e) = db.run(move |conn| cache.refresh(conn)).await {
            tracing::warn!(error = %e, "policy refresh failed; keeping the policy in memory");
        }
    }
}

/// Hourly housekeeping: expired rate-limit windows.
async fn upkeep(db: Db, clock: Clock) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = clock.now();
        match db
            .write(move |tx| crate::rate_limit::purge_old(tx, now))
            .await
        {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "old rate-limit windows removed"),
            Ok(_) => {}
            // Counted in the line of the storage episode (db::storage).
            Err(crate::db::DbError::StorageFull(_)) => {}
            Err(e) => tracing::warn!(error = %e, "rate-limit clean-up failed"),
        }
    }
}

/// The content security policy: everything from this origin only, except the
/// map's tiles, which come from the host of `MAP_TILE_URL`.
fn csp(tile_url: &str) -> String {
    let tiles = crate::config::tile_origin(tile_url)
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data:{tiles}; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Headers every response carries unless its handler set its own. Responses are
/// not to be stored by default: pages carry a per-session CSRF token or a
/// logged-in user's data, and so do their redirects and error pages; what may be
/// cached (static files) says so itself. HSTS only in production, where the app
/// is served over HTTPS.
fn security_headers(production: bool, csp: &str) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((
            HeaderName::from_static("permissions-policy"),
            "geolocation=(self), camera=(self), microphone=()",
        ))
        .add((
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ));
    if production {
        headers.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

fn server(
    listener: TcpListener,
    state: web::Data<AppState>,
    metrics: Arc<Metrics>,
    stock: Arc<StockCache>,
) -> anyhow::Result<Server> {
    let production = state.config.app_env == AppEnv::Production;
    let csp = csp(&state.config.map_tile_url);
    let stock = web::Data::from(stock);
    let workers = state.config.workers;
    let body_read_timeout = state.config.body_read_timeout;
    let send_timeout = state.config.send_timeout;
    let metrics_access = web::Data::new(metrics::Access::from_config(&state.config));
    let server = HttpServer::new(move || {
        let session =
            SessionMiddleware::builder(CookieSessionStore::default(), state.keys.cookie.clone())
                .cookie_name("mr_session".to_owned())
                .cookie_content_security(CookieContentSecurity::Private)
                .cookie_secure(production)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .session_lifecycle(
                    PersistentSession::default()
                        .session_ttl(actix_web::cookie::time::Duration::hours(12)),
                )
                .build();
        // Two stacks. Every request gets the request log (id, metrics, access
        // line) and the security headers. Static files and the health probe stop
        // there: they need no session, CSRF check or error page, and a browser
        // sends its session cookie with each of them, which the session layer
        // would decrypt for nothing. Everything else is in the scope below,
        // where the last `wrap` runs first: the request span, the session, error
        // pages, CSRF (it needs the session, and its 403 becomes an error
        // page), and innermost the waiting room, which holds back the rush's
        // pages (login, store page, booking) once the bound on them is reached;
        // it renders its page with the session's language and CSRF token.
        // Inside the request log and the headers, every body is read through
        // the body timeout, whose 408 they then log and dress like any answer;
        // innermost, the request's one deadline for the database
        // (`db::deadline`), and the lane its database work waits in (`db::lane`). Outermost, every answer in memory is handed to the
        // connection in slices (`connections::pace`).
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::from(metrics.clone()))
            .app_data(metrics_access.clone())
            .app_data(stock.clone())
            .app_data(web::FormConfig::default().limit(csrf::MAX_FORM_BYTES))
            .wrap(from_fn(|req: ServiceRequest, next: Next<_>| {
                // The pharmacy's pages wait in the counter's lane (`db::lane`).
                let counter = crate::db::lane::is_counter_path(req.path());
                crate::db::deadline::scoped(async move {
                    if counter {
                        crate::db::lane::counter(next.call(req)).await
                    } else {
                        next.call(req).await
                    }
                })
            }))
            .wrap(from_fn(move |req, next| {
                body_timeout::guard(body_read_timeout, req, next)
            }))
            .wrap(security_headers(production, &csp))
            .wrap(RequestLog::new(metrics.clone()))
            .wrap(from_fn(connections::pace))
            .configure(public_routes)
            .service(
                web::scope("")
                    .wrap(from_fn(waiting_room::guard))
                    .wrap(from_fn(csrf::protect))
                    .wrap(from_fn(errors::error_pages))
                    .wrap(session)
                    .wrap(from_fn(access_log::request_span))
                    .route("/metrics", web::get().to(metrics::serve))
                    .configure(routes),
            )
    })
    .workers(workers)
    .shutdown_timeout(10)
    .client_request_timeout(connections::REQUEST_HEAD_TIMEOUT)
    .keep_alive(connections::KEEP_ALIVE)
    .tcp_nodelay(true)
    .on_connect(connections::on_connect(send_timeout))
    .listen(listener)?
    .run();
    Ok(server)
}

/// Routes served without session, CSRF or error pages (see [`server`]): the
/// exact static files, the health probe and the open data, whose answers are
/// JSON or CSV as written. A path under `/static/` that is not a file falls
/// through to the pages and gets the usual 404 page.
fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz));
    cfg.configure(crate::opendata::api::routes);
    for file in STATIC_FILES {
        cfg.route(
            &format!("/static/{}", file.0),
            web::get().to(move || static_file(file)),
        );
    }
}

/// Every route of the application.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home))
        .route("/status", web::get().to(health::status))
        .route("/language", web::post().to(language::switch))
        .configure(crate::accounts::routes::routes)
        .configure(crate::stores::page::routes)
        .configure(crate::reservations::routes::routes)
        .configure(crate::waitlist::routes::routes)
        .configure(crate::draws::routes::routes)
        .configure(crate::draws::admin::routes)
        .configure(crate::dependants::routes::routes)
        .configure(crate::stores::search::routes)
        .configure(crate::pharmacy::routes::routes)
        .configure(crate::admin::dashboard::routes)
        .configure(crate::admin::stores::routes)
        .configure(crate::admin::users::routes)
        .configure(crate::admin::settings::routes)
        .configure(crate::admin::audit_page::routes)
        .configure(crate::admin::supply::routes)
        .configure(crate::admin::windows::routes)
        .configure(crate::opendata::map::routes)
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, errors::AppError> {
    Err(errors::AppError::NotFound)
}

/// Static files compiled into the binary: one file to deploy.
const STATIC_FILES: &[(&str, &str, &[u8])] = &[
    (
        "css/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/css/app.css"),
    ),
    (
        "js/near-me.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/js/near-me.js"),
    ),
    (
        "js/waiting-room.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/js/waiting-room.js"),
    ),
    (
        "js/map.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/js/map.js"),
    ),
    (
        "js/camera-scan.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/js/camera-scan.js"),
    ),
    (
        "vendor/jsqr/jsQR.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/vendor/jsqr/jsQR.js"),
    ),
    (
        "vendor/leaflet/leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/vendor/leaflet/leaflet.js"),
    ),
    (
        "vendor/leaflet/leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/vendor/leaflet/leaflet.css"),
    ),
    (
        "vendor/leaflet/images/layers.png",
        "image/png",
        include_bytes!("../static/vendor/leaflet/images/layers.png"),
    ),
    (
        "vendor/leaflet/images/layers-2x.png",
        "image/png",
        include_bytes!("../static/vendor/leaflet/images/layers-2x.png"),
    ),
    (
        "vendor/leaflet/images/marker-icon.png",
        "image/png",
        include_bytes!("../static/vendor/leaflet/images/marker-icon.png"),
    ),
    (
        "vendor/leaflet/images/marker-icon-2x.png",
        "image/png",
        include_bytes!("../static/vendor/leaflet/images/marker-icon-2x.png"),
    ),
    (
        "vendor/leaflet/images/marker-shadow.png",
        "image/png",
        include_bytes!("../static/vendor/leaflet/images/marker-shadow.png"),
    ),
];

async fn static_file(file: &'static (&'static str, &'static str, &'static [u8])) -> HttpResponse {
    let (_, content_type, body) = *file;
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// Opens the database handle the server uses.
pub fn open_db(config: &Config) -> Db {
    Db::new(
        &config.database_url,
        PoolOptions {
            max_size: config.db_pool_size,
            acquire_timeout: config.db_timeout,
        },
    )
}
