//! The password-hashing pool: every argon2 hash and verification runs here, on a
//! few dedicated threads (half the cores), behind a bounded number of slots.
//!
//! Each hash costs about 19 MiB and tens of milliseconds of CPU. Run on the
//! shared blocking pool, a login storm would queue hundreds of them in front of
//! the database work that every other page needs. Here at most
//! `workers + queue` hashing jobs exist at once; a request that finds every slot
//! taken is refused at once ([`Busy`], with how long to wait), never queued
//! without bound. Slots are taken before any other work of the request (see
//! [`HashPool::try_reserve`]), so a refused login costs next to nothing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::accounts::password::{self, NewPassword};
use crate::i18n::Tr;

/// Jobs that may wait per worker: about a second of work when each takes ~40 ms,
/// so an admitted login is answered within a second or two even at the limit.
const QUEUE_PER_WORKER: usize = 24;

/// Assumed cost of one job until one has been measured.
const FIRST_GUESS: Duration = Duration::from_millis(50);

/// The longest `Retry-After` we ask for: beyond it, people give up.
const MAX_RETRY_AFTER_SECS: u64 = 30;

/// How many threads hash and how many jobs may wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    pub workers: usize,
    pub queue: usize,
}

impl PoolSize {
    /// Half the cores (at least one), and [`QUEUE_PER_WORKER`] waiting jobs per
    /// worker. Hashing never has more than half the CPU, so pages keep the
    /// rest through a login storm: on 2 cores, one worker kept `/reservations`
    /// at about two thirds of its rate, where two workers let it fall to a
    /// third (docs/benchmarks.md).
    pub fn for_this_machine() -> PoolSize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = (cores / 2).max(1);
        PoolSize {
            workers,
            queue: workers * QUEUE_PER_WORKER,
        }
    }

    /// Jobs that may exist at once: running plus waiting.
    pub fn capacity(self) -> usize {
        self.workers + self.queue
    }
}

/// Every slot is taken: come back in this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated; retry in {retry_after_secs} s")]
pub struct Busy {
    pub retry_after_secs: u64,
}

