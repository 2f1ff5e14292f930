//! `GET /stores/{code}`: one store for anyone — its stock today and its pickup
//! windows for the booking horizon, one day at a time (`?day=`), ended ones
//! left out — with a reserve form per bookable window for a citizen who may
//! reserve. `POST /reservations` shows this page again, with the refusal at
//! the top (the forms' error summary, and the nearest window still open to
//! that person as one button) and next to the form that was sent. A citizen
//! with dependants (SPEC §12) picks in each form whom the masks are for
//! (`person`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Date, Integer, Nullable, Text, Timestamp};
use serde::Deserialize;

use crate::accounts::Role;
use crate::db::DbConnection;
use crate::db::statement::{Arg, Statement};
use crate::i18n::Tr;
use crate::policy::{Policy, Rotation, rotation_weekday};
use crate::reservations::quota_view::{self, QuotaLine};
use crate::reservations::rules::{self, MAX_QUANTITY, PeriodLeft, Refusal, WindowFacts};
use crate::state::AppState;
use crate::stock::{self, Figures, StockDay, StockWindow};
use crate::stores::status::{NO_DATA_KEY, RemainStat};
use crate::stores::{is_store_code, type_key};
use crate::web::errors::AppError;
use crate::web::form::FieldErrors;
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
    /// `birth_year` decides their weekday under the rotation rule.
    Citizen {
        person_id: i64,
        birth_year: i32,
    },
}

#[derive(Debug, Clone)]
struct StoreRow {
    name: String,
    addr: String,
    store_type: String,
    phone: Option<String>,
    suspended: bool,
}

