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
//!    transaction. The batch's facts are read once (`booking::Facts`); each
//!    registration is decided by the rule (`allocate::Places`, from the
//!    frozen free places less what the draw has granted since), given what
//!    the booking's own rules let its person take at each choice; the
//!    winners are booked together by the booking's set form
//!    (`booking::book_many`, [`Hold::Draw`]: the same rules, conditional
//!    takes, reservations, ledger rows and mails), in a savepoint. Each
//!    registration's place, what it could take at each choice and its
//!    outcome are written in the same transaction, and the draw's `drawn`
//!    moved on under the lease. A run that dies loses at most its open
//!    batch, which rolled back whole: the next run goes on from `drawn`, so
//!    nobody is booked twice and nobody skipped.
//! 4. **Done**: the draw's windows are ordinary again (`draw_id` cleared).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::clock::Clock;
use crate::db::schema::{draw_entries, draw_windows, draws, pickup_windows};
use crate::db::statement::{Arg, Statement, value_rows};
use crate::db::{self, AsRetryable, Db, DbConnection, DbError, Tx, is_retryable};
use crate::draws::allocate::Places;
use crate::draws::order::permutation;
use crate::draws::seed::{self, Registration, Secret};
use crate::i18n::{Lang, Tr};
use crate::jobs::{self, Job};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::reservations::booking::{self, BookError, Facts, ForWhom, Hold, Request};

/// How long a run's claim holds without a batch renewing it.
pub const LEASE: TimeDelta = TimeDelta::minutes(2);

/// Registrations settled per transaction. Each transaction rewrites the
/// index pages its rows touch, which at country size are most of them, so
/// that fewer, larger batches write far less: 1,000,000 registrations took
/// 205 s in batches of 2,000 and 102 s in batches of 20,000 on SQLite
/// (`docs/benchmarks.md`). A batch holds SQLite's one writer for about a
/// second or two at that size; other writes queued meanwhile wait that long.
pub const BATCH: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another instance took the run over (this one's lease had expired).
    #[error("the draw's lease was taken over")]
    LostLease,
    /// The registrations changed after they were frozen, or the stored seed
    /// is not the one the secret and the list give: nothing more is settled.
    #[error("the frozen registrations no longer give the draw's seed")]
    Tampered,
    /// The database refused a batch's grants booked as one set: the batch's
    /// transaction is rolled back and the batch settled again.
    #[error("a batch's grants did not book as one set: {0}")]
    SetRefused(BookError),
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

/// Each of the draw's windows with its free places when the draw was frozen
/// (none before).
pub fn free_at_start(conn: &mut DbConnection, draw_id: i64) -> QueryResult<HashMap<i64, i32>> {
    Ok(draw_windows::table
        .filter(draw_windows::draw_id.eq(draw_id))
        .select((draw_windows::window_id, draw_windows::free_at_start))
        .load::<(i64, Option<i32>)>(conn)?
        .into_iter()
        .map(|(window, free)| (window, free.unwrap_or(0)))
        .collect())
}

/// The places free in the draw's windows after its first `drawn`
/// registrations: each window's free places when the draw was frozen, less
/// what the registrations settled since won there.
fn places(conn: &mut DbConnection, draw_id: i64) -> QueryResult<Places> {
    let mut free = free_at_start(conn, draw_id)?;
    let won: Vec<(Option<i64>, Option<i64>)> = draw_entries::table
        .filter(draw_entries::draw_id.eq(draw_id))
        .filter(draw_entries::outcome.eq("won"))
        .group_by(draw_entries::won_window_id)
        .select((
            draw_entries::won_window_id,
            diesel::dsl::sum(draw_entries::quantity),
        ))
        .load(conn)?;
    for (window, taken) in won {
        if let Some(room) = window.and_then(|w| free.get_mut(&w)) {
            *room -= i32::try_from(taken.unwrap_or(0)).unwrap_or(i32::MAX);
        }
    }
    Ok(Places::new(free))
}

/// What one registration came to at its turn.
struct Settled {
    id: i64,
    position: i32,
    /// What its person could take at each choice (`draw_entries.quota_left1`…).
    may_take: [Option<i32>; 3],
    /// The window it was given, and the reservation made there.
    won: Option<(i64, i64)>,
}

/// Settles registrations `ids` (the next ones in drawn order, from place
/// `from` + 1) under the lease `token`, with `places` the free places before
/// them, and moves the draw's `drawn` on; answers the renewed token, how
/// many were won and the places after them.
///
/// Each registration is decided by the rule (`Places::grant`) with what the
/// booking's rules let its person take at each choice (`Facts::may_take`).
/// [`Booking::Together`] then books the grants as one set
/// (`booking::book_many`); if the database refuses the set — something
/// changed that the facts read did not show, such as a quota another
/// instance took meanwhile on PostgreSQL — the batch fails with
/// [`RunError::SetRefused`], its transaction rolls back, and [`run`] settles
/// it again from fresh facts. [`Booking::EachAlone`] books each grant in a
/// savepoint of its own; one the database refuses is not drawn, which
/// `draw-verify` reports as the difference it is.
#[expect(
    clippy::too_many_arguments,
    reason = "the draw, the lease, the batch, its places and what booking needs"
)]
fn settle_batch(
    tx: &mut Tx<'_>,
    draw_id: i64,
    token: NaiveDateTime,
    now: DateTime<Utc>,
    from: usize,
    ids: &[i64],
    places: &Places,
    booking: Booking,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<(NaiveDateTime, usize, Places), RunError> {
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
    let mut rows: HashMap<i64, EntryRow> = db::read_by_ids(ids, |chunk| {
        draw_entries::table
            .filter(draw_entries::id.eq_any(chunk))
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
            .load::<EntryRow>(tx.conn())
    })?
    .into_iter()
    .map(|r| (r.0, r))
    .collect();
    let mut entries = Vec::with_capacity(ids.len());
    for (k, id) in ids.iter().enumerate() {
        let row = rows.remove(id).ok_or(RunError::Tampered)?;
        entries.push(Entry::new(row, from + k + 1, now, draw_id, t));
    }
    let (settled, places) = match booking {
        Booking::Together => {
            match settle_together(tx, &entries, places.clone(), policy, base_url) {
                Ok(done) => done,
                Err(BookError::Db(e)) => return Err(e.into()),
                Err(e) => return Err(RunError::SetRefused(e)),
            }
        }
        Booking::EachAlone => settle_each(tx, draw_id, &entries, places.clone(), policy, base_url)?,
    };
    let won = settled.iter().filter(|s| s.won.is_some()).count();
    record(tx, &settled)?;
    Ok((renewed, won, places))
}

/// How a batch's grants are booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Booking {
    /// As one set, refused whole if the database refuses any of it.
    Together,
    /// Each on its own: the fallback for a batch refused as a set.
    EachAlone,
}

