//! An administrator's changes to stock: a store-day's supply, one window's
//! capacity, and copying yesterday's supply to a new day. Each writes its
//! ledger rows and its audit entry in the caller's transaction.
//!
//! Race safety comes from the SQL: each change first updates the store-day
//! row under a condition (which on PostgreSQL also locks it, so a concurrent
//! change of the same store-day waits), reads the figures afresh, and writes
//! every counter again with a condition whose affected-row count decides. A
//! refusal is an error, so the transaction rolls back with nothing written.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::json;

use crate::audit::{self, Entry};
use crate::db::schema::{pickup_windows, stock_ledger, store_days, stores};
use crate::db::{AsRetryable, DbConnection, Tx, is_retryable};
use crate::policy::Policy;
use crate::reservations::rules;
use crate::stock::{self, walk_in_left_sql};
use crate::supply::allocation::{Allocated, NewDay, allocate_days};
use crate::supply::rules::{DayStock, Refusal, WindowStock, check_capacity, resplit_supply};

/// The ledger kind of every change of supply (the first allocation and later
/// changes alike): the row that carries `supply_delta`.
const SUPPLY_KIND: &str = "allocation";

/// What setting a store-day's supply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupplyOutcome {
    /// The store had no supply that day: the store-day and its windows were made.
    Created,
    Changed {
        from: i32,
        to: i32,
    },
    /// The supply was already this; nothing was written.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error("no such store")]
    NoSuchStore,
    #[error("no such window")]
    NoSuchWindow,
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for ChangeError {
    fn is_retryable(&self) -> bool {
        matches!(self, ChangeError::Db(e) if is_retryable(e))
    }
}

impl From<Refusal> for ChangeError {
    fn from(r: Refusal) -> Self {
        ChangeError::Refused(r)
    }
}

/// The audit id of a store-day's supply: `CODE/YYYY-MM-DD`.
pub fn supply_entity_id(code: &str, day: NaiveDate) -> String {
    format!("{code}/{day}")
}

