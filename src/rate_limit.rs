//! Request limits shared by every app instance: a counter per key and fixed time
//! window in the database, raised by one `INSERT … ON CONFLICT DO UPDATE … WHERE
//! hits < max RETURNING hits` statement. The statement is atomic on both
//! backends (PostgreSQL serialises the conflicting row, SQLite the whole
//! write), so concurrent requests on any number of instances cannot pass the
//! limit, and none is refused below it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use crate::db::Tx;
use crate::db::schema::rate_limits;

/// At most `max` hits per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: i32,
    pub window_secs: i64,
}

impl Limit {
    pub const fn per_minutes(max: i32, minutes: i64) -> Limit {
        Limit {
            max,
            window_secs: minutes * 60,
        }
    }
}

/// The limits the application applies; tests may loosen or tighten them.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Failed logins from one address, whatever the account: high, because a
    /// carrier's NAT puts many people behind one address.
    pub login_per_ip: Limit,
    /// Failed logins on one account from one address. Keyed by both, so that a
    /// stranger's failures elsewhere never lock the owner out.
    pub login_per_account_ip: Limit,
    /// Failed logins from a browser whose device cookie names the account: it
    /// replaces the two limits above, and is small, so that a stolen cookie is
    /// no unlimited oracle.
    pub login_per_device: Limit,
    /// Well-formed sign-ups from one address: high, for the same reason.
    pub signup_per_ip: Limit,
    /// Sign-ups naming one e-mail address: low, since each sends that address
    /// a mail (a verification, or a notice that someone tried).
    pub signup_per_email: Limit,
    /// Reset requests from one address: high, for the same reason.
    pub forgot_per_ip: Limit,
    pub forgot_per_account: Limit,
    pub resend_per_account: Limit,
    /// Walk-in look-ups (a national ID typed at the counter) by one pharmacist
    /// account: enough for a busy counter, too few to probe numbers with.
    pub walk_in_per_account: Limit,
    /// Pickup-code look-ups and handovers by one pharmacist account: two a
    /// second for a minute is more than a scanner at a queue needs, and far
    /// too few to find codes by guessing.
    pub pickup_per_account: Limit,
    /// Dependants a citizen tries to add (well-formed national IDs only): a
    /// family needs a handful, and a refusal tells that a number is taken,
    /// so the numbers one account may try are few.
    pub dependant_add_per_account: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            login_per_ip: Limit::per_minutes(200, 15),
            login_per_account_ip: Limit::per_minutes(10, 15),
            login_per_device: Limit::per_minutes(5, 15),
            signup_per_ip: Limit::per_minutes(300, 60),
            signup_per_email: Limit::per_minutes(3, 60),
            forgot_per_ip: Limit::per_minutes(100, 60),
            forgot_per_account: Limit::per_minutes(3, 60),
            resend_per_account: Limit::per_minutes(3, 60),
            walk_in_per_account: Limit::per_minutes(60, 10),
            pickup_per_account: Limit::per_minutes(120, 1),
            dependant_add_per_account: Limit::per_minutes(10, 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over the limit; the window ends in this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

#[derive(QueryableByName)]
struct Hits {
    #[diesel(sql_type = Integer)]
    #[expect(dead_code, reason = "only whether a row comes back is read")]
    hits: i32,
}

/// Counts one hit on `bucket` at `now`. The hit is counted only while the window
/// has room: a row comes back when it was, none when the window is full.
pub fn hit(
    tx: &mut Tx<'_>,
    bucket: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    let now = now.timestamp();
    let window = limit.window_secs.max(1);
    let start = window_start(limit, now);
    let retry_after_secs = u64::try_from(start + window - now).unwrap_or(1).max(1);
    if limit.max < 1 {
        return Ok(Decision::Limited { retry_after_secs });
    }
    // `$n` placeholders bind by position on both backends (SQLite reads `$1` as
    // a named parameter numbered in order of appearance).
    let counted: Vec<Hits> = diesel::sql_query(
        "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1)
         ON CONFLICT (bucket, window_start)
         DO UPDATE SET hits = rate_limits.hits + 1 WHERE rate_limits.hits < $3
         RETURNING hits",
    )
    .bind::<Text, _>(bucket)
    .bind::<BigInt, _>(start)
    .bind::<Integer, _>(limit.max)
    .load(tx.conn())?;
    Ok(if counted.is_empty() {
        Decision::Limited { retry_after_secs }
    } else {
        Decision::Allowed
    })
}

/// The start (Unix seconds) of the window of `limit` that holds `now`.
fn window_start(limit: Limit, now: i64) -> i64 {
    now - now.rem_euclid(limit.window_secs.max(1))
}

/// Counts one hit on every bucket, or on none: when one is full, the hits
/// already counted here are taken back and the answer is that bucket's wait.
/// Run in one transaction, so no other request sees the half-counted state.
pub fn hit_all(
    tx: &mut Tx<'_>,
    buckets: &[(String, Limit)],
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    for (i, (bucket, limit)) in buckets.iter().enumerate() {
        if let limited @ Decision::Limited { .. } = hit(tx, bucket, *limit, now)? {
            release_all(tx, &buckets[..i], now)?;
            return Ok(limited);
        }
    }
    Ok(Decision::Allowed)
}

/// Takes back one hit counted at `at` on every bucket: for an attempt that
/// turned out not to count (a login that succeeded). Counting first and taking
/// back later, rather than counting afterwards, keeps the limit exact under
/// concurrency: attempts in flight hold their place in the window.
pub fn release_all(
    tx: &mut Tx<'_>,
    buckets: &[(String, Limit)],
    at: DateTime<Utc>,
) -> QueryResult<()> {
    for (bucket, limit) in buckets {
        diesel::update(
            rate_limits::table
                .filter(rate_limits::bucket.eq(bucket))
                .filter(rate_limits::window_start.eq(window_start(*limit, at.timestamp())))
                .filter(rate_limits::hits.gt(0)),
        )
        .set(rate_limits::hits.eq(rate_limits::hits - 1))
        .execute(tx.conn())?;
    }
    Ok(())
}

/// Removes windows that ended more than a day before `now`.
pub fn purge_old(tx: &mut Tx<'_>, now: DateTime<Utc>) -> QueryResult<usize> {
    let cutoff = now.timestamp() - 86_400;
    diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(cutoff)))
        .execute(tx.conn())
}
