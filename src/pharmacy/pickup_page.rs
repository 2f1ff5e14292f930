//! `GET,POST /pharmacy/pickup` and `POST /pharmacy/pickup/preferences`: the
//! scan field, the reservation a code names, the handover. The work is in
//! [`pickup`].
//!
//! After every answer the code field is empty and focused, ready for the next
//! scan: the code just read is shown in the answer instead. Only a code that
//! cannot be one is kept in the field (shortened), to be corrected by hand,
//! and a code posted over the look-up limit, to be sent again after the wait.
//!
//! Someone without their code (a lost phone) is found by national ID: a post
//! of `national_id` instead of `code` lists the reservations *for* that
//! person to collect at this store today, each with the usual confirm button
//! (so a proxy reservation still needs its box). Nothing about other stores
//! or days is read, and "none" is one neutral sentence. Each look-up is
//! audited (`pickup.lookup`) and counts against the same limit as a walk-in
//! look-up. The number is typed into a password field and never shown back.
//!
//! With JavaScript, a "scan with the camera" button fills the code field from
//! the camera (`static/js/camera-scan.js`); without it the page is unchanged.
//!
//! A proxy reservation (SPEC §12) says who collects for whom, and its confirm
//! button comes with the box "family documents seen" (`proxy_checked=1`),
//! without which it is not handed over — not even at the first scan of a
//! pharmacist who hands over on scan: it is shown, box and button, instead.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::accounts::email::mask_name;
use crate::accounts::national_id::NationalId;
use crate::db::{DbError, Form};
use crate::dependants::rules::proxy_line;
use crate::pharmacy::pickup::{self, Facts, Handover, Intent, PickupError, Refusal};
use crate::pharmacy::walk_in;
use crate::policy::Policy;
use crate::rate_limit::Decision;
use crate::reservations::{code, rules};
use crate::state::AppState;
use crate::web::auth::Pharmacist;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::limits::{self, wait_message};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

/// A reservation as the counter shows it.
pub struct Shown {
    pub code: String,
    pub name: String,
    pub national_id: String,
    pub quantity: i32,
    pub window: String,
    pub status: String,
    pub came_early: bool,
    /// "2 masks", and the confirm button's words.
    pub masks: String,
    pub confirm: String,
    /// "대리 수령: 홍*동(2012년생) 대신 김*지", for a proxy reservation.
    pub proxy_line: Option<String>,
}

impl Shown {
    fn new(f: &Facts, page: &PageCtx, tz: Tz, now: DateTime<Utc>) -> Shown {
        let t = &page.t;
        Shown {
            code: code::display(&f.code),
            name: mask_name(&f.citizen_name),
            national_id: f.national_id_masked.clone(),
            quantity: f.quantity,
            window: format!(
                "{} {}",
                t.date(f.day),
                rules::time_range(tz, f.starts_at, f.ends_at)
            ),
            status: t.get(f.status.label_key()).to_owned(),
            came_early: f.came_early(now),
            masks: t.fmt("pharmacy.pickup.masks", &[("quantity", &f.quantity)]),
            confirm: t.fmt("pharmacy.pickup.confirm", &[("quantity", &f.quantity)]),
            proxy_line: f
                .proxy
                .as_ref()
                .map(|p| proxy_line(t, &f.citizen_name, &p.dependant_name, p.birth_year)),
        }
    }
}

/// A refusal as the page shows it.
pub struct Refused {
    pub kind: &'static str,
    /// The code read, as people write it.
    pub code: String,
    pub message: String,
}

