//! Allocating a store-day's supply: the store-day, its windows and their ledger
//! rows, written in one transaction.

use chrono::{NaiveDate, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::Tx;
use crate::db::schema::{pickup_windows, stock_ledger, store_days};
use crate::policy::Policy;
use crate::supply::rules::{split_supply, window_times};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocated {
    /// The store-day was created with this id.
    Created { store_day_id: i64 },
    /// The store already has supply for that date; nothing was changed.
    AlreadyAllocated,
}

/// Creates `store_id`'s supply for `day` and splits it over the policy's windows.
pub fn allocate_new_day(
    tx: &mut Tx<'_>,
    policy: &Policy,
    store_id: i64,
    day: NaiveDate,
    supply: i32,
    actor: Option<i64>,
) -> QueryResult<Allocated> {
    let now = Utc::now().naive_utc();
    let times = window_times(day, &policy.window_template, policy.timezone);
    let capacities = split_supply(supply, times.len());
    let window_capacity: i32 = capacities.iter().sum();

    let inserted = diesel::insert_into(store_days::table)
        .values((
            store_days::store_id.eq(store_id),
            store_days::day.eq(day),
            store_days::supply.eq(supply),
            store_days::window_capacity.eq(window_capacity),
            store_days::stock_changed_at.eq(now),
            store_days::created_at.eq(now),
        ))
        .returning(store_days::id)
        .get_result::<i64>(tx.conn());
    let store_day_id = match inserted {
        Ok(id) => id,
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            return Ok(Allocated::AlreadyAllocated);
        }
        Err(e) => return Err(e),
    };
    diesel::insert_into(stock_ledger::table)
        .values((
            stock_ledger::store_day_id.eq(store_day_id),
            stock_ledger::kind.eq("allocation"),
            stock_ledger::supply_delta.eq(supply),
            stock_ledger::actor_user_id.eq(actor),
            stock_ledger::created_at.eq(now),
        ))
        .execute(tx.conn())?;
    for (w, capacity) in times.iter().zip(capacities) {
        let window_id = diesel::insert_into(pickup_windows::table)
            .values((
                pickup_windows::store_day_id.eq(store_day_id),
                pickup_windows::store_id.eq(store_id),
                pickup_windows::day.eq(day),
                pickup_windows::starts_at.eq(w.starts_at),
                pickup_windows::ends_at.eq(w.ends_at),
                pickup_windows::capacity.eq(capacity),
            ))
            .returning(pickup_windows::id)
            .get_result::<i64>(tx.conn())?;
        diesel::insert_into(stock_ledger::table)
            .values((
                stock_ledger::store_day_id.eq(store_day_id),
                stock_ledger::window_id.eq(Some(window_id)),
                stock_ledger::kind.eq("capacity"),
                stock_ledger::capacity_delta.eq(capacity),
                stock_ledger::actor_user_id.eq(actor),
                stock_ledger::created_at.eq(now),
            ))
            .execute(tx.conn())?;
    }
    Ok(Allocated::Created { store_day_id })
}
