//! The time, as the parts of the application that count windows of it see it:
//! the system clock in production, a clock a test moves by hand, so that a test
//! of a time window never depends on where the wall clock happens to be.
//!
//! Jobs that act on time (no-show expiry, release, reminders) do not trust one
//! instance's clock alone: [`Clock::trusted`] takes "now" from the database's
//! clock, which every instance shares, and refuses when this machine's clock
//! is more than [`MAX_SKEW`] away from it — a clock three days ahead would
//! otherwise expire every active reservation at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::db::{Db, database_now};

/// How far this machine's clock may be from the database's before the jobs
/// that act on time refuse to run and `/healthz` says `clock_skew`.
pub const MAX_SKEW: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: microseconds since the epoch, set by hand.
    manual: Option<Arc<AtomicI64>>,
    /// Microseconds the system clock is read ahead (or behind): a machine
    /// whose clock is wrong, as libfaketime makes one.
    wrong_by: i64,
}

/// This machine's clock and the database's differ by more than [`MAX_SKEW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this machine's clock is {seconds} s off the database's")]
pub struct Skewed {
    /// Machine minus database, in seconds.
    pub seconds: i64,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands at `at` until it is moved.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(at.timestamp_micros()))),
            wrong_by: 0,
        }
    }

    /// The system clock of a machine whose clock is `by` off: what a drill
    /// starts an instance with.
    pub fn wrong_by(by: TimeDelta) -> Clock {
        Clock {
            manual: None,
            wrong_by: by.num_microseconds().unwrap_or(i64::MAX),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now() + TimeDelta::microseconds(self.wrong_by),
            Some(micros) => {
                DateTime::from_timestamp_micros(micros.load(Ordering::SeqCst)).unwrap_or_default()
            }
        }
    }

    /// Moves a manual clock on; the system clock cannot be moved and ignores it.
    pub fn advance(&self, by: TimeDelta) {
        if let Some(micros) = &self.manual {
            micros.fetch_add(by.num_microseconds().unwrap_or(i64::MAX), Ordering::SeqCst);
        }
    }

    /// How far a test set this clock from the machine's on purpose: zero for
    /// the system clock, wrong or not.
    fn deliberate_offset(&self) -> TimeDelta {
        match &self.manual {
            None => TimeDelta::zero(),
            Some(_) => self.now() - Utc::now(),
        }
    }

    /// "Now" for a job that acts on time, given the database's clock
    /// (`database_now`, UTC): the database's time — moved as far as a test
    /// moved this clock on purpose — when this machine's clock agrees with it
    /// within [`MAX_SKEW`]; otherwise how far off it is.
    pub fn trusted(&self, database_now: NaiveDateTime) -> Result<DateTime<Utc>, Skewed> {
        let offset = self.deliberate_offset();
        let machine = self.now() - offset;
        check_skew(machine, database_now.and_utc())?;
        Ok(database_now.and_utc() + offset)
    }

    /// How far this machine's clock is off the database's, if beyond
    /// [`MAX_SKEW`].
    pub fn skew(&self, database_now: NaiveDateTime) -> Result<(), Skewed> {
        self.trusted(database_now).map(drop)
    }
}

/// "Now" for the job named `job` ([`Clock::trusted`]), or `None` — logged as
/// an error — when the database cannot be read or this machine's clock is
/// off the database's: the job then does nothing this time.
pub async fn now_for_job(db: &Db, clock: &Clock, job: &'static str) -> Option<DateTime<Utc>> {
    let database_now = match db.run(database_now).await {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(job, error = %e, "the database's clock could not be read; not running");
            return None;
        }
    };
    match clock.trusted(database_now) {
        Ok(now) => Some(now),
        Err(skew) => {
            tracing::error!(
                job,
                skew_seconds = skew.seconds,
                "this machine's clock is off the database's by more than a minute; not running \
                 (fix the clock: expiry, release and reminders act on time)"
            );
            None
        }
    }
}

/// Whether `machine` and `database` agree within [`MAX_SKEW`].
pub fn check_skew(machine: DateTime<Utc>, database: DateTime<Utc>) -> Result<(), Skewed> {
    let off = machine - database;
    if off.abs() > MAX_SKEW {
        Err(Skewed {
            seconds: off.num_seconds(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let start = DateTime::from_timestamp(1_583_971_200, 0).unwrap();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.clone().advance(TimeDelta::minutes(5));
        assert_eq!(clock.now(), start + TimeDelta::minutes(5));
    }

    #[test]
    fn the_system_clock_follows_the_wall_clock() {
        let before = Utc::now();
        let now = Clock::system().now();
        assert!(now >= before && now <= Utc::now());
    }

    #[test]
    fn clocks_more_than_a_minute_apart_are_skewed() {
        let db = DateTime::from_timestamp(1_583_971_200, 0).unwrap();
        assert_eq!(check_skew(db, db), Ok(()));
        assert_eq!(check_skew(db + TimeDelta::seconds(60), db), Ok(()));
        assert_eq!(check_skew(db - TimeDelta::seconds(60), db), Ok(()));
        assert_eq!(
            check_skew(db + TimeDelta::days(3), db),
            Err(Skewed { seconds: 259_200 })
        );
        assert_eq!(
            check_skew(db - TimeDelta::seconds(61), db),
            Err(Skewed { seconds: -61 })
        );
    }

    #[test]
    fn a_job_takes_the_databases_time_unless_this_machine_is_off_it() {
        let db = Utc::now().naive_utc();
        let now = Clock::system().trusted(db).unwrap();
        assert_eq!(now, db.and_utc(), "the database's time, not ours");
        let ahead = Clock::wrong_by(TimeDelta::days(3));
        let skew = ahead.trusted(db).unwrap_err();
        assert!((259_190..=259_210).contains(&skew.seconds), "{skew:?}");
        assert!(
            Clock::wrong_by(TimeDelta::seconds(-90))
                .trusted(db)
                .is_err()
        );
    }

    #[test]
    fn a_test_clock_moves_the_databases_time_as_far_as_it_was_moved() {
        // A test stands on a Tuesday long ago: its jobs see that Tuesday, and
        // the machine's clock still agrees with the database's.
        let tuesday = DateTime::from_timestamp(1_764_540_000, 0).unwrap();
        let clock = Clock::manual(tuesday);
        let at = clock.trusted(Utc::now().naive_utc()).unwrap();
        assert!((at - tuesday).abs() < TimeDelta::seconds(2), "{at}");
    }
}
