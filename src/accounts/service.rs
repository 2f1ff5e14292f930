//! Account actions, each one database transaction: sign-up, e-mail
//! verification, login checks, password reset. Handlers parse input and call
//! these; mail is written to the outbox in the same transaction.

use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::accounts::Role;
use crate::accounts::email::{DisplayName, Email};
use crate::accounts::national_id::NationalId;
use crate::accounts::queries::{NewUser, find_or_insert_person, insert_user};
use crate::accounts::tokens::{self, Purpose, TokenError};
use crate::db::schema::users;
use crate::db::{AsRetryable, DbConnection, Tx, is_retryable};
use crate::i18n::Tr;
use crate::mail::outbox::{OutgoingMail, enqueue};

/// Why an account action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The national ID or e-mail already has an account.
    #[error("an account already exists")]
    Duplicate,
    #[error(transparent)]
    Token(TokenError),
    /// Not transparent: the database error stays in the cause chain, where a
    /// lost connection is recognised (see `AppError::from`).
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for AccountError {
    fn is_retryable(&self) -> bool {
        matches!(self, AccountError::Db(e) if is_retryable(e))
    }
}

/// What a new citizen gave, already parsed and with the password hashed.
pub struct Signup {
    pub national_id: NationalId,
    pub name: DisplayName,
    pub email: Email,
    pub password_hash: String,
}

/// Creates the citizen, unverified, and queues the verification mail. Returns
/// the new user's id.
pub fn sign_up(
    tx: &mut Tx<'_>,
    id_key: &[u8],
    s: &Signup,
    t: &Tr,
    base_url: &str,
) -> Result<i64, AccountError> {
    let id_hash = s.national_id.keyed_hash(id_key);
    // Two sign-ups racing for the same ID or e-mail: the database's UNIQUE
    // constraints decide, and the loser is told the same as any duplicate (the
    // transaction is rolled back by the caller's `write_tx`).
    let duplicate = |e: DieselError| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            AccountError::Duplicate
        }
        other => AccountError::Db(other),
    };
    // A person may already exist from a walk-in purchase; one account each.
    let person_id = find_or_insert_person(
        tx,
        &id_hash,
        s.national_id.birth_date(),
        &s.national_id.masked(),
    )
    .map_err(duplicate)?;
    let taken: i64 = users::table
        .filter(
            users::email
                .eq(s.email.as_str())
                .or(users::person_id.eq(person_id)),
        )
        .count()
        .get_result(tx.conn())?;
    if taken > 0 {
        // The caller rolls back the person row too, if it was new.
        return Err(AccountError::Duplicate);
    }
    let user_id = insert_user(
        tx,
        &NewUser {
            role: Role::Citizen,
            email: s.email.as_str(),
            name: s.name.as_str(),
            password_hash: &s.password_hash,
            person_id: Some(person_id),
            store_id: None,
            email_verified: false,
        },
    )
    .map_err(duplicate)?;
    queue_link(
        tx,
        user_id,
        Purpose::VerifyEmail,
        s.email.as_str(),
        s.name.as_str(),
        t,
        base_url,
    )?;
    Ok(user_id)
}

/// Issues a token for `purpose` and queues the mail that carries its link.
fn queue_link(
    tx: &mut Tx<'_>,
    user_id: i64,
    purpose: Purpose,
    email: &str,
    name: &str,
    t: &Tr,
    base_url: &str,
) -> QueryResult<i64> {
    let token = tokens::issue(tx, user_id, purpose)?;
    let link = format!("{base_url}{}?token={token}", purpose.link_path());
    let (subject_key, body_key) = purpose.mail_keys();
    let body = t.fmt(body_key, &[("name", &name), ("link", &link)]);
    enqueue(
        tx,
        &OutgoingMail {
            to: email,
            kind: purpose.as_str(),
            subject: t.get(subject_key),
            body_text: &body,
        },
    )
}

