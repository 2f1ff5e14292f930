//! Request limits as handlers use them: who the client is, and a hit counted
//! through the database's write door that answers the 429 page when over.

use actix_web::HttpRequest;

use crate::rate_limit::{self, Decision, Limit};
use crate::state::AppState;
use crate::web::errors::AppError;

/// The client address to limit by: the peer, or the left-most forwarded address
/// when the app is configured to sit behind a trusted proxy.
pub fn client_ip(req: &HttpRequest, trust_forwarded: bool) -> String {
    if trust_forwarded && let Some(ip) = req.connection_info().realip_remote_addr() {
        return ip.to_owned();
    }
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// Counts one hit on `bucket` now.
pub async fn hit(state: &AppState, bucket: String, limit: Limit) -> Result<Decision, AppError> {
    let now = state.clock.now();
    Ok(state
        .db
        .write(move |tx| rate_limit::hit(tx, &bucket, limit, now))
        .await?)
}

/// Counts one hit; over the limit, the visitor gets the 429 page.
pub async fn check(state: &AppState, bucket: String, limit: Limit) -> Result<(), AppError> {
    match hit(state, bucket, limit).await? {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after_secs } => {
            Err(AppError::TooManyRequests { retry_after_secs })
        }
    }
}

/// Counts one hit against a limit on the client's address (`ACTION:ip:ADDRESS`).
pub async fn check_client(
    state: &AppState,
    req: &HttpRequest,
    action: &str,
    per_ip: Limit,
) -> Result<(), AppError> {
    let ip = client_ip(req, state.config.trust_forwarded);
    check(state, format!("{action}:ip:{ip}"), per_ip).await
}