fn refusal(r: &Refusal, typed: &str, page: &PageCtx, tz: Tz) -> (StatusCode, Refused) {
    let t = &page.t;
    let code = code::display(typed);
    let (status, message) = match r {
        Refusal::UnknownCode => (
            StatusCode::NOT_FOUND,
            t.get("pharmacy.pickup.refusal.unknown").to_owned(),
        ),
        Refusal::OtherStore { store } => (
            StatusCode::FORBIDDEN,
            t.fmt("pharmacy.pickup.refusal.other_store", &[("store", store)]),
        ),
        Refusal::Cancelled => (
            StatusCode::CONFLICT,
            t.get("pharmacy.pickup.refusal.cancelled").to_owned(),
        ),
        Refusal::Expired => (
            StatusCode::CONFLICT,
            t.get("pharmacy.pickup.refusal.expired").to_owned(),
        ),
        Refusal::NotAccepted => (
            StatusCode::CONFLICT,
            t.get("pharmacy.pickup.refusal.not_accepted").to_owned(),
        ),
        Refusal::AlreadyPickedUp { at, by } => {
            let local = rules::local(tz, *at);
            (
                StatusCode::CONFLICT,
                t.fmt(
                    "pharmacy.pickup.refusal.picked_up",
                    &[
                        ("date", &t.date(local.date_naive())),
                        ("time", &local.format("%H:%M")),
                        ("name", by),
                    ],
                ),
            )
        }
        Refusal::OtherDay { day } => (
            StatusCode::CONFLICT,
            t.fmt(
                "pharmacy.pickup.refusal.other_day",
                &[("date", &t.date(*day))],
            ),
        ),
        Refusal::TooLate { closed_at } => (
            StatusCode::CONFLICT,
            t.fmt(
                "pharmacy.pickup.refusal.too_late",
                &[("time", &rules::local(tz, *closed_at).format("%H:%M"))],
            ),
        ),
        Refusal::ProxyNotChecked => (
            StatusCode::UNPROCESSABLE_ENTITY,
            t.get("pharmacy.pickup.refusal.proxy_unchecked").to_owned(),
        ),
    };
    let kind = r.kind();
    (
        status,
        Refused {
            kind,
            code,
            message,
        },
    )
}

/// The answer to a look-up by national ID.
pub struct ByIdAnswer {
    /// "850101-1****** 님의 오늘 예약".
    pub heading: String,
    pub entries: Vec<ByIdEntry>,
    /// Nothing to confirm: the answer itself takes the focus, so that on a
    /// phone it is what the screen shows (the code field lies below it).
    pub takes_focus: bool,
}

/// One reservation of a look-up by national ID: with its confirm button, or,
/// when it can no longer be handed over (its pickup closed), why not.
pub struct ByIdEntry {
    pub shown: Shown,
    pub refusal: Option<String>,
}

#[derive(Template)]
#[template(path = "pharmacy/pickup.html")]
struct PickupPage {
    page: PageCtx,
    /// What stays in the code field (only a malformed code).
    value: String,
    errors: FieldErrors,
    confirm_on_scan: bool,
    /// Looked up and waiting for the confirm button.
    found: Option<Shown>,
    /// A scan that would have handed over, stopped for the proxy box.
    proxy_needed: bool,
    /// Just handed over.
    handed: Option<Shown>,
    refused: Option<Refused>,
    by_id: Option<ByIdAnswer>,
    /// The code field takes the focus: nothing else on the page asks for it.
    scan_focus: bool,
}

struct Answer {
    value: String,
    errors: FieldErrors,
    found: Option<Shown>,
    proxy_needed: bool,
    handed: Option<Shown>,
    refused: Option<Refused>,
    by_id: Option<ByIdAnswer>,
}

impl Answer {
    fn empty() -> Answer {
        Answer {
            value: String::new(),
            errors: FieldErrors::default(),
            found: None,
            proxy_needed: false,
            handed: None,
            refused: None,
            by_id: None,
        }
    }
}

async fn pickup_page(
    state: &AppState,
    pharmacist: &Pharmacist,
    page: PageCtx,
    answer: Answer,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let confirm_on_scan = confirm_on_scan(state, pharmacist).await?;
    pickup_page_as(page, answer, status, confirm_on_scan)
}

/// The pharmacist's "confirm on scan" preference.
async fn confirm_on_scan(state: &AppState, pharmacist: &Pharmacist) -> Result<bool, AppError> {
    let user_id = pharmacist.user.id;
    Ok(state
        .db
        .run(move |conn| pickup::confirm_on_scan(conn, user_id))
        .await?)
}

