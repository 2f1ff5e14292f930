//! Account rows.

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::accounts::Role;
use crate::db::schema::{people, users};
use crate::db::{DbConnection, Tx};

pub struct NewUser<'a> {
    pub role: Role,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub person_id: Option<i64>,
    pub store_id: Option<i64>,
    pub email_verified: bool,
}

/// Inserts a user; e-mail addresses are stored lower-cased.
pub fn insert_user(tx: &mut Tx<'_>, u: &NewUser<'_>) -> QueryResult<i64> {
    let now = Utc::now().naive_utc();
    diesel::insert_into(users::table)
        .values((
            users::role.eq(u.role.as_str()),
            users::email.eq(u.email.trim().to_lowercase()),
            users::name.eq(u.name.trim()),
            users::password_hash.eq(u.password_hash),
            users::person_id.eq(u.person_id),
            users::store_id.eq(u.store_id),
            users::email_verified_at.eq(u.email_verified.then_some(now)),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .returning(users::id)
        .get_result(tx.conn())
}

/// The person with this national-ID hash, created if new.
pub fn find_or_insert_person(
    tx: &mut Tx<'_>,
    national_id_hash: &str,
    birth_date: NaiveDate,
    masked: &str,
) -> QueryResult<i64> {
    if let Some(id) = people::table
        .filter(people::national_id_hash.eq(national_id_hash))
        .select(people::id)
        .first::<i64>(tx.conn())
        .optional()?
    {
        return Ok(id);
    }
    diesel::insert_into(people::table)
        .values((
            people::national_id_hash.eq(national_id_hash),
            people::birth_date.eq(birth_date),
            people::national_id_masked.eq(masked),
            people::created_at.eq(Utc::now().naive_utc()),
        ))
        .returning(people::id)
        .get_result(tx.conn())
}

/// The person with this national-ID hash, created if new, when several
/// transactions may create the same person at once (two pharmacies selling to
/// a newcomer, a guardian adding someone who is buying at a counter): `ON
/// CONFLICT DO NOTHING` lets the second wait for the first and then find its
/// row, rather than fail with a unique violation.
pub fn ensure_person(
    tx: &mut Tx<'_>,
    national_id_hash: &str,
    birth_date: NaiveDate,
    masked: &str,
    at: NaiveDateTime,
) -> QueryResult<i64> {
    let by_hash = |tx: &mut Tx<'_>| {
        people::table
            .filter(people::national_id_hash.eq(national_id_hash))
            .select(people::id)
            .first::<i64>(tx.conn())
            .optional()
    };
    if let Some(id) = by_hash(tx)? {
        return Ok(id);
    }
    let row = (
        people::national_id_hash.eq(national_id_hash),
        people::birth_date.eq(birth_date),
        people::national_id_masked.eq(masked),
        people::created_at.eq(at),
    );
    let inserted: Option<i64> = crate::on_each_backend!(tx.conn(), |c| {
        diesel::insert_into(people::table)
            .values(row)
            .on_conflict_do_nothing()
            .returning(people::id)
            .get_result(c)
            .optional()
    })?;
    match inserted {
        Some(id) => Ok(id),
        None => by_hash(tx)?.ok_or(diesel::result::Error::NotFound),
    }
}

/// An account as a request's guard needs it: who, which role, whether it may
/// still act, and the session epoch its cookies must carry.
pub struct AccountState {
    pub id: i64,
    pub role: String,
    pub name: String,
    pub email: String,
    pub person_id: Option<i64>,
    pub store_id: Option<i64>,
    pub email_verified: bool,
    pub disabled: bool,
    pub session_epoch: i64,
}

type AccountRow = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<chrono::NaiveDateTime>,
    Option<chrono::NaiveDateTime>,
    i64,
);

/// The account with this id, if it exists.
pub fn account_state(conn: &mut DbConnection, id: i64) -> QueryResult<Option<AccountState>> {
    // Read on every logged-in request: run as itself on each backend.
    let row: Option<AccountRow> = crate::on_each_backend!(conn, |c| {
        users::table
            .find(id)
            .select((
                users::id,
                users::role,
                users::name,
                users::email,
                users::person_id,
                users::store_id,
                users::email_verified_at,
                users::disabled_at,
                users::session_epoch,
            ))
            .first(c)
            .optional()
    })?;
    Ok(row.map(
        |(id, role, name, email, person_id, store_id, verified_at, disabled_at, session_epoch)| {
            AccountState {
                id,
                role,
                name,
                email,
                person_id,
                store_id,
                email_verified: verified_at.is_some(),
                disabled: disabled_at.is_some(),
                session_epoch,
            }
        },
    ))
}