#[derive(Debug, Clone)]
struct WindowRow {
    id: i64,
    day: NaiveDate,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    capacity: i32,
    reserved: i32,
    picked_up: i32,
    /// The draw that allocates it, while that draw is not done.
    draw_id: Option<i64>,
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

/// A current dependant of the citizen, as the reserve form offers them.
#[derive(Debug, Clone)]
struct PageDependant {
    /// The link's id: what the form's `person` field names.
    id: i64,
    name: String,
    birth_date: NaiveDate,
}

/// A place the visitor holds in a window's waiting list.
#[derive(Debug, Clone)]
struct PageWaiting {
    window_id: i64,
    quantity: i32,
    /// The dependant's link; `None` for the citizen's own place.
    dependant_id: Option<i64>,
    /// 1 for the first in line.
    position: i32,
}

/// What the store page read, as [`load`] found it.
pub struct Loaded {
    store: StoreRow,
    /// Today's counters; `None` without supply today.
    today: Option<StockDay>,
    windows: Vec<WindowRow>,
    viewer: Viewer,
    /// Masks used per period start, for a citizen.
    used: HashMap<NaiveDate, i32>,
    /// A citizen's dependants, in the order they were added, with what each
    /// has left per period.
    dependants: Vec<(PageDependant, Vec<PeriodLeft>)>,
    /// The citizen's places in these windows' waiting lists.
    waiting: Vec<PageWaiting>,
}

/// Everything the page reads, in one statement: a row of each kind the
/// `kind` column names, the columns of the other kinds null.
///
/// - `store`: the store (`$1` its code) with today's (`$2`) counters, null
///   without supply today;
/// - `window`: each of its windows from today to the last bookable day (`$3`),
///   with the draw that allocates it, if any, as `person_id`;
/// - `account`: the visitor's account (`$6`, null for nobody), once per
///   period from `$4` to `$5` its person used some quota in (or once, with
///   no period);
/// - `dependant`: each current dependant of that account, in the same way;
/// - `waiting`: each place that account holds in the waiting list of one of
///   these windows (SPEC §13): the window as `id`, the quantity as
///   `reserved`, the dependant's link (null for the citizen) as `person_id`
///   and the place in line as `used`.
///
/// Its arms stand side by side so that each is planned with its own index;
/// the `CAST`s give every column one type across them, as PostgreSQL asks.
const LOAD_SQL: &str = "\
SELECT 'store' AS kind, s.id AS id, s.name AS name, s.addr AS addr, \
       s.store_type AS store_type, s.phone AS phone, s.suspended AS suspended, \
       d.supply AS supply, d.walk_in AS walk_in, CAST(NULL AS INTEGER) AS capacity, \
       d.reserved AS reserved, d.picked_up AS picked_up, \
       CAST(NULL AS DATE) AS day, CAST(NULL AS TIMESTAMP) AS starts_at, \
       CAST(NULL AS TIMESTAMP) AS ends_at, \
       CAST(NULL AS TEXT) AS role, CAST(NULL AS BOOLEAN) AS verified, \
       CAST(NULL AS BOOLEAN) AS disabled, CAST(NULL AS BIGINT) AS person_id, \
       CAST(NULL AS DATE) AS birth_date, CAST(NULL AS DATE) AS period_start, \
       CAST(NULL AS INTEGER) AS used, CAST(NULL AS TIMESTAMP) AS added_at \
FROM stores s LEFT JOIN store_days d ON d.store_id = s.id AND d.day = $2 \
WHERE s.code = $1 \
UNION ALL \
SELECT 'window', w.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, w.capacity, \
       w.reserved, w.picked_up, w.day, w.starts_at, w.ends_at, \
       NULL, NULL, NULL, w.draw_id, NULL, NULL, NULL, NULL \
FROM stores s JOIN pickup_windows w ON w.store_id = s.id \
WHERE s.code = $1 AND w.day BETWEEN $2 AND $3 \
UNION ALL \
SELECT 'account', u.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, \
       u.role, u.email_verified_at IS NOT NULL, u.disabled_at IS NOT NULL, u.person_id, \
       p.birth_date, q.period_start, q.used, NULL \
FROM users u \
LEFT JOIN people p ON p.id = u.person_id \
LEFT JOIN quota_usage q ON q.person_id = u.person_id AND q.period_start BETWEEN $4 AND $5 \
WHERE u.id = $6 \
UNION ALL \
SELECT 'dependant', d.id, d.name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, NULL, NULL, NULL, d.person_id, \
       p.birth_date, q.period_start, q.used, d.created_at \
FROM dependants d \
JOIN people p ON p.id = d.person_id \
LEFT JOIN quota_usage q ON q.person_id = d.person_id AND q.period_start BETWEEN $4 AND $5 \
WHERE d.guardian_user_id = $6 AND d.ended_at IS NULL \
UNION ALL \
SELECT 'waiting', e.window_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, e.quantity, NULL, \
       NULL, NULL, NULL, NULL, NULL, NULL, e.dependant_id, NULL, NULL, \
       CAST((SELECT COUNT(*) FROM waitlist f \
             WHERE f.window_id = e.window_id AND f.offer_id IS NULL AND f.id <= e.id) AS INTEGER), \
       NULL \
FROM waitlist e \
JOIN pickup_windows w ON w.id = e.window_id \
JOIN stores s ON s.id = w.store_id \
WHERE e.user_id = $6 AND e.offer_id IS NULL AND s.code = $1 AND w.day BETWEEN $2 AND $3";

/// One row of [`LOAD_SQL`].
#[derive(Debug, QueryableByName)]
struct LoadRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    id: i64,
    /// The store's, or the dependant's.
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    addr: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    store_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    suspended: Option<bool>,
    #[diesel(sql_type = Nullable<Integer>)]
    supply: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    walk_in: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    capacity: Option<i32>,
    /// The store-day's, or the window's.
    #[diesel(sql_type = Nullable<Integer>)]
    reserved: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    picked_up: Option<i32>,
    #[diesel(sql_type = Nullable<Date>)]
    day: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    starts_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    ends_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    role: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    verified: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    disabled: Option<bool>,
    /// The account's, or the dependant's.
    #[diesel(sql_type = Nullable<BigInt>)]
    person_id: Option<i64>,
    #[diesel(sql_type = Nullable<Date>)]
    birth_date: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Date>)]
    period_start: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Integer>)]
    used: Option<i32>,
    /// When the dependant was added (the order of the form's choices).
    #[diesel(sql_type = Nullable<Timestamp>)]
    added_at: Option<NaiveDateTime>,
}

impl LoadRow {
    fn store(&mut self) -> Option<(StoreRow, Option<StockDay>)> {
        let store = StoreRow {
            name: self.name.take()?,
            addr: self.addr.take()?,
            store_type: self.store_type.take()?,
            phone: self.phone.take(),
            suspended: self.suspended?,
        };
        let today = match (self.supply, self.reserved, self.picked_up, self.walk_in) {
            (Some(supply), Some(reserved), Some(picked_up), Some(walk_in)) => Some(StockDay {
                supply,
                reserved,
                picked_up,
                walk_in,
            }),
            _ => None,
        };
        Some((store, today))
    }

