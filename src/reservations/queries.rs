//! Reading reservations and quota.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{
    dependants, people, pickup_windows, quota_usage, reservations, stores, users,
};
use crate::dependants::queries::{Dependant, with_quota};
use crate::policy::Policy;
use crate::reservations::rules::{self, PeriodLeft};
use crate::reservations::status::ReservationStatus;
use crate::waitlist::line::{Waiting, waiting};

/// One reservation as its owner sees it in the list, its fields in the order
/// [`for_user`] selects them.
#[derive(Debug, Clone, Queryable)]
pub struct ReservationSummary {
    pub id: i64,
    pub store_name: String,
    pub store_code: String,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub quantity: i32,
    pub status: ReservationStatus,
    pub pickup_code: String,
    /// For a dependant's reservation, the name their guardian gave.
    pub dependant_name: Option<String>,
    /// Until when an offer from a waiting list is held.
    pub offer_until: Option<NaiveDateTime>,
}

/// The user's reservations, newest first.
pub fn for_user(
    conn: &mut DbConnection,
    user_id: i64,
    limit: i64,
) -> QueryResult<Vec<ReservationSummary>> {
    reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(stores::table)
        .left_join(dependants::table)
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
            reservations::pickup_code,
            dependants::name.nullable(),
            reservations::offer_until,
        ))
        .load(conn)
}

/// What the person may still receive in each period a booking made at `now`
/// can count against ([`rules::periods_left`]): one statement.
pub fn quota_by_period(
    conn: &mut DbConnection,
    policy: &Policy,
    person_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<Vec<PeriodLeft>> {
    let (first, last) = rules::bookable_periods(policy, now);
    let used: HashMap<NaiveDate, i32> = crate::on_each_backend!(conn, |c| {
        quota_usage::table
            .filter(quota_usage::person_id.eq(person_id))
            .filter(quota_usage::period_start.between(first, last))
            .select((quota_usage::period_start, quota_usage::used))
            .load::<(NaiveDate, i32)>(c)
    })?
    .into_iter()
    .collect();
    Ok(rules::periods_left(policy, now, |start| {
        used.get(&start).copied().unwrap_or(0)
    }))
}

/// [`quota_by_period`] of the account's person; the whole quota in each
/// period for an account with no person (staff).
pub fn quota_by_period_of_user(
    conn: &mut DbConnection,
    policy: &Policy,
    user_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<Vec<PeriodLeft>> {
    let person: Option<i64> = users::table
        .find(user_id)
        .select(users::person_id)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten();
    match person {
        Some(person) => quota_by_period(conn, policy, person, now),
        None => Ok(rules::periods_left(policy, now, |_| 0)),
    }
}

/// What the citizen's own page shows: the quota left in each period they can
/// book for, their reservations, newest first, and each dependant's quota.
pub struct Overview {
    pub quota: Vec<PeriodLeft>,
    pub reservations: Vec<ReservationSummary>,
    pub dependants: Vec<(Dependant, Vec<PeriodLeft>)>,
    /// The places the citizen holds in waiting lists (SPEC §13).
    pub waiting: Vec<Waiting>,
}

/// How many reservations the citizen's page lists at most.
pub const LIST_LIMIT: i64 = 200;

pub fn overview(
    conn: &mut DbConnection,
    policy: &Policy,
    user_id: i64,
    person_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<Overview> {
    Ok(Overview {
        quota: quota_by_period(conn, policy, person_id, now)?,
        reservations: for_user(conn, user_id, LIST_LIMIT)?,
        dependants: with_quota(conn, policy, user_id, now)?,
        waiting: waiting(conn, user_id, now)?,
    })
}

/// One reservation as its page shows it; fields in the order [`detail`]
/// selects them.
#[derive(Debug, Clone, Queryable)]
pub struct Detail {
    pub id: i64,
    pub store_code: String,
    pub store_name: String,
    pub store_addr: String,
    pub store_phone: Option<String>,
    pub day: NaiveDate,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub quantity: i32,
    pub status: ReservationStatus,
    pub pickup_code: String,
    /// The birth date of whom it is for (the citizen, or a dependant).
    pub birth_date: NaiveDate,
    /// For a dependant's reservation, the name their guardian gave.
    pub dependant_name: Option<String>,
    /// Until when an offer from a waiting list is held.
    pub offer_until: Option<NaiveDateTime>,
}

/// Reservation `id` if it belongs to `user_id`: another's is as absent as one
/// that does not exist.
pub fn detail(conn: &mut DbConnection, user_id: i64, id: i64) -> QueryResult<Option<Detail>> {
    reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(stores::table)
        .inner_join(people::table)
        .left_join(dependants::table)
        .filter(reservations::id.eq(id))
        .filter(reservations::user_id.eq(user_id))
        .select((
            reservations::id,
            stores::code,
            stores::name,
            stores::addr,
            stores::phone,
            pickup_windows::day,
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            reservations::quantity,
            reservations::status,
            reservations::pickup_code,
            people::birth_date,
            dependants::name.nullable(),
            reservations::offer_until,
        ))
        .first(conn)
        .optional()
}

/// The code of the store that window `window_id` belongs to, and the
/// window's day: where the store page shows it.
pub fn store_code_of_window(
    conn: &mut DbConnection,
    window_id: i64,
) -> QueryResult<Option<(String, NaiveDate)>> {
    pickup_windows::table
        .inner_join(stores::table)
        .filter(pickup_windows::id.eq(window_id))
        .select((stores::code, pickup_windows::day))
        .first(conn)
        .optional()
}
