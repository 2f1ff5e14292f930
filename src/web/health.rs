//! `GET /healthz`: is this instance able to serve? 200 with the database's state,
//! or 503 when the database does not answer in time.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::state::AppState;

/// A health probe must answer quickly even when the database hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let backend = state.db.backend().as_str();
    let check = state.db.run(db::health_check);
    let (ok, detail) = match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (false, Some("timed out".to_owned())),
    };
    let pool = state.db.pool_state();
    if ok {
        HttpResponse::Ok().json(json!({
            "status": "ok",
            "database": {
                "backend": backend,
                "state": "up",
                "connections": pool.connections,
                "idle": pool.idle_connections,
            },
        }))
    } else {
        if let Some(detail) = &detail {
            tracing::warn!(%detail, "health check failed");
        }
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(json!({
                "status": "unavailable",
                "database": { "backend": backend, "state": "down" },
            }))
    }
}
