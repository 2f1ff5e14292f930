//! Reading reservations and quota.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pickup_windows, quota_usage, reservations, stores};
use crate::policy::Policy;

/// One reservation as its owner sees it in the list.
#[derive(Debug, Clone)]
pub struct ReservationSummary {
    pub id: i64,
    pub store_name: String,
    pub store_code: String,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub quantity: i32,
    pub status: String,
}

/// The user's reservations, newest first.
pub fn for_user(
    conn: &mut DbConnection,
    user_id: i64,
    limit: i64,
) -> QueryResult<Vec<ReservationSummary>> {
    let rows: Vec<(
        i64,
        String,
        String,
        NaiveDateTime,
        NaiveDateTime,
        i32,
        String,
    )> = reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(stores::table)
        .filter(reservations::user_id.eq(user_id))
        .order((reservations::created_at.desc(), reservations::id.desc()))
        .limit(limit)
        .select((
            reservations::id,
            stores::name,
            stores::code,
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            reservations::quantity,
            reservations::status,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, store_name, store_code, starts_at, ends_at, quantity, status)| {
                ReservationSummary {
                    id,
                    store_name,
                    store_code,
                    starts_at,
                    ends_at,
                    quantity,
                    status,
                }
            },
        )
        .collect())
}

/// Masks this person may still receive in the period that contains `day`.
pub fn quota_left(
    conn: &mut DbConnection,
    policy: &Policy,
    person_id: i64,
    day: NaiveDate,
) -> QueryResult<i32> {
    let used = used_in_period(conn, person_id, policy.period.start_of(day))?;
    Ok((policy.quota_per_period - used).max(0))
}

/// Masks this person has used (reserved, picked up, bought) in the period.
pub fn used_in_period(
    conn: &mut DbConnection,
    person_id: i64,
    period_start: NaiveDate,
) -> QueryResult<i32> {
    Ok(quota_usage::table
        .find((person_id, period_start))
        .select(quota_usage::used)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}
