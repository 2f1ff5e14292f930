//! The SQLite write path: one thread, owning one connection, that takes the
//! write jobs queued by [`Db::write`](super::Db::write) and commits them in
//! groups.
//!
//! SQLite has one write lock. A pool of writers spends the rush taking turns
//! at it, one fsync per request; one writer that runs whatever is queued
//! inside one `BEGIN IMMEDIATE … COMMIT` pays one lock and one fsync for the
//! whole group. Each job runs in a savepoint of its own, so a job that fails
//! rolls back only itself, and each caller hears back only after the COMMIT
//! that made its work durable (`synchronous = FULL`).
//!
//! What happens when something goes wrong, and why it is safe:
//!
//! - A job returns `Err`: its savepoint is rolled back, the others go on, and
//!   its caller gets the error after the group is settled. A retryable error
//!   (none is expected with one writer) reruns the job in a new savepoint, a
//!   bounded number of times, as [`write_tx`] does.
//! - A job panics: its caller gets [`DbError::Unavailable`] (what a panic in
//!   the blocking pool gives on the pool path). The connection's transaction
//!   state is then unknown, so the whole group is rolled back by closing the
//!   connection, and every other job of the group runs again alone.
//! - A savepoint statement fails, or the transaction depth is not what it
//!   should be after a job: same as a panic, without the error for anyone —
//!   the others run again, each in its own transaction.
//! - `COMMIT` fails and the rollback after it succeeds: nothing was committed
//!   (a committed transaction cannot be rolled back), so every job runs again
//!   alone and gets its own answer. If the rollback fails too, whether the
//!   group is on disk is unknown: rerunning could apply it twice, so every job
//!   gets `Unavailable`, as a caller of `write_tx` gets an error from a failed
//!   COMMIT today.
//! - `BEGIN IMMEDIATE` fails (the database is gone, or another connection —
//!   the command line — holds the lock past the busy timeout and the retries):
//!   every job gets `Unavailable`, which the pages answer with 503.
//! - A job fails for lack of room on the disk, or the `COMMIT` does
//!   ([`Storage`]'s rule, [`super::storage::is_storage_full`]): the whole
//!   group is rolled back (by closing the connection) and every job gets
//!   [`DbError::StorageFull`], the 503 page that says storage is full. Not run
//!   again alone: on a full disk that only fails again, one fsync at a time.
//!   The first refusal of an episode is logged, the others counted.
//! - Any failure but a job's own `Err` drops the connection; the next group
//!   opens a new one.
//!
//! The WAL is kept small, so that a full disk is rarer and freeing room is
//! enough to recover: when the queue is empty after a group, at most every
//! [`IDLE_CHECKPOINT_EVERY`], the writer runs `PRAGMA wal_checkpoint(TRUNCATE)`
//! (every page copied back into the database file, the WAL cut to nothing),
//! waiting at most [`CHECKPOINT_WAIT`] for readers of an older snapshot (else
//! it tries again next time). It does the same right after a group refused
//! for lack of room (at most every [`NO_ROOM_CHECKPOINT_EVERY`]) and, while
//! writes are being refused or the WAL is not empty, wakes up to do it when
//! no job comes: a checkpoint that empties the WAL on a volume with room again
//! ends the episode ([`Storage::wal_emptied`]), as does a group that commits
//! a change.
//!
//! Jobs may run more than once, as with [`write_tx`]: that is why `Db::write`
//! takes an `FnMut` that has no effect outside its transaction.
//!
//! Two more rules keep one caller from holding up the others:
//!
//! - A job whose caller has stopped waiting (its deadline passed, its request
//!   went away) before the job ran is not run: the caller was told the write
//!   did not happen, and it does not.
//! - A bulk job ([`Kind::Bulk`]: an administrator's import, one chunk of it)
//!   is committed in a group of its own, never with the rush's bookings, so a
//!   booking waits at most for one chunk, not for a whole file; the jobs
//!   queued behind it go in the next group, before the next chunk, which its
//!   caller sends only once this one is answered.
//!
//! - A job of the pharmacy counter ([`Kind::Counter`], `db::lane`) waits in a
//!   queue of its own, which the writer empties first, into a group of
//!   counter jobs only. In a rush a handover waits for the group being
//!   committed and then for its own small one, not behind every booking
//!   queued before it, nor for the commit of a hundred of them.
//!
//! The thread ends when every sender is gone (every clone of the `Db` dropped)
//! and the queue is drained; a job is never dropped unanswered by design, and
//! if it were (a bug), its caller's receiver would see the sender gone and
//! answer `Unavailable` rather than wait forever.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::storage::Storage;
use super::{
    AsRetryable, BUSY_TIMEOUT, DatabaseUrl, DbConnection, DbError, Tx, WRITE_ATTEMPTS, write_tx,
};

/// Most jobs committed together. Large enough that a rush is served in few
/// commits, small enough that one group's answers do not wait long for its
/// last job.
pub const MAX_GROUP: usize = 128;

/// Jobs that may wait for the writer. A full queue makes `Db::write` wait,
/// bounded by the acquire timeout, as a full pool does on the pool path.
pub const QUEUE: usize = 1024;

/// Counter jobs that may wait for the writer ([`Kind::Counter`]).
pub const COUNTER_QUEUE: usize = 64;

/// The idle writer empties the WAL at most this often.
pub const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// After a group refused for lack of room, the WAL is checkpointed at once,
/// but not more often than this: during a rush on a full disk the groups
/// fail quickly, and each checkpoint may copy a large WAL.
pub const NO_ROOM_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How long a checkpoint waits for readers of an older snapshot to finish
/// (the busy timeout while it runs). The queue waits meanwhile, so it is
/// short: a checkpoint that could not finish is tried again next time.
pub const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

type Reply<T, E> = oneshot::Sender<Result<T, DbError<E>>>;

