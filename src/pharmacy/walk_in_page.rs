//! `GET,POST /pharmacy/walk-in` and `POST /pharmacy/walk-in/{id}/undo`: a sale
//! to someone without a reservation, the day's sales, undoing one's own within
//! minutes. The work is in [`walk_in`].
//!
//! The national ID typed is parsed, hashed and dropped: the page never shows
//! it back, not even after a mistake — a valid number is shown masked, and the
//! pharmacist is asked to type it again. The same for the second number of
//! a proxy purchase (`for_national_id`, with `proxy_checked=1`).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::accounts::national_id::NationalId;
use crate::db::DbError;
use crate::i18n::Tr;
use crate::pharmacy::queries;
use crate::pharmacy::walk_in::{self, Identity, Refusal, Sale, UndoError, UndoRefusal};
use crate::quantity::Quantity;
use crate::rate_limit::Decision;
use crate::reservations::rules::{self, MAX_QUANTITY, weekday_key};
use crate::state::AppState;
use crate::stock::At;
use crate::web::auth::Pharmacist;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::limits::{self, wait_message};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub struct SaleRow {
    pub id: i64,
    pub time: String,
    pub national_id: String,
    /// "대리 구매: 850101-1******", for a sale bought for someone else.
    pub proxy: Option<String>,
    pub quantity: i32,
    pub seller: String,
    pub undone: bool,
    /// This pharmacist's own sale, still within the undo minutes.
    pub undoable: bool,
}

#[derive(Template)]
#[template(path = "pharmacy/walk_in.html")]
struct WalkInPage {
    page: PageCtx,
    /// `None` when the store has no supply today.
    walk_in_left: Option<i32>,
    walk_in_sold: i32,
    quantity: String,
    errors: FieldErrors,
    /// Which masked number a refused sale was for, and to type it again.
    masked: Option<String>,
    refusal: Option<&'static str>,
    /// After a quota refusal: the date (`YYYY-MM-DD`) from which the person
    /// may buy again.
    may_buy_from: Option<String>,
    sales: Vec<SaleRow>,
    undo_hint: String,
}

/// What the form says back.
#[derive(Default)]
struct Back {
    quantity: String,
    errors: FieldErrors,
    masked: Option<String>,
    refusal: Option<&'static str>,
    may_buy_from: Option<String>,
}

async fn walk_in_page(
    state: &AppState,
    pharmacist: &Pharmacist,
    page: PageCtx,
    back: Back,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let now = state.clock.now();
    let (store_id, day, me) = (
        pharmacist.store_id,
        rules::today(&policy, now),
        pharmacist.user.id,
    );
    let at = At::of(&policy, now);
    let (store, lines) = state
        .db
        .run(move |conn| {
            Ok::<_, diesel::result::Error>((
                queries::store_day(conn, store_id, at)?,
                walk_in::sales_on(conn, store_id, day)?,
            ))
        })
        .await?;
    let tz = policy.timezone;
    let sales = lines
        .into_iter()
        .map(|s| SaleRow {
            id: s.id,
            time: rules::local(tz, s.created_at).format("%H:%M").to_string(),
            national_id: s.national_id_masked,
            proxy: s
                .proxy_masked
                .map(|id| page.t.fmt("pharmacy.walk_in.proxy_by", &[("id", &id)])),
            quantity: s.quantity,
            seller: s.seller,
            undone: s.undone,
            undoable: !s.undone
                && s.sold_by == me
                && now.naive_utc() <= walk_in::undo_deadline(s.created_at),
        })
        .collect();
    let (walk_in_left, walk_in_sold) = match &store.stock {
        Some(s) => (Some(s.figures.walk_in), s.walk_in_sold),
        None => (None, 0),
    };
    let quantity = if back.quantity.is_empty() {
        "1".to_owned()
    } else {
        back.quantity
    };
    render(
        &WalkInPage {
            walk_in_left,
            walk_in_sold,
            quantity,
            errors: back.errors,
            masked: back
                .masked
                .map(|id| page.t.fmt("pharmacy.walk_in.for_masked", &[("id", &id)])),
            refusal: back.refusal,
            may_buy_from: back.may_buy_from,
            sales,
            undo_hint: page.t.fmt(
                "pharmacy.walk_in.undo_hint",
                &[("minutes", &walk_in::UNDO_MINUTES)],
            ),
            page,
        },
        status,
    )
}

