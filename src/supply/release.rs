//! Unbooked places go to the counter (SPEC §3, §6): when a window's booking
//! closes (`booking_close_minutes` before it ends), the capacity no
//! reservation holds leaves the window and becomes the store-day's walk-in
//! stock, so that masks nobody booked are sold, not kept on the shelf.
//!
//! What a release moves, in one transaction: the window's `capacity` (down to
//! what it holds), the store-day's `window_capacity` (the same, so
//! [`crate::stock::walk_in_left_sql`] grows by it), a ledger row `release` with
//! that capacity delta, and the store-day's `stock_changed_at`.
//!
//! Each window is released by one conditional update (`… WHERE capacity −
//! reserved − picked_up = free`, the places read a moment before) whose
//! affected-row count decides: a booking of the last place racing the release
//! either took it first (the release then moves nothing this time and the next
//! run moves what is left) or finds the window full; a place is booked or
//! released, never both. Two instances releasing at once cannot both move the
//! same places, and a second run finds nothing to do. Every instance runs it
//! once a minute, after the no-show expiry ([`crate::reservations::expiry`]);
//! `mask-reservation expire` runs it once; a walk-in sale runs it for its own
//! store-day first, so the counter can sell released places at once.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Timestamp};

use crate::db::schema::{pickup_windows, stock_ledger, store_days};
use crate::db::{AsRetryable, Db, DbError, Tx, is_retryable};
use crate::reservations::rules;

/// Windows released per transaction: short transactions beside the rush.
pub const BATCH: i64 = 500;

/// The ledger row's kind of a release.
pub const LEDGER_KIND: &str = "release";

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The store-day's `window_capacity` did not hold the window's places: the
    /// data was already inconsistent (`mask-reservation verify` says where).
    /// Nothing of the batch is written.
    #[error("window {window}: its store-day does not hold its capacity")]
    Inconsistent { window: i64 },
    #[error("database error")]
    Db(#[from] diesel::result::Error),
}

impl AsRetryable for ReleaseError {
    fn is_retryable(&self) -> bool {
        matches!(self, ReleaseError::Db(e) if is_retryable(e))
    }
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    store_day_id: i64,
    #[diesel(sql_type = Integer)]
    free: i32,
}

/// The windows whose booking closed (their end at or before `$1`) that still
/// have places free, at most `$2`. `capacity > reserved + picked_up` is
/// written as the partial index on such windows has it, so both databases
/// use it.
const DUE_SQL: &str = "SELECT id, store_day_id, capacity - reserved - picked_up AS free
     FROM pickup_windows
     WHERE capacity > reserved + picked_up AND ends_at <= $1
     ORDER BY ends_at, id
     LIMIT $2";

/// [`DUE_SQL`] for the windows of one store-day, `$1` (found by its own
/// index), with the end as `$2` and the limit as `$3`: SQLite numbers `$n`
/// placeholders in the order they appear.
const DUE_ON_DAY_SQL: &str = "SELECT id, store_day_id, capacity - reserved - picked_up AS free
     FROM pickup_windows
     WHERE store_day_id = $1 AND capacity > reserved + picked_up AND ends_at <= $2
     ORDER BY ends_at, id
     LIMIT $3";

/// Releases up to [`BATCH`] windows whose booking has closed at `now`, of
/// every store-day or only of `store_day`, and answers how many places this
/// call moved to the counter (what another instance moved first is not
/// counted).
pub fn release_due(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    close_minutes: i32,
    store_day: Option<i64>,
) -> Result<Released, ReleaseError> {
    // Windows ending at or before it have passed `rules::booking_closes_at`.
    let closed_by = rules::earliest_bookable_end(close_minutes, now);
    let due: Vec<Due> = match store_day {
        None => diesel::sql_query(DUE_SQL)
            .bind::<Timestamp, _>(closed_by)
            .bind::<BigInt, _>(BATCH)
            .load(tx.conn())?,
        Some(id) => diesel::sql_query(DUE_ON_DAY_SQL)
            .bind::<BigInt, _>(id)
            .bind::<Timestamp, _>(closed_by)
            .bind::<BigInt, _>(BATCH)
            .load(tx.conn())?,
    };
    let now = now.naive_utc();
    let mut released = Released {
        windows: 0,
        places: 0,
        looked_at: due.len(),
    };
    for w in &due {
        if release_one(tx, w, now)? {
            released.windows += 1;
            released.places += i64::from(w.free);
        }
    }
    Ok(released)
}

/// What one run of [`release_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Windows whose places this run moved.
    pub windows: usize,
    /// Places moved to the counter.
    pub places: i64,
    /// Windows it found due (a full batch means there may be more).
    pub looked_at: usize,
}

/// Moves one window's free places to the counter; `false` when they changed
/// since they were read (a booking, a cancel, another instance's release).
fn release_one(tx: &mut Tx<'_>, w: &Due, now: NaiveDateTime) -> Result<bool, ReleaseError> {
    let free = w.free;
    let won = diesel::update(
        pickup_windows::table
            .filter(pickup_windows::id.eq(w.id))
            .filter(
                (pickup_windows::capacity - pickup_windows::reserved - pickup_windows::picked_up)
                    .eq(free),
            ),
    )
    .set(pickup_windows::capacity.eq(pickup_windows::capacity - free))
    .execute(tx.conn())?;
    if won == 0 {
        return Ok(false);
    }
    let day = diesel::update(
        store_days::table
            .filter(store_days::id.eq(w.store_day_id))
            .filter(store_days::window_capacity.ge(free)),
    )
    .set((
        store_days::window_capacity.eq(store_days::window_capacity - free),
        store_days::stock_changed_at.eq(now),
    ))
    .execute(tx.conn())?;
    if day != 1 {
        return Err(ReleaseError::Inconsistent { window: w.id });
    }
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(w.store_day_id),
            stock_ledger::window_id.eq(w.id),
            stock_ledger::kind.eq(LEDGER_KIND),
            stock_ledger::capacity_delta.eq(-free),
            stock_ledger::created_at.eq(now),
        ))
        .execute(tx.conn())?;
    Ok(true)
}

/// Releases every window due at `now`, a batch per transaction, and answers
/// how many places this call moved. Stops after a batch that was not full.
pub async fn release_all(
    db: &Db,
    now: DateTime<Utc>,
    close_minutes: i32,
) -> Result<i64, DbError<ReleaseError>> {
    let mut places = 0;
    loop {
        let r = db
            .write(move |tx| release_due(tx, now, close_minutes, None))
            .await?;
        places += r.places;
        if i64::try_from(r.looked_at).unwrap_or(i64::MAX) < BATCH {
            return Ok(places);
        }
    }
}
