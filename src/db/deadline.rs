//! One deadline per request for the database.
//!
//! A request may wait for the database several times: for a permit and a
//! pooled connection for each read, for the writer (or a connection) for its
//! write. Each of those waits had its own timeout, so a logged-in page with the
//! database gone waited for the sum (the account's read, then the page's:
//! 10 s), and it was that sum, not `DB_TIMEOUT`, that decided when the 503
//! page came. Now the first wait of a request starts one clock of
//! `DB_TIMEOUT` ([`scoped`], put around every request by the server), and
//! every wait of that request ends when it runs out; a wait that starts after
//! it has run out fails at once, without touching the pool or the queue.
//!
//! The clock starts at the first wait, not when the request arrives: reading
//! a large upload off a slow link is bounded by the body timeout, not by the
//! database's. Work outside a request (the jobs, the command line) gives each
//! wait its own `DB_TIMEOUT`, as does work marked [`per_call`]: an
//! administrator's import, which sends its chunks one after another and whose
//! sender waits for the whole file.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static BUDGET: Budget;
}

struct Budget {
    /// Set by the first wait; `None` until then.
    deadline: Cell<Option<Instant>>,
    /// Each wait gets its own timeout.
    per_call: bool,
}

/// Runs `f` (a request) under one deadline for all its database waits.
pub async fn scoped<F: Future>(f: F) -> F::Output {
    BUDGET
        .scope(
            Budget {
                deadline: Cell::new(None),
                per_call: false,
            },
            f,
        )
        .await
}

/// Runs `f` with each database wait bounded on its own, even inside a
/// request: for bulk work whose caller waits for all of it.
pub async fn per_call<F: Future>(f: F) -> F::Output {
    BUDGET
        .scope(
            Budget {
                deadline: Cell::new(None),
                per_call: true,
            },
            f,
        )
        .await
}

/// When the wait that starts now must end: the request's deadline (starting
/// it, `timeout` from now, if this is its first wait), or `timeout` from now
/// outside a request.
pub(super) fn deadline(timeout: Duration) -> Instant {
    BUDGET
        .try_with(|budget| {
            if budget.per_call {
                return Instant::now() + timeout;
            }
            match budget.deadline.get() {
                Some(at) => at,
                None => {
                    let at = Instant::now() + timeout;
                    budget.deadline.set(Some(at));
                    at
                }
            }
        })
        .unwrap_or_else(|_| Instant::now() + timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);

    #[tokio::test]
    async fn every_wait_of_a_request_shares_the_deadline_its_first_wait_set() {
        scoped(async {
            let first = deadline(T);
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(deadline(T), first, "the same clock, not a new one");
        })
        .await;
    }

    #[tokio::test]
    async fn outside_a_request_and_in_bulk_work_each_wait_has_its_own() {
        let a = deadline(T);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(deadline(T) > a);
        scoped(async {
            let request = deadline(T);
            per_call(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert!(deadline(T) > request, "a bulk call starts its own");
            })
            .await;
            assert_eq!(deadline(T), request, "and the request's stays");
        })
        .await;
    }

    #[tokio::test]
    async fn two_requests_do_not_share_a_deadline() {
        let one = scoped(async { deadline(T) }).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let two = scoped(async { deadline(T) }).await;
        assert!(two > one);
    }
}
