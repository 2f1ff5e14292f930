//! Selling to someone without a reservation (SPEC §3, §4 invariants 1, 2, 4):
//! the person found or created by the keyed hash of their national ID, the
//! rotation rule for today, the quota counter ([`quota::try_take`]) and the
//! store-day's walk-in stock, each decided by a conditional write in one
//! transaction with the sale and its ledger row. The quantity is checked
//! before anything else ([`check_quantity`]), whoever calls [`sell`]. An undo
//! by the same pharmacist within [`UNDO_MINUTES`] gives everything back.
//!
//! A look-up is no oracle of what a person bought: the store's own state
//! (supply, suspension, walk-in stock) and the policy (the quota itself) are
//! checked before the person is looked up at all, and a quota refusal says
//! only from which date the person may buy again, never how many they have.
//! Every look-up, sold or refused, leaves an audit entry (`walk_in.lookup`)
//! naming the pharmacist, the store, the time, the keyed hash of the number
//! and the outcome: in the sale's transaction, or in a write of its own when
//! the sale is refused (the refused transaction is rolled back whole).
//!
//! Someone may buy for another person (SPEC §12): the second number,
//! `for_national_id`, is whose quota and rotation day the sale takes, and
//! the sale records the buyer present as `proxy_person_id`. Only for a person
//! the proxy rule allows (a child or an elderly person, by birth year), and
//! only once the pharmacist has seen the family documents (`proxy_checked`).
//! Those are checks of what was typed, made before anyone is looked up.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc, Weekday};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::json;

use crate::accounts::queries::ensure_person;
use crate::audit::{self, Entry};
use crate::db::schema::{
    people, quota_usage, stock_ledger, store_days, stores, users, walk_in_sales,
};
use crate::db::{AsRetryable, Db, DbConnection, DbError, Tx, is_retryable};
use crate::dependants::rules::may_be_dependant;
use crate::policy::{Period, Policy, rotation_weekday};
use crate::quantity::Quantity;
use crate::quota;
use crate::reservations::rules;
use crate::stock::walk_in_left_sql;
use crate::supply::release;

/// How long after a sale its pharmacist may undo it.
pub const UNDO_MINUTES: i64 = 5;

/// The rate-limit bucket of a pharmacist's look-ups by national ID: one
/// limit (`walk_in_per_account`) for the walk-in sale and the pickup
/// counter's look-up alike, so that having two pages to type numbers into
/// does not double how fast numbers can be tried.
pub fn lookup_bucket(pharmacist_id: i64) -> String {
    format!("walk-in:account:{pharmacist_id}")
}

/// The audit log's `action` of a walk-in look-up.
pub const LOOKUP_ACTION: &str = "walk_in.lookup";

/// A sale asked for. The national ID itself is not here: only what may be
/// kept of it (its keyed hash, birth date and masked form) — of the buyer
/// present, and for a proxy purchase of the person bought for.
#[derive(Debug, Clone)]
pub struct Sale {
    pub pharmacist_id: i64,
    pub store_id: i64,
    pub national_id_hash: String,
    pub birth_date: NaiveDate,
    pub national_id_masked: String,
    /// The person bought for, when the buyer buys for someone else: their
    /// quota and their rotation day.
    pub for_person: Option<Identity>,
    /// The pharmacist saw the family documents of a proxy purchase.
    pub proxy_checked: bool,
    pub quantity: Quantity,
    pub now: DateTime<Utc>,
}

/// What may be kept of a national ID typed at the counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub national_id_hash: String,
    pub birth_date: NaiveDate,
    pub national_id_masked: String,
}

impl Sale {
    /// Whose quota and rotation day the sale takes: the person bought for,
    /// or the buyer.
    fn holder(&self) -> (&str, NaiveDate, &str) {
        match &self.for_person {
            Some(p) => (&p.national_id_hash, p.birth_date, &p.national_id_masked),
            None => (
                &self.national_id_hash,
                self.birth_date,
                &self.national_id_masked,
            ),
        }
    }
}

