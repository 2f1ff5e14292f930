//! The language of a request, and the switch on every page: a small form that
//! sets the `lang` cookie.

use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::http::header::{ACCEPT_LANGUAGE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::i18n::Lang;
use crate::web::{safe_next, see_other};

pub const LANG_COOKIE: &str = "lang";

/// The language of a request: the visitor's explicit choice (cookie), else the
/// browser's preference.
pub fn of_request(req: &HttpRequest) -> Lang {
    if let Some(lang) = req
        .cookie(LANG_COOKIE)
        .and_then(|c| Lang::from_code(c.value()))
    {
        return lang;
    }
    req.headers()
        .get(ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Lang::Ko, Lang::from_accept_language)
}

#[derive(Deserialize)]
pub struct SwitchForm {
    lang: String,
    #[serde(default)]
    next: String,
}

/// `POST /language`: remembers the choice for a year and goes back.
pub async fn switch(form: web::Form<SwitchForm>) -> HttpResponse {
    let next = safe_next(&form.next).to_owned();
    let Some(lang) = Lang::from_code(&form.lang) else {
        return see_other(&next);
    };
    let cookie = Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .max_age(Duration::days(365))
        .same_site(SameSite::Lax)
        .http_only(true)
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((LOCATION, next))
        .finish()
}