/// The counter page, its "confirm on scan" preference already read.
fn pickup_page_as(
    page: PageCtx,
    answer: Answer,
    status: StatusCode,
    confirm_on_scan: bool,
) -> Result<HttpResponse, AppError> {
    render(
        &PickupPage {
            page,
            scan_focus: answer.found.is_none()
                && answer.errors.is_empty()
                && answer.by_id.is_none(),
            value: answer.value,
            errors: answer.errors,
            confirm_on_scan,
            found: answer.found,
            proxy_needed: answer.proxy_needed,
            handed: answer.handed,
            refused: answer.refused,
            by_id: answer.by_id,
        },
        status,
    )
}

pub async fn show(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    pickup_page(&state, &pharmacist, page, Answer::empty(), StatusCode::OK).await
}

/// A post of `code` looks the reservation up; with `confirm=1` (or with the
/// pharmacist's "confirm on scan") it hands it over — a proxy reservation
/// only with `proxy_checked=1` as well: without it, `confirm=1` is refused
/// (422) and a scan shows the reservation to tick. Every post counts
/// against the pharmacist's limit of look-ups (`pickup_per_account`), so
/// that codes cannot be guessed at speed; over it, the counter page answers
/// 429 with the wait next to the code field, the code kept to send again.
pub async fn post(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    if !form.has("code") && form.has("national_id") {
        return by_national_id(&state, &pharmacist, page, &form).await;
    }
    let typed = form.get("code");
    let bucket = format!("pickup:account:{}", pharmacist.user.id);
    let limit = state.rate_limits.pickup_per_account;
    if let Decision::Limited { retry_after_secs } = limits::hit(&state, bucket, limit).await? {
        let mut answer = Answer::empty();
        let wait = page.t.count(
            "pharmacy.pickup.error.too_many",
            retry_after_secs,
            &[("seconds", &retry_after_secs)],
        );
        answer.errors.add("code", wait);
        answer.value = truncate(typed.trim(), 20);
        let status = StatusCode::TOO_MANY_REQUESTS;
        let page = pickup_page(&state, &pharmacist, page, answer, status).await;
        return limits::with_retry_after(page, retry_after_secs);
    }
    let Some(code) = code::normalise(typed) else {
        let mut answer = Answer::empty();
        let key = if typed.trim().is_empty() {
            "form.error.required"
        } else {
            "pharmacy.pickup.error.code"
        };
        answer.errors.add("code", page.t.get(key));
        answer.value = truncate(typed.trim(), 20);
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return pickup_page(&state, &pharmacist, page, answer, status).await;
    };
    let policy = state.policy().await?;
    let (now, tz) = (state.clock.now(), policy.timezone);
    let (by, store_id) = (pharmacist.user.id, pharmacist.store_id);
    let asked = form.get("confirm") == "1";
    let proxy_checked = form.get("proxy_checked") == "1";
    // Read once: it decides whether a scan hands over, and the page shows it.
    let on_scan = confirm_on_scan(&state, &pharmacist).await?;
    let confirm = asked || on_scan;
    let mut answer = Answer::empty();
    let result = if confirm {
        let handover = Handover {
            by,
            store_id,
            code: code.clone(),
            now,
            proxy_checked,
        };
        let form = Form::of(state.db.backend());
        match pickup::confirm_through(&state.db, form, handover, policy.clone()).await {
            Ok(facts) => {
                answer.handed = Some(Shown::new(&facts, &page, tz, now));
                Ok(())
            }
            Err(DbError::Work(PickupError::Refused(Refusal::ProxyNotChecked))) => {
                // Shown with its box: a scan asked nothing wrong, a post of
                // the button without the box is refused beside it.
                let found = look_up(&state, store_id, code.clone(), now, policy.clone()).await?;
                answer.found = found.ok().map(|f| Shown::new(&f, &page, tz, now));
                answer.proxy_needed = !asked;
                if asked {
                    Err(Refusal::ProxyNotChecked)
                } else {
                    Ok(())
                }
            }
            Err(DbError::Work(PickupError::Refused(r))) => Err(r),
            Err(e) => return Err(e.into()),
        }
    } else {
        match look_up(&state, store_id, code.clone(), now, policy.clone()).await? {
            Ok(facts) => {
                answer.found = Some(Shown::new(&facts, &page, tz, now));
                Ok(())
            }
            Err(r) => Err(r),
        }
    };
    let status = match result {
        Ok(()) => StatusCode::OK,
        Err(r) => {
            let (status, refused) = refusal(&r, &code, &page, tz);
            answer.refused = Some(refused);
            status
        }
    };
    pickup_page_as(page, answer, status, on_scan)
}

