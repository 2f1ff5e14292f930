//! `GET,POST /dependants` and `POST /dependants/{id}/remove`: the people a
//! citizen books for, with what each has left of the quota, the form that
//! adds one (`name`, `national_id`) and a button that removes one. The work
//! is in [`service`].
//!
//! As at sign-up, the national ID typed is parsed, hashed and dropped: a form
//! sent back keeps only its front six digits (the birth date), and the list
//! shows it masked.

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};

use crate::accounts::email::DisplayName;
use crate::accounts::national_id::NationalId;
use crate::accounts::routes::{SignupValues, national_id_field};
use crate::db::DbError;
use crate::dependants::queries::with_quota;
use crate::dependants::rules::{self, Refusal, RemoveRefusal};
use crate::dependants::service::{self, AddError, NewDependant, RemoveError};
use crate::policy::Policy;
use crate::rate_limit::Decision;
use crate::reservations::quota_view::{self, QuotaLine};
use crate::reservations::rules::{birth_year, today};
use crate::state::AppState;
use crate::web::auth::Citizen;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::limits;
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dependants", web::get().to(show))
        .route("/dependants", web::post().to(add))
        .route("/dependants/{id}/remove", web::post().to(remove));
}

/// One dependant in the list.
pub struct Row {
    pub id: i64,
    pub name: String,
    /// `120101-3******`.
    pub national_id: String,
    pub birth_year: i32,
    /// Reservations made for them that are still active.
    pub active: i64,
    pub quota_lines: Vec<QuotaLine>,
}

/// What the add form says back: the name, and of the national ID only the
/// front.
#[derive(Default)]
pub struct Values {
    pub name: String,
    pub national_id_front: String,
}

#[derive(Template)]
#[template(path = "dependants/list.html")]
struct DependantsPage {
    page: PageCtx,
    verified: bool,
    rows: Vec<Row>,
    /// The list is at the policy's `max_dependants`: no form.
    full: bool,
    full_text: String,
    rule_text: String,
    values: Values,
    errors: FieldErrors,
    /// `data-refusal` of a refused action.
    refusal: Option<&'static str>,
}

/// What a post sends back to the page.
#[derive(Default)]
struct Back {
    values: Values,
    errors: FieldErrors,
    refusal: Option<&'static str>,
}

async fn dependants_page(
    state: &AppState,
    citizen: &Citizen,
    page: PageCtx,
    back: Back,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let now = state.clock.now();
    let (user_id, for_read) = (citizen.user.id, policy.clone());
    let listed = state
        .db
        .run(move |conn| with_quota(conn, &for_read, user_id, now))
        .await?;
    let t = &page.t;
    let day = today(&policy, now);
    let rows: Vec<Row> = listed
        .into_iter()
        .map(|(d, periods)| Row {
            id: d.id,
            birth_year: birth_year(d.birth_date),
            national_id: d.national_id_masked,
            active: d.active,
            quota_lines: quota_view::lines(t, &policy, day, &periods),
            name: d.name,
        })
        .collect();
    let max = policy.max_dependants;
    let full = rows.len() >= usize::try_from(max).unwrap_or(0);
    render(
        &DependantsPage {
            verified: citizen.user.email_verified,
            full,
            full_text: t.fmt("dependants.full", &[("max", &max)]),
            rule_text: rules::proxy_rule_text(t, &policy),
            rows,
            values: back.values,
            errors: back.errors,
            refusal: back.refusal,
            page,
        },
        status,
    )
}

async fn show(
    state: web::Data<AppState>,
    citizen: Citizen,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    dependants_page(&state, &citizen, page, Back::default(), StatusCode::OK).await
}

/// A refusal's status.
fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Unverified => StatusCode::FORBIDDEN,
        Refusal::OutsideProxyYears { .. } | Refusal::Oneself => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::TooMany { .. } | Refusal::AlreadyYours | Refusal::Unavailable => {
            StatusCode::CONFLICT
        }
    }
}

/// Puts the refusal next to its field (or over the form) and names it.
fn refused(back: &mut Back, page: &PageCtx, r: &Refusal) -> StatusCode {
    let message = r.message(&page.t);
    match r.field() {
        Some(field) => back.errors.add(field, message),
        None => back.errors.set_general(message),
    }
    back.refusal = Some(r.kind());
    refusal_status(r)
}

