//! The policy settings: the rows of the `settings` table, and the policy in
//! force kept in memory so that no page reads the table.
//!
//! Each instance holds the policy it last read. The instance where an
//! administrator saves the settings replaces it at once; every instance also
//! re-checks the table every few seconds ([`REFRESH_EVERY`]), so several
//! instances on one PostgreSQL agree within that time. The check reads one
//! value (the latest `updated_at`) and re-reads the rows only when it moved.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::dsl::max;
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

/// The latest change to any setting.
fn last_change(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    settings::table
        .select(max(settings::updated_at))
        .first(conn)
}

struct Loaded {
    policy: Arc<Policy>,
    changed_at: Option<NaiveDateTime>,
}

/// The policy in force, in memory. Empty until first read (the server starts
/// even while the database is down).
#[derive(Default)]
pub struct PolicyCache {
    loaded: RwLock<Option<Loaded>>,
}

impl PolicyCache {
    /// The policy as last read, if it has been.
    pub fn cached(&self) -> Option<Arc<Policy>> {
        self.loaded
            .read()
            .ok()
            .and_then(|l| l.as_ref().map(|l| l.policy.clone()))
    }

    /// Brings the cache up to date with the table: re-reads the rows only when
    /// a setting changed since the last read. Returns the policy in force.
    pub fn refresh(&self, conn: &mut DbConnection) -> Result<Arc<Policy>, LoadError> {
        let changed_at = last_change(conn)?;
        if let Ok(guard) = self.loaded.read()
            && let Some(l) = guard.as_ref()
            && l.changed_at == changed_at
        {
            return Ok(l.policy.clone());
        }
        let policy = Arc::new(Policy::load(conn)?);
        if let Ok(mut guard) = self.loaded.write() {
            *guard = Some(Loaded {
                policy: policy.clone(),
                changed_at,
            });
        }
        Ok(policy)
    }
}
