//! The background sender: claims due messages from the outbox, hands them to SMTP
//! or to the file transport, and records the outcome with retry and back-off.
//!
//! Several app instances may run a sender on one database; the claim in
//! [`super::outbox`] keeps them from sending one message at the same time. No
//! transaction is open while a message is being sent: a batch's claim commits
//! first, then each message is settled in a short write of its own as soon as
//! the transport has answered for it.
//!
//! Delivery is at least once, not exactly once: no SMTP client can know whether
//! a server that took the message but whose answer never came (a crash, a cut
//! connection) has it. Settling every message right after its answer keeps that
//! doubt to the messages in flight at the instant of a crash — at most one per
//! connection — which are sent again once their claim's lease runs out. Every
//! attempt of one outbox row carries the same `Message-ID` ([`MessageIds`]), so a
//! receiver that has the first copy drops the second.
//!
//! Throughput comes from several SMTP connections at once
//! (`MAIL_CONNECTIONS`), each kept open from one message to the next: a batch's
//! messages are shared among the connections ("lanes"), each lane sending and
//! settling one message at a time.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::QueryResult;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{FileTransport, Message, Transport as _};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::outbox::{self, Claimed};
use crate::config::MailTransport;
use crate::db::Db;

/// Messages claimed together.
const BATCH: i64 = 20;
/// SMTP connections used at once when the configuration does not say.
pub const DEFAULT_CONNECTIONS: usize = 4;
/// How long a claim keeps other instances off a message; a claim left by a
/// crashed instance comes due again after it.
const LEASE: TimeDelta = TimeDelta::minutes(5);
/// The longest one SMTP step may take: a command and its answer.
const STEP: Duration = Duration::from_secs(10);
/// The steps of handing over one message: MAIL, RCPT, DATA, the message and
/// its answer.
const TRANSFER_STEPS: u32 = 5;
/// The steps of one send, each cut off after [`STEP`]: the NOOP that checks
/// a kept connection and the QUIT that closes it when it fails, a new
/// connection's connect and its greeting and EHLO (two steps), the
/// [`TRANSFER_STEPS`], and the QUIT that follows a failure of the last.
const SMTP_STEPS: u32 = 2 + 3 + TRANSFER_STEPS + 1;
/// The longest one send can take.
const SEND_WORST_CASE: Duration = Duration::from_secs(STEP.as_secs() * SMTP_STEPS as u64);
/// A batch starts a send only this long after its claim; what it has not
/// started by then is given back uncounted for the next round. A slow server
/// can thus never keep a send going past the lease, when another instance
/// could claim the same message and send it twice: twenty sends of the worst
/// case, even on one connection, would take over half an hour.
const SEND_BUDGET: Duration = Duration::from_secs(
    LEASE.num_seconds().unsigned_abs() - SEND_WORST_CASE.as_secs() - LEASE_MARGIN_SECS,
);
/// Room left between the last send's worst end and the lease's end.
const LEASE_MARGIN_SECS: u64 = 30;
/// A kept connection unused for this long is checked with NOOP before a
/// message goes over it (within a burst it is not: the check would cost a
/// round trip per message).
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// A kept connection unused for this long is closed, well before a server
/// would time it out (RFC 5321 asks servers to wait five minutes).
const IDLE_CLOSE: Duration = Duration::from_secs(30);
/// The sender also looks for due mail this often without being woken: retries
/// come due on their own, and other instances enqueue without waking this one.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Claims after which a message that still fails is given up on.
pub const MAX_ATTEMPTS: i32 = 12;
const MAX_BACKOFF_SECS: i64 = 10 * 60;
/// Enough of an error to diagnose it, bounded so a chatty server cannot bloat rows.
const MAX_ERROR_CHARS: usize = 500;

/// Whether a batch claimed `elapsed` ago may start another send: only while
/// that send, however slow, ends within the claim's lease.
fn may_start(elapsed: Duration) -> bool {
    elapsed <= SEND_BUDGET
}

