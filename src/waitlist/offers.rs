//! Offers from a waiting list (SPEC §13): a place freed in a window before it
//! starts goes to the first in its line whose quota allows, as a reservation
//! in status `offered` held until `offer_until`; the citizen accepts it (an
//! active reservation with its pickup code) or declines it, and one not
//! accepted in time lapses. A declined or lapsed offer gives its place and
//! quota back ([`cancel::give_back`]) and the place is offered again.
//!
//! The offer is made by the ordinary booking function ([`booking::book`],
//! [`Hold::Offer`]): the same conditional takes of the quota, the window and
//! the store-day decide it, so invariants 1 and 2 hold with offers counted as
//! taken. [`offer_freed`] runs in the transaction that freed the place — a
//! cancel, a decline, a lapse, a capacity raised — so no booking can take the
//! place in between; the minute job ([`run_once`], every instance) also
//! offers whatever room a line still faces, and ends the offers whose hold has
//! passed.
//!
//! Races: each offer's place in line is claimed by a conditional update
//! (`offer_id IS NULL`) in the booking's savepoint, so two instances running
//! the step at once give one place one offer; accepting, declining and
//! lapsing each change the status from `offered` by a conditional update, so
//! an offer accepted as it lapses is either accepted or passed on, never both.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Timestamp};

use crate::db::schema::{pickup_windows, reservations, stores, users, waitlist};
use crate::db::{self, AsRetryable, Db, DbError, Tx, is_retryable};
use crate::i18n::{Lang, Tr};
use crate::jobs::{self, Job};
use crate::mail::outbox::{OutgoingMail, enqueue};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::reservations::booking::{self, BookError, ForWhom, Hold, Request};
use crate::reservations::cancel::{Held, give_back};
use crate::reservations::code;
use crate::reservations::rules::{self, Refusal};
use crate::reservations::status::ReservationStatus;
use crate::stock::StockWindow;
use crate::waitlist::line;

/// Why an offer could not be accepted or declined.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// No reservation with this id belongs to this account.
    #[error("no such reservation")]
    NotFound,
    /// It is not (or no longer) an offer: `status` is what it is now.
    #[error("reservation is {status}")]
    NotOffered { status: ReservationStatus },
    /// The hold has passed: the offer is being passed on.
    #[error("the offer's hold has passed")]
    Lapsed,
    /// A counter did not hold what the offer took: nothing is changed.
    #[error("counters do not match reservation {0}")]
    Inconsistent(i64),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for OfferError {
    fn is_retryable(&self) -> bool {
        matches!(self, OfferError::Db(e) if is_retryable(e))
    }
}

/// How long a place is held for the one it is offered to at `now`: the
/// policy's hold, but never past the window's start, when offers end.
pub fn hold_until(policy: &Policy, now: DateTime<Utc>, starts_at: NaiveDateTime) -> DateTime<Utc> {
    let held = now + TimeDelta::minutes(i64::from(policy.waitlist_hold_minutes));
    held.min(starts_at.and_utc())
}

/// A place in line, as the offer step reads it.
type Place = (i64, i64, Option<i64>, i32, String);

