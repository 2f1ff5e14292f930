//! Account actions, each one database transaction: sign-up, e-mail
//! verification, login checks, password reset. Handlers parse input and call
//! these; mail is written to the outbox in the same transaction.

use chrono::{NaiveDate, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::accounts::Role;
use crate::accounts::email::{DisplayName, Email};
use crate::accounts::national_id::NationalId;
use crate::accounts::queries::{NewUser, find_or_insert_person, insert_user};
use crate::accounts::tokens::{self, Purpose, TokenError};
use crate::db::schema::{people, signup_notices, users};
use crate::db::{AsRetryable, DbConnection, Tx, is_retryable};
use crate::dependants;
use crate::i18n::Tr;
use crate::mail::outbox::{OutgoingMail, enqueue};
use crate::rate_limit::{Limit, RateLimits};

/// Why an account action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Another transaction took the national ID or e-mail between this one's
    /// look-up and its insert. Retried by `write_tx`: the retry sees the
    /// winner's account and answers as for any taken one.
    #[error("lost a race for a unique national ID or e-mail")]
    Raced,
    #[error(transparent)]
    Token(TokenError),
    /// Not transparent: the database error stays in the cause chain, where a
    /// lost connection is recognised (see `AppError::from`).
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for AccountError {
    fn is_retryable(&self) -> bool {
        match self {
            AccountError::Raced => true,
            AccountError::Db(e) => is_retryable(e),
            AccountError::Token(_) => false,
        }
    }
}

/// What a new citizen gave, already parsed and with the password hashed.
pub struct Signup {
    pub national_id: NationalId,
    pub name: DisplayName,
    pub email: Email,
    pub password_hash: String,
}

/// What a sign-up did. The visitor is answered the same either way: the page
/// must not tell whether an address or a national ID is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A new, unverified account; its verification mail is queued.
    Created { user_id: i64 },
    /// The e-mail or the national ID already has an account: nothing was
    /// created, and the owner of each is told by mail that someone tried.
    Taken,
}

/// An account that stands in a new sign-up's way, and where its owner reads mail.
struct Holder {
    id: i64,
    email: String,
    name: String,
}

/// Creates the citizen, unverified, and queues the verification mail; or, when
/// the e-mail or the national ID already has an account, queues a notice to the
/// owner of each instead — to the holder of the national ID at most once a day
/// (`today`, in the service time zone), however often it is tried: the owner
/// of an e-mail address is protected by the per-address sign-up limit, the
/// holder of a number typed with ever new addresses only by this.
pub fn sign_up(
    tx: &mut Tx<'_>,
    id_key: &[u8],
    s: &Signup,
    t: &Tr,
    base_url: &str,
    today: NaiveDate,
) -> Result<SignupOutcome, AccountError> {
    let id_hash = s.national_id.keyed_hash(id_key);
    let by_email: Option<Holder> = users::table
        .filter(users::email.eq(s.email.as_str()))
        .select((users::id, users::email, users::name))
        .first::<(i64, String, String)>(tx.conn())
        .optional()?
        .map(|(id, email, name)| Holder { id, email, name });
    let by_id: Option<(i64, Holder)> = users::table
        .inner_join(people::table)
        .filter(people::national_id_hash.eq(&id_hash))
        .select((people::id, users::id, users::email, users::name))
        .first::<(i64, i64, String, String)>(tx.conn())
        .optional()?
        .map(|(person, id, email, name)| (person, Holder { id, email, name }));
    if by_email.is_some() || by_id.is_some() {
        if let Some(h) = &by_email {
            queue_notice(tx, Notice::EmailTaken, h, s, t, base_url)?;
        }
        // Someone typing their own details again needs one mail, not two.
        if let Some((person, h)) =
            by_id.filter(|(_, h)| by_email.as_ref().is_none_or(|e| e.id != h.id))
            && first_notice_of_day(tx, person, today)?
        {
            queue_notice(tx, Notice::NationalIdTaken, &h, s, t, base_url)?;
        }
        return Ok(SignupOutcome::Taken);
    }
    // A concurrent sign-up may insert the same ID or e-mail after the look-ups
    // above: the UNIQUE constraints decide, and the loser tries again.
    let raced = |e: DieselError| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AccountError::Raced,
        other => AccountError::Db(other),
    };
    // A person may already exist from a walk-in purchase, or as someone's
    // dependant; one account each.
    let person_id = find_or_insert_person(
        tx,
        &id_hash,
        s.national_id.birth_date(),
        &s.national_id.masked(),
    )
    .map_err(raced)?;
    // Held as an addition of a dependant holds it: of the two, one goes first
    // and the other sees what it wrote (SPEC §12).
    dependants::service::hold_person(tx, person_id)?;
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
    .map_err(raced)?;
    // Someone's dependant who signs up books for themself from now on.
    dependants::service::end_on_own_account(tx, person_id, user_id)?;
    queue_link(
        tx,
        user_id,
        Purpose::VerifyEmail,
        s.email.as_str(),
        s.name.as_str(),
        t,
        base_url,
    )?;
    Ok(SignupOutcome::Created { user_id })
}

