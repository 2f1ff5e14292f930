//! Reminder mail (SPEC §9): `reminder_lead_minutes` before a window starts,
//! each of its active reservations gets one e-mail with the store, its
//! address, the window and the pickup code. `0` turns reminders off.
//!
//! Once per reservation, across instances: the claim is a conditional update
//! (`SET reminded_at = now WHERE id = ? AND reminded_at IS NULL`) in the same
//! transaction as the outbox row, so the mail exists if and only if the claim
//! won. A reminder is written in the language the reservation was made in
//! (`reservations.mail_lang`), as its confirmation was.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};

use crate::db::schema::reservations;
use crate::db::{Db, DbError, Tx};
use crate::i18n::{Catalog, Lang, Tr};
use crate::jobs::{self, Job};
use crate::mail::outbox::{OutgoingMail, enqueue};
use crate::reservations::code;
use crate::reservations::status::ReservationStatus;

/// Reservations reminded per transaction.
pub const BATCH: i64 = 200;

/// The windows whose reservations are due for a reminder at `now`: those
/// starting after `now` and no later than `lead_minutes` from it, as the
/// (exclusive, inclusive) bounds of `starts_at`. `None` when reminders are off.
pub fn due_starts(now: DateTime<Utc>, lead_minutes: i32) -> Option<(NaiveDateTime, NaiveDateTime)> {
    (lead_minutes > 0).then(|| {
        let now = now.naive_utc();
        (now, now + TimeDelta::minutes(i64::from(lead_minutes)))
    })
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamp)]
    starts_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    ends_at: NaiveDateTime,
    #[diesel(sql_type = Integer)]
    quantity: i32,
    #[diesel(sql_type = Text)]
    pickup_code: String,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    user_name: String,
    #[diesel(sql_type = Text)]
    store_name: String,
    #[diesel(sql_type = Text)]
    addr: String,
    #[diesel(sql_type = Text)]
    mail_lang: String,
}

/// What a reminder needs besides the reservation.
pub struct Context<'a> {
    /// The service time zone, for the window's local times.
    pub timezone: Tz,
    pub grace_minutes: i32,
    /// The strings of every language; each mail is in its reservation's.
    pub catalog: &'a Arc<Catalog>,
    /// Where the link to the reservation points.
    pub base_url: &'a str,
}

/// The active reservations not yet reminded whose windows start after `$1`
/// and by `$2`, at most `$3`. `w.reserved > 0` is written out so that the
/// partial index can serve it.
static DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.id, w.starts_at, w.ends_at, r.quantity, r.pickup_code,
                u.email, u.name AS user_name, s.name AS store_name, s.addr, r.mail_lang
         FROM pickup_windows w
         JOIN reservations r ON r.window_id = w.id
         JOIN users u ON u.id = r.user_id
         JOIN stores s ON s.id = r.store_id
         WHERE w.reserved > 0 AND w.starts_at > $1 AND w.starts_at <= $2
           AND r.status = '{active}' AND r.reminded_at IS NULL
         ORDER BY w.starts_at, r.id
         LIMIT $3",
        active = ReservationStatus::Active.as_str(),
    )
});

/// Claims and queues up to [`BATCH`] reminders due at `now`; answers how many
/// this call queued (those another instance claimed first are not counted).
pub fn send_due(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    lead_minutes: i32,
    cx: &Context<'_>,
) -> QueryResult<usize> {
    let Some((after, until)) = due_starts(now, lead_minutes) else {
        return Ok(0);
    };
    let due: Vec<Due> = diesel::sql_query(DUE_SQL.as_str())
        .bind::<Timestamp, _>(after)
        .bind::<Timestamp, _>(until)
        .bind::<BigInt, _>(BATCH)
        .load(tx.conn())?;
    let now = now.naive_utc();
    let mut sent = 0;
    for r in &due {
        let claimed = diesel::update(
            reservations::table
                .filter(reservations::id.eq(r.id))
                .filter(reservations::status.eq(ReservationStatus::Active))
                .filter(reservations::reminded_at.is_null()),
        )
        .set(reservations::reminded_at.eq(now))
        .execute(tx.conn())?;
        if claimed == 1 {
            queue(tx, r, cx)?;
            sent += 1;
        }
    }
    Ok(sent)
}

