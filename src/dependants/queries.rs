//! Reading dependants: a guardian's current list, one current link as the
//! booking needs it, and what each dependant has left of the quota.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{dependants, people, reservations};
use crate::policy::Policy;
use crate::reservations::queries::quota_by_period;
use crate::reservations::rules::PeriodLeft;
use crate::reservations::status::ReservationStatus;

/// One current dependant, as the guardian's pages show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependant {
    /// The link's id: what the reserve form's `person` field names.
    pub id: i64,
    pub person_id: i64,
    pub name: String,
    pub birth_date: NaiveDate,
    pub national_id_masked: String,
    /// Reservations made for them that still hold masks (active, or offered
    /// from a waiting list).
    pub active: i64,
}

/// The current dependants of `guardian`, in the order they were added.
pub fn current(conn: &mut DbConnection, guardian: i64) -> QueryResult<Vec<Dependant>> {
    let rows: Vec<(i64, i64, String, NaiveDate, String)> = dependants::table
        .inner_join(people::table)
        .filter(dependants::guardian_user_id.eq(guardian))
        .filter(dependants::ended_at.is_null())
        .order((dependants::created_at, dependants::id))
        .select((
            dependants::id,
            dependants::person_id,
            dependants::name,
            people::birth_date,
            people::national_id_masked,
        ))
        .load(conn)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let active: HashMap<i64, i64> = reservations::table
        .filter(reservations::dependant_id.eq_any(&ids))
        .filter(reservations::status.eq_any(ReservationStatus::HOLDING))
        .group_by(reservations::dependant_id)
        .select((reservations::dependant_id, diesel::dsl::count_star()))
        .load::<(Option<i64>, i64)>(conn)?
        .into_iter()
        .filter_map(|(id, n)| Some((id?, n)))
        .collect();
    Ok(rows
        .into_iter()
        .map(
            |(id, person_id, name, birth_date, national_id_masked)| Dependant {
                id,
                person_id,
                name,
                birth_date,
                national_id_masked,
                active: active.get(&id).copied().unwrap_or(0),
            },
        )
        .collect())
}

/// A current dependant as the booking needs them: whose quota, whose
/// rotation day, and the name the mail and the counter show masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub person_id: i64,
    pub birth_date: NaiveDate,
    pub name: String,
}

/// Link `id`, if it is a current dependant of `guardian`: anyone else's, or
/// one that ended, is as absent as one that never existed.
pub fn current_one(
    conn: &mut DbConnection,
    guardian: i64,
    id: i64,
) -> QueryResult<Option<Current>> {
    let row: Option<(i64, NaiveDate, String)> = crate::on_each_backend!(conn, |c| {
        dependants::table
            .inner_join(people::table)
            .filter(dependants::id.eq(id))
            .filter(dependants::guardian_user_id.eq(guardian))
            .filter(dependants::ended_at.is_null())
            .select((dependants::person_id, people::birth_date, dependants::name))
            .first(c)
            .optional()
    })?;
    Ok(row.map(|(person_id, birth_date, name)| Current {
        person_id,
        birth_date,
        name,
    }))
}

/// Each current dependant of `guardian` with what they may still receive in
/// each period a booking made at `now` can count against.
pub fn with_quota(
    conn: &mut DbConnection,
    policy: &Policy,
    guardian: i64,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(Dependant, Vec<PeriodLeft>)>> {
    current(conn, guardian)?
        .into_iter()
        .map(|d| {
            let periods = quota_by_period(conn, policy, d.person_id, now)?;
            Ok((d, periods))
        })
        .collect()
}
