//! Running a draw once its registration has closed: exactly one instance at a
//! time, resumable wherever it stopped.
//!
//! 1. **Claim** ([`claim`]): a conditional update of the draw's row takes its
//!    lease (`claimed_at`), which a run renews with every batch and another
//!    instance may take over only once it is [`LEASE`] old — so two instances
//!    never settle registrations at once, and a run that died is taken over.
//! 2. **Freeze**, in the claim's transaction the first time: the
//!    registrations become the published list, whose digest and the
//!    committed secret give the seed (`seed.rs`); each window's free places
//!    are recorded (`draw_windows.free_at_start`).
//! 3. **Settle** in drawn order (`order.rs`), [`BATCH`] registrations per
//!    transaction: each gets its highest choice that has room and that its
//!    person's quota allows, booked by the ordinary booking function
//!    ([`Hold::Draw`], each try in a savepoint), with its place, the quota it
//!    had left for each choice and its outcome written in the same
//!    transaction, and the draw's `drawn` moved on under the lease. A run that
//!    dies loses at most its open batch, which rolled back whole: the next run
//!    goes on from `drawn`, so nobody is booked twice and nobody skipped.
//! 4. **Done**: the draw's windows are ordinary again (`draw_id` cleared).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::clock::Clock;
use crate::db::schema::{draw_entries, draw_windows, draws, pickup_windows};
use crate::db::{self, AsRetryable, Db, DbConnection, DbError, Tx, is_retryable};
use crate::draws::order::permutation;
use crate::draws::seed::{self, Registration, Secret};
use crate::i18n::{Lang, Tr};
use crate::jobs::{self, Job};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::quota;
use crate::reservations::booking::{self, BookError, ForWhom, Hold, Request};
use crate::reservations::rules;

/// How long a run's claim holds without a batch renewing it.
pub const LEASE: TimeDelta = TimeDelta::minutes(2);

/// Registrations settled per transaction.
pub const BATCH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another instance took the run over (this one's lease had expired).
    #[error("the draw's lease was taken over")]
    LostLease,
    /// The registrations changed after they were frozen, or the stored seed
    /// is not the one the secret and the list give: nothing more is settled.
    #[error("the frozen registrations no longer give the draw's seed")]
    Tampered,
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for RunError {
    fn is_retryable(&self) -> bool {
        matches!(self, RunError::Db(e) if is_retryable(e))
    }
}

/// What a call to [`run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Registration has not closed, or the draw is done.
    NotDue,
    /// Another instance holds the run.
    Busy,
    /// Stopped after the batches asked for, `drawn` registrations settled.
    Stopped { drawn: usize },
    /// Every registration settled: the draw is done.
    Done { won: usize, not_drawn: usize },
}

/// Takes the run of draw `draw_id` at `now` if its registration has closed
/// and nobody holds it; freezes its registrations the first time. Answers
/// the lease's token (the `claimed_at` written), or `None`.
pub fn claim(
    tx: &mut Tx<'_>,
    draw_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    let taken = diesel::update(
        draws::table
            .filter(draws::id.eq(draw_id))
            .filter(draws::state.ne("done"))
            .filter(draws::closes_at.le(now))
            .filter(
                draws::claimed_at
                    .is_null()
                    .or(draws::claimed_at.le(now - LEASE)),
            ),
    )
    .set(draws::claimed_at.eq(now))
    .execute(tx.conn())?;
    if taken != 1 {
        return Ok(None);
    }
    let (state, secret): (String, String) = draws::table
        .find(draw_id)
        .select((draws::state, draws::secret))
        .first(tx.conn())?;
    if state == "open" {
        let Some(secret) = Secret::parse_hex(&secret) else {
            return Err(DieselError::QueryBuilderError(
                "a draw's secret is not hex".into(),
            ));
        };
        let list = registrations(tx.conn(), draw_id)?;
        let digest = seed::registrations_digest(&list);
        let drawn_seed = seed::seed(&secret, &digest);
        diesel::update(draws::table.find(draw_id))
            .set((
                draws::state.eq("drawing"),
                draws::digest.eq(seed::to_hex(&digest)),
                draws::seed.eq(seed::to_hex(&drawn_seed)),
            ))
            .execute(tx.conn())?;
        let free = pickup_windows::table
            .filter(pickup_windows::id.eq(draw_windows::window_id))
            .select(pickup_windows::capacity - pickup_windows::reserved - pickup_windows::picked_up)
            .single_value();
        diesel::update(draw_windows::table.filter(draw_windows::draw_id.eq(draw_id)))
            .set(draw_windows::free_at_start.eq(free))
            .execute(tx.conn())?;
    }
    Ok(Some(now))
}

