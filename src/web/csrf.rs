//! CSRF protection for every state-changing request: the session holds a random
//! token; each form sends it back in a hidden `csrf_token` field (multipart
//! uploads in the form's action URL, scripts in an `X-CSRF-Token` header). A
//! request whose token is missing or different is refused with 403 before any
//! handler runs, so no route can forget the check.

use actix_session::SessionExt;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use subtle::ConstantTimeEq;

use crate::web::errors::AppError;
use crate::web::form::read_form_body;
use crate::web::session;

pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
/// Largest urlencoded form body read to find the token; larger forms are refused.
pub const MAX_FORM_BYTES: usize = 256 * 1024;

pub async fn protect(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let expected = session::existing_csrf_token(&req.get_session());
    let sent = match sent_token(&mut req).await {
        Ok(token) => token,
        Err(e) => return Ok(refuse(req, e)),
    };
    let valid = match (&expected, &sent) {
        (Some(expected), Some(sent)) => bool::from(expected.as_bytes().ct_eq(sent.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::info!(path = %req.path(), "refused a request without a valid CSRF token");
        return Ok(refuse(req, AppError::Csrf));
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn refuse<B>(req: ServiceRequest, e: AppError) -> ServiceResponse<actix_web::body::EitherBody<B>> {
    req.into_response(e.error_response()).map_into_right_body()
}

/// Finds the token a request carries, putting a form body back for the handler.
async fn sent_token(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    if let Some(v) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return Ok(Some(v.to_owned()));
    }
    if let Some(token) = find_field(req.query_string().as_bytes()) {
        return Ok(Some(token));
    }
    let urlencoded = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !urlencoded {
        return Ok(None);
    }
    let body = read_form_body(&mut req.take_payload()).await?;
    let token = find_field(&body);
    req.set_payload(Payload::from(Bytes::from(body)));
    Ok(token)
}

fn find_field(encoded: &[u8]) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_among_other_fields() {
        assert_eq!(
            find_field(b"a=1&csrf_token=abc%2Bdef&b=2").as_deref(),
            Some("abc+def")
        );
        assert_eq!(find_field(b"a=1&b=2"), None);
        assert_eq!(find_field(b"\xff\xfe=&csrf_token=x").as_deref(), Some("x"));
    }
}
