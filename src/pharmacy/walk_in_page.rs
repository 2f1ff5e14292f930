//! `GET,POST /pharmacy/walk-in` and `POST /pharmacy/walk-in/{id}/undo`: a sale
//! to someone without a reservation, the day's sales, undoing one's own within
//! minutes. The work is in [`walk_in`].
//!
//! The page is built for a queue: the ID field has the focus on arrival and
//! after every sale, and each sale's answer is one full-width banner — green
//! with the period's use after a sale, red with the reason (for a spent
//! quota, the date from which the person may buy) after a refusal.
//!
//! The national ID typed is parsed, hashed and dropped: it is never written
//! into the page as text. The fields are `type=password`, so what is typed is
//! masked on the screen of a counter in front of a queue. Only when both
//! numbers were valid and the quantity alone was wrong are they put back into
//! those same password fields — masked, never stored (pages are `no-store`),
//! so the pharmacist corrects the quantity without asking for the card
//! again; after any other answer the fields are empty for the next person.
//! The same for the second number of a proxy purchase (`for_national_id`,
//! with `proxy_checked=1`).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::accounts::national_id::NationalId;
use crate::db::DbError;
use crate::i18n::Tr;
use crate::pharmacy::queries;
use crate::pharmacy::walk_in::{self, Identity, Refusal, Sale, SoldResult, UndoError, UndoRefusal};
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

/// The answer to a sale, in one full-width banner.
pub struct ResultBanner {
    /// Green (`role=status`) for a sale, red (`role=alert`) for a refusal.
    pub sold: bool,
    /// "판매 완료 · 이번 주 2개 중 2개 사용" / "구매 불가 · 12월 7일(월)부터 가능".
    pub headline: String,
    /// Whose number, masked.
    pub who: String,
    /// The masks sold ("마스크 2개").
    pub masks: Option<String>,
    /// The reason of a refusal.
    pub detail: Option<String>,
    /// The sale just made, to undo from the banner: on a phone the list's
    /// own button is far below.
    pub undo_id: Option<i64>,
}

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
    /// The numbers put back into their password fields: only when they were
    /// valid and the quantity alone was wrong.
    national_id: String,
    for_national_id: String,
    errors: FieldErrors,
    result: Option<ResultBanner>,
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
    national_id: String,
    for_national_id: String,
    errors: FieldErrors,
    result: Option<ResultBanner>,
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
            national_id: back.national_id,
            for_national_id: back.for_national_id,
            errors: back.errors,
            result: back.result,
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

#[derive(serde::Deserialize)]
pub struct ShowQuery {
    /// The sale just made, whose banner the page shows (see [`sell`]).
    sold: Option<String>,
}

/// `GET /pharmacy/walk-in`, and after a sale `?sold={id}`: the same page with
/// the green banner of that sale, if it is the pharmacist's own and can
/// still be undone; any other `sold` shows the plain page.
pub async fn show(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, AppError> {
    let mut back = Back::default();
    if let Some(sale_id) = query.sold.as_deref().and_then(|s| s.parse::<i64>().ok()) {
        let (store_id, me, now) = (pharmacist.store_id, pharmacist.user.id, state.clock.now());
        let sold = state
            .db
            .run(move |conn| walk_in::sold_result(conn, store_id, me, sale_id, now))
            .await?;
        if let Some(sold) = sold {
            let policy = state.policy().await?;
            back.result = Some(sold_banner(&page.t, &sold, policy.quota_per_period));
        }
    }
    walk_in_page(&state, &pharmacist, page, back, StatusCode::OK).await
}

fn sold_banner(t: &Tr, sold: &SoldResult, quota: i32) -> ResultBanner {
    ResultBanner {
        sold: true,
        headline: t.fmt(
            "pharmacy.walk_in.result.sold",
            &[("quota", &quota), ("used", &sold.used)],
        ),
        who: sold.national_id_masked.clone(),
        masks: Some(t.fmt("pharmacy.pickup.masks", &[("quantity", &sold.quantity)])),
        detail: None,
        undo_id: Some(sold.sale_id),
    }
}

fn refused_banner(t: &Tr, refusal: &Refusal, who: String) -> ResultBanner {
    match refusal {
        Refusal::NotAllowedUntil { from } => ResultBanner {
            sold: false,
            headline: t.fmt(
                "pharmacy.walk_in.result.refused_until",
                &[("date", &t.date(*from))],
            ),
            who,
            masks: None,
            detail: None,
            undo_id: None,
        },
        other => ResultBanner {
            sold: false,
            headline: t.get("pharmacy.walk_in.result.refused").to_owned(),
            who,
            masks: None,
            detail: Some(refusal_message(t, other)),
            undo_id: None,
        },
    }
}

/// Sells after the checks of [`walk_in::sell`]; every look-up counts against
/// the pharmacist's limit, valid or not, and every one that reaches the sale
/// is in the audit log ([`walk_in::sell_recorded`]).
pub async fn sell(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let mut back = Back {
        quantity: truncate(form.get("quantity").trim(), 10),
        ..Back::default()
    };
    let bucket = walk_in::lookup_bucket(pharmacist.user.id);
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
    let typed = (
        truncate(form.get("national_id").trim(), 20),
        truncate(form.get("for_national_id").trim(), 20),
    );
    let numbers_valid = id.is_some() && for_person.is_some();
    let (Some(id), Some(quantity), Some(for_person)) = (id, quantity, for_person) else {
        if numbers_valid {
            (back.national_id, back.for_national_id) = typed;
        }
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
        Ok(sale_id) => return Ok(see_other(&format!("/pharmacy/walk-in?sold={sale_id}"))),
        Err(Refusal::BadQuantity { max }) => {
            back.errors.add("quantity", quantity_message(&page.t, max));
            (back.national_id, back.for_national_id) = typed;
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
    back.result = Some(refused_banner(&page.t, &refusal, masked));
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
