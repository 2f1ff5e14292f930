//! A place in a window's waiting list: joining, leaving, and what the pages
//! read of it (who waits where, and how many are ahead).
//!
//! Joining checks what booking would check of the person and the window
//! (the account, the dependant's link, the window still taking bookings, the
//! rotation day, the quantity) and that the window is full for that quantity
//! and has not started, and that the person has the quota left for the
//! window's week — read, not taken: the quota is taken when a place is
//! offered. One place in line per person per window is the table's unique
//! key, so two joins at once cannot both queue.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Text, Timestamp};

use crate::db::schema::{pickup_windows, stores, waitlist};
use crate::db::statement::{Arg, Statement};
use crate::db::{self, AsRetryable, DbConnection, Tx, is_retryable};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::quota;
use crate::reservations::booking::{ForWhom, holder_named};
use crate::reservations::rules::{self, Refusal, WindowFacts};
use crate::stock::StockWindow;

/// A place in line asked for.
#[derive(Debug, Clone, Copy)]
pub struct Join {
    pub user_id: i64,
    pub window_id: i64,
    pub person: ForWhom,
    pub quantity: Quantity,
    pub now: DateTime<Utc>,
    /// The language the offer's mail will be written in.
    pub mail_lang: &'static str,
    /// A place that day rather than in this window ([`join_day`]).
    pub whole_day: bool,
}

/// Why a place in line was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotJoined {
    /// What booking would refuse of the account, the person or the window,
    /// or the quota left (read, not taken).
    Refused(Refusal),
    /// The window has room for the quantity: it can be booked now.
    NotFull,
    /// The window has started: no place in it is offered any more.
    Started,
    /// This person already has a place in this window's line.
    AlreadyWaiting,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("not joined: {0:?}")]
    NotJoined(NotJoined),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl From<Refusal> for JoinError {
    fn from(r: Refusal) -> Self {
        JoinError::NotJoined(NotJoined::Refused(r))
    }
}

impl From<NotJoined> for JoinError {
    fn from(n: NotJoined) -> Self {
        JoinError::NotJoined(n)
    }
}

impl AsRetryable for JoinError {
    fn is_retryable(&self) -> bool {
        matches!(self, JoinError::Db(e) if is_retryable(e))
    }
}

type WindowRow = (NaiveDate, NaiveDateTime, NaiveDateTime, i32, i32, i32, bool);

/// Queues `j`'s person in the window's line; answers their place in it.
pub fn join(tx: &mut Tx<'_>, j: &Join, policy: &Policy) -> Result<i64, JoinError> {
    let (person_id, born, dependant_id) = holder_named::<JoinError>(tx, j.user_id, j.person)?;
    let window: WindowRow = pickup_windows::table
        .inner_join(stores::table)
        .filter(pickup_windows::id.eq(j.window_id))
        .select((
            pickup_windows::day,
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            pickup_windows::capacity,
            pickup_windows::reserved,
            pickup_windows::picked_up,
            stores::suspended,
        ))
        .first(tx.conn())
        .optional()?
        .ok_or(Refusal::UnknownWindow)?;
    let (day, starts_at, ends_at, capacity, reserved, picked_up, suspended) = window;
    let facts = WindowFacts {
        day,
        ends_at,
        store_suspended: suspended,
    };
    rules::check(policy, j.now, rules::birth_year(born), &facts, j.quantity)?;
    if starts_at <= j.now.naive_utc() {
        return Err(NotJoined::Started.into());
    }
    let free = StockWindow {
        capacity,
        reserved,
        picked_up,
    }
    .remaining();
    if free >= j.quantity.get() {
        return Err(NotJoined::NotFull.into());
    }
    let period_start = rules::period_of(policy, day);
    let left = quota::left(
        policy.quota_per_period,
        quota::used(tx.conn(), person_id, period_start)?,
    );
    if left < j.quantity.get() {
        return Err(Refusal::QuotaExceeded { left }.into());
    }
    let id: Option<i64> = crate::on_each_backend!(tx.conn(), |c| {
        diesel::insert_into(waitlist::table)
            .values((
                waitlist::window_id.eq(j.window_id),
                waitlist::user_id.eq(j.user_id),
                waitlist::person_id.eq(person_id),
                waitlist::dependant_id.eq(dependant_id),
                waitlist::quantity.eq(j.quantity.get()),
                waitlist::mail_lang.eq(j.mail_lang),
                waitlist::created_at.eq(j.now.naive_utc()),
                waitlist::whole_day.eq(j.whole_day),
            ))
            .on_conflict_do_nothing()
            .returning(waitlist::id)
            .get_result(c)
            .optional()
    })?;
    let id = id.ok_or(NotJoined::AlreadyWaiting)?;
    Ok(ahead_of(tx.conn(), j.window_id, id)? + 1)
}

