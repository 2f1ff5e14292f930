//! Registering for a draw: one registration per person per draw — up to
//! three ranked choices among the draw's windows and a quantity within the
//! quota — editable until registration closes. It takes no stock and no
//! quota; the draw's run decides. The draw's row is held for the
//! registration (`FOR SHARE`), and the run's claim updates it, so a
//! registration either commits before the registrations are frozen or finds
//! the draw closed.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::db::schema::{draw_entries, draw_windows, draws, pickup_windows};
use crate::db::statement::{Arg, Statement};
use crate::db::{self, AsRetryable, DbConnection, LockMode, Locked, Tx, is_retryable};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::reservations::booking::{ForWhom, holder_named};
use crate::reservations::rules::{self, Refusal};

/// A registration asked for.
#[derive(Debug, Clone)]
pub struct Register {
    pub user_id: i64,
    pub draw_id: i64,
    pub person: ForWhom,
    pub quantity: Quantity,
    /// Window ids in rank order, 1 to 3, distinct.
    pub choices: Vec<i64>,
    pub now: DateTime<Utc>,
    pub mail_lang: &'static str,
}

/// Why a registration was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRegistered {
    /// What booking would refuse of the account, the person, a choice's
    /// day (the rotation rule) or the quantity.
    Refused(Refusal),
    /// No such draw.
    UnknownDraw,
    /// Registration opens at this moment (UTC).
    NotOpen { opens_at: NaiveDateTime },
    /// Registration has closed.
    Closed,
    /// No choice, more than three, or one twice.
    Choices,
    /// This window is not one of the draw's.
    NotInDraw { window_id: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("not registered: {0:?}")]
    NotRegistered(NotRegistered),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl From<Refusal> for RegisterError {
    fn from(r: Refusal) -> Self {
        RegisterError::NotRegistered(NotRegistered::Refused(r))
    }
}

impl From<NotRegistered> for RegisterError {
    fn from(n: NotRegistered) -> Self {
        RegisterError::NotRegistered(n)
    }
}

impl AsRetryable for RegisterError {
    fn is_retryable(&self) -> bool {
        matches!(self, RegisterError::Db(e) if is_retryable(e))
    }
}

/// The most choices a registration ranks.
pub const MAX_CHOICES: usize = 3;

