//! Account rows.

use chrono::{NaiveDate, Utc};
use diesel::prelude::*;

use crate::accounts::Role;
use crate::db::Tx;
use crate::db::schema::{people, users};

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
