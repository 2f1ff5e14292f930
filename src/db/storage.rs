//! A full disk: what counts as one ([`is_storage_full`], the one rule), the
//! episode it starts, and the room on the database's volume.
//!
//! SQLite cannot grow its WAL or its database file on a volume with no room
//! left: it reports `SQLITE_FULL` ("database or disk is full"), or an I/O
//! error when what failed was not a plain write (growing the WAL index). A
//! write that fails so is refused whole — nothing of it is on disk — and
//! answered with the 503 page that says storage is full ([`DbError::StorageFull`](super::DbError::StorageFull)),
//! never a 500. PostgreSQL says "No space left on device" when it cannot
//! extend a table's file: the same rule answers it.
//!
//! An **episode** starts with the first write refused for lack of room: one
//! error line, and `/healthz` answers 503 `storage_full` until it ends. The
//! writes refused during it are counted, not logged. It ends with a write that
//! commits something, or (SQLite) with a checkpoint that empties the WAL on a
//! volume that has [`ROOM_TO_RESUME`] free again: one line again. The SQLite
//! writer tries that checkpoint right after a group refused for lack of room
//! and, while the episode lasts, every few seconds when idle, so freeing room
//! is enough: no restart.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use diesel::result::Error as DieselError;

use super::DatabaseUrl;

/// The WAL's size limit on SQLite (`PRAGMA journal_size_limit`), in bytes:
/// whenever a checkpoint lets the WAL start again from its beginning, a file
/// grown beyond this is cut back to it. Above the automatic checkpoint's
/// 10,000 pages (about 40 MiB), so that the rush's regular cycle reuses its
/// file instead of cutting and growing it; a WAL left bigger by a burst is
/// cut back to this. (When the writer is idle it empties the WAL altogether.)
pub const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// Start-up warns when the database's volume has less room than this many
/// times [`WAL_LIMIT`]: one WAL at its limit, and as much again for the
/// checkpoint that copies it back into the database file (a WAL of new pages
/// grows the database by about its own size). With less, one rush can fill
/// the volume before its WAL is folded back — the jam this module is about.
pub const ROOM_FACTOR: u64 = 2;

/// An I/O error on a volume with less than this free counts as a full disk:
/// SQLite says "disk I/O error", not "full", when growing its shared-memory
/// index (32 KiB at a time) finds no room.
pub const LOW_ROOM: u64 = 1024 * 1024;

/// A checkpoint that empties the WAL ends an episode only when the volume
/// then has this much free: room for a good number of the rush's groups, so
/// that the instance is not put back in rotation to fail again at once.
pub const ROOM_TO_RESUME: u64 = 4 * 1024 * 1024;

/// Whether `e` says a write failed for lack of room on the database's volume.
/// `free_bytes` is asked only for an I/O error, which counts when the volume
/// has less than [`LOW_ROOM`] free (unknown room: not counted).
pub fn is_storage_full(e: &DieselError, free_bytes: impl FnOnce() -> Option<u64>) -> bool {
    match e {
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            if message.contains("database or disk is full")
                || message.contains("No space left on device")
            {
                return true;
            }
            message.contains("disk I/O error") && free_bytes().is_some_and(|free| free < LOW_ROOM)
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => {
            is_storage_full(commit_error, free_bytes)
        }
        _ => false,
    }
}

/// The database error that says there is no room, anywhere in `e`'s causes
/// (the features' errors keep the database's error as their source).
pub fn storage_full_in_chain<'e>(
    e: &'e (dyn StdError + 'static),
    free_bytes: impl Fn() -> Option<u64>,
) -> Option<&'e DieselError> {
    std::iter::successors(Some(e), |&e| e.source())
        .filter_map(|cause| cause.downcast_ref::<DieselError>())
        .find(|d| is_storage_full(d, &free_bytes))
}

/// The room left on the volume that holds `path`, for an unprivileged
/// writer; `None` when it cannot be read.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    let block = if stat.f_frsize > 0 {
        stat.f_frsize
    } else {
        stat.f_bsize
    };
    Some(stat.f_bavail.saturating_mul(block))
}

/// The warning start-up gives when `free` bytes are less than
/// [`ROOM_FACTOR`] × [`WAL_LIMIT`].
pub fn room_warning(free: u64) -> Option<String> {
    let wanted = ROOM_FACTOR * WAL_LIMIT;
    (free < wanted).then(|| {
        format!(
            "the database's volume has {} MiB free, less than {ROOM_FACTOR} × the WAL's limit of {} MiB ({} MiB): a rush can fill it, and writes are then refused (503, storage full) until there is room",
            free / (1024 * 1024),
            WAL_LIMIT / (1024 * 1024),
            wanted / (1024 * 1024),
        )
    })
}

