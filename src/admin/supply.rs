//! `/admin/supply`: each store's supply on a date, edited in place; copying the
//! previous day; importing a CSV file, previewed first (old → new per
//! store-day, totals, refusals) and applied only when confirmed
//! ([`crate::import_preview`]). The work is in [`crate::supply`]. Each
//! of the three refuses a date outside [`SupplyDates`] of today (by the app's
//! clock, in the service time zone), naming the range.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::db::DbError;
use crate::i18n::Tr;
use crate::import_preview::{self, Kind, NewPreview};
use crate::policy::Policy;
use crate::reservations::rules;
use crate::state::AppState;
use crate::stores::is_store_code;
use crate::supply::changes::{self, ChangeError, Copied};
use crate::supply::import::{
    self, Effect, ImportError, Imported, MAX_QUANTITY, Preview, PreviewLine, PreviewTotals,
};
use crate::supply::queries::{self, StoreSupply, Totals};
use crate::supply::rules::{Refusal, SupplyDates};
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::paging::{PER_PAGE, Pages, link, parse_page};
use crate::web::upload::Upload;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/supply", web::get().to(list))
        .route("/admin/supply", web::post().to(set))
        .route("/admin/supply/copy", web::post().to(copy))
        .route("/admin/supply/import", web::post().to(import_file));
}

/// A refused or invalid quantity, shown next to its store's field.
pub struct RowError {
    pub code: String,
    pub value: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "admin/supply.html")]
struct SupplyPage {
    page: PageCtx,
    iso_date: String,
    date: String,
    previous: String,
    next: String,
    q: String,
    page_number: String,
    totals: Totals,
    rows: Vec<StoreSupply>,
    pages: Pages,
    row_error: Option<RowError>,
    /// A message for the page as a whole (a store code that does not exist).
    general_error: Option<String>,
}

impl SupplyPage {
    fn totals_heading(&self) -> String {
        self.page
            .t
            .fmt("admin.supply.totals", &[("date", &self.date)])
    }

    fn quantity_label(&self, name: &str) -> String {
        self.page
            .t
            .fmt("admin.supply.quantity_for", &[("name", &name)])
    }
}

/// Where the list stands: the date, the search, the page.
struct ListAt {
    day: NaiveDate,
    q: String,
    page: i64,
}

impl ListAt {
    fn link(&self) -> String {
        link(
            "/admin/supply",
            &[
                ("date", &self.day.to_string()),
                ("q", &self.q),
                ("page", &self.page.to_string()),
            ],
        )
    }
}

/// `YYYY-MM-DD` exactly: chrono alone would read `26-11-26` as the year 26.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == text)
}

/// The list's place from its parameters: no date means tomorrow in the
/// service zone (supply is allocated the day before); a malformed one is a 400.
async fn list_at(
    state: &AppState,
    date: &str,
    q: &str,
    page: Option<&str>,
) -> Result<ListAt, AppError> {
    let day = match date.trim() {
        "" => {
            let today = rules::today(&*state.policy().await?, state.clock.now());
            today.succ_opt().unwrap_or(today)
        }
        text => parse_day(text)
            .ok_or_else(|| AppError::BadRequest(format!("not a date (YYYY-MM-DD): {text}")))?,
    };
    Ok(ListAt {
        day,
        q: truncate(q.trim(), 100),
        page: parse_page(page)?,
    })
}

async fn supply_page(
    state: &AppState,
    page: PageCtx,
    at: ListAt,
    (row_error, general_error): (Option<RowError>, Option<String>),
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (day, q, number) = (at.day, at.q.clone(), at.page);
    let ((rows, total), totals) = state
        .db
        .run(move |conn| {
            Ok::<_, diesel::result::Error>((
                queries::stores_on(conn, day, &q, number, PER_PAGE)?,
                queries::totals_on(conn, day)?,
            ))
        })
        .await?;
    let pages = Pages::new(number, total, PER_PAGE, |n| {
        ListAt {
            day,
            q: at.q.clone(),
            page: n,
        }
        .link()
    });
    let around = |d: Option<NaiveDate>| d.unwrap_or(day).to_string();
    render(
        &SupplyPage {
            iso_date: day.to_string(),
            date: page.t.date(day),
            previous: around(day.pred_opt()),
            next: around(day.succ_opt()),
            page_number: number.to_string(),
            q: at.q,
            page,
            totals,
            rows,
            pages,
            row_error,
            general_error,
        },
        status,
    )
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    date: String,
    #[serde(default)]
    q: String,
    page: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let at = list_at(&state, &query.date, &query.q, query.page.as_deref()).await?;
    supply_page(&state, page, at, (None, None), StatusCode::OK).await
}