type RegistrationRow = (i64, String, i32, i64, Option<i64>, Option<i64>);

/// The draw's registrations as its published list has them, by id.
pub fn registrations(conn: &mut DbConnection, draw_id: i64) -> QueryResult<Vec<Registration>> {
    let rows: Vec<RegistrationRow> = draw_entries::table
        .filter(draw_entries::draw_id.eq(draw_id))
        .order(draw_entries::id)
        .select((
            draw_entries::id,
            draw_entries::pseudonym,
            draw_entries::quantity,
            draw_entries::choice1,
            draw_entries::choice2,
            draw_entries::choice3,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, pseudonym, quantity, c1, c2, c3)| Registration {
            id,
            pseudonym,
            quantity,
            choices: std::iter::once(c1).chain(c2).chain(c3).collect(),
        })
        .collect())
}

/// The ids of the draw's registrations in drawn order, from the frozen list
/// and the stored seed, which must still agree.
fn drawn_ids(conn: &mut DbConnection, draw_id: i64) -> Result<Vec<i64>, RunError> {
    let (secret, digest, stored_seed): (String, Option<String>, Option<String>) = draws::table
        .find(draw_id)
        .select((draws::secret, draws::digest, draws::seed))
        .first(conn)?;
    let list = registrations(conn, draw_id)?;
    let digest_now = seed::registrations_digest(&list);
    let secret = Secret::parse_hex(&secret).ok_or(RunError::Tampered)?;
    let seed_now = seed::seed(&secret, &digest_now);
    if digest.as_deref() != Some(seed::to_hex(&digest_now).as_str())
        || stored_seed.as_deref() != Some(seed::to_hex(&seed_now).as_str())
    {
        return Err(RunError::Tampered);
    }
    Ok(permutation(&seed_now, list.len())
        .into_iter()
        .map(|i| list[i].id)
        .collect())
}

type EntryRow = (
    i64,
    i64,
    i64,
    Option<i64>,
    i32,
    i64,
    Option<i64>,
    Option<i64>,
    String,
);

