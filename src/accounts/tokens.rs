//! Single-use account tokens (e-mail verification, password reset). The raw
//! token goes out in a link; only its SHA-256 is stored, so a database leak
//! yields no usable link.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::db::schema::account_tokens;
use crate::db::{DbConnection, Tx};
use crate::random::token as random_token;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
        }
    }

    /// The page the mailed link opens.
    pub fn link_path(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "/verify-email",
            Purpose::PasswordReset => "/password/reset",
        }
    }

    /// The locale keys of the mail's subject and body.
    pub fn mail_keys(self) -> (&'static str, &'static str) {
        match self {
            Purpose::VerifyEmail => ("mail.verify.subject", "mail.verify.body"),
            Purpose::PasswordReset => ("mail.reset.subject", "mail.reset.body"),
        }
    }

    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail => Duration::hours(48),
            Purpose::PasswordReset => Duration::hours(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no such token")]
    Unknown,
    #[error("token expired")]
    Expired,
    #[error("token already used")]
    Used,
}

pub fn hash(raw: &str) -> String {
    super::hex(&Sha256::digest(raw.as_bytes()))
}

/// Creates a token and returns the raw value for the link.
pub fn issue(tx: &mut Tx<'_>, user_id: i64, purpose: Purpose) -> QueryResult<String> {
    issue_valid_for(tx, user_id, purpose, purpose.lifetime())
}

/// As [`issue`], valid for `lifetime` instead of the purpose's usual one (an
/// invitation to set a first password lasts longer than a reset link).
pub fn issue_valid_for(
    tx: &mut Tx<'_>,
    user_id: i64,
    purpose: Purpose,
    lifetime: Duration,
) -> QueryResult<String> {
    let raw = random_token();
    let now = Utc::now().naive_utc();
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::user_id.eq(user_id),
            account_tokens::purpose.eq(purpose.as_str()),
            account_tokens::token_hash.eq(hash(&raw)),
            account_tokens::expires_at.eq(now + lifetime),
            account_tokens::created_at.eq(now),
        ))
        .execute(tx.conn())?;
    Ok(raw)
}

/// Whether `user_id` is a staff account an administrator created that has
/// not set its password yet: its invitation link then opens a page that sets
/// a first password rather than one that changes it. Read from what happened
/// (the account's creation in the audit log, no reset link ever used), so an
/// account made on the command line, or one that has set its password once,
/// is not mistaken for a new one.
pub fn awaits_first_password(conn: &mut DbConnection, user_id: i64) -> QueryResult<bool> {
    use crate::db::schema::audit_log;
    let invited = diesel::select(diesel::dsl::exists(
        audit_log::table
            .filter(audit_log::action.eq("user.create"))
            .filter(audit_log::entity.eq("user"))
            .filter(audit_log::entity_id.eq(user_id.to_string())),
    ))
    .get_result::<bool>(conn)?;
    if !invited {
        return Ok(false);
    }
    let used = diesel::select(diesel::dsl::exists(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(Purpose::PasswordReset.as_str()))
            .filter(account_tokens::used_at.is_not_null()),
    ))
    .get_result::<bool>(conn)?;
    Ok(!used)
}

/// Checks a token without using it (to show the reset form).
pub fn peek(
    conn: &mut DbConnection,
    raw: &str,
    purpose: Purpose,
) -> QueryResult<Result<i64, TokenError>> {
    let row: Option<(i64, NaiveDateTime, Option<NaiveDateTime>)> = account_tokens::table
        .filter(account_tokens::token_hash.eq(hash(raw)))
        .filter(account_tokens::purpose.eq(purpose.as_str()))
        .select((
            account_tokens::user_id,
            account_tokens::expires_at,
            account_tokens::used_at,
        ))
        .first(conn)
        .optional()?;
    Ok(match row {
        None => Err(TokenError::Unknown),
        Some((_, _, Some(_))) => Err(TokenError::Used),
        Some((_, expires, None)) if expires <= Utc::now().naive_utc() => Err(TokenError::Expired),
        Some((user_id, _, None)) => Ok(user_id),
    })
}

/// Uses a token once: one conditional update, so of two concurrent uses
/// exactly one succeeds. Run inside the transaction that does what the token
/// allows.
pub fn consume(
    tx: &mut Tx<'_>,
    raw: &str,
    purpose: Purpose,
) -> QueryResult<Result<i64, TokenError>> {
    let now = Utc::now().naive_utc();
    let used: Option<i64> = diesel::update(
        account_tokens::table
            .filter(account_tokens::token_hash.eq(hash(raw)))
            .filter(account_tokens::purpose.eq(purpose.as_str()))
            .filter(account_tokens::used_at.is_null())
            .filter(account_tokens::expires_at.gt(now)),
    )
    .set(account_tokens::used_at.eq(Some(now)))
    .returning(account_tokens::user_id)
    .get_result(tx.conn())
    .optional()?;
    Ok(match used {
        Some(user_id) => Ok(user_id),
        // Say why; a token still usable here lost a race a moment ago.
        None => Err(peek(tx.conn(), raw, purpose)?
            .err()
            .unwrap_or(TokenError::Used)),
    })
}

/// Marks every open token of this purpose for the user as used (after a reset,
/// older reset links must stop working).
pub fn revoke_all(tx: &mut Tx<'_>, user_id: i64, purpose: Purpose) -> QueryResult<usize> {
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(purpose.as_str()))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(Some(Utc::now().naive_utc())))
    .execute(tx.conn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_is_not_the_token() {
        let raw = random_token();
        assert_eq!(hash(&raw).len(), 64);
        assert_ne!(hash(&raw), raw);
        assert_eq!(hash(&raw), hash(&raw));
    }

    #[test]
    fn reset_links_last_an_hour() {
        assert_eq!(Purpose::PasswordReset.lifetime(), Duration::hours(1));
    }
}
