//! The database: one connection type over SQLite and PostgreSQL, the pool,
//! the embedded migrations, and the one helper every write goes through.

pub mod deadline;
pub mod lane;
pub mod schema;
pub mod statement;
pub mod storage;
mod writer;

pub use storage::Storage;
use writer::Kind;
pub use writer::{IDLE_CHECKPOINT_EVERY, Kind as WriteKind, Writer};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::Semaphore;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Every connection the application holds: the backend is chosen at run time from
/// `DATABASE_URL`, and the query DSL works through it on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs one diesel statement on the concrete connection of each backend. The
/// statement is written once, in the DSL; each arm compiles it for its own
/// backend, so a feature stays free of backend-specific SQL. Two uses:
///
/// - the few statements the multi-backend connection cannot build: a
///   multi-row `INSERT` on SQLite, and `INSERT … ON CONFLICT` on either;
/// - the statements of the launch-morning rush (the store page, the booking,
///   the account check of every logged-in request). Through the derived
///   multi-backend connection, diesel writes a statement's whole SQL text
///   twice on every run, even when its prepared statement is cached (to ask
///   whether it may be cached, and again while collecting its binds): 7 % of
///   the server during the rush. On the concrete connection a DSL statement
///   is found in the cache by its type alone.
///
/// ```ignore
/// let n = on_each_backend!(tx.conn(), |c| diesel::insert_into(t).values(&rows).execute(c))?;
/// ```
#[macro_export]
macro_rules! on_each_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// Which engine a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How long an SQLite connection waits for a lock held by another before it
/// fails with "database is locked" (`PRAGMA busy_timeout`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `DATABASE_URL`. Parsed here, not by diesel, so that a mistyped
/// PostgreSQL URL is an error at start rather than a new SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseUrlError {
    #[error("DATABASE_URL is empty")]
    Empty,
    #[error("DATABASE_URL `sqlite://` needs a file path, e.g. sqlite://./data/mask-reservation.db")]
    MissingSqlitePath,
    #[error("DATABASE_URL must start with sqlite://, postgres:// or postgresql:// (got `{0}…`)")]
    UnknownScheme(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(DatabaseUrlError::Empty);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DatabaseUrlError::MissingSqlitePath);
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        let scheme: String = url.chars().take(12).collect();
        Err(DatabaseUrlError::UnknownScheme(scheme))
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with any password replaced, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact_password(url),
        }
    }

    /// Opens one connection, configured for this application.
    pub fn connect(&self) -> ConnectionResult<DbConnection> {
        match self {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ConnectionError::BadConnection(format!(
                            "cannot create {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
                let path = path.to_str().ok_or_else(|| {
                    ConnectionError::InvalidConnectionUrl("SQLite path is not UTF-8".into())
                })?;
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets readers run beside the one writer; the busy timeout makes
                // a writer wait for the lock instead of failing at once (set first:
                // switching to WAL itself needs a lock that a closing connection's
                // checkpoint may hold); foreign keys are off by default in SQLite.
                // The savepoint journal (one savepoint per job in the writer's
                // groups) stays in memory instead of spilling to a temporary
                // file after 64 KiB. The WAL is copied back into the database
                // every 10,000 pages (40 MiB) rather than SQLite's 1,000: the
                // pages a rush rewrites in every group (its windows, store-days
                // and the ends of its indexes) are copied once per checkpoint,
                // so fewer checkpoints copy far fewer pages (the checkpoints
                // went from 4.3 % of the server to 1.2 %). A WAL that a burst
                // grew beyond its limit is cut back to it when it starts again
                // (the writer also empties it when idle: `writer`).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA temp_store = MEMORY;
                     PRAGMA wal_autocheckpoint = 10000;
                     PRAGMA journal_size_limit = {};",
                    BUSY_TIMEOUT.as_millis(),
                    storage::WAL_LIMIT,
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                conn.batch_execute("SET TIME ZONE 'UTC'")
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Postgres(conn))
            }
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(_) => Backend::Sqlite,
            DbConnection::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration of this backend's tree.
    ///
    /// On SQLite they run with foreign keys off, as SQLite's own procedure
    /// for changing a table asks: a CHECK can only change by making the table
    /// again, and dropping the old one under foreign keys would delete (or
    /// refuse for) every row that refers to it. Before they are on again,
    /// `foreign_key_check` must find no row that refers to nothing.
    pub fn run_migrations(&mut self) -> Result<usize, MigrationError> {
        let failed = |e: &dyn std::fmt::Display| MigrationError(e.to_string());
        let applied = match self {
            DbConnection::Sqlite(c) => {
                c.batch_execute("PRAGMA foreign_keys = OFF")
                    .map_err(|e| failed(&e))?;
                let applied = c
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|done| done.len());
                let dangling = diesel::sql_query("PRAGMA foreign_key_check")
                    .load::<Dangling>(c)
                    .map_err(|e| failed(&e))?;
                c.batch_execute("PRAGMA foreign_keys = ON")
                    .map_err(|e| failed(&e))?;
                if let Some(first) = dangling.first() {
                    return Err(MigrationError(format!(
                        "{} rows refer to rows that are not there (the first in {})",
                        dangling.len(),
                        first.table
                    )));
                }
                applied
            }
            DbConnection::Postgres(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|done| done.len()),
        }
        .map_err(|e| failed(&*e))?;
        Ok(applied)
    }
}