/// The days of the windows `ids`.
fn days_of(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<(i64, NaiveDate)>> {
    pickup_windows::table
        .filter(pickup_windows::id.eq_any(ids))
        .select((pickup_windows::id, pickup_windows::day))
        .load(conn)
}

/// What one registration came to.
struct Settled {
    quota_left: [Option<i32>; 3],
    won: Option<(i64, i64)>,
}

/// Settles registrations `ids` (the next ones in drawn order, from place
/// `from` + 1) under the lease `token`, and moves the draw's `drawn` on;
/// answers the renewed token and how many were won.
#[expect(
    clippy::too_many_arguments,
    reason = "the draw, the lease, the batch and what booking needs"
)]
fn settle_batch(
    tx: &mut Tx<'_>,
    draw_id: i64,
    token: NaiveDateTime,
    now: DateTime<Utc>,
    from: usize,
    ids: &[i64],
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<(NaiveDateTime, usize), RunError> {
    let renewed = now.naive_utc().max(token);
    let held = diesel::update(
        draws::table
            .filter(draws::id.eq(draw_id))
            .filter(draws::claimed_at.eq(token))
            .filter(draws::drawn.eq(i32::try_from(from).unwrap_or(i32::MAX))),
    )
    .set((
        draws::claimed_at.eq(renewed),
        draws::drawn.eq(i32::try_from(from + ids.len()).unwrap_or(i32::MAX)),
    ))
    .execute(tx.conn())?;
    if held != 1 {
        return Err(RunError::LostLease);
    }
    let rows: Vec<EntryRow> = draw_entries::table
        .filter(draw_entries::id.eq_any(ids))
        .select((
            draw_entries::id,
            draw_entries::user_id,
            draw_entries::person_id,
            draw_entries::dependant_id,
            draw_entries::quantity,
            draw_entries::choice1,
            draw_entries::choice2,
            draw_entries::choice3,
            draw_entries::mail_lang,
        ))
        .load(tx.conn())?;
    let windows: Vec<i64> = rows
        .iter()
        .flat_map(|r| std::iter::once(r.5).chain(r.6).chain(r.7))
        .collect();
    let days = days_of(tx.conn(), &windows)?;
    let mut won = 0;
    for (k, id) in ids.iter().enumerate() {
        let Some(row) = rows.iter().find(|r| r.0 == *id) else {
            continue;
        };
        let settled = settle_one(tx, draw_id, row, &days, now, policy, t, base_url)?;
        let [q1, q2, q3] = settled.quota_left;
        let position = i32::try_from(from + k + 1).unwrap_or(i32::MAX);
        diesel::update(draw_entries::table.find(*id))
            .set((
                draw_entries::position.eq(position),
                draw_entries::quota_left1.eq(q1),
                draw_entries::quota_left2.eq(q2),
                draw_entries::quota_left3.eq(q3),
                draw_entries::outcome.eq(if settled.won.is_some() {
                    "won"
                } else {
                    "not_drawn"
                }),
                draw_entries::won_window_id.eq(settled.won.map(|w| w.0)),
                draw_entries::reservation_id.eq(settled.won.map(|w| w.1)),
            ))
            .execute(tx.conn())?;
        won += usize::from(settled.won.is_some());
    }
    Ok((renewed, won))
}

/// One registration at its turn: the quota its person has left for each
/// choice's week, then each choice in rank order that the quota allows,
/// booked in a savepoint until one takes.
#[expect(
    clippy::too_many_arguments,
    reason = "the registration, its windows' days and what booking needs"
)]
fn settle_one(
    tx: &mut Tx<'_>,
    draw_id: i64,
    row: &EntryRow,
    days: &[(i64, NaiveDate)],
    now: DateTime<Utc>,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<Settled, RunError> {
    let (_, user_id, person_id, dependant_id, quantity, c1, c2, c3, lang) = row;
    let choices = [Some(*c1), *c2, *c3];
    let mut quota_left = [None; 3];
    for (i, choice) in choices.iter().enumerate() {
        let Some(window) = choice else { continue };
        let Some((_, day)) = days.iter().find(|(id, _)| id == window) else {
            quota_left[i] = Some(0);
            continue;
        };
        let used = quota::used(tx.conn(), *person_id, rules::period_of(policy, *day))?;
        quota_left[i] = Some(quota::left(policy.quota_per_period, used));
    }
    let Ok(q) = Quantity::from_stored(*quantity) else {
        return Ok(Settled {
            quota_left,
            won: None,
        });
    };
    let t = t.in_lang(Lang::from_code(lang).unwrap_or(Lang::Ko));
    for (i, choice) in choices.iter().enumerate() {
        let Some(window) = choice else { continue };
        if quota_left[i].unwrap_or(0) < q.get() {
            continue;
        }
        let req = Request {
            user_id: *user_id,
            window_id: *window,
            quantity: q,
            request_id: None,
            person: dependant_id.map_or(ForWhom::Own, ForWhom::Dependant),
            now,
            session: None,
            hold: Hold::Draw { draw_id },
        };
        match db::savepoint(tx, |tx| booking::book(tx, &req, policy, &t, base_url)) {
            Ok(booked) => {
                return Ok(Settled {
                    quota_left,
                    won: Some((*window, booked.reservation_id)),
                });
            }
            Err(BookError::Db(e)) => return Err(e.into()),
            // No room (or the person can no longer take it): the next choice.
            Err(_) => {}
        }
    }
    Ok(Settled {
        quota_left,
        won: None,
    })
}

/// Ends the run: the draw is done, its windows ordinary again.
fn finish(
    tx: &mut Tx<'_>,
    draw_id: i64,
    token: NaiveDateTime,
    total: usize,
) -> Result<(), RunError> {
    let done = diesel::update(
        draws::table
            .filter(draws::id.eq(draw_id))
            .filter(draws::claimed_at.eq(token))
            .filter(draws::drawn.eq(i32::try_from(total).unwrap_or(i32::MAX))),
    )
    .set(draws::state.eq("done"))
    .execute(tx.conn())?;
    if done != 1 {
        return Err(RunError::LostLease);
    }
    crate::draws::admin::touch_store_days(tx, draw_id, token)?;
    diesel::update(pickup_windows::table.filter(pickup_windows::draw_id.eq(draw_id)))
        .set(pickup_windows::draw_id.eq(None::<i64>))
        .execute(tx.conn())?;
    Ok(())
}

/// How a run goes: its batch size, and (for drills and tests) how many
/// batches it settles before it stops as if it had died.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub batch: usize,
    pub stop_after: Option<usize>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            batch: BATCH,
            stop_after: None,
        }
    }
}

