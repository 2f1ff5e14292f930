//! Account actions, each one database transaction: sign-up, e-mail
//! verification, login checks, password reset. Handlers parse input and call
//! these; mail is written to the outbox in the same transaction.

use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::accounts::Role;
use crate::accounts::email::{DisplayName, Email};
use crate::accounts::national_id::NationalId;
use crate::accounts::queries::{NewUser, insert_user};
use crate::accounts::tokens::{self, Purpose, TokenError};
use crate::db::schema::{people, users};
use crate::db::{AsRetryable, DbConnection, is_retryable, write_tx};
use crate::mail::outbox::{OutgoingMail, enqueue};
use crate::web::i18n::Tr;

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
    conn: &mut DbConnection,
    id_key: &[u8],
    s: &Signup,
    t: &Tr,
    base_url: &str,
) -> Result<i64, AccountError> {
    let id_hash = s.national_id.keyed_hash(id_key);
    let result = write_tx(conn, |conn| {
        let email_taken: i64 = users::table
            .filter(users::email.eq(s.email.as_str()))
            .count()
            .get_result(conn)?;
        // A person may already exist from a walk-in purchase; one account each.
        let person: Option<i64> = people::table
            .filter(people::national_id_hash.eq(&id_hash))
            .select(people::id)
            .first(conn)
            .optional()?;
        let person_has_account = match person {
            Some(p) => {
                users::table
                    .filter(users::person_id.eq(p))
                    .count()
                    .get_result::<i64>(conn)?
                    > 0
            }
            None => false,
        };
        if email_taken > 0 || person_has_account {
            return Err(AccountError::Duplicate);
        }
        let person_id = match person {
            Some(p) => p,
            None => diesel::insert_into(people::table)
                .values((
                    people::national_id_hash.eq(&id_hash),
                    people::birth_date.eq(s.national_id.birth_date()),
                    people::national_id_masked.eq(s.national_id.masked()),
                    people::created_at.eq(Utc::now().naive_utc()),
                ))
                .returning(people::id)
                .get_result(conn)?,
        };
        let user_id = insert_user(
            conn,
            &NewUser {
                role: Role::Citizen,
                email: s.email.as_str(),
                name: s.name.as_str(),
                password_hash: &s.password_hash,
                person_id: Some(person_id),
                store_id: None,
                email_verified: false,
            },
        )?;
        queue_verification(
            conn,
            user_id,
            s.email.as_str(),
            s.name.as_str(),
            t,
            base_url,
        )?;
        Ok(user_id)
    });
    // Two sign-ups racing for the same ID or e-mail: the database's UNIQUE
    // constraints decide, and the loser is told the same as any duplicate.
    match result {
        Err(AccountError::Db(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _,
        ))) => Err(AccountError::Duplicate),
        other => other,
    }
}

fn queue_verification(
    conn: &mut DbConnection,
    user_id: i64,
    email: &str,
    name: &str,
    t: &Tr,
    base_url: &str,
) -> QueryResult<i64> {
    let token = tokens::issue(conn, user_id, Purpose::VerifyEmail)?;
    let link = format!("{base_url}/verify-email?token={token}");
    let subject = t.get("mail.verify.subject").to_owned();
    let body = t.fmt("mail.verify.body", &[("name", &name), ("link", &link)]);
    enqueue(
        conn,
        &OutgoingMail {
            to: email,
            kind: "verify_email",
            subject: &subject,
            body_text: &body,
        },
    )
}

/// Sends a new verification link to an unverified account.
pub fn resend_verification(
    conn: &mut DbConnection,
    user_id: i64,
    t: &Tr,
    base_url: &str,
) -> Result<bool, AccountError> {
    write_tx(conn, |conn| {
        let row: Option<(String, String, Option<chrono::NaiveDateTime>)> = users::table
            .find(user_id)
            .select((users::email, users::name, users::email_verified_at))
            .first(conn)
            .optional()?;
        match row {
            Some((email, name, None)) => {
                queue_verification(conn, user_id, &email, &name, t, base_url)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    })
}

/// Confirms the e-mail address the token was sent to.
pub fn verify_email(conn: &mut DbConnection, raw_token: &str) -> Result<i64, AccountError> {
    write_tx(conn, |conn| {
        let user_id =
            tokens::consume(conn, raw_token, Purpose::VerifyEmail)?.map_err(AccountError::Token)?;
        diesel::update(
            users::table
                .find(user_id)
                .filter(users::email_verified_at.is_null()),
        )
        .set((
            users::email_verified_at.eq(Some(Utc::now().naive_utc())),
            users::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)?;
        Ok(user_id)
    })
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
    conn: &mut DbConnection,
    email: &str,
    t: &Tr,
    base_url: &str,
) -> Result<bool, AccountError> {
    write_tx(conn, |conn| {
        let row: Option<(i64, String)> = users::table
            .filter(users::email.eq(email))
            .filter(users::disabled_at.is_null())
            .select((users::id, users::name))
            .first(conn)
            .optional()?;
        let Some((user_id, name)) = row else {
            return Ok(false);
        };
        let token = tokens::issue(conn, user_id, Purpose::PasswordReset)?;
        let link = format!("{base_url}/password/reset?token={token}");
        let subject = t.get("mail.reset.subject").to_owned();
        let body = t.fmt("mail.reset.body", &[("name", &name), ("link", &link)]);
        enqueue(
            conn,
            &OutgoingMail {
                to: email,
                kind: "password_reset",
                subject: &subject,
                body_text: &body,
            },
        )?;
        Ok(true)
    })
}

/// Sets a new password with a reset token, and ends every session of the user
/// (their session epoch moves on) and every other reset link.
pub fn reset_password(
    conn: &mut DbConnection,
    raw_token: &str,
    password_hash: &str,
) -> Result<i64, AccountError> {
    write_tx(conn, |conn| {
        let user_id = tokens::consume(conn, raw_token, Purpose::PasswordReset)?
            .map_err(AccountError::Token)?;
        let now = Utc::now().naive_utc();
        diesel::update(users::table.find(user_id))
            .set((
                users::password_hash.eq(password_hash),
                users::session_epoch.eq(users::session_epoch + 1),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        // Following the link proved the mailbox is theirs.
        diesel::update(
            users::table
                .find(user_id)
                .filter(users::email_verified_at.is_null()),
        )
        .set(users::email_verified_at.eq(Some(now)))
        .execute(conn)?;
        tokens::revoke_all(conn, user_id, Purpose::PasswordReset)?;
        Ok(user_id)
    })
}

/// Invalidates every session of the account (logout, password reset, disable).
pub fn end_all_sessions(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(conn)
}
