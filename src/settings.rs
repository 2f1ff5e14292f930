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

/// The settings rows as stored, with a version that changes whenever any row
/// does: the settings page carries it, so a save made from a page rendered
/// before someone else's save is noticed instead of silently undoing it.
pub struct Snapshot {
    pub values: std::collections::HashMap<String, String>,
    pub version: String,
}

/// Reads every settings row and its version.
pub fn snapshot(conn: &mut DbConnection) -> QueryResult<Snapshot> {
    use sha2::{Digest, Sha256};
    let mut rows: Vec<(String, String, chrono::NaiveDateTime, Option<i64>)> = settings::table
        .select((
            settings::key,
            settings::value,
            settings::updated_at,
            settings::updated_by,
        ))
        .load(conn)?;
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hash = Sha256::new();
    for (key, value, at, by) in &rows {
        hash.update(format!("{key}\u{0}{value}\u{0}{at:?}\u{0}{by:?}\n").as_bytes());
    }
    let version = hash
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let values = rows.into_iter().map(|(k, v, _, _)| (k, v)).collect();
    Ok(Snapshot { values, version })
}

/// Takes the write lock on every settings row before they are read for a
/// change. On PostgreSQL the no-op update locks the rows, so a concurrent save
/// waits for this one and then sees what it wrote; on SQLite the transaction
/// already holds the database's write lock and this changes nothing.
pub fn lock_all(tx: &mut Tx<'_>) -> QueryResult<()> {
    diesel::update(settings::table)
        .set(settings::updated_at.eq(settings::updated_at))
        .execute(tx.conn())
        .map(drop)
}

/// Writes one setting's new value, stamped with who changed it.
pub fn write_value(tx: &mut Tx<'_>, key: &str, value: &str, actor: i64) -> QueryResult<usize> {
    diesel::update(settings::table.filter(settings::key.eq(key)))
        .set((
            settings::value.eq(value),
            settings::updated_at.eq(Utc::now().naive_utc()),
            settings::updated_by.eq(Some(actor)),
        ))
        .execute(tx.conn())
}