    fn window(&self) -> Option<WindowRow> {
        Some(WindowRow {
            id: self.id,
            day: self.day?,
            starts_at: self.starts_at?,
            ends_at: self.ends_at?,
            capacity: self.capacity?,
            reserved: self.reserved?,
            picked_up: self.picked_up?,
            draw_id: self.person_id,
        })
    }

    /// The quota this row's person used in its period, if it names one.
    fn period_used(&self) -> Option<(NaiveDate, i32)> {
        Some((self.period_start?, self.used?))
    }
}

/// The page's reads: [`LOAD_SQL`], one statement on the connection whoever
/// looks; `None` when no store has `code`.
pub fn load(
    conn: &mut DbConnection,
    policy: &Policy,
    code: &str,
    now: DateTime<Utc>,
    user_id: Option<i64>,
) -> QueryResult<Option<Loaded>> {
    let today = rules::today(policy, now);
    let periods = rules::bookable_periods(policy, now);
    let rows: Vec<LoadRow> = crate::on_each_backend!(conn, |c| {
        Statement::new(
            LOAD_SQL,
            vec![
                Arg::Text(code),
                Arg::Date(today),
                Arg::Date(rules::last_bookable_day(policy, now)),
                Arg::Date(periods.0),
                Arg::Date(periods.1),
                Arg::NullableBigInt(user_id),
            ],
        )
        .load(c)
    })?;
    let mut found = None;
    let mut windows = Vec::new();
    let mut account: Option<LoadRow> = None;
    let mut used = HashMap::new();
    // Each dependant's link id, person, name, birth date and when added, with
    // what they used per period.
    let mut dependants: Vec<(LoadRow, HashMap<NaiveDate, i32>)> = Vec::new();
    let mut waiting = Vec::new();
    for mut row in rows {
        match row.kind.as_str() {
            "store" => found = row.store(),
            "window" => windows.extend(row.window()),
            "account" => {
                used.extend(row.period_used());
                account.get_or_insert(row);
            }
            "dependant" => match dependants.iter_mut().find(|(d, _)| d.id == row.id) {
                Some((_, used)) => used.extend(row.period_used()),
                None => {
                    let used = row.period_used().into_iter().collect();
                    dependants.push((row, used));
                }
            },
            "waiting" => {
                waiting.extend(
                    row.reserved
                        .zip(row.used)
                        .map(|(quantity, position)| PageWaiting {
                            window_id: row.id,
                            quantity,
                            dependant_id: row.person_id,
                            position,
                        }),
                )
            }
            _ => {}
        }
    }
    let Some((store, today)) = found else {
        return Ok(None);
    };
    windows.sort_by_key(|w| (w.day, w.starts_at, w.id));
    let viewer = account.as_ref().map_or(Viewer::Anonymous, viewer_of);
    if !matches!(viewer, Viewer::Citizen { .. }) {
        waiting.clear();
    }
    let (used, dependants) = match viewer {
        Viewer::Citizen { .. } => {
            dependants.sort_by_key(|(d, _)| (d.added_at, d.id));
            let dependants = dependants
                .into_iter()
                .filter_map(|(mut d, used)| {
                    let dependant = PageDependant {
                        id: d.id,
                        name: d.name.take()?,
                        birth_date: d.birth_date?,
                    };
                    let periods = rules::periods_left(policy, now, |first| {
                        used.get(&first).copied().unwrap_or(0)
                    });
                    Some((dependant, periods))
                })
                .collect();
            (used, dependants)
        }
        _ => (HashMap::new(), Vec::new()),
    };
    Ok(Some(Loaded {
        store,
        today,
        windows,
        viewer,
        used,
        dependants,
        waiting,
    }))
}

