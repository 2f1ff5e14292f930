//! Adding and removing a dependant, each one transaction with its audit
//! entry, and the sign-up's side of the rule "an account of one's own, or one
//! guardian — never both, never two".
//!
//! The rule is held by the database: a partial unique index allows one
//! current link per person (`dependants_current_person`), and whether the
//! person has an account is decided under a lock of their `people` row
//! ([`db::lock_row`]) that the sign-up takes too ([`end_on_own_account`]), so
//! that of a concurrent addition and sign-up one goes first and the other
//! sees what it wrote. An addition also holds its guardian's account row,
//! so that two additions at once cannot both pass the count; a removal holds
//! the link, which a booking for the dependant shares, so that a reservation
//! cannot be made under a link that is ending.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;

use crate::accounts::email::DisplayName;
use crate::accounts::queries::ensure_person;
use crate::audit::{self, Entry};
use crate::db::schema::{dependants, reservations, users, waitlist};
use crate::db::{self, AsRetryable, LockMode, Locked, Tx, is_retryable};
use crate::dependants::rules::{self, Refusal, RemoveRefusal};
use crate::policy::Policy;
use crate::reservations::rules::birth_year;
use crate::reservations::status::ReservationStatus;

/// `dependants.end_reason` of a link its guardian removed.
pub const ENDED_REMOVED: &str = "removed";
/// `dependants.end_reason` of a link that ended because the person signed up.
pub const ENDED_OWN_ACCOUNT: &str = "own_account";

/// A person to add, as parsed from the form: the national ID reduced to what
/// may be kept of it.
#[derive(Debug, Clone)]
pub struct NewDependant {
    pub name: DisplayName,
    pub national_id_hash: String,
    pub birth_date: NaiveDate,
    pub national_id_masked: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("not added: {0:?}")]
    Refused(Refusal),
    /// Another transaction made the person's current link between this one's
    /// check and its insert (the unique index decided). Retried by
    /// `write_tx`: the retry sees the winner's link and answers as for it.
    #[error("lost a race for the person's one link")]
    Raced,
    #[error("database error")]
    Db(#[from] DieselError),
}

impl From<Refusal> for AddError {
    fn from(r: Refusal) -> Self {
        AddError::Refused(r)
    }
}

impl AsRetryable for AddError {
    fn is_retryable(&self) -> bool {
        match self {
            AddError::Raced => true,
            AddError::Db(e) => is_retryable(e),
            AddError::Refused(_) => false,
        }
    }
}

/// Adds `new` to the dependants of the citizen `guardian` at `now`; the new
/// link's id. The checks that need nobody's identity come first (the
/// account, its count, the proxy rule for the birth year), then the person
/// is found or created by the keyed hash and held, and only then is it asked
/// whether they have an account or a guardian.
pub fn add(
    tx: &mut Tx<'_>,
    guardian: i64,
    new: &NewDependant,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<i64, AddError> {
    db::lock_row(tx, Locked::Account(guardian), LockMode::Update)?;
    let account: Option<(Option<i64>, Option<NaiveDateTime>, Option<NaiveDateTime>)> = users::table
        .find(guardian)
        .select((
            users::person_id,
            users::email_verified_at,
            users::disabled_at,
        ))
        .first(tx.conn())
        .optional()?;
    let own_person = match account {
        Some((Some(person), Some(_), None)) => person,
        // Not a citizen who may book: the page's guard lets none of these
        // in; refused as booking refuses them.
        _ => return Err(Refusal::Unverified.into()),
    };
    let current: i64 = dependants::table
        .filter(dependants::guardian_user_id.eq(guardian))
        .filter(dependants::ended_at.is_null())
        .count()
        .get_result(tx.conn())?;
    if current >= i64::from(policy.max_dependants) {
        return Err(Refusal::TooMany {
            max: policy.max_dependants,
        }
        .into());
    }
    if !rules::may_be_dependant(policy, birth_year(new.birth_date)) {
        return Err(Refusal::OutsideProxyYears {
            from: policy.proxy_born_from,
            until: policy.proxy_born_until,
        }
        .into());
    }

    let at = now.naive_utc();
    let person = ensure_person(
        tx,
        &new.national_id_hash,
        new.birth_date,
        &new.national_id_masked,
        at,
    )?;
    if person == own_person {
        return Err(Refusal::Oneself.into());
    }
    db::lock_row(tx, Locked::Person(person), LockMode::Update)?;
    let has_account = users::table
        .filter(users::person_id.eq(person))
        .count()
        .get_result::<i64>(tx.conn())?
        > 0;
    let linked_to: Option<i64> = dependants::table
        .filter(dependants::person_id.eq(person))
        .filter(dependants::ended_at.is_null())
        .select(dependants::guardian_user_id)
        .first(tx.conn())
        .optional()?;
    match linked_to {
        Some(g) if g == guardian => return Err(Refusal::AlreadyYours.into()),
        Some(_) => return Err(Refusal::Unavailable.into()),
        None if has_account => return Err(Refusal::Unavailable.into()),
        None => {}
    }

    let inserted = diesel::insert_into(dependants::table)
        .values((
            dependants::guardian_user_id.eq(guardian),
            dependants::person_id.eq(person),
            dependants::name.eq(new.name.as_str()),
            dependants::created_at.eq(at),
        ))
        .returning(dependants::id)
        .get_result::<i64>(tx.conn());
    let id = match inserted {
        Ok(id) => id,
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            return Err(AddError::Raced);
        }
        Err(e) => return Err(e.into()),
    };
    audit::record_at(
        tx,
        Entry {
            actor: Some(guardian),
            action: "dependant.add",
            entity: "dependant",
            entity_id: id.to_string(),
            before: None,
            after: Some(json!({
                "guardian_user_id": guardian,
                "person_id": person,
                "national_id": new.national_id_masked,
            })),
        },
        at,
    )?;
    Ok(id)
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("not removed: {0:?}")]
    Refused(RemoveRefusal),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for RemoveError {
    fn is_retryable(&self) -> bool {
        matches!(self, RemoveError::Db(e) if is_retryable(e))
    }
}