/// Runs draw `draw_id` as far as it can: claims it, freezes it the first
/// time, and settles its registrations batch by batch with the time of
/// `clock`, until it is done (or `pace.stop_after` batches).
pub async fn run(
    db: &Db,
    draw_id: i64,
    clock: &Clock,
    policy: Arc<Policy>,
    t: Tr,
    base_url: String,
    pace: Pace,
) -> Result<Ran, DbError<RunError>> {
    let now = clock.now().naive_utc();
    // The claim reads and hashes every registration (the freeze, or the
    // order again on a resumed run): bulk work, not held to a request's
    // database timeout, as each batch after it.
    let claimed = db
        .write_bulk(move |tx| {
            let Some(token) = claim(tx, draw_id, now)? else {
                return Ok(None);
            };
            let order = drawn_ids(tx.conn(), draw_id)?;
            let drawn: i32 = draws::table
                .find(draw_id)
                .select(draws::drawn)
                .first(tx.conn())?;
            Ok::<_, RunError>(Some((token, order, usize::try_from(drawn).unwrap_or(0))))
        })
        .await?;
    let Some((mut token, order, mut drawn)) = claimed else {
        let state: Option<(String, NaiveDateTime)> = db
            .run(move |conn| {
                draws::table
                    .find(draw_id)
                    .select((draws::state, draws::closes_at))
                    .first(conn)
                    .optional()
                    .map_err(RunError::from)
            })
            .await?;
        return Ok(match state {
            Some((state, closes_at)) if state != "done" && closes_at <= now => Ran::Busy,
            _ => Ran::NotDue,
        });
    };
    let order = Arc::new(order);
    let total = order.len();
    let mut batches = 0;
    let mut won = 0;
    while drawn < total {
        if pace.stop_after.is_some_and(|n| batches >= n) {
            return Ok(Ran::Stopped { drawn });
        }
        let end = (drawn + pace.batch.max(1)).min(total);
        let (order, p, t, b) = (order.clone(), policy.clone(), t.clone(), base_url.clone());
        let now = clock.now();
        let (renewed, n) = db
            .write_bulk(move |tx| {
                settle_batch(
                    tx,
                    draw_id,
                    token,
                    now,
                    drawn,
                    &order[drawn..end],
                    &p,
                    &t,
                    &b,
                )
            })
            .await?;
        token = renewed;
        won += n;
        drawn = end;
        batches += 1;
    }
    db.write(move |tx| finish(tx, draw_id, token, total))
        .await?;
    let won_all: i64 = db
        .run(move |conn| {
            draw_entries::table
                .filter(draw_entries::draw_id.eq(draw_id))
                .filter(draw_entries::outcome.eq("won"))
                .count()
                .get_result(conn)
                .map_err(RunError::from)
        })
        .await?;
    let won_all = usize::try_from(won_all).unwrap_or(won);
    Ok(Ran::Done {
        won: won_all,
        not_drawn: total - won_all.min(total),
    })
}

/// The draws whose registration closed by `now` and that are not done.
pub fn due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<i64>> {
    draws::table
        .filter(draws::state.ne("done"))
        .filter(draws::closes_at.le(now))
        .order(draws::id)
        .select(draws::id)
        .load(conn)
}

/// How often every instance looks for draws to run.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The background job: every `every`, runs each draw whose registration has
/// closed ([`run`]: one instance at a time, the others find it busy), at the
/// database's time ([`jobs::every`]).
pub async fn run_every(every: std::time::Duration, job: Job) {
    jobs::every(every, job, "draws", |job, policy, now| async move {
        let now = now.naive_utc();
        let due = match job.db.run(move |conn| due(conn, now)).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "draws could not be read; trying again in a minute");
                return;
            }
        };
        for id in due {
            let t = Tr::new(job.catalog.clone(), Lang::Ko);
            let ran = run(
                &job.db,
                id,
                &job.clock,
                policy.clone(),
                t,
                job.base_url.clone(),
                Pace::default(),
            )
            .await;
            match ran {
                Ok(Ran::Done { won, not_drawn }) => {
                    tracing::info!(draw = id, won, not_drawn, "draw done");
                    job.mail_wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(draw = id, error = %e, "draw stopped; resuming in a minute")
                }
            }
        }
    })
    .await;
}