/// A row of SQLite's `foreign_key_check`: one that refers to nothing.
#[derive(QueryableByName)]
struct Dangling {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table: String,
}

/// A migration that could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("migration failed: {0}")]
pub struct MigrationError(String);

/// How many times a write transaction is tried when the database asks for a retry
/// (a PostgreSQL serialization failure or deadlock, or SQLite still locked after its
/// busy timeout).
const WRITE_ATTEMPTS: u32 = 5;

/// The two forms of a write of several steps — a booking, a handover at the
/// counter: the same steps, in the same order, with the same answers, and one
/// table of scenarios per write that runs against every form on each backend,
/// so that the forms cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A statement per step inside a transaction: SQLite's form, and valid on
    /// PostgreSQL too.
    StepByStep,
    /// The reads in one statement and the writes in another that is a
    /// transaction of its own ([`write_statements`]): PostgreSQL's, where each
    /// statement is a round trip and a row locked stays locked until the
    /// commit.
    OneStatement,
}

impl Form {
    /// The form the pages use on `backend`.
    pub fn of(backend: Backend) -> Form {
        match backend {
            Backend::Postgres => Form::OneStatement,
            Backend::Sqlite => Form::StepByStep,
        }
    }

    /// The forms that run on `backend`: every one of them must pass the
    /// write's scenarios there.
    pub fn on(backend: Backend) -> &'static [Form] {
        match backend {
            Backend::Sqlite => &[Form::StepByStep],
            Backend::Postgres => &[Form::StepByStep, Form::OneStatement],
        }
    }
}

/// How a write on the pool runs: in a transaction ([`write_tx`]) or one
/// self-contained statement at a time ([`write_statements`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Transaction,
    Statements,
}

/// A write transaction in progress. Only [`write_tx`] and the SQLite writer
/// ([`Writer`], where it is a savepoint of a group) make one, so a function that
/// takes `&mut Tx` can only be called inside a transaction: every function that
/// writes takes one, and a write outside a transaction does not compile. This is
/// the one door of the write path; what stands behind it (one grouping writer on
/// SQLite, the pool on PostgreSQL) can change without touching the features.
pub struct Tx<'c> {
    conn: &'c mut DbConnection,
}

impl Tx<'_> {
    /// The connection, for the statements of this transaction.
    pub fn conn(&mut self) -> &mut DbConnection {
        self.conn
    }

    pub fn backend(&self) -> Backend {
        self.conn.backend()
    }
}

