//! `/admin/users`: create pharmacist and administrator accounts; disable and
//! re-enable accounts. The work is in [`crate::admin::accounts`].

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::accounts::email::{DisplayName, Email};
use crate::accounts::hashing::HashError;
use crate::accounts::password::NewPassword;
use crate::admin::accounts::{self, CreateStaffError, NewStaff, StaffRole, Toggled, UserRow};
use crate::db::DbError;
use crate::state::AppState;
use crate::stores::is_store_code;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(list))
        .route("/admin/users", web::post().to(create))
        .route("/admin/users/{id}/disable", web::get().to(confirm_disable))
        .route("/admin/users/{id}/disable", web::post().to(disable))
        .route("/admin/users/{id}/enable", web::post().to(enable));
}

#[derive(Default)]
pub struct NewUserValues {
    pub email: String,
    pub name: String,
    pub role: String,
    pub store_code: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    page: PageCtx,
    q: String,
    users: Vec<UserRow>,
    values: NewUserValues,
    errors: FieldErrors,
    me: i64,
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

/// The page with the list searched by `q`, and the creation form as given.
async fn users_page(
    state: &AppState,
    page: PageCtx,
    admin: &Admin,
    q: String,
    (values, errors): (NewUserValues, FieldErrors),
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let search = q.clone();
    let users = state
        .db
        .run(move |conn| accounts::list(conn, &search))
        .await?;
    let me = admin.user.id;
    render(
        &UsersPage {
            page,
            q,
            users,
            values,
            errors,
            me,
        },
        status,
    )
}

async fn list(
    state: web::Data<AppState>,
    admin: Admin,
    page: PageCtx,
    query: web::Query<Search>,
) -> Result<HttpResponse, AppError> {
    let q = truncate(query.into_inner().q.trim(), 100);
    let form = (NewUserValues::default(), FieldErrors::default());
    users_page(&state, page, &admin, q, form, StatusCode::OK).await
}

type ParsedStaff = (Email, DisplayName, StaffRole);

/// The creation form parsed; each mistake is reported next to its field.
fn parse_new_staff(
    page: &PageCtx,
    form: &FormData,
) -> (NewUserValues, FieldErrors, Option<ParsedStaff>) {
    let t = &page.t;
    let mut errors = FieldErrors::default();
    let values = NewUserValues {
        email: truncate(form.get("email"), 300),
        name: truncate(form.get("name"), 200),
        role: truncate(form.get("role"), 20),
        store_code: truncate(form.get("store_code").trim(), 20),
    };
    let email = Email::parse(form.get("email"))
        .map_err(|e| errors.add("email", t.get(Email::message_key(e))))
        .ok();
    let name = DisplayName::parse(form.get("name"))
        .map_err(|key| errors.add("name", t.get(key)))
        .ok();
    let role = match form.get("role") {
        "pharmacist" if is_store_code(&values.store_code) => Some(StaffRole::Pharmacist {
            store_code: values.store_code.clone(),
        }),
        "pharmacist" => {
            errors.add("store_code", t.get("admin.users.error.store_code"));
            None
        }
        "admin" => Some(StaffRole::Admin),
        _ => {
            errors.add("role", t.get("admin.users.error.role"));
            None
        }
    };
    let parsed = match (email, name, role) {
        (Some(e), Some(n), Some(r)) if errors.is_empty() => Some((e, n, r)),
        _ => None,
    };
    (values, errors, parsed)
}

async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let (values, mut errors, parsed) = parse_new_staff(&page, &form);
    let Some((email, name, role)) = parsed else {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return users_page(
            &state,
            page,
            &admin,
            String::new(),
            (values, errors),
            status,
        )
        .await;
    };
    let unknown = NewPassword::parse(&crate::random::token()).map_err(AppError::internal)?;
    let placeholder_hash = match state.hashing.hash(unknown).await {
        Ok(phc) => phc,
        Err(HashError::Busy(busy)) => {
            errors.set_general(busy.message(&page.t));
            let status = StatusCode::SERVICE_UNAVAILABLE;
            let form = (values, errors);
            let mut res = users_page(&state, page, &admin, String::new(), form, status).await?;
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(busy.retry_after_secs),
            );
            return Ok(res);
        }
        Err(e) => return Err(AppError::internal(e)),
    };
    let new = NewStaff {
        email,
        name,
        placeholder_hash,
        role,
    };
    let actor = admin.user.id;
    let (t, base_url) = (page.t.clone(), state.base_url.clone());
    let result = state
        .db
        .write(move |tx| accounts::create_staff(tx, actor, &new, &t, &base_url))
        .await;
    let (field, key, status) = match result {
        Ok(_) => {
            state.mail_wake.notify_one();
            session::set_flash(&session, "admin.users.created");
            return Ok(see_other("/admin/users"));
        }
        Err(DbError::Work(CreateStaffError::NoSuchStore)) => (
            "store_code",
            "admin.users.error.no_store",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(DbError::Work(CreateStaffError::EmailTaken)) => (
            "email",
            "admin.users.error.email_taken",
            StatusCode::CONFLICT,
        ),
        Err(e) => return Err(e.into()),
    };
    errors.add(field, page.t.get(key));
    users_page(
        &state,
        page,
        &admin,
        String::new(),
        (values, errors),
        status,
    )
    .await
}

#[derive(Template)]
#[template(path = "admin/confirm_disable.html")]
struct ConfirmDisablePage {
    page: PageCtx,
    user: UserRow,
}

/// Disabling ends every session of the account: the list links here, and only
/// this page's button posts.
async fn confirm_disable(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let user_id = path.into_inner();
    if user_id == admin.user.id {
        session::set_flash(&session, "admin.users.error.self");
        return Ok(see_other("/admin/users"));
    }
    let user = state
        .db
        .run(move |conn| accounts::get(conn, user_id))
        .await?
        .ok_or(AppError::NotFound)?;
    render(&ConfirmDisablePage { page, user }, StatusCode::OK)
}

async fn disable(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    set_disabled(&state, &admin, &session, path.into_inner(), true).await
}

async fn enable(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    set_disabled(&state, &admin, &session, path.into_inner(), false).await
}

async fn set_disabled(
    state: &AppState,
    admin: &Admin,
    session: &Session,
    user_id: i64,
    disable: bool,
) -> Result<HttpResponse, AppError> {
    let actor = admin.user.id;
    let now = state.clock.now().naive_utc();
    let toggled = state
        .db
        .write(move |tx| accounts::set_disabled(tx, actor, user_id, disable, now))
        .await?;
    let flash = match toggled {
        Toggled::NoSuchUser => return Err(AppError::NotFound),
        Toggled::OwnAccount => "admin.users.error.self",
        Toggled::Changed | Toggled::Unchanged if disable => "admin.users.disabled",
        Toggled::Changed | Toggled::Unchanged => "admin.users.enabled",
    };
    session::set_flash(session, flash);
    Ok(see_other("/admin/users"))
}