/// The database's storage as this instance sees it: where it is (SQLite), and
/// whether writes are being refused for lack of room (the episode). Shared by
/// every clone of the [`Db`](super::Db), the SQLite writer and `/healthz`.
#[derive(Debug)]
pub struct Storage {
    /// The SQLite database file; `None` on PostgreSQL, whose files are the
    /// server's.
    file: Option<PathBuf>,
    full: AtomicBool,
    episode: Mutex<Option<Episode>>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    refused: u64,
}

/// An episode in progress, for the operator's details of `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub seconds: u64,
    pub refused: u64,
}

impl Storage {
    pub fn new(url: &DatabaseUrl) -> Storage {
        Storage {
            file: match url {
                DatabaseUrl::Sqlite(path) => Some(path.clone()),
                DatabaseUrl::Postgres(_) => None,
            },
            full: AtomicBool::new(false),
            episode: Mutex::new(None),
        }
    }

    /// The directory that holds the database file (the volume to ask about).
    fn dir(&self) -> Option<&Path> {
        let file = self.file.as_deref()?;
        Some(
            file.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    }

    /// Room left on the database's volume (SQLite).
    pub fn free_bytes(&self) -> Option<u64> {
        free_bytes(self.dir()?)
    }

    /// The size of the WAL file (SQLite; 0 when there is none).
    pub fn wal_bytes(&self) -> Option<u64> {
        let file = self.file.as_deref()?;
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        match std::fs::metadata(PathBuf::from(wal)) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
            Err(_) => None,
        }
    }

    /// [`is_storage_full`] with this database's volume.
    pub fn explains(&self, e: &DieselError) -> bool {
        is_storage_full(e, || self.free_bytes())
    }