/// The sending end of the writer's queue.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// The pharmacy counter's jobs, taken before `jobs`.
    counter_jobs: mpsc::Sender<Box<dyn Job>>,
    /// When the writer last took jobs off the queue: the jobs still queued
    /// have waited at most since then.
    took_at: Arc<TookAt>,
}

/// How a write is grouped with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request's write: committed together with whatever else is queued.
    Interactive,
    /// One piece of a bulk change: committed in a group of its own.
    Bulk,
    /// A request of the pharmacy counter: taken from a queue of its own
    /// before the others, and committed in a group of counter jobs.
    Counter,
}

/// A moment as milliseconds since the writer started.
struct TookAt {
    start: Instant,
    millis: AtomicU64,
}

impl TookAt {
    fn new() -> TookAt {
        TookAt {
            start: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    fn now(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(millis, Ordering::Relaxed);
    }

    fn since(&self) -> Duration {
        let then = Duration::from_millis(self.millis.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(then)
    }
}

impl Writer {
    /// Starts the writer thread for `url` (an SQLite database), which tells
    /// `storage` of writes refused for lack of room and of recoveries. It
    /// connects on its first job, so a database that is missing at start does
    /// not stop the server.
    pub fn start(url: DatabaseUrl, storage: Arc<Storage>) -> std::io::Result<Writer> {
        Writer::start_checkpointing_every(url, storage, IDLE_CHECKPOINT_EVERY)
    }

    /// [`Writer::start`], with the idle checkpoints at most every `every`.
    pub fn start_checkpointing_every(
        url: DatabaseUrl,
        storage: Arc<Storage>,
        every: Duration,
    ) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (counter_jobs, counter) = mpsc::channel(COUNTER_QUEUE);
        let took_at = Arc::new(TookAt::new());
        let took = took_at.clone();
        let queues = Queues { jobs: rx, counter };
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || serve(&url, queues, &took, &storage, every))?;
        Ok(Writer {
            jobs,
            counter_jobs,
            took_at,
        })
    }

    /// Queues `f` and waits for its answer, which comes after the commit of its
    /// group. Waiting for room in the queue ends at `queue_until`; a job with
    /// a `run_by` that has passed when its turn comes is not run (its caller
    /// was answered 503 at that moment), and neither is one whose caller gave
    /// up before it ran.
    pub async fn write<T, E, F>(
        &self,
        kind: Kind,
        queue_until: Instant,
        run_by: Option<Instant>,
        f: F,
    ) -> Result<T, DbError<E>>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            f,
            kind,
            run_by,
            kept: None,
            lost: None,
            reply,
        });
        let queue = match kind {
            Kind::Counter => &self.counter_jobs,
            Kind::Interactive | Kind::Bulk => &self.jobs,
        };
        match tokio::time::timeout_at(queue_until.into(), queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(DbError::Unavailable("the database writer stopped".into())),
            Err(_) => {
                return Err(DbError::Unavailable(
                    "timed out waiting for the database writer".into(),
                ));
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(DbError::Unavailable(
                "the database writer dropped the write".into(),
            ))
        })
    }

    /// Jobs waiting in the queue (not counting the group being committed).
    pub fn queued(&self) -> usize {
        let waiting = |q: &mpsc::Sender<Box<dyn Job>>| q.max_capacity() - q.capacity();
        waiting(&self.jobs) + waiting(&self.counter_jobs)
    }

    /// How long the oldest queued job has waited at most; `None` when nothing
    /// waits.
    pub fn queue_age(&self) -> Option<Duration> {
        (self.queued() > 0).then(|| self.took_at.since())
    }
}

/// What one run of a job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Done,
    Failed,
    Retry,
    /// Not run: its caller had stopped waiting.
    Abandoned,
    /// No result to give (the work panicked): the connection's state is unknown.
    Lost,
}

const PANICKED: &str = "the write panicked";
const ABANDONED: &str = "the caller stopped waiting (or its deadline passed) before the write ran";

/// A queued write with its result type erased: it runs the typed closure,
/// keeps the typed result, and delivers it when told to.
trait Job: Send {
    /// Runs the work once on `tx` (a savepoint of the group).
    fn run(&mut self, tx: &mut Tx<'_>) -> Step;
    /// Runs the work in a transaction of its own ([`write_tx`]). `Lost` says
    /// the connection must not be used again.
    fn run_alone(&mut self, conn: &mut DbConnection) -> Step;
    /// The work panicked: it is not run again.
    fn panicked(&self) -> bool;
    /// Committed in a group of its own.
    fn bulk(&self) -> bool;
    /// The pharmacy counter's: committed in a group of counter jobs only.
    fn counter(&self) -> bool;
    /// The database's words when the work failed for lack of room.
    fn no_room(&self, storage: &Storage) -> Option<String>;
    /// Delivers the kept result: only once it is committed (or was an error).
    /// An error for lack of room is delivered as `StorageFull`, and its words
    /// returned.
    fn answer(self: Box<Self>, storage: &Storage) -> Option<String>;
    /// Delivers `Unavailable` whatever the work did.
    fn fail(self: Box<Self>, why: &str);
    /// Delivers `StorageFull` whatever the work did.
    fn refuse(self: Box<Self>, why: &str);
}

struct TypedJob<T, E, F> {
    f: F,
    kind: Kind,
    /// Past this moment the job is not run: its caller has been answered.
    run_by: Option<Instant>,
    kept: Option<Result<T, E>>,
    /// Why there is no result to give.
    lost: Option<&'static str>,
    reply: Reply<T, E>,
}

impl<T, E, F> TypedJob<T, E, F>
where
    E: AsRetryable,
{
    /// Its caller has stopped waiting, or will have by the time it could be
    /// answered.
    fn abandoned(&self) -> bool {
        self.reply.is_closed() || self.run_by.is_some_and(|by| Instant::now() >= by)
    }

    fn keep(&mut self, outcome: std::thread::Result<Result<T, E>>) -> Step {
        match outcome {
            Ok(Ok(value)) => {
                self.kept = Some(Ok(value));
                Step::Done
            }
            Ok(Err(e)) => {
                let step = if e.is_retryable() {
                    Step::Retry
                } else {
                    Step::Failed
                };
                self.kept = Some(Err(e));
                step
            }
            Err(_) => {
                self.kept = None;
                self.lost = Some(PANICKED);
                Step::Lost
            }
        }
    }
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send,
    T: Send,
    E: From<DieselError> + AsRetryable + std::error::Error + Send + 'static,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> Step {
        if self.abandoned() {
            self.lost = Some(ABANDONED);
            return Step::Abandoned;
        }
        let f = &mut self.f;
        let outcome = catch_unwind(AssertUnwindSafe(|| f(tx)));
        self.keep(outcome)
    }

