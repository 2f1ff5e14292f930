//! Cancelling a reservation (SPEC §3): until the cut-off before its window
//! starts, the citizen gives back both the stock (to the window it came from)
//! and the quota, in one transaction with the ledger row and the mail — and
//! with the offer of the place to the first in the window's waiting list
//! (SPEC §13). [`give_back`] is the giving back, shared with the offers
//! declined or lapsed.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::db::schema::{pickup_windows, reservations, stock_ledger, store_days, stores, users};
use crate::db::{AsRetryable, Tx, is_retryable};
use crate::i18n::Tr;
use crate::mail::outbox::{OutgoingMail, enqueue};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::quota;
use crate::reservations::code;
use crate::reservations::rules;
use crate::reservations::status::ReservationStatus;
use crate::waitlist;

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No reservation with this id belongs to this user.
    #[error("no such reservation")]
    NotFound,
    /// Already cancelled, picked up or expired; `status` is what it is now.
    #[error("reservation is {status}")]
    NotActive { status: ReservationStatus },
    /// The cut-off before the window's start has passed.
    #[error("too late to cancel")]
    TooLate { deadline: NaiveDateTime },
    /// A counter did not hold what the reservation took: the data were
    /// already wrong, and nothing is changed.
    #[error("counters do not match reservation {0}")]
    Inconsistent(i64),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for CancelError {
    fn is_retryable(&self) -> bool {
        matches!(self, CancelError::Db(e) if is_retryable(e))
    }
}

type Found = (
    i32,
    i64,
    NaiveDate,
    i64,
    i64,
    NaiveDate,
    NaiveDateTime,
    NaiveDateTime,
    String,
    String,
    String,
    String,
);

/// Cancels reservation `reservation_id` of `user_id` at `now`; the mail is in
/// `t`'s language with its link under `base_url`.
pub fn cancel(
    tx: &mut Tx<'_>,
    user_id: i64,
    reservation_id: i64,
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<(), CancelError> {
    let found: Option<Found> = reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(stores::table)
        .inner_join(users::table.on(users::id.eq(reservations::user_id)))
        .filter(reservations::id.eq(reservation_id))
        .filter(reservations::user_id.eq(user_id))
        .select((
            reservations::quantity,
            reservations::person_id,
            reservations::period_start,
            reservations::window_id,
            pickup_windows::store_day_id,
            pickup_windows::day,
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            stores::name,
            users::email,
            users::name,
            reservations::pickup_code,
        ))
        .first(tx.conn())
        .optional()?;
    let Some((
        q,
        person_id,
        period_start,
        window_id,
        store_day_id,
        day,
        starts_at,
        ends_at,
        store,
        email,
        name,
        pickup_code,
    )) = found
    else {
        return Err(CancelError::NotFound);
    };
    let quantity = Quantity::from_stored(q)?;
    let at = now.naive_utc();

    let changed = diesel::update(
        reservations::table
            .filter(reservations::id.eq(reservation_id))
            .filter(reservations::user_id.eq(user_id))
            .filter(reservations::status.eq(ReservationStatus::Active)),
    )
    .set((
        reservations::status.eq(ReservationStatus::Cancelled),
        reservations::cancelled_at.eq(at),
        reservations::updated_at.eq(at),
    ))
    .execute(tx.conn())?;
    if changed != 1 {
        let status = reservations::table
            .find(reservation_id)
            .select(reservations::status)
            .first(tx.conn())?;
        return Err(CancelError::NotActive { status });
    }
    if !rules::cancellable(policy, now, starts_at) {
        return Err(CancelError::TooLate {
            deadline: rules::cancel_deadline(policy, starts_at),
        });
    }

    let held = Held {
        reservation_id,
        window_id,
        store_day_id,
        person_id,
        period_start,
        quantity,
    };
    if !give_back(tx, &held, Some(user_id), at)? {
        return Err(CancelError::Inconsistent(reservation_id));
    }

    let body = t.fmt(
        "mail.reservation_cancelled.body",
        &[
            ("name", &name),
            ("store", &store),
            ("date", &t.date(day)),
            (
                "time",
                &rules::time_range(policy.timezone, starts_at, ends_at),
            ),
            ("quantity", &q),
            ("code", &code::display(&pickup_code)),
            ("link", &format!("{base_url}/reservations/{reservation_id}")),
        ],
    );
    enqueue(
        tx,
        &OutgoingMail {
            to: &email,
            kind: "reservation_cancelled",
            subject: &t.fmt(
                "mail.reservation_cancelled.subject",
                &[("date", &t.date(day)), ("store", &store)],
            ),
            body_text: &body,
        },
    )?;
    // The place freed goes to the first in the window's waiting list, in
    // this same transaction: no booking can take it in between.
    waitlist::offer_freed(tx, window_id, now, policy, t, base_url)?;
    Ok(())
}

/// What a reservation that holds places holds: what giving it back moves.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub reservation_id: i64,
    pub window_id: i64,
    pub store_day_id: i64,
    pub person_id: i64,
    pub period_start: NaiveDate,
    pub quantity: Quantity,
}

/// Gives back what `held` held — its places to the window and the store-day,
/// its quota to its person — with the ledger row (`cancel`, by `actor`), at
/// `at`: a cancel, a declined or lapsed offer. The reservation's own status is
/// the caller's, changed first by a conditional update that decided the
/// race. `false` when a counter did not hold the quantity: the data were
/// already wrong, and the caller's transaction must not go on.
pub fn give_back(
    tx: &mut Tx<'_>,
    held: &Held,
    actor: Option<i64>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let q = held.quantity.get();
    let window = diesel::update(
        pickup_windows::table
            .filter(pickup_windows::id.eq(held.window_id))
            .filter(pickup_windows::reserved.ge(q)),
    )
    .set(pickup_windows::reserved.eq(pickup_windows::reserved - q))
    .execute(tx.conn())?;
    let day_row = diesel::update(
        store_days::table
            .filter(store_days::id.eq(held.store_day_id))
            .filter(store_days::reserved.ge(q)),
    )
    .set((
        store_days::reserved.eq(store_days::reserved - q),
        store_days::stock_changed_at.eq(at),
    ))
    .execute(tx.conn())?;
    if window != 1
        || day_row != 1
        || !quota::give_back(tx, held.person_id, held.period_start, held.quantity)?
    {
        return Ok(false);
    }
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(held.store_day_id),
            stock_ledger::window_id.eq(held.window_id),
            stock_ledger::reservation_id.eq(held.reservation_id),
            stock_ledger::kind.eq("cancel"),
            stock_ledger::reserved_delta.eq(-q),
            stock_ledger::actor_user_id.eq(actor),
            stock_ledger::created_at.eq(at),
        ))
        .execute(tx.conn())?;
    Ok(true)
}