/// Why a sale is refused, in the order the checks run: first what the sale
/// asked for, then what the store and the policy alone decide, then what
/// needs the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// More masks than one sale may be for: at most `max` ([`check_quantity`]).
    BadQuantity { max: i32 },
    /// A proxy purchase for the buyer's own number.
    ProxyForOneself,
    /// A proxy purchase for someone the proxy rule does not cover: born
    /// after `until` and before `from`.
    ProxyYears { from: i32, until: i32 },
    /// A proxy purchase without the family documents seen.
    ProxyNotChecked,
    /// The store has no supply allocated today.
    NoSupply,
    /// An administrator stopped sales at the store.
    StoreSuspended,
    /// The walk-in stock has only `left`.
    OutOfStock { left: i32 },
    /// More than one person may ever have in a period.
    AboveQuota { quota: i32 },
    /// The rotation rule is on and today is not this person's day.
    Rotation { weekday: Weekday },
    /// The person's quota does not allow the quantity now; `from` is the
    /// first day of the first later period in which it does. How much they
    /// have bought or reserved is not said.
    NotAllowedUntil { from: NaiveDate },
}

impl Refusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::BadQuantity { .. } => "quantity",
            Refusal::ProxyForOneself => "proxy_oneself",
            Refusal::ProxyYears { .. } => "proxy_years",
            Refusal::ProxyNotChecked => "proxy_unchecked",
            Refusal::NoSupply => "no_supply",
            Refusal::StoreSuspended => "suspended",
            Refusal::OutOfStock { .. } => "stock",
            Refusal::AboveQuota { .. } => "above_quota",
            Refusal::Rotation { .. } => "rotation",
            Refusal::NotAllowedUntil { .. } => "quota",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalkInError {
    #[error("sale refused: {0:?}")]
    Refused(Refusal),
    #[error("database error")]
    Db(#[from] DieselError),
    /// Releasing a closed window's places found the counters inconsistent.
    #[error(transparent)]
    Release(release::ReleaseError),
}

impl From<release::ReleaseError> for WalkInError {
    fn from(e: release::ReleaseError) -> Self {
        match e {
            release::ReleaseError::Db(e) => WalkInError::Db(e),
            inconsistent => WalkInError::Release(inconsistent),
        }
    }
}

impl AsRetryable for WalkInError {
    fn is_retryable(&self) -> bool {
        matches!(self, WalkInError::Db(e) if is_retryable(e))
    }
}

impl From<Refusal> for WalkInError {
    fn from(r: Refusal) -> Self {
        WalkInError::Refused(r)
    }
}

/// A sale asked for at the counter, sold or refused, and recorded in the
/// audit log either way: [`sell`] writes the entry with the sale; a refused
/// sale's transaction is rolled back, so its entry is written after it, on
/// its own. Answers the new sale's id or the refusal. A quantity no sale may
/// have is a typing mistake refused before anything is read, like a mistyped
/// number, and so is a proxy purchase that is not one ([`check_proxy`]): no
/// look-up happened, and none is recorded.
pub async fn sell_recorded(
    db: &Db,
    sale: Sale,
    policy: Arc<Policy>,
) -> Result<Result<i64, Refusal>, DbError<WalkInError>> {
    let asked = sale.clone();
    match db.write(move |tx| sell(tx, &asked, &policy)).await {
        Ok(sale_id) => Ok(Ok(sale_id)),
        Err(DbError::Work(WalkInError::Refused(refusal))) if refusal.before_look_up() => {
            Ok(Err(refusal))
        }
        Err(DbError::Work(WalkInError::Refused(refusal))) => {
            let outcome = refusal.kind();
            db.write(move |tx| record_lookup(tx, &sale, outcome, None).map_err(WalkInError::Db))
                .await?;
            Ok(Err(refusal))
        }
        Err(e) => Err(e),
    }
}

impl Refusal {
    /// A refusal of what was typed, made before anyone is looked up.
    fn before_look_up(&self) -> bool {
        matches!(
            self,
            Refusal::BadQuantity { .. }
                | Refusal::ProxyForOneself
                | Refusal::ProxyYears { .. }
                | Refusal::ProxyNotChecked
        )
    }
}

/// Sells `sale.quantity` masks at the store today; the new sale's id. The
/// look-up's audit entry is written in the same transaction.
pub fn sell(tx: &mut Tx<'_>, sale: &Sale, policy: &Policy) -> Result<i64, WalkInError> {
    check_quantity(sale.quantity)?;
    check_proxy(sale, policy)?;
    let today = rules::today(policy, sale.now);
    let q = sale.quantity.get();
    // What the store has, before anything about the person is read.
    let day: Option<(i64, bool, i32)> = store_days::table
        .inner_join(stores::table)
        .filter(store_days::store_id.eq(sale.store_id))
        .filter(store_days::day.eq(today))
        .select((store_days::id, stores::suspended, walk_in_left_sql()))
        .first(tx.conn())
        .optional()?;
    let Some((store_day_id, suspended, mut left)) = day else {
        return Err(Refusal::NoSupply.into());
    };
    if suspended {
        return Err(Refusal::StoreSuspended.into());
    }
    if left < q {
        // Closed windows' unbooked places are the counter's from the moment
        // booking closes, not from the minute job's next run: move them now.
        let moved = release::release_due(
            tx,
            sale.now,
            policy.booking_close_minutes,
            Some(store_day_id),
        )?;
        if moved.places > 0 {
            left = store_days::table
                .find(store_day_id)
                .select(walk_in_left_sql())
                .first(tx.conn())?;
        }
    }
    if left < q {
        return Err(Refusal::OutOfStock { left: left.max(0) }.into());
    }
    if q > policy.quota_per_period {
        return Err(Refusal::AboveQuota {
            quota: policy.quota_per_period,
        }
        .into());
    }
    let (holder_hash, holder_birth, holder_masked) = sale.holder();
    let birth_year = rules::birth_year(holder_birth);
    if !policy.rotation.allows(birth_year, today) {
        return Err(Refusal::Rotation {
            weekday: rotation_weekday(birth_year),
        }
        .into());
    }

    let at = sale.now.naive_utc();
    let person_id = ensure_person(tx, holder_hash, holder_birth, holder_masked, at)?;
    let proxy_person_id = match sale.for_person {
        Some(_) => Some(ensure_person(
            tx,
            &sale.national_id_hash,
            sale.birth_date,
            &sale.national_id_masked,
            at,
        )?),
        None => None,
    };
    let period_start = policy.period.start_of(today);
    // Not `quota::take`: what is left is not to be said, so not read.
    if !quota::try_take(
        tx,
        person_id,
        period_start,
        sale.quantity,
        policy.quota_per_period,
    )? {
        let from = next_allowed(tx, person_id, policy, period_start, q)?;
        return Err(Refusal::NotAllowedUntil { from }.into());
    }

    // Checked above, taken here: a concurrent sale may have taken it since.
    let taken = diesel::update(
        store_days::table
            .filter(store_days::id.eq(store_day_id))
            .filter(walk_in_left_sql().ge(q)),
    )
    .set((
        store_days::walk_in.eq(store_days::walk_in + q),
        store_days::stock_changed_at.eq(at),
    ))
    .execute(tx.conn())?;
    if taken != 1 {
        let left: i32 = store_days::table
            .find(store_day_id)
            .select(walk_in_left_sql())
            .first(tx.conn())?;
        return Err(Refusal::OutOfStock { left: left.max(0) }.into());
    }

    let sale_id: i64 = diesel::insert_into(walk_in_sales::table)
        .values((
            walk_in_sales::store_day_id.eq(store_day_id),
            walk_in_sales::store_id.eq(sale.store_id),
            walk_in_sales::person_id.eq(person_id),
            walk_in_sales::proxy_person_id.eq(proxy_person_id),
            walk_in_sales::quantity.eq(q),
            walk_in_sales::period_start.eq(period_start),
            walk_in_sales::sold_by.eq(sale.pharmacist_id),
            walk_in_sales::created_at.eq(at),
        ))
        .returning(walk_in_sales::id)
        .get_result(tx.conn())?;
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(store_day_id),
            stock_ledger::walk_in_sale_id.eq(sale_id),
            stock_ledger::kind.eq("walk_in"),
            stock_ledger::walk_in_delta.eq(q),
            stock_ledger::actor_user_id.eq(sale.pharmacist_id),
            stock_ledger::created_at.eq(at),
        ))
        .execute(tx.conn())?;
    record_lookup(tx, sale, "sold", Some(sale_id))?;
    Ok(sale_id)
}

