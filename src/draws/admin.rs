//! `GET,POST /admin/draws`: the draws, and a new one — its name, its days,
//! all stores or one region, when registration opens and closes and when the
//! results come. Creating a draw makes the windows of those days the draw's
//! (allocate the supply first: windows made later are booked first come),
//! draws its secret from the operating system's CSPRNG, and publishes the
//! commitment at once.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::json;

use crate::audit::{self, Entry};
use crate::db::schema::{draw_windows, draws, pickup_windows, store_days, stores};
use crate::db::statement::{Arg, Statement};
use crate::db::{AsRetryable, Tx, is_retryable};
use crate::draws::seed::Secret;
use crate::draws::{Draw, Phase, all as all_draws};
use crate::i18n::Tr;
use crate::state::AppState;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/draws", web::get().to(list))
        .route("/admin/draws", web::post().to(create_draw));
}

/// A draw asked for, its times in UTC.
#[derive(Debug, Clone)]
pub struct NewDraw {
    pub name: String,
    /// `None`: every store.
    pub region: Option<String>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub results_at: DateTime<Utc>,
}

/// The longest span of days one draw may cover.
pub const MAX_DAYS: i64 = 14;

/// Why a draw was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The last day is before the first, or the span is longer than
    /// [`MAX_DAYS`].
    Days,
    /// Registration must open before it closes, and the results come no
    /// earlier than the close.
    Times,
    /// The results would come after the first of its windows starts.
    TooLate,
    /// No window of those days (in that region) is free of other draws:
    /// allocate the supply first.
    NoWindows,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("draw refused: {0:?}")]
    Refused(Refusal),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for CreateError {
    fn is_retryable(&self) -> bool {
        matches!(self, CreateError::Db(e) if is_retryable(e))
    }
}

/// The windows of the days (and region) a draw covers that no other draw
/// holds: `$1` the draw, `$2` the first day, `$3` the last, `$4` the region
/// or null for every store.
const TAKE_WINDOWS_SQL: &str = "UPDATE pickup_windows SET draw_id = $1 \
     WHERE draw_id IS NULL AND day BETWEEN $2 AND $3 \
       AND store_id IN (SELECT id FROM stores WHERE $4 IS NULL OR region = $4)";

