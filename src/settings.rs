//! The policy settings: the rows of the `settings` table, and the policy in
//! force kept in memory so that no page reads the table.
//!
//! Each instance holds the policy it last read and re-reads the table every few
//! seconds ([`REFRESH_EVERY`]), so several instances on one PostgreSQL agree
//! within that time; code that changes the settings calls [`PolicyCache::refresh`]
//! after its transaction, so its own instance applies them at once. The
//! table is a handful of rows: reading all of them is cheaper than anything
//! cleverer (a `MAX(updated_at)` check would also miss a change written by an
//! instance whose clock runs behind).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;
use diesel::prelude::*;

use crate::db::schema::settings;
use crate::db::{DbConnection, Tx};
use crate::policy::{LoadError, Policy};

/// How often each instance looks for a change made by another.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// Applies the TIMEZONE configuration to the policy unless an administrator has
/// since chosen a time zone in the settings page, which then wins.
pub fn apply_timezone(tx: &mut Tx<'_>, tz: Tz) -> QueryResult<()> {
    diesel::update(
        settings::table
            .filter(settings::key.eq("timezone"))
            .filter(settings::updated_by.is_null())
            .filter(settings::value.ne(tz.name())),
    )
    .set((
        settings::value.eq(tz.name()),
        settings::updated_at.eq(Utc::now().naive_utc()),
    ))
    .execute(tx.conn())
    .map(drop)
}

/// The policy in force, in memory. Empty until first read (the server starts
/// even while the database is down).
#[derive(Default)]
pub struct PolicyCache {
    loaded: RwLock<Option<Arc<Policy>>>,
}

impl PolicyCache {
    /// The policy as last read, if it has been.
    pub fn cached(&self) -> Option<Arc<Policy>> {
        self.loaded.read().ok().and_then(|p| p.clone())
    }

    /// Reads the policy from the table and keeps it. Returns the policy in force.
    pub fn refresh(&self, conn: &mut DbConnection) -> Result<Arc<Policy>, LoadError> {
        let read = Policy::load(conn)?;
        let mut guard = match self.loaded.write() {
            Ok(guard) => guard,
            // A panic while holding the lock left nothing half-written: the
            // value is replaced whole.
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_ref() {
            Some(current) if **current == read => Ok(current.clone()),
            _ => {
                let policy = Arc::new(read);
                *guard = Some(policy.clone());
                Ok(policy)
            }
        }
    }
}
