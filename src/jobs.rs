//! The background jobs that act on time — reminders, waiting-list offers,
//! draws: what each needs from the application ([`Job`]), and the loop every
//! one of them runs in ([`every`]), so that each takes its "now" the same
//! way: from the database's clock, and not at all while this machine's clock
//! is off it ([`crate::clock::now_for_job`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::db::Db;
use crate::i18n::Catalog;
use crate::policy::Policy;
use crate::settings::PolicyCache;
use crate::state::AppState;

/// What a background job needs from the application.
pub struct Job {
    pub db: Db,
    pub clock: Clock,
    pub policy: Arc<PolicyCache>,
    pub catalog: Arc<Catalog>,
    pub base_url: String,
    /// Woken when mail was queued, so that it goes out at once.
    pub mail_wake: Arc<Notify>,
}

impl Job {
    pub fn of(state: &AppState) -> Job {
        Job {
            db: state.db.clone(),
            clock: state.clock.clone(),
            policy: state.policy.clone(),
            catalog: state.catalog.clone(),
            base_url: state.base_url.clone(),
            mail_wake: state.mail_wake.clone(),
        }
    }
}

/// Runs `round` every `period`, the first time one period after the start,
/// with the policy in force and the database's time, until the task is
/// aborted with the server. A round is skipped while no policy has been
/// read (the database is down) or the time cannot be trusted; `what` names
/// the job in the log when it is.
pub async fn every<F, Fut>(period: Duration, job: Job, what: &'static str, mut round: F)
where
    F: FnMut(Arc<Job>, Arc<Policy>, DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    let job = Arc::new(job);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(policy) = job.policy.cached() else {
            continue;
        };
        let Some(now) = crate::clock::now_for_job(&job.db, &job.clock, what).await else {
            continue;
        };
        round(job.clone(), policy, now).await;
    }
}