/// Sends a new verification link to an unverified account.
pub fn resend_verification(
    tx: &mut Tx<'_>,
    user_id: i64,
    t: &Tr,
    base_url: &str,
) -> Result<bool, AccountError> {
    let row: Option<(String, String, Option<chrono::NaiveDateTime>)> = users::table
        .find(user_id)
        .select((users::email, users::name, users::email_verified_at))
        .first(tx.conn())
        .optional()?;
    match row {
        Some((email, name, None)) => {
            queue_link(
                tx,
                user_id,
                Purpose::VerifyEmail,
                &email,
                &name,
                t,
                base_url,
            )?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Confirms the e-mail address the token was sent to.
pub fn verify_email(tx: &mut Tx<'_>, raw_token: &str) -> Result<i64, AccountError> {
    let user_id =
        tokens::consume(tx, raw_token, Purpose::VerifyEmail)?.map_err(AccountError::Token)?;
    diesel::update(
        users::table
            .find(user_id)
            .filter(users::email_verified_at.is_null()),
    )
    .set((
        users::email_verified_at.eq(Some(Utc::now().naive_utc())),
        users::updated_at.eq(Utc::now().naive_utc()),
    ))
    .execute(tx.conn())?;
    Ok(user_id)
}

/// What login needs to know about an account.
#[derive(Debug, Clone)]
pub struct LoginCandidate {
    pub id: i64,
    pub role: Role,
    pub name: String,
    pub password_hash: String,
    pub disabled: bool,
    pub epoch: i64,
}

pub fn find_for_login(conn: &mut DbConnection, email: &str) -> QueryResult<Option<LoginCandidate>> {
    let row: Option<(
        i64,
        String,
        String,
        String,
        Option<chrono::NaiveDateTime>,
        i64,
    )> = users::table
        .filter(users::email.eq(email.trim().to_lowercase()))
        .select((
            users::id,
            users::role,
            users::name,
            users::password_hash,
            users::disabled_at,
            users::session_epoch,
        ))
        .first(conn)
        .optional()?;
    Ok(
        row.and_then(|(id, role, name, password_hash, disabled_at, epoch)| {
            Some(LoginCandidate {
                id,
                role: Role::parse(&role)?,
                name,
                password_hash,
                disabled: disabled_at.is_some(),
                epoch,
            })
        }),
    )
}

/// Queues a reset link if the address belongs to an enabled account. Says
/// nothing about whether it did: the page answers the same either way.
pub fn request_reset(
    tx: &mut Tx<'_>,
    email: &str,
    t: &Tr,
    base_url: &str,
) -> Result<bool, AccountError> {
    let row: Option<(i64, String)> = users::table
        .filter(users::email.eq(email))
        .filter(users::disabled_at.is_null())
        .select((users::id, users::name))
        .first(tx.conn())
        .optional()?;
    let Some((user_id, name)) = row else {
        return Ok(false);
    };
    queue_link(
        tx,
        user_id,
        Purpose::PasswordReset,
        email,
        &name,
        t,
        base_url,
    )?;
    Ok(true)
}

/// Sets a new password with a reset token, and ends every session of the user
/// (their session epoch moves on) and every other reset link.
pub fn reset_password(
    tx: &mut Tx<'_>,
    raw_token: &str,
    password_hash: &str,
) -> Result<i64, AccountError> {
    let user_id =
        tokens::consume(tx, raw_token, Purpose::PasswordReset)?.map_err(AccountError::Token)?;
    let now = Utc::now().naive_utc();
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(password_hash),
            users::session_epoch.eq(users::session_epoch + 1),
            users::updated_at.eq(now),
        ))
        .execute(tx.conn())?;
    // Following the link proved the mailbox is theirs.
    diesel::update(
        users::table
            .find(user_id)
            .filter(users::email_verified_at.is_null()),
    )
    .set(users::email_verified_at.eq(Some(now)))
    .execute(tx.conn())?;
    tokens::revoke_all(tx, user_id, Purpose::PasswordReset)?;
    Ok(user_id)
}

/// Invalidates every session of the account (logout, password reset, disable).
pub fn end_all_sessions(tx: &mut Tx<'_>, user_id: i64) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(tx.conn())
}