    fn run_alone(&mut self, conn: &mut DbConnection) -> Step {
        if self.abandoned() {
            self.kept = None;
            self.lost = Some(ABANDONED);
            return Step::Abandoned;
        }
        let f = &mut self.f;
        let outcome = catch_unwind(AssertUnwindSafe(|| write_tx(conn, &mut *f)));
        let step = self.keep(outcome);
        if step != Step::Lost && depth(conn).is_some() {
            // The work left a savepoint of its own open, so `write_tx`'s
            // COMMIT only released it: nothing is committed.
            self.kept = None;
            self.lost = Some("the write left its transaction open");
            return Step::Lost;
        }
        step
    }

    fn panicked(&self) -> bool {
        self.lost == Some(PANICKED)
    }

    fn bulk(&self) -> bool {
        self.kind == Kind::Bulk
    }

    fn counter(&self) -> bool {
        self.kind == Kind::Counter
    }

    fn no_room(&self, storage: &Storage) -> Option<String> {
        match &self.kept {
            Some(Err(e)) => storage.full_error_in(e).map(ToString::to_string),
            _ => None,
        }
    }

    fn answer(self: Box<Self>, storage: &Storage) -> Option<String> {
        if let Some(why) = self.no_room(storage) {
            let _ = self.reply.send(Err(DbError::StorageFull(why.clone())));
            return Some(why);
        }
        let result = match self.kept {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(DbError::Work(e)),
            None => Err(DbError::Unavailable(
                self.lost.unwrap_or("the write did not run").to_owned(),
            )),
        };
        // The caller may have gone (its request was dropped): the work is
        // committed all the same, as on the pool path.
        let _ = self.reply.send(result);
        None
    }

    fn fail(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(DbError::Unavailable(why.to_owned())));
    }

    fn refuse(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(DbError::StorageFull(why.to_owned())));
    }
}

/// The writer thread: takes what is queued, up to [`MAX_GROUP`], and settles
/// it — a bulk job alone — and ends when the queue is closed and empty.
/// Between groups it keeps the WAL small ([`Checkpoints`]).
fn serve(
    url: &DatabaseUrl,
    mut queues: Queues,
    took_at: &TookAt,
    storage: &Storage,
    every: Duration,
) {
    // The queue is tokio's: waiting on it with a deadline (to checkpoint
    // when no job comes) needs a runtime of this thread's own.
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| {
            tracing::warn!(error = %e, "the database writer checkpoints only after groups");
        })
        .ok();
    let mut conn: Option<DbConnection> = None;
    let mut wal = Checkpoints::new(every);
    // A bulk job met while a group was being filled: the next group.
    let mut next: Option<Box<dyn Job>> = None;
    loop {
        let first = match queues.counter.try_recv().ok().or_else(|| next.take()) {
            Some(job) => job,
            None => match queues.jobs.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    match wait(&mut queues, clock.as_ref(), wal.wake_in(storage.is_full())) {
                        Wait::Job(job) => job,
                        Wait::Closed => break,
                        Wait::Elapsed => {
                            wal.checkpoint(url, &mut conn, storage);
                            continue;
                        }
                    }
                }
            },
        };
        took_at.now();
        let mut group = Vec::with_capacity(MAX_GROUP);
        let alone = first.bulk();
        // A counter's group holds counter jobs only: small, so that its
        // commit is not a rush's worth of bookings away.
        let counter = first.counter();
        group.push(first);
        while !alone && group.len() < MAX_GROUP {
            let queue = if counter {
                &mut queues.counter
            } else {
                &mut queues.jobs
            };
            match queue.try_recv() {
                Ok(job) if job.bulk() => {
                    next = Some(job);
                    break;
                }
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // Every job catches its own panic; this one guards the writer's own
        // code so that a bug there costs one group (whose callers see their
        // reply dropped → Unavailable), not every later write.
        match catch_unwind(AssertUnwindSafe(|| settle(url, &mut conn, group, storage))) {
            Ok(settled) => {
                if settled.committed {
                    wal.committed();
                }
                let idle = next.is_none() && queues.is_empty();
                if (settled.no_room && wal.due_after_no_room()) || (idle && wal.due_when_idle()) {
                    wal.checkpoint(url, &mut conn, storage);
                }
            }
            Err(_) => {
                tracing::error!("the database writer panicked settling a group");
                conn = None;
            }
        }
    }
}

/// What the idle writer's wait ended with.
enum Wait {
    Job(Box<dyn Job>),
    /// No job came in time: a checkpoint is due.
    Elapsed,
    /// Every sender is gone and the queue is empty.
    Closed,
}

/// The writer's two queues: the counter's, taken first, and everyone else's.
struct Queues {
    jobs: mpsc::Receiver<Box<dyn Job>>,
    counter: mpsc::Receiver<Box<dyn Job>>,
}