/// Runs `f` in one write transaction, the way each backend needs it: on SQLite as
/// `BEGIN IMMEDIATE`, so the write lock is taken up front and no reader can turn
/// into a failed writer halfway; on PostgreSQL as an ordinary transaction. Either
/// way a transient conflict is retried a bounded number of times. `f` may run more
/// than once and must not have effects outside the transaction.
pub fn write_tx<T, E>(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut Tx<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError> + AsRetryable,
{
    retried(|| try_write_tx(conn, &mut f))
}

/// Runs `f` in a savepoint of the transaction `tx`: an `Err` undoes what `f`
/// wrote and leaves the rest of the transaction as it was. For a step that
/// may be refused halfway (a booking whose quota took but whose window did
/// not) inside a larger write that goes on either way.
pub fn savepoint<T, E>(tx: &mut Tx<'_>, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
where
    E: From<DieselError>,
{
    tx.conn.transaction(|conn| f(&mut Tx { conn }))
}

/// Runs `f` with each of its statements committed on its own (PostgreSQL's
/// autocommit), retried as [`write_tx`] retries. Only for work whose every
/// write is one self-contained statement that changes all it means to or
/// nothing — the booking's one statement — so that the rows it locks are held
/// for that statement, not across round trips until a `COMMIT`. On SQLite,
/// where a statement is a function call in the process and the writer
/// groups transactions, it is [`write_tx`].
pub fn write_statements<T, E>(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut Tx<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError> + AsRetryable,
{
    match conn.backend() {
        Backend::Sqlite => write_tx(conn, f),
        Backend::Postgres => retried(|| f(&mut Tx { conn: &mut *conn })),
    }
}

/// Runs a write of several steps in one statement on PostgreSQL — one that,
/// when a step after the first writes nothing, calls
/// `statement_rolled_back(name, ARRAY[rows each step wrote])` (a function made
/// by a migration), whose error undoes every step of it. Without a
/// transaction around it ([`write_statements`]) the statement is a
/// transaction of its own; inside one it runs in a savepoint, so that its
/// error leaves the transaction usable for the reads that explain a refusal.
/// Answers the statement's row, or the rows each step wrote if it was undone.
pub fn rolled_back_steps<T, const N: usize>(
    tx: &mut Tx<'_>,
    name: &str,
    statement: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<Result<T, [i64; N]>> {
    let DbConnection::Postgres(conn) = tx.conn() else {
        return Err(DieselError::QueryBuilderError(
            "a one-statement write on an SQLite connection".into(),
        ));
    };
    let in_transaction = AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some();
    let result = if in_transaction {
        conn.transaction(statement)
    } else {
        statement(conn)
    };
    match result {
        Ok(row) => Ok(Ok(row)),
        Err(DieselError::DatabaseError(kind, info))
            if info.message() == format!("{name} rolled back") =>
        {
            match rolled_back_counts(info.details().unwrap_or_default()) {
                Some(counts) => Ok(Err(counts)),
                None => Err(DieselError::DatabaseError(kind, info)),
            }
        }
        Err(e) => Err(e),
    }
}

/// The rows each step wrote, from the detail of `statement_rolled_back`'s
/// error: `N` numbers separated by spaces.
fn rolled_back_counts<const N: usize>(detail: &str) -> Option<[i64; N]> {
    let counts: Vec<i64> = detail
        .split(' ')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    counts.try_into().ok()
}

/// Runs `attempt` until it succeeds, fails for good, or has been tried
/// [`WRITE_ATTEMPTS`] times.
fn retried<T, E: AsRetryable>(mut attempt: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut tried = 1;
    loop {
        match attempt() {
            Err(e) if tried < WRITE_ATTEMPTS && e.is_retryable() => {
                tried += 1;
                std::thread::sleep(Duration::from_millis(5 * u64::from(tried)));
            }
            other => return other,
        }
    }
}

fn try_write_tx<T, E>(
    conn: &mut DbConnection,
    f: &mut impl FnMut(&mut Tx<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(&mut Tx { conn }) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // The caller's error is what matters; a failed rollback leaves the
            // connection marked broken and the pool discards it.
            if let Err(rollback) =
                <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Errors that may say "try the transaction again".
pub trait AsRetryable {
    fn is_retryable(&self) -> bool;
}

impl AsRetryable for DieselError {
    fn is_retryable(&self) -> bool {
        is_retryable(self)
    }
}

pub fn is_retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            let msg = info.message();
            msg.contains("database is locked") || msg.contains("deadlock detected")
        }
        _ => false,
    }
}

/// A row a write transaction holds against concurrent ones, where two actions
/// must not both pass a check that reads other rows (a person's own account
/// and their guardian; a dependant's link and the reservations made under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// A `people` row.
    Person(i64),
    /// A `users` row.
    Account(i64),
    /// A `dependants` row.
    Dependant(i64),
    /// A `draws` row.
    Draw(i64),
}

/// How a [`Locked`] row is held: `Update` excludes every other holder,
/// `Share` only `Update` holders (several readers may share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Update,
    Share,
}

/// Locks `row` until the transaction ends. On PostgreSQL a `SELECT … FOR
/// UPDATE` or `FOR SHARE`: a second holder waits for the first to commit, and
/// its next statement sees what the first wrote (READ COMMITTED). On SQLite
/// nothing: a write transaction holds the database's one write lock from its
/// `BEGIN IMMEDIATE`, so no other write runs beside it. A row that does not
/// exist is no error: there is nothing to hold.
pub fn lock_row(tx: &mut Tx<'_>, row: Locked, mode: LockMode) -> QueryResult<()> {
    use statement::{Arg, Statement};
    let DbConnection::Postgres(conn) = tx.conn() else {
        return Ok(());
    };
    let (sql, id) = match (row, mode) {
        (Locked::Person(id), LockMode::Update) => {
            ("SELECT id FROM people WHERE id = $1 FOR UPDATE", id)
        }
        (Locked::Person(id), LockMode::Share) => {
            ("SELECT id FROM people WHERE id = $1 FOR SHARE", id)
        }
        (Locked::Account(id), LockMode::Update) => {
            ("SELECT id FROM users WHERE id = $1 FOR UPDATE", id)
        }
        (Locked::Account(id), LockMode::Share) => {
            ("SELECT id FROM users WHERE id = $1 FOR SHARE", id)
        }
        (Locked::Dependant(id), LockMode::Update) => {
            ("SELECT id FROM dependants WHERE id = $1 FOR UPDATE", id)
        }
        (Locked::Dependant(id), LockMode::Share) => {
            ("SELECT id FROM dependants WHERE id = $1 FOR SHARE", id)
        }
        (Locked::Draw(id), LockMode::Update) => {
            ("SELECT id FROM draws WHERE id = $1 FOR UPDATE", id)
        }
        (Locked::Draw(id), LockMode::Share) => ("SELECT id FROM draws WHERE id = $1 FOR SHARE", id),
    };
    Statement::new(sql, vec![Arg::BigInt(id)])
        .execute(conn)
        .map(drop)
}

/// r2d2 manager that opens connections with [`DatabaseUrl::connect`].
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    /// When a pooled connection was last found dead ([`Lost`]).
    lost: Arc<Lost>,
}

