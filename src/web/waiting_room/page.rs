//! The waiting page: `503`, `Retry-After`, the place in line and the wait in
//! the visitor's language, and a way back in that loses nothing.

use actix_web::cookie::Cookie;
use actix_web::dev::ServiceRequest;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpMessage, HttpResponse};
use askama::Template;

use super::{Held, Wait};
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::form::{FormData, read_body, truncate};
use crate::web::page::PageCtx;
use crate::web::render;

/// The fields of the store page's booking form, carried through the wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Booking {
    pub window_id: String,
    pub quantity: String,
    pub request_id: String,
}

impl Booking {
    /// The fields as posted, bounded; the booking checks them when it runs.
    pub fn from_form(form: &FormData) -> Booking {
        let field = |name| truncate(form.get(name), 64);
        Booking {
            window_id: field("window_id"),
            quantity: field("quantity"),
            request_id: field("request_id"),
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

#[derive(Template)]
#[template(path = "waiting_room.html")]
struct WaitingPage {
    page: PageCtx,
    retry_after_secs: u64,
    position_text: String,
    wait_text: String,
    retry_text: String,
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
        Held::Login => Again::Open("/login".to_owned()),
        Held::Reservation => {
            // The CSRF check before the room has read the body and put it back.
            let body = read_body(&mut req.take_payload(), crate::web::csrf::MAX_FORM_BYTES).await?;
            let form = FormData::from_bytes(&body).map_err(|_| AppError::UnreadableForm)?;
            Again::Post(Booking::from_form(&form))
        }
    };
    let page = PageCtx::from_request(req.request());
    let t = &page.t;
    let position_text = t.fmt("waiting_room.position", &[("position", &wait.position)]);
    let wait_text = match wait.wait_secs.div_ceil(60) {
        0 | 1 => t.get("waiting_room.wait_soon").to_owned(),
        minutes => t.fmt("waiting_room.wait_minutes", &[("minutes", &minutes)]),
    };
    let retry_text = t.fmt(
        "waiting_room.retry_in",
        &[("seconds", &wait.retry_after_secs)],
    );
    let mut res = render(
        &WaitingPage {
            page,
            retry_after_secs: wait.retry_after_secs,
            position_text,
            wait_text,
            retry_text,
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
