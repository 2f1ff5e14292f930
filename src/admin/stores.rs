//! `/admin/stores`: the stores listed, searched and paged; adding a store,
//! editing one (suspending it included), and importing a CSV file of stores.
//! The work is in [`crate::stores::admin`] and [`crate::stores::import`].

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::admin::windows::{WindowRow, store_windows};
use crate::db::DbError;
use crate::state::AppState;
use crate::stores::admin::{self, SaveError, Saved, StoreForm, StoreRecord};
use crate::stores::import::{self, Counts, LineError, Problem, StoreFields};
use crate::stores::is_store_code;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::paging::{PER_PAGE, Pages, link, parse_page};
use crate::web::upload::{Upload, Uploaded};
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/stores", web::get().to(list))
        .route("/admin/stores", web::post().to(create))
        .route("/admin/stores/import", web::post().to(import_file))
        .route("/admin/stores/{code}", web::get().to(edit))
        .route("/admin/stores/{code}", web::post().to(save));
}

/// How many of a file's bad lines the answer lists; it says how many more.
pub const LINES_SHOWN: usize = 50;

/// The store form's values as typed (or as stored), to show back.
#[derive(Debug, Default, Clone)]
pub struct StoreValues {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub lat: String,
    pub lng: String,
    pub phone: String,
    pub region: String,
    pub suspended: bool,
}

impl StoreValues {
    fn from_form(form: &FormData) -> StoreValues {
        let keep = |name: &str| truncate(form.get(name), 600);
        StoreValues {
            code: keep("code"),
            name: keep("name"),
            addr: keep("addr"),
            store_type: keep("type"),
            lat: keep("lat"),
            lng: keep("lng"),
            phone: keep("phone"),
            region: keep("region"),
            suspended: !form.get("suspended").is_empty(),
        }
    }

    fn from_record(s: StoreRecord) -> StoreValues {
        StoreValues {
            code: s.code,
            name: s.name,
            addr: s.addr,
            store_type: s.store_type,
            lat: s.lat.to_string(),
            lng: s.lng.to_string(),
            phone: s.phone.unwrap_or_default(),
            region: s.region,
            suspended: s.suspended,
        }
    }
}

/// The form parsed; each mistake is reported next to its field.
fn parse_store(page: &PageCtx, form: &FormData) -> (StoreValues, FieldErrors, Option<StoreForm>) {
    let values = StoreValues::from_form(form);
    let mut errors = FieldErrors::default();
    let checked = import::check(&StoreFields {
        code: form.get("code"),
        name: form.get("name"),
        addr: form.get("addr"),
        store_type: form.get("type"),
        lat: form.get("lat"),
        lng: form.get("lng"),
        phone: form.get("phone"),
        region: form.get("region"),
    });
    let parsed = match checked {
        Ok(row) => Some(StoreForm {
            row,
            suspended: values.suspended,
        }),
        Err(problems) => {
            for p in &problems {
                errors.add(p.field(), p.message(&page.t));
            }
            None
        }
    };
    (values, errors, parsed)
}

#[derive(Template)]
#[template(path = "admin/stores.html")]
struct StoresPage {
    page: PageCtx,
    q: String,
    stores: Vec<StoreRecord>,
    pages: Pages,
    /// "1,234 stores".
    count_text: String,
    values: StoreValues,
    errors: FieldErrors,
    import_errors: FieldErrors,
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
    page: Option<String>,
}

/// The list page: page `number` of the stores matching `q`, and the creation
/// form as given.
async fn stores_page(
    state: &AppState,
    page: PageCtx,
    (q, number): (String, i64),
    (values, errors): (StoreValues, FieldErrors),
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let search = q.clone();
    let listing = state
        .db
        .run(move |conn| admin::list(conn, &search, number, PER_PAGE))
        .await?;
    let pages = Pages::new(number, listing.total, PER_PAGE, |n| {
        link("/admin/stores", &[("q", &q), ("page", &n.to_string())])
    });
    let count_text = page
        .t
        .fmt("admin.store.count", &[("total", &listing.total)]);
    render(
        &StoresPage {
            page,
            q,
            stores: listing.stores,
            pages,
            count_text,
            values,
            errors,
            import_errors: FieldErrors::default(),
        },
        status,
    )
}