/// `POST /dependants`: `name` and `national_id` (or the page's two halves of
/// it). Each mistake is sent back next to its field; a well-formed addition
/// counts against the account's limit, then [`service::add`] decides.
async fn add(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let typed_id = national_id_field(&form);
    let mut back = Back {
        values: Values {
            name: truncate(form.get("name"), 200),
            national_id_front: truncate(&SignupValues::front_of(&typed_id), 6),
        },
        ..Back::default()
    };
    if !citizen.user.email_verified {
        let status = refused(&mut back, &page, &Refusal::Unverified);
        return dependants_page(&state, &citizen, page, back, status).await;
    }
    let policy = state.policy().await?;
    let now = state.clock.now();
    let name = DisplayName::parse(form.get("name"))
        .map_err(|key| back.errors.add("name", page.t.get(key)))
        .ok();
    let id = NationalId::parse(&typed_id, today(&policy, now))
        .map_err(|e| back.errors.add("national_id", page.t.get(e.message_key())))
        .ok();
    if let Some(id) = &id
        && !rules::may_be_dependant(&policy, id.birth_year())
    {
        let outside = Refusal::OutsideProxyYears {
            from: policy.proxy_born_from,
            until: policy.proxy_born_until,
        };
        refused(&mut back, &page, &outside);
    }
    let (Some(name), Some(id), true) = (name, id, back.errors.is_empty()) else {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return dependants_page(&state, &citizen, page, back, status).await;
    };

    let bucket = format!("dependant-add:account:{}", citizen.user.id);
    let limit = state.rate_limits.dependant_add_per_account;
    if let Decision::Limited { retry_after_secs } = limits::hit(&state, bucket, limit).await? {
        back.errors
            .set_general(limits::wait_message(&page.t, retry_after_secs));
        let status = StatusCode::TOO_MANY_REQUESTS;
        let page = dependants_page(&state, &citizen, page, back, status).await;
        return limits::with_retry_after(page, retry_after_secs);
    }

    let new = NewDependant {
        name,
        national_id_hash: id.keyed_hash(&state.keys.national_id),
        birth_date: id.birth_date(),
        national_id_masked: id.masked(),
    };
    added(&state, &citizen, session, page, back, (new, policy, now)).await
}

/// Adds through [`service::add`] and answers: to the list, or the form with
/// the refusal.
async fn added(
    state: &AppState,
    citizen: &Citizen,
    session: Session,
    page: PageCtx,
    mut back: Back,
    (new, policy, now): (NewDependant, Arc<Policy>, DateTime<Utc>),
) -> Result<HttpResponse, AppError> {
    let guardian = citizen.user.id;
    match state
        .db
        .write(move |tx| service::add(tx, guardian, &new, &policy, now))
        .await
    {
        Ok(_) => {
            session::set_flash(&session, "dependants.flash.added");
            Ok(see_other("/dependants"))
        }
        Err(DbError::Work(AddError::Refused(r))) => {
            let status = refused(&mut back, &page, &r);
            dependants_page(state, citizen, page, back, status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /dependants/{id}/remove`: ends the link unless a reservation for
/// them is still active; another account's dependant is not found.
async fn remove(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id: i64 = path.parse().map_err(|_| AppError::NotFound)?;
    let (guardian, now) = (citizen.user.id, state.clock.now());
    match state
        .db
        .write(move |tx| service::remove(tx, guardian, id, now))
        .await
    {
        Ok(()) => {
            session::set_flash(&session, "dependants.flash.removed");
            Ok(see_other("/dependants"))
        }
        Err(DbError::Work(RemoveError::Refused(RemoveRefusal::NotFound))) => {
            Err(AppError::NotFound)
        }
        Err(DbError::Work(RemoveError::Refused(RemoveRefusal::ActiveReservation))) => {
            let mut back = Back::default();
            back.errors
                .set_general(page.t.get("dependants.refusal.active_reservation"));
            back.refusal = Some("active_reservation");
            dependants_page(&state, &citizen, page, back, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}
