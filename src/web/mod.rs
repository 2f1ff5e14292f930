//! The shared web layer: errors → pages, sessions, CSRF, languages, and the few
//! pages that belong to no feature (home, health, language switch).

pub mod access_log;
pub mod auth;
pub mod body_timeout;
pub mod client_addr;
pub mod connections;
pub mod csrf;
pub mod device;
pub mod errors;
pub mod form;
pub mod health;
pub mod home;
pub mod language;
pub mod limits;
pub mod metrics;
pub mod page;
pub mod paging;
pub mod session;
pub mod signed;
pub mod upload;
pub mod waiting_room;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::web::errors::{AppError, FinalBody};

/// Renders a page with a status of its own (a form sent back with errors, say),
/// marked final so the error-page middleware keeps it.
pub fn render(template: &impl Template, status: StatusCode) -> Result<HttpResponse, AppError> {
    let html = template.render()?;
    let mut res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html);
    res.extensions_mut().insert(FinalBody);
    Ok(res)
}

/// `303 See Other` to `location`: where every form post goes on success.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location.to_owned()))
        .finish()
}

/// A local path to go back to after an action, or `/` when the given one could
/// lead off the site.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if ok { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next("/stores?q=a"), "/stores?q=a");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/a\r\nSet-Cookie: x"), "/");
        assert_eq!(safe_next(""), "/");
    }
}
