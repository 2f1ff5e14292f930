//! `GET /healthz`: can this instance serve, and in what state is its database?
//! `GET /status` says the same to people, as a page in their language.
//!
//! To the public both say only that: `{"status": "ok" | "busy" |
//! "clock_skew" | "storage_full" | "unavailable"}` with 200 or 503, and the page's sentence. The details —
//! the backend, the database's state, the pool's connections — are for the
//! operator: `/healthz` adds them for a request that may read `/metrics`
//! (`METRICS_TOKEN`, or an address of `METRICS_ALLOW`; [`Access::admits`]).
//!
//! `database.state` is one of:
//!
//! - `up` (200): a pooled connection was free within [`POOL_WAIT`] and the
//!   database answered a read on it.
//! - `busy` (200): no pooled connection came free within [`POOL_WAIT`] (every
//!   one was in use by requests), yet the database answered a read on a fresh
//!   connection of the probe's own within [`FRESH_WAIT`]. The instance serves,
//!   slowly: requests are queueing for connections. It stays in rotation, since
//!   taking it out would only move its load onto the others. What to do: add
//!   instances or connections (`DB_POOL_SIZE`, within what the database allows),
//!   or find what holds connections long (slow queries; on SQLite, a long write
//!   transaction). Restarting does not help.
//!   On SQLite it is also `busy` when a write has waited for the one writer
//!   longer than [`WRITER_LAG`]: the database reads fine, but writes queue
//!   (a long bulk write, a disk that has slowed down); bookings are slow.
//! - `clock_skew` (503, `Retry-After`): the database answered, but this
//!   machine's clock is more than [`crate::clock::MAX_SKEW`] off the
//!   database's. Pages would judge windows, cut-offs and logins by a wrong
//!   time, and the jobs that act on time refuse to run
//!   ([`crate::clock::now_for_job`]): take the instance out of rotation and
//!   fix its clock (NTP). `database.clock_skew_seconds` says by how much.
//! - `storage_full` (503, `Retry-After`): the database answered, but writes
//!   are being refused for lack of room on its volume (`db::storage`: from
//!   the first write refused so until one commits again, or the SQLite
//!   writer's checkpoint empties the WAL on a volume with room). Reads are
//!   served, nothing can be booked: take the instance out of rotation and
//!   free room on the volume; the instance recovers by itself, within a few
//!   seconds of the room being there. The operator's details add
//!   `database.free_bytes`, `database.wal_bytes` and
//!   `database.writes_refused`.
//! - `down` (503, `Retry-After`): the database did not answer a read, neither
//!   through the pool nor on a fresh connection (an error, or no answer within
//!   the probe time), or this instance started while the database was down
//!   and has not prepared it yet (it keeps trying, with back-off, and serves
//!   once it has). Take the instance out of rotation; look at the database
//!   and the network to it.
//!
//! The probe only reads, so on SQLite it neither takes nor waits for the write
//! lock: under WAL a reader never waits for the writer, and a write lock held
//! through a rush is neither `busy` nor `down`. The whole probe answers within
//! `POOL_WAIT + FRESH_WAIT`.
//!
//! One probe at a time, and its answer is reused for [`FRESH_FOR`]: load
//! balancers, monitors and a benchmark may ask many times a second, and during
//! a rush, when every pooled connection is taken, each probe of its own would
//! wait [`POOL_WAIT`] and then open a connection. Concurrent askers wait for
//! the probe in progress and share its answer.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use crate::db::{self, DbError};
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::metrics::Access;
use crate::web::page::PageCtx;
use crate::web::render;

/// How long a write may have waited for the SQLite writer before the
/// instance says it is `busy`.
pub const WRITER_LAG: Duration = Duration::from_secs(1);

/// How long the probe waits for a pooled connection and its read.
pub const POOL_WAIT: Duration = Duration::from_secs(1);

/// How long the probe gives a fresh connection to open and answer.
pub const FRESH_WAIT: Duration = Duration::from_secs(2);

/// `/healthz` is public: however many probes arrive while the pool is
/// saturated, only this many fresh connections are opened at once, so the
/// probe cannot use up the database's connection limit.
static FRESH_PROBES: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));

/// How long one probe's answer is given to every asker.
pub const FRESH_FOR: Duration = Duration::from_millis(250);

/// The last probe's answer and when it was taken (one per instance, in
/// [`AppState`]). The lock is held while a probe runs, so only one runs.
#[derive(Default)]
pub struct HealthCache(Mutex<Option<(Instant, DbState)>>);