fn queue(tx: &mut Tx<'_>, r: &Due, cx: &Context<'_>) -> QueryResult<i64> {
    let t = &Tr::new(
        cx.catalog.clone(),
        Lang::from_code(&r.mail_lang).unwrap_or(Lang::Ko),
    );
    let start = r.starts_at.and_utc().with_timezone(&cx.timezone);
    let end = r.ends_at.and_utc().with_timezone(&cx.timezone);
    let time = start.format("%H:%M").to_string();
    let window = format!(
        "{} {time}–{}",
        t.date(start.date_naive()),
        end.format("%H:%M")
    );
    let link = format!("{}/reservations/{}", cx.base_url, r.id);
    let body = t.fmt(
        "mail.reminder.body",
        &[
            ("name", &r.user_name),
            ("store", &r.store_name),
            ("addr", &r.addr),
            ("window", &window),
            ("quantity", &r.quantity),
            ("code", &code::display(&r.pickup_code)),
            ("link", &link),
            ("grace", &cx.grace_minutes),
        ],
    );
    let subject = t.fmt("mail.reminder.subject", &[("time", &time)]);
    enqueue(
        tx,
        &OutgoingMail {
            to: &r.email,
            kind: "reservation_reminder",
            subject: &subject,
            body_text: &body,
        },
    )
}

/// Queues every reminder due at `now`, a batch per transaction, with the
/// policy in force; answers how many this call queued.
pub async fn send_all(
    db: &Db,
    now: DateTime<Utc>,
    policy: &crate::policy::Policy,
    catalog: Arc<Catalog>,
    base_url: &str,
) -> Result<usize, DbError<diesel::result::Error>> {
    let (lead, timezone, grace) = (
        policy.reminder_lead_minutes,
        policy.timezone,
        policy.pickup_grace_minutes,
    );
    let mut total = 0;
    loop {
        let (catalog, base_url) = (catalog.clone(), base_url.to_owned());
        let n = db
            .write(move |tx| {
                let cx = Context {
                    timezone,
                    grace_minutes: grace,
                    catalog: &catalog,
                    base_url: &base_url,
                };
                send_due(tx, now, lead, &cx)
            })
            .await?;
        total += n;
        if i64::try_from(n).unwrap_or(i64::MAX) < BATCH {
            return Ok(total);
        }
    }
}

/// How often every instance looks for reminders to send.
pub const EVERY: Duration = Duration::from_secs(60);

/// The background job: [`send_all`] every `every` ([`EVERY`] when serving),
/// at the database's time ([`jobs::every`]).
pub async fn run_every(every: Duration, job: Job) {
    jobs::every(every, job, "reminders", |job, policy, now| async move {
        let sent = send_all(&job.db, now, &policy, job.catalog.clone(), &job.base_url).await;
        match sent {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(queued = n, "pickup reminders queued");
                job.mail_wake.notify_one();
            }
            // Counted in the line of the storage episode (db::storage).
            Err(DbError::StorageFull(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "pickup reminders failed; trying again in a minute")
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_are_due_for_windows_starting_within_the_lead_time() {
        let now = DateTime::parse_from_rfc3339("2020-03-12T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (after, until) = due_starts(now, 60).unwrap();
        let due = |start: NaiveDateTime| after < start && start <= until;
        let at = |minutes: i64| (now + TimeDelta::minutes(minutes)).naive_utc();
        assert!(!due(at(0)), "a window starting now is too late to remind");
        assert!(due(at(1)));
        assert!(due(at(60)));
        assert!(!due(at(61)), "too early");
        assert!(!due(at(-30)), "already started");
        assert_eq!(due_starts(now, 0), None, "0 turns reminders off");
    }
}
