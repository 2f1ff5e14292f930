//! Request limits as handlers use them: who the client is, and a hit counted
//! through the database's write door that answers the 429 page when over.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::config::TrustedProxies;
use crate::i18n::Tr;

use crate::rate_limit::{self, Decision, Limit};
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::render;

/// The client address to limit by ([`client_addr`](crate::web::client_addr)),
/// as text.
pub fn client_ip(req: &HttpRequest, proxies: &TrustedProxies) -> String {
    crate::web::client_addr::of(req, proxies)
        .address
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

/// Counts one hit on `bucket` now.
pub async fn hit(state: &AppState, bucket: String, limit: Limit) -> Result<Decision, AppError> {
    let now = state.clock.now();
    // One self-contained statement: no transaction around it on PostgreSQL.
    Ok(state
        .db
        .write_statements(move |tx| rate_limit::hit(tx, &bucket, limit, now))
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

/// Counts one attempt on every bucket at once, all or none (see
/// [`rate_limit::hit_all`]).
pub async fn hit_all(
    state: &AppState,
    buckets: Vec<(String, Limit)>,
) -> Result<Decision, AppError> {
    let now = state.clock.now();
    Ok(state
        .db
        .write(move |tx| rate_limit::hit_all(tx, &buckets, now))
        .await?)
}

/// What a form says when its sender must wait: when to try again, in whole
/// minutes (rounded up), and that what they typed is still there.
pub fn wait_message(t: &Tr, retry_after_secs: u64) -> String {
    match retry_after_secs.div_ceil(60) {
        0 | 1 => t.get("form.error.too_many_one").to_owned(),
        minutes => t.fmt("form.error.too_many", &[("minutes", &minutes)]),
    }
}

/// A page sent back with `Retry-After` (a form over a limit, or while hashing
/// is saturated).
pub fn with_retry_after(
    page: Result<HttpResponse, AppError>,
    retry_after_secs: u64,
) -> Result<HttpResponse, AppError> {
    let mut page = page?;
    page.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(retry_after_secs),
    );
    Ok(page)
}

/// A form sent back because its sender is over a limit: 429 and `Retry-After`.
pub fn form_over_limit(
    page: &impl Template,
    retry_after_secs: u64,
) -> Result<HttpResponse, AppError> {
    with_retry_after(
        render(page, StatusCode::TOO_MANY_REQUESTS),
        retry_after_secs,
    )
}

/// Counts one hit against a limit on the client's address (`ACTION:ip:ADDRESS`).
pub async fn check_client(
    state: &AppState,
    req: &HttpRequest,
    action: &str,
    per_ip: Limit,
) -> Result<(), AppError> {
    let ip = client_ip(req, &state.config.trusted_proxies);
    check(state, format!("{action}:ip:{ip}"), per_ip).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::wait_message;
    use crate::i18n::{Catalog, Lang, Tr};

    #[test]
    fn the_wait_is_said_in_whole_minutes_rounded_up() {
        let t = Tr::new(Arc::new(Catalog::load().unwrap()), Lang::En);
        assert!(
            wait_message(&t, 1).contains(" 1 minute"),
            "{}",
            wait_message(&t, 1)
        );
        assert!(wait_message(&t, 60).contains(" 1 minute"));
        assert!(wait_message(&t, 61).contains(" 2 minutes"));
        assert!(wait_message(&t, 800).contains(" 14 minutes"));
    }
}