async fn list(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
    query: web::Query<Search>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let number = parse_page(query.page.as_deref())?;
    let q = truncate(query.q.trim(), 100);
    let form = (StoreValues::default(), FieldErrors::default());
    stores_page(&state, page, (q, number), form, StatusCode::OK).await
}

async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let (values, mut errors, parsed) = parse_store(&page, &form);
    let Some(new) = parsed else {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return stores_page(&state, page, (String::new(), 1), (values, errors), status).await;
    };
    let actor = admin.user.id;
    let code = new.row.code.clone();
    match state
        .db
        .write(move |tx| admin::create(tx, actor, &new))
        .await
    {
        Ok(_) => {
            session::set_flash(&session, "admin.store.created");
            Ok(see_other(&format!("/admin/stores/{code}")))
        }
        Err(DbError::Work(SaveError::CodeTaken)) => {
            errors.add("code", page.t.get("admin.store.code_taken"));
            let status = StatusCode::CONFLICT;
            stores_page(&state, page, (String::new(), 1), (values, errors), status).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "admin/store.html")]
struct StorePage {
    page: PageCtx,
    /// The code the store has now (the form posts back to it).
    code: String,
    heading: String,
    values: StoreValues,
    errors: FieldErrors,
    /// The store's windows from today to the end of the booking horizon.
    windows: Vec<WindowRow>,
}

/// The store page: the edit form as given, and the store's windows.
async fn store_page(
    state: &AppState,
    page: PageCtx,
    code: String,
    (values, errors): (StoreValues, FieldErrors),
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let today = state
        .clock
        .now()
        .with_timezone(&policy.timezone)
        .date_naive();
    let horizon = u64::try_from(policy.booking_horizon_days).unwrap_or(0);
    let last = today + chrono::Days::new(horizon);
    let wanted = code.clone();
    let (name, windows) = state
        .db
        .run(move |conn| match admin::get(conn, &wanted)? {
            Some(store) => Ok::<_, diesel::result::Error>((
                store.name.clone(),
                store_windows(conn, store.id, today, last)?,
            )),
            None => Ok((String::new(), Vec::new())),
        })
        .await?;
    // The name as stored, not as typed: a form sent back with errors keeps
    // the typed values, and the heading still says which store this is.
    let heading = page.t.fmt(
        "admin.store.edit_heading",
        &[("name", &name), ("code", &code)],
    );
    let p = StorePage {
        page,
        code,
        heading,
        values,
        errors,
        windows,
    };
    render(&p, status)
}

/// A path's code, or 404 when it cannot be one.
fn path_code(path: web::Path<String>) -> Result<String, AppError> {
    let code = path.into_inner();
    if is_store_code(&code) {
        Ok(code)
    } else {
        Err(AppError::NotFound)
    }
}

async fn edit(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let code = path_code(path)?;
    let wanted = code.clone();
    let store = state
        .db
        .run(move |conn| admin::get(conn, &wanted))
        .await?
        .ok_or(AppError::NotFound)?;
    let form = (StoreValues::from_record(store), FieldErrors::default());
    store_page(&state, page, code, form, StatusCode::OK).await
}

