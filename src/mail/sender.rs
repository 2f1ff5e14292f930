//! The background sender: claims due messages from the outbox, hands them to SMTP
//! or to the file transport, and records the outcome with retry and back-off.
//!
//! Several app instances may run a sender on one database; the claim in
//! [`super::outbox`] makes each message go out once. No transaction is open while
//! a message is being sent: a batch's claim commits first, its outcomes are a
//! second short write.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::QueryResult;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{FileTransport, Message, SmtpTransport, Transport as _};
use tokio::sync::Notify;

use super::outbox::{self, Claimed};
use crate::config::MailTransport;
use crate::db::Db;

/// Messages claimed together.
const BATCH: i64 = 20;
/// How long a claim keeps other instances off a message; a claim left by a
/// crashed instance comes due again after it.
const LEASE: TimeDelta = TimeDelta::minutes(5);
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The steps of one SMTP conversation (connect, greeting, EHLO, MAIL, RCPT,
/// DATA, the message, its answer, QUIT), each of which may use the whole
/// [`SMTP_TIMEOUT`].
const SMTP_STEPS: u32 = 9;
/// The longest one send can take.
const SEND_WORST_CASE: Duration = Duration::from_secs(SMTP_TIMEOUT.as_secs() * SMTP_STEPS as u64);
/// A batch starts a send only this long after its claim; what it has not
/// started by then is given back uncounted for the next round. A slow server
/// can thus never keep a send going past the lease, when another instance
/// could claim the same message and send it twice: twenty sends of the worst
/// case would take half an hour, five times the lease.
const SEND_BUDGET: Duration = Duration::from_secs(
    LEASE.num_seconds().unsigned_abs() - SEND_WORST_CASE.as_secs() - LEASE_MARGIN_SECS,
);
/// Room left between the last send's worst end and the lease's end.
const LEASE_MARGIN_SECS: u64 = 30;
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
    wake: Arc<Notify>,
    rush: Rush,
}

/// Tells the sender whether people are being turned away right now (the
/// waiting room has a line); `None`: never.
type Rush = Option<Arc<dyn Fn() -> bool + Send + Sync>>;

#[derive(Clone)]
enum Transport {
    Smtp(SmtpTransport),
    File(PathBuf),
}

impl Transport {
    /// Blocking: SMTP talks over the network, the file transport writes a file.
    fn send(&self, message: &Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).map(drop).map_err(|e| error_text(&e)),
            Transport::File(dir) => {
                // Created on every send, not once: the directory may be cleaned
                // out while the app runs.
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                FileTransport::new(dir)
                    .send(message)
                    .map(drop)
                    .map_err(|e| error_text(&e))
            }
        }
    }
}

/// What is to be recorded of one claimed message.
enum Verdict {
    /// The transport took it.
    Sent { at: NaiveDateTime },
    /// The transport did not take it; it is tried again at `at`.
    Retry { at: NaiveDateTime, error: String },
    /// Given up: the message cannot be sent, or (`transport`) the transport
    /// refused it on the last attempt.
    Failed { error: String, transport: bool },
    /// Not tried: the round stopped before it. Its claim is given back.
    Untried { due: NaiveDateTime },
}

/// Why a claimed message was not delivered.
enum SendError {
    /// Trying again cannot help (the recipient is not an address).
    Permanent(String),
    /// The server, the network or the disk may recover.
    Transient(String),
}

impl Sender {
    /// `from` is the sender address (`noreply@example.org` or
    /// `Name <noreply@example.org>`). `wake` lets a feature that has just enqueued
    /// mail get it sent at once rather than at the next poll.
    pub fn new(db: Db, transport: MailTransport, from: String, wake: Arc<Notify>) -> Sender {
        let transport = match transport {
            MailTransport::Smtp { host, port } => Transport::Smtp(
                SmtpTransport::builder_dangerous(host)
                    .port(port)
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            ),
            MailTransport::File(dir) => Transport::File(dir),
        };
        Sender {
            db,
            transport,
            from,
            wake,
            rush: None,
        }
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
    /// A batch costs two writes, whatever its size: one claims it, one records
    /// every outcome. Both go through the one write door (`Db::write`), so on
    /// SQLite they join the writer's groups instead of contending with it for
    /// the database's write lock.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        self.deliver(false).await
    }

    /// [`Sender::deliver_due`]; with `yield_to_rush`, stopping after any batch
    /// while the rush is on.
    async fn deliver(&self, yield_to_rush: bool) -> anyhow::Result<usize> {
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
            let claimed_at = std::time::Instant::now();
            let mut verdicts = Vec::with_capacity(claimed.len());
            let mut stopped = false;
            for mail in claimed {
                if !may_start(claimed_at.elapsed()) {
                    stopped = true;
                }
                let verdict = if stopped {
                    Verdict::Untried { due: now }
                } else {
                    self.try_one(&mail).await
                };
                match verdict {
                    Verdict::Sent { .. } => delivered += 1,
                    Verdict::Retry { .. }
                    | Verdict::Failed {
                        transport: true, ..
                    } => {
                        stopped = true;
                    }
                    Verdict::Failed { .. } | Verdict::Untried { .. } => {}
                }
                verdicts.push((mail, verdict));
            }
            self.settle(verdicts).await?;
            if stopped || !whole_batch || (yield_to_rush && self.in_rush()) {
                return Ok(delivered);
            }
            after_id = last;
        }
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
    async fn try_one(&self, mail: &Claimed) -> Verdict {
        // Recipients are personal data: logs name the message by id and kind only.
        let (id, kind, attempts) = (mail.id, mail.kind.as_str(), mail.attempts);
        match self.send(mail).await {
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

    /// Records the outcome of every message of a batch in one write.
    async fn settle(&self, verdicts: Vec<(Claimed, Verdict)>) -> anyhow::Result<()> {
        let names: Vec<(i64, String, i32)> = verdicts
            .iter()
            .map(|(m, _)| (m.id, m.kind.clone(), m.attempts))
            .collect();
        let settled = self
            .db
            .write(move |tx| {
                verdicts
                    .iter()
                    .map(|(mail, verdict)| match verdict {
                        Verdict::Sent { at } => outbox::mark_sent(tx, mail, *at),
                        Verdict::Retry { at, error } => outbox::mark_retry(tx, mail, *at, error),
                        Verdict::Failed { error, .. } => outbox::mark_failed(tx, mail, error),
                        Verdict::Untried { due } => outbox::release(tx, mail, *due),
                    })
                    .collect::<QueryResult<Vec<bool>>>()
            })
            .await?;
        for ((id, kind, attempts), settled) in names.into_iter().zip(settled) {
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
        }
        Ok(())
    }

    async fn send(&self, mail: &Claimed) -> Result<(), SendError> {
        let message = self.build(mail)?;
        let transport = self.transport.clone();
        // lettre's transports block; keep them off the async workers.
        match tokio::task::spawn_blocking(move || transport.send(&message)).await {
            Ok(result) => result.map_err(SendError::Transient),
            Err(e) => Err(SendError::Transient(format!("send task failed: {e}"))),
        }
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
        Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .message_id(None)
            .body(mail.body_text.clone())
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
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
        assert_eq!(SEND_WORST_CASE, Duration::from_secs(90));
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
        Sender::new(db, transport, from.into(), Arc::new(Notify::new()))
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