/// How many times in a row a batch is decided and booked as a set before its
/// grants are booked one at a time.
const SET_ATTEMPTS: usize = 3;

/// A registration at its turn, as booking requests for each of its choices.
struct Entry {
    id: i64,
    position: i32,
    quantity: i32,
    /// The choices in rank order, each with its request.
    choices: Vec<(i64, Request)>,
    t: Tr,
}

impl Entry {
    fn new(row: EntryRow, position: usize, now: DateTime<Utc>, draw_id: i64, t: &Tr) -> Entry {
        let (id, user_id, _, dependant_id, quantity, c1, c2, c3, lang) = row;
        let choices = std::iter::once(c1)
            .chain(c2)
            .chain(c3)
            .map(|window| {
                let req = Quantity::from_stored(quantity).ok().map(|q| Request {
                    user_id,
                    window_id: window,
                    quantity: q,
                    request_id: None,
                    person: dependant_id.map_or(ForWhom::Own, ForWhom::Dependant),
                    now,
                    session: None,
                    hold: Hold::Draw { draw_id },
                });
                (window, req)
            })
            .filter_map(|(window, req)| Some((window, req?)))
            .collect();
        Entry {
            id,
            position: i32::try_from(position).unwrap_or(i32::MAX),
            quantity,
            choices,
            t: t.in_lang(Lang::from_code(&lang).unwrap_or(Lang::Ko)),
        }
    }

    fn windows(&self) -> Vec<i64> {
        self.choices.iter().map(|(w, _)| *w).collect()
    }
}

/// Decides each of `entries` in order by the rule, with what the booking's
/// rules let its person take at each choice, and books the grants as one set.
fn settle_together(
    tx: &mut Tx<'_>,
    entries: &[Entry],
    mut places: Places,
    policy: &Policy,
    base_url: &str,
) -> Result<(Vec<Settled>, Places), BookError> {
    let mut facts = Facts::load(
        tx,
        policy,
        entries
            .iter()
            .flat_map(|e| e.choices.iter().map(|(_, r)| r)),
    )?;
    let mut settled = Vec::with_capacity(entries.len());
    let mut asks = Vec::new();
    let mut askers = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let (may_take, granted) = decide(entry, &facts, &mut places, policy);
        if let Some(req) = granted {
            facts.note_booked(policy, req);
            asks.push((req.clone(), entry.t.clone()));
            askers.push(k);
        }
        settled.push(Settled {
            id: entry.id,
            position: entry.position,
            may_take,
            won: None,
        });
    }
    let booked = booking::book_many(tx, &facts, &asks, policy, base_url)?;
    for ((k, (req, _)), b) in askers.into_iter().zip(&asks).zip(booked) {
        settled[k].won = Some((req.window_id, b.reservation_id));
    }
    Ok((settled, places))
}

/// What the registration's person may take at each choice, and the request
/// of the choice the rule grants it, if any.
fn decide<'e>(
    entry: &'e Entry,
    facts: &Facts,
    places: &mut Places,
    policy: &Policy,
) -> ([Option<i32>; 3], Option<&'e Request>) {
    let mut may_take = [None; 3];
    for (slot, (_, req)) in may_take.iter_mut().zip(&entry.choices) {
        // A choice the booking would refuse outright (a store that stopped
        // sales, not the person's day, an account that can no longer book)
        // can be taken nowhere: 0.
        *slot = Some(facts.may_take(policy, req).unwrap_or(0));
    }
    let windows = entry.windows();
    let granted = places.grant(entry.quantity, &windows, |window| {
        windows
            .iter()
            .position(|w| *w == window)
            .and_then(|i| may_take[i])
            .unwrap_or(0)
    });
    let req = granted.and_then(|window| {
        entry
            .choices
            .iter()
            .find(|(w, _)| *w == window)
            .map(|(_, r)| r)
    });
    (may_take, req)
}