async fn save(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let code = path_code(path)?;
    let (values, mut errors, parsed) = parse_store(&page, &form);
    let status = match parsed {
        None => StatusCode::UNPROCESSABLE_ENTITY,
        Some(changed) => {
            let (actor, current) = (admin.user.id, code.clone());
            let new_code = changed.row.code.clone();
            let saved = state
                .db
                .write(move |tx| admin::update(tx, actor, &current, &changed))
                .await;
            match saved {
                Ok(outcome) => {
                    let flash = match outcome {
                        Saved::Changed => "admin.store.saved",
                        Saved::Unchanged => "admin.store.unchanged",
                    };
                    session::set_flash(&session, flash);
                    return Ok(see_other(&format!("/admin/stores/{new_code}")));
                }
                Err(DbError::Work(SaveError::NotFound)) => return Err(AppError::NotFound),
                Err(DbError::Work(SaveError::CodeTaken)) => {
                    errors.add("code", page.t.get("admin.store.code_taken"));
                    StatusCode::CONFLICT
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    store_page(&state, page, code, (values, errors), status).await
}

#[derive(Template)]
#[template(path = "admin/stores_import.html")]
struct ImportPage {
    page: PageCtx,
    /// "File: stores.csv", or empty.
    file_text: String,
    counts: Option<Counts>,
    /// What the import did, or why nothing was imported.
    summary: String,
    /// "line N: reason", the first [`LINES_SHOWN`] bad lines.
    lines: Vec<String>,
    bad_lines: usize,
    more: usize,
    more_text: String,
    import_errors: FieldErrors,
}

impl ImportPage {
    fn new(page: PageCtx, file_name: &str) -> ImportPage {
        let file_text = if file_name.is_empty() {
            String::new()
        } else {
            let name = truncate(file_name, 200);
            page.t
                .fmt("admin.store.import.file_name", &[("name", &name)])
        };
        ImportPage {
            page,
            file_text,
            counts: None,
            summary: String::new(),
            lines: Vec::new(),
            bad_lines: 0,
            more: 0,
            more_text: String::new(),
            import_errors: FieldErrors::default(),
        }
    }

    /// The answer to a file imported.
    fn done(mut self, counts: Counts) -> Result<HttpResponse, AppError> {
        self.summary = self.page.t.fmt(
            "admin.store.import.done",
            &[
                ("created", &counts.created),
                ("updated", &counts.updated),
                ("unchanged", &counts.unchanged),
            ],
        );
        self.counts = Some(counts);
        render(&self, StatusCode::OK)
    }

    /// The answer to a file with mistakes: 422, nothing imported.
    fn refused(mut self, errors: &[LineError]) -> Result<HttpResponse, AppError> {
        match errors {
            [only] if only.problems == [Problem::NoStores] => {
                let message = only.problems[0].message(&self.page.t);
                self.import_errors.add("file", message);
            }
            _ => {
                self.lines = errors
                    .iter()
                    .take(LINES_SHOWN)
                    .map(|e| e.message(&self.page.t))
                    .collect();
                self.bad_lines = errors.len();
                self.more = errors.len().saturating_sub(LINES_SHOWN);
                let t = &self.page.t;
                self.summary = t.fmt("admin.store.import.rejected", &[("count", &errors.len())]);
                self.more_text = t.fmt("admin.store.import.more", &[("count", &self.more)]);
            }
        }
        render(&self, StatusCode::UNPROCESSABLE_ENTITY)
    }
}

async fn import_file(
    state: web::Data<AppState>,
    admin: Admin,
    page: PageCtx,
    upload: Upload,
) -> Result<HttpResponse, AppError> {
    let Uploaded {
        file, file_name, ..
    } = upload.read().await?;
    let mut answer = ImportPage::new(page, &file_name);
    if file.is_empty() {
        let message = answer.page.t.get("admin.store.import.no_file").to_owned();
        answer.import_errors.add("file", message);
        return render(&answer, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // A whole country's stores take a moment to check: off the async workers.
    let rows = match web::block(move || import::parse_csv(&file))
        .await
        .map_err(AppError::internal)?
    {
        Ok(rows) => rows,
        Err(errors) => return answer.refused(&errors),
    };
    let actor = admin.user.id;
    let counts = state
        .db
        .write(move |tx| import::upsert_all(tx, &rows, Some(actor), &file_name))
        .await?;
    answer.done(counts)
}
