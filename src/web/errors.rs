//! One error type for every request path, and the middleware that turns any
//! error status into a page in the visitor's language.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use crate::db::DbError;
use crate::db::storage::storage_full_in_chain;
use crate::web::page::PageCtx;
use crate::web::waiting_room::countdown::Countdown;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("missing or invalid CSRF token")]
    Csrf,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A form whose fields are not text (invalid UTF-8): no field can be trusted,
    /// so there is no form to show back, only a page that says so.
    #[error("a form field is not valid UTF-8")]
    UnreadableForm,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("authentication required")]
    LoginRequired { next: String },
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A write refused for lack of room on the database's volume: 503, with
    /// a page that says storage is full. Not logged per request: the
    /// database's storage logs the episode once (`db::storage`).
    #[error("storage full: {0}")]
    StorageFull(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> AppError {
        AppError::Internal(e.into())
    }
}

/// Work that failed because the connection died under it (the database went
/// away after the connection was taken from the pool) is the database being
/// unavailable, answered 503 like a connection that could not be had at all;
/// work that failed for lack of room (read outside the write door, which
/// already says so) is storage full.
impl<E: Into<anyhow::Error>> From<DbError<E>> for AppError {
    fn from(e: DbError<E>) -> Self {
        match e {
            DbError::Unavailable(why) => AppError::Unavailable(why),
            DbError::StorageFull(why) => AppError::StorageFull(why),
            DbError::Work(e) => {
                let e: anyhow::Error = e.into();
                if crate::db::lost_connection_in_chain(e.as_ref()) {
                    AppError::Unavailable(format!("{e:#}"))
                } else if let Some(full) = e
                    .chain()
                    .find_map(|cause| storage_full_in_chain(cause, || None))
                {
                    AppError::StorageFull(full.to_string())
                } else {
                    AppError::Internal(e)
                }
            }
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) | AppError::UnreadableForm => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::StorageFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        match self {
            AppError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            AppError::Unavailable(why) => tracing::warn!(%why, "service unavailable"),
            _ => {}
        }
        if let AppError::LoginRequired { next } = self {
            let target = format!(
                "/login?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            AppError::TooManyRequests { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            AppError::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            // Room is not made in seconds: someone has to free it.
            AppError::StorageFull(_) => {
                res.insert_header((header::RETRY_AFTER, STORAGE_FULL_RETRY_AFTER));
            }
            _ => {}
        }
        let kind = match self {
            AppError::Csrf => ErrorKind::Csrf,
            AppError::UnreadableForm => ErrorKind::UnreadableForm,
            AppError::StorageFull(_) => ErrorKind::StorageFull,
            _ => ErrorKind::Status,
        };
        let mut res = res.body(self.status_code().canonical_reason().unwrap_or("error"));
        res.extensions_mut().insert(kind);
        res
    }
}

/// `Retry-After` of the storage-full page, in seconds.
pub const STORAGE_FULL_RETRY_AFTER: &str = "30";

/// What an error response means, for the page that replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Status,
    Csrf,
    UnreadableForm,
    StorageFull,
}

impl ErrorKind {
    /// The page's `data-reason`, where the status alone does not say it.
    fn reason(kind: Option<ErrorKind>) -> &'static str {
        match kind {
            Some(ErrorKind::StorageFull) => "storage_full",
            _ => "",
        }
    }
}

/// Marks a response whose body is already final (a page with form errors, JSON),
/// so the error-page middleware leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct FinalBody;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: PageCtx,
    status: u16,
    reason: &'static str,
    title_key: &'static str,
    message_key: &'static str,
    /// On the 429 page: the wait its `Retry-After` set, counted down, and
    /// where "try again" leads.
    countdown: Option<Countdown>,
    again_href: String,
}

fn keys_for(status: StatusCode, kind: Option<ErrorKind>) -> (&'static str, &'static str) {
    match (status.as_u16(), kind) {
        (403, Some(ErrorKind::Csrf)) => ("error.csrf.title", "error.csrf.message"),
        (400, Some(ErrorKind::UnreadableForm)) => (
            "error.unreadable_form.title",
            "error.unreadable_form.message",
        ),
        (400, _) => ("error.400.title", "error.400.message"),
        (401 | 403, _) => ("error.403.title", "error.403.message"),
        (404 | 405, _) => ("error.404.title", "error.404.message"),
        (408, _) => ("error.408.title", "error.408.message"),
        (413, _) => ("error.413.title", "error.413.message"),
        (422, _) => ("error.422.title", "error.422.message"),
        (429, _) => ("error.429.title", "error.429.message"),
        (503, Some(ErrorKind::StorageFull)) => {
            ("error.storage_full.title", "error.storage_full.message")
        }
        (503, _) => ("error.503.title", "error.503.message"),
        (s, _) if s < 500 => ("error.400.title", "error.400.message"),
        _ => ("error.500.title", "error.500.message"),
    }
}

/// Renders the error page for `status` in the request's language.
pub fn error_page(req: &HttpRequest, status: StatusCode) -> HttpResponse {
    render_error(req, status, None, None)
}