/// How long to wait before the next try of a message that has now failed
/// `attempts` times: 2 s, doubling with every failure, at most 10 minutes.
pub fn backoff(attempts: i32) -> TimeDelta {
    // 2^10 s already exceeds the cap, so clamping first keeps the shift small.
    let doublings = attempts.clamp(1, 10).unsigned_abs();
    TimeDelta::seconds((1_i64 << doublings).min(MAX_BACKOFF_SECS))
}

/// Delivers the outbox. Built once per app instance and driven by [`Sender::run`].
pub struct Sender {
    db: Db,
    transport: Transport,
    from: String,
    ids: MessageIds,
    /// Messages sent at once: SMTP connections, or files being written.
    lanes: usize,
    wake: Arc<Notify>,
    rush: Rush,
}

/// Tells the sender whether people are being turned away right now (the
/// waiting room has a line); `None`: never.
type Rush = Option<Arc<dyn Fn() -> bool + Send + Sync>>;

/// The `Message-ID` of each outbox row, the same on every attempt:
/// `<outbox-{id}.{created}.{deployment}@{domain of MAIL_FROM}>`. The id and the
/// row's creation time (in microseconds) name the row, even if a restored
/// backup hands its id out again; `deployment`, the first 64 bits of the
/// SHA-256 of the public base URL, keeps two deployments that mail from one
/// domain (a staging and a production) apart. Every instance of a deployment
/// has the same base URL, so a retry by another instance keeps the id.
pub struct MessageIds {
    deployment: String,
}

impl MessageIds {
    pub fn for_base_url(base_url: &str) -> MessageIds {
        let digest = Sha256::digest(base_url.as_bytes());
        let deployment = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        MessageIds { deployment }
    }

    fn of(&self, mail: &Claimed, from: &Mailbox) -> String {
        format!(
            "<outbox-{}.{}.{}@{}>",
            mail.id,
            mail.created_at.and_utc().timestamp_micros(),
            self.deployment,
            from.email.domain()
        )
    }
}

enum Transport {
    Smtp(Smtp),
    File(PathBuf),
}

impl Transport {
    async fn send(&self, lane: usize, message: Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp.send(lane, &message).await,
            Transport::File(dir) => {
                let dir = dir.clone();
                // lettre's file transport blocks; keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    // Created on every send, not once: the directory may be
                    // cleaned out while the app runs.
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    FileTransport::new(&dir)
                        .send(&message)
                        .map(drop)
                        .map_err(|e| error_text(&e))
                })
                .await
                .unwrap_or_else(|e| Err(format!("send task failed: {e}")))
            }
        }
    }

    /// Closes the SMTP connections that have been idle a while, in the
    /// background (QUIT waits for the server's answer).
    fn close_idle(&self) {
        if let Transport::Smtp(smtp) = self {
            let idle = smtp.take_idle();
            if !idle.is_empty() {
                tokio::spawn(async move {
                    for kept in idle {
                        close(kept.connection).await;
                    }
                });
            }
        }
    }
}

/// An SMTP server and the connections kept open to it, one per lane. A lane
/// is used by one task at a time, so its connection carries one conversation.
///
/// Every step is bounded by a timeout of its own, which together make
/// [`SEND_WORST_CASE`]: a send can never outlast it, whatever the server does.
struct Smtp {
    host: String,
    port: u16,
    hello: ClientId,
    lanes: Vec<Mutex<Option<Kept>>>,
}