/// A quantity as typed: a whole number from 0 to [`MAX_QUANTITY`].
pub fn parse_quantity(text: &str) -> Option<i32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i32>().ok().filter(|n| *n <= MAX_QUANTITY)
}

/// The dates supply may be given for now.
fn supply_dates(state: &AppState, policy: &Policy) -> SupplyDates {
    SupplyDates::around(rules::today(policy, state.clock.now()))
}

/// Why a date was refused, with the range that is allowed.
fn date_range_message(t: &Tr, dates: SupplyDates) -> String {
    t.fmt(
        "admin.supply.error.date_range",
        &[("first", &dates.first), ("last", &dates.last)],
    )
}

/// A refusal in the reader's language, with its numbers; `window` is the
/// window's time when the refusal is about one window.
pub fn refusal_message(t: &Tr, refusal: &Refusal, window: &str) -> String {
    match refusal {
        Refusal::SupplyBelowTaken { taken, quantity } => t.fmt(
            "admin.supply.error.below_taken",
            &[("taken", taken), ("quantity", quantity)],
        ),
        Refusal::CapacityBelowReserved { taken, capacity } => t.fmt(
            "admin.windows.error.below_reserved",
            &[
                ("window", &window),
                ("taken", taken),
                ("capacity", capacity),
            ],
        ),
        Refusal::CapacityAboveSupply {
            total,
            supply,
            walk_in,
        } => t.fmt(
            "admin.windows.error.above_supply",
            &[
                ("total", total),
                ("supply", supply),
                ("walk_in", walk_in),
                ("limit", &(supply - walk_in)),
            ],
        ),
    }
}

