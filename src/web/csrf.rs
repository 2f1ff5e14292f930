//! CSRF protection for every state-changing request: the session holds a random
//! token; each form sends it back in a hidden `csrf_token` field (urlencoded or
//! multipart), scripts in an `X-CSRF-Token` header. A request whose token is
//! missing or different is refused with 403 before any handler runs, so no route
//! can forget the check.
//!
//! The token is never read from the query string: a URL ends up in access logs,
//! `Referer` headers and browser history, and a token there outlives the request.
//! A body read to find the token is bounded and put back for the handler.

use actix_session::SessionExt;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use subtle::ConstantTimeEq;

use crate::web::errors::AppError;
use crate::web::form::read_body;
use crate::web::session;

pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";
/// Largest urlencoded form body read to find the token; larger forms are refused.
pub const MAX_FORM_BYTES: usize = 256 * 1024;
/// Largest multipart body read to find the token: room for a CSV import of every
/// store (the 2020 list of ~23,000 is about 3 MiB); larger uploads are refused.
pub const MAX_MULTIPART_BYTES: usize = 10 * 1024 * 1024;

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
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (limit, boundary) = match essence.as_str() {
        "application/x-www-form-urlencoded" => (MAX_FORM_BYTES, None),
        "multipart/form-data" => match multipart_boundary(&content_type) {
            Some(boundary) => (MAX_MULTIPART_BYTES, Some(boundary)),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    // Refused before a byte is read when the client says up front that it is too
    // large; otherwise while reading, once it is.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AppError::PayloadTooLarge);
    }
    let body = read_body(&mut req.take_payload(), limit).await?;
    let token = match boundary {
        None => find_field(&body),
        Some(boundary) => multipart_field(&body, &boundary, FIELD),
    };
    req.set_payload(Payload::from(Bytes::from(body)));
    Ok(token)
}

fn find_field(encoded: &[u8]) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned())
}

/// The `boundary` parameter of a `multipart/form-data` content type, if it is
/// one RFC 2046 allows (1–70 characters, none of them a line break).
fn multipart_boundary(content_type: &str) -> Option<String> {
    let boundary = content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| unquote(value.trim()))
    })?;
    let allowed = |c: char| c.is_ascii_graphic() || c == ' ';
    ((1..=70).contains(&boundary.len()) && boundary.chars().all(allowed))
        .then(|| boundary.to_owned())
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The value of the first part named `name` in a `multipart/form-data` body
/// (RFC 7578), or `None` if there is none or the body is not well formed. Only
/// what finding one text field needs: parts are skipped over, never decoded.
fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<String> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter opens the body, or ends a preamble.
    let mut rest = match body.strip_prefix(opening.as_bytes()) {
        Some(rest) => rest,
        None => {
            let at = find(body, delimiter.as_bytes())?;
            &body[at + delimiter.len()..]
        }
    };
    loop {
        // `--` after a delimiter closes the body.
        if rest.starts_with(b"--") {
            return None;
        }
        let line_end = find(rest, b"\r\n")?;
        if !rest[..line_end].iter().all(|&b| b == b' ' || b == b'\t') {
            return None;
        }
        rest = &rest[line_end + 2..];
        let (headers, content_start) = match rest.strip_prefix(b"\r\n") {
            Some(_) => (&rest[..0], 2),
            None => {
                let end = find(rest, b"\r\n\r\n")?;
                (&rest[..end], end + 4)
            }
        };
        let content = &rest[content_start..];
        let content_len = find(content, delimiter.as_bytes())?;
        if part_name(headers).as_deref() == Some(name) {
            return String::from_utf8(content[..content_len].to_vec()).ok();
        }
        rest = &content[content_len + delimiter.len()..];
    }
}

/// The `name` of a part, from its `Content-Disposition: form-data; name="…"`.
fn part_name(headers: &[u8]) -> Option<String> {
    let headers = std::str::from_utf8(headers).ok()?;
    headers.split("\r\n").find_map(|line| {
        let (header, value) = line.split_once(':')?;
        if !header.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        let mut params = value.split(';');
        if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
            return None;
        }
        params.find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("name")
                .then(|| unquote(value.trim()).to_owned())
        })
    })
}

/// Where `needle` first occurs in `haystack`. Linear in practice: a window
/// comparison stops at its first differing byte, and the delimiters searched for
/// hold their only line break at the start.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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

    const CT: &str = "multipart/form-data; boundary=----b0undary";

    fn multipart(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (disposition, content) in parts {
            body.extend_from_slice(
                format!(
                    "------b0undary\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{content}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(b"------b0undary--\r\n");
        body
    }

    fn token_in(body: &[u8]) -> Option<String> {
        multipart_field(body, &multipart_boundary(CT).unwrap(), FIELD)
    }

    #[test]
    fn the_boundary_is_read_quoted_or_not_and_checked() {
        assert_eq!(multipart_boundary(CT).as_deref(), Some("----b0undary"));
        assert_eq!(
            multipart_boundary("multipart/form-data; charset=utf-8; Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(multipart_boundary("multipart/form-data"), None);
        assert_eq!(multipart_boundary("multipart/form-data; boundary="), None);
        assert_eq!(
            multipart_boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            None
        );
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=a\rb"),
            None
        );
    }

    #[test]
    fn the_token_part_is_found_before_after_or_among_a_file() {
        let csv = "store_code,date,quantity\r\n31802095,2020-03-12,250\r\n";
        let file = (
            "name=\"file\"; filename=\"supply.csv\"\r\nContent-Type: text/csv",
            csv,
        );
        let token = ("name=\"csrf_token\"", "t0k3n");
        for parts in [
            vec![token, file],
            vec![file, token],
            vec![file, token, file],
        ] {
            assert_eq!(token_in(&multipart(&parts)).as_deref(), Some("t0k3n"));
        }
        let unquoted = ("Name=csrf_token", "t0k3n");
        assert_eq!(token_in(&multipart(&[unquoted])).as_deref(), Some("t0k3n"));
    }

    #[test]
    fn a_token_mentioned_only_inside_another_part_is_not_found() {
        let inside = "--x\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nforged";
        let body = multipart(&[
            ("name=\"file\"; filename=\"csrf_token\"", inside),
            ("name=\"csrf_token_2\"", "other"),
            ("name=\"note\"", "csrf_token=forged"),
        ]);
        assert_eq!(token_in(&body), None);
    }

    #[test]
    fn malformed_bodies_have_no_token() {
        let good = multipart(&[("name=\"csrf_token\"", "t")]);
        assert_eq!(token_in(&good).as_deref(), Some("t"));
        for cut in [0, 5, 20, 40, 60, good.len() - 25] {
            assert_eq!(token_in(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(token_in(b"no delimiter at all"), None);
        assert_eq!(token_in(b"------b0undary--\r\n"), None);
        let mut not_utf8 = multipart(&[("name=\"csrf_token\"", "t?")]);
        let at = not_utf8.iter().position(|&b| b == b'?').unwrap();
        not_utf8[at] = 0xff;
        assert_eq!(token_in(&not_utf8), None);
    }

    #[test]
    fn a_preamble_and_a_part_without_headers_are_allowed() {
        let body = b"preamble\r\n------b0undary\r\n\r\nno headers\r\n------b0undary\r\n\
            Content-Disposition: form-data; name=\"csrf_token\"\r\n\r\nt\r\n------b0undary--";
        assert_eq!(token_in(body).as_deref(), Some("t"));
    }
}
