//! No-shows (SPEC §3): an `active` reservation whose window ended more than
//! `pickup_grace_minutes` ago (past [`rules::pickup_deadline`], the moment the
//! counter stops handing it over) becomes `expired`, and gives back what it
//! held — the masks to the store-day's walk-in stock, the quota to its person.
//!
//! Each reservation is settled by one conditional update (`… WHERE status =
//! 'active'`) whose affected-row count decides: two instances running the job
//! at once, or a citizen cancelling at that moment, can never both win, and a
//! second run finds nothing left to do. Every instance runs it once a minute
//! ([`run_every`], which then releases closed windows' unbooked places,
//! [`release`]); `mask-reservation expire` runs both once.
//!
//! What an expiry moves, in the one transaction of its batch: the window's
//! `reserved` and `capacity` (−q: the masks leave the window), the store-day's
//! `reserved` and `window_capacity` (−q) and `no_show` (+q), so the masks
//! become walk-in stock; the person's quota (−q); a ledger row `expiry` with
//! the same deltas; and the store-day's `stock_changed_at`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Timestamp};

use crate::clock::Clock;
use crate::db::schema::{pickup_windows, reservations, stock_ledger, store_days};
use crate::db::{AsRetryable, Db, DbError, Tx, is_retryable};
use crate::quantity::Quantity;
use crate::quota;
use crate::reservations::rules;
use crate::reservations::status::ReservationStatus;
use crate::settings::PolicyCache;
use crate::supply::release;

/// Reservations settled per transaction: short transactions, so that bookings
/// and pickups never wait long behind a backlog of no-shows.
pub const BATCH: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    /// A counter did not hold what the reservation took: the data was already
    /// inconsistent (`mask-reservation verify` says where). Nothing of the
    /// batch is written.
    #[error("reservation {reservation}: {what} does not hold its quantity")]
    Inconsistent {
        reservation: i64,
        what: &'static str,
    },
    #[error("database error")]
    Db(#[from] diesel::result::Error),
}

impl AsRetryable for ExpiryError {
    fn is_retryable(&self) -> bool {
        matches!(self, ExpiryError::Db(e) if is_retryable(e))
    }
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    window_id: i64,
    #[diesel(sql_type = BigInt)]
    store_day_id: i64,
    #[diesel(sql_type = BigInt)]
    person_id: i64,
    #[diesel(sql_type = Date)]
    period_start: NaiveDate,
    #[diesel(sql_type = Integer)]
    quantity: i32,
}

/// The active reservations of windows that ended before `$1`, at most `$2`.
/// `w.reserved > 0` is written out (not bound) so that both databases can use
/// the partial index on windows that still hold reservations.
static DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.id, r.window_id, w.store_day_id, r.person_id, r.period_start, r.quantity
         FROM pickup_windows w
         JOIN reservations r ON r.window_id = w.id AND r.status = '{active}'
         WHERE w.reserved > 0 AND w.ends_at < $1
         ORDER BY w.ends_at, r.id
         LIMIT $2",
        active = ReservationStatus::Active.as_str(),
    )
});