impl Queues {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.counter.is_empty()
    }

    /// The next job of either queue, the counter's first; `None` once both
    /// are closed and empty.
    async fn recv(&mut self) -> Option<Box<dyn Job>> {
        tokio::select! {
            biased;
            Some(job) = self.counter.recv() => Some(job),
            job = self.jobs.recv() => job,
        }
    }
}

/// How often the writer looks at its queues when it has no clock to wait
/// with (its runtime could not be built).
const POLL_WITHOUT_CLOCK: Duration = Duration::from_millis(2);

/// Waits for the next job, at most `within` when it is given (and a clock is).
fn wait(
    queues: &mut Queues,
    clock: Option<&tokio::runtime::Runtime>,
    within: Option<Duration>,
) -> Wait {
    let job = match (clock, within) {
        // The timer is made inside the runtime, whose clock it needs.
        (Some(clock), Some(within)) => {
            match clock.block_on(async { tokio::time::timeout(within, queues.recv()).await }) {
                Ok(job) => job,
                Err(_) => return Wait::Elapsed,
            }
        }
        (Some(clock), None) => clock.block_on(queues.recv()),
        (None, _) => loop {
            if let Ok(job) = queues.counter.try_recv() {
                break Some(job);
            }
            match queues.jobs.try_recv() {
                Ok(job) => break Some(job),
                Err(TryRecvError::Disconnected) => break None,
                Err(TryRecvError::Empty) => std::thread::sleep(POLL_WITHOUT_CLOCK),
            }
        },
    };
    job.map_or(Wait::Closed, Wait::Job)
}

/// When the writer empties the WAL (`PRAGMA wal_checkpoint(TRUNCATE)`).
struct Checkpoints {
    /// Idle checkpoints at most this often.
    every: Duration,
    /// The last one tried.
    last: Option<Instant>,
    /// The last one emptied the WAL and no group has committed since.
    clean: bool,
    /// A failure was logged and no checkpoint has succeeded since.
    failing: bool,
}

impl Checkpoints {
    fn new(every: Duration) -> Checkpoints {
        Checkpoints {
            every,
            last: None,
            // Nothing to do before the first group: the writer connects on
            // its first job. A WAL left by an earlier run is emptied after
            // that first group.
            clean: true,
            failing: false,
        }
    }

    fn committed(&mut self) {
        self.clean = false;
    }

    fn since_last(&self) -> Option<Duration> {
        self.last.map(|at| at.elapsed())
    }

    fn due_when_idle(&self) -> bool {
        !self.clean && self.since_last().is_none_or(|d| d >= self.every)
    }

    fn due_after_no_room(&self) -> bool {
        self.since_last()
            .is_none_or(|d| d >= NO_ROOM_CHECKPOINT_EVERY)
    }

    /// How long the idle writer may wait for a job before a checkpoint is
    /// due: for ever while the WAL is empty and writes are not refused.
    fn wake_in(&self, refusing: bool) -> Option<Duration> {
        if self.clean && !refusing {
            return None;
        }
        let since = self.since_last().unwrap_or(self.every);
        Some(self.every.saturating_sub(since))
    }

    /// Tries to empty the WAL; says so to `storage` when it did.
    fn checkpoint(
        &mut self,
        url: &DatabaseUrl,
        slot: &mut Option<DbConnection>,
        storage: &Storage,
    ) {
        self.last = Some(Instant::now());
        let conn = match connection(url, slot) {
            Ok(conn) => conn,
            Err(e) => {
                self.failed(
                    &format!("cannot connect to the database: {e}"),
                    false,
                    storage,
                );
                return;
            }
        };
        match truncate_wal(conn) {
            Ok(true) => {
                self.clean = true;
                if self.failing {
                    tracing::info!("the WAL is checkpointed again");
                    self.failing = false;
                }
                storage.wal_emptied();
            }
            // Readers of an older snapshot: next time.
            Ok(false) => {}
            Err(e) => {
                *slot = None;
                self.failed(&e.to_string(), storage.explains(&e), storage);
            }
        }
    }

    /// Logs the first failure of a run of them, unless it is for lack of
    /// room while the episode's own line has said so.
    fn failed(&mut self, why: &str, no_room: bool, storage: &Storage) {
        if self.failing || (no_room && storage.is_full()) {
            return;
        }
        self.failing = true;
        tracing::warn!(
            why,
            "the WAL could not be checkpointed; trying again in a few seconds"
        );
    }
}

#[derive(QueryableByName)]
struct Checkpointed {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, waiting at most [`CHECKPOINT_WAIT`]
/// for readers: `true` when the WAL was emptied.
fn truncate_wal(conn: &mut DbConnection) -> QueryResult<bool> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}",
        CHECKPOINT_WAIT.as_millis()
    ))?;
    let done =
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result::<Checkpointed>(conn);
    let restored = conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    ));
    let done = done?;
    restored?;
    Ok(done.busy == 0)
}