/// Sets `store_id`'s supply on `day` to `quantity`: allocates a new store-day
/// ([`allocate_days`]), or changes an existing one by the rule of
/// [`resplit_supply`] — refused when the new supply is below what is reserved,
/// picked up and sold.
pub fn set_supply(
    tx: &mut Tx<'_>,
    policy: &Policy,
    store_id: i64,
    day: NaiveDate,
    quantity: i32,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<SupplyOutcome, ChangeError> {
    let code = crate::stores::code_of(tx.conn(), store_id)?.ok_or(ChangeError::NoSuchStore)?;
    let existing = store_day_of(tx.conn(), store_id, day)?;
    let store_day_id = match existing {
        Some((_, supply)) if supply == quantity => return Ok(SupplyOutcome::Unchanged),
        Some((id, _)) => id,
        None => {
            let item = NewDay {
                store_id,
                day,
                supply: quantity,
            };
            match allocate_days(tx, policy, &[item], actor, now)?.first() {
                Some(Allocated::Created { store_day_id }) => {
                    let capacities = capacities_of(tx.conn(), *store_day_id)?;
                    audit::record(
                        tx,
                        Entry {
                            actor,
                            action: "supply.allocate",
                            entity: "supply",
                            entity_id: supply_entity_id(&code, day),
                            before: None,
                            after: Some(json!({ "supply": quantity, "windows": capacities })),
                        },
                    )?;
                    return Ok(SupplyOutcome::Created);
                }
                // Made by a concurrent transaction since the read: change it.
                _ => match store_day_of(tx.conn(), store_id, day)? {
                    Some((id, _)) => id,
                    None => return Err(ChangeError::Db(DieselError::NotFound)),
                },
            }
        }
    };
    change_supply(tx, policy, store_day_id, &code, day, quantity, actor, now)
}

fn store_day_of(
    conn: &mut DbConnection,
    store_id: i64,
    day: NaiveDate,
) -> QueryResult<Option<(i64, i32)>> {
    store_days::table
        .filter(store_days::store_id.eq(store_id))
        .filter(store_days::day.eq(day))
        .select((store_days::id, store_days::supply))
        .first(conn)
        .optional()
}

fn capacities_of(conn: &mut DbConnection, store_day_id: i64) -> QueryResult<Vec<i32>> {
    pickup_windows::table
        .filter(pickup_windows::store_day_id.eq(store_day_id))
        .order(pickup_windows::starts_at)
        .select(pickup_windows::capacity)
        .load(conn)
}

/// A store-day's figures and its windows (id first), read after the row is
/// locked; `closed` says of a window's end whether its booking has closed.
fn read_stock(
    conn: &mut DbConnection,
    store_day_id: i64,
    closed: impl Fn(NaiveDateTime) -> bool,
) -> QueryResult<(DayStock, Vec<i64>)> {
    let (supply, walk_in): (i32, i32) = store_days::table
        .find(store_day_id)
        .select((store_days::supply, store_days::walk_in))
        .first(conn)?;
    let rows: Vec<(i64, i32, i32, i32, NaiveDateTime)> = pickup_windows::table
        .filter(pickup_windows::store_day_id.eq(store_day_id))
        .order(pickup_windows::starts_at)
        .select((
            pickup_windows::id,
            pickup_windows::capacity,
            pickup_windows::reserved,
            pickup_windows::picked_up,
            pickup_windows::ends_at,
        ))
        .load(conn)?;
    let ids = rows.iter().map(|r| r.0).collect();
    let windows = rows
        .into_iter()
        .map(|(_, capacity, reserved, picked_up, ends_at)| WindowStock {
            capacity,
            taken: reserved + picked_up,
            closed: closed(ends_at),
        })
        .collect();
    Ok((
        DayStock {
            supply,
            walk_in,
            windows,
        },
        ids,
    ))
}

/// What a store-day has reserved, picked up and sold (for a refusal's message).
fn taken_on(conn: &mut DbConnection, store_day_id: i64) -> QueryResult<i32> {
    store_days::table
        .find(store_day_id)
        .select(stock::day_taken_sql())
        .first(conn)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the store-day, its audit name, the change and its author and time"
)]
fn change_supply(
    tx: &mut Tx<'_>,
    policy: &Policy,
    store_day_id: i64,
    code: &str,
    day: NaiveDate,
    quantity: i32,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<SupplyOutcome, ChangeError> {
    let taken = stock::day_taken_sql();
    let locked = diesel::update(
        store_days::table
            .find(store_day_id)
            .filter(taken.le(quantity)),
    )
    .set(store_days::stock_changed_at.eq(now))
    .execute(tx.conn())?;
    if locked == 0 {
        let taken = taken_on(tx.conn(), store_day_id)?;
        return Err(Refusal::SupplyBelowTaken { taken, quantity }.into());
    }
    let close = policy.booking_close_minutes;
    let (stock, ids) = read_stock(tx.conn(), store_day_id, |ends_at| {
        rules::booking_closes_at(close, ends_at) <= now
    })?;
    if stock.supply == quantity {
        return Ok(SupplyOutcome::Unchanged);
    }
    let capacities = resplit_supply(&stock, quantity, policy.walk_in_share_percent)?;
    let total: i32 = capacities.iter().sum();
    let written = diesel::update(
        store_days::table
            .find(store_day_id)
            .filter(taken.le(quantity)),
    )
    .set((
        store_days::supply.eq(quantity),
        store_days::window_capacity.eq(total),
    ))
    .execute(tx.conn())?;
    if written == 0 {
        let taken = taken_on(tx.conn(), store_day_id)?;
        return Err(Refusal::SupplyBelowTaken { taken, quantity }.into());
    }
    ledger(
        tx,
        store_day_id,
        None,
        quantity - stock.supply,
        0,
        actor,
        now,
    )?;
    for ((id, window), capacity) in ids.iter().zip(&stock.windows).zip(&capacities) {
        if window.capacity == *capacity {
            continue;
        }
        set_window_row(tx, *id, *capacity)?;
        ledger(
            tx,
            store_day_id,
            Some(*id),
            0,
            capacity - window.capacity,
            actor,
            now,
        )?;
    }
    let before: Vec<i32> = stock.windows.iter().map(|w| w.capacity).collect();
    audit::record(
        tx,
        Entry {
            actor,
            action: "supply.change",
            entity: "supply",
            entity_id: supply_entity_id(code, day),
            before: Some(json!({ "supply": stock.supply, "windows": before })),
            after: Some(json!({ "supply": quantity, "windows": capacities })),
        },
    )?;
    Ok(SupplyOutcome::Changed {
        from: stock.supply,
        to: quantity,
    })
}

/// Sets one window's capacity, unless it has taken more.
fn set_window_row(tx: &mut Tx<'_>, window_id: i64, capacity: i32) -> Result<(), ChangeError> {
    let written = diesel::update(
        pickup_windows::table
            .find(window_id)
            .filter((pickup_windows::reserved + pickup_windows::picked_up).le(capacity)),
    )
    .set(pickup_windows::capacity.eq(capacity))
    .execute(tx.conn())?;
    if written == 0 {
        let (r, p): (i32, i32) = pickup_windows::table
            .find(window_id)
            .select((pickup_windows::reserved, pickup_windows::picked_up))
            .first(tx.conn())?;
        return Err(Refusal::CapacityBelowReserved {
            taken: r + p,
            capacity,
        }
        .into());
    }
    Ok(())
}

fn ledger(
    tx: &mut Tx<'_>,
    store_day_id: i64,
    window_id: Option<i64>,
    supply_delta: i32,
    capacity_delta: i32,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(store_day_id),
            stock_ledger::window_id.eq(window_id),
            stock_ledger::kind.eq(if window_id.is_some() {
                "capacity"
            } else {
                SUPPLY_KIND
            }),
            stock_ledger::supply_delta.eq(supply_delta),
            stock_ledger::capacity_delta.eq(capacity_delta),
            stock_ledger::actor_user_id.eq(actor),
            stock_ledger::created_at.eq(now),
        ))
        .execute(tx.conn())
        .map(drop)
}