impl HealthCache {
    /// The database's state: the last answer if it is younger than
    /// [`FRESH_FOR`], otherwise a new probe's.
    pub async fn state(&self, state: &AppState) -> DbState {
        let mut last = self.0.lock().await;
        if let Some((at, db_state)) = *last
            && at.elapsed() < FRESH_FOR
        {
            return db_state;
        }
        let db_state = probe(state).await;
        *last = Some((Instant::now(), db_state));
        db_state
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    Up,
    Busy,
    /// This machine's clock is this many seconds off the database's.
    ClockSkew(i64),
    /// Writes are refused for lack of room on the database's volume.
    StorageFull,
    Down,
}

impl DbState {
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::Up => "up",
            DbState::Busy => "busy",
            DbState::ClockSkew(_) => "clock_skew",
            DbState::StorageFull => "storage_full",
            DbState::Down => "down",
        }
    }

    /// Whether the instance should be taken out of rotation.
    pub fn unavailable(self) -> bool {
        matches!(
            self,
            DbState::ClockSkew(_) | DbState::StorageFull | DbState::Down
        )
    }
}

/// Probes the database as described in the module documentation.
pub async fn probe(state: &AppState) -> DbState {
    if !state.db.prepared() {
        // Started while the database was down: its migrations have not run.
        return DbState::Down;
    }
    let pooled = tokio::time::timeout(
        POOL_WAIT,
        state.db.run(|conn| {
            db::health_check(conn)?;
            db::database_now(conn)
        }),
    )
    .await;
    let writes_wait = state
        .db
        .write_queue_age()
        .is_some_and(|age| age > WRITER_LAG);
    let pool_was_full = match pooled {
        Ok(Ok(database_now)) => {
            return match state.clock.skew(database_now) {
                Err(skew) => DbState::ClockSkew(skew.seconds),
                Ok(()) if state.db.storage().is_full() => DbState::StorageFull,
                Ok(()) if writes_wait => DbState::Busy,
                Ok(()) => DbState::Up,
            };
        }
        // The connection failed under the read: a fresh one tells whether the
        // database is gone or only that connection was.
        Ok(Err(e @ (DbError::Work(_) | DbError::StorageFull(_)))) => {
            tracing::warn!(error = %e, "health probe: the read on a pooled connection failed");
            false
        }
        Ok(Err(DbError::Unavailable(why))) => {
            tracing::warn!(%why, "health probe: no pooled connection");
            true
        }
        Err(_) => true,
    };
    let fresh = async {
        let _permit = FRESH_PROBES.acquire().await;
        let url = state.config.database_url.clone();
        web::block(move || db::health_check_fresh(&url)).await
    };
    match tokio::time::timeout(FRESH_WAIT, fresh).await {
        Ok(Ok(Ok(()))) if pool_was_full => DbState::Busy,
        Ok(Ok(Ok(()))) => DbState::Up,
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "health probe: a fresh connection failed");
            DbState::Down
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health probe: blocking pool");
            DbState::Down
        }
        Err(_) => {
            tracing::warn!("health probe: no answer from a fresh connection in time");
            DbState::Down
        }
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    page: PageCtx,
    state: &'static str,
    checked_at: String,
}

/// `GET /status`: the probe's answer for people. Down is a 503 page, so that
/// a monitor pointed at it sees the same as one pointed at `/healthz`.
pub async fn status(state: web::Data<AppState>, page: PageCtx) -> Result<HttpResponse, AppError> {
    let db_state = state.health.state(&state).await;
    let now = state.clock.now();
    let checked_at = match state.policy.cached() {
        Some(policy) => {
            let local = now.with_timezone(&policy.timezone);
            format!(
                "{} {}",
                page.t.date(local.date_naive()),
                local.format("%H:%M:%S")
            )
        }
        None => format!(
            "{} {} UTC",
            page.t.date(now.date_naive()),
            now.format("%H:%M:%S")
        ),
    };
    let code = if db_state.unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut res = render(
        &StatusPage {
            page,
            state: db_state.as_str(),
            checked_at,
        },
        code,
    )?;
    if db_state.unavailable() {
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from_static("5"),
        );
    }
    Ok(res)
}

/// `GET /healthz`: the status for everyone, the details for the operator.
pub async fn healthz(
    req: HttpRequest,
    state: web::Data<AppState>,
    access: web::Data<Access>,
) -> HttpResponse {
    let db_state = state.health.state(&state).await;
    let details = access.admits(&req);
    let body = |status: &str| {
        if !details {
            return json!({ "status": status });
        }
        let pool = state.db.pool_state();
        let mut details = json!({
            "status": status,
            "database": {
                "backend": state.db.backend().as_str(),
                "state": db_state.as_str(),
                "connections": pool.connections,
                "idle": pool.idle_connections,
            },
        });
        if let DbState::ClockSkew(seconds) = db_state {
            details["database"]["clock_skew_seconds"] = json!(seconds);
        }
        if db_state == DbState::StorageFull {
            let storage = state.db.storage();
            details["database"]["free_bytes"] = json!(storage.free_bytes());
            details["database"]["wal_bytes"] = json!(storage.wal_bytes());
            details["database"]["writes_refused"] = json!(storage.report().map(|r| r.refused));
        }
        details
    };
    match db_state {
        DbState::Up => HttpResponse::Ok().json(body("ok")),
        DbState::Busy => HttpResponse::Ok().json(body("busy")),
        DbState::ClockSkew(_) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(body("clock_skew")),
        DbState::StorageFull => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(body("storage_full")),
        DbState::Down => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(body("unavailable")),
    }
}