#[derive(QueryableByName)]
struct Changes {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows this connection has changed since it was opened.
fn total_changes(conn: &mut DbConnection) -> QueryResult<i64> {
    diesel::sql_query("SELECT total_changes() AS n")
        .get_result::<Changes>(conn)
        .map(|c| c.n)
}

/// How a group's transaction ended.
#[derive(Debug)]
enum End {
    Committed,
    /// Certainly not on disk: each job may run again alone.
    NotCommitted(String),
    /// Not started, or maybe on disk: no job may run again.
    Failed(String),
    /// Something failed for lack of room: the group is rolled back, no job
    /// runs again.
    NoRoom(String),
}

/// What settling a group came to, for the checkpoints.
#[derive(Debug, Clone, Copy, Default)]
struct Settled {
    /// Something may have been committed.
    committed: bool,
    /// Something was refused for lack of room.
    no_room: bool,
}

fn settle(
    url: &DatabaseUrl,
    slot: &mut Option<DbConnection>,
    group: Vec<Box<dyn Job>>,
    storage: &Storage,
) -> Settled {
    let mut group = group;
    // While writes are refused for lack of room, a group that changes a row
    // ends the episode; one that changes nothing (a claim of mail when none
    // is due) proves nothing.
    let refusing = storage.is_full();
    let mut changed = false;
    let end = match connection(url, slot) {
        Ok(conn) => {
            let before = if refusing {
                total_changes(conn).ok()
            } else {
                None
            };
            let end = commit_group(conn, &mut group, storage);
            if let (End::Committed, Some(before)) = (&end, before) {
                changed = total_changes(conn).is_ok_and(|after| after > before);
            }
            end
        }
        Err(e) => End::Failed(format!("cannot connect to the database: {e}")),
    };
    match end {
        End::Committed => {
            for job in group {
                job.answer(storage);
            }
            if changed {
                storage.recovered("a write committed");
            }
            Settled {
                committed: true,
                no_room: false,
            }
        }
        End::NoRoom(why) => {
            // Closing the connection rolls back whatever it still had open.
            *slot = None;
            let refused = group.len() as u64;
            for job in group {
                if job.panicked() {
                    job.answer(storage);
                } else {
                    job.refuse(&why);
                }
            }
            storage.refused(refused, &why);
            Settled {
                committed: false,
                no_room: true,
            }
        }
        End::Failed(why) => {
            tracing::error!(%why, jobs = group.len(), "a group of writes failed");
            *slot = None;
            for job in group {
                job.fail(&why);
            }
            Settled::default()
        }
        End::NotCommitted(why) => {
            tracing::warn!(%why, jobs = group.len(), "a group of writes is run again job by job");
            // Closing the connection rolls back whatever it still had open.
            *slot = None;
            let mut refused: Option<(u64, String)> = None;
            for mut job in group {
                if job.panicked() {
                    job.answer(storage);
                    continue;
                }
                match connection(url, slot) {
                    Ok(conn) => {
                        if job.run_alone(conn) == Step::Lost {
                            *slot = None;
                        }
                        if let Some(why) = job.answer(storage) {
                            let (n, _) = refused.get_or_insert((0, why));
                            *n += 1;
                        }
                    }
                    Err(e) => job.fail(&format!("cannot connect to the database: {e}")),
                }
            }
            if let Some((n, why)) = &refused {
                storage.refused(*n, why);
            }
            Settled {
                committed: true,
                no_room: refused.is_some(),
            }
        }
    }
}

/// The writer's page cache, in KiB: 256 MiB against SQLite's default 2 MiB.
/// The one writer touches the pages of every write — windows, store-days,
/// quota rows, the reservations' indexes — and at country size (a database
/// of about a gigabyte; a draw over every store) the default cache had it
/// read most of them again from the OS in every transaction. It costs memory
/// only as pages are read.
const WRITER_CACHE_KIB: i64 = 256 * 1024;

fn connection<'a>(
    url: &DatabaseUrl,
    slot: &'a mut Option<DbConnection>,
) -> Result<&'a mut DbConnection, diesel::ConnectionError> {
    if slot.is_none() {
        let mut conn = url.connect()?;
        conn.batch_execute(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}"))
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        *slot = Some(conn);
    }
    match slot {
        Some(conn) => Ok(conn),
        None => Err(diesel::ConnectionError::BadConnection(
            "no connection".into(),
        )),
    }
}

type Manager = <DbConnection as Connection>::TransactionManager;

/// Runs the group in one `BEGIN IMMEDIATE … COMMIT`, each job in a savepoint.
fn commit_group(conn: &mut DbConnection, group: &mut [Box<dyn Job>], storage: &Storage) -> End {
    if let Err(e) = begin_immediate(conn) {
        let why = format!("cannot begin the write transaction: {e}");
        return if storage.explains(&e) {
            End::NoRoom(why)
        } else {
            End::Failed(why)
        };
    }
    for job in group.iter_mut() {
        for attempt in 1..=WRITE_ATTEMPTS {
            if let Err(e) = Manager::begin_transaction(conn) {
                return End::NotCommitted(format!("savepoint: {e}"));
            }
            let step = job.run(&mut Tx { conn });
            if step == Step::Lost {
                return End::NotCommitted("a write panicked".into());
            }
            // SQLite may have rolled back the whole transaction already
            // (its rule for a full disk); either way none of it is kept.
            if step == Step::Failed
                && let Some(why) = job.no_room(storage)
            {
                return End::NoRoom(why);
            }
            if depth(conn) != Some(2) {
                return End::NotCommitted("a write left its savepoint unbalanced".into());
            }
            let closed = match step {
                Step::Done => Manager::commit_transaction(conn),
                _ => Manager::rollback_transaction(conn),
            };
            if let Err(e) = closed {
                return End::NotCommitted(format!("closing a savepoint: {e}"));
            }
            if step != Step::Retry || attempt == WRITE_ATTEMPTS {
                break;
            }
        }
    }
    match Manager::commit_transaction(conn) {
        Ok(()) => End::Committed,
        // `SQLITE_FULL` at COMMIT: nothing is on disk. An I/O error on a
        // volume without room may have left the group in the WAL: its
        // callers are told all the same, and it is not run again (a resent
        // form finds its request by id).
        Err(e) if storage.explains(&e) => End::NoRoom(format!("commit: {e}")),
        // diesel rolled back after the failed COMMIT, and that rollback
        // succeeded: the transaction was still open, so nothing is on disk.
        Err(e @ DieselError::DatabaseError(..)) => End::NotCommitted(format!("commit: {e}")),
        Err(e) => End::Failed(format!("commit: {e}")),
    }
}