/// What changing a window's capacity did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityOutcome {
    Changed { from: i32, to: i32 },
    Unchanged,
}

/// Sets one window's capacity: refused below what the window has reserved or
/// handed over, or when the store-day's windows would then hold more than its
/// supply less walk-in sales. The audit entry's id is the window's id.
pub fn set_window_capacity(
    tx: &mut Tx<'_>,
    window_id: i64,
    capacity: i32,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<CapacityOutcome, ChangeError> {
    let (store_day_id, code, day): (i64, String, NaiveDate) = pickup_windows::table
        .inner_join(stores::table)
        .filter(pickup_windows::id.eq(window_id))
        .select((
            pickup_windows::store_day_id,
            stores::code,
            pickup_windows::day,
        ))
        .first(tx.conn())
        .optional()?
        .ok_or(ChangeError::NoSuchWindow)?;
    // Lock the store-day first, as a supply change does, so the two wait for
    // each other instead of deadlocking.
    diesel::update(store_days::table.find(store_day_id))
        .set(store_days::stock_changed_at.eq(now))
        .execute(tx.conn())?;
    // Only the capacities matter to one window's change, not which are closed.
    let (stock, ids) = read_stock(tx.conn(), store_day_id, |_| false)?;
    let Some(index) = ids.iter().position(|id| *id == window_id) else {
        return Err(ChangeError::NoSuchWindow);
    };
    let before = stock.windows[index].capacity;
    if before == capacity {
        return Ok(CapacityOutcome::Unchanged);
    }
    check_capacity(&stock, index, capacity)?;
    let delta = capacity - before;
    set_window_row(tx, window_id, capacity)?;
    // The windows take `delta` more from the walk-in stock (or give it back).
    let fits = diesel::update(
        store_days::table
            .find(store_day_id)
            .filter(walk_in_left_sql().ge(delta)),
    )
    .set(store_days::window_capacity.eq(store_days::window_capacity + delta))
    .execute(tx.conn())?;
    if fits == 0 {
        return Err(Refusal::CapacityAboveSupply {
            total: stock.capacity() + delta,
            supply: stock.supply,
            walk_in: stock.walk_in,
        }
        .into());
    }
    ledger(tx, store_day_id, Some(window_id), 0, delta, actor, now)?;
    audit::record(
        tx,
        Entry {
            actor,
            action: "capacity.change",
            entity: "capacity",
            entity_id: window_id.to_string(),
            before: Some(json!({ "capacity": before })),
            after: Some(json!({
                "capacity": capacity,
                "store_code": code,
                "date": day.to_string(),
            })),
        },
    )?;
    Ok(CapacityOutcome::Changed {
        from: before,
        to: capacity,
    })
}

/// What copying the previous day's supply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Stores that got the previous day's quantity.
    pub copied: usize,
    /// Stores that already had supply on the day: left as they are.
    pub already: usize,
    /// Suspended stores: not given new supply (sales there are stopped).
    pub suspended: usize,
}

/// Gives every store with supply on the day before `day`, and none on `day`,
/// the same quantity on `day` — except suspended stores.
pub fn copy_previous_day(
    tx: &mut Tx<'_>,
    policy: &Policy,
    day: NaiveDate,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<Copied> {
    let Some(previous) = day.pred_opt() else {
        return Ok(Copied::default());
    };
    let rows: Vec<(i64, i32, bool)> = store_days::table
        .inner_join(stores::table)
        .filter(store_days::day.eq(previous))
        .order(store_days::store_id)
        .select((store_days::store_id, store_days::supply, stores::suspended))
        .load(tx.conn())?;
    let suspended = rows.iter().filter(|r| r.2).count();
    let items: Vec<NewDay> = rows
        .iter()
        .filter(|r| !r.2)
        .map(|&(store_id, supply, _)| NewDay {
            store_id,
            day,
            supply,
        })
        .collect();
    let done = allocate_days(tx, policy, &items, actor, now)?;
    let copied = done
        .iter()
        .filter(|a| matches!(a, Allocated::Created { .. }))
        .count();
    let result = Copied {
        copied,
        already: done.len() - copied,
        suspended,
    };
    if copied > 0 {
        audit::record(
            tx,
            Entry {
                actor,
                action: "supply.copy",
                entity: "supply",
                entity_id: day.to_string(),
                before: None,
                after: Some(json!({
                    "from": previous.to_string(),
                    "copied": result.copied,
                    "already": result.already,
                    "suspended": result.suspended,
                })),
            },
        )?;
    }
    Ok(result)
}
