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
    pub login_per_ip: Limit,
    pub login_per_account: Limit,
    pub signup_per_ip: Limit,
    pub forgot_per_ip: Limit,
    pub forgot_per_account: Limit,
    pub resend_per_account: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            login_per_ip: Limit::per_minutes(30, 5),
            login_per_account: Limit::per_minutes(10, 15),
            signup_per_ip: Limit::per_minutes(10, 60),
            forgot_per_ip: Limit::per_minutes(10, 60),
            forgot_per_account: Limit::per_minutes(3, 60),
            resend_per_account: Limit::per_minutes(3, 60),
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
    let start = now - now.rem_euclid(window);
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

/// Removes windows that ended more than a day before `now`.
pub fn purge_old(tx: &mut Tx<'_>, now: DateTime<Utc>) -> QueryResult<usize> {
    let cutoff = now.timestamp() - 86_400;
    diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(cutoff)))
        .execute(tx.conn())
}