fn render_error(
    req: &HttpRequest,
    status: StatusCode,
    kind: Option<ErrorKind>,
    retry_after_secs: Option<u64>,
) -> HttpResponse {
    let (title_key, message_key) = keys_for(status, kind);
    let page = PageCtx::from_request(req);
    let countdown = match retry_after_secs {
        Some(seconds) if status == StatusCode::TOO_MANY_REQUESTS => {
            Some(too_many_countdown(&page, req.method(), seconds))
        }
        _ => None,
    };
    let again_href = if req.method() == Method::GET || req.method() == Method::HEAD {
        page.here.clone()
    } else {
        form_page(req)
    };
    let page = ErrorPage {
        page,
        status: status.as_u16(),
        reason: ErrorKind::reason(kind),
        title_key,
        message_key,
        countdown,
        again_href,
    };
    let mut res = match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(status.canonical_reason().unwrap_or("error"))
        }
    };
    res.extensions_mut().insert(FinalBody);
    res
}

/// Replaces the body of every 4xx/5xx response that is not already final (from
/// `AppError`, a failed extractor, an unknown route) with the error page.
pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Handlers' and extractors' errors arrive here as responses; the request must
    // not be cloned before routing, which needs it unshared.
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.response().extensions().get::<FinalBody>().is_some()
        || is_json(res.response())
    {
        return Ok(res);
    }
    let kind = res.response().extensions().get::<ErrorKind>().copied();
    let (req, old) = res.into_parts();
    let retry_after_secs = old
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut page = render_error(&req, status, kind, retry_after_secs);
    for name in [header::RETRY_AFTER, header::SET_COOKIE, header::ALLOW] {
        for value in old.headers().get_all(&name) {
            page.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, page))
}

/// A page that was only read opens itself again when the wait is over; a
/// refused form cannot be sent again from here (its fields are gone), so the
/// page says when its sender may try again.
fn too_many_countdown(page: &PageCtx, method: &Method, seconds: u64) -> Countdown {
    if method == Method::GET || method == Method::HEAD {
        Countdown::retry(&page.t, seconds, Some(page.here.clone()))
    } else {
        Countdown::by_hand(&page.t, seconds)
    }
}

/// The page a refused form was sent from, when the browser said so and it is
/// one of ours; the home page otherwise.
fn form_page(req: &HttpRequest) -> String {
    let host = req.connection_info().host().to_owned();
    req.headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://"))
        .and_then(|(_, rest)| rest.strip_prefix(host.as_str()))
        .map_or_else(
            || "/".to_owned(),
            |path| crate::web::safe_next(path).to_owned(),
        )
}

fn is_json(res: &HttpResponse) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    use super::*;
    use crate::accounts::service::AccountError;

    fn db_error(kind: DatabaseErrorKind) -> DieselError {
        DieselError::DatabaseError(kind, Box::new("from the database".to_owned()))
    }

    #[test]
    fn a_connection_lost_during_the_work_is_unavailable_not_internal() {
        let direct: AppError = DbError::Work(db_error(DatabaseErrorKind::ClosedConnection)).into();
        assert_eq!(direct.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let wrapped: AppError = DbError::Work(AccountError::Db(db_error(
            DatabaseErrorKind::ClosedConnection,
        )))
        .into();
        assert_eq!(wrapped.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let in_anyhow: AppError = DbError::Work(
            anyhow::Error::from(db_error(DatabaseErrorKind::ClosedConnection)).context("loading"),
        )
        .into();
        assert_eq!(in_anyhow.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_write_refused_for_lack_of_room_is_503_storage_full_wherever_it_is_read() {
        let refused: AppError =
            DbError::<DieselError>::StorageFull("database or disk is full".into()).into();
        let found_in_work: AppError = DbError::Work(AccountError::Db(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database or disk is full".to_owned()),
        )))
        .into();
        for e in [&refused, &found_in_work] {
            assert!(matches!(e, AppError::StorageFull(_)), "{e:?}");
            assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
            let res = e.error_response();
            assert_eq!(
                res.headers().get(header::RETRY_AFTER).unwrap(),
                STORAGE_FULL_RETRY_AFTER
            );
            assert_eq!(
                res.extensions().get::<ErrorKind>(),
                Some(&ErrorKind::StorageFull)
            );
        }
        // Any other unknown database error stays a 500.
        let other: AppError = DbError::Work(db_error(DatabaseErrorKind::Unknown)).into();
        assert_eq!(other.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_storage_full_page_has_its_own_words() {
        assert_eq!(
            keys_for(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(ErrorKind::StorageFull)
            ),
            ("error.storage_full.title", "error.storage_full.message")
        );
        assert_eq!(
            keys_for(StatusCode::SERVICE_UNAVAILABLE, Some(ErrorKind::Status)),
            ("error.503.title", "error.503.message")
        );
    }

    #[test]
    fn other_database_failures_stay_internal_errors() {
        let e: AppError = DbError::Work(db_error(DatabaseErrorKind::CheckViolation)).into();
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