/// Creates draw `d` with `secret` (its commitment published with it), by
/// `actor` at `now`; answers its id. Refused whole, nothing written, when its
/// days or times do not make sense or it would hold no window.
pub fn create(
    tx: &mut Tx<'_>,
    d: &NewDraw,
    secret: &Secret,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<i64, CreateError> {
    if d.last_day < d.first_day || (d.last_day - d.first_day).num_days() >= MAX_DAYS {
        return Err(CreateError::Refused(Refusal::Days));
    }
    if d.opens_at >= d.closes_at || d.results_at < d.closes_at {
        return Err(CreateError::Refused(Refusal::Times));
    }
    let id: i64 = crate::on_each_backend!(tx.conn(), |c| {
        diesel::insert_into(draws::table)
            .values((
                draws::name.eq(&d.name),
                draws::region.eq(d.region.as_deref()),
                draws::first_day.eq(d.first_day),
                draws::last_day.eq(d.last_day),
                draws::opens_at.eq(d.opens_at.naive_utc()),
                draws::closes_at.eq(d.closes_at.naive_utc()),
                draws::results_at.eq(d.results_at.naive_utc()),
                draws::secret.eq(secret.to_hex()),
                draws::commitment.eq(secret.commitment()),
                draws::created_by.eq(actor),
                draws::created_at.eq(now),
            ))
            .returning(draws::id)
            .get_result(c)
    })?;
    let taken = {
        Statement::new(
            TAKE_WINDOWS_SQL,
            vec![
                Arg::BigInt(id),
                Arg::Date(d.first_day),
                Arg::Date(d.last_day),
                Arg::NullableText(d.region.as_deref()),
            ],
        )
        .run(tx.conn())
    }?;
    if taken == 0 {
        return Err(CreateError::Refused(Refusal::NoWindows));
    }
    let first_start: Option<NaiveDateTime> = pickup_windows::table
        .filter(pickup_windows::draw_id.eq(id))
        .select(diesel::dsl::min(pickup_windows::starts_at))
        .first(tx.conn())?;
    if first_start.is_some_and(|start| d.results_at.naive_utc() >= start) {
        return Err(CreateError::Refused(Refusal::TooLate));
    }
    // Their free places are now the draw's, not anyone's to book: the
    // figures of their store-days change (`stock::Figures::in_draw`).
    touch_store_days(tx, id, now)?;
    let held = pickup_windows::table
        .filter(pickup_windows::draw_id.eq(id))
        .select((
            id.into_sql::<diesel::sql_types::BigInt>(),
            pickup_windows::id,
        ));
    diesel::insert_into(draw_windows::table)
        .values(held)
        .into_columns((draw_windows::draw_id, draw_windows::window_id))
        .execute(tx.conn())?;
    audit::record_at(
        tx,
        Entry {
            actor,
            action: "draw.create",
            entity: "draw",
            entity_id: id.to_string(),
            before: None,
            after: Some(json!({
                "name": d.name,
                "region": d.region,
                "first_day": d.first_day.to_string(),
                "last_day": d.last_day.to_string(),
                "windows": taken,
                "commitment": secret.commitment(),
            })),
        },
        now,
    )?;
    Ok(id)
}

/// Marks the stock of the store-days with windows in draw `draw_id` as
/// changed at `at`, for the open data's snapshot to read them again.
pub fn touch_store_days(tx: &mut Tx<'_>, draw_id: i64, at: NaiveDateTime) -> QueryResult<usize> {
    let days = pickup_windows::table
        .filter(pickup_windows::draw_id.eq(draw_id))
        .select(pickup_windows::store_day_id);
    diesel::update(store_days::table.filter(store_days::id.eq_any(days)))
        .set(store_days::stock_changed_at.eq(at))
        .execute(tx.conn())
}

/// A fresh secret from the operating system's CSPRNG.
pub fn fresh_secret() -> Secret {
    Secret::from_bytes(rand::random())
}

/// One draw in the list.
pub struct DrawRow {
    pub id: i64,
    pub name: String,
    pub days: String,
    pub region: String,
    pub registration: String,
    pub state_key: &'static str,
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "admin/draws.html")]
struct DrawsPage {
    page: PageCtx,
    rows: Vec<DrawRow>,
    regions: Vec<String>,
    values: Values,
    errors: FieldErrors,
}

/// The form's values as typed.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub name: String,
    pub region: String,
    pub first_day: String,
    pub last_day: String,
    pub opens_at: String,
    pub closes_at: String,
    pub results_at: String,
}

/// `Upcoming` and the rest, as the list's words and `data-state`.
pub fn phase_words(phase: Phase) -> (&'static str, &'static str) {
    match phase {
        Phase::Upcoming => ("draws.phase.upcoming", "upcoming"),
        Phase::Registering => ("draws.phase.registering", "registering"),
        Phase::Drawing => ("draws.phase.drawing", "drawing"),
        Phase::Done => ("draws.phase.done", "done"),
    }
}

/// A draw's days in `t`'s words: one date, or the range.
pub fn days_text(t: &Tr, first: NaiveDate, last: NaiveDate) -> String {
    if first == last {
        t.date(first)
    } else {
        t.date_range(first, last)
    }
}

/// `2026년 3월 10일 (화) 09:00` in the service zone.
pub fn moment(t: &Tr, tz: Tz, at: NaiveDateTime) -> String {
    crate::reservations::rules::local_date_time(t, tz, at.and_utc())
}

fn rows(t: &Tr, tz: Tz, now: DateTime<Utc>, all: Vec<Draw>) -> Vec<DrawRow> {
    all.into_iter()
        .map(|d| {
            let (state_key, state) = phase_words(d.phase(now));
            DrawRow {
                id: d.id,
                days: days_text(t, d.first_day, d.last_day),
                region: d
                    .region
                    .clone()
                    .unwrap_or_else(|| t.get("draws.all_regions").to_owned()),
                registration: format!(
                    "{} – {}",
                    moment(t, tz, d.opens_at),
                    moment(t, tz, d.closes_at)
                ),
                name: d.name,
                state_key,
                state,
            }
        })
        .collect()
}

