//! The citizen's reservation pages: `GET /reservations` (their own, newest
//! first, and what is left of the quota), `POST /reservations` (book),
//! `GET /reservations/{id}` (the pickup code and its QR code),
//! `GET /reservations/{id}/cancel` (what cancelling would give up, asked
//! before it is done) and `POST /reservations/{id}/cancel`. The work is in
//! [`booking`] and [`cancel`].

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;

use crate::db::DbError;
use crate::dependants::rules::proxy_line;
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::reservations::booking::{self, BookError, ForWhom, Form, Hold, Request};
use crate::reservations::cancel::{self, CancelError};
use crate::reservations::quota_view::{self, QuotaLine};
use crate::reservations::rules::{self, Refusal};
use crate::reservations::status::ReservationStatus;
use crate::reservations::{code, qr, queries};
use crate::state::AppState;
use crate::stores::page::{Retry, store_page};
use crate::waitlist::offers::{self, OfferError};
use crate::web::auth::{Citizen, ClaimedCitizen, login_required};
use crate::web::errors::AppError;
use crate::web::form::{FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reservations", web::get().to(list))
        .route("/reservations", web::post().to(create))
        .route("/reservations/{id}", web::get().to(show))
        .route("/reservations/{id}/cancel", web::get().to(confirm_cancel))
        .route("/reservations/{id}/cancel", web::post().to(cancel_one))
        .route("/reservations/{id}/accept", web::post().to(accept_offer))
        .route("/reservations/{id}/decline", web::post().to(decline_offer));
}