/// Queues `j`'s person in `j`'s window ([`join`]: it must be full for them)
/// and, with `j.whole_day`, in every other window of the same store-day
/// that is full for them and has not started: one wish for a place that
/// day, not one per window. The first offer in any of them withdraws the
/// others ([`withdraw_rest_of_day`]). Answers how many lines were joined.
pub fn join_day(tx: &mut Tx<'_>, j: &Join, policy: &Policy) -> Result<usize, JoinError> {
    join(tx, j, policy)?;
    if !j.whole_day {
        return Ok(1);
    }
    let store_day_id: i64 = pickup_windows::table
        .find(j.window_id)
        .select(pickup_windows::store_day_id)
        .first(tx.conn())?;
    let others: Vec<i64> = pickup_windows::table
        .filter(pickup_windows::store_day_id.eq(store_day_id))
        .filter(pickup_windows::id.ne(j.window_id))
        .filter(pickup_windows::starts_at.gt(j.now.naive_utc()))
        .order(pickup_windows::starts_at)
        .select(pickup_windows::id)
        .load(tx.conn())?;
    let mut joined = 1;
    for window_id in others {
        let asked = Join { window_id, ..*j };
        // A window with room, or one the person already waits in, is left
        // as it is.
        match db::savepoint(tx, |tx| join(tx, &asked, policy)) {
            Ok(_) => joined += 1,
            Err(JoinError::NotJoined(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(joined)
}

/// After place `place` was offered its masks: if it was joined for the
/// whole day, the same person's other whole-day places that day, not
/// offered, leave their lines. Answers how many left.
///
/// Two instances offering one person two of those places at once cannot
/// both succeed: both offers take that person's quota row for the same week
/// first (the booking's first conditional write), so the second waits for
/// the first to commit, and its claim then finds its place gone.
pub fn withdraw_rest_of_day(tx: &mut Tx<'_>, place: i64) -> QueryResult<usize> {
    let found: Option<(i64, bool, i64)> = waitlist::table
        .inner_join(pickup_windows::table)
        .filter(waitlist::id.eq(place))
        .select((
            waitlist::person_id,
            waitlist::whole_day,
            pickup_windows::store_day_id,
        ))
        .first(tx.conn())
        .optional()?;
    let Some((person_id, true, store_day_id)) = found else {
        return Ok(0);
    };
    diesel::delete(
        waitlist::table
            .filter(waitlist::person_id.eq(person_id))
            .filter(waitlist::whole_day.eq(true))
            .filter(waitlist::offer_id.is_null())
            .filter(waitlist::id.ne(place))
            .filter(
                waitlist::window_id.eq_any(
                    pickup_windows::table
                        .filter(pickup_windows::store_day_id.eq(store_day_id))
                        .select(pickup_windows::id),
                ),
            ),
    )
    .execute(tx.conn())
}

/// How many wait in `window_id`'s line before the place `id`.
fn ahead_of(conn: &mut DbConnection, window_id: i64, id: i64) -> QueryResult<i64> {
    waitlist::table
        .filter(waitlist::window_id.eq(window_id))
        .filter(waitlist::offer_id.is_null())
        .filter(waitlist::id.lt(id))
        .count()
        .get_result(conn)
}

/// Takes `person`'s place out of `window_id`'s line, if `user_id` queued
/// them there and no place is held for them (an offer is declined on its
/// reservation's page instead). Answers whether there was one.
pub fn leave(tx: &mut Tx<'_>, user_id: i64, window_id: i64, person: ForWhom) -> QueryResult<bool> {
    let mine = waitlist::table
        .filter(waitlist::window_id.eq(window_id))
        .filter(waitlist::user_id.eq(user_id))
        .filter(waitlist::offer_id.is_null());
    let gone = match person {
        ForWhom::Own => {
            diesel::delete(mine.filter(waitlist::dependant_id.is_null())).execute(tx.conn())?
        }
        ForWhom::Dependant(id) => {
            diesel::delete(mine.filter(waitlist::dependant_id.eq(id))).execute(tx.conn())?
        }
    };
    Ok(gone > 0)
}

/// A place in line, as the citizen's pages show it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Waiting {
    #[diesel(sql_type = BigInt)]
    pub window_id: i64,
    #[diesel(sql_type = Integer)]
    pub quantity: i32,
    /// The link, for a dependant's place.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub dependant_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub dependant_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub store_name: String,
    #[diesel(sql_type = Text)]
    pub store_code: String,
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = Timestamp)]
    pub starts_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    pub ends_at: NaiveDateTime,
    /// 1 for the first in line.
    #[diesel(sql_type = BigInt)]
    pub position: i64,
}

impl Waiting {
    /// The `person` value that names whom this place is for.
    pub fn person(&self) -> String {
        self.dependant_id
            .map_or_else(|| "self".to_owned(), |id| id.to_string())
    }
}

/// `$1` the account, `$2` now.
const WAITING_SQL: &str = "\
SELECT e.window_id, e.quantity, e.dependant_id, d.name AS dependant_name, \
       s.name AS store_name, s.code AS store_code, w.day, w.starts_at, w.ends_at, \
       (SELECT COUNT(*) FROM waitlist f \
        WHERE f.window_id = e.window_id AND f.offer_id IS NULL AND f.id <= e.id) AS position \
FROM waitlist e \
JOIN pickup_windows w ON w.id = e.window_id \
JOIN stores s ON s.id = w.store_id \
LEFT JOIN dependants d ON d.id = e.dependant_id \
WHERE e.user_id = $1 AND e.offer_id IS NULL AND w.starts_at > $2 \
ORDER BY w.starts_at, e.id";

/// The places `user_id` holds in lines of windows not started at `now`,
/// soonest window first.
pub fn waiting(
    conn: &mut DbConnection,
    user_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Waiting>> {
    crate::on_each_backend!(conn, |c| {
        Statement::new(
            WAITING_SQL,
            vec![Arg::BigInt(user_id), Arg::Timestamp(now.naive_utc())],
        )
        .load(c)
    })
}