async fn page_of(
    state: &AppState,
    page: PageCtx,
    values: Values,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let (all, regions) = state
        .db
        .run(|conn| {
            let regions: Vec<String> = stores::table
                .select(stores::region)
                .distinct()
                .order(stores::region)
                .load(conn)?;
            Ok::<_, DieselError>((all_draws(conn)?, regions))
        })
        .await?;
    let rows = rows(&page.t, policy.timezone, state.clock.now(), all);
    render(
        &DrawsPage {
            page,
            rows,
            regions,
            values,
            errors,
        },
        status,
    )
}

async fn list(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let values = Values {
        region: String::new(),
        ..Values::default()
    };
    page_of(&state, page, values, FieldErrors::default(), StatusCode::OK).await
}

/// A `datetime-local` value (`2026-03-10T09:00`) in the service zone, as UTC.
fn local_time(tz: Tz, text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M").ok()?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// The form parsed, or each field's error.
fn parse(t: &Tr, tz: Tz, v: &Values) -> Result<NewDraw, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = v.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.add("name", t.get("admin.draws.error.name"));
    }
    let first_day = day(&v.first_day);
    let last_day = day(&v.last_day);
    for (field, parsed) in [("first_day", first_day), ("last_day", last_day)] {
        if parsed.is_none() {
            errors.add(field, t.get("admin.draws.error.day"));
        }
    }
    let times = [
        ("opens_at", local_time(tz, &v.opens_at)),
        ("closes_at", local_time(tz, &v.closes_at)),
        ("results_at", local_time(tz, &v.results_at)),
    ];
    for (field, parsed) in times {
        if parsed.is_none() {
            errors.add(field, t.get("admin.draws.error.time"));
        }
    }
    match (first_day, last_day, times[0].1, times[1].1, times[2].1) {
        (Some(first_day), Some(last_day), Some(opens_at), Some(closes_at), Some(results_at))
            if errors.is_empty() =>
        {
            let region = v.region.trim();
            Ok(NewDraw {
                name,
                region: (!region.is_empty()).then(|| region.to_owned()),
                first_day,
                last_day,
                opens_at,
                closes_at,
                results_at,
            })
        }
        _ => Err(errors),
    }
}

async fn create_draw(
    state: web::Data<AppState>,
    admin: Admin,
    session: actix_session::Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let values = Values {
        name: truncate(form.get("name"), 200),
        region: truncate(form.get("region"), 100),
        first_day: truncate(form.get("first_day"), 20),
        last_day: truncate(form.get("last_day"), 20),
        opens_at: truncate(form.get("opens_at"), 30),
        closes_at: truncate(form.get("closes_at"), 30),
        results_at: truncate(form.get("results_at"), 30),
    };
    let policy = state.policy().await?;
    let asked = match parse(&page.t, policy.timezone, &values) {
        Ok(d) => d,
        Err(errors) => {
            return page_of(
                &state,
                page,
                values,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let (actor, now) = (admin.user.id, state.clock.now().naive_utc());
    let secret = fresh_secret();
    let result = state
        .db
        .write(move |tx| create(tx, &asked, &secret, Some(actor), now))
        .await;
    let (field, key) = match result {
        Ok(id) => {
            session::set_flash(&session, "admin.draws.created");
            return Ok(see_other(&format!("/draws/{id}")));
        }
        Err(crate::db::DbError::Work(CreateError::Refused(r))) => match r {
            Refusal::Days => ("last_day", "admin.draws.error.days"),
            Refusal::Times => ("closes_at", "admin.draws.error.times"),
            Refusal::TooLate => ("results_at", "admin.draws.error.too_late"),
            Refusal::NoWindows => ("first_day", "admin.draws.error.no_windows"),
        },
        Err(e) => return Err(e.into()),
    };
    let mut errors = FieldErrors::default();
    errors.add(field, page.t.get(key));
    page_of(
        &state,
        page,
        values,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}