pub async fn show(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    walk_in_page(&state, &pharmacist, page, Back::default(), StatusCode::OK).await
}

/// Sells after the checks of [`walk_in::sell`]; every look-up counts against
/// the pharmacist's limit, valid or not, and every one that reaches the sale
/// is in the audit log ([`walk_in::sell_recorded`]).
pub async fn sell(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let mut back = Back {
        quantity: truncate(form.get("quantity").trim(), 10),
        ..Back::default()
    };
    let bucket = format!("walk-in:account:{}", pharmacist.user.id);
    let limit = state.rate_limits.walk_in_per_account;
    if let Decision::Limited { retry_after_secs } = limits::hit(&state, bucket, limit).await? {
        back.errors
            .set_general(wait_message(&page.t, retry_after_secs));
        let page = walk_in_page(
            &state,
            &pharmacist,
            page,
            back,
            StatusCode::TOO_MANY_REQUESTS,
        );
        return limits::with_retry_after(page.await, retry_after_secs);
    }
    let policy = state.policy().await?;
    let now = state.clock.now();
    let today = rules::today(&policy, now);
    let quantity = back.quantity.parse::<Quantity>().ok();
    if quantity.is_none() {
        back.errors
            .add("quantity", quantity_message(&page.t, MAX_QUANTITY));
    }
    let id = NationalId::parse(form.get("national_id"), today)
        .map_err(|e| back.errors.add("national_id", page.t.get(e.message_key())))
        .ok();
    // A proxy purchase: empty is none; anything else must be a number.
    let for_person = match form.get("for_national_id").trim() {
        "" => Some(None),
        typed => NationalId::parse(typed, today)
            .map_err(|e| {
                back.errors
                    .add("for_national_id", page.t.get(e.message_key()))
            })
            .ok()
            .map(Some),
    };
    let (Some(id), Some(quantity), Some(for_person)) = (id, quantity, for_person) else {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return walk_in_page(&state, &pharmacist, page, back, status).await;
    };
    let key = &state.keys.national_id;
    let for_person = for_person.map(|p| Identity {
        national_id_hash: p.keyed_hash(key),
        birth_date: p.birth_date(),
        national_id_masked: p.masked(),
    });
    let sale = Sale {
        pharmacist_id: pharmacist.user.id,
        store_id: pharmacist.store_id,
        national_id_hash: id.keyed_hash(&state.keys.national_id),
        birth_date: id.birth_date(),
        national_id_masked: id.masked(),
        for_person,
        proxy_checked: form.get("proxy_checked") == "1",
        quantity,
        now,
    };
    let masked = match &sale.for_person {
        Some(p) => page.t.fmt(
            "pharmacy.walk_in.for_proxy",
            &[
                ("id", &p.national_id_masked),
                ("buyer", &sale.national_id_masked),
            ],
        ),
        None => sale.national_id_masked.clone(),
    };
    let refusal = match walk_in::sell_recorded(&state.db, sale, policy).await? {
        Ok(_) => {
            session::set_flash(&session, "pharmacy.walk_in.flash.sold");
            return Ok(see_other("/pharmacy/walk-in"));
        }
        Err(Refusal::BadQuantity { max }) => {
            back.errors.add("quantity", quantity_message(&page.t, max));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return walk_in_page(&state, &pharmacist, page, back, status).await;
        }
        Err(
            refusal @ (Refusal::ProxyForOneself
            | Refusal::ProxyYears { .. }
            | Refusal::ProxyNotChecked),
        ) => {
            let field = match refusal {
                Refusal::ProxyNotChecked => "proxy_checked",
                _ => "for_national_id",
            };
            back.errors.add(field, refusal_message(&page.t, &refusal));
            back.refusal = Some(refusal.kind());
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return walk_in_page(&state, &pharmacist, page, back, status).await;
        }
        Err(r) => r,
    };
    back.errors.set_general(refusal_message(&page.t, &refusal));
    back.masked = Some(masked);
    back.may_buy_from = match refusal {
        Refusal::NotAllowedUntil { from } => Some(from.to_string()),
        _ => None,
    };
    back.refusal = Some(refusal.kind());
    walk_in_page(&state, &pharmacist, page, back, StatusCode::CONFLICT).await
}