/// A quantity one sale may be for: what one reservation's form may ask for
/// ([`rules::check_quantity`], at most [`rules::MAX_QUANTITY`]), whatever the
/// quota — more than the quota is refused after it, with the quota named.
pub fn check_quantity(quantity: Quantity) -> Result<(), Refusal> {
    rules::check_quantity(quantity).map_err(|_| Refusal::BadQuantity {
        max: rules::MAX_QUANTITY,
    })
}

/// What a proxy purchase must be, before anyone is looked up: for another
/// person than the buyer, one the proxy rule covers, with the family
/// documents seen. Nothing to check when the buyer buys for themself.
pub fn check_proxy(sale: &Sale, policy: &Policy) -> Result<(), Refusal> {
    let Some(for_person) = &sale.for_person else {
        return Ok(());
    };
    if for_person.national_id_hash == sale.national_id_hash {
        return Err(Refusal::ProxyForOneself);
    }
    if !may_be_dependant(policy, rules::birth_year(for_person.birth_date)) {
        return Err(Refusal::ProxyYears {
            from: policy.proxy_born_from,
            until: policy.proxy_born_until,
        });
    }
    if !sale.proxy_checked {
        return Err(Refusal::ProxyNotChecked);
    }
    Ok(())
}

/// The audit entry of one look-up: who looked, at which store, when (the
/// entry's time), whom (the keyed hash of the number, never the number) and
/// what came of it (`sold` or the refusal's kind). A proxy purchase looks up
/// two numbers: the entry is about the person bought for, and names the
/// buyer's keyed hash too.
fn record_lookup(
    tx: &mut Tx<'_>,
    sale: &Sale,
    outcome: &str,
    sale_id: Option<i64>,
) -> QueryResult<()> {
    let store_code = crate::stores::code_of(tx.conn(), sale.store_id)?;
    audit::record_at(
        tx,
        Entry {
            actor: Some(sale.pharmacist_id),
            action: LOOKUP_ACTION,
            entity: "person",
            entity_id: sale.holder().0.to_owned(),
            before: None,
            after: Some(json!({
                "store": store_code,
                "quantity": sale.quantity.get(),
                "outcome": outcome,
                "sale": sale_id,
                "proxy_buyer": sale.for_person.as_ref().map(|_| &sale.national_id_hash),
            })),
        },
        sale.now.naive_utc(),
    )
}

