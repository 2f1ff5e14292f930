//! The `mail_outbox` table: enqueueing a message inside the caller's transaction,
//! and the claim and settle statements the sender uses so that several app
//! instances never send one message at the same time.
//!
//! A row is `pending` until it is delivered (`sent`) or given up on (`failed`).
//! `next_attempt_at` is both the retry schedule and the claim lease: claiming a row
//! moves it into the future, so no other instance sees it as due while it is being
//! sent, and a claim left behind by a crashed instance comes due again on its own.
//!
//! A message's subject and body (verification and reset links, pickup codes,
//! names) are kept only while it is pending: the statement that marks it `sent`
//! or `failed` also erases them, so a later read of the table (a backup, a
//! leaked dump, an operator's query) finds no link that still works. What stays
//! is what an operator needs: recipient, kind, status, attempts, timestamps and
//! the last error. A pending message does hold its link in clear, for as long as
//! delivery takes (seconds, or the length of an SMTP outage); the link's own
//! expiry bounds that further.

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;

use crate::db::Tx;
use crate::db::schema::mail_outbox;

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
/// What a settled message's subject and body become (the columns are `NOT NULL`).
pub const ERASED: &str = "";

/// A message to send, as a feature hands it over.
pub struct OutgoingMail<'a> {
    pub to: &'a str,
    /// What the message is about (`verify_email`, `reservation_confirmed`, …), for
    /// logs and counts; the sender does not interpret it.
    pub kind: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
}

/// Inserts a pending message, due at once. Called inside the caller's write
/// transaction, so the mail exists if and only if the change it reports does.
/// Booking on PostgreSQL writes this same row as a step of its one statement
/// (`reservations::booking::pg`): a change here is a change there, which
/// `tests/api/booking_steps.rs` compares.
pub fn enqueue(tx: &mut Tx<'_>, mail: &OutgoingMail<'_>) -> QueryResult<i64> {
    let now = Utc::now().naive_utc();
    crate::on_each_backend!(tx.conn(), |c| {
        diesel::insert_into(mail_outbox::table)
            .values((
                mail_outbox::recipient.eq(mail.to),
                mail_outbox::kind.eq(mail.kind),
                mail_outbox::subject.eq(mail.subject),
                mail_outbox::body_text.eq(mail.body_text),
                mail_outbox::status.eq(PENDING),
                mail_outbox::attempts.eq(0),
                mail_outbox::next_attempt_at.eq(now),
                mail_outbox::created_at.eq(now),
            ))
            .returning(mail_outbox::id)
            .get_result(c)
    })
}

/// A message this instance has claimed and may now send.
#[derive(Debug, Queryable)]
pub(crate) struct Claimed {
    pub id: i64,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub body_text: String,
    /// The attempt count after this claim. It doubles as a fencing token: the
    /// settle statements only touch the row if no later claim has raised it.
    pub attempts: i32,
    /// When the message was enqueued; with the id, it names the message for
    /// good (`sender::MessageIds`), even across a restored backup that hands
    /// out the same ids again.
    pub created_at: NaiveDateTime,
}