/// When a pooled connection was last found dead: for a while after, every
/// connection is asked whether it still answers before work is given to it,
/// since the others that sat idle in the pool through the same outage are
/// dead too, and each would otherwise fail one request after the database
/// is back.
#[derive(Debug, Default)]
struct Lost {
    /// Milliseconds after `since` of the last death seen; 0 for none.
    at: std::sync::atomic::AtomicU64,
    since: std::sync::OnceLock<Instant>,
}

impl Lost {
    /// How long after a death every checkout is checked: longer than an
    /// idle connection lives through a restart, far shorter than a day of
    /// round trips saved.
    const CHECK_FOR: Duration = Duration::from_secs(60);

    fn millis(&self) -> u64 {
        let since = *self.since.get_or_init(Instant::now);
        u64::try_from(since.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn seen(&self) {
        let now = self.millis();
        self.at.store(now, Ordering::Relaxed);
    }

    fn recent(&self) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        let window = u64::try_from(Lost::CHECK_FOR.as_millis()).unwrap_or(u64::MAX);
        at != 0 && self.millis().saturating_sub(at) < window
    }
}

/// Whether a PostgreSQL connection's server still answers it (one round
/// trip). An SQLite connection is a file the process holds: always.
fn answers(conn: &mut DbConnection) -> bool {
    !matches!(conn, DbConnection::Postgres(_)) || conn.batch_execute("SELECT 1").is_ok()
}

thread_local! {
    /// Set when work on a pooled connection failed as a connection whose
    /// server is gone fails ([`is_lost_connection`]); read by the pool's
    /// check of that connection, which runs on the same thread as the
    /// connection goes back (the end of [`Db::run`]'s blocking closure).
    /// Not set by any other error: a refused booking is an error too, and
    /// must not cost a round trip.
    static CONNECTION_LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a statement failed because the connection died under it: closed
/// while the statement ran, or already gone when it was sent ("no
/// connection to the server": it never left, so nothing of it happened).
/// Either way the database is unavailable, not the request wrong.
pub fn is_lost_connection(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        )
    )
}

/// [`is_lost_connection`] anywhere in `e`'s causes (the features' errors
/// keep the database's error as their source).
pub fn lost_connection_in_chain(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |&e| e.source())
        .filter_map(|cause| cause.downcast_ref::<DieselError>())
        .any(is_lost_connection)
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        self.url.connect()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))
    }

    /// Also a connection still inside a transaction: work that panicked
    /// between BEGIN and COMMIT unwinds past `write_tx`, and the next user of
    /// that connection would otherwise inherit its open transaction. And a
    /// PostgreSQL connection whose server has gone: once work on it failed
    /// as if it had ([`CONNECTION_LOST`]), it is asked whether it still
    /// answers, so that a connection cut in an outage is closed rather than
    /// handed out again — checked only then, since a check on every return
    /// is a round trip on every request.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        type Manager = <DbConnection as Connection>::TransactionManager;
        if CONNECTION_LOST.replace(false) && !answers(conn) {
            self.lost.seen();
            return true;
        }
        Manager::is_broken_transaction_manager(conn)
            || !matches!(
                Manager::transaction_manager_status_mut(conn).transaction_depth(),
                Ok(None)
            )
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Why a piece of database work did not produce its result.
#[derive(Debug, thiserror::Error)]
pub enum DbError<E> {
    /// No connection could be had in time: the database is down or saturated.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The work was refused whole for lack of room on the database's
    /// volume ([`storage::is_storage_full`]): nothing of it is on disk.
    #[error("no room left on the database's volume: {0}")]
    StorageFull(String),
    /// The work itself failed.
    #[error(transparent)]
    Work(E),
}

/// The application's handle on the database: a pool, and a semaphore of the same
/// size so that waiting for a connection happens on the async side, bounded by
/// a timeout, and never parks a blocking thread; on SQLite, also the one writer
/// every `Db::write` goes through.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    permits: Arc<Semaphore>,
    /// What the public lane may hold of `permits` at once: all but the
    /// counter's share ([`lane`]).
    public_permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    backend: Backend,
    writer: Option<Writer>,
    /// Whether the database has been prepared (migrated) for this instance.
    /// An instance started while the database was down serves — 503 for
    /// whatever needs the database — and prepares it when it answers; until
    /// then no request reaches a schema that may not be there yet.
    prepared: Arc<AtomicBool>,
    lost: Arc<Lost>,
    /// Room on the database's volume, and writes refused for lack of it.
    storage: Arc<Storage>,
}

pub struct PoolOptions {
    pub max_size: u32,
    pub acquire_timeout: Duration,
}