impl Busy {
    /// What a form sent back says above its fields.
    pub fn message(self, t: &Tr) -> String {
        t.count(
            "busy.message",
            self.retry_after_secs,
            &[("seconds", &self.retry_after_secs)],
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Busy(#[from] Busy),
    /// The job panicked or the pool has stopped; the request cannot be answered.
    #[error("password hashing failed: {0}")]
    Failed(&'static str),
    /// argon2 refused to hash (it does not with our parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A handle on the pool; clones share it. The workers stop when the last handle
/// is dropped.
#[derive(Clone)]
pub struct HashPool {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Job>,
    slots: Arc<Semaphore>,
    size: PoolSize,
    /// Moving average of a job's duration, in microseconds.
    mean_micros: Arc<AtomicU64>,
}

impl HashPool {
    /// Starts `size.workers` threads (at least one).
    pub fn start(size: PoolSize) -> std::io::Result<HashPool> {
        let size = PoolSize {
            workers: size.workers.max(1),
            queue: size.queue,
        };
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mean_micros = Arc::new(AtomicU64::new(micros(FIRST_GUESS)));
        for n in 0..size.workers {
            let rx = rx.clone();
            let mean = mean_micros.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || work(&rx, &mean))?;
        }
        Ok(HashPool {
            inner: Arc::new(Inner {
                jobs,
                slots: Arc::new(Semaphore::new(size.capacity())),
                size,
                mean_micros,
            }),
        })
    }

    pub fn size(&self) -> PoolSize {
        self.inner.size
    }

    /// Takes a slot for one job, or says how long to wait when none is free. The
    /// slot is held until its job has run (or it is dropped unused), so a
    /// request can take it before its other work and be sure of its turn.
    pub fn try_reserve(&self) -> Result<Slot, Busy> {
        match self.inner.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(Slot {
                pool: self.clone(),
                permit,
            }),
            Err(_) => Err(Busy {
                retry_after_secs: self.retry_after_secs(),
            }),
        }
    }

    /// Hashes a new password, or refuses at once when the pool is full.
    pub async fn hash(&self, password: NewPassword) -> Result<String, HashError> {
        self.try_reserve()?.hash(password).await
    }

    /// How long until a full pool has room: the time to work off every slot.
    pub fn retry_after_secs(&self) -> u64 {
        let mean = Duration::from_micros(self.inner.mean_micros.load(Ordering::Relaxed));
        retry_after(mean, self.inner.size)
    }
}

/// Seconds to work off a full pool at `mean` per job, rounded up, 1 to 30.
fn retry_after(mean: Duration, size: PoolSize) -> u64 {
    let jobs_per_worker = size.capacity().div_ceil(size.workers.max(1));
    let drain = mean.saturating_mul(u32::try_from(jobs_per_worker).unwrap_or(u32::MAX));
    let secs = drain.as_secs() + u64::from(drain.subsec_nanos() > 0);
    secs.clamp(1, MAX_RETRY_AFTER_SECS)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One worker: takes jobs until every handle on the pool is gone. A panicking
/// job fails only its own request.
fn work(rx: &Mutex<mpsc::Receiver<Job>>, mean_micros: &AtomicU64) {
    loop {
        // The lock is held only while waiting, never while a job runs, and no
        // job runs under it, so it cannot be poisoned by one.
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else {
            return;
        };
        let started = Instant::now();
        // Jobs catch their own panics (see `Slot::run`); this is the last guard
        // that keeps the worker alive whatever a job does.
        let _ = catch_unwind(AssertUnwindSafe(job));
        // An exponential moving average (1/8 weight): steady under jitter, and
        // follows a slower machine within a few dozen jobs.
        let took = micros(started.elapsed());
        let old = mean_micros.load(Ordering::Relaxed);
        mean_micros.store(old - old / 8 + took / 8, Ordering::Relaxed);
    }
}

/// A reserved place in the pool for one job.
pub struct Slot {
    pool: HashPool,
    permit: OwnedSemaphorePermit,
}

impl Slot {
    /// Runs `job` on a hashing thread and waits for its result.
    pub async fn run<T, F>(self, job: F) -> Result<T, HashError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let permit = self.permit;
        let job: Job = Box::new(move || {
            // A request that went away (the client hung up) needs no answer:
            // its slot is given back without spending the CPU.
            if tx.is_closed() {
                return;
            }
            let out = catch_unwind(AssertUnwindSafe(job));
            // The slot is free before the answer (or the failure) arrives, so
            // whoever gets it may reserve again at once.
            drop(permit);
            match out {
                Ok(out) => {
                    let _ = tx.send(out);
                }
                // Dropping `tx` unanswered fails the request alone.
                Err(_) => tracing::error!("a password hashing job panicked"),
            }
        });
        self.pool
            .inner
            .jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing pool has stopped"))?;
        rx.await
            .map_err(|_| HashError::Failed("the hashing job did not finish"))
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(self, password: NewPassword) -> Result<String, HashError> {
        self.run(move || password::hash(&password))
            .await?
            .map_err(|e| HashError::Hash(format!("{e:#}")))
    }

    /// [`password::verify_login`] on the pool: the same work whether or not
    /// there is an account.
    pub async fn verify_login(
        self,
        password: String,
        account_phc: Option<String>,
    ) -> Result<bool, HashError> {
        self.run(move || password::verify_login(&password, account_phc.as_deref()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;

    fn pool(workers: usize, queue: usize) -> HashPool {
        HashPool::start(PoolSize { workers, queue }).unwrap()
    }

    #[tokio::test]
    async fn results_come_back_from_the_workers() {
        let pool = pool(2, 2);
        let pw = NewPassword::parse("correct horse battery").unwrap();
        let phc = pool.hash(pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let slot = pool.try_reserve().unwrap();
        assert!(
            slot.verify_login("correct horse battery".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        let slot = pool.try_reserve().unwrap();
        assert!(!slot.verify_login("wrong".into(), Some(phc)).await.unwrap());
        let slot = pool.try_reserve().unwrap();
        assert!(
            !slot
                .verify_login("correct horse battery".into(), None)
                .await
                .unwrap()
        );
        let thread = pool
            .try_reserve()
            .unwrap()
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(thread.unwrap().starts_with("password-hash-"));
    }

    #[tokio::test]
    async fn a_full_pool_refuses_at_once_instead_of_queueing() {
        let pool = pool(1, 1);
        let (release, gate) = std_mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        // One job running and one waiting: every slot is taken.
        let mut held = Vec::new();
        for n in 0..2 {
            let slot = pool.try_reserve().expect("a free slot");
            let gate = gate.clone();
            held.push(tokio::spawn(slot.run(move || {
                let _ = gate.lock().unwrap().recv();
                n
            })));
        }
        let refused = pool.try_reserve().err().expect("refused while full");
        assert!(refused.retry_after_secs >= 1);
        let pw = NewPassword::parse("correct horse battery").unwrap();
        assert!(matches!(pool.hash(pw).await, Err(HashError::Busy(_))));

        release.send(()).unwrap();
        release.send(()).unwrap();
        let mut done = Vec::new();
        for h in held {
            done.push(h.await.unwrap().unwrap());
        }
        assert_eq!(done, [0, 1]);
        assert!(pool.try_reserve().is_ok(), "slots are given back");
    }

    #[test]
    fn a_dropped_slot_is_given_back() {
        let pool = pool(1, 0);
        let slot = pool.try_reserve().unwrap();
        assert!(pool.try_reserve().is_err());
        drop(slot);
        assert!(pool.try_reserve().is_ok());
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_pool_keeps_working() {
        let pool = pool(1, 0);
        let failed = pool
            .try_reserve()
            .unwrap()
            .run(|| -> u32 { panic!("boom") })
            .await;
        assert!(matches!(failed, Err(HashError::Failed(_))), "{failed:?}");
        // The one worker survived and its slot came back.
        let ok = pool.try_reserve().unwrap().run(|| 7).await;
        assert_eq!(ok, Ok(7));
    }

    #[test]
    fn retry_after_is_the_time_to_work_off_a_full_pool() {
        let size = PoolSize {
            workers: 2,
            queue: 48,
        };
        // 25 jobs per worker at 40 ms: one second.
        assert_eq!(retry_after(Duration::from_millis(40), size), 1);
        assert_eq!(retry_after(Duration::from_millis(41), size), 2);
        assert_eq!(retry_after(Duration::from_millis(1), size), 1, "at least 1");
        assert_eq!(retry_after(Duration::from_secs(5), size), 30, "at most 30");
    }

    #[test]
    fn the_default_size_follows_the_cores() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let size = PoolSize::for_this_machine();
        assert!(size.workers >= 1);
        assert!(size.workers == 1 || size.workers * 2 <= cores, "{size:?}");
        assert_eq!(size.queue, size.workers * QUEUE_PER_WORKER);
    }
}
