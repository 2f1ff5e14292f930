//! Allocating supply to store-days that have none: the store-days, their
//! windows and their ledger rows, written in the caller's transaction. One
//! path for one store-day (an administrator's form) and for tens of thousands
//! (an import, copying the previous day): a handful of multi-row statements per
//! thousand store-days instead of a few statements per store-day.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Timestamp};

use crate::db::{DbConnection, Tx};
use crate::policy::Policy;
use crate::supply::rules::{WindowTimes, window_times, windows_share};

type Backend = <DbConnection as Connection>::Backend;

/// Rows per multi-row statement: at most 6 bound values a row, well under
/// SQLite's limit of 32,766 variables and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocated {
    /// The store-day was created with this id.
    Created { store_day_id: i64 },
    /// The store already has supply for that date (or an earlier item of the
    /// same batch gave it some); nothing was changed.
    AlreadyAllocated,
}

/// Supply for a store-day that may not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDay {
    pub store_id: i64,
    pub day: NaiveDate,
    pub supply: i32,
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
    let item = NewDay {
        store_id,
        day,
        supply,
    };
    let done = allocate_days(tx, policy, &[item], actor, now)?;
    Ok(done.first().copied().unwrap_or(Allocated::AlreadyAllocated))
}

#[derive(QueryableByName)]
struct InsertedDay {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    store_id: i64,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

/// Creates every store-day of `days` that does not exist yet, each with the
/// policy's windows and the supply less the policy's walk-in share split over
/// them (remainder to the earliest), the share left to the counter,
/// and the ledger rows of both. Answers one [`Allocated`] per item, in order. A
/// store-day that exists — already, or created by a concurrent transaction — is
/// left as it is (`INSERT … ON CONFLICT DO NOTHING`), never an error.
pub fn allocate_days(
    tx: &mut Tx<'_>,
    policy: &Policy,
    days: &[NewDay],
    actor: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<Vec<Allocated>> {
    let mut times: HashMap<NaiveDate, Vec<WindowTimes>> = HashMap::new();
    for d in days {
        times
            .entry(d.day)
            .or_insert_with(|| window_times(d.day, &policy.window_template, policy.timezone));
    }
    // The windows get all but the walk-in share; a day without windows keeps
    // everything for the counter.
    let capacity_of = |d: &NewDay| {
        let n = times.get(&d.day).map_or(0, Vec::len);
        if n == 0 {
            0
        } else {
            windows_share(d.supply, policy.walk_in_share_percent)
        }
    };

    let mut results = vec![Allocated::AlreadyAllocated; days.len()];
    let mut created: Vec<(i64, NewDay)> = Vec::new();
    for (c, chunk) in days.chunks(ROWS_PER_STATEMENT).enumerate() {
        let sql = format!(
            "INSERT INTO store_days (store_id, day, supply, window_capacity, stock_changed_at, created_at)
             VALUES {} ON CONFLICT (store_id, day) DO NOTHING RETURNING id, store_id, day",
            placeholders(chunk.len(), 6)
        );
        let mut q = diesel::sql_query(sql).into_boxed::<Backend>();
        for d in chunk {
            q = q
                .bind::<BigInt, _>(d.store_id)
                .bind::<Date, _>(d.day)
                .bind::<Integer, _>(d.supply)
                .bind::<Integer, _>(capacity_of(d))
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now);
        }
        let inserted: Vec<InsertedDay> = q.load(tx.conn())?;
        let mut ids: HashMap<(i64, NaiveDate), i64> = inserted
            .into_iter()
            .map(|r| ((r.store_id, r.day), r.id))
            .collect();
        for (i, d) in chunk.iter().enumerate() {
            // `remove`: a second item for the same store-day finds it taken.
            if let Some(id) = ids.remove(&(d.store_id, d.day)) {
                results[c * ROWS_PER_STATEMENT + i] = Allocated::Created { store_day_id: id };
                created.push((id, *d));
            }
        }
    }

    for chunk in created.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        // Ledger rows of the supply, written from the rows just inserted.
        ledger_from(
            tx,
            "INSERT INTO stock_ledger (store_day_id, kind, supply_delta, capacity_delta, actor_user_id, created_at)
             SELECT id, 'allocation', supply, 0, $1, $2 FROM store_days WHERE id IN",
            &ids,
            actor,
            now,
        )?;
    }

    // The windows come from the store-days just inserted joined to the
    // template's windows of each date, the windows' share of the supply
    // (`window_capacity`) split in SQL the way `split_supply` splits it:
    // `c / n`, plus one for the first `c % n` windows. Far fewer bound values
    // than a row each.
    let mut by_day: HashMap<NaiveDate, Vec<i64>> = HashMap::new();
    for (id, d) in &created {
        by_day.entry(d.day).or_default().push(*id);
    }
    for (day, ids) in &by_day {
        let ts = times.get(day).map_or(&[][..], Vec::as_slice);
        if ts.is_empty() {
            continue;
        }
        let n = i32::try_from(ts.len()).unwrap_or(i32::MAX);
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let first_id = ts.len() * 5 + 1;
            let list: Vec<String> = (0..chunk.len())
                .map(|i| format!("${}", first_id + i))
                .collect();
            let sql = format!(
                "INSERT INTO pickup_windows (store_day_id, store_id, day, starts_at, ends_at, capacity)
                 SELECT d.id, d.store_id, d.day, t.column4, t.column5,
                        d.window_capacity / t.column3
                          + CASE WHEN t.column2 < d.window_capacity % t.column3 THEN 1 ELSE 0 END
                 FROM store_days d JOIN (VALUES {}) t ON t.column1 = d.day
                 WHERE d.id IN ({})",
                placeholders(ts.len(), 5),
                list.join(", ")
            );
            let mut q = diesel::sql_query(sql).into_boxed::<Backend>();
            for (t, k) in ts.iter().zip(0..) {
                q = q
                    .bind::<Date, _>(*day)
                    .bind::<Integer, _>(k)
                    .bind::<Integer, _>(n)
                    .bind::<Timestamp, _>(t.starts_at)
                    .bind::<Timestamp, _>(t.ends_at);
            }
            for id in chunk {
                q = q.bind::<BigInt, _>(*id);
            }
            q.execute(tx.conn())?;
        }
    }
    for chunk in created.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        ledger_from(
            tx,
            "INSERT INTO stock_ledger (store_day_id, window_id, kind, supply_delta, capacity_delta, actor_user_id, created_at)
             SELECT store_day_id, id, 'capacity', 0, capacity, $1, $2 FROM pickup_windows WHERE store_day_id IN",
            &ids,
            actor,
            now,
        )?;
    }
    Ok(results)
}

/// Runs `insert_select` (whose `$1` is the actor and `$2` the time, ending in
/// `… IN`) for the ids given.
fn ledger_from(
    tx: &mut Tx<'_>,
    insert_select: &str,
    ids: &[i64],
    actor: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!("{insert_select} ({})", list.join(", "));
    let mut q = diesel::sql_query(sql)
        .into_boxed::<Backend>()
        .bind::<Nullable<BigInt>, _>(actor)
        .bind::<Timestamp, _>(now);
    for id in ids {
        q = q.bind::<BigInt, _>(*id);
    }
    q.execute(tx.conn()).map(drop)
}

/// `($1, $2, …), (…)` for `rows` rows of `columns` values. `$n` binds by
/// position on both backends.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (0..columns)
                .map(|c| format!("${}", r * columns + c + 1))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_every_value_in_order() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1), "($1)");
    }
}