pub struct Row {
    pub id: i64,
    pub store_name: String,
    /// For a dependant's reservation: "홍길동의 마스크".
    pub for_whom: Option<String>,
    pub when: String,
    pub quantity: i32,
    pub status_key: &'static str,
    pub status: ReservationStatus,
    /// The pickup code as it is read out (`ABCD-EFGH`); empty while it is
    /// only offered from a waiting list.
    pub code: String,
    /// For an offer: until when it is held.
    pub offer_note: Option<String>,
    /// The row's one action: where it leads and its words.
    pub action: (String, &'static str),
}

/// A place the citizen holds in a waiting list, as the list shows it.
pub struct WaitingRow {
    pub window_id: i64,
    pub store_name: String,
    pub store_code: String,
    pub when: String,
    /// "대기 2번째 (마스크 2개)", with whom for.
    pub text: String,
    /// The leave form's `person`.
    pub person: String,
}

#[derive(Template)]
#[template(path = "reservations/list.html")]
struct ListPage {
    page: PageCtx,
    verified: bool,
    verify_text: String,
    quota_lines: Vec<QuotaLine>,
    /// Each dependant's name with their lines.
    dependant_quota: Vec<(String, Vec<QuotaLine>)>,
    rows: Vec<Row>,
    waiting: Vec<WaitingRow>,
}

async fn list(
    state: web::Data<AppState>,
    citizen: Citizen,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let (user_id, person_id) = (citizen.user.id, citizen.person_id);
    let (for_policy, now) = (policy.clone(), state.clock.now());
    let queries::Overview {
        quota,
        reservations,
        dependants,
        waiting,
    } = state
        .db
        .run(move |conn| queries::overview(conn, &for_policy, user_id, person_id, now))
        .await?;
    let tz = policy.timezone;
    let rows = reservations
        .into_iter()
        .map(|r| {
            let start = r.starts_at.and_utc().with_timezone(&tz);
            let end = r.ends_at.and_utc().with_timezone(&tz);
            Row {
                id: r.id,
                store_name: format!("{} ({})", r.store_name, r.store_code),
                for_whom: r
                    .dependant_name
                    .map(|name| page.t.fmt("reservations.for_dependant", &[("name", &name)])),
                when: format!(
                    "{} {}–{}",
                    page.t.date(start.date_naive()),
                    start.format("%H:%M"),
                    end.format("%H:%M")
                ),
                quantity: r.quantity,
                status_key: r.status.label_key(),
                status: r.status,
                code: if r.status.has_code() {
                    code::display(&r.pickup_code)
                } else {
                    String::new()
                },
                offer_note: offer_note(&page.t, &policy, r.status, r.offer_until),
                action: list_action(r.id, r.status),
            }
        })
        .collect();
    let waiting = waiting
        .into_iter()
        .map(|w| WaitingRow {
            window_id: w.window_id,
            store_name: w.store_name.clone(),
            store_code: w.store_code.clone(),
            when: format!(
                "{} {}",
                page.t.date(w.day),
                rules::time_range(tz, w.starts_at, w.ends_at)
            ),
            text: match &w.dependant_name {
                Some(name) => page.t.fmt(
                    "waitlist.place_for",
                    &[
                        ("position", &w.position),
                        ("quantity", &w.quantity),
                        ("name", name),
                    ],
                ),
                None => page.t.fmt(
                    "waitlist.place",
                    &[("position", &w.position), ("quantity", &w.quantity)],
                ),
            },
            person: w.person(),
        })
        .collect();
    let day = rules::today(&policy, now);
    let quota_lines = quota_view::lines(&page.t, &policy, day, &quota);
    let dependant_quota = dependants
        .into_iter()
        .map(|(d, periods)| (d.name, quota_view::lines(&page.t, &policy, day, &periods)))
        .collect();
    let verify_text = page.t.fmt(
        "reservations.verify_first",
        &[("email", &citizen.user.email)],
    );
    render(
        &ListPage {
            page,
            verified: citizen.user.email_verified,
            verify_text,
            quota_lines,
            dependant_quota,
            rows,
            waiting,
        },
        StatusCode::OK,
    )
}

/// A row's one action: an active reservation is shown at the counter, so its
/// QR code is what is wanted (cancelling is offered there); any other can
/// only be looked at.
fn list_action(id: i64, status: ReservationStatus) -> (String, &'static str) {
    let key = match status {
        ReservationStatus::Active => "reservations.action_show_code",
        ReservationStatus::Offered => "reservations.action_answer",
        _ => "reservations.action_details",
    };
    (format!("/reservations/{id}"), key)
}

/// "2026년 3월 10일 (화) 14:30까지 수락하세요": for an offer still held.
fn offer_note(
    t: &crate::i18n::Tr,
    policy: &Policy,
    status: ReservationStatus,
    until: Option<NaiveDateTime>,
) -> Option<String> {
    match (status, until) {
        (ReservationStatus::Offered, Some(until)) => Some(t.fmt(
            "waitlist.offer_until",
            &[(
                "until",
                &rules::local_date_time(t, policy.timezone, until.and_utc()),
            )],
        )),
        _ => None,
    }
}

/// The longest request id a form may carry (the page's are 43 characters).
const MAX_REQUEST_ID: usize = 64;

/// `POST /reservations`: books through [`booking::book`]; a refusal shows the
/// store page again with the message next to the form and the quantity kept.
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    citizen: ClaimedCitizen,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    // The window is a hidden field of the page's form: a post without a
    // number there is not the page's form at all.
    let window_id: i64 = form
        .get("window_id")
        .trim()
        .parse()
        .map_err(|_| AppError::BadRequest("window_id is not a window".into()))?;
    let typed = truncate(form.get("quantity").trim(), 20);
    let request_id = match form.get("request_id").trim() {
        "" => None,
        id if id.len() <= MAX_REQUEST_ID => Some(id.to_owned()),
        _ => return Err(AppError::BadRequest("request_id is too long".into())),
    };
    // Whom for: the citizen (`self`, the default) or a dependant's link id,
    // checked against the account in the booking's transaction.
    let typed_person = truncate(form.get("person").trim(), 20);
    let policy = state.policy().await?;
    let refusal = match (typed.parse::<Quantity>(), ForWhom::parse(&typed_person)) {
        (Err(_), _) => Refusal::BadQuantity {
            max: rules::MAX_QUANTITY,
        },
        (Ok(_), None) => Refusal::UnknownPerson,
        (Ok(quantity), Some(person)) => {
            let asked = Request {
                user_id: citizen.user_id,
                window_id,
                quantity,
                request_id,
                person,
                now: state.clock.now(),
                session: Some(citizen.claim),
                hold: Hold::Booking,
            };
            let (t, base_url, policy) = (page.t.clone(), state.base_url.clone(), policy.clone());
            let form = Form::of(state.db.backend());
            match booking::book_through(&state.db, form, asked, policy, t, base_url).await {
                Ok(booked) => {
                    state.mail_wake.notify_one();
                    let flash = if booked.replayed {
                        "reservation.flash.already_booked"
                    } else {
                        "reservation.flash.booked"
                    };
                    session::set_flash(&session, flash);
                    return Ok(see_other(&format!(
                        "/reservations/{}",
                        booked.reservation_id
                    )));
                }
                Err(DbError::Work(BookError::Refused(r))) => r,
                Err(DbError::Work(BookError::SessionEnded)) => {
                    session::log_out(&session);
                    return Err(login_required(&req));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if refusal == Refusal::UnknownWindow {
        return Err(AppError::NotFound);
    }
    let (status, kind) = refusal.answer();
    let (store_code, _) = state
        .db
        .run(move |conn| queries::store_code_of_window(conn, window_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let retry = Retry {
        window_id,
        quantity: typed,
        person: typed_person,
        message: refusal.message(&page.t, policy.timezone),
        kind,
    };
    store_page(&state, page, store_code, None, Some(retry), status).await
}

#[derive(Template)]
#[template(path = "reservations/show.html")]
struct ShowPage {
    page: PageCtx,
    id: i64,
    store_code: String,
    store_name: String,
    store_addr: String,
    store_phone: Option<String>,
    when: String,
    quantity: i32,
    status: ReservationStatus,
    status_key: &'static str,
    code: String,
    code_display: String,
    qr: String,
    /// The cancel button's deadline text, when it can still be cancelled.
    cancel_until: Option<String>,
    /// Why a cancel just failed.
    error: Option<String>,
    /// "대리 수령: 홍*동(2012년생) 대신 김*지", for a dependant's reservation.
    proxy_line: Option<String>,
    /// Whether the pickup code is the citizen's yet (not while offered).
    has_code: bool,
    /// For an offer still held: until when, with the accept and decline
    /// forms.
    offer_note: Option<String>,
}

/// A reservation id from the path: anything but a number is no reservation.
fn reservation_id(path: &str) -> Result<i64, AppError> {
    path.parse().map_err(|_| AppError::NotFound)
}

async fn show(
    state: web::Data<AppState>,
    citizen: Citizen,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = reservation_id(&path)?;
    reservation_page(&state, &citizen, page, id, None, StatusCode::OK).await
}

/// The citizen's own reservation `id`, with the policy in force; anyone
/// else's, or none, is not found.
async fn own_reservation(
    state: &AppState,
    citizen: &Citizen,
    id: i64,
) -> Result<(Arc<Policy>, queries::Detail), AppError> {
    let policy = state.policy().await?;
    let user_id = citizen.user.id;
    let r = state
        .db
        .run(move |conn| queries::detail(conn, user_id, id))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok((policy, r))
}

async fn reservation_page(
    state: &AppState,
    citizen: &Citizen,
    page: PageCtx,
    id: i64,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (policy, r) = own_reservation(state, citizen, id).await?;
    let t = &page.t;
    let tz = policy.timezone;
    let now = state.clock.now();
    let code_display = code::display(&r.pickup_code);
    let qr = qr::svg(
        &r.pickup_code,
        &t.fmt("reservation.qr_label", &[("code", &code_display)]),
    )
    .ok_or_else(|| AppError::internal(anyhow::anyhow!("pickup code does not fit a QR code")))?;
    let cancel_until = (r.status == ReservationStatus::Active
        && rules::cancellable(&policy, now, r.starts_at))
    .then(|| {
        let deadline = rules::local(tz, rules::cancel_deadline(&policy, r.starts_at));
        t.fmt(
            "reservation.cancel_until",
            &[
                ("date", &t.date(deadline.date_naive())),
                ("time", &deadline.format("%H:%M")),
            ],
        )
    });
    let when = format!(
        "{} {}",
        t.date(r.day),
        rules::time_range(tz, r.starts_at, r.ends_at)
    );
    let proxy_line = r
        .dependant_name
        .as_ref()
        .map(|name| proxy_line(t, &citizen.user.name, name, rules::birth_year(r.birth_date)));
    render(
        &ShowPage {
            id: r.id,
            store_code: r.store_code,
            store_name: r.store_name,
            store_addr: r.store_addr,
            store_phone: r.store_phone,
            when,
            quantity: r.quantity,
            status_key: r.status.label_key(),
            status: r.status,
            code: r.pickup_code,
            code_display,
            qr,
            cancel_until,
            error,
            proxy_line,
            has_code: r.status.has_code(),
            offer_note: offer_note(t, &policy, r.status, r.offer_until),
            page,
        },
        status,
    )
}

#[derive(Template)]
#[template(path = "reservations/cancel.html")]
struct CancelPage {
    page: PageCtx,
    id: i64,
    store_name: String,
    when: String,
    quantity: i32,
    /// "마스크 2개".
    quantity_text: String,
    /// "홍길동 님 몫 (대리 예약)", for a dependant's reservation.
    for_whom: Option<String>,
    /// Until when it can be cancelled; `None` when it cannot be any more.
    cancel_until: Option<String>,
    /// Why it cannot be cancelled.
    refused: Option<String>,
}

/// The words for a cancel refused at `deadline` (UTC): the moment it was
/// still possible, in the service zone.
fn too_late_text(t: &crate::i18n::Tr, tz: chrono_tz::Tz, deadline: NaiveDateTime) -> String {
    let deadline = rules::local(tz, deadline);
    t.fmt(
        "reservation.cancel_refused.too_late",
        &[
            ("date", &t.date(deadline.date_naive())),
            ("time", &deadline.format("%H:%M")),
        ],
    )
}

/// `GET /reservations/{id}/cancel`: names what would be cancelled and asks;
/// a reservation that can no longer be cancelled says why, with no button.
async fn confirm_cancel(
    state: web::Data<AppState>,
    citizen: Citizen,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = reservation_id(&path)?;
    let (policy, r) = own_reservation(&state, &citizen, id).await?;
    let t = &page.t;
    let tz = policy.timezone;
    let now = state.clock.now();
    let (cancel_until, refused) = match r.status {
        ReservationStatus::Active if rules::cancellable(&policy, now, r.starts_at) => {
            let deadline = rules::local(tz, rules::cancel_deadline(&policy, r.starts_at));
            let until = t.fmt(
                "reservation.cancel_until",
                &[
                    ("date", &t.date(deadline.date_naive())),
                    ("time", &deadline.format("%H:%M")),
                ],
            );
            (Some(until), None)
        }
        ReservationStatus::Active => (
            None,
            Some(too_late_text(
                t,
                tz,
                rules::cancel_deadline(&policy, r.starts_at),
            )),
        ),
        status => (
            None,
            Some(t.fmt(
                "reservation.cancel_refused.not_active",
                &[("status", &t.get(status.label_key()))],
            )),
        ),
    };
    let when = format!(
        "{} {}",
        t.date(r.day),
        rules::time_range(tz, r.starts_at, r.ends_at)
    );
    let for_whom = r
        .dependant_name
        .map(|name| t.fmt("reservations.for_dependant", &[("name", &name)]));
    render(
        &CancelPage {
            id: r.id,
            store_name: format!("{} ({})", r.store_name, r.store_code),
            when,
            quantity: r.quantity,
            quantity_text: t.count(
                "reservation.cancel_quantity",
                r.quantity,
                &[("quantity", &r.quantity)],
            ),
            for_whom,
            cancel_until,
            refused,
            page,
        },
        StatusCode::OK,
    )
}

async fn cancel_one(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = reservation_id(&path)?;
    let policy = state.policy().await?;
    let (user_id, now) = (citizen.user.id, state.clock.now());
    let (t, base_url, for_tx) = (page.t.clone(), state.base_url.clone(), policy.clone());
    let result = state
        .db
        .write(move |tx| cancel::cancel(tx, user_id, id, now, &for_tx, &t, &base_url))
        .await;
    let message = match result {
        Ok(()) => {
            state.mail_wake.notify_one();
            session::set_flash(&session, "reservation.flash.cancelled");
            return Ok(see_other(&format!("/reservations/{id}")));
        }
        Err(DbError::Work(CancelError::NotFound)) => return Err(AppError::NotFound),
        Err(DbError::Work(CancelError::NotActive { status })) => page.t.fmt(
            "reservation.cancel_refused.not_active",
            &[("status", &page.t.get(status.label_key()))],
        ),
        Err(DbError::Work(CancelError::TooLate { deadline })) => {
            too_late_text(&page.t, policy.timezone, deadline)
        }
        Err(e) => return Err(e.into()),
    };
    reservation_page(
        &state,
        &citizen,
        page,
        id,
        Some(message),
        StatusCode::CONFLICT,
    )
    .await
}

/// What to do with an offer from a waiting list.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept,
    Decline,
}

/// `POST /reservations/{id}/accept` and `/decline`: the citizen's answer to
/// an offer ([`offers::accept`], [`offers::decline`]); an offer already
/// settled, or whose hold passed, shows the reservation again with why.
async fn answer_offer(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
    answer: Answer,
) -> Result<HttpResponse, AppError> {
    let id = reservation_id(&path)?;
    let policy = state.policy().await?;
    let (user_id, now) = (citizen.user.id, state.clock.now());
    let (t, base_url, for_tx) = (page.t.clone(), state.base_url.clone(), policy.clone());
    let result = state
        .db
        .write(move |tx| match answer {
            Answer::Accept => offers::accept(tx, user_id, id, now, &for_tx, &t, &base_url),
            Answer::Decline => offers::decline(tx, user_id, id, now, &for_tx, &t, &base_url),
        })
        .await;
    let message = match result {
        Ok(()) => {
            state.mail_wake.notify_one();
            let flash = match answer {
                Answer::Accept => "waitlist.flash.accepted",
                Answer::Decline => "waitlist.flash.declined",
            };
            session::set_flash(&session, flash);
            return Ok(see_other(&format!("/reservations/{id}")));
        }
        Err(DbError::Work(OfferError::NotFound)) => return Err(AppError::NotFound),
        Err(DbError::Work(OfferError::NotOffered { status })) => page.t.fmt(
            "waitlist.refused.not_offered",
            &[("status", &page.t.get(status.label_key()))],
        ),
        Err(DbError::Work(OfferError::Lapsed)) => page.t.get("waitlist.refused.lapsed").to_owned(),
        Err(e) => return Err(e.into()),
    };
    reservation_page(
        &state,
        &citizen,
        page,
        id,
        Some(message),
        StatusCode::CONFLICT,
    )
    .await
}

async fn accept_offer(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    answer_offer(state, citizen, session, page, path, Answer::Accept).await
}

async fn decline_offer(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    answer_offer(state, citizen, session, page, path, Answer::Decline).await
}