    /// [`storage_full_in_chain`] with this database's volume.
    pub fn full_error_in<'e>(&self, e: &'e (dyn StdError + 'static)) -> Option<&'e DieselError> {
        storage_full_in_chain(e, || self.free_bytes())
    }

    /// Whether writes are being refused for lack of room.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// The episode in progress, if any.
    pub fn report(&self) -> Option<Report> {
        let episode = *self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        episode.map(|e| Report {
            seconds: e.since.elapsed().as_secs(),
            refused: e.refused,
        })
    }

    /// `writes` were refused for lack of room (`why`: the database's words).
    /// The first of an episode is logged; the others are counted.
    pub fn refused(&self, writes: u64, why: &str) {
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        match episode.as_mut() {
            Some(e) => e.refused += writes,
            None => {
                *episode = Some(Episode {
                    since: Instant::now(),
                    refused: writes,
                });
                self.full.store(true, Ordering::SeqCst);
                tracing::error!(
                    why,
                    free_bytes = self.free_bytes(),
                    wal_bytes = self.wal_bytes(),
                    "writes refused: no room left on the database's volume; answering 503 (storage full) until there is"
                );
            }
        }
    }

    /// Something was written again (`how`), or room was made: ends the
    /// episode, if one is on, with one line.
    pub fn recovered(&self, how: &str) {
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = episode.take() {
            self.full.store(false, Ordering::SeqCst);
            tracing::info!(
                how,
                refused = e.refused,
                seconds = e.since.elapsed().as_secs(),
                free_bytes = self.free_bytes(),
                "writes succeed again: the database's volume has room"
            );
        }
    }

    /// After a checkpoint emptied the WAL: the episode ends if the volume now
    /// has [`ROOM_TO_RESUME`] free.
    pub fn wal_emptied(&self) {
        if self.is_full() && self.free_bytes().is_some_and(|free| free >= ROOM_TO_RESUME) {
            self.recovered("the WAL was checkpointed and the volume has room");
        }
    }

    /// Logs one warning when the database's volume has less room than
    /// [`room_warning`] asks for (SQLite).
    pub fn warn_if_little_room(&self) {
        if let Some(warning) = self.free_bytes().and_then(room_warning) {
            tracing::warn!(path = ?self.file, "{warning}");
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::DatabaseErrorKind;

    use super::*;

    fn db_error(message: &str) -> DieselError {
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
    }

    fn never() -> Option<u64> {
        panic!("the volume is asked only about an I/O error")
    }

    #[test]
    fn sqlite_full_and_an_extended_file_without_room_count_whatever_the_room() {
        assert!(is_storage_full(
            &db_error("database or disk is full"),
            never
        ));
        assert!(is_storage_full(
            &db_error("could not extend file \"base/16384/2619\": No space left on device"),
            never
        ));
    }

    #[test]
    fn an_io_error_counts_only_on_a_volume_with_little_room() {
        let io = db_error("disk I/O error");
        assert!(is_storage_full(&io, || Some(0)));
        assert!(is_storage_full(&io, || Some(LOW_ROOM - 1)));
        assert!(!is_storage_full(&io, || Some(LOW_ROOM)));
        assert!(!is_storage_full(&io, || None), "unknown room");
    }

    #[test]
    fn other_failures_are_not_a_full_disk() {
        for e in [
            db_error("database is locked"),
            DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("UNIQUE constraint failed".to_owned()),
            ),
            DieselError::NotFound,
        ] {
            assert!(!is_storage_full(&e, || Some(0)), "{e}");
        }
    }

    #[test]
    fn a_commit_that_failed_for_room_counts_even_when_its_rollback_failed_too() {
        let e = DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(db_error("cannot rollback - no transaction is active")),
            commit_error: Box::new(db_error("database or disk is full")),
        };
        assert!(is_storage_full(&e, never));
    }

    #[derive(Debug, thiserror::Error)]
    enum Feature {
        #[error("database error")]
        Db(#[from] DieselError),
    }

    #[test]
    fn a_full_disk_is_found_under_a_feature_error() {
        let e = Feature::Db(db_error("database or disk is full"));
        let found = storage_full_in_chain(&e, || None).map(ToString::to_string);
        assert_eq!(found.as_deref(), Some("database or disk is full"));
        let other = Feature::Db(db_error("database is locked"));
        assert!(storage_full_in_chain(&other, || Some(0)).is_none());
    }

    #[test]
    fn start_up_warns_below_twice_the_wal_limit() {
        assert!(room_warning(ROOM_FACTOR * WAL_LIMIT).is_none());
        let warning = room_warning(ROOM_FACTOR * WAL_LIMIT - 1).unwrap();
        assert!(warning.contains("127 MiB free"), "{warning}");
        assert!(warning.contains("64 MiB"), "{warning}");
        assert!(room_warning(0).is_some());
    }

    #[test]
    fn an_episode_counts_its_refusals_and_ends_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(&DatabaseUrl::Sqlite(dir.path().join("s.db")));
        assert!(!storage.is_full());
        assert_eq!(storage.report(), None);
        storage.refused(3, "database or disk is full");
        storage.refused(1, "database or disk is full");
        assert!(storage.is_full());
        assert_eq!(storage.report().map(|r| r.refused), Some(4));
        storage.recovered("a write committed");
        assert!(!storage.is_full());
        assert_eq!(storage.report(), None);
        // A second recovery has no episode to end.
        storage.recovered("a write committed");
        assert!(!storage.is_full());
    }

    #[test]
    fn the_volume_and_the_wal_of_an_sqlite_database_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.db");
        let storage = Storage::new(&DatabaseUrl::Sqlite(file.clone()));
        assert!(storage.free_bytes().is_some_and(|free| free > 0));
        assert_eq!(storage.wal_bytes(), Some(0), "no WAL yet");
        std::fs::write(dir.path().join("s.db-wal"), [0u8; 100]).unwrap();
        assert_eq!(storage.wal_bytes(), Some(100));
        let pg = Storage::new(&DatabaseUrl::Postgres("postgres://h/db".into()));
        assert_eq!((pg.free_bytes(), pg.wal_bytes()), (None, None));
    }

    #[test]
    fn an_emptied_wal_ends_an_episode_only_with_room_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(&DatabaseUrl::Sqlite(dir.path().join("s.db")));
        storage.refused(1, "database or disk is full");
        // A temporary directory has far more than 4 MiB free on any machine
        // this runs on.
        assert!(storage.free_bytes().unwrap() >= ROOM_TO_RESUME);
        storage.wal_emptied();
        assert!(!storage.is_full());
        // On PostgreSQL the room is unknown: only a write ends it.
        let pg = Storage::new(&DatabaseUrl::Postgres("postgres://h/db".into()));
        pg.refused(1, "No space left on device");
        pg.wal_emptied();
        assert!(pg.is_full());
    }
}
