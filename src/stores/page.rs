//! `GET /stores/{code}`: one store for anyone — its stock today and its pickup
//! windows for the booking horizon — with a reserve form per bookable window
//! for a citizen who may reserve. `POST /reservations` shows this page again,
//! with the refusal next to the form that was sent. A citizen with dependants
//! (SPEC §12) picks in each form whom the masks are for (`person`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::accounts::Role;
use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, quota_usage, store_days, stores, users};
use crate::dependants::queries::{Dependant, with_quota};
use crate::i18n::Tr;
use crate::policy::Policy;
use crate::reservations::quota_view::{self, QuotaLine};
use crate::reservations::rules::{self, MAX_QUANTITY, PeriodLeft, Refusal, WindowFacts};
use crate::state::AppState;
use crate::stock::{self, Figures, StockDay, StockWindow};
use crate::stores::status::{NO_DATA_KEY, RemainStat};
use crate::stores::{is_store_code, type_key};
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/stores/{code}", web::get().to(show));
}

/// A reserve form sent back: which window, what was typed, and why it was
/// refused.
pub struct Retry {
    pub window_id: i64,
    pub quantity: String,
    /// The `person` chosen (`self` or a dependant's id), as sent.
    pub person: String,
    pub message: String,
    /// `data-refusal` on the message, for tests and styling.
    pub kind: &'static str,
}

/// Who is looking, as far as reserving goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Viewer {
    Anonymous,
    Staff,
    Unverified,
    Citizen { person_id: i64 },
}

#[derive(Debug, Clone, Queryable)]
struct StoreRow {
    id: i64,
    name: String,
    addr: String,
    store_type: String,
    phone: Option<String>,
    suspended: bool,
}

#[derive(Debug, Clone, Queryable)]
struct WindowRow {
    id: i64,
    day: NaiveDate,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    capacity: i32,
    reserved: i32,
    picked_up: i32,
}

impl WindowRow {
    fn stock(&self) -> StockWindow {
        StockWindow {
            capacity: self.capacity,
            reserved: self.reserved,
            picked_up: self.picked_up,
        }
    }
}

struct Loaded {
    store: StoreRow,
    /// Today's counters; `None` without supply today.
    today: Option<StockDay>,
    windows: Vec<WindowRow>,
    viewer: Viewer,
    /// Masks used per period start, for a citizen.
    used: HashMap<NaiveDate, i32>,
    /// A citizen's dependants, with what each has left per period.
    dependants: Vec<(Dependant, Vec<PeriodLeft>)>,
}

/// The page's reads, three statements on the connection: the store with
/// today's stock, its windows over the horizon, and — for a logged-in
/// visitor — the account with what it used of the quota in the periods those
/// windows fall in; for a citizen, a fourth for their dependants, and for
/// each of them what they used.
fn load(
    conn: &mut DbConnection,
    policy: &Policy,
    code: &str,
    now: DateTime<Utc>,
    user_id: Option<i64>,
) -> QueryResult<Option<Loaded>> {
    let today = rules::today(policy, now);
    type Today = Option<(i32, i32, i32, i32)>;
    let found: Option<(StoreRow, Today)> = crate::on_each_backend!(conn, |c| {
        crate::stores::with_day(today)
            .filter(stores::code.eq(code))
            .select((
                (
                    stores::id,
                    stores::name,
                    stores::addr,
                    stores::store_type,
                    stores::phone,
                    stores::suspended,
                ),
                (
                    store_days::supply,
                    store_days::reserved,
                    store_days::picked_up,
                    store_days::walk_in,
                )
                    .nullable(),
            ))
            .first(c)
            .optional()
    })?;
    let Some((store, today_stock)) = found else {
        return Ok(None);
    };
    let last_day = rules::last_bookable_day(policy, now);
    let windows: Vec<WindowRow> = crate::on_each_backend!(conn, |c| {
        pickup_windows::table
            .filter(pickup_windows::store_id.eq(store.id))
            .filter(pickup_windows::day.between(today, last_day))
            .order((pickup_windows::day, pickup_windows::starts_at))
            .select((
                pickup_windows::id,
                pickup_windows::day,
                pickup_windows::starts_at,
                pickup_windows::ends_at,
                pickup_windows::capacity,
                pickup_windows::reserved,
                pickup_windows::picked_up,
            ))
            .load(c)
    })?;
    let (viewer, used) = match user_id {
        None => (Viewer::Anonymous, HashMap::new()),
        Some(id) => viewer(conn, id, rules::bookable_periods(policy, now))?,
    };
    let dependants = match (viewer, user_id) {
        (Viewer::Citizen { .. }, Some(id)) => with_quota(conn, policy, id, now)?,
        _ => Vec::new(),
    };
    Ok(Some(Loaded {
        store,
        today: today_stock.map(|(supply, reserved, picked_up, walk_in)| StockDay {
            supply,
            reserved,
            picked_up,
            walk_in,
        }),
        windows,
        viewer,
        used,
        dependants,
    }))
}

