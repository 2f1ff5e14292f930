//! Request limits shared by every app instance: a counter per key and fixed time
//! window in the database, raised by one conditional update, so concurrent
//! requests on any number of instances cannot pass the limit.

use actix_web::HttpRequest;
use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::DbConnection;
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

/// Counts one hit on `bucket`. Each statement is atomic on its own, so no
/// transaction is held: a PostgreSQL unique violation would abort one.
pub fn hit(conn: &mut DbConnection, bucket: &str, limit: Limit) -> QueryResult<Decision> {
    let now = Utc::now().timestamp();
    let window = limit.window_secs.max(1);
    let start = now - now.rem_euclid(window);
    let retry_after_secs = u64::try_from(start + window - now).unwrap_or(1).max(1);
    // Each pass that does not decide saw another request make progress; a
    // few passes always settle it.
    for _ in 0..4 {
        let raised = diesel::update(
            rate_limits::table
                .filter(rate_limits::bucket.eq(bucket))
                .filter(rate_limits::window_start.eq(start))
                .filter(rate_limits::hits.lt(limit.max)),
        )
        .set(rate_limits::hits.eq(rate_limits::hits + 1))
        .execute(conn)?;
        if raised == 1 {
            return Ok(Decision::Allowed);
        }
        // No room was made: either the window is full, or its row does not
        // exist yet, or another request created it since the update looked.
        let hits: Option<i32> = rate_limits::table
            .filter(rate_limits::bucket.eq(bucket))
            .filter(rate_limits::window_start.eq(start))
            .select(rate_limits::hits)
            .first(conn)
            .optional()?;
        match hits {
            Some(h) if h >= limit.max => return Ok(Decision::Limited { retry_after_secs }),
            Some(_) => continue,
            None if limit.max < 1 => return Ok(Decision::Limited { retry_after_secs }),
            None => {}
        }
        match diesel::insert_into(rate_limits::table)
            .values((
                rate_limits::bucket.eq(bucket),
                rate_limits::window_start.eq(start),
                rate_limits::hits.eq(1),
            ))
            .execute(conn)
        {
            Ok(_) => return Ok(Decision::Allowed),
            // Another request created the row first: count against it.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Decision::Limited { retry_after_secs })
}

/// Removes windows that ended more than a day ago.
pub fn purge_old(conn: &mut DbConnection) -> QueryResult<usize> {
    let cutoff = Utc::now().timestamp() - 86_400;
    diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(cutoff))).execute(conn)
}

/// The client address to limit by: the peer, or the left-most forwarded address
/// when the app is configured to sit behind a trusted proxy.
pub fn client_ip(req: &HttpRequest, trust_forwarded: bool) -> String {
    if trust_forwarded && let Some(ip) = req.connection_info().realip_remote_addr() {
        return ip.to_owned();
    }
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}
