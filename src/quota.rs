//! The per-person quota counter (SPEC §3, invariant 2): masks a person has
//! reserved, picked up or bought in one period, raised and lowered only by the
//! statements here, each a single conditional write whose affected-row count is
//! the answer. Booking, cancelling, expiry and walk-in sales all go through it,
//! in their own transactions. What they move is a [`Quantity`], never zero or
//! less: a take cannot lower the usage, nor a give-back raise it.

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::schema::quota_usage;
use crate::db::statement::{Arg, Statement};
use crate::db::{DbConnection, Tx};
use crate::quantity::Quantity;

/// Taking more than the quota allows; `left` is what the person may still take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub left: i32,
}

/// Adds `quantity` to the person's usage in the period starting `period_start`
/// if it stays within `quota`; otherwise changes nothing and says how much is
/// left. One statement: an insert of the first use, or an update of the row
/// under the condition — on PostgreSQL a concurrent take of the same row waits
/// for this transaction and then sees its result, on SQLite writers are
/// serialised, so two takes can never both pass the check.
pub fn take(
    tx: &mut Tx<'_>,
    person_id: i64,
    period_start: NaiveDate,
    quantity: Quantity,
    quota: i32,
) -> QueryResult<Result<(), QuotaExceeded>> {
    if try_take(tx, person_id, period_start, quantity, quota)? {
        return Ok(Ok(()));
    }
    Ok(Err(exceeded(tx, person_id, period_start, quota)?))
}

/// [`take`] without the explanation: whether it took.
pub fn try_take(
    tx: &mut Tx<'_>,
    person_id: i64,
    period_start: NaiveDate,
    quantity: Quantity,
    quota: i32,
) -> QueryResult<bool> {
    if quantity.get() > quota {
        return Ok(false);
    }
    let take = Statement::new(
        TAKE_SQL,
        vec![
            Arg::BigInt(person_id),
            Arg::Date(period_start),
            Arg::Integer(quantity.get()),
            Arg::Integer(quota),
        ],
    );
    Ok(take.run(tx.conn())? == 1)
}

/// The statement of [`take`]: `$1` the person, `$2` the period's start, `$3`
/// the quantity, `$4` the quota; one row written means taken. It must only run
/// when the quantity is within the quota (a first use inserts `$3` without the
/// `WHERE`). Booking on PostgreSQL runs this same text as the first step of
/// its one data-modifying statement (`reservations::booking`), so the rule is
/// written once.
pub(crate) const TAKE_SQL: &str = "INSERT INTO quota_usage (person_id, period_start, used) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (person_id, period_start) \
     DO UPDATE SET used = quota_usage.used + excluded.used \
     WHERE quota_usage.used + excluded.used <= $4";

/// Why a take of the person's quota was refused: what is left of `quota` in
/// the period, as [`take`] answers it; for a take that was refused elsewhere
/// (booking on PostgreSQL).
pub fn exceeded(
    tx: &mut Tx<'_>,
    person_id: i64,
    period_start: NaiveDate,
    quota: i32,
) -> QueryResult<QuotaExceeded> {
    let used = used(tx.conn(), person_id, period_start)?;
    Ok(QuotaExceeded {
        left: left(quota, used),
    })
}

/// What a person who has `used` this much of a period's `quota` may still
/// take in it: the one place "left of the quota" is counted, for the refusal
/// and for every page that shows it.
pub fn left(quota: i32, used: i32) -> i32 {
    quota.saturating_sub(used).max(0)
}

/// Gives `quantity` back (a cancelled or expired reservation, an undone sale).
/// Answers whether the usage held that much: `false` means the counters were
/// already wrong, and the caller's transaction should not go on.
pub fn give_back(
    tx: &mut Tx<'_>,
    person_id: i64,
    period_start: NaiveDate,
    quantity: Quantity,
) -> QueryResult<bool> {
    let quantity = quantity.get();
    let changed = diesel::update(quota_usage::table.find((person_id, period_start)))
        .filter(quota_usage::used.ge(quantity))
        .set(quota_usage::used.eq(quota_usage::used - quantity))
        .execute(tx.conn())?;
    Ok(changed == 1)
}

/// What the person has used of the period starting `period_start`: reserved,
/// picked up and bought at a counter, together.
pub fn used(conn: &mut DbConnection, person_id: i64, period_start: NaiveDate) -> QueryResult<i32> {
    Ok(quota_usage::table
        .find((person_id, period_start))
        .select(quota_usage::used)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_left_is_the_quota_less_what_was_used_and_never_below_nothing() {
        assert_eq!(left(2, 0), 2);
        assert_eq!(left(2, 1), 1);
        assert_eq!(left(2, 2), 0);
        // A quota lowered below what was already used: nothing more.
        assert_eq!(left(2, 5), 0);
        assert_eq!(left(i32::MAX, i32::MIN + 1), i32::MAX);
    }
}