/// Who an account is, as far as reserving goes.
fn viewer_of(account: &LoadRow) -> Viewer {
    let role = account.role.as_deref().and_then(Role::parse);
    match (
        account.disabled,
        role,
        account.person_id,
        account.birth_date,
    ) {
        (Some(true), _, _, _) => Viewer::Anonymous,
        (_, Some(Role::Citizen), Some(_), _) if account.verified != Some(true) => {
            Viewer::Unverified
        }
        (_, Some(Role::Citizen), Some(person_id), Some(born)) => Viewer::Citizen {
            person_id,
            birth_year: rules::birth_year(born),
        },
        _ => Viewer::Staff,
    }
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
    /// Said instead of a form when the citizen's quota for the window's
    /// week is used up.
    pub no_quota: Option<String>,
    /// A refusal of the form sent for this window.
    pub error: Option<(String, &'static str)>,
    /// The visitor's places in this window's waiting list.
    pub waiting: Vec<WaitingView>,
    /// The form to join its waiting list, for a full window that someone
    /// the citizen books for may still wait for.
    pub join: Option<FormView>,
    /// The page of the draw that allocates it, while that draw is not done.
    pub draw_href: Option<String>,
}

/// A place the visitor holds in a window's waiting list, with its leave form.
pub struct WaitingView {
    /// "대기 2번째 (마스크 2개)" or the same for a dependant.
    pub text: String,
    /// The form's `person`: `self` or the dependant's link id.
    pub person: String,
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
}

/// One choice of the form's `person` field.
pub struct PersonOption {
    /// `self` or the dependant's link id.
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One day of the day picker.
pub struct DayLink {
    pub iso: String,
    pub label: String,
    pub href: String,
    /// "2곳 예약 가능" or "예약 불가".
    pub note: String,
    pub chosen: bool,
}

/// The chosen day, with its windows.
pub struct DayView {
    pub date: String,
    pub iso: String,
    pub windows: Vec<WindowView>,
}

/// A refused booking, said once at the top of the page.
pub struct RefusalView {
    pub message: String,
    /// `data-refusal`.
    pub kind: &'static str,
    pub suggestion: Option<Suggestion>,
}

/// The nearest window the refused citizen can still book at this store, as a
/// one-tap form.
pub struct Suggestion {
    pub window_id: i64,
    pub quantity: i32,
    /// `self` or a dependant's link id: the person of the refused form.
    pub person: String,
    pub request_id: String,
    pub label: String,
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
    day_links: Vec<DayLink>,
    day: Option<DayView>,
    /// `anonymous`, `staff`, `unverified` or `citizen`.
    viewer: &'static str,
    refusal: Option<RefusalView>,
    /// The summary's wording: the form's summary, with the refusal as its
    /// message for the whole form.
    errors: FieldErrors,
    /// "회원님의 구매 요일: 수요일", when the rotation rule is on.
    rotation_line: Option<String>,
    /// For a citizen, what is left in each period they can book for.
    quota_lines: Vec<QuotaLine>,
    login_href: String,
}

#[derive(Debug, Deserialize)]
struct DayQuery {
    day: Option<String>,
}

async fn show(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    query: web::Query<DayQuery>,
) -> Result<HttpResponse, AppError> {
    let day = match query.into_inner().day.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| AppError::BadRequest("day is not a date (YYYY-MM-DD)".into()))?,
        ),
    };
    store_page(&state, page, path.into_inner(), day, None, StatusCode::OK).await
}

/// The store page for `code` (404 when no store has it) on `day` (or the
/// first day with a window to book), with `retry` said at the top and next to
/// its window's form.
pub async fn store_page(
    state: &AppState,
    page: PageCtx,
    code: String,
    day: Option<NaiveDate>,
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
    let view = build(&page, &policy, now, &code, loaded, day, retry);
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
    days: Vec<(NaiveDate, DayView)>,
    chosen: Option<NaiveDate>,
    viewer: &'static str,
    refusal: Option<RefusalView>,
    rotation_line: Option<String>,
    quota_lines: Vec<QuotaLine>,
}

