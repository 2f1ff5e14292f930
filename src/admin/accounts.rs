//! Staff accounts as an administrator manages them: creating pharmacists and
//! administrators, disabling and re-enabling any account, and the list to
//! search. Each change is one transaction with its audit entry.
//!
//! An administrator never chooses or hands over a password: a new account gets
//! a mail with a link to set its own (a password-reset token that lasts
//! [`INVITATION_HOURS`]), written to the outbox in the creating transaction.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;

use crate::accounts::Role;
use crate::accounts::email::{DisplayName, Email};
use crate::accounts::queries::{NewUser, insert_user};
use crate::accounts::tokens::{self, Purpose};
use crate::audit::{self, Entry};
use crate::db::schema::{stores, users};
use crate::db::{AsRetryable, DbConnection, Tx, is_retryable};
use crate::i18n::Tr;
use crate::mail::outbox::{OutgoingMail, enqueue};

/// One account in the administrator's list.
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub store_code: String,
    pub disabled: bool,
    pub created: NaiveDateTime,
}

/// How many accounts the list shows at most.
pub const LIST_LIMIT: i64 = 200;

type Listed = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<NaiveDateTime>,
    NaiveDateTime,
);

/// The account with this id.
pub fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<UserRow>> {
    Ok(listing()
        .filter(users::id.eq(id))
        .first::<Listed>(conn)
        .optional()?
        .map(UserRow::from))
}

/// Accounts whose e-mail or name contains `q` (all when empty), newest first.
pub fn list(conn: &mut DbConnection, q: &str) -> QueryResult<Vec<UserRow>> {
    let mut query = listing()
        .order(users::id.desc())
        .limit(LIST_LIMIT)
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
    Ok(rows.into_iter().map(UserRow::from).collect())
}

impl From<Listed> for UserRow {
    fn from((id, email, name, role, code, disabled, created): Listed) -> UserRow {
        UserRow {
            id,
            email,
            name,
            role,
            store_code: code.unwrap_or_default(),
            disabled: disabled.is_some(),
            created,
        }
    }
}

#[diesel::dsl::auto_type(no_type_alias)]
fn listing() -> _ {
    users::table.left_join(stores::table).select((
        users::id,
        users::email,
        users::name,
        users::role,
        stores::code.nullable(),
        users::disabled_at,
        users::created_at,
    ))
}

/// How long the link in the invitation mail works.
pub const INVITATION_HOURS: i64 = 72;

/// A staff account to create, parsed.
pub struct NewStaff {
    pub email: Email,
    pub name: DisplayName,
    /// The hash of a random password nobody knows, so that the account has a
    /// real hash (a login attempt costs the same as for any account) until its
    /// owner sets a password through the invitation link.
    pub placeholder_hash: String,
    pub role: StaffRole,
}

/// The roles an administrator can give; a pharmacist acts for one store.
pub enum StaffRole {
    Pharmacist { store_code: String },
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateStaffError {
    #[error("no store has this code")]
    NoSuchStore,
    #[error("an account with this e-mail exists")]
    EmailTaken,
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for CreateStaffError {
    fn is_retryable(&self) -> bool {
        matches!(self, CreateStaffError::Db(e) if is_retryable(e))
    }
}

/// Creates the account, already verified (the administrator vouches for the
/// address), queues the invitation mail in `t`'s language with links under
/// `base_url`, and records who created it.
pub fn create_staff(
    tx: &mut Tx<'_>,
    actor: i64,
    new: &NewStaff,
    t: &Tr,
    base_url: &str,
) -> Result<i64, CreateStaffError> {
    let (role, store_id, store_code) = match &new.role {
        StaffRole::Pharmacist { store_code } => {
            let store_id = stores::table
                .filter(stores::code.eq(store_code))
                .select(stores::id)
                .first::<i64>(tx.conn())
                .optional()?
                .ok_or(CreateStaffError::NoSuchStore)?;
            (Role::Pharmacist, Some(store_id), Some(store_code))
        }
        StaffRole::Admin => (Role::Admin, None, None),
    };
    let id = insert_user(
        tx,
        &NewUser {
            role,
            email: new.email.as_str(),
            name: new.name.as_str(),
            password_hash: &new.placeholder_hash,
            person_id: None,
            store_id,
            email_verified: true,
        },
    )
    .map_err(|e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            CreateStaffError::EmailTaken
        }
        other => CreateStaffError::Db(other),
    })?;
    let token = tokens::issue_valid_for(
        tx,
        id,
        Purpose::PasswordReset,
        TimeDelta::hours(INVITATION_HOURS),
    )?;
    let link = format!(
        "{base_url}{}?token={token}",
        Purpose::PasswordReset.link_path()
    );
    let role_name = t.get(match role {
        Role::Admin => "role.admin",
        _ => "role.pharmacist",
    });
    enqueue(
        tx,
        &OutgoingMail {
            to: new.email.as_str(),
            kind: "invitation",
            subject: &t.fmt("mail.invitation.subject", &[("role", &role_name)]),
            body_text: &t.fmt(
                "mail.invitation.body",
                &[
                    ("name", &new.name.as_str()),
                    ("role", &role_name),
                    ("link", &link),
                    ("hours", &INVITATION_HOURS),
                ],
            ),
        },
    )?;
    audit::record(
        tx,
        Entry {
            actor: Some(actor),
            action: "user.create",
            entity: "user",
            entity_id: id.to_string(),
            before: None,
            after: Some(json!({
                "email": new.email.as_str(),
                "name": new.name.as_str(),
                "role": role.as_str(),
                "store_code": store_code,
            })),
        },
    )?;
    Ok(id)
}

/// What disabling or enabling an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggled {
    Changed,
    /// The account was already in that state; nothing was written.
    Unchanged,
    NoSuchUser,
    /// An administrator may not disable or enable their own account.
    OwnAccount,
}

/// Disables (`disable = true`) or re-enables an account. Disabling also moves
/// the account's session epoch on, so its live sessions stop working at their
/// next request. `now` is the app's clock, stamped on the change.
pub fn set_disabled(
    tx: &mut Tx<'_>,
    actor: i64,
    user_id: i64,
    disable: bool,
    now: NaiveDateTime,
) -> QueryResult<Toggled> {
    if user_id == actor {
        return Ok(Toggled::OwnAccount);
    }
    let exists = users::table
        .find(user_id)
        .count()
        .get_result::<i64>(tx.conn())?
        > 0;
    if !exists {
        return Ok(Toggled::NoSuchUser);
    }
    let changed = if disable {
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
        .execute(tx.conn())?
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
        .execute(tx.conn())?
    };
    if changed == 0 {
        return Ok(Toggled::Unchanged);
    }
    audit::record(
        tx,
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
    Ok(Toggled::Changed)
}
