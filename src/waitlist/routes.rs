//! `POST /windows/{id}/waitlist` (`person`, `quantity`, and `whole_day=1` to
//! wait in every full window of that day at once): a place in a full
//! window's line, then back to the store page, which shows the place; a
//! refusal shows the store page again with the message next to the window.
//! `POST /windows/{id}/waitlist/leave` (`person`): out of the line, then back
//! to the store page, or to `/reservations` when the form came from there
//! (`next`).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::NaiveDate;

use crate::db::DbError;
use crate::quantity::Quantity;
use crate::reservations::booking::ForWhom;
use crate::reservations::queries;
use crate::reservations::rules::{self, Refusal};
use crate::state::AppState;
use crate::stores::page::{Retry, store_page};
use crate::waitlist::line::{self, Join, JoinError, NotJoined};
use crate::web::auth::Citizen;
use crate::web::errors::AppError;
use crate::web::form::{FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/windows/{id}/waitlist", web::post().to(join))
        .route("/windows/{id}/waitlist/leave", web::post().to(leave));
}

/// A window id from the path: anything but a number is no window.
fn window_id(path: &str) -> Result<i64, AppError> {
    path.parse().map_err(|_| AppError::NotFound)
}

/// The store page's address showing `window_id`, or 404.
async fn window_href(state: &AppState, window_id: i64) -> Result<(String, NaiveDate), AppError> {
    state
        .db
        .run(move |conn| queries::store_code_of_window(conn, window_id))
        .await?
        .ok_or(AppError::NotFound)
}

/// A refusal's status, its `data-refusal` name and its words.
fn not_joined(
    n: &NotJoined,
    t: &crate::i18n::Tr,
    tz: chrono_tz::Tz,
) -> (StatusCode, &'static str, String) {
    match n {
        NotJoined::Refused(r) => r.answered(t, tz),
        NotJoined::NotFull => (
            StatusCode::CONFLICT,
            "waitlist_not_full",
            t.get("waitlist.refused.not_full").to_owned(),
        ),
        NotJoined::Started => (
            StatusCode::CONFLICT,
            "waitlist_started",
            t.get("waitlist.refused.started").to_owned(),
        ),
        NotJoined::AlreadyWaiting => (
            StatusCode::CONFLICT,
            "waitlist_already",
            t.get("waitlist.refused.already").to_owned(),
        ),
    }
}

async fn join(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let window_id = window_id(&path)?;
    let typed = truncate(form.get("quantity").trim(), 20);
    let typed_person = truncate(form.get("person").trim(), 20);
    let policy = state.policy().await?;
    let now = state.clock.now();
    let refusal = match (typed.parse::<Quantity>(), ForWhom::parse(&typed_person)) {
        (Err(_), _) => NotJoined::Refused(Refusal::BadQuantity {
            max: rules::MAX_QUANTITY,
        }),
        (Ok(_), None) => NotJoined::Refused(Refusal::UnknownPerson),
        (Ok(quantity), Some(person)) => {
            let asked = Join {
                user_id: citizen.user.id,
                window_id,
                person,
                quantity,
                now,
                mail_lang: page.t.code(),
                whole_day: form.get("whole_day") == "1",
            };
            let for_tx = policy.clone();
            match state
                .db
                .write(move |tx| line::join_day(tx, &asked, &for_tx))
                .await
            {
                Ok(joined) => {
                    let flash = if joined > 1 {
                        "waitlist.flash.joined_day"
                    } else {
                        "waitlist.flash.joined"
                    };
                    session::set_flash(&session, flash);
                    let (code, day) = window_href(&state, window_id).await?;
                    return Ok(see_other(&format!(
                        "/stores/{code}?day={day}#window-{window_id}"
                    )));
                }
                Err(DbError::Work(JoinError::NotJoined(n))) => n,
                Err(e) => return Err(e.into()),
            }
        }
    };
    if refusal == NotJoined::Refused(Refusal::UnknownWindow) {
        return Err(AppError::NotFound);
    }
    let (status, kind, message) = not_joined(&refusal, &page.t, policy.timezone);
    let (code, day) = window_href(&state, window_id).await?;
    let retry = Retry {
        window_id,
        quantity: typed,
        person: typed_person,
        message,
        kind,
    };
    store_page(&state, page, code, Some(day), Some(retry), status).await
}

async fn leave(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    path: web::Path<String>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let window_id = window_id(&path)?;
    let person = ForWhom::parse(&truncate(form.get("person").trim(), 20))
        .ok_or_else(|| AppError::BadRequest("person names nobody".into()))?;
    let user_id = citizen.user.id;
    let left = state
        .db
        .write(move |tx| line::leave(tx, user_id, window_id, person))
        .await?;
    session::set_flash(
        &session,
        if left {
            "waitlist.flash.left"
        } else {
            "waitlist.flash.not_waiting"
        },
    );
    if form.get("next") == "/reservations" {
        return Ok(see_other("/reservations"));
    }
    let (code, day) = window_href(&state, window_id).await?;
    Ok(see_other(&format!(
        "/stores/{code}?day={day}#window-{window_id}"
    )))
}