impl Db {
    /// Builds the pool lazily: a database that is down at start does not stop the
    /// server from answering `/healthz` with 503.
    pub fn new(url: &DatabaseUrl, options: PoolOptions) -> Self {
        let lost = Arc::new(Lost::default());
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(options.acquire_timeout)
            .build_unchecked(Manager {
                url: url.clone(),
                lost: lost.clone(),
            });
        let storage = Arc::new(Storage::new(url));
        Db {
            pool,
            permits: Arc::new(Semaphore::new(options.max_size as usize)),
            public_permits: Arc::new(Semaphore::new(
                options.max_size as usize - lane::reserved_for_counter(options.max_size as usize),
            )),
            acquire_timeout: options.acquire_timeout,
            backend: url.backend(),
            writer: start_writer(url, &storage),
            prepared: Arc::new(AtomicBool::new(true)),
            lost,
            storage,
        }
    }

    /// Room on the database's volume, and whether writes are being refused
    /// for lack of it.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Says whether the database is prepared ([`Db::prepared`]); every clone
    /// of this `Db` sees it.
    pub fn set_prepared(&self, prepared: bool) {
        self.prepared.store(prepared, Ordering::SeqCst);
    }

    /// Whether requests may use the database: `false` from a start with the
    /// database down until its migrations have been applied.
    pub fn prepared(&self) -> bool {
        self.prepared.load(Ordering::SeqCst)
    }