/// Claims up to `limit` pending messages due at `now`, above `after_id`, with a
/// single conditional update: it counts each one's attempt and pushes its
/// `next_attempt_at` a lease into the future, but only for rows still pending
/// and due. Of several instances racing for a row exactly one update matches
/// it (on PostgreSQL the losers wait on the row lock, then re-check the
/// condition against the committed row); the rows coming back through
/// `RETURNING` are the ones this call won, oldest first. Fewer than `limit`
/// means fewer were due, or another instance has the others.
pub(crate) fn claim_due(
    tx: &mut Tx<'_>,
    now: NaiveDateTime,
    after_id: i64,
    limit: i64,
    lease: TimeDelta,
) -> QueryResult<Vec<Claimed>> {
    // The candidates are read first, inside the same transaction; the update
    // re-checks each one, so a candidate another instance claimed in between
    // is simply not returned.
    let candidates: Vec<i64> = mail_outbox::table
        .filter(mail_outbox::status.eq(PENDING))
        .filter(mail_outbox::next_attempt_at.le(now))
        .filter(mail_outbox::id.gt(after_id))
        .order(mail_outbox::id)
        .limit(limit)
        .select(mail_outbox::id)
        .load(tx.conn())?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut claimed: Vec<Claimed> = diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq_any(candidates))
            .filter(mail_outbox::status.eq(PENDING))
            .filter(mail_outbox::next_attempt_at.le(now)),
    )
    .set((
        mail_outbox::attempts.eq(mail_outbox::attempts + 1),
        mail_outbox::next_attempt_at.eq(now + lease),
    ))
    .returning((
        mail_outbox::id,
        mail_outbox::recipient,
        mail_outbox::kind,
        mail_outbox::subject,
        mail_outbox::body_text,
        mail_outbox::attempts,
        mail_outbox::created_at,
    ))
    .get_results(tx.conn())?;
    claimed.sort_by_key(|m| m.id);
    Ok(claimed)
}

/// Gives back a claim that was never tried (the round stopped before it): the
/// attempt is not counted and the message is due again at `due`. `false` when
/// the claim is no longer ours.
pub(crate) fn release(tx: &mut Tx<'_>, claimed: &Claimed, due: NaiveDateTime) -> QueryResult<bool> {
    let updated = diesel::update(still_ours(claimed.id, claimed.attempts))
        .set((
            mail_outbox::attempts.eq(mail_outbox::attempts - 1),
            mail_outbox::next_attempt_at.eq(due),
        ))
        .execute(tx.conn())?;
    Ok(updated == 1)
}

/// Records a delivery. `false` if the claim had been lost (see [`Claimed::attempts`]).
pub(crate) fn mark_sent(
    tx: &mut Tx<'_>,
    claimed: &Claimed,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(still_ours(claimed.id, claimed.attempts))
        .set((
            mail_outbox::status.eq(SENT),
            mail_outbox::sent_at.eq(now),
            mail_outbox::last_error.eq(None::<String>),
            mail_outbox::subject.eq(ERASED),
            mail_outbox::body_text.eq(ERASED),
            mail_outbox::body_html.eq(None::<String>),
        ))
        .execute(tx.conn())?;
    Ok(updated == 1)
}

/// Records a failed attempt to be retried at `retry_at`.
pub(crate) fn mark_retry(
    tx: &mut Tx<'_>,
    claimed: &Claimed,
    retry_at: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    let updated = diesel::update(still_ours(claimed.id, claimed.attempts))
        .set((
            mail_outbox::next_attempt_at.eq(retry_at),
            mail_outbox::last_error.eq(error),
        ))
        .execute(tx.conn())?;
    Ok(updated == 1)
}

/// Gives up on a message for good.
pub(crate) fn mark_failed(tx: &mut Tx<'_>, claimed: &Claimed, error: &str) -> QueryResult<bool> {
    let updated = diesel::update(still_ours(claimed.id, claimed.attempts))
        .set((
            mail_outbox::status.eq(FAILED),
            mail_outbox::last_error.eq(error),
            mail_outbox::subject.eq(ERASED),
            mail_outbox::body_text.eq(ERASED),
            mail_outbox::body_html.eq(None::<String>),
        ))
        .execute(tx.conn())?;
    Ok(updated == 1)
}

/// The claimed row, as long as no other instance has claimed it since.
#[diesel::dsl::auto_type(no_type_alias)]
fn still_ours(id: i64, attempts: i32) -> _ {
    let pending: &'static str = PENDING;
    mail_outbox::table
        .filter(mail_outbox::id.eq(id))
        .filter(mail_outbox::status.eq(pending))
        .filter(mail_outbox::attempts.eq(attempts))
}