impl Built {
    fn into_page(self, page: PageCtx, code: String) -> StorePage {
        let here = format!("/stores/{code}");
        let login_href = format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
        );
        let t = &page.t;
        let day_links = self
            .days
            .iter()
            .map(|(date, d)| {
                let open = d.windows.iter().filter(|w| w.form.is_some()).count();
                let bookable = d.windows.iter().filter(|w| w.reason_key.is_empty()).count();
                let note = match (self.viewer, open, bookable) {
                    ("citizen", 0, _) | (_, _, 0) => t.get("store_page.day_none").to_owned(),
                    ("citizen", n, _) | (_, _, n) => {
                        t.count("store_page.day_open", n, &[("count", &n)])
                    }
                };
                DayLink {
                    iso: d.iso.clone(),
                    label: t.date(*date),
                    href: format!("{here}?day={}", d.iso),
                    note,
                    chosen: Some(*date) == self.chosen,
                }
            })
            .collect();
        let day = self
            .days
            .into_iter()
            .find(|(date, _)| Some(*date) == self.chosen)
            .map(|(_, d)| d);
        let mut errors = FieldErrors::default();
        if let Some(r) = &self.refusal {
            errors.set_title(t.get("store_page.refused_title"));
            errors.set_general(r.message.clone());
        }
        StorePage {
            code,
            name: self.name,
            addr: self.addr,
            type_name: self.type_name,
            phone: self.phone,
            suspended: self.suspended,
            remain_stat: self.remain_stat,
            status_text: self.status_text,
            figures: self.figures,
            day_links,
            day,
            viewer: self.viewer,
            refusal: self.refusal,
            errors,
            rotation_line: self.rotation_line,
            quota_lines: self.quota_lines,
            login_href,
            page,
        }
    }
}

/// The form's choices of whom for: the citizen, then each dependant with
/// their birth year; none when there are no dependants.
fn person_options(t: &Tr, dependants: &[(&PageDependant, i32)], chosen: &str) -> Vec<PersonOption> {
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
fn dependants_note(t: &Tr, dependants: &[(&PageDependant, i32)]) -> String {
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

/// Someone the citizen books for, as the page weighs a window for them.
struct Booker<'a> {
    /// The form's `person` value: `self` or a dependant's link id.
    value: String,
    birth_year: i32,
    periods: &'a [PeriodLeft],
}

impl Booker<'_> {
    /// What they have left in the period that starts on `period`.
    fn left_in(&self, policy: &Policy, period: NaiveDate) -> i32 {
        self.periods
            .iter()
            .find(|p| p.first == period)
            .map_or(policy.quota_per_period, |p| p.left)
    }

    fn may_come_on(&self, policy: &Policy, day: NaiveDate) -> bool {
        policy.rotation.allows(self.birth_year, day)
    }
}

/// What the form for a window offers before anything is typed: all that the
/// person may still take there, however few places or masks remain (at
/// least 1, the least a form can ask for).
pub fn preset_quantity(left_in_period: i32, free_places: i32) -> i32 {
    left_in_period.min(free_places).clamp(1, MAX_QUANTITY)
}

/// The refusals after which another window may do: not those about the
/// account, the form itself or a store that sells nothing.
fn worth_suggesting(kind: &str) -> bool {
    matches!(
        kind,
        "full" | "closed" | "horizon" | "rotation" | "quota" | "sold_out"
    )
}