    fn not_prepared<E>() -> DbError<E> {
        DbError::Unavailable("the database is not prepared yet (it was down at start)".into())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs blocking database work on the blocking thread pool. Waiting for a
    /// permit and a connection, and the work itself, end at the request's
    /// deadline ([`deadline`]): past it the caller gets
    /// [`DbError::Unavailable`] (the 503 page), and work that had started
    /// finishes on its blocking thread, holding its permit, so the pool stays
    /// bounded.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, DbError<E>>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        if !self.prepared() {
            return Err(Db::not_prepared());
        }
        let deadline = deadline::deadline(self.acquire_timeout);
        if Instant::now() >= deadline {
            return Err(Db::out_of_time());
        }
        let pool = self.pool.clone();
        let permits = self.permits.clone();
        let public = (lane::current() == lane::Lane::Public).then(|| self.public_permits.clone());
        let lost = self.lost.clone();
        let work = async move {
            let closed = |_| DbError::Unavailable("pool closed".into());
            // The public lane's permit first: a crowd waits there, not in
            // front of the counter.
            let public = match public {
                Some(permits) => Some(permits.acquire_owned().await.map_err(closed)?),
                None => None,
            };
            let permit = permits.acquire_owned().await.map_err(closed)?;
            actix_web::web::block(move || {
                let _permits = (permit, public);
                let mut conn = live_connection(&pool, &lost, deadline)?;
                // Its caller has been answered 503 by now: a write must not
                // happen after that answer.
                if Instant::now() >= deadline {
                    return Err(Db::out_of_time());
                }
                CONNECTION_LOST.set(false);
                let result = f(&mut conn);
                if let Err(e) = &result
                    && (e as &dyn std::any::Any)
                        .downcast_ref::<DieselError>()
                        .is_some_and(is_lost_connection)
                {
                    CONNECTION_LOST.set(true);
                }
                drop(conn);
                result.map_err(DbError::Work)
            })
            .await
            .unwrap_or_else(|e| Err(DbError::Unavailable(format!("blocking pool: {e}"))))
        };
        tokio::time::timeout_at(deadline.into(), work)
            .await
            .unwrap_or_else(|_| Err(Db::out_of_time()))
    }

    fn out_of_time<E>() -> DbError<E> {
        DbError::Unavailable("the request's time for the database (DB_TIMEOUT) ran out".into())
    }

    /// Runs `f` as one write transaction: the door every write of a request goes
    /// through. `Ok` means committed, durably. On SQLite `f` goes to the one
    /// writer thread, which commits it with whatever else is queued, in a
    /// savepoint of its own ([`Writer`]); on PostgreSQL, where many connections
    /// writing at once is the point, it runs in [`write_tx`] on a pooled
    /// connection. Either way `f` may run more than once and must have no
    /// effect outside its transaction.
    ///
    /// The whole wait is bounded by the database timeout (`DB_TIMEOUT`): past
    /// it the caller gets [`DbError::Unavailable`] (a 503 page that asks to
    /// try again), and on SQLite a write that had not started by then is not
    /// run at all. One that had started commits all the same, as on the pool
    /// path, where a statement cannot be called back either: a resent form
    /// finds it by its request id.
    ///
    /// A write that fails for lack of room on the database's volume gets
    /// [`DbError::StorageFull`] (the 503 page that says storage is full),
    /// whatever error type its work has: the rule is [`storage::is_storage_full`],
    /// found anywhere in the error's causes, and [`Db::storage`] keeps the
    /// episode. That is why `E` must be an error whose causes can be walked.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        if !self.prepared() {
            return Err(Db::not_prepared());
        }
        let deadline = deadline::deadline(self.acquire_timeout);
        if Instant::now() >= deadline {
            return Err(Db::out_of_time());
        }
        let write = async {
            match &self.writer {
                Some(writer) => {
                    // The pharmacy counter's writes are taken first (`lane`).
                    let kind = match lane::current() {
                        lane::Lane::Counter => Kind::Counter,
                        lane::Lane::Public => Kind::Interactive,
                    };
                    writer.write(kind, deadline, Some(deadline), f).await
                }
                None => self.write_through_pool(f).await,
            }
        };
        tokio::time::timeout_at(deadline.into(), write)
            .await
            .unwrap_or_else(|_| Err(Db::out_of_time()))
    }

    /// One piece of a bulk change (an import's chunk): as [`Db::write`], but
    /// on SQLite committed in a group of its own, so that the requests queued
    /// meanwhile are not held until it is done, and waited for without the
    /// request deadline (its caller is an administrator's import that sends
    /// its pieces one after another).
    pub async fn write_bulk<T, E, F>(&self, f: F) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        if !self.prepared() {
            return Err(Db::not_prepared());
        }
        deadline::per_call(async {
            match &self.writer {
                Some(writer) => {
                    let queue_until = Instant::now() + self.acquire_timeout;
                    writer.write(Kind::Bulk, queue_until, None, f).await
                }
                None => self.write_through_pool(f).await,
            }
        })
        .await
    }

    /// As [`Db::write`], for work whose every write is one self-contained
    /// statement ([`write_statements`]): on PostgreSQL without an explicit
    /// transaction, so that the rows a statement locks are held for that
    /// statement only. While the volume is full it runs as [`Db::write`]
    /// does, where what a write changed can be told.
    pub async fn write_statements<T, E, F>(&self, f: F) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        if self.writer.is_some() || self.storage.is_full() {
            return self.write(f).await;
        }
        self.write_through_pool_as(Door::Statements, f).await
    }

    /// Runs `f` through the door `form` needs: [`Db::write_statements`] for
    /// the one-statement form, [`Db::write`] for the step-by-step form.
    pub async fn write_in<T, E, F>(&self, form: Form, f: F) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        match form {
            Form::OneStatement => self.write_statements(f).await,
            Form::StepByStep => self.write(f).await,
        }
    }

    /// A write in [`write_tx`] on a pooled connection (PostgreSQL), told to
    /// [`Storage`] as the SQLite writer tells it: an error for lack of room
    /// is answered [`DbError::StorageFull`] and counted; while writes are
    /// refused so, one that changed something ends the episode.
    async fn write_through_pool<T, E, F>(&self, f: F) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        self.write_through_pool_as(Door::Transaction, f).await
    }

    async fn write_through_pool_as<T, E, F>(&self, door: Door, mut f: F) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        // Only a transaction can tell what it wrote (`write_statements` takes
        // the transaction's door while refusing).
        let refusing = self.storage.is_full() && door == Door::Transaction;
        // Whether the work changed something (asked only while refusing).
        let changed = Arc::new(AtomicBool::new(false));
        let seen = changed.clone();
        let answer = self
            .run(move |conn| {
                let result = match door {
                    Door::Statements => write_statements(conn, &mut f),
                    Door::Transaction => write_tx(conn, |tx| {
                        if !refusing {
                            return f(tx);
                        }
                        let before = write_mark(tx)?;
                        let value = f(tx)?;
                        let after = write_mark(tx)?;
                        seen.store(after != before, Ordering::SeqCst);
                        Ok(value)
                    }),
                };
                if let Err(e) = &result
                    && lost_connection_in_chain(e)
                {
                    CONNECTION_LOST.set(true);
                }
                result
            })
            .await;
        match answer {
            Ok(value) => {
                if changed.load(Ordering::SeqCst) {
                    self.storage.recovered("a write committed");
                }
                Ok(value)
            }
            Err(DbError::Work(e)) => {
                match self.storage.full_error_in(&e).map(ToString::to_string) {
                    Some(why) => {
                        self.storage.refused(1, &why);
                        Err(DbError::StorageFull(why))
                    }
                    None => Err(DbError::Work(e)),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Writes waiting for the SQLite writer (0 on PostgreSQL).
    pub fn write_queue_len(&self) -> usize {
        self.writer.as_ref().map_or(0, Writer::queued)
    }

    /// How long the oldest write waiting for the SQLite writer has waited at
    /// most (`None` when none waits, and on PostgreSQL).
    pub fn write_queue_age(&self) -> Option<Duration> {
        self.writer.as_ref().and_then(Writer::queue_age)
    }

    /// A connection for synchronous callers (the command line, seeding, tests).
    pub fn get(&self) -> Result<PooledConn, r2d2::Error> {
        self.pool.get()
    }

    pub fn pool_state(&self) -> r2d2::State {
        self.pool.state()
    }
}

/// A pooled connection by `deadline`; for a while after one was found dead,
/// only one that answers (the dead are closed as they are found).
fn live_connection<E>(
    pool: &Pool,
    lost: &Lost,
    deadline: Instant,
) -> Result<PooledConn, DbError<E>> {
    loop {
        let mut conn = pool
            .get_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        if !lost.recent() || answers(&mut conn) {
            return Ok(conn);
        }
        // Closed by the pool's check as it goes back.
        CONNECTION_LOST.set(true);
    }
}

/// A mark of what a transaction has written so far: two marks differ when it
/// changed something between them. On SQLite the rows this connection has
/// changed; on PostgreSQL the transaction's id, which it is given with its
/// first change (0 before).
fn write_mark(tx: &mut Tx<'_>) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Mark {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        mark: i64,
    }
    let sql = match tx.backend() {
        Backend::Sqlite => "SELECT total_changes() AS mark",
        Backend::Postgres => {
            "SELECT CAST(COALESCE(txid_current_if_assigned(), 0) AS BIGINT) AS mark"
        }
    };
    diesel::sql_query(sql)
        .get_result::<Mark>(tx.conn())
        .map(|m| m.mark)
}

/// The SQLite writer, or none (PostgreSQL; or a thread that could not start,
/// in which case writes take the pool path, which is correct, only slower).
fn start_writer(url: &DatabaseUrl, storage: &Arc<Storage>) -> Option<Writer> {
    match url {
        DatabaseUrl::Sqlite(_) => match Writer::start(url.clone(), storage.clone()) {
            Ok(writer) => Some(writer),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the database writer; writing through the pool");
                None
            }
        },
        DatabaseUrl::Postgres(_) => None,
    }
}