/// A connection between two messages.
struct Kept {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl Smtp {
    fn new(host: String, port: u16, connections: usize) -> Smtp {
        Smtp {
            host,
            port,
            hello: ClientId::default(),
            lanes: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn lane(&self, lane: usize) -> Option<MutexGuard<'_, Option<Kept>>> {
        // A lane's lock is only held to take or put its connection: a panic
        // while holding it leaves nothing half-done.
        self.lanes
            .get(lane)
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends over the lane's kept connection, or a new one; keeps the
    /// connection for the next message unless something went wrong on it.
    async fn send(&self, lane: usize, message: &Message) -> Result<(), String> {
        let kept = self.lane(lane).and_then(|mut kept| kept.take());
        let mut connection = match kept {
            Some(mut kept) => {
                let fresh = kept.since.elapsed() < IDLE_CHECK;
                if !kept.connection.has_broken()
                    && (fresh || within(STEP, kept.connection.test_connected()).await == Ok(true))
                {
                    kept.connection
                } else {
                    // The server may have closed it meanwhile.
                    close(kept.connection).await;
                    self.connect().await?
                }
            }
            None => self.connect().await?,
        };
        let sent = within(
            STEP * TRANSFER_STEPS,
            connection.send(message.envelope(), &message.formatted()),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                if let Some(mut slot) = self.lane(lane) {
                    *slot = Some(Kept {
                        connection,
                        since: Instant::now(),
                    });
                }
                Ok(())
            }
            Ok(Err(e)) => {
                // Whatever state the conversation is in, a new one is cleaner.
                close(connection).await;
                Err(error_text(&e))
            }
            Err(late) => {
                close(connection).await;
                Err(format!("the server did not take the message: {late}"))
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let address = format!("{}:{}", self.host, self.port);
        let tcp = within(STEP, TcpStream::connect(address.as_str()))
            .await
            .map_err(|late| format!("cannot connect to {address}: {late}"))?
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        // Otherwise the message and the line that ends it leave as two
        // packets, and the second waits for the server's delayed
        // acknowledgement of the first: 40 ms a message on Linux, most of
        // the time a message took before.
        tcp.set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        within(
            STEP * 2,
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
        )
        .await
        .map_err(|late| format!("{address} did not greet: {late}"))?
        .map_err(|e| error_text(&e))
    }

    /// Takes the connections unused for [`IDLE_CLOSE`] out of their lanes.
    fn take_idle(&self) -> Vec<Kept> {
        self.lanes
            .iter()
            .filter_map(|lane| {
                let mut kept = lane.try_lock().ok()?;
                if kept.as_ref()?.since.elapsed() >= IDLE_CLOSE {
                    kept.take()
                } else {
                    None
                }
            })
            .collect()
    }
}

/// Says goodbye (QUIT) unless the conversation has broken, then closes.
async fn close(mut connection: AsyncSmtpConnection) {
    // Cut short, the connection is dropped, which closes it all the same.
    let _ = within(STEP, connection.abort()).await;
}

/// `step`, or an error once `limit` has passed.
async fn within<T>(limit: Duration, step: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(limit, step)
        .await
        .map_err(|_| format!("no answer within {} s", limit.as_secs()))
}

/// What is to be recorded of one message that was tried.
enum Verdict {
    /// The transport took it.
    Sent { at: NaiveDateTime },
    /// The transport did not take it; it is tried again at `at`.
    Retry { at: NaiveDateTime, error: String },
    /// Given up: the message cannot be sent, or (`transport`) the transport
    /// refused it on the last attempt.
    Failed { error: String, transport: bool },
}

/// Why a claimed message was not delivered.
enum SendError {
    /// Trying again cannot help (the recipient is not an address).
    Permanent(String),
    /// The server, the network or the disk may recover.
    Transient(String),
}

/// One claimed batch being sent: the messages no lane has started yet.
struct Batch {
    waiting: Mutex<VecDeque<Claimed>>,
    claimed_at: Instant,
}

impl Batch {
    fn waiting(&self) -> MutexGuard<'_, VecDeque<Claimed>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the lanes of one round share.
#[derive(Default)]
struct Round {
    /// The transport failed (the server is most likely down) or the database
    /// did: no lane starts another message.
    stopped: AtomicBool,
    /// The transport has taken a message in this round: the lanes may run
    /// side by side. Until then messages go one at a time, so a server that
    /// is down costs one attempt, not one per lane.
    proven: AtomicBool,
}

impl Round {
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn proven(&self) -> bool {
        self.proven.load(Ordering::SeqCst)
    }
}

impl Sender {
    /// `from` is the sender address (`noreply@example.org` or
    /// `Name <noreply@example.org>`). `ids` names the messages. `wake` lets a
    /// feature that has just enqueued mail get it sent at once rather than at
    /// the next poll. It sends over [`DEFAULT_CONNECTIONS`] connections unless
    /// told otherwise ([`Sender::connections`]).
    pub fn new(
        db: Db,
        transport: MailTransport,
        from: String,
        ids: MessageIds,
        wake: Arc<Notify>,
    ) -> Sender {
        let transport = match transport {
            MailTransport::Smtp { host, port } => {
                Transport::Smtp(Smtp::new(host, port, DEFAULT_CONNECTIONS))
            }
            MailTransport::File(dir) => Transport::File(dir),
        };
        Sender {
            db,
            transport,
            from,
            ids,
            lanes: DEFAULT_CONNECTIONS,
            wake,
            rush: None,
        }
    }

    /// Sends over `connections` SMTP connections at once (at least one); the
    /// file transport writes as many files at once.
    pub fn connections(mut self, connections: usize) -> Sender {
        let connections = connections.max(1);
        self.transport = match self.transport {
            Transport::Smtp(smtp) => Transport::Smtp(Smtp::new(smtp.host, smtp.port, connections)),
            Transport::File(dir) => Transport::File(dir),
        };
        self.lanes = connections;
        self
    }

    /// Mail yields to the rush: while `rush` says people are being turned
    /// away, a round delivers one batch at most and rounds come once per poll
    /// interval, however many bookings wake the sender. Confirmations then
    /// arrive later (the reservation page already shows the pickup code);
    /// the CPU they would take goes to letting people in. Once the line is
    /// gone the sender catches up at full speed.
    pub fn yielding_to(mut self, rush: impl Fn() -> bool + Send + Sync + 'static) -> Sender {
        self.rush = Some(Arc::new(rush));
        self
    }

    fn in_rush(&self) -> bool {
        self.rush.as_ref().is_some_and(|rush| rush())
    }

    /// One round of [`Sender::run`]: everything due, but during a rush
    /// (asked before every batch after the first) only one batch; how many
    /// were delivered.
    pub async fn deliver_round(&self) -> anyhow::Result<usize> {
        self.deliver(true).await
    }

    /// Sends every due message once; returns how many were delivered. Messages
    /// that another instance claims first are left to it. The round stops at the
    /// first message the transport fails to take: the server is most likely down,
    /// and the rest should wait for the next round rather than each sit out a
    /// timeout and spend an attempt (their claims are given back uncounted). An
    /// error means the database could not be reached; a message claimed before it
    /// comes due again when its lease runs out.
    ///
    /// A batch costs one write to claim it, one short write per message to
    /// settle it, and one to give back what was not started. All go through
    /// the one write door (`Db::write`), so on SQLite the settles of the lanes
    /// sending side by side join the writer's groups instead of contending
    /// with it for the database's write lock.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        self.deliver(false).await
    }

    /// [`Sender::deliver_due`]; with `yield_to_rush`, stopping after any batch
    /// while the rush is on.
    async fn deliver(&self, yield_to_rush: bool) -> anyhow::Result<usize> {
        self.transport.close_idle();
        let round = Round::default();
        let mut delivered = 0;
        // Walking the ids upwards guarantees an end even while new mail arrives,
        // and each candidate is considered at most once per call.
        let mut after_id = 0;
        loop {
            let now = Utc::now().naive_utc();
            let claimed = self
                .db
                .write(move |tx| outbox::claim_due(tx, now, after_id, BATCH, LEASE))
                .await?;
            let Some(last) = claimed.last().map(|m| m.id) else {
                return Ok(delivered);
            };
            let whole_batch = claimed.len() as i64 == BATCH;
            let batch = Batch {
                waiting: Mutex::new(claimed.into()),
                claimed_at: Instant::now(),
            };
            let sent = self.deliver_batch(&batch, &round).await;
            // What no lane started goes back even when the batch ended in an
            // error: its claims would otherwise wait out the lease.
            let untried: Vec<Claimed> = batch.waiting().drain(..).collect();
            let released = self.release(untried, now).await;
            delivered += sent?;
            released?;
            if round.stopped() || !whole_batch || (yield_to_rush && self.in_rush()) {
                return Ok(delivered);
            }
            after_id = last;
        }
    }

    /// Sends a batch: one message at a time until the transport has taken
    /// one this round, then over every lane at once.
    async fn deliver_batch(&self, batch: &Batch, round: &Round) -> anyhow::Result<usize> {
        let mut delivered = 0;
        while !round.proven() {
            let Some(mail) = next(batch, round) else {
                return Ok(delivered);
            };
            delivered += self.deliver_one(0, mail, round).await?;
        }
        let lanes = (0..self.lanes).map(|lane| self.lane(lane, batch, round));
        for sent in futures_util::future::join_all(lanes).await {
            delivered += sent?;
        }
        Ok(delivered)
    }

    /// One lane: sends the batch's next message until none is left or the
    /// round stops.
    async fn lane(&self, lane: usize, batch: &Batch, round: &Round) -> anyhow::Result<usize> {
        let mut delivered = 0;
        while let Some(mail) = next(batch, round) {
            match self.deliver_one(lane, mail, round).await {
                Ok(sent) => delivered += sent,
                Err(e) => {
                    round.stop();
                    return Err(e);
                }
            }
        }
        Ok(delivered)
    }

    /// Sends one message and records its outcome at once, before the lane
    /// starts another: after a crash, only a message whose send was under
    /// way can be sent again.
    async fn deliver_one(
        &self,
        lane: usize,
        mail: Claimed,
        round: &Round,
    ) -> anyhow::Result<usize> {
        let verdict = self.try_one(lane, &mail).await;
        let delivered = match &verdict {
            Verdict::Sent { .. } => {
                round.proven.store(true, Ordering::SeqCst);
                1
            }
            Verdict::Retry { .. }
            | Verdict::Failed {
                transport: true, ..
            } => {
                round.stop();
                0
            }
            Verdict::Failed { .. } => 0,
        };
        self.settle(mail, verdict).await?;
        Ok(delivered)
    }

    /// Runs forever: delivers what is due, then waits for a wake-up or the poll
    /// interval. An unreachable database only postpones delivery.
    pub async fn run(self) {
        let mut database_down = false;
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before delivering, so a wake-up that comes while a batch
            // is being sent still triggers another round.
            notified.as_mut().enable();
            match self.deliver_round().await {
                Ok(delivered) => {
                    if database_down {
                        tracing::info!("mail sender reaches the database again");
                        database_down = false;
                    }
                    if delivered > 0 {
                        tracing::debug!(delivered, "mail delivered");
                    }
                }
                // Once per outage rather than once per second.
                Err(e) if !database_down => {
                    tracing::warn!(error = format!("{e:#}"), "mail delivery postponed");
                    database_down = true;
                }
                Err(e) => tracing::debug!(error = format!("{e:#}"), "mail delivery postponed"),
            }
            if self.in_rush() {
                // Every booking wakes the sender; during a rush those
                // wake-ups are not a reason to go again.
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Sends one claimed message; what is to be recorded of it.
    async fn try_one(&self, lane: usize, mail: &Claimed) -> Verdict {
        // Recipients are personal data: logs name the message by id and kind only.
        let (id, kind, attempts) = (mail.id, mail.kind.as_str(), mail.attempts);
        match self.send(lane, mail).await {
            Ok(()) => Verdict::Sent {
                at: Utc::now().naive_utc(),
            },
            Err(SendError::Transient(error)) if attempts < MAX_ATTEMPTS => {
                let error = truncate(&error);
                let retry_in = backoff(attempts);
                tracing::warn!(
                    id,
                    kind,
                    attempts,
                    error,
                    retry_in_secs = retry_in.num_seconds(),
                    "mail not sent; will retry"
                );
                Verdict::Retry {
                    at: Utc::now().naive_utc() + retry_in,
                    error,
                }
            }
            Err(error) => {
                let (transport, error) = match error {
                    SendError::Transient(error) => (true, error),
                    SendError::Permanent(error) => (false, error),
                };
                let error = truncate(&error);
                tracing::error!(id, kind, attempts, error, "mail given up");
                Verdict::Failed { error, transport }
            }
        }
    }

    /// Records the outcome of one message in a write of its own.
    async fn settle(&self, mail: Claimed, verdict: Verdict) -> anyhow::Result<()> {
        let (id, kind, attempts) = (mail.id, mail.kind.clone(), mail.attempts);
        let settled = self
            .db
            .write(move |tx| match &verdict {
                Verdict::Sent { at } => outbox::mark_sent(tx, &mail, *at),
                Verdict::Retry { at, error } => outbox::mark_retry(tx, &mail, *at, error),
                Verdict::Failed { error, .. } => outbox::mark_failed(tx, &mail, error),
            })
            .await?;
        if !settled {
            // Only possible if the send outlasted the lease and another
            // instance claimed the message again: its outcome is the one
            // recorded.
            tracing::warn!(
                id,
                kind,
                attempts,
                "mail claim lost before its outcome was recorded"
            );
        }
        Ok(())
    }

    /// Gives back, in one write, the claims of messages that were never tried:
    /// no attempt counted, due again at `due`.
    async fn release(&self, untried: Vec<Claimed>, due: NaiveDateTime) -> anyhow::Result<()> {
        if untried.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |tx| {
                untried
                    .iter()
                    .map(|mail| outbox::release(tx, mail, due))
                    .collect::<QueryResult<Vec<bool>>>()
            })
            .await?;
        Ok(())
    }

    async fn send(&self, lane: usize, mail: &Claimed) -> Result<(), SendError> {
        let message = self.build(mail)?;
        self.transport
            .send(lane, message)
            .await
            .map_err(SendError::Transient)
    }

    fn build(&self, mail: &Claimed) -> Result<Message, SendError> {
        // A bad sender address is a configuration mistake that a restart fixes;
        // the message itself is fine, so it waits.
        let from: Mailbox = self.from.parse().map_err(|e| {
            SendError::Transient(format!(
                "the sender address `{}` is invalid: {e}",
                self.from
            ))
        })?;
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e| SendError::Permanent(format!("the recipient address is invalid: {e}")))?;
        let message_id = self.ids.of(mail, &from);
        Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .message_id(Some(message_id))
            .body(mail.body_text.clone())
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

/// The batch's next message for a lane: none once the round has stopped, or
/// once the batch's claim is too old for a send started now to end inside
/// its lease.
fn next(batch: &Batch, round: &Round) -> Option<Claimed> {
    if round.stopped() || !may_start(batch.claimed_at.elapsed()) {
        return None;
    }
    batch.waiting().pop_front()
}

/// An error with its causes, as one line: lettre's top-level message alone often
/// says "Connection error" without the reason.
fn error_text(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// At most [`MAX_ERROR_CHARS`] characters, cut on a character boundary.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_send_started_within_the_budget_can_outlive_the_lease() {
        let lease = LEASE.to_std().unwrap();
        assert!(may_start(Duration::ZERO));
        assert!(may_start(SEND_BUDGET));
        assert!(!may_start(SEND_BUDGET + Duration::from_millis(1)));
        // The last send a batch may start ends, at its slowest, inside the lease.
        assert!(SEND_BUDGET + SEND_WORST_CASE < lease);
        assert_eq!(SEND_WORST_CASE, Duration::from_secs(110));
        // Enough time for a healthy server to take the whole batch.
        assert!(SEND_BUDGET >= Duration::from_secs(BATCH as u64 * 5));
    }

    #[test]
    fn backoff_starts_at_two_seconds_and_doubles() {
        assert_eq!(backoff(1), TimeDelta::seconds(2));
        assert_eq!(backoff(2), TimeDelta::seconds(4));
        assert_eq!(backoff(3), TimeDelta::seconds(8));
        assert_eq!(backoff(9), TimeDelta::seconds(512));
    }

    #[test]
    fn backoff_is_capped_at_ten_minutes() {
        assert_eq!(backoff(10), TimeDelta::minutes(10));
        assert_eq!(backoff(MAX_ATTEMPTS), TimeDelta::minutes(10));
        assert_eq!(backoff(i32::MAX), TimeDelta::minutes(10));
    }

    #[test]
    fn backoff_treats_nonsense_attempt_counts_as_the_first() {
        assert_eq!(backoff(0), TimeDelta::seconds(2));
        assert_eq!(backoff(-5), TimeDelta::seconds(2));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let korean = "연결 실패 ".repeat(200);
        let cut = truncate(&korean);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn error_text_includes_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = anyhow::Error::new(io).context("Connection error");
        let text = error_text(outer.as_ref());
        assert_eq!(text, "Connection error: refused");
    }

    fn claimed(recipient: &str) -> Claimed {
        Claimed {
            id: 1,
            recipient: recipient.into(),
            kind: "test".into(),
            subject: "마스크 예약 확인".into(),
            body_text: "예약이 확정되었습니다.".into(),
            attempts: 1,
            created_at: chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                .and_then(|d| d.and_hms_micro_opt(9, 0, 0, 123_456))
                .unwrap(),
        }
    }

    /// The pool is built lazily, so these senders never touch a database.
    fn sender_from(from: &str) -> Sender {
        let url = crate::db::DatabaseUrl::Sqlite("unused.db".into());
        let db = Db::new(
            &url,
            crate::db::PoolOptions {
                max_size: 1,
                acquire_timeout: Duration::from_secs(1),
            },
        );
        let transport = MailTransport::File("unused".into());
        Sender::new(
            db,
            transport,
            from.into(),
            MessageIds::for_base_url("https://mask.example"),
            Arc::new(Notify::new()),
        )
    }

    #[test]
    fn an_unparsable_recipient_is_a_permanent_failure() {
        let sender = sender_from("noreply@mask.example");
        assert!(matches!(
            sender.build(&claimed("not an address")),
            Err(SendError::Permanent(_))
        ));
        assert!(sender.build(&claimed("citizen@example.com")).is_ok());
    }

    #[test]
    fn a_message_id_names_the_row_its_creation_and_the_deployment_at_the_senders_domain() {
        let from: Mailbox = "공적 마스크 예약 <noreply@mask.example>".parse().unwrap();
        let ids = MessageIds::for_base_url("https://mask.example");
        let mail = claimed("citizen@example.com");
        let id = ids.of(&mail, &from);
        assert!(id.starts_with("<outbox-1.1796115600123456."), "{id}");
        assert!(id.ends_with("@mask.example>"), "{id}");
        // 64 bits of the base URL's hash, in hex.
        let deployment = id.split(['.', '@']).nth(2).unwrap();
        assert_eq!(deployment.len(), 16, "{id}");

        // Every attempt of the row, from any instance of the deployment.
        let again = Claimed {
            attempts: 5,
            ..claimed("citizen@example.com")
        };
        let other_instance = MessageIds::for_base_url("https://mask.example");
        assert_eq!(other_instance.of(&again, &from), id);
        // Another row, the same id handed out again after a restore, another
        // deployment: another message.
        let other_row = Claimed {
            id: 2,
            ..claimed("citizen@example.com")
        };
        let reused_id = Claimed {
            created_at: mail.created_at + TimeDelta::microseconds(1),
            ..claimed("citizen@example.com")
        };
        let staging = MessageIds::for_base_url("https://staging.mask.example");
        for other in [
            ids.of(&other_row, &from),
            ids.of(&reused_id, &from),
            staging.of(&mail, &from),
        ] {
            assert_ne!(other, id);
        }
    }

    #[test]
    fn the_built_message_carries_the_rows_message_id() {
        let sender = sender_from("noreply@mask.example");
        let message = sender.build(&claimed("citizen@example.com")).ok().unwrap();
        let formatted = String::from_utf8(message.formatted()).unwrap();
        let from: Mailbox = "noreply@mask.example".parse().unwrap();
        let expected = sender.ids.of(&claimed("citizen@example.com"), &from);
        assert!(
            formatted.contains(&format!("Message-ID: {expected}\r\n")),
            "{formatted}"
        );
    }

    #[test]
    fn a_bad_sender_address_leaves_the_message_waiting() {
        let sender = sender_from("no reply");
        assert!(matches!(
            sender.build(&claimed("citizen@example.com")),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn a_display_name_in_the_sender_address_is_accepted() {
        // The second is the MAIL_FROM default of a local run.
        for from in [
            "공적 마스크 예약 <noreply@mask.example>",
            "공적 마스크 예약 <no-reply@localhost>",
        ] {
            let sender = sender_from(from);
            assert!(
                sender.build(&claimed("citizen@example.com")).is_ok(),
                "{from}"
            );
        }
    }
}
