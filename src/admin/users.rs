//! `/admin/users`: create pharmacist and administrator accounts; disable and
//! re-enable accounts. Every change is in the audit log.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Deserialize;
use serde_json::json;

use crate::accounts::Role;
use crate::accounts::email::{DisplayName, Email};
use crate::accounts::hashing::HashError;
use crate::accounts::password::NewPassword;
use crate::accounts::queries::{NewUser, insert_user};
use crate::admin::audit::{self, Entry};
use crate::app::AppState;
use crate::db::schema::{stores, users};
use crate::db::{AsRetryable, DbConnection, DbError, is_retryable, write_tx};
use crate::stores::is_store_code;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(list))
        .route("/admin/users", web::post().to(create))
        .route("/admin/users/{id}/disable", web::post().to(disable))
        .route("/admin/users/{id}/enable", web::post().to(enable));
}

pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub store_code: String,
    pub disabled: bool,
    pub created: String,
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

type Listed = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<NaiveDateTime>,
    NaiveDateTime,
);

fn load_users(conn: &mut DbConnection, q: &str) -> QueryResult<Vec<UserRow>> {
    let mut query = users::table
        .left_join(stores::table)
        .select((
            users::id,
            users::email,
            users::name,
            users::role,
            stores::code.nullable(),
            users::disabled_at,
            users::created_at,
        ))
        .order(users::id.desc())
        .limit(200)
        .into_boxed();
    if !q.is_empty() {
        let pattern = format!("%{}%", q.to_lowercase().replace(['%', '_'], ""));
        query = query.filter(
            users::email
                .like(pattern.clone())
                .or(users::name.like(pattern)),
        );
    }
    let rows: Vec<Listed> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, email, name, role, code, disabled, created)| UserRow {
            id,
            email,
            name,
            role,
            store_code: code.unwrap_or_default(),
            disabled: disabled.is_some(),
            created: created.format("%Y-%m-%d").to_string(),
        })
        .collect())
}