/// Checks that the database answers a read of the application's own data. Only
/// a read: on SQLite under WAL it never waits for the writer, so a long write
/// (or a rush of them) is not mistaken for a database that is down.
pub fn health_check(conn: &mut DbConnection) -> QueryResult<()> {
    conn.batch_execute("SELECT 1 FROM settings LIMIT 1")
}

#[derive(QueryableByName)]
struct DatabaseNow {
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    now: chrono::NaiveDateTime,
}

/// Ids listed in one `IN (…)` of a read by ids ([`read_by_ids`]): well within
/// the bound parameters of one statement on SQLite (32,766) and PostgreSQL
/// (65,535), with room for a few more.
pub const IDS_PER_READ: usize = 5_000;

/// The rows `read` answers for `ids`, asked [`IDS_PER_READ`] ids at a time.
pub fn read_by_ids<I, T>(
    ids: &[I],
    mut read: impl FnMut(&[I]) -> QueryResult<Vec<T>>,
) -> QueryResult<Vec<T>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_READ) {
        rows.extend(read(chunk)?);
    }
    Ok(rows)
}

/// The database's clock, in UTC: the one time every instance shares, which
/// the jobs that act on time take "now" from ([`crate::clock::Clock::trusted`]).
/// On SQLite it is this machine's clock, read by SQLite; on PostgreSQL the
/// server's.
pub fn database_now(conn: &mut DbConnection) -> QueryResult<chrono::NaiveDateTime> {
    let sql = match conn.backend() {
        Backend::Sqlite => "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now",
        Backend::Postgres => {
            "SELECT CAST(statement_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP) AS now"
        }
    };
    diesel::sql_query(sql)
        .get_result::<DatabaseNow>(conn)
        .map(|r| r.now)
}

