//! The language switch on every page: a small form that sets the `lang` cookie.

use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::web::i18n::{LANG_COOKIE, Lang};
use crate::web::{safe_next, see_other};

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