/// Whether a notice that someone signed up with the national ID of `person`
/// is the first of `today`: one conditional insert keyed by person and day,
/// whose row count is the answer, so that concurrent sign-ups on any number
/// of instances send one mail between them. The person's rows of earlier
/// days are removed first: each person keeps at most one.
fn first_notice_of_day(tx: &mut Tx<'_>, person: i64, today: NaiveDate) -> QueryResult<bool> {
    diesel::delete(
        signup_notices::table
            .filter(signup_notices::person_id.eq(person))
            .filter(signup_notices::day.lt(today)),
    )
    .execute(tx.conn())?;
    let written = crate::on_each_backend!(tx.conn(), |c| {
        diesel::insert_into(signup_notices::table)
            .values((
                signup_notices::person_id.eq(person),
                signup_notices::day.eq(today),
            ))
            .on_conflict_do_nothing()
            .execute(c)
    })?;
    Ok(written == 1)
}

/// What a sign-up that created nothing tells an existing account's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// Someone signed up with the owner's e-mail address.
    EmailTaken,
    /// Someone signed up with the owner's national ID (and another address).
    NationalIdTaken,
}

impl Notice {
    fn kind(self) -> &'static str {
        match self {
            Notice::EmailTaken => "signup_email_taken",
            Notice::NationalIdTaken => "signup_national_id_taken",
        }
    }

    fn mail_keys(self) -> (&'static str, &'static str) {
        match self {
            Notice::EmailTaken => (
                "mail.signup_email_taken.subject",
                "mail.signup_email_taken.body",
            ),
            Notice::NationalIdTaken => (
                "mail.signup_national_id_taken.subject",
                "mail.signup_national_id_taken.body",
            ),
        }
    }
}

/// Queues the notice to the holder of what a sign-up asked for, in the
/// visitor's language (the only one known here).
fn queue_notice(
    tx: &mut Tx<'_>,
    notice: Notice,
    holder: &Holder,
    s: &Signup,
    t: &Tr,
    base_url: &str,
) -> QueryResult<i64> {
    let (subject_key, body_key) = notice.mail_keys();
    let body = t.fmt(
        body_key,
        &[
            ("name", &holder.name),
            ("email", &holder.email),
            ("masked_id", &s.national_id.masked()),
            ("login_link", &format!("{base_url}/login")),
            ("reset_link", &format!("{base_url}/password/forgot")),
        ],
    );
    enqueue(
        tx,
        &OutgoingMail {
            to: &holder.email,
            kind: notice.kind(),
            subject: t.get(subject_key),
            body_text: &body,
        },
    )
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

/// The request counters a login attempt is charged to, each with its limit.
/// Only failures stay counted (the caller takes a success back). A browser
/// whose device cookie names the account is charged to its own small counter
/// alone; any other attempt to its address and to the account from that
/// address, never to the account as a whole, so that failures from elsewhere
/// cannot lock the owner out.
pub fn login_buckets(
    limits: &RateLimits,
    email: &str,
    ip: &str,
    device_id: Option<&str>,
) -> Vec<(String, Limit)> {
    match device_id {
        Some(device) => vec![(format!("login:device:{device}"), limits.login_per_device)],
        // The address first: it holds no space, so the pair reads back one way.
        None => vec![
            (format!("login:ip:{ip}"), limits.login_per_ip),
            (
                format!("login:account-ip:{ip} {email}"),
                limits.login_per_account_ip,
            ),
        ],
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_counted_by_address_and_by_account_from_that_address() {
        let limits = RateLimits::default();
        let buckets = login_buckets(&limits, "c@example.com", "203.0.113.9", None);
        assert_eq!(
            buckets,
            vec![
                ("login:ip:203.0.113.9".to_owned(), limits.login_per_ip),
                (
                    "login:account-ip:203.0.113.9 c@example.com".to_owned(),
                    limits.login_per_account_ip
                ),
            ]
        );
        let elsewhere = login_buckets(&limits, "c@example.com", "198.51.100.1", None);
        assert!(
            buckets.iter().all(|b| !elsewhere.contains(b)),
            "nothing is shared with another address"
        );
    }

    #[test]
    fn a_remembered_browser_is_counted_on_its_own_small_limit() {
        let limits = RateLimits::default();
        let buckets = login_buckets(&limits, "c@example.com", "203.0.113.9", Some("dev1"));
        assert_eq!(
            buckets,
            vec![("login:device:dev1".to_owned(), limits.login_per_device)]
        );
        assert!(limits.login_per_device.max <= limits.login_per_account_ip.max);
        assert!(limits.login_per_ip.max > 10 * limits.login_per_account_ip.max);
    }
}