/// The name a registration is published under: a keyed hash of the draw and
/// the person, so that nobody but the citizen (who sees it on their page)
/// can tell whose line it is. Ten characters of Crockford base32 in two
/// halves (`K3F9Q-2XD7M`): no `,`, `;` or control character, as the
/// published list needs ([`super::seed::is_canonical_pseudonym`]).
pub fn pseudonym(key: &[u8], draw_id: i64, person_id: i64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes a key of any length.
        Err(_) => return String::new(),
    };
    mac.update(format!("draw {draw_id} person {person_id}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let chars: String = digest
        .iter()
        .take(10)
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// `$1`–`$12`: draw, account, person, link, quantity, the three choices,
/// pseudonym, language, now (twice: created, updated). A second registration
/// of the same person replaces the first's choices.
const UPSERT_SQL: &str = "\
INSERT INTO draw_entries (draw_id, user_id, person_id, dependant_id, quantity, \
    choice1, choice2, choice3, pseudonym, mail_lang, created_at, updated_at) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
ON CONFLICT (draw_id, person_id) DO UPDATE SET \
    user_id = excluded.user_id, dependant_id = excluded.dependant_id, \
    quantity = excluded.quantity, choice1 = excluded.choice1, \
    choice2 = excluded.choice2, choice3 = excluded.choice3, \
    mail_lang = excluded.mail_lang, updated_at = excluded.updated_at";

/// Registers `r` (or replaces its person's earlier registration); answers
/// its pseudonym.
pub fn register(
    tx: &mut Tx<'_>,
    r: &Register,
    policy: &Policy,
    key: &[u8],
) -> Result<String, RegisterError> {
    let (person_id, born, dependant_id) = holder_named::<RegisterError>(tx, r.user_id, r.person)?;
    db::lock_row(tx, Locked::Draw(r.draw_id), LockMode::Share)?;
    let draw: Option<(NaiveDateTime, NaiveDateTime, String)> = draws::table
        .find(r.draw_id)
        .select((draws::opens_at, draws::closes_at, draws::state))
        .first(tx.conn())
        .optional()?;
    let (opens_at, closes_at, state) = draw.ok_or(NotRegistered::UnknownDraw)?;
    let now = r.now.naive_utc();
    if now < opens_at {
        return Err(NotRegistered::NotOpen { opens_at }.into());
    }
    if now >= closes_at || state != "open" {
        return Err(NotRegistered::Closed.into());
    }
    let mut seen = r.choices.clone();
    seen.sort_unstable();
    seen.dedup();
    if r.choices.is_empty() || r.choices.len() > MAX_CHOICES || seen.len() != r.choices.len() {
        return Err(NotRegistered::Choices.into());
    }
    rules::check_quantity(r.quantity)?;
    if r.quantity.get() > policy.quota_per_period {
        return Err(Refusal::QuotaExceeded {
            left: policy.quota_per_period,
        }
        .into());
    }
    let days: Vec<(i64, chrono::NaiveDate)> = draw_windows::table
        .inner_join(pickup_windows::table)
        .filter(draw_windows::draw_id.eq(r.draw_id))
        .filter(draw_windows::window_id.eq_any(&r.choices))
        .select((pickup_windows::id, pickup_windows::day))
        .load(tx.conn())?;
    for window_id in &r.choices {
        let Some((_, day)) = days.iter().find(|(id, _)| id == window_id) else {
            return Err(NotRegistered::NotInDraw {
                window_id: *window_id,
            }
            .into());
        };
        rules::check_rotation(policy, rules::birth_year(born), *day)?;
    }
    let name = pseudonym(key, r.draw_id, person_id);
    let choice = |i: usize| r.choices.get(i).copied();
    {
        Statement::new(
            UPSERT_SQL,
            vec![
                Arg::BigInt(r.draw_id),
                Arg::BigInt(r.user_id),
                Arg::BigInt(person_id),
                Arg::NullableBigInt(dependant_id),
                Arg::Integer(r.quantity.get()),
                Arg::BigInt(r.choices[0]),
                Arg::NullableBigInt(choice(1)),
                Arg::NullableBigInt(choice(2)),
                Arg::Text(&name),
                Arg::Text(r.mail_lang),
                Arg::Timestamp(now),
                Arg::Timestamp(now),
            ],
        )
        .run(tx.conn())
    }?;
    Ok(name)
}

/// A registration as its citizen's page shows it.
#[derive(Debug, Clone, Queryable)]
pub struct Mine {
    pub id: i64,
    pub dependant_id: Option<i64>,
    pub quantity: i32,
    pub choice1: i64,
    pub choice2: Option<i64>,
    pub choice3: Option<i64>,
    pub pseudonym: String,
    pub position: Option<i32>,
    pub outcome: Option<String>,
    pub won_window_id: Option<i64>,
    pub reservation_id: Option<i64>,
}

impl Mine {
    pub fn choices(&self) -> Vec<i64> {
        std::iter::once(self.choice1)
            .chain(self.choice2)
            .chain(self.choice3)
            .collect()
    }
}

/// `user_id`'s registrations in draw `draw_id` (their own and their
/// dependants').
pub fn mine(conn: &mut DbConnection, draw_id: i64, user_id: i64) -> QueryResult<Vec<Mine>> {
    draw_entries::table
        .filter(draw_entries::draw_id.eq(draw_id))
        .filter(draw_entries::user_id.eq(user_id))
        .order(draw_entries::id)
        .select((
            draw_entries::id,
            draw_entries::dependant_id,
            draw_entries::quantity,
            draw_entries::choice1,
            draw_entries::choice2,
            draw_entries::choice3,
            draw_entries::pseudonym,
            draw_entries::position,
            draw_entries::outcome,
            draw_entries::won_window_id,
            draw_entries::reservation_id,
        ))
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_is_stable_per_draw_and_person_and_fit_for_the_published_list() {
        let key = [7u8; 64];
        let a = pseudonym(&key, 1, 42);
        assert_eq!(a, pseudonym(&key, 1, 42));
        assert_ne!(a, pseudonym(&key, 2, 42), "another draw");
        assert_ne!(a, pseudonym(&key, 1, 43), "another person");
        assert_ne!(a, pseudonym(&[8u8; 64], 1, 42), "another key");
        assert_eq!(a.len(), 11);
        assert!(super::super::seed::is_canonical_pseudonym(&a), "{a}");
    }
}