/// Expires up to [`BATCH`] reservations due at `now` with a grace of
/// `grace_minutes`, and answers how many this call expired (those another
/// instance or a cancel settled first are not counted).
pub fn expire_due(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    grace_minutes: i32,
) -> Result<usize, ExpiryError> {
    let due: Vec<Due> = diesel::sql_query(DUE_SQL.as_str())
        // Windows ending before it have passed `rules::pickup_deadline`.
        .bind::<Timestamp, _>(rules::earliest_open_end(grace_minutes, now))
        .bind::<BigInt, _>(BATCH)
        .load(tx.conn())?;
    let now = now.naive_utc();
    let mut expired = 0;
    for r in &due {
        if expire_one(tx, r, now)? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Settles one reservation; `false` when it was no longer active.
fn expire_one(tx: &mut Tx<'_>, r: &Due, now: NaiveDateTime) -> Result<bool, ExpiryError> {
    let won = diesel::update(
        reservations::table
            .filter(reservations::id.eq(r.id))
            .filter(reservations::status.eq(ReservationStatus::Active)),
    )
    .set((
        reservations::status.eq(ReservationStatus::Expired),
        reservations::expired_at.eq(now),
        reservations::updated_at.eq(now),
    ))
    .execute(tx.conn())?;
    if won == 0 {
        return Ok(false);
    }
    let quantity = Quantity::from_stored(r.quantity)?;
    let q = quantity.get();
    let inconsistent = |what| ExpiryError::Inconsistent {
        reservation: r.id,
        what,
    };
    let window = diesel::update(
        pickup_windows::table
            .filter(pickup_windows::id.eq(r.window_id))
            .filter(pickup_windows::reserved.ge(q))
            .filter(pickup_windows::capacity.ge(q)),
    )
    .set((
        pickup_windows::reserved.eq(pickup_windows::reserved - q),
        pickup_windows::capacity.eq(pickup_windows::capacity - q),
    ))
    .execute(tx.conn())?;
    if window != 1 {
        return Err(inconsistent("its window"));
    }
    let day = diesel::update(
        store_days::table
            .filter(store_days::id.eq(r.store_day_id))
            .filter(store_days::reserved.ge(q))
            .filter(store_days::window_capacity.ge(q)),
    )
    .set((
        store_days::reserved.eq(store_days::reserved - q),
        store_days::window_capacity.eq(store_days::window_capacity - q),
        store_days::no_show.eq(store_days::no_show + q),
        store_days::stock_changed_at.eq(now),
    ))
    .execute(tx.conn())?;
    if day != 1 {
        return Err(inconsistent("its store-day"));
    }
    if !quota::give_back(tx, r.person_id, r.period_start, quantity)? {
        return Err(inconsistent("its person's quota usage"));
    }
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(r.store_day_id),
            stock_ledger::window_id.eq(r.window_id),
            stock_ledger::reservation_id.eq(r.id),
            stock_ledger::kind.eq("expiry"),
            stock_ledger::capacity_delta.eq(-q),
            stock_ledger::reserved_delta.eq(-q),
            stock_ledger::created_at.eq(now),
        ))
        .execute(tx.conn())?;
    Ok(true)
}

/// Expires everything due at `now`, a batch per transaction, and answers how
/// many this call expired. Stops after a batch that was not full: what
/// another instance took meanwhile is its count, not ours.
pub async fn expire_all(
    db: &Db,
    now: DateTime<Utc>,
    grace_minutes: i32,
) -> Result<usize, DbError<ExpiryError>> {
    let mut total = 0;
    loop {
        let n = db
            .write(move |tx| expire_due(tx, now, grace_minutes))
            .await?;
        total += n;
        if i64::try_from(n).unwrap_or(i64::MAX) < BATCH {
            return Ok(total);
        }
    }
}

/// How often every instance looks for no-shows.
pub const EVERY: Duration = Duration::from_secs(60);

/// The background job, every `every` ([`EVERY`] when serving), the first
/// time one period after the start, with the policy in force and the
/// database's clock ([`crate::clock::now_for_job`]: not at all while this
/// machine's clock is off it), until the task is aborted with the server:
/// [`expire_all`], then the release of closed
/// windows' unbooked places ([`release::release_all`]), so that a no-show's
/// masks and a closed window's places reach the counter in the same minute.
pub async fn run_every(every: Duration, db: Db, clock: Clock, policy: Arc<PolicyCache>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        run_once(&db, &clock, &policy).await;
    }
}

/// One round of the minute job: what it did, or `None` when it did not run
/// (no policy read yet, the database's clock unreadable, or this machine's
/// clock off it).
pub async fn run_once(db: &Db, clock: &Clock, policy: &PolicyCache) -> Option<Round> {
    let Some((grace, close)) = policy
        .cached()
        .map(|p| (p.pickup_grace_minutes, p.booking_close_minutes))
    else {
        // The policy has not been read yet (the database is down).
        return None;
    };
    let now = crate::clock::now_for_job(db, clock, "expiry and release").await?;
    let mut round = Round::default();
    match expire_all(db, now, grace).await {
        Ok(0) => {}
        Ok(n) => {
            round.expired = n;
            tracing::info!(expired = n, "no-show reservations expired");
        }
        // Counted in the line of the storage episode (db::storage).
        Err(DbError::StorageFull(_)) => {}
        Err(e) => tracing::warn!(error = %e, "no-show expiry failed; trying again in a minute"),
    }
    match release::release_all(db, now, close).await {
        Ok(0) => {}
        Ok(n) => {
            round.released = n;
            tracing::info!(places = n, "unbooked places released to the counter");
        }
        Err(DbError::StorageFull(_)) => {}
        Err(e) => tracing::warn!(error = %e, "release failed; trying again in a minute"),
    }
    Some(round)
}

/// What one round of the minute job moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Reservations expired as no-shows.
    pub expired: usize,
    /// Places released to the counter.
    pub released: i64,
}