fn build(
    page: &PageCtx,
    policy: &Policy,
    now: DateTime<Utc>,
    code: &str,
    loaded: Loaded,
    asked_day: Option<NaiveDate>,
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
            .map(|w| (w.stock(), w.ends_at, w.draw_id.is_some())),
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
    let quota_lines = quota_view::lines(t, policy, today, &periods);
    let me = match loaded.viewer {
        Viewer::Citizen { birth_year, .. } => Some(Booker {
            value: "self".to_owned(),
            birth_year,
            periods: &periods,
        }),
        _ => None,
    };
    let others: Vec<Booker> = loaded
        .dependants
        .iter()
        .map(|(d, periods)| Booker {
            value: d.id.to_string(),
            birth_year: rules::birth_year(d.birth_date),
            periods,
        })
        .collect();
    let rotation_line = match (&me, policy.rotation) {
        (Some(me), Rotation::BirthYear) => Some(t.fmt(
            "store_page.rotation_line",
            &[(
                "weekday",
                &t.get(rules::weekday_key(rotation_weekday(me.birth_year))),
            )],
        )),
        _ => None,
    };
    let retried_window = retry
        .as_ref()
        .and_then(|r| loaded.windows.iter().find(|w| w.id == r.window_id));
    // The refused form's person (the citizen when it named no one known).
    let refused_for = retry
        .as_ref()
        .and_then(|r| others.iter().find(|b| b.value == r.person))
        .or(me.as_ref());
    let asked_quantity = retry
        .as_ref()
        .and_then(|r| r.quantity.parse::<i32>().ok())
        .filter(|q| (1..=MAX_QUANTITY).contains(q));
    let mut suggestion: Option<Suggestion> = None;

    let mut days: Vec<(NaiveDate, DayView)> = Vec::new();
    let ended = |w: &WindowRow| w.ends_at <= now.naive_utc();
    for w in loaded.windows.iter().filter(|w| !ended(w)) {
        let left = w.stock().remaining();
        let time = rules::time_range(tz, w.starts_at, w.ends_at);
        let facts = WindowFacts {
            day: w.day,
            ends_at: w.ends_at,
            store_suspended: store.suspended,
        };
        let period = rules::period_of(policy, w.day);
        let nobody_may_come = me.as_ref().is_some_and(|me| {
            !me.may_come_on(policy, w.day) && !others.iter().any(|o| o.may_come_on(policy, w.day))
        });
        let (reason_key, reason) = match rules::check_window(policy, now, &facts) {
            Ok(()) if w.draw_id.is_some() => ("draw", t.get("store_page.reason.draw").to_owned()),
            Err(Refusal::StoreSuspended) => {
                ("suspended", t.get("store_page.reason.suspended").to_owned())
            }
            Err(Refusal::BookingClosed) => ("closed", t.get("store_page.reason.closed").to_owned()),
            Err(_) => ("horizon", t.get("store_page.reason.horizon").to_owned()),
            Ok(()) if left == 0 => ("full", t.get("store_page.reason.full").to_owned()),
            Ok(()) if nobody_may_come => (
                "rotation",
                t.fmt(
                    "store_page.reason.rotation",
                    &[(
                        "weekday",
                        &t.get(rules::weekday_key(rotation_weekday(
                            me.as_ref().map_or(0, |m| m.birth_year),
                        ))),
                    )],
                ),
            ),
            Ok(()) => ("", String::new()),
        };
        if let (Some(r), Some(person), None) = (&retry, refused_for, &suggestion) {
            let person_left = person.left_in(policy, period);
            if worth_suggesting(r.kind)
                && r.window_id != w.id
                && reason_key.is_empty()
                && person.may_come_on(policy, w.day)
                && person_left > 0
            {
                let quantity = asked_quantity
                    .unwrap_or(1)
                    .min(preset_quantity(person_left, left));
                suggestion = Some(Suggestion {
                    window_id: w.id,
                    quantity,
                    person: person.value.clone(),
                    request_id: crate::random::token(),
                    label: t.fmt(
                        "store_page.suggest_button",
                        &[
                            ("date", &t.date(w.day)),
                            ("time", &time),
                            ("quantity", &quantity),
                        ],
                    ),
                });
            }
        }
        let retried = retry.as_ref().filter(|r| r.window_id == w.id);
        let (form, no_quota) = match &me {
            Some(me) if reason_key.is_empty() => {
                let quota_left = me.left_in(policy, period);
                let dependants_left: Vec<(&PageDependant, i32)> = loaded
                    .dependants
                    .iter()
                    .zip(&others)
                    .map(|((d, _), b)| (d, b.left_in(policy, period)))
                    .collect();
                let most_left = dependants_left
                    .iter()
                    .map(|(_, left)| *left)
                    .fold(quota_left, i32::max);
                let max = most_left.min(left).min(MAX_QUANTITY);
                let chosen = retried.map_or("self", |r| r.person.as_str());
                let no_quota = (quota_left == 0).then(|| {
                    let period_text = t.fmt(
                        "store_page.period",
                        &[("range", &t.date_range(period, policy.period.end_of(w.day)))],
                    );
                    t.fmt("store_page.no_quota", &[("period", &period_text)])
                });
                let form = (max > 0).then(|| FormView {
                    max,
                    quantity: retried.map_or_else(
                        || preset_quantity(quota_left, left).to_string(),
                        |r| r.quantity.clone(),
                    ),
                    people: person_options(t, &dependants_left, chosen),
                    dependants_note: dependants_note(t, &dependants_left),
                    label: t.fmt(
                        "store_page.quantity_for",
                        &[("date", &t.date(w.day)), ("time", &time)],
                    ),
                    request_id: crate::random::token(),
                });
                (form, no_quota)
            }
            _ => (None, None),
        };
        let waiting: Vec<WaitingView> = loaded
            .waiting
            .iter()
            .filter(|e| e.window_id == w.id)
            .map(|e| {
                let name = e.dependant_id.and_then(|id| {
                    loaded
                        .dependants
                        .iter()
                        .find(|(d, _)| d.id == id)
                        .map(|(d, _)| d.name.as_str())
                });
                let text = match name {
                    Some(name) => t.fmt(
                        "waitlist.place_for",
                        &[
                            ("position", &e.position),
                            ("quantity", &e.quantity),
                            ("name", &name),
                        ],
                    ),
                    None => t.fmt(
                        "waitlist.place",
                        &[("position", &e.position), ("quantity", &e.quantity)],
                    ),
                };
                WaitingView {
                    text,
                    person: e
                        .dependant_id
                        .map_or_else(|| "self".to_owned(), |id| id.to_string()),
                }
            })
            .collect();
        let join = match &me {
            Some(me) if reason_key == "full" && w.starts_at > now.naive_utc() => {
                let waits = |value: &str| waiting.iter().any(|e| e.person == value);
                // Whoever the citizen books for who may still wait here: the
                // rotation day allows, quota is left, not already in line.
                let may_wait = |b: &Booker| {
                    let left = b.left_in(policy, period);
                    (b.may_come_on(policy, w.day) && left > 0 && !waits(&b.value)).then_some(left)
                };
                let own = may_wait(me);
                let dependants_left: Vec<(&PageDependant, i32)> = loaded
                    .dependants
                    .iter()
                    .zip(&others)
                    .filter_map(|((d, _), b)| may_wait(b).map(|left| (d, left)))
                    .collect();
                let most = dependants_left
                    .iter()
                    .map(|(_, left)| *left)
                    .chain(own)
                    .max();
                most.map(|most| {
                    let first = own.or(dependants_left.first().map(|(_, left)| *left));
                    let chosen = if own.is_some() {
                        "self".to_owned()
                    } else {
                        dependants_left
                            .first()
                            .map_or_else(|| "self".to_owned(), |(d, _)| d.id.to_string())
                    };
                    let mut people = person_options(t, &dependants_left, &chosen);
                    if own.is_none() {
                        people.retain(|p| p.value != "self");
                    }
                    FormView {
                        max: most.min(MAX_QUANTITY),
                        quantity: first.unwrap_or(1).clamp(1, MAX_QUANTITY).to_string(),
                        people,
                        dependants_note: String::new(),
                        label: t.fmt(
                            "waitlist.quantity_for",
                            &[("date", &t.date(w.day)), ("time", &time)],
                        ),
                        request_id: String::new(),
                    }
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
            reason,
            reason_key,
            form,
            no_quota,
            error: retried.map(|r| (r.message.clone(), r.kind)),
            waiting,
            join,
            draw_href: w.draw_id.map(|id| format!("/draws/{id}?store={code}")),
        };
        match days.last_mut() {
            Some((day, d)) if *day == w.day => d.windows.push(view),
            _ => days.push((
                w.day,
                DayView {
                    date: t.date(w.day),
                    iso: w.day.to_string(),
                    windows: vec![view],
                },
            )),
        }
    }
    let listed = |day: NaiveDate| days.iter().any(|(d, _)| *d == day);
    let first_where = |open: fn(&WindowView) -> bool| {
        days.iter()
            .find(|(_, d)| d.windows.iter().any(open))
            .map(|(day, _)| *day)
    };
    // The day asked for; after a refusal, the day of the refused form; else
    // the first day this visitor can book, or anyone can, or any day at all.
    let chosen = asked_day
        .filter(|d| listed(*d))
        .or(retried_window.map(|w| w.day).filter(|d| listed(*d)))
        .or_else(|| first_where(|w| w.form.is_some()))
        .or_else(|| first_where(|w| w.reason_key.is_empty()))
        .or_else(|| days.first().map(|(day, _)| *day));
    let refusal = retry.map(|r| RefusalView {
        message: r.message,
        kind: r.kind,
        suggestion,
    });
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
        chosen,
        viewer,
        refusal,
        rotation_line,
        quota_lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_quantity_is_what_the_person_may_still_take_there_but_at_least_one() {
        assert_eq!(preset_quantity(2, 30), 2);
        assert_eq!(preset_quantity(2, 1), 1, "one place left");
        assert_eq!(preset_quantity(0, 30), 1, "a form asks for one at least");
        assert_eq!(preset_quantity(500, 500), MAX_QUANTITY);
    }
}
