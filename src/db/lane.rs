//! Which line a request's database work waits in.
//!
//! On launch morning the pharmacy counter must not wait behind the online
//! rush: in 2020 it was the counters that stood still. Every request's reads
//! (and, on PostgreSQL, its writes) wait for one of the pool's permits, first
//! come first served; during a rush a handover waited behind a hundred
//! bookings for one (its p99 was 415 ms on PostgreSQL). Now the requests of
//! the pharmacy's pages run in the [`Lane::Counter`] ([`counter`], put around
//! them by the server), and so does the open data's refresh, whose one read
//! every half second keeps the stock people see within a second of the
//! database (SPEC §6); the rest ([`Lane::Public`]) may hold all but
//! [`reserved_for_counter`] of the permits: a counter's work waits only for
//! other counters' while the crowd waits for its own. On SQLite, whose writes
//! go through the one writer, the counter's writes wait in a queue of their
//! own that the writer empties first (`writer::Kind::Counter`).

use std::future::Future;

tokio::task_local! {
    static LANE: Lane;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Citizens, visitors, administrators, the jobs: everyone but the counter.
    Public,
    /// A pharmacist at the counter.
    Counter,
}

/// Runs `f` (a request of the pharmacy's pages) in the counter's lane.
pub async fn counter<F: Future>(f: F) -> F::Output {
    LANE.scope(Lane::Counter, f).await
}

/// The lane of the running request: public outside [`counter`].
pub fn current() -> Lane {
    LANE.try_with(|lane| *lane).unwrap_or(Lane::Public)
}

/// Whether a request for `path` is the counter's: the pharmacy's pages.
pub fn is_counter_path(path: &str) -> bool {
    path == "/pharmacy" || path.starts_with("/pharmacy/")
}

/// Permits kept for the counter out of a pool of `pool_size`: an eighth, at
/// least one, and never the whole pool (a pool of one keeps none).
pub fn reserved_for_counter(pool_size: usize) -> usize {
    (pool_size / 8).max(1).min(pool_size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_keeps_an_eighth_of_the_pool_but_never_all_of_it() {
        assert_eq!(reserved_for_counter(16), 2);
        assert_eq!(reserved_for_counter(8), 1);
        assert_eq!(reserved_for_counter(2), 1);
        assert_eq!(reserved_for_counter(1), 0);
        assert_eq!(reserved_for_counter(100), 12);
    }

    #[test]
    fn only_the_pharmacy_s_pages_are_the_counter_s() {
        for path in ["/pharmacy", "/pharmacy/pickup", "/pharmacy/walk-in"] {
            assert!(is_counter_path(path), "{path}");
        }
        for path in ["/pharmacyx", "/", "/reservations", "/admin", "/stores/1"] {
            assert!(!is_counter_path(path), "{path}");
        }
    }

    #[tokio::test]
    async fn a_request_is_public_unless_run_at_the_counter() {
        assert_eq!(current(), Lane::Public);
        assert_eq!(counter(async { current() }).await, Lane::Counter);
        assert_eq!(current(), Lane::Public);
    }
}