/// Ends the link `dependant_id` of the citizen `guardian` at `now`, unless a
/// reservation made under it is still active. The row stays, with when and
/// why it ended: the reservations made under it keep pointing at it. The
/// link is held first, so that a booking for the dependant that shares it
/// either commits before (and its reservation refuses this) or finds the
/// link ended.
pub fn remove(
    tx: &mut Tx<'_>,
    guardian: i64,
    dependant_id: i64,
    now: DateTime<Utc>,
) -> Result<(), RemoveError> {
    db::lock_row(tx, Locked::Dependant(dependant_id), LockMode::Update)?;
    let person: i64 = dependants::table
        .filter(dependants::id.eq(dependant_id))
        .filter(dependants::guardian_user_id.eq(guardian))
        .filter(dependants::ended_at.is_null())
        .select(dependants::person_id)
        .first(tx.conn())
        .optional()?
        .ok_or(RemoveError::Refused(RemoveRefusal::NotFound))?;
    let active: i64 = reservations::table
        .filter(reservations::dependant_id.eq(dependant_id))
        .filter(reservations::status.eq_any(ReservationStatus::HOLDING))
        .count()
        .get_result(tx.conn())?;
    if active > 0 {
        return Err(RemoveError::Refused(RemoveRefusal::ActiveReservation));
    }
    // Their places in waiting lists go with the link.
    diesel::delete(
        waitlist::table
            .filter(waitlist::dependant_id.eq(dependant_id))
            .filter(waitlist::offer_id.is_null()),
    )
    .execute(tx.conn())?;
    let at = now.naive_utc();
    let ended = diesel::update(
        dependants::table
            .filter(dependants::id.eq(dependant_id))
            .filter(dependants::ended_at.is_null()),
    )
    .set((
        dependants::ended_at.eq(at),
        dependants::end_reason.eq(ENDED_REMOVED),
    ))
    .execute(tx.conn())?;
    if ended != 1 {
        return Err(RemoveError::Refused(RemoveRefusal::NotFound));
    }
    audit::record_at(
        tx,
        Entry {
            actor: Some(guardian),
            action: "dependant.remove",
            entity: "dependant",
            entity_id: dependant_id.to_string(),
            before: Some(json!({ "guardian_user_id": guardian, "person_id": person })),
            after: Some(json!({ "end_reason": ENDED_REMOVED })),
        },
        at,
    )?;
    Ok(())
}

/// The sign-up's side: holds the person's row — as an addition does — so
/// that an addition running at the same time either committed before (and its
/// link is ended here) or waits and then finds the account. Call it before
/// the account is inserted.
pub fn hold_person(tx: &mut Tx<'_>, person: i64) -> QueryResult<()> {
    db::lock_row(tx, Locked::Person(person), LockMode::Update)
}

/// Ends the person's current link, if any, because they now have an account
/// of their own (`user`, just created): they book for themselves from now on.
/// Answers how many links ended (0 or 1). Each is in the audit log.
pub fn end_on_own_account(tx: &mut Tx<'_>, person: i64, user: i64) -> QueryResult<usize> {
    let at = Utc::now().naive_utc();
    let ended: Vec<(i64, i64)> = diesel::update(
        dependants::table
            .filter(dependants::person_id.eq(person))
            .filter(dependants::ended_at.is_null()),
    )
    .set((
        dependants::ended_at.eq(at),
        dependants::end_reason.eq(ENDED_OWN_ACCOUNT),
    ))
    .returning((dependants::id, dependants::guardian_user_id))
    .get_results(tx.conn())?;
    for (id, guardian) in &ended {
        audit::record_at(
            tx,
            Entry {
                actor: Some(user),
                action: "dependant.end",
                entity: "dependant",
                entity_id: id.to_string(),
                before: Some(json!({ "guardian_user_id": guardian, "person_id": person })),
                after: Some(json!({ "end_reason": ENDED_OWN_ACCOUNT })),
            },
            at,
        )?;
    }
    Ok(ended.len())
}