/// Who the account `user_id` is, as far as reserving goes, and what its
/// person used of the quota in each period from `periods.0` to `periods.1`
/// (a period with no row used nothing): one statement, a row per period used.
fn viewer(
    conn: &mut DbConnection,
    user_id: i64,
    periods: (NaiveDate, NaiveDate),
) -> QueryResult<(Viewer, HashMap<NaiveDate, i32>)> {
    type Row = (
        String,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
        Option<i64>,
        Option<NaiveDate>,
        Option<i32>,
    );
    let rows: Vec<Row> = crate::on_each_backend!(conn, |c| {
        users::table
            .left_join(
                quota_usage::table.on(quota_usage::person_id
                    .nullable()
                    .eq(users::person_id)
                    .and(quota_usage::period_start.between(periods.0, periods.1))),
            )
            .filter(users::id.eq(user_id))
            .select((
                users::role,
                users::email_verified_at,
                users::disabled_at,
                users::person_id,
                quota_usage::period_start.nullable(),
                quota_usage::used.nullable(),
            ))
            .load(c)
    })?;
    let Some((role, verified_at, disabled_at, person_id, _, _)) = rows.first() else {
        return Ok((Viewer::Anonymous, HashMap::new()));
    };
    let viewer = match (disabled_at, Role::parse(role), person_id) {
        (Some(_), _, _) => Viewer::Anonymous,
        (None, Some(Role::Citizen), Some(_)) if verified_at.is_none() => Viewer::Unverified,
        (None, Some(Role::Citizen), Some(person_id)) => Viewer::Citizen {
            person_id: *person_id,
        },
        _ => Viewer::Staff,
    };
    let used = match viewer {
        Viewer::Citizen { .. } => rows.iter().filter_map(|r| Some((r.4?, r.5?))).collect(),
        _ => HashMap::new(),
    };
    Ok((viewer, used))
}