/// `BEGIN IMMEDIATE`, retried while another connection holds the lock past
/// the busy timeout (the command line, another instance).
fn begin_immediate(conn: &mut DbConnection) -> Result<(), DieselError> {
    let DbConnection::Sqlite(c) = conn else {
        return Err(DieselError::QueryBuilderError(
            "the grouped writer is for SQLite".into(),
        ));
    };
    let mut attempt = 1;
    loop {
        match AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE") {
            Err(e) if attempt < WRITE_ATTEMPTS && super::is_retryable(&e) => attempt += 1,
            other => return other,
        }
    }
}

fn depth(conn: &mut DbConnection) -> Option<u32> {
    let DbConnection::Sqlite(c) = conn else {
        return None;
    };
    AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()
        .ok()
        .flatten()
        .map(std::num::NonZeroU32::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;

    type Work = Box<dyn FnMut(&mut Tx<'_>) -> Result<i64, DieselError> + Send>;
    type Answer = oneshot::Receiver<Result<i64, DbError<DieselError>>>;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        v: i64,
    }

    fn storage(url: &DatabaseUrl) -> Storage {
        Storage::new(url)
    }

    fn scratch() -> (tempfile::TempDir, DatabaseUrl) {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("w.db"));
        url.connect()
            .unwrap()
            .batch_execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .unwrap();
        (dir, url)
    }

    fn rows(url: &DatabaseUrl) -> Vec<i64> {
        diesel::sql_query("SELECT v FROM t ORDER BY v")
            .load::<Row>(&mut url.connect().unwrap())
            .unwrap()
            .into_iter()
            .map(|r| r.v)
            .collect()
    }

    fn insert(v: i64) -> Work {
        Box::new(move |tx: &mut Tx<'_>| {
            diesel::sql_query(format!("INSERT INTO t (v) VALUES ({v})")).execute(tx.conn())?;
            Ok(v)
        })
    }

    fn job(f: Work) -> (Box<TypedJob<i64, DieselError, Work>>, Answer) {
        let (reply, answer) = oneshot::channel();
        (
            Box::new(TypedJob {
                f,
                kind: Kind::Interactive,
                run_by: None,
                kept: None,
                lost: None,
                reply,
            }),
            answer,
        )
    }

    impl TypedJob<i64, DieselError, Work> {
        fn set_kind(&mut self, kind: Kind) {
            self.kind = kind;
        }
    }

    fn settle_all(url: &DatabaseUrl, fs: Vec<Work>) -> Vec<Result<i64, DbError<DieselError>>> {
        let (group, answers): (Vec<Box<dyn Job>>, Vec<_>) = fs
            .into_iter()
            .map(job)
            .map(|(j, a)| (j as Box<dyn Job>, a))
            .unzip();
        let mut conn = None;
        settle(url, &mut conn, group, &storage(url));
        answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap())
            .collect()
    }

    #[test]
    fn a_failing_job_rolls_back_only_its_savepoint() {
        let (_dir, url) = scratch();
        let failing: Work = Box::new(|tx: &mut Tx<'_>| {
            diesel::sql_query("INSERT INTO t (v) VALUES (50)").execute(tx.conn())?;
            // A duplicate: the job's error after a write of its own.
            diesel::sql_query("INSERT INTO t (v) VALUES (1)").execute(tx.conn())?;
            Ok(50)
        });
        let answers = settle_all(&url, vec![insert(1), failing, insert(2)]);
        assert!(matches!(answers[0], Ok(1)));
        assert!(matches!(answers[1], Err(DbError::Work(_))));
        assert!(matches!(answers[2], Ok(2)));
        assert_eq!(rows(&url), vec![1, 2]);
    }

    #[test]
    fn a_panicking_job_answers_unavailable_and_the_others_commit() {
        let (_dir, url) = scratch();
        let panicking: Work = Box::new(|tx: &mut Tx<'_>| {
            diesel::sql_query("INSERT INTO t (v) VALUES (60)").execute(tx.conn())?;
            panic!("a bug in a write");
        });
        let answers = settle_all(&url, vec![insert(3), panicking, insert(4)]);
        assert!(matches!(answers[0], Ok(3)));
        assert!(matches!(answers[1], Err(DbError::Unavailable(_))));
        assert!(matches!(answers[2], Ok(4)));
        assert_eq!(rows(&url), vec![3, 4]);
    }

    #[test]
    fn a_job_that_leaves_a_savepoint_open_does_not_take_the_group_with_it() {
        let (_dir, url) = scratch();
        let unbalanced: Work = Box::new(|tx: &mut Tx<'_>| {
            Manager::begin_transaction(tx.conn())?;
            diesel::sql_query("INSERT INTO t (v) VALUES (7)").execute(tx.conn())?;
            Ok(7)
        });
        let answers = settle_all(&url, vec![insert(5), unbalanced, insert(6)]);
        assert!(matches!(answers[0], Ok(5)));
        assert!(matches!(answers[1], Err(DbError::Unavailable(_))));
        assert!(matches!(answers[2], Ok(6)));
        assert_eq!(rows(&url), vec![5, 6]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_when_the_last_handle_goes_are_all_committed_and_answered() {
        let (_dir, url) = scratch();
        let writer = Writer::start(url.clone(), Arc::new(storage(&url))).unwrap();
        let writes: Vec<_> = (0..50)
            .map(|v| {
                let w = writer.clone();
                tokio::spawn(async move {
                    w.write(
                        Kind::Interactive,
                        Instant::now() + Duration::from_secs(30),
                        None,
                        insert(v),
                    )
                    .await
                })
            })
            .collect();
        drop(writer);
        for (v, w) in writes.into_iter().enumerate() {
            assert_eq!(w.await.unwrap().unwrap(), v as i64);
        }
        assert_eq!(rows(&url), (0..50).collect::<Vec<_>>());
    }

    /// Holds `writer` with a job that waits until the returned sender is used
    /// (or dropped); returns once the job runs. The job answers 0.
    async fn hold(
        writer: &Writer,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<i64, DbError<DieselError>>>,
    ) {
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = {
            let (w, running) = (writer.clone(), running.clone());
            tokio::spawn(async move {
                w.write(
                    Kind::Interactive,
                    Instant::now() + Duration::from_secs(30),
                    None,
                    move |_tx: &mut Tx<'_>| {
                        running.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = gate.lock().map(|g| g.recv());
                        Ok::<_, DieselError>(0)
                    },
                )
                .await
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !running.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the writer never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (open, held)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_a_write_wait_then_answers_unavailable() {
        let (_dir, url) = scratch();
        let writer = Writer::start(url.clone(), Arc::new(storage(&url))).unwrap();
        let (open, held) = hold(&writer).await;
        let queued: Vec<_> = (0..QUEUE)
            .map(|_| {
                let w = writer.clone();
                tokio::spawn(async move {
                    w.write(
                        Kind::Interactive,
                        Instant::now() + Duration::from_secs(30),
                        None,
                        |_tx: &mut Tx<'_>| Ok::<_, DieselError>(1),
                    )
                    .await
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while writer.queued() < QUEUE {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue never filled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let late = writer
            .write(
                Kind::Interactive,
                Instant::now() + Duration::from_millis(50),
                None,
                |_tx: &mut Tx<'_>| Ok::<_, DieselError>(2),
            )
            .await;
        assert!(matches!(late, Err(DbError::Unavailable(_))));
        open.send(()).unwrap();
        assert_eq!(held.await.unwrap().unwrap(), 0);
        for q in queued {
            assert_eq!(q.await.unwrap().unwrap(), 1);
        }
    }

    /// Rows of `t` as another connection sees them: what is committed.
    fn committed(url: &DatabaseUrl) -> i64 {
        rows(url).len() as i64
    }

    /// Inserts `v`, answering how many rows were committed before it ran.
    fn sees(url: &DatabaseUrl, v: i64) -> Work {
        let url = url.clone();
        Box::new(move |tx: &mut Tx<'_>| {
            let before = committed(&url);
            diesel::sql_query(format!("INSERT INTO t (v) VALUES ({v})")).execute(tx.conn())?;
            Ok(before)
        })
    }

    /// Queues `jobs` (each in the queue its kind goes to) before the writer
    /// starts, serves them all, and answers each one's result in order.
    fn served_all(url: &DatabaseUrl, jobs: Vec<(Kind, Work)>) -> Vec<i64> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Box<dyn Job>>(QUEUE);
        let (counter_tx, counter_rx) = mpsc::channel::<Box<dyn Job>>(COUNTER_QUEUE);
        let mut answers = Vec::new();
        for (kind, work) in jobs {
            let (mut job, answer) = job(work);
            job.set_kind(kind);
            let queue = if kind == Kind::Counter {
                &counter_tx
            } else {
                &jobs_tx
            };
            queue.try_send(job).map_err(|_| "queued").unwrap();
            answers.push(answer);
        }
        drop((jobs_tx, counter_tx));
        serve(
            url,
            Queues {
                jobs: jobs_rx,
                counter: counter_rx,
            },
            &TookAt::new(),
            &storage(url),
            IDLE_CHECKPOINT_EVERY,
        );
        answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap().unwrap())
            .collect()
    }

    #[test]
    fn a_bulk_job_is_committed_in_a_group_of_its_own() {
        let (_dir, url) = scratch();
        let seen = served_all(
            &url,
            vec![
                (Kind::Interactive, insert(1)),
                (Kind::Interactive, sees(&url, 2)),
                (Kind::Bulk, sees(&url, 3)),
                (Kind::Interactive, sees(&url, 4)),
            ],
        );
        // 2 is grouped with 1 (nothing committed yet); the bulk job 3 runs
        // after that group's commit, alone; 4 after 3's commit.
        assert_eq!(seen, vec![1, 0, 2, 3]);
        assert_eq!(rows(&url), vec![1, 2, 3, 4]);
    }

    #[test]
    fn counter_jobs_are_committed_first_in_a_group_of_their_own() {
        let (_dir, url) = scratch();
        let seen = served_all(
            &url,
            vec![
                (Kind::Bulk, sees(&url, 1)),
                (Kind::Interactive, sees(&url, 2)),
                (Kind::Counter, sees(&url, 3)),
                (Kind::Counter, sees(&url, 4)),
            ],
        );
        // The counter's jobs, queued last, are committed first, together and
        // alone; then the bulk job, alone; then the booking that was queued
        // before them.
        assert_eq!(seen, vec![2, 3, 0, 0]);
        assert_eq!(rows(&url), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_job_whose_caller_stopped_waiting_is_not_run() {
        let (_dir, url) = scratch();
        let (gone, answer) = job(insert(8));
        drop(answer);
        let (kept, mut kept_answer) = job(insert(9));
        let mut conn = None;
        settle(
            &url,
            &mut conn,
            vec![gone as Box<dyn Job>, kept],
            &storage(&url),
        );
        assert!(matches!(kept_answer.try_recv().unwrap(), Ok(9)));
        assert_eq!(rows(&url), vec![9], "the abandoned write did not happen");
    }

    #[test]
    fn a_job_whose_deadline_passed_in_the_queue_is_not_run_though_its_caller_still_listens() {
        let (_dir, url) = scratch();
        let (mut late, mut late_answer) = job(insert(8));
        late.run_by = Some(Instant::now());
        let (kept, mut kept_answer) = job(insert(9));
        let mut conn = None;
        settle(
            &url,
            &mut conn,
            vec![late as Box<dyn Job>, kept],
            &storage(&url),
        );
        assert!(matches!(
            late_answer.try_recv().unwrap(),
            Err(DbError::Unavailable(why)) if why == ABANDONED
        ));
        assert!(matches!(kept_answer.try_recv().unwrap(), Ok(9)));
        assert_eq!(rows(&url), vec![9], "the late write did not happen");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_tells_how_long_its_oldest_job_has_waited() {
        let (_dir, url) = scratch();
        let writer = Writer::start(url.clone(), Arc::new(storage(&url))).unwrap();
        assert_eq!(writer.queue_age(), None, "nothing waits");
        let (open, held) = hold(&writer).await;
        let queued = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(
                    Kind::Interactive,
                    Instant::now() + Duration::from_secs(30),
                    None,
                    insert(1),
                )
                .await
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while writer
            .queue_age()
            .is_none_or(|age| age < Duration::from_millis(100))
        {
            assert!(std::time::Instant::now() < deadline, "nothing ever waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        open.send(()).unwrap();
        held.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(writer.queue_age(), None);
    }

    #[test]
    fn a_database_that_cannot_be_opened_answers_every_job() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: SQLite cannot open it.
        let url = DatabaseUrl::Sqlite(dir.path().to_owned());
        let answers = settle_all(&url, vec![insert(1), insert(2)]);
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Err(DbError::Unavailable(_))))
        );
    }

    /// Settles `fs` as one group on `conn`, reporting to `storage`.
    fn settle_on(
        url: &DatabaseUrl,
        conn: &mut Option<DbConnection>,
        storage: &Storage,
        fs: Vec<Work>,
    ) -> Vec<Result<i64, DbError<DieselError>>> {
        let (group, answers): (Vec<Box<dyn Job>>, Vec<_>) = fs
            .into_iter()
            .map(job)
            .map(|(j, a)| (j as Box<dyn Job>, a))
            .unzip();
        settle(url, conn, group, storage);
        answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap())
            .collect()
    }

    /// A connection to `url` that may not grow the database past a few pages
    /// more than it has: SQLite answers `SQLITE_FULL`, as on a full disk.
    fn cramped(url: &DatabaseUrl) -> Option<DbConnection> {
        let mut conn = url.connect().unwrap();
        conn.batch_execute("CREATE TABLE IF NOT EXISTS b (x BLOB NOT NULL)")
            .unwrap();
        #[derive(QueryableByName)]
        struct Pages {
            #[diesel(sql_type = BigInt)]
            page_count: i64,
        }
        let pages = diesel::sql_query("PRAGMA page_count")
            .get_result::<Pages>(&mut conn)
            .unwrap()
            .page_count;
        conn.batch_execute(&format!("PRAGMA max_page_count = {}", pages + 4))
            .unwrap();
        Some(conn)
    }

    fn big_blob() -> Work {
        Box::new(|tx: &mut Tx<'_>| {
            diesel::sql_query("INSERT INTO b (x) VALUES (randomblob(200000))")
                .execute(tx.conn())?;
            Ok(0)
        })
    }

    fn read_only() -> Work {
        Box::new(|tx: &mut Tx<'_>| {
            diesel::sql_query("SELECT v FROM t")
                .load::<Row>(tx.conn())
                .map(|r| r.len() as i64)
        })
    }

    #[test]
    fn a_group_with_a_write_that_finds_no_room_is_refused_whole_as_storage_full() {
        let (_dir, url) = scratch();
        let storage = storage(&url);
        let mut conn = cramped(&url);
        let answers = settle_on(
            &url,
            &mut conn,
            &storage,
            vec![insert(1), big_blob(), insert(2)],
        );
        for answer in &answers {
            assert!(
                matches!(answer, Err(DbError::StorageFull(why)) if why.contains("full")),
                "{answer:?}"
            );
        }
        assert!(
            conn.is_none(),
            "the connection is closed: its transaction rolled back"
        );
        assert_eq!(
            rows(&url),
            Vec::<i64>::new(),
            "nothing of the group is kept"
        );
        assert!(storage.is_full());
        assert_eq!(storage.report().map(|r| r.refused), Some(3));

        // A group that changes nothing proves nothing…
        let answers = settle_on(&url, &mut conn, &storage, vec![read_only()]);
        assert!(matches!(answers[0], Ok(0)));
        assert!(storage.is_full());
        // …one that commits a change ends the episode.
        let answers = settle_on(&url, &mut conn, &storage, vec![insert(3)]);
        assert!(matches!(answers[0], Ok(3)));
        assert!(!storage.is_full());
        assert_eq!(rows(&url), vec![3]);
    }

    fn wal_bytes(url: &DatabaseUrl) -> u64 {
        let DatabaseUrl::Sqlite(path) = url else {
            unreachable!("an SQLite database")
        };
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(std::path::PathBuf::from(wal)).map_or(0, |m| m.len())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_idle_writer_empties_the_wal() {
        let (_dir, url) = scratch();
        let storage = Arc::new(storage(&url));
        let writer =
            Writer::start_checkpointing_every(url.clone(), storage, Duration::from_millis(200))
                .unwrap();
        // A reader that keeps the database open, so the WAL is not removed
        // by the last connection closing.
        let _reader = url.connect().unwrap();
        for v in 0..20 {
            writer
                .write(
                    Kind::Interactive,
                    Instant::now() + Duration::from_secs(30),
                    None,
                    insert(v),
                )
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while wal_bytes(&url) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL is still {} bytes",
                wal_bytes(&url)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(rows(&url), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_writer_ends_an_episode_once_the_volume_has_room() {
        let (_dir, url) = scratch();
        let storage = Arc::new(storage(&url));
        let _writer = Writer::start_checkpointing_every(
            url.clone(),
            storage.clone(),
            Duration::from_millis(200),
        )
        .unwrap();
        // Refused writes, then no write at all (the instance is out of
        // rotation): the writer's own checkpoint finds the room.
        storage.refused(1, "database or disk is full");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while storage.is_full() {
            assert!(std::time::Instant::now() < deadline, "still refusing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