/// The first day from which the person may take `quantity` again: the start
/// of the first period after the one starting `period_start` whose usage
/// (reservations for its days, made ahead, count there) leaves room for it.
fn next_allowed(
    tx: &mut Tx<'_>,
    person_id: i64,
    policy: &Policy,
    period_start: NaiveDate,
    quantity: i32,
) -> QueryResult<NaiveDate> {
    let later: Vec<(NaiveDate, i32)> = quota_usage::table
        .filter(quota_usage::person_id.eq(person_id))
        .filter(quota_usage::period_start.gt(period_start))
        .order(quota_usage::period_start)
        .select((quota_usage::period_start, quota_usage::used))
        .load(tx.conn())?;
    Ok(first_period_with_room(
        policy.period,
        period_start,
        &later,
        quantity,
        policy.quota_per_period,
    ))
}

/// The start of the first period after the one starting `current` in which
/// `used` (usage by period start, in order) leaves room for `quantity` within
/// `quota`. A period without usage has room: `quantity` is at most `quota`
/// (a larger one is refused before). Pure, for [`next_allowed`].
pub fn first_period_with_room(
    period: Period,
    current: NaiveDate,
    used: &[(NaiveDate, i32)],
    quantity: i32,
    quota: i32,
) -> NaiveDate {
    let next = |start: NaiveDate| period.end_of(start) + TimeDelta::days(1);
    let mut candidate = next(current);
    for &(start, n) in used {
        if start < candidate {
            continue;
        }
        if start > candidate || n + quantity <= quota {
            break;
        }
        candidate = next(candidate);
    }
    candidate
}

/// A sale as the undo needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleFacts {
    pub sold_by: i64,
    pub created_at: NaiveDateTime,
    pub undone: bool,
}

/// Why a sale is not undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoRefusal {
    /// No such sale at this store.
    NotFound,
    /// Another pharmacist sold it.
    NotYours,
    AlreadyUndone,
    /// More than [`UNDO_MINUTES`] ago.
    TooLate,
}

impl UndoRefusal {
    pub fn kind(self) -> &'static str {
        match self {
            UndoRefusal::NotFound => "undo_unknown",
            UndoRefusal::NotYours => "undo_not_yours",
            UndoRefusal::AlreadyUndone => "undo_done",
            UndoRefusal::TooLate => "undo_too_late",
        }
    }
}

