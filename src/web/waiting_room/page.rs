//! The waiting page: `503`, `Retry-After`, the place in line and the wait in
//! the visitor's language, and a way back in that loses nothing.

use actix_web::cookie::Cookie;
use actix_web::dev::ServiceRequest;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpResponse};
use askama::Template;

use super::countdown::Countdown;
use super::{Held, Wait};
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::form::{FormData, read_body, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, safe_next};

/// The fields of the store page's booking form, carried through the wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Booking {
    pub window_id: String,
    pub quantity: String,
    pub request_id: String,
    /// Whom for: `self` or a dependant's id (empty: the citizen).
    pub person: String,
}

impl Booking {
    /// The fields as posted, bounded; the booking checks them when it runs.
    pub fn from_form(form: &FormData) -> Booking {
        let field = |name| truncate(form.get(name), 64);
        Booking {
            window_id: field("window_id"),
            quantity: field("quantity"),
            request_id: field("request_id"),
            person: field("person"),
        }
    }
}

/// How the page brings its visitor back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Again {
    /// Reload this address (a `GET` page).
    Reload,
    /// Open this address (the login form, after a login post).
    Open(String),
    /// Send the booking again.
    Post(Booking),
}

/// The form posted (the CSRF check before the room has read the body, bounded,
/// and put it back).
async fn posted_form(req: &mut ServiceRequest) -> Result<FormData, AppError> {
    let body = read_body(&mut req.take_payload(), crate::web::csrf::MAX_FORM_BYTES).await?;
    FormData::from_bytes(&body).map_err(|_| AppError::UnreadableForm)
}

/// The login form again, with where the login was to lead (never the
/// password: it is not written into the page).
fn login_again(form: &FormData) -> String {
    match safe_next(form.get("next")) {
        "/" => "/login".to_owned(),
        next => format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
    }
}

#[derive(Template)]
#[template(path = "waiting_room.html")]
struct WaitingPage {
    page: PageCtx,
    position_text: String,
    wait_text: String,
    countdown: Countdown,
    again: Again,
}

/// The waiting page for `wait`, and the ticket's cookie when it is new.
pub async fn waiting_page(
    req: &mut ServiceRequest,
    state: &AppState,
    held: Held,
    wait: &Wait,
) -> Result<HttpResponse, AppError> {
    let again = match held {
        Held::LoginForm | Held::StorePage => Again::Reload,
        Held::Login => Again::Open(login_again(&posted_form(req).await?)),
        Held::Reservation => Again::Post(Booking::from_form(&posted_form(req).await?)),
    };
    let page = PageCtx::from_request(req.request());
    let t = &page.t;
    let position_text = t.fmt("waiting_room.position", &[("position", &wait.position)]);
    let wait_text = match wait.wait_secs.div_ceil(60) {
        0 | 1 => t.get("waiting_room.wait_soon").to_owned(),
        minutes => t.fmt("waiting_room.wait_minutes", &[("minutes", &minutes)]),
    };
    let url = match &again {
        Again::Reload => Some(page.here.clone()),
        Again::Open(url) => Some(url.clone()),
        Again::Post(_) => None,
    };
    let countdown = Countdown::retry(t, wait.retry_after_secs, url);
    let mut res = render(
        &WaitingPage {
            page,
            position_text,
            wait_text,
            countdown,
            again,
        },
        StatusCode::SERVICE_UNAVAILABLE,
    )?;
    res.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(wait.retry_after_secs),
    );
    if wait.new_ticket {
        let secure = state.config.app_env == crate::config::AppEnv::Production;
        let cookie: Cookie<'static> = wait.ticket.cookie(&state.keys.waiting_room, secure);
        res.add_cookie(&cookie).map_err(AppError::internal)?;
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn a_login_waits_for_the_login_form_with_where_it_led_and_never_the_password() {
        let posted = form(&[
            ("email", "a@example.com"),
            ("password", "secret"),
            ("next", "/stores/11800001"),
        ]);
        assert_eq!(login_again(&posted), "/login?next=%2Fstores%2F11800001");
        assert_eq!(login_again(&form(&[("next", "//evil.example")])), "/login");
        assert_eq!(login_again(&form(&[])), "/login");
    }

    #[test]
    fn a_booking_keeps_its_fields_bounded() {
        let long = "9".repeat(500);
        let kept = Booking::from_form(&form(&[
            ("window_id", "12"),
            ("quantity", &long),
            ("request_id", "abc"),
            ("person", "7"),
            ("password", "not kept"),
        ]));
        assert_eq!(kept.window_id, "12");
        assert_eq!(kept.quantity.chars().count(), 64);
        assert_eq!(kept.request_id, "abc");
        assert_eq!(kept.person, "7");
    }
}