/// [`settle_together`], each grant booked on its own in a savepoint: a grant
/// the database refuses is not drawn.
fn settle_each(
    tx: &mut Tx<'_>,
    draw_id: i64,
    entries: &[Entry],
    mut places: Places,
    policy: &Policy,
    base_url: &str,
) -> Result<(Vec<Settled>, Places), RunError> {
    let mut settled = Vec::with_capacity(entries.len());
    for entry in entries {
        let facts = Facts::load(tx, policy, entry.choices.iter().map(|(_, r)| r))?;
        let (may_take, granted) = decide(entry, &facts, &mut places, policy);
        let mut won = None;
        if let Some(req) = granted {
            let asks = [(req.clone(), entry.t.clone())];
            match db::savepoint(tx, |tx| {
                booking::book_many(tx, &facts, &asks, policy, base_url)
            }) {
                Ok(booked) => won = booked.first().map(|b| (req.window_id, b.reservation_id)),
                Err(BookError::Db(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(
                        draw = draw_id,
                        registration = entry.id,
                        window = req.window_id,
                        error = %e,
                        "the database refused what the draw's rule granted"
                    );
                }
            }
        }
        settled.push(Settled {
            id: entry.id,
            position: entry.position,
            may_take,
            won,
        });
    }
    Ok((settled, places))
}

/// Writes each registration's place, what its person could take at each
/// choice, and its outcome: a statement per few thousand registrations.
fn record(tx: &mut Tx<'_>, settled: &[Settled]) -> Result<(), RunError> {
    const COLUMNS: usize = 8;
    for chunk in settled.chunks(3_000) {
        let mut args = Vec::with_capacity(chunk.len() * COLUMNS);
        for s in chunk {
            let [q1, q2, q3] = s.may_take;
            args.extend([
                Arg::BigInt(s.id),
                Arg::Integer(s.position),
                Arg::NullableInteger(q1),
                Arg::NullableInteger(q2),
                Arg::NullableInteger(q3),
                Arg::Text(if s.won.is_some() { "won" } else { "not_drawn" }),
                Arg::NullableBigInt(s.won.map(|w| w.0)),
                Arg::NullableBigInt(s.won.map(|w| w.1)),
            ]);
        }
        let sql = format!(
            "WITH v (id, place, q1, q2, q3, outcome, won, reservation) AS (VALUES {}) \
             UPDATE draw_entries SET position = v.place, quota_left1 = v.q1, \
             quota_left2 = v.q2, quota_left3 = v.q3, outcome = v.outcome, \
             won_window_id = v.won, reservation_id = v.reservation \
             FROM v WHERE draw_entries.id = v.id",
            value_rows(chunk.len(), COLUMNS, 1)
        );
        if Statement::built(sql, args).run(tx.conn())? != chunk.len() {
            return Err(RunError::Tampered);
        }
    }
    Ok(())
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
            let places = places(tx.conn(), draw_id)?;
            let drawn = usize::try_from(drawn).unwrap_or(0);
            Ok::<_, RunError>(Some((token, order, drawn, places)))
        })
        .await?;
    let Some((mut token, order, mut drawn, places)) = claimed else {
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
    let mut places = Arc::new(places);
    let total = order.len();
    let mut batches = 0;
    let mut won = 0;
    // Times in a row the current batch was refused as a set.
    let mut refused = 0;
    while drawn < total {
        if pace.stop_after.is_some_and(|n| batches >= n) {
            return Ok(Ran::Stopped { drawn });
        }
        let end = (drawn + pace.batch.max(1)).min(total);
        let (order, p, t, b) = (order.clone(), policy.clone(), t.clone(), base_url.clone());
        let before = places.clone();
        let now = clock.now();
        let booking = if refused < SET_ATTEMPTS {
            Booking::Together
        } else {
            Booking::EachAlone
        };
        let settled = db
            .write_bulk(move |tx| {
                settle_batch(
                    tx,
                    draw_id,
                    token,
                    now,
                    drawn,
                    &order[drawn..end],
                    &before,
                    booking,
                    &p,
                    &t,
                    &b,
                )
            })
            .await;
        let (renewed, n, after) = match settled {
            Ok(done) => done,
            Err(DbError::Work(RunError::SetRefused(e))) => {
                refused += 1;
                tracing::info!(draw = draw_id, error = %e, refused, "a batch did not book as one set; settling it again");
                continue;
            }
            Err(e) => return Err(e),
        };
        refused = 0;
        places = Arc::new(after);
        token = renewed;
        won += n;
        drawn = end;
        batches += 1;
    }
    // Clearing the windows of a draw over every store is bulk work too.
    db.write_bulk(move |tx| finish(tx, draw_id, token, total))
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