/// Whether the pharmacist `by` may undo `sale` at `now`.
pub fn may_undo(sale: &SaleFacts, by: i64, now: DateTime<Utc>) -> Result<(), UndoRefusal> {
    if sale.undone {
        Err(UndoRefusal::AlreadyUndone)
    } else if sale.sold_by != by {
        Err(UndoRefusal::NotYours)
    } else if now.naive_utc() > undo_deadline(sale.created_at) {
        Err(UndoRefusal::TooLate)
    } else {
        Ok(())
    }
}

/// The last moment a sale made at `created_at` may be undone.
pub fn undo_deadline(created_at: NaiveDateTime) -> NaiveDateTime {
    created_at + TimeDelta::minutes(UNDO_MINUTES)
}

#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("undo refused: {0:?}")]
    Refused(UndoRefusal),
    /// A counter did not hold what the sale took: nothing is changed.
    #[error("counters do not match sale {0}")]
    Inconsistent(i64),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for UndoError {
    fn is_retryable(&self) -> bool {
        matches!(self, UndoError::Db(e) if is_retryable(e))
    }
}

type SaleRow = (
    i64,
    i64,
    i32,
    NaiveDate,
    i64,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

/// Undoes sale `sale_id` of the store `store_id` for the pharmacist `by`: the
/// sale marked undone by a conditional update (its seller, not undone, within
/// the minutes), the walk-in stock and the quota given back, a ledger row
/// with the negative quantity.
pub fn undo(
    tx: &mut Tx<'_>,
    by: i64,
    store_id: i64,
    sale_id: i64,
    now: DateTime<Utc>,
) -> Result<(), UndoError> {
    let read = |tx: &mut Tx<'_>| -> QueryResult<Option<SaleRow>> {
        walk_in_sales::table
            .filter(walk_in_sales::id.eq(sale_id))
            .filter(walk_in_sales::store_id.eq(store_id))
            .select((
                walk_in_sales::store_day_id,
                walk_in_sales::person_id,
                walk_in_sales::quantity,
                walk_in_sales::period_start,
                walk_in_sales::sold_by,
                walk_in_sales::created_at,
                walk_in_sales::undone_at,
            ))
            .first(tx.conn())
            .optional()
    };
    let facts = |row: &SaleRow| SaleFacts {
        sold_by: row.4,
        created_at: row.5,
        undone: row.6.is_some(),
    };
    let row = read(tx)?.ok_or(UndoError::Refused(UndoRefusal::NotFound))?;
    may_undo(&facts(&row), by, now).map_err(UndoError::Refused)?;
    let (store_day_id, person_id, q, period_start, ..) = row;
    let quantity = Quantity::from_stored(q)?;

    let at = now.naive_utc();
    let cutoff = at - TimeDelta::minutes(UNDO_MINUTES);
    let marked = diesel::update(
        walk_in_sales::table
            .filter(walk_in_sales::id.eq(sale_id))
            .filter(walk_in_sales::sold_by.eq(by))
            .filter(walk_in_sales::undone_at.is_null())
            .filter(walk_in_sales::created_at.ge(cutoff)),
    )
    .set(walk_in_sales::undone_at.eq(at))
    .execute(tx.conn())?;
    if marked != 1 {
        let row = read(tx)?.ok_or(UndoError::Refused(UndoRefusal::NotFound))?;
        return Err(match may_undo(&facts(&row), by, now) {
            Err(refusal) => UndoError::Refused(refusal),
            Ok(()) => UndoError::Inconsistent(sale_id),
        });
    }
    let day = diesel::update(
        store_days::table
            .filter(store_days::id.eq(store_day_id))
            .filter(store_days::walk_in.ge(q)),
    )
    .set((
        store_days::walk_in.eq(store_days::walk_in - q),
        store_days::stock_changed_at.eq(at),
    ))
    .execute(tx.conn())?;
    if day != 1 || !quota::give_back(tx, person_id, period_start, quantity)? {
        return Err(UndoError::Inconsistent(sale_id));
    }
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(store_day_id),
            stock_ledger::walk_in_sale_id.eq(sale_id),
            stock_ledger::kind.eq("walk_in"),
            stock_ledger::walk_in_delta.eq(-q),
            stock_ledger::actor_user_id.eq(by),
            stock_ledger::created_at.eq(at),
        ))
        .execute(tx.conn())?;
    Ok(())
}