/// What is said next to a quantity that is not 1 to `max`.
fn quantity_message(t: &Tr, max: i32) -> String {
    t.fmt("pharmacy.walk_in.error.quantity", &[("max", &max)])
}

/// A refused sale in the pharmacist's words. A quota refusal names only the
/// date from which the person may buy again, never what they bought.
fn refusal_message(t: &Tr, refusal: &Refusal) -> String {
    match refusal {
        Refusal::BadQuantity { max } => quantity_message(t, *max),
        Refusal::ProxyForOneself => t.get("pharmacy.walk_in.refusal.proxy_oneself").to_owned(),
        Refusal::ProxyYears { from, until } => t.fmt(
            "pharmacy.walk_in.refusal.proxy_years",
            &[("from", from), ("until", until)],
        ),
        Refusal::ProxyNotChecked => t.get("pharmacy.walk_in.refusal.proxy_unchecked").to_owned(),
        Refusal::NoSupply => t.get("pharmacy.walk_in.refusal.no_supply").to_owned(),
        Refusal::StoreSuspended => t.get("pharmacy.walk_in.refusal.suspended").to_owned(),
        Refusal::OutOfStock { left: 0 } => t.get("pharmacy.walk_in.refusal.stock_none").to_owned(),
        Refusal::OutOfStock { left } => t.fmt("pharmacy.walk_in.refusal.stock", &[("left", left)]),
        Refusal::AboveQuota { quota } => {
            t.fmt("pharmacy.walk_in.refusal.above_quota", &[("quota", quota)])
        }
        Refusal::Rotation { weekday } => t.fmt(
            "pharmacy.walk_in.refusal.rotation",
            &[("weekday", &t.get(weekday_key(*weekday)))],
        ),
        Refusal::NotAllowedUntil { from } => t.fmt(
            "pharmacy.walk_in.refusal.not_allowed_until",
            &[("date", &t.date(*from))],
        ),
    }
}

/// `POST /pharmacy/walk-in/{id}/undo`.
pub async fn undo(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let sale_id: i64 = path.parse().map_err(|_| AppError::NotFound)?;
    let (by, store_id, now) = (pharmacist.user.id, pharmacist.store_id, state.clock.now());
    let result = state
        .db
        .write(move |tx| walk_in::undo(tx, by, store_id, sale_id, now))
        .await;
    let refusal = match result {
        Ok(()) => {
            session::set_flash(&session, "pharmacy.walk_in.flash.undone");
            return Ok(see_other("/pharmacy/walk-in"));
        }
        Err(DbError::Work(UndoError::Refused(r))) => r,
        Err(e) => return Err(e.into()),
    };
    let (status, key) = match refusal {
        UndoRefusal::NotFound => return Err(AppError::NotFound),
        UndoRefusal::NotYours => (
            StatusCode::FORBIDDEN,
            "pharmacy.walk_in.refusal.undo_not_yours",
        ),
        UndoRefusal::AlreadyUndone => (StatusCode::CONFLICT, "pharmacy.walk_in.refusal.undo_done"),
        UndoRefusal::TooLate => (
            StatusCode::CONFLICT,
            "pharmacy.walk_in.refusal.undo_too_late",
        ),
    };
    let mut back = Back::default();
    back.errors
        .set_general(page.t.fmt(key, &[("minutes", &walk_in::UNDO_MINUTES)]));
    back.refusal = Some(refusal.kind());
    walk_in_page(&state, &pharmacist, page, back, status).await
}