/// A post of `national_id` instead of `code`: that person's reservations to
/// collect here today ([`pickup::for_person_today`], audited). Over the
/// look-up limit shared with walk-in sales, 429 with the wait next to the
/// field; a number that cannot be one, 422 saying which part failed.
async fn by_national_id(
    state: &AppState,
    pharmacist: &Pharmacist,
    page: PageCtx,
    form: &FormData,
) -> Result<HttpResponse, AppError> {
    let mut answer = Answer::empty();
    let bucket = walk_in::lookup_bucket(pharmacist.user.id);
    let limit = state.rate_limits.walk_in_per_account;
    if let Decision::Limited { retry_after_secs } = limits::hit(state, bucket, limit).await? {
        answer
            .errors
            .add("national_id", wait_message(&page.t, retry_after_secs));
        let status = StatusCode::TOO_MANY_REQUESTS;
        let page = pickup_page(state, pharmacist, page, answer, status).await;
        return limits::with_retry_after(page, retry_after_secs);
    }
    let policy = state.policy().await?;
    let (now, tz) = (state.clock.now(), policy.timezone);
    let id = match NationalId::parse(form.get("national_id"), rules::today(&policy, now)) {
        Ok(id) => id,
        Err(e) => {
            answer
                .errors
                .add("national_id", page.t.get(e.message_key()));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return pickup_page(state, pharmacist, page, answer, status).await;
        }
    };
    let (hash, masked) = (id.keyed_hash(&state.keys.national_id), id.masked());
    let (by, store_id, for_tx) = (pharmacist.user.id, pharmacist.store_id, policy.clone());
    let found = state
        .db
        .write(move |tx| pickup::for_person_today(tx, by, store_id, &hash, now, &for_tx))
        .await?;
    let entries = found
        .iter()
        .map(|f| ByIdEntry {
            shown: Shown::new(f, &page, tz, now),
            refusal: pickup::judge(f, store_id, now, &policy, Intent::LookUp)
                .err()
                .map(|r| refusal(&r, &f.code, &page, tz).1.message),
        })
        .collect::<Vec<ByIdEntry>>();
    answer.by_id = Some(ByIdAnswer {
        takes_focus: entries.iter().all(|e| e.refusal.is_some()),
        heading: page
            .t
            .fmt("pharmacy.pickup.by_id_found", &[("id", &masked)]),
        entries,
    });
    pickup_page(state, pharmacist, page, answer, StatusCode::OK).await
}

/// The reservation a code names, if this store may see it now.
async fn look_up(
    state: &AppState,
    store_id: i64,
    code: String,
    now: DateTime<Utc>,
    policy: Arc<Policy>,
) -> Result<Result<Facts, Refusal>, AppError> {
    Ok(state
        .db
        .run(move |conn| pickup::look_up(conn, store_id, &code, now, &policy))
        .await?)
}

/// `POST /pharmacy/pickup/preferences`: `confirm_on_scan=1` turns handing over
/// at the first scan on, its absence off.
pub async fn preferences(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    session: Session,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let on = form.get("confirm_on_scan") == "1";
    let user_id = pharmacist.user.id;
    state
        .db
        .write(move |tx| pickup::set_confirm_on_scan(tx, user_id, on))
        .await?;
    let flash = if on {
        "pharmacy.pickup.flash.scan_on"
    } else {
        "pharmacy.pickup.flash.scan_off"
    };
    session::set_flash(&session, flash);
    Ok(see_other("/pharmacy/pickup"))
}