/// One walk-in sale of the day, as the page lists it.
#[derive(Debug, Clone)]
pub struct SaleLine {
    pub id: i64,
    /// Whose quota it took.
    pub national_id_masked: String,
    /// Who bought it, when it was bought for someone else.
    pub proxy_masked: Option<String>,
    pub quantity: i32,
    pub sold_by: i64,
    pub seller: String,
    pub created_at: NaiveDateTime,
    pub undone: bool,
}

type LineRow = (
    i64,
    String,
    i32,
    i64,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

/// The store's walk-in sales on `day`, newest first.
pub fn sales_on(
    conn: &mut DbConnection,
    store_id: i64,
    day: NaiveDate,
) -> QueryResult<Vec<SaleLine>> {
    let rows: Vec<LineRow> = walk_in_sales::table
        .inner_join(store_days::table)
        .inner_join(people::table)
        .inner_join(users::table.on(users::id.eq(walk_in_sales::sold_by)))
        .filter(walk_in_sales::store_id.eq(store_id))
        .filter(store_days::day.eq(day))
        .order(walk_in_sales::id.desc())
        .select((
            walk_in_sales::id,
            people::national_id_masked,
            walk_in_sales::quantity,
            walk_in_sales::sold_by,
            users::name,
            walk_in_sales::created_at,
            walk_in_sales::undone_at,
        ))
        .load(conn)?;
    let proxies: HashMap<i64, String> = walk_in_sales::table
        .inner_join(store_days::table)
        .inner_join(people::table.on(people::id.nullable().eq(walk_in_sales::proxy_person_id)))
        .filter(walk_in_sales::store_id.eq(store_id))
        .filter(store_days::day.eq(day))
        .select((walk_in_sales::id, people::national_id_masked))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(
            |(id, national_id_masked, quantity, sold_by, seller, created_at, undone_at)| SaleLine {
                id,
                national_id_masked,
                proxy_masked: proxies.get(&id).cloned(),
                quantity,
                sold_by,
                seller,
                created_at,
                undone: undone_at.is_some(),
            },
        )
        .collect())
}

/// What the counter says right after a sale: to whom (masked), how many, and
/// how much of the person's quota the period now holds — the pharmacist is
/// about to hand the masks to that person, who may ask. Only to the seller,
/// and only while the sale may still be undone: the answer to one's own sale,
/// not a way to read anyone's usage later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoldResult {
    pub sale_id: i64,
    pub national_id_masked: String,
    pub quantity: i32,
    pub used: i32,
}