/// [`health_check`] on a connection of its own, outside the pool: tells a
/// database that answers but whose pool is all in use from one that is gone.
pub fn health_check_fresh(
    url: &DatabaseUrl,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = url.connect()?;
    Ok(health_check(&mut conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_by_ids_asks_for_each_id_once_a_statements_worth_at_a_time() {
        let ids: Vec<usize> = (0..2 * IDS_PER_READ + 1).collect();
        let mut asked = Vec::new();
        let rows = read_by_ids(&ids, |chunk| {
            asked.push(chunk.len());
            Ok(chunk.to_vec())
        })
        .unwrap();
        assert_eq!(asked, [IDS_PER_READ, IDS_PER_READ, 1]);
        assert_eq!(rows, ids);
        let none: QueryResult<Vec<i64>> = read_by_ids(&[], |_: &[i64]| unreachable!("no ids"));
        assert_eq!(none.unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn the_rows_each_step_wrote_are_read_from_a_rolled_back_statements_detail() {
        assert_eq!(rolled_back_counts::<4>("1 1 0 0"), Some([1, 1, 0, 0]));
        assert_eq!(
            rolled_back_counts::<6>("1 0 0 0 0 0"),
            Some([1, 0, 0, 0, 0, 0])
        );
        for detail in ["", "1 1 0", "1 1 0 0 0", "1 x 0 0"] {
            assert_eq!(rolled_back_counts::<4>(detail), None, "{detail:?}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("booking failed")]
    struct Wrapped(#[source] DieselError);

    #[test]
    fn a_connection_gone_is_told_from_every_other_error_also_inside_a_feature_error() {
        let lost = |kind| DieselError::DatabaseError(kind, Box::new(String::from("gone")));
        assert!(is_lost_connection(&lost(
            DatabaseErrorKind::ClosedConnection
        )));
        assert!(is_lost_connection(&lost(
            DatabaseErrorKind::UnableToSendCommand
        )));
        assert!(!is_lost_connection(&lost(
            DatabaseErrorKind::UniqueViolation
        )));
        assert!(!is_lost_connection(&DieselError::NotFound));
        assert!(lost_connection_in_chain(&Wrapped(lost(
            DatabaseErrorKind::UnableToSendCommand
        ))));
        assert!(!lost_connection_in_chain(&Wrapped(DieselError::NotFound)));
    }

    fn select_one(conn: &mut DbConnection) -> QueryResult<usize> {
        diesel::sql_query("SELECT 1").execute(conn)
    }

    fn out_of_time<T>(answer: &Result<T, DbError<DieselError>>) -> bool {
        matches!(answer, Err(DbError::Unavailable(why)) if why.contains("DB_TIMEOUT"))
    }

    /// A request that spent its time waiting for a connection gets no second
    /// wait: its next read fails at once, even with a connection free by
    /// then; a new request has its own time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_whose_time_ran_out_waits_no_more_even_when_a_connection_frees() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db"));
        let db = Db::new(
            &url,
            PoolOptions {
                max_size: 1,
                acquire_timeout: Duration::from_millis(300),
            },
        );
        // The one connection, held until `free` is used.
        let (free, held) = std::sync::mpsc::channel::<()>();
        let (running, is_running) = tokio::sync::oneshot::channel();
        let holder = db.clone();
        let holding = tokio::spawn(deadline::per_call(async move {
            holder
                .run(move |_conn| {
                    let _ = running.send(());
                    let _ = held.recv();
                    Ok::<_, DieselError>(())
                })
                .await
        }));
        is_running.await.unwrap();
        deadline::scoped(async {
            let first = db.run(select_one).await;
            assert!(out_of_time(&first), "{:?}", first.err());
            free.send(()).unwrap();
            let _ = holding.await;
            let second = db.run(select_one).await;
            assert!(out_of_time(&second), "{:?}", second.err());
            let write = db
                .write(|tx| diesel::sql_query("CREATE TABLE t (x)").execute(tx.conn()))
                .await;
            assert!(out_of_time(&write), "nor a write");
        })
        .await;
        let mut conn = db.get().unwrap();
        assert!(
            diesel::sql_query("SELECT x FROM t")
                .execute(&mut conn)
                .is_err(),
            "the refused write did not happen"
        );
        drop(conn);
        let next = deadline::scoped(db.run(select_one)).await;
        assert!(
            next.is_ok(),
            "a new request has its own time: {:?}",
            next.err()
        );
    }

    #[derive(QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }

    /// `.cargo/config.toml` gives the bundled SQLite these options; a build
    /// without them is measurably slower (a statement with `LIMIT ?` planned
    /// anew on every run, a global mutex around every allocation, a mutex
    /// around every call into a connection).
    #[test]
    fn the_bundled_sqlite_is_built_with_the_options_the_rush_needs() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = DatabaseUrl::Sqlite(dir.path().join("o.db"))
            .connect()
            .unwrap();
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        for wanted in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0", "THREADSAFE=2"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "SQLite was built without {wanted}: {options:?}"
            );
        }
    }

    #[derive(QueryableByName)]
    struct Limit {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        journal_size_limit: i64,
    }

    #[test]
    fn an_sqlite_connection_bounds_its_wal() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = DatabaseUrl::Sqlite(dir.path().join("l.db"))
            .connect()
            .unwrap();
        let limit = diesel::sql_query("PRAGMA journal_size_limit")
            .get_result::<Limit>(&mut conn)
            .unwrap()
            .journal_size_limit;
        assert_eq!(u64::try_from(limit).unwrap(), storage::WAL_LIMIT);
    }

    #[test]
    fn sqlite_url_gives_its_path() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/x.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("./data/x.db")))
        );
    }

    #[test]
    fn both_postgres_schemes_are_accepted() {
        for url in ["postgres://u@h/db", "postgresql://u@h/db"] {
            assert_eq!(
                DatabaseUrl::parse(url),
                Ok(DatabaseUrl::Postgres(url.into()))
            );
        }
    }

    #[test]
    fn a_mistyped_scheme_is_refused_rather_than_taken_as_a_file() {
        assert!(matches!(
            DatabaseUrl::parse("postgress://u@h/db"),
            Err(DatabaseUrlError::UnknownScheme(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("./data/x.db"),
            Err(DatabaseUrlError::UnknownScheme(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Err(DatabaseUrlError::MissingSqlitePath)
        );
        assert_eq!(DatabaseUrl::parse("  "), Err(DatabaseUrlError::Empty));
    }

    #[test]
    fn passwords_are_redacted_for_logs() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/masks").unwrap();
        assert_eq!(url.redacted(), "postgres://app:***@db:5432/masks");
    }
}