async fn page_with(
    state: &AppState,
    page: PageCtx,
    admin: &Admin,
    q: String,
    values: NewUserValues,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let search = q.clone();
    let users = state.db.run(move |conn| load_users(conn, &search)).await?;
    render(
        &UsersPage {
            page,
            q,
            users,
            values,
            errors,
            me: admin.user.id,
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
    let q: String = truncate(query.into_inner().q.trim(), 100);
    page_with(
        &state,
        page,
        &admin,
        q,
        NewUserValues::default(),
        FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, thiserror::Error)]
enum CreateError {
    #[error("no such store")]
    NoSuchStore,
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for CreateError {
    fn is_retryable(&self) -> bool {
        matches!(self, CreateError::Db(e) if is_retryable(e))
    }
}

async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
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
    let pw = NewPassword::parse(form.get("password"))
        .map_err(|rule| errors.add("password", rule.message(t)))
        .ok();
    let role = match form.get("role") {
        "pharmacist" => Some(Role::Pharmacist),
        "admin" => Some(Role::Admin),
        _ => {
            errors.add("role", t.get("admin.users.error.role"));
            None
        }
    };
    let store_code = values.store_code.clone();
    if role == Some(Role::Pharmacist) && !is_store_code(&store_code) {
        errors.add("store_code", t.get("admin.users.error.store_code"));
    }
    let (Some(email), Some(name), Some(pw), Some(role), true) =
        (email, name, pw, role, errors.is_empty())
    else {
        return page_with(
            &state,
            page,
            &admin,
            String::new(),
            values,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let hash = match state.hashing.hash(pw).await {
        Ok(phc) => phc,
        Err(HashError::Busy(busy)) => {
            let mut errors = FieldErrors::default();
            errors.set_general(busy.message(&page.t));
            let status = StatusCode::SERVICE_UNAVAILABLE;
            let mut res =
                page_with(&state, page, &admin, String::new(), values, errors, status).await?;
            res.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(busy.retry_after_secs),
            );
            return Ok(res);
        }
        Err(e) => return Err(AppError::internal(e)),
    };
    let actor = admin.user.id;
    let result = state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| -> Result<i64, CreateError> {
                let store_id = match role {
                    Role::Pharmacist => Some(
                        stores::table
                            .filter(stores::code.eq(&store_code))
                            .select(stores::id)
                            .first::<i64>(conn)
                            .optional()?
                            .ok_or(CreateError::NoSuchStore)?,
                    ),
                    _ => None,
                };
                let id = insert_user(
                    conn,
                    &NewUser {
                        role,
                        email: email.as_str(),
                        name: name.as_str(),
                        password_hash: &hash,
                        person_id: None,
                        store_id,
                        email_verified: true,
                    },
                )?;
                audit::record(
                    conn,
                    Entry {
                        actor: Some(actor),
                        action: "user.create",
                        entity: "user",
                        entity_id: id.to_string(),
                        before: None,
                        after: Some(json!({
                            "email": email.as_str(),
                            "name": name.as_str(),
                            "role": role.as_str(),
                            "store_code": (role == Role::Pharmacist).then_some(&store_code),
                        })),
                    },
                )?;
                Ok(id)
            })
        })
        .await;
    let mut errors = FieldErrors::default();
    match result {
        Ok(_) => {
            session::set_flash(&session, "admin.users.created");
            Ok(see_other("/admin/users"))
        }
        Err(DbError::Work(CreateError::NoSuchStore)) => {
            errors.add("store_code", page.t.get("admin.users.error.no_store"));
            page_with(
                &state,
                page,
                &admin,
                String::new(),
                values,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(DbError::Work(CreateError::Db(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _,
        )))) => {
            errors.add("email", page.t.get("admin.users.error.email_taken"));
            page_with(
                &state,
                page,
                &admin,
                String::new(),
                values,
                errors,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn disable(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    set_disabled(state, admin, session, path.into_inner(), true).await
}

async fn enable(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    set_disabled(state, admin, session, path.into_inner(), false).await
}

/// Disabling also moves the account's session epoch on, so its live sessions
/// stop working at their next request.
async fn set_disabled(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    user_id: i64,
    disable: bool,
) -> Result<HttpResponse, AppError> {
    if user_id == admin.user.id {
        session::set_flash(&session, "admin.users.error.self");
        return Ok(see_other("/admin/users"));
    }
    let actor = admin.user.id;
    let changed = state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| -> Result<Option<bool>, DieselError> {
                let exists = users::table.find(user_id).count().get_result::<i64>(conn)? > 0;
                if !exists {
                    return Ok(None);
                }
                let now = Utc::now().naive_utc();
                let n = if disable {
                    diesel::update(
                        users::table
                            .find(user_id)
                            .filter(users::disabled_at.is_null()),
                    )
                    .set((
                        users::disabled_at.eq(Some(now)),
                        users::session_epoch.eq(users::session_epoch + 1),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)?
                } else {
                    diesel::update(
                        users::table
                            .find(user_id)
                            .filter(users::disabled_at.is_not_null()),
                    )
                    .set((
                        users::disabled_at.eq(None::<NaiveDateTime>),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)?
                };
                if n == 1 {
                    audit::record(
                        conn,
                        Entry {
                            actor: Some(actor),
                            action: if disable {
                                "user.disable"
                            } else {
                                "user.enable"
                            },
                            entity: "user",
                            entity_id: user_id.to_string(),
                            before: Some(json!({ "disabled": !disable })),
                            after: Some(json!({ "disabled": disable })),
                        },
                    )?;
                }
                Ok(Some(n == 1))
            })
        })
        .await?;
    match changed {
        None => Err(AppError::NotFound),
        Some(_) => {
            session::set_flash(
                &session,
                if disable {
                    "admin.users.disabled"
                } else {
                    "admin.users.enabled"
                },
            );
            Ok(see_other("/admin/users"))
        }
    }
}