/// One pickup window on the page.
pub struct WindowView {
    pub id: i64,
    pub time: String,
    pub capacity: i32,
    pub remaining: i32,
    /// "14 of 40 left".
    pub left_text: String,
    /// Why it cannot be reserved (empty when it can).
    pub reason: String,
    pub reason_key: &'static str,
    /// The reserve form, for a citizen who may reserve here.
    pub form: Option<FormView>,
    /// A refusal of the form sent for this window.
    pub error: Option<(String, &'static str)>,
}

pub struct FormView {
    /// The most this citizen may ask for here, for themself or a dependant
    /// (0: every quota is used up).
    pub max: i32,
    pub quantity: String,
    /// Whom for: the citizen, then each dependant; empty without dependants
    /// (the form has no choice then).
    pub people: Vec<PersonOption>,
    /// What each dependant has left in the window's period.
    pub dependants_note: String,
    pub label: String,
    pub request_id: String,
    pub quota_note: String,
}

/// One choice of the form's `person` field.
pub struct PersonOption {
    /// `self` or the dependant's link id.
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct DayView {
    pub date: String,
    pub iso: String,
    pub windows: Vec<WindowView>,
}

#[derive(Template)]
#[template(path = "stores/store.html")]
struct StorePage {
    page: PageCtx,
    code: String,
    name: String,
    addr: String,
    type_name: String,
    phone: Option<String>,
    suspended: bool,
    remain_stat: Option<&'static str>,
    status_text: String,
    /// Today's figures, and their words.
    figures: Option<(Figures, String)>,
    days: Vec<DayView>,
    /// `anonymous`, `staff`, `unverified` or `citizen`.
    viewer: &'static str,
    unlisted_error: Option<(String, &'static str)>,
    /// For a citizen, what is left in each period they can book for.
    quota_lines: Vec<QuotaLine>,
    login_href: String,
}

async fn show(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    store_page(&state, page, path.into_inner(), None, StatusCode::OK).await
}

/// The store page for `code` (404 when no store has it), with `retry` shown
/// next to its window's form.
pub async fn store_page(
    state: &AppState,
    page: PageCtx,
    code: String,
    retry: Option<Retry>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    if !is_store_code(&code) {
        return Err(AppError::NotFound);
    }
    let policy = state.policy().await?;
    let now = state.clock.now();
    let user_id = page.user.as_ref().map(|u| u.id);
    let (for_load, lookup) = (policy.clone(), code.clone());
    let loaded = state
        .db
        .run(move |conn| load(conn, &for_load, &lookup, now, user_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let view = build(&page, &policy, now, loaded, retry);
    render(&view.into_page(page, code), status)
}

/// Everything but the page context, built from what was read.
struct Built {
    name: String,
    addr: String,
    type_name: String,
    phone: Option<String>,
    suspended: bool,
    remain_stat: Option<&'static str>,
    status_text: String,
    /// Today's figures, and their words.
    figures: Option<(Figures, String)>,
    days: Vec<DayView>,
    viewer: &'static str,
    /// A refusal for a window the page does not list (beyond the horizon).
    unlisted_error: Option<(String, &'static str)>,
    quota_lines: Vec<QuotaLine>,
}

impl Built {
    fn into_page(self, page: PageCtx, code: String) -> StorePage {
        let here = format!("/stores/{code}");
        let login_href = format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
        );
        StorePage {
            page,
            code,
            name: self.name,
            addr: self.addr,
            type_name: self.type_name,
            phone: self.phone,
            suspended: self.suspended,
            remain_stat: self.remain_stat,
            status_text: self.status_text,
            figures: self.figures,
            days: self.days,
            viewer: self.viewer,
            unlisted_error: self.unlisted_error,
            quota_lines: self.quota_lines,
            login_href,
        }
    }
}

/// The form's choices of whom for: the citizen, then each dependant with
/// their birth year; none when there are no dependants.
fn person_options(t: &Tr, dependants: &[(&Dependant, i32)], chosen: &str) -> Vec<PersonOption> {
    if dependants.is_empty() {
        return Vec::new();
    }
    let mut options = vec![PersonOption {
        value: "self".to_owned(),
        label: t.get("store_page.person_self").to_owned(),
        selected: !dependants.iter().any(|(d, _)| d.id.to_string() == chosen),
    }];
    options.extend(dependants.iter().map(|(d, _)| {
        let value = d.id.to_string();
        PersonOption {
            label: t.fmt(
                "store_page.person_dependant",
                &[
                    ("name", &d.name),
                    ("year", &rules::birth_year(d.birth_date)),
                ],
            ),
            selected: value == chosen,
            value,
        }
    }));
    options
}

/// "홍길동 2개, 김영희 0개 남음": what each dependant has left in a window's
/// period; empty without dependants.
fn dependants_note(t: &Tr, dependants: &[(&Dependant, i32)]) -> String {
    if dependants.is_empty() {
        return String::new();
    }
    let list = dependants
        .iter()
        .map(|(d, left)| {
            t.fmt(
                "store_page.dependant_left",
                &[("name", &d.name), ("left", left)],
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    t.fmt("store_page.dependants_left", &[("list", &list)])
}

fn build(
    page: &PageCtx,
    policy: &Policy,
    now: DateTime<Utc>,
    loaded: Loaded,
    retry: Option<Retry>,
) -> Built {
    let t = &page.t;
    let tz = policy.timezone;
    let store = loaded.store;
    let today = rules::today(policy, now);
    let open_free = stock::open_free_of(
        loaded
            .windows
            .iter()
            .filter(|w| w.day == today)
            .map(|w| (w.stock(), w.ends_at)),
        policy.booking_close_minutes,
        now,
    );
    let figures = loaded.today.map(|d| Figures::of(&d, open_free));
    let stat = RemainStat::of_day(figures.map(|f| i64::from(f.remaining())), store.suspended);
    let status_text = t
        .get(stat.map_or(NO_DATA_KEY, RemainStat::label_key))
        .to_owned();
    let figures = figures.map(|f| (f, f.text(t)));
    let viewer = match loaded.viewer {
        Viewer::Anonymous => "anonymous",
        Viewer::Staff => "staff",
        Viewer::Unverified => "unverified",
        Viewer::Citizen { .. } => "citizen",
    };
    let periods = match loaded.viewer {
        Viewer::Citizen { .. } => rules::periods_left(policy, now, |first| {
            loaded.used.get(&first).copied().unwrap_or(0)
        }),
        _ => Vec::new(),
    };
    let quota_lines = quota_view::lines(t, policy, rules::today(policy, now), &periods);
    let mut days: Vec<DayView> = Vec::new();
    let listed = |id| loaded.windows.iter().any(|w: &WindowRow| w.id == id);
    let unlisted_error = retry
        .as_ref()
        .filter(|r| !listed(r.window_id))
        .map(|r| (r.message.clone(), r.kind));
    for w in loaded.windows {
        let left = w.stock().remaining();
        let time = rules::time_range(tz, w.starts_at, w.ends_at);
        let facts = WindowFacts {
            day: w.day,
            ends_at: w.ends_at,
            store_suspended: store.suspended,
        };
        let (reason_key, reason) = match rules::check_window(policy, now, &facts) {
            Err(Refusal::StoreSuspended) => ("suspended", t.get("store_page.reason.suspended")),
            Err(Refusal::BookingClosed) => ("closed", t.get("store_page.reason.closed")),
            Err(_) => ("horizon", t.get("store_page.reason.horizon")),
            Ok(()) if left == 0 => ("full", t.get("store_page.reason.full")),
            Ok(()) => ("", ""),
        };
        let retried = retry.as_ref().filter(|r| r.window_id == w.id);
        let form = match loaded.viewer {
            Viewer::Citizen { .. } if reason_key.is_empty() => {
                let period = rules::period_of(policy, w.day);
                let quota_left = periods
                    .iter()
                    .find(|p| p.first == period)
                    .map_or(policy.quota_per_period, |p| p.left);
                let period_text = t.fmt(
                    "store_page.period",
                    &[("range", &t.date_range(period, policy.period.end_of(w.day)))],
                );
                let dependants_left: Vec<(&Dependant, i32)> = loaded
                    .dependants
                    .iter()
                    .map(|(d, periods)| {
                        let left = periods
                            .iter()
                            .find(|p| p.first == period)
                            .map_or(policy.quota_per_period, |p| p.left);
                        (d, left)
                    })
                    .collect();
                let most_left = dependants_left
                    .iter()
                    .map(|(_, left)| *left)
                    .fold(quota_left, i32::max);
                let chosen = retried.map_or("self", |r| r.person.as_str());
                Some(FormView {
                    max: most_left.min(left).min(MAX_QUANTITY),
                    quantity: retried.map_or_else(|| "1".to_owned(), |r| r.quantity.clone()),
                    people: person_options(t, &dependants_left, chosen),
                    dependants_note: dependants_note(t, &dependants_left),
                    label: t.fmt(
                        "store_page.quantity_for",
                        &[("date", &t.date(w.day)), ("time", &time)],
                    ),
                    request_id: crate::random::token(),
                    quota_note: if quota_left == 0 {
                        t.fmt("store_page.no_quota", &[("period", &period_text)])
                    } else {
                        t.fmt(
                            "store_page.quota_left",
                            &[("left", &quota_left), ("period", &period_text)],
                        )
                    },
                })
            }
            _ => None,
        };
        let view = WindowView {
            id: w.id,
            time,
            capacity: w.capacity,
            remaining: left,
            left_text: t.fmt(
                "store_page.window_left",
                &[("left", &left), ("capacity", &w.capacity)],
            ),
            reason: reason.to_owned(),
            reason_key,
            form,
            error: retried.map(|r| (r.message.clone(), r.kind)),
        };
        match days.last_mut() {
            Some(d) if d.iso == w.day.to_string() => d.windows.push(view),
            _ => days.push(DayView {
                date: t.date(w.day),
                iso: w.day.to_string(),
                windows: vec![view],
            }),
        }
    }
    Built {
        name: store.name,
        addr: store.addr,
        type_name: t.get(type_key(&store.store_type)).to_owned(),
        phone: store.phone,
        suspended: store.suspended,
        remain_stat: stat.map(RemainStat::as_str),
        status_text,
        figures,
        days,
        viewer,
        unlisted_error,
        quota_lines,
    }
}