/// Offers the room `window_id` has at `now` to those waiting in its line, in
/// order, each to the first whose request fits the room and whose quota
/// allows it; answers how many offers were made. Nothing when the window has
/// started. `t` is any translator of the catalog: each mail is written in the
/// language its citizen queued in.
pub fn offer_freed(
    tx: &mut Tx<'_>,
    window_id: i64,
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> QueryResult<usize> {
    let window: Option<(NaiveDateTime, i32, i32, i32)> = pickup_windows::table
        .find(window_id)
        .select((
            pickup_windows::starts_at,
            pickup_windows::capacity,
            pickup_windows::reserved,
            pickup_windows::picked_up,
        ))
        .first(tx.conn())
        .optional()?;
    let Some((starts_at, capacity, reserved, picked_up)) = window else {
        return Ok(0);
    };
    if starts_at <= now.naive_utc() {
        return Ok(0);
    }
    let mut free = StockWindow {
        capacity,
        reserved,
        picked_up,
    }
    .remaining();
    if free <= 0 {
        return Ok(0);
    }
    let line: Vec<Place> = waitlist::table
        .filter(waitlist::window_id.eq(window_id))
        .filter(waitlist::offer_id.is_null())
        .order(waitlist::id)
        .select((
            waitlist::id,
            waitlist::user_id,
            waitlist::dependant_id,
            waitlist::quantity,
            waitlist::mail_lang,
        ))
        .load(tx.conn())?;
    let until = hold_until(policy, now, starts_at);
    let mut offered = 0;
    for (place, user_id, dependant_id, wanted, lang) in line {
        if wanted > free {
            continue;
        }
        let Ok(quantity) = Quantity::from_stored(wanted) else {
            continue;
        };
        let req = Request {
            user_id,
            window_id,
            quantity,
            request_id: None,
            person: dependant_id.map_or(ForWhom::Own, ForWhom::Dependant),
            now,
            session: None,
            hold: Hold::Offer { until },
        };
        let t = t.in_lang(Lang::from_code(&lang).unwrap_or(Lang::Ko));
        let made = db::savepoint(tx, |tx| {
            let booked = booking::book(tx, &req, policy, &t, base_url)?;
            let claimed = diesel::update(
                waitlist::table
                    .filter(waitlist::id.eq(place))
                    .filter(waitlist::offer_id.is_null()),
            )
            .set(waitlist::offer_id.eq(booked.reservation_id))
            .execute(tx.conn())?;
            // Another instance offered this place first: this booking is
            // undone with the savepoint.
            if claimed != 1 {
                return Err(BookError::Raced);
            }
            line::withdraw_rest_of_day(tx, place)?;
            Ok(booked)
        });
        match made {
            Ok(_) => {
                offered += 1;
                free -= wanted;
                if free <= 0 {
                    break;
                }
            }
            // The room went meanwhile (another instance offered it first).
            Err(BookError::Refused(Refusal::WindowFull { .. } | Refusal::SoldOut)) => break,
            // This person cannot take it now (their quota went elsewhere,
            // their link ended, the account was disabled): they keep their
            // place in line and the next is asked.
            Err(
                BookError::Refused(_)
                | BookError::SessionEnded
                | BookError::Raced
                | BookError::CodeTaken
                | BookError::NoFreeCode
                | BookError::NotAll,
            ) => {}
            Err(BookError::Db(e)) => return Err(e),
        }
    }
    Ok(offered)
}

/// What the offer's reservation holds, with what its mails say.
struct Offer {
    held: Held,
    status: ReservationStatus,
    offer_until: Option<NaiveDateTime>,
    day: NaiveDate,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    store_name: String,
    pickup_code: String,
    email: String,
    name: String,
}

type OfferRow = (
    (
        i64,
        i64,
        i64,
        NaiveDate,
        i32,
        ReservationStatus,
        Option<NaiveDateTime>,
    ),
    (i64, NaiveDate, NaiveDateTime, NaiveDateTime),
    String,
    String,
    (String, String),
);

/// Reservation `id` of `user_id`, as accepting or declining needs it.
fn offer_of(tx: &mut Tx<'_>, user_id: i64, id: i64) -> Result<Offer, OfferError> {
    let row: Option<OfferRow> = reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(stores::table)
        .inner_join(users::table.on(users::id.eq(reservations::user_id)))
        .filter(reservations::id.eq(id))
        .filter(reservations::user_id.eq(user_id))
        .select((
            (
                reservations::id,
                reservations::window_id,
                reservations::person_id,
                reservations::period_start,
                reservations::quantity,
                reservations::status,
                reservations::offer_until,
            ),
            (
                pickup_windows::store_day_id,
                pickup_windows::day,
                pickup_windows::starts_at,
                pickup_windows::ends_at,
            ),
            stores::name,
            reservations::pickup_code,
            (users::email, users::name),
        ))
        .first(tx.conn())
        .optional()?;
    let Some((
        (reservation_id, window_id, person_id, period_start, q, status, offer_until),
        (store_day_id, day, starts_at, ends_at),
        store_name,
        pickup_code,
        (email, name),
    )) = row
    else {
        return Err(OfferError::NotFound);
    };
    Ok(Offer {
        held: Held {
            reservation_id,
            window_id,
            store_day_id,
            person_id,
            period_start,
            quantity: Quantity::from_stored(q)?,
        },
        status,
        offer_until,
        day,
        starts_at,
        ends_at,
        store_name,
        pickup_code,
        email,
        name,
    })
}

/// Moves reservation `id` from `offered` to `to`, if it is still an offer
/// held at `now` (`held: true`) or one whose hold has passed (`held:
/// false`). One row changed means this call decided the offer.
fn settle(
    tx: &mut Tx<'_>,
    id: i64,
    to: ReservationStatus,
    now: NaiveDateTime,
    held: bool,
) -> QueryResult<bool> {
    let offer = reservations::table
        .filter(reservations::id.eq(id))
        .filter(reservations::status.eq(ReservationStatus::Offered));
    let set = (
        reservations::status.eq(to),
        reservations::updated_at.eq(now),
    );
    let changed = if held {
        diesel::update(offer.filter(reservations::offer_until.gt(now)))
            .set(set)
            .execute(tx.conn())?
    } else {
        diesel::update(offer.filter(reservations::offer_until.le(now)))
            .set(set)
            .execute(tx.conn())?
    };
    Ok(changed == 1)
}

/// Why `offer` could not be settled: what it is now.
fn not_settled(offer: &Offer, now: NaiveDateTime) -> OfferError {
    match (offer.status, offer.offer_until) {
        (ReservationStatus::Offered, Some(until)) if until <= now => OfferError::Lapsed,
        (status, _) => OfferError::NotOffered { status },
    }
}

/// Accepts offer `id` of `user_id` at `now`: it becomes an active
/// reservation, its place in line goes, and the mail gives the pickup code.
pub fn accept(
    tx: &mut Tx<'_>,
    user_id: i64,
    id: i64,
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<(), OfferError> {
    let offer = offer_of(tx, user_id, id)?;
    let at = now.naive_utc();
    if !settle(tx, id, ReservationStatus::Active, at, true)? {
        return Err(not_settled(&offer, at));
    }
    diesel::delete(waitlist::table.filter(waitlist::offer_id.eq(id))).execute(tx.conn())?;
    let time = rules::time_range(policy.timezone, offer.starts_at, offer.ends_at);
    let body = t.fmt(
        "mail.waitlist_accepted.body",
        &[
            ("name", &offer.name),
            ("store", &offer.store_name),
            ("date", &t.date(offer.day)),
            ("time", &time),
            ("quantity", &offer.held.quantity),
            ("code", &code::display(&offer.pickup_code)),
            ("link", &format!("{base_url}/reservations/{id}")),
        ],
    );
    enqueue(
        tx,
        &OutgoingMail {
            to: &offer.email,
            kind: "waitlist_accepted",
            subject: &t.fmt(
                "mail.waitlist_accepted.subject",
                &[("date", &t.date(offer.day)), ("store", &offer.store_name)],
            ),
            body_text: &body,
        },
    )?;
    Ok(())
}

/// Declines offer `id` of `user_id` at `now`: its place and quota go back
/// and the place is offered to the next in line.
pub fn decline(
    tx: &mut Tx<'_>,
    user_id: i64,
    id: i64,
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<(), OfferError> {
    let offer = offer_of(tx, user_id, id)?;
    let at = now.naive_utc();
    if !settle(tx, id, ReservationStatus::Declined, at, true)? {
        return Err(not_settled(&offer, at));
    }
    pass_on(tx, &offer.held, Some(user_id), now, policy, t, base_url)
}

/// Gives back what an ended offer held, drops its place in line, and offers
/// the place again.
fn pass_on(
    tx: &mut Tx<'_>,
    held: &Held,
    actor: Option<i64>,
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<(), OfferError> {
    if !give_back(tx, held, actor, now.naive_utc())? {
        return Err(OfferError::Inconsistent(held.reservation_id));
    }
    diesel::delete(waitlist::table.filter(waitlist::offer_id.eq(held.reservation_id)))
        .execute(tx.conn())?;
    offer_freed(tx, held.window_id, now, policy, t, base_url)?;
    Ok(())
}

/// Offers ended per transaction by the job.
pub const BATCH: i64 = 100;

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
}

/// Lapses up to [`BATCH`] offers whose hold passed by `now`, passing each
/// place on; answers how many this call lapsed (those accepted or declined
/// meanwhile are not counted).
pub fn lapse_due(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<usize, OfferError> {
    let due: Vec<Due> = diesel::sql_query(format!(
        "SELECT id, user_id FROM reservations \
         WHERE status = '{offered}' AND offer_until <= $1 ORDER BY offer_until, id LIMIT $2",
        offered = ReservationStatus::Offered.as_str()
    ))
    .bind::<Timestamp, _>(now.naive_utc())
    .bind::<BigInt, _>(BATCH)
    .load(tx.conn())?;
    let at = now.naive_utc();
    let mut lapsed = 0;
    for d in due {
        let offer = offer_of(tx, d.user_id, d.id)?;
        if settle(tx, d.id, ReservationStatus::Lapsed, at, false)? {
            pass_on(tx, &offer.held, None, now, policy, t, base_url)?;
            lapsed += 1;
        }
    }
    Ok(lapsed)
}

#[derive(QueryableByName)]
struct Facing {
    #[diesel(sql_type = BigInt)]
    window_id: i64,
}

/// Windows not started at `$1` with room and someone waiting, at most `$2`.
const FACING_ROOM_SQL: &str = "\
SELECT DISTINCT e.window_id FROM waitlist e \
JOIN pickup_windows w ON w.id = e.window_id \
WHERE e.offer_id IS NULL AND w.starts_at > $1 AND w.reserved + w.picked_up < w.capacity \
ORDER BY e.window_id LIMIT $2";

/// What one round of the job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Offers whose hold passed, passed on.
    pub lapsed: usize,
    /// Offers made to lines that faced room no transaction had offered.
    pub offered: usize,
    /// Places in lines of windows that started, taken away.
    pub cleared: usize,
}

/// One round at `now`: lapse the offers whose hold has passed (each passing
/// its place on), offer whatever room lines still face (a capacity raised by
/// an import, a transaction that failed after freeing a place), and clear
/// the lines of windows that have started. Idempotent: another instance
/// running it at once changes nothing twice.
pub async fn run_once(
    db: &Db,
    now: DateTime<Utc>,
    policy: Arc<Policy>,
    t: Tr,
    base_url: String,
) -> Result<Round, DbError<OfferError>> {
    let mut round = Round::default();
    loop {
        let (p, t, b) = (policy.clone(), t.clone(), base_url.clone());
        let n = db.write(move |tx| lapse_due(tx, now, &p, &t, &b)).await?;
        round.lapsed += n;
        if i64::try_from(n).unwrap_or(i64::MAX) < BATCH {
            break;
        }
    }
    let windows: Vec<Facing> = db
        .run(move |conn| {
            diesel::sql_query(FACING_ROOM_SQL)
                .bind::<Timestamp, _>(now.naive_utc())
                .bind::<BigInt, _>(BATCH)
                .load(conn)
                .map_err(OfferError::from)
        })
        .await?;
    for w in windows {
        let (p, t, b) = (policy.clone(), t.clone(), base_url.clone());
        round.offered += db
            .write(move |tx| {
                offer_freed(tx, w.window_id, now, &p, &t, &b).map_err(OfferError::from)
            })
            .await?;
    }
    round.cleared = db
        .write(move |tx| {
            let started = pickup_windows::table
                .filter(pickup_windows::starts_at.le(now.naive_utc()))
                .select(pickup_windows::id);
            diesel::delete(
                waitlist::table
                    .filter(waitlist::offer_id.is_null())
                    .filter(waitlist::window_id.eq_any(started)),
            )
            .execute(tx.conn())
            .map_err(OfferError::from)
        })
        .await?;
    Ok(round)
}

/// How often every instance runs [`run_once`].
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The background job: [`run_once`] every `every` ([`EVERY`] when serving),
/// at the database's time ([`jobs::every`]: not at all while this machine's
/// clock is off it — a clock an hour ahead would lapse every offer at once).
pub async fn run_every(every: std::time::Duration, job: Job) {
    jobs::every(every, job, "waiting lists", |job, policy, now| async move {
        let t = Tr::new(job.catalog.clone(), Lang::Ko);
        match run_once(&job.db, now, policy, t, job.base_url.clone()).await {
            Ok(round) => {
                if round.lapsed + round.offered > 0 {
                    tracing::info!(
                        lapsed = round.lapsed,
                        offered = round.offered,
                        "waiting-list offers passed on"
                    );
                    job.mail_wake.notify_one();
                }
            }
            Err(DbError::StorageFull(_)) => {}
            Err(e) => tracing::warn!(error = %e, "waiting lists failed; trying again in a minute"),
        }
    })
    .await;
}