async fn set(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let at = list_at(
        &state,
        form.get("date"),
        form.get("q"),
        Some(form.get("page")),
    )
    .await?;
    let code = truncate(form.get("store_code").trim(), 20);
    let value = truncate(form.get("quantity"), 20);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let row_error = |message: String| RowError {
        code: code.clone(),
        value: value.clone(),
        message,
    };
    let lookup = code.clone();
    let store_id = match is_store_code(&code) {
        true => {
            state
                .db
                .run(move |conn| queries::store_id_by_code(conn, &lookup))
                .await?
        }
        false => None,
    };
    let Some(store_id) = store_id else {
        let message = page
            .t
            .fmt("admin.supply.error.no_store", &[("code", &code)]);
        return supply_page(&state, page, at, (None, Some(message)), unprocessable).await;
    };
    let Some(quantity) = parse_quantity(&value) else {
        let message = page
            .t
            .fmt("admin.supply.error.quantity", &[("max", &MAX_QUANTITY)]);
        return supply_page(
            &state,
            page,
            at,
            (Some(row_error(message)), None),
            unprocessable,
        )
        .await;
    };
    let policy = state.policy().await?;
    if let Err(dates) = supply_dates(&state, &policy).check(at.day) {
        let message = date_range_message(&page.t, dates);
        return supply_page(&state, page, at, (None, Some(message)), unprocessable).await;
    }
    let (actor, now, day) = (admin.user.id, state.clock.now().naive_utc(), at.day);
    let result = state
        .db
        .write(move |tx| {
            changes::set_supply(tx, &policy, store_id, day, quantity, Some(actor), now)
        })
        .await;
    match result {
        Ok(_) => {
            session::set_flash(&session, "admin.supply.saved");
            Ok(see_other(&at.link()))
        }
        Err(DbError::Work(ChangeError::Refused(refusal))) => {
            let message = refusal_message(&page.t, &refusal, "");
            let errors = (Some(row_error(message)), None);
            supply_page(&state, page, at, errors, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn copy(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let text = form.get("date").trim();
    let day = parse_day(text)
        .ok_or_else(|| AppError::BadRequest(format!("not a date (YYYY-MM-DD): {text}")))?;
    let policy = state.policy().await?;
    if let Err(dates) = supply_dates(&state, &policy).check(day) {
        let message = date_range_message(&page.t, dates);
        let at = ListAt {
            day,
            q: String::new(),
            page: 1,
        };
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return supply_page(&state, page, at, (None, Some(message)), status).await;
    }
    let (actor, now) = (admin.user.id, state.clock.now().naive_utc());
    let copied: Copied = state
        .db
        .write(move |tx| changes::copy_previous_day(tx, &policy, day, Some(actor), now))
        .await?;
    let flash = if copied.copied > 0 {
        "admin.supply.copied"
    } else {
        "admin.supply.copied_none"
    };
    session::set_flash(&session, flash);
    Ok(see_other(&link(
        "/admin/supply",
        &[("date", &day.to_string())],
    )))
}

#[derive(Template)]
#[template(path = "admin/supply_import.html")]
struct ImportPage {
    page: PageCtx,
    file_name: String,
    /// Messages about bad lines, at most [`SHOWN_ERRORS`].
    errors: Vec<String>,
    /// Bad lines not shown.
    more: usize,
    result: Option<Imported>,
}

impl ImportPage {
    fn file_label(&self) -> String {
        let name: &str = &self.file_name;
        self.page
            .t
            .fmt("admin.supply.import.file_name", &[("name", &name)])
    }

    fn done_text(&self, done: &Imported) -> String {
        self.page.t.fmt(
            "admin.supply.import.done",
            &[
                ("created", &done.created),
                ("changed", &done.changed),
                ("unchanged", &done.unchanged),
            ],
        )
    }

    fn more_text(&self) -> String {
        self.page
            .t
            .fmt("admin.supply.import.more", &[("count", &self.more)])
    }
}

/// Bad lines listed on the answer page; the rest are counted.
const SHOWN_ERRORS: usize = 50;

/// Lines a preview lists (refused ones first, then new and changed ones);
/// the totals count every line.
const SHOWN_LINES: usize = 200;

/// One line of the preview as the page shows it.
pub struct PreviewRow {
    pub code: String,
    pub name: String,
    pub date: String,
    /// The supply now, or empty when the store-day has none yet.
    pub before: String,
    pub after: i32,
    /// `create`, `change` or `unchanged`, for the page's marks.
    pub effect: &'static str,
    pub refusal: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/supply_import_preview.html")]
struct PreviewPage {
    page: PageCtx,
    file_name: String,
    file_hash: String,
    totals: PreviewTotals,
    rows: Vec<PreviewRow>,
    /// Lines not listed.
    more: usize,
    /// Why the preview is shown again instead of applied.
    changed_meanwhile: bool,
}

impl PreviewPage {
    fn file_label(&self) -> String {
        let name: &str = &self.file_name;
        self.page
            .t
            .fmt("admin.supply.import.file_name", &[("name", &name)])
    }

    fn lines_text(&self) -> String {
        let t = &self.totals;
        self.page.t.fmt(
            "admin.supply.preview.lines",
            &[
                ("lines", &t.lines),
                ("stores", &t.stores),
                ("created", &t.created),
                ("changed", &t.changed),
                ("unchanged", &t.unchanged),
            ],
        )
    }

    fn refused_text(&self) -> String {
        self.page.t.fmt(
            "admin.supply.preview.refused",
            &[("count", &self.totals.refused)],
        )
    }

    fn more_text(&self) -> String {
        self.page
            .t
            .fmt("admin.supply.preview.more", &[("count", &self.more)])
    }
}

/// The preview page of `preview`, for the file `file_hash`.
fn preview_page(
    page: PageCtx,
    (file_name, file_hash): (String, String),
    preview: &Preview,
    changed_meanwhile: bool,
) -> Result<HttpResponse, AppError> {
    let t = &page.t;
    let effect = |l: &PreviewLine| match l.effect() {
        Effect::Create => "create",
        Effect::Change => "change",
        Effect::Unchanged => "unchanged",
    };
    let mut listed: Vec<&PreviewLine> = preview
        .lines
        .iter()
        .filter(|l| l.refusal.is_some())
        .collect();
    listed.extend(
        preview
            .lines
            .iter()
            .filter(|l| l.refusal.is_none() && l.effect() != Effect::Unchanged),
    );
    let more = preview
        .lines
        .len()
        .saturating_sub(listed.len().min(SHOWN_LINES));
    let rows = listed
        .into_iter()
        .take(SHOWN_LINES)
        .map(|l| PreviewRow {
            code: l.store_code.clone(),
            name: l.store_name.clone(),
            date: t.date(l.day),
            before: l.before.map_or_else(String::new, |b| b.to_string()),
            after: l.after,
            effect: effect(l),
            refusal: l.refusal.as_ref().map(|r| refusal_message(t, r, "")),
        })
        .collect();
    let status = if preview.totals.refused > 0 || changed_meanwhile {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    render(
        &PreviewPage {
            page,
            file_name,
            file_hash,
            totals: preview.totals,
            rows,
            more,
            changed_meanwhile,
        },
        status,
    )
}

/// `POST /admin/supply/import`: a file answers its preview; `confirm=1` with
/// the preview's `file_hash` applies the file kept by that preview.
async fn import_file(
    state: web::Data<AppState>,
    admin: Admin,
    page: PageCtx,
    upload: Upload,
) -> Result<HttpResponse, AppError> {
    let upload = upload.read().await?;
    if upload.fields.get("confirm") == "1" {
        let hash = upload.fields.get("file_hash").trim().to_owned();
        return confirm_file(&state, &admin, page, hash).await;
    }
    let file_name = truncate(&upload.file_name, 200);
    if upload.file.is_empty() {
        let message = page.t.get("admin.supply.import.error.no_file").to_owned();
        return import_answer(page, file_name, vec![message], None);
    }
    let policy = state.policy().await?;
    let (rows, problems) = import::parse_csv(&upload.file, supply_dates(&state, &policy));
    let preview = match preview_file(&state, rows, problems, &page.t).await? {
        Ok(p) => p,
        Err(messages) => return import_answer(page, file_name, messages, None),
    };
    // A file that parsed has no line that is not UTF-8.
    let content = String::from_utf8(upload.file).map_err(|_| AppError::UnreadableForm)?;
    let hash = import_preview::file_hash(content.as_bytes());
    if preview.totals.refused == 0 {
        keep_preview(&state, &admin, (&file_name, &hash, &content), &preview).await?;
    }
    preview_page(page, (file_name, hash), &preview, false)
}

/// Stores the file of a preview that can be applied, for its confirmation.
async fn keep_preview(
    state: &AppState,
    admin: &Admin,
    (file_name, hash, content): (&str, &str, &str),
    preview: &Preview,
) -> Result<(), AppError> {
    let (admin_id, now) = (admin.user.id, state.clock.now().naive_utc());
    let (file_name, hash, content, seen) = (
        file_name.to_owned(),
        hash.to_owned(),
        content.to_owned(),
        preview.seen.clone(),
    );
    state
        .db
        .write(move |tx| {
            import_preview::keep(
                tx,
                &NewPreview {
                    admin_id,
                    kind: Kind::Supply,
                    file_hash: &hash,
                    file_name: &file_name,
                    content: &content,
                    seen: &seen,
                },
                now,
            )
        })
        .await?;
    Ok(())
}

/// Applies the file the administrator's preview `hash` kept, if the
/// store-days it names still hold what the preview showed; otherwise nothing
/// is applied and a fresh preview is shown (409). An unknown, expired, used
/// or another administrator's preview is a 404 with a message.
async fn confirm_file(
    state: &AppState,
    admin: &Admin,
    page: PageCtx,
    hash: String,
) -> Result<HttpResponse, AppError> {
    let (admin_id, now) = (admin.user.id, state.clock.now().naive_utc());
    let wanted = hash.clone();
    let kept = match import_preview::is_file_hash(&hash) {
        true => {
            state
                .db
                .write(move |tx| import_preview::take(tx, admin_id, Kind::Supply, &wanted, now))
                .await?
        }
        false => None,
    };
    let Some(kept) = kept else {
        let message = page.t.get("admin.supply.preview.gone").to_owned();
        return render(
            &ImportPage {
                page,
                file_name: String::new(),
                errors: vec![message],
                more: 0,
                result: None,
            },
            StatusCode::NOT_FOUND,
        );
    };
    let policy = state.policy().await?;
    let bytes = kept.content.as_bytes();
    let (rows, problems) = import::parse_csv(bytes, supply_dates(state, &policy));
    let file_name = kept.file_name.clone();
    let previewed = preview_file(state, rows.clone(), problems.clone(), &page.t).await?;
    let preview = match previewed {
        Ok(p) => p,
        Err(messages) => return import_answer(page, file_name, messages, None),
    };
    if preview.seen != kept.seen || preview.totals.refused > 0 {
        if preview.totals.refused == 0 {
            keep_preview(state, admin, (&file_name, &hash, &kept.content), &preview).await?;
        }
        return preview_page(page, (file_name, hash), &preview, true);
    }
    let (actor, now) = (admin.user.id, state.clock.now().naive_utc());
    let result = import::import(&state.db, policy, rows, problems, Some(actor), now).await;
    match result {
        Ok(done) => render(
            &ImportPage {
                page,
                file_name,
                errors: Vec::new(),
                more: 0,
                result: Some(done),
            },
            StatusCode::OK,
        ),
        Err(DbError::Work(ImportError::Invalid(errors))) => {
            let messages = errors.iter().map(|e| e.message(&page.t)).collect();
            import_answer(page, file_name, messages, None)
        }
        Err(DbError::Work(ImportError::Refused {
            line,
            store_code,
            day,
            refusal,
            applied,
        })) => {
            let why = refusal_message(&page.t, &refusal, "");
            let mut messages = vec![page.t.fmt(
                "admin.supply.import.error.refused",
                &[
                    ("line", &line),
                    ("code", &store_code),
                    ("date", &day),
                    ("why", &why),
                ],
            )];
            if applied.lines() > 0 {
                messages.push(page.t.fmt(
                    "admin.supply.import.error.partly_applied",
                    &[
                        ("lines", &applied.lines()),
                        ("created", &applied.created),
                        ("changed", &applied.changed),
                    ],
                ));
            }
            import_answer(page, file_name, messages, Some(StatusCode::CONFLICT))
        }
        Err(e) => Err(e.into()),
    }
}

/// A parsed file previewed against the store-days now, or, when a line is
/// bad or names no store, the messages naming those lines.
async fn preview_file(
    state: &AppState,
    rows: Vec<import::SupplyRow>,
    problems: Vec<import::LineError>,
    t: &Tr,
) -> Result<Result<import::Preview, Vec<String>>, AppError> {
    let previewed = state
        .db
        .run(move |conn| import::preview(conn, &rows, &problems))
        .await;
    match previewed {
        Ok(p) => Ok(Ok(p)),
        Err(DbError::Work(ImportError::Invalid(errors))) => {
            Ok(Err(errors.iter().map(|e| e.message(t)).collect()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The answer listing what is wrong with a file: 422, or `status`.
fn import_answer(
    page: PageCtx,
    file_name: String,
    errors: Vec<String>,
    status: Option<StatusCode>,
) -> Result<HttpResponse, AppError> {
    let more = errors.len().saturating_sub(SHOWN_ERRORS);
    let errors = errors.into_iter().take(SHOWN_ERRORS).collect();
    render(
        &ImportPage {
            page,
            file_name,
            errors,
            more,
            result: None,
        },
        status.unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_whole_numbers_up_to_a_million() {
        assert_eq!(parse_quantity("0"), Some(0));
        assert_eq!(parse_quantity(" 120 "), Some(120));
        assert_eq!(parse_quantity("1000000"), Some(1_000_000));
        for bad in ["", "-1", "1.5", "1e3", "1000001", "99999999999", "+3"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }
}