/// The [`SoldResult`] of `sale_id`, if `seller` sold it at this store, it is
/// not undone and the undo minutes have not run out.
pub fn sold_result(
    conn: &mut DbConnection,
    store_id: i64,
    seller: i64,
    sale_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<Option<SoldResult>> {
    let row: Option<(i64, String, i32, NaiveDate, NaiveDateTime)> = walk_in_sales::table
        .inner_join(people::table)
        .filter(walk_in_sales::id.eq(sale_id))
        .filter(walk_in_sales::store_id.eq(store_id))
        .filter(walk_in_sales::sold_by.eq(seller))
        .filter(walk_in_sales::undone_at.is_null())
        .select((
            walk_in_sales::person_id,
            people::national_id_masked,
            walk_in_sales::quantity,
            walk_in_sales::period_start,
            walk_in_sales::created_at,
        ))
        .first(conn)
        .optional()?;
    let Some((person_id, national_id_masked, quantity, period_start, created_at)) = row else {
        return Ok(None);
    };
    if now.naive_utc() > undo_deadline(created_at) {
        return Ok(None);
    }
    let used = quota::used(conn, person_id, period_start)?;
    Ok(Some(SoldResult {
        sale_id,
        national_id_masked,
        quantity,
        used,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).unwrap()
    }

    #[test]
    fn a_sale_is_for_one_to_the_bound_of_a_form() {
        let q = |n| Quantity::new(n).unwrap();
        assert_eq!(check_quantity(Quantity::ONE), Ok(()));
        assert_eq!(check_quantity(q(rules::MAX_QUANTITY)), Ok(()));
        for n in [rules::MAX_QUANTITY + 1, i32::MAX] {
            assert_eq!(
                check_quantity(q(n)),
                Err(Refusal::BadQuantity {
                    max: rules::MAX_QUANTITY
                })
            );
        }
    }

    #[test]
    fn only_the_seller_undoes_and_only_within_the_minutes() {
        let sale = SaleFacts {
            sold_by: 1,
            created_at: at(0).naive_utc(),
            undone: false,
        };
        assert_eq!(may_undo(&sale, 1, at(0)), Ok(()));
        assert_eq!(may_undo(&sale, 1, at(UNDO_MINUTES)), Ok(()));
        assert_eq!(
            may_undo(&sale, 1, at(UNDO_MINUTES) + TimeDelta::seconds(1)),
            Err(UndoRefusal::TooLate)
        );
        assert_eq!(may_undo(&sale, 2, at(1)), Err(UndoRefusal::NotYours));
        let undone = SaleFacts {
            undone: true,
            ..sale
        };
        assert_eq!(may_undo(&undone, 1, at(1)), Err(UndoRefusal::AlreadyUndone));
    }

    #[test]
    fn a_proxy_purchase_is_for_another_person_the_rule_covers_with_the_documents_seen() {
        let p = Policy::default();
        let born = |y: i32| NaiveDate::from_ymd_opt(y, 3, 15).unwrap();
        let identity = |hash: &str, year: i32| Identity {
            national_id_hash: hash.repeat(64),
            birth_date: born(year),
            national_id_masked: "120315-3******".into(),
        };
        let sale = |for_person: Option<Identity>, proxy_checked: bool| Sale {
            pharmacist_id: 1,
            store_id: 1,
            national_id_hash: "a".repeat(64),
            birth_date: born(1985),
            national_id_masked: "850315-1******".into(),
            for_person,
            proxy_checked,
            quantity: Quantity::ONE,
            now: at(0),
        };
        assert_eq!(
            check_proxy(&sale(None, false), &p),
            Ok(()),
            "not a proxy sale"
        );
        assert_eq!(
            check_proxy(&sale(Some(identity("b", 2012)), true), &p),
            Ok(())
        );
        assert_eq!(
            check_proxy(&sale(Some(identity("b", 1938)), true), &p),
            Ok(())
        );
        assert_eq!(
            check_proxy(&sale(Some(identity("b", 2012)), false), &p),
            Err(Refusal::ProxyNotChecked)
        );
        assert_eq!(
            check_proxy(&sale(Some(identity("b", 1990)), true), &p),
            Err(Refusal::ProxyYears {
                from: 2010,
                until: 1940
            })
        );
        assert_eq!(
            check_proxy(&sale(Some(identity("a", 2012)), true), &p),
            Err(Refusal::ProxyForOneself)
        );
        // Whose quota and day: the person bought for.
        let for_child = sale(Some(identity("b", 2012)), true);
        assert_eq!(for_child.holder().1, born(2012));
        assert_eq!(sale(None, false).holder().1, born(1985));
        assert!(Refusal::ProxyNotChecked.before_look_up());
        assert!(!Refusal::NoSupply.before_look_up());
    }

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    #[test]
    fn a_person_without_room_may_buy_again_from_the_next_period_that_has_it() {
        let week = Period::IsoWeek;
        // This week (from Monday 30 November) is full: next Monday.
        assert_eq!(
            first_period_with_room(week, day(11, 30), &[], 1, 2),
            day(12, 7)
        );
        // Next week already holds a reservation: room for 1, not for 2.
        let ahead = [(day(12, 7), 1)];
        assert_eq!(
            first_period_with_room(week, day(11, 30), &ahead, 1, 2),
            day(12, 7)
        );
        assert_eq!(
            first_period_with_room(week, day(11, 30), &ahead, 2, 2),
            day(12, 14)
        );
        // Two full weeks ahead, then a gap.
        let full = [(day(12, 7), 2), (day(12, 14), 2), (day(12, 28), 2)];
        assert_eq!(
            first_period_with_room(week, day(11, 30), &full, 1, 2),
            day(12, 21)
        );
        // Rows before the next period are not looked at; the day is always a Monday.
        let from = first_period_with_room(week, day(11, 30), &[(day(11, 30), 2)], 2, 2);
        assert_eq!((from, from.weekday()), (day(12, 7), Weekday::Mon));
        // Across the year's end.
        assert_eq!(
            first_period_with_room(week, day(12, 28), &[], 1, 2),
            NaiveDate::from_ymd_opt(2027, 1, 4).unwrap()
        );
    }
}
