//! [`super::book`] for a set of reservations at once — the form a draw's run
//! books its winners in (`draws::run`), where one registration after another
//! at a dozen statements each could not settle a country's registrations in
//! minutes.
//!
//! The same booking, set by set:
//!
//! - **The facts** the rules read ([`Facts::load`]): the accounts, the
//!   dependants' links (held `FOR SHARE` on PostgreSQL, as one booking holds
//!   its link), the windows with their stores and each person's quota used,
//!   each read for the whole set in one query.
//! - **The rules**: [`Facts::may_take`] answers, for one request, what the
//!   step-by-step form would decide before its first write — the account's
//!   checks, the dependant's link, the window's draw, `rules::check` — with the
//!   same functions, and what is left of the person's quota.
//! - **The takes** ([`book`]): the quota, the windows and the store-days are
//!   each raised by one conditional statement over the whole set, the same
//!   conditions as [`super::WINDOW_TAKE_SQL`] and [`super::DAY_TAKE_SQL`] on
//!   each row's sum; each statement's row count must be the number of rows it
//!   was given. Then the reservations, their ledger rows and their mails (the
//!   step-by-step form's `Confirmation`), a statement per thousand or so rows.
//!
//! A set that does not fit whole is refused whole ([`BookError::NotAll`]):
//! the caller's savepoint rolls back what the takes before it wrote, and the
//! caller books its requests one at a time. A set of one answers exactly as
//! the other forms do, refusal included ([`super::settle`]), which
//! `tests/api/booking_conformance.rs` holds it to.
//!
//! Requests of a set carry no request id: the set form is for the service's
//! own bookings, which no resubmitted form can repeat.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Date, Text};

use super::{
    Account, AccountRow, BookError, Booked, Citizen, Confirmation, ForWhom, Holder, LEDGER_KIND,
    Request, TakeArgs, Taken, Window, check, settle,
};
use crate::db::schema::{people, pickup_windows, quota_usage, stores, users};
use crate::db::statement::{Arg, Statement, value_rows};
use crate::db::{Backend, Tx, read_by_ids};
use crate::dependants::queries::Current;
use crate::i18n::Tr;
use crate::mail::outbox;
use crate::policy::Policy;
use crate::quota;
use crate::reservations::code;
use crate::reservations::rules::Refusal;

/// Most placeholders one statement of a set carries: under SQLite's limit
/// (32,766) and PostgreSQL's (65,535).
const MOST_ARGUMENTS: usize = 30_000;

/// What the rules of a set of requests read, read for the whole set.
pub struct Facts {
    accounts: HashMap<i64, Account>,
    /// Current links by id: the guardian and the dependant.
    links: HashMap<i64, (i64, Current)>,
    windows: HashMap<i64, Window>,
    /// Quota used by (person, period start), as read and as taken since.
    used: HashMap<(i64, NaiveDate), i32>,
}

/// A request the rules allow: whose quota, which period, and what is left.
struct Fit<'f> {
    citizen: Citizen,
    holder: Holder,
    window: &'f Window,
    period_start: NaiveDate,
    left: i32,
}

#[derive(QueryableByName)]
struct LinkRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    guardian_user_id: i64,
    #[diesel(sql_type = BigInt)]
    person_id: i64,
    #[diesel(sql_type = Date)]
    birth_date: NaiveDate,
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    pickup_code: String,
}

impl Facts {
    /// Reads what the rules need for `requests`, set by set.
    pub fn load<'r>(
        tx: &mut Tx<'_>,
        policy: &Policy,
        requests: impl IntoIterator<Item = &'r Request>,
    ) -> QueryResult<Facts> {
        let (mut user_ids, mut link_ids, mut window_ids) = (Vec::new(), Vec::new(), Vec::new());
        for req in requests {
            user_ids.push(req.user_id);
            window_ids.push(req.window_id);
            if let ForWhom::Dependant(id) = req.person {
                link_ids.push(id);
            }
        }
        for ids in [&mut user_ids, &mut link_ids, &mut window_ids] {
            ids.sort_unstable();
            ids.dedup();
        }
        let accounts: HashMap<i64, Account> = read_by_ids(&user_ids, |chunk| {
            crate::on_each_backend!(tx.conn(), |c| {
                users::table
                    .left_join(people::table)
                    .filter(users::id.eq_any(chunk))
                    .select((users::id, AccountRow::as_select()))
                    .load::<(i64, AccountRow)>(c)
            })
        })?
        .into_iter()
        .map(|(id, row)| (id, Account::from_row(row)))
        .collect();
        let links: HashMap<i64, (i64, Current)> =
            read_by_ids(&link_ids, |chunk| current_links(tx, chunk))?
                .into_iter()
                .collect();
        let windows: HashMap<i64, Window> = read_by_ids(&window_ids, |chunk| {
            crate::on_each_backend!(tx.conn(), |c| {
                pickup_windows::table
                    .inner_join(stores::table)
                    .filter(pickup_windows::id.eq_any(chunk))
                    .select((pickup_windows::id, Window::as_select()))
                    .load::<(i64, Window)>(c)
            })
        })?
        .into_iter()
        .collect();
        let mut persons: Vec<i64> = accounts
            .values()
            .filter_map(|a| a.person_id)
            .chain(links.values().map(|(_, d)| d.person_id))
            .collect();
        persons.sort_unstable();
        persons.dedup();
        let mut periods: Vec<NaiveDate> = windows
            .values()
            .map(|w| crate::reservations::rules::period_of(policy, w.day))
            .collect();
        periods.sort_unstable();
        periods.dedup();
        let used: HashMap<(i64, NaiveDate), i32> = read_by_ids(&persons, |chunk| {
            quota_usage::table
                .filter(quota_usage::person_id.eq_any(chunk))
                .filter(quota_usage::period_start.eq_any(&periods))
                .select((
                    quota_usage::person_id,
                    quota_usage::period_start,
                    quota_usage::used,
                ))
                .load::<(i64, NaiveDate, i32)>(tx.conn())
        })?
        .into_iter()
        .map(|(p, d, u)| ((p, d), u))
        .collect();
        Ok(Facts {
            accounts,
            links,
            windows,
            used,
        })
    }

    /// What `req`'s person may still take in `req`'s window — their quota
    /// left in its period — or why the booking would be refused before
    /// anything is taken, as the other forms decide it.
    pub fn may_take(&self, policy: &Policy, req: &Request) -> Result<i32, BookError> {
        self.fit(policy, req).map(|fit| fit.left)
    }

    /// Counts `req` as booked in what [`Facts::may_take`] answers for the
    /// requests after it (a person's second request in the same set).
    pub fn note_booked(&mut self, policy: &Policy, req: &Request) {
        if let Ok(fit) = self.fit(policy, req) {
            let key = (fit.holder.person_id, fit.period_start);
            *self.used.entry(key).or_insert(0) += req.quantity.get();
        }
    }

    fn fit(&self, policy: &Policy, req: &Request) -> Result<Fit<'_>, BookError> {
        let account = self.accounts.get(&req.user_id).cloned();
        Account::held_by(account.as_ref(), req.session.as_ref())?;
        let citizen = Account::citizen(account)?;
        let holder = match req.person {
            ForWhom::Own => Holder::own(&citizen),
            ForWhom::Dependant(id) => match self.links.get(&id) {
                Some((guardian, d)) if *guardian == req.user_id => Holder::dependant(id, d.clone()),
                _ => return Err(Refusal::UnknownPerson.into()),
            },
        };
        let window = self
            .windows
            .get(&req.window_id)
            .ok_or(Refusal::UnknownWindow)?;
        let period_start = check(policy, req, &holder, window)?;
        let used = self
            .used
            .get(&(holder.person_id, period_start))
            .copied()
            .unwrap_or(0);
        Ok(Fit {
            citizen,
            holder,
            window,
            period_start,
            left: quota::left(policy.quota_per_period, used),
        })
    }
}

/// The current links among `ids`, held `FOR SHARE` on PostgreSQL so that
/// none ends under the booking.
fn current_links(tx: &mut Tx<'_>, ids: &[i64]) -> QueryResult<Vec<(i64, (i64, Current))>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let lock = match tx.backend() {
        Backend::Postgres => " FOR SHARE OF d",
        Backend::Sqlite => "",
    };
    let list = value_rows(ids.len(), 1, 1).replace(['(', ')'], "");
    let sql = format!(
        "SELECT d.id, d.guardian_user_id, d.person_id, p.birth_date, d.name \
         FROM dependants d JOIN people p ON p.id = d.person_id \
         WHERE d.id IN ({list}) AND d.ended_at IS NULL{lock}"
    );
    let statement = Statement::built(sql, ids.iter().map(|id| Arg::BigInt(*id)).collect());
    let rows: Vec<LinkRow> = crate::on_each_backend!(tx.conn(), |c| statement.load(c))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let current = Current {
                person_id: r.person_id,
                birth_date: r.birth_date,
                name: r.name,
            };
            (r.id, (r.guardian_user_id, current))
        })
        .collect())
}

/// Books every request of `asks` (each with the language of its mail), or
/// none: a set that does not fit whole is [`BookError::NotAll`], after which
/// the caller's transaction or savepoint must be rolled back. A set of one is
/// refused as the other forms refuse it.
pub fn book(
    tx: &mut Tx<'_>,
    facts: &Facts,
    asks: &[(Request, Tr)],
    policy: &Policy,
    base_url: &str,
) -> Result<Vec<Booked>, BookError> {
    if asks.iter().any(|(req, _)| req.request_id.is_some()) {
        return Err(DieselError::QueryBuilderError(
            "the set form books requests without request ids".into(),
        )
        .into());
    }
    let mut fits = Vec::with_capacity(asks.len());
    for (req, _) in asks {
        fits.push(facts.fit(policy, req)?);
    }
    let now = asks.first().map(|(req, _)| req.now.naive_utc());
    let Some(now) = now else {
        return Ok(Vec::new());
    };
    let taken = take(tx, policy, asks, &fits, now)?;
    if taken != Taken::ALL {
        return Err(match (asks, fits.as_slice()) {
            ([(req, _)], [fit]) => {
                let takes = TakeArgs {
                    person_id: fit.holder.person_id,
                    period_start: fit.period_start,
                    quantity: req.quantity,
                    quota: policy.quota_per_period,
                    window_id: req.window_id,
                    now,
                    store_day_id: fit.window.store_day_id,
                    close_minutes: policy.booking_close_minutes,
                };
                match settle(tx, req, &takes, fit.window, taken) {
                    Err(refused) => refused,
                    Ok(()) => BookError::NotAll,
                }
            }
            _ => BookError::NotAll,
        });
    }
    let booked = insert_reservations(tx, asks, &fits, now)?;
    ledger(tx, asks, &fits, &booked, now)?;
    mails(tx, asks, &fits, &booked, policy, base_url)?;
    Ok(booked)
}

/// The three takes over the set, each only if the one before took whole.
fn take(
    tx: &mut Tx<'_>,
    policy: &Policy,
    asks: &[(Request, Tr)],
    fits: &[Fit<'_>],
    now: NaiveDateTime,
) -> QueryResult<Taken> {
    let mut taken = Taken::NOTHING;
    let mut by_person: HashMap<(i64, NaiveDate), i32> = HashMap::new();
    let mut by_window: HashMap<i64, i32> = HashMap::new();
    let mut by_day: HashMap<i64, i32> = HashMap::new();
    for ((req, _), fit) in asks.iter().zip(fits) {
        let q = req.quantity.get();
        *by_person
            .entry((fit.holder.person_id, fit.period_start))
            .or_insert(0) += q;
        *by_window.entry(req.window_id).or_insert(0) += q;
        *by_day.entry(fit.window.store_day_id).or_insert(0) += q;
    }
    let quota = policy.quota_per_period;
    // A first use is inserted without the update's condition, so a sum
    // above the quota itself is refused here, as `quota::try_take` does.
    if by_person.values().any(|n| *n > quota) {
        return Ok(taken);
    }
    let rows: Vec<Vec<Arg<'static>>> = sorted(by_person)
        .into_iter()
        .map(|((person, period), n)| vec![Arg::BigInt(person), Arg::Date(period), Arg::Integer(n)])
        .collect();
    taken.quota = each_chunk(tx, &rows, 3, vec![Arg::Integer(quota)], |values| {
        format!(
            "INSERT INTO quota_usage (person_id, period_start, used) VALUES {values} \
             ON CONFLICT (person_id, period_start) \
             DO UPDATE SET used = quota_usage.used + excluded.used \
             WHERE quota_usage.used + excluded.used <= $1"
        )
    })?;
    if !taken.quota {
        return Ok(taken);
    }
    let rows: Vec<Vec<Arg<'static>>> = sorted(by_window)
        .into_iter()
        .map(|(id, n)| vec![Arg::BigInt(id), Arg::Integer(n)])
        .collect();
    taken.window = each_chunk(tx, &rows, 2, Vec::new(), |values| {
        format!(
            "WITH v (id, n) AS (VALUES {values}) \
             UPDATE pickup_windows SET reserved = pickup_windows.reserved + v.n FROM v \
             WHERE pickup_windows.id = v.id \
             AND pickup_windows.reserved + pickup_windows.picked_up + v.n \
                 <= pickup_windows.capacity"
        )
    })?;
    if !taken.window {
        return Ok(taken);
    }
    let rows: Vec<Vec<Arg<'static>>> = sorted(by_day)
        .into_iter()
        .map(|(id, n)| vec![Arg::BigInt(id), Arg::Integer(n)])
        .collect();
    taken.store_day = each_chunk(tx, &rows, 2, vec![Arg::Timestamp(now)], |values| {
        format!(
            "WITH v (id, n) AS (VALUES {values}) \
             UPDATE store_days SET reserved = store_days.reserved + v.n, stock_changed_at = $1 \
             FROM v WHERE store_days.id = v.id \
             AND store_days.reserved + store_days.picked_up + store_days.walk_in + v.n \
                 <= store_days.supply"
        )
    })?;
    Ok(taken)
}

/// The pairs of `map` in key order: rows are written, and so locked, in
/// one order whatever the set.
fn sorted<K: Ord, V>(map: HashMap<K, V>) -> Vec<(K, V)> {
    let mut pairs: Vec<(K, V)> = map.into_iter().collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// Runs the statement `sql(values)` over `rows` of `columns` arguments each,
/// as few statements as the argument limit allows, with `fixed` as `$1`…;
/// whether every statement wrote as many rows as it was given.
fn each_chunk(
    tx: &mut Tx<'_>,
    rows: &[Vec<Arg<'_>>],
    columns: usize,
    fixed: Vec<Arg<'_>>,
    sql: impl Fn(&str) -> String,
) -> QueryResult<bool> {
    let per = (MOST_ARGUMENTS / columns).max(1);
    for chunk in rows.chunks(per) {
        let values = value_rows(chunk.len(), columns, fixed.len() + 1);
        let mut args = fixed.clone();
        args.extend(chunk.iter().flatten().cloned());
        if Statement::built(sql(&values), args).run(tx.conn())? != chunk.len() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The reservations, each with a fresh pickup code; a code already taken
/// (practically never) is drawn again for that row alone.
fn insert_reservations(
    tx: &mut Tx<'_>,
    asks: &[(Request, Tr)],
    fits: &[Fit<'_>],
    now: NaiveDateTime,
) -> Result<Vec<Booked>, BookError> {
    const COLUMNS: usize = 14;
    let mut booked: Vec<Option<Booked>> = vec![None; asks.len()];
    let mut pending: Vec<usize> = (0..asks.len()).collect();
    for _ in 0..super::CODE_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let mut codes: HashMap<String, usize> = HashMap::with_capacity(pending.len());
        for &i in &pending {
            let mut c = code::generate();
            while codes.contains_key(&c) {
                c = code::generate();
            }
            codes.insert(c, i);
        }
        let rows: Vec<(usize, &str)> = codes.iter().map(|(c, i)| (*i, c.as_str())).collect();
        for chunk in rows.chunks(MOST_ARGUMENTS / COLUMNS) {
            let mut args = Vec::with_capacity(chunk.len() * COLUMNS);
            for &(i, pickup_code) in chunk {
                let ((req, t), fit) = (&asks[i], &fits[i]);
                args.extend([
                    Arg::BigInt(req.user_id),
                    Arg::BigInt(fit.holder.person_id),
                    Arg::NullableBigInt(fit.holder.dependant_id()),
                    Arg::BigInt(req.window_id),
                    Arg::BigInt(fit.window.store_id),
                    Arg::Integer(req.quantity.get()),
                    Arg::Date(fit.period_start),
                    Arg::Text(req.hold.status().as_str()),
                    Arg::Text(pickup_code),
                    Arg::Timestamp(now),
                    Arg::Timestamp(now),
                    Arg::Text(t.code()),
                    Arg::NullableTimestamp(req.hold.offer_until()),
                    Arg::NullableText(None),
                ]);
            }
            let sql = format!(
                "INSERT INTO reservations (user_id, person_id, dependant_id, window_id, store_id, \
                 quantity, period_start, status, pickup_code, created_at, updated_at, mail_lang, \
                 offer_until, request_id) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING id, pickup_code",
                value_rows(chunk.len(), COLUMNS, 1)
            );
            let statement = Statement::built(sql, args);
            let rows: Vec<Inserted> = crate::on_each_backend!(tx.conn(), |c| statement.load(c))?;
            for row in rows {
                if let Some(&i) = codes.get(&row.pickup_code) {
                    booked[i] = Some(Booked {
                        reservation_id: row.id,
                        pickup_code: row.pickup_code,
                        replayed: false,
                    });
                }
            }
        }
        pending.retain(|&i| booked[i].is_none());
    }
    if !pending.is_empty() {
        return Err(BookError::NoFreeCode);
    }
    Ok(booked.into_iter().flatten().collect())
}

/// A ledger row per reservation, as the other forms write it.
fn ledger(
    tx: &mut Tx<'_>,
    asks: &[(Request, Tr)],
    fits: &[Fit<'_>],
    booked: &[Booked],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<Vec<Arg<'_>>> = asks
        .iter()
        .zip(fits)
        .zip(booked)
        .map(|(((req, _), fit), b)| {
            vec![
                Arg::BigInt(fit.window.store_day_id),
                Arg::BigInt(req.window_id),
                Arg::BigInt(b.reservation_id),
                Arg::Text(LEDGER_KIND),
                Arg::Integer(req.quantity.get()),
                Arg::BigInt(req.user_id),
                Arg::Timestamp(now),
            ]
        })
        .collect();
    each_chunk(tx, &rows, 7, Vec::new(), |values| {
        format!(
            "INSERT INTO stock_ledger (store_day_id, window_id, reservation_id, kind, \
             reserved_delta, actor_user_id, created_at) VALUES {values}"
        )
    })
    .map(drop)
}

/// Each reservation's mail, the one the other forms enqueue.
fn mails(
    tx: &mut Tx<'_>,
    asks: &[(Request, Tr)],
    fits: &[Fit<'_>],
    booked: &[Booked],
    policy: &Policy,
    base_url: &str,
) -> QueryResult<()> {
    let letters: Vec<Confirmation> = asks
        .iter()
        .zip(fits)
        .zip(booked)
        .map(|(((req, t), fit), b)| {
            Confirmation::new(
                t,
                policy,
                base_url,
                &fit.citizen,
                &fit.holder,
                fit.window,
                req,
                b.reservation_id,
                &b.pickup_code,
            )
        })
        .collect();
    let due = Utc::now().naive_utc();
    let rows: Vec<Vec<Arg<'_>>> = letters
        .iter()
        .zip(fits)
        .map(|(letter, fit)| {
            vec![
                Arg::Text(&fit.citizen.email),
                Arg::Text(letter.kind),
                Arg::Text(&letter.subject),
                Arg::Text(&letter.body),
                Arg::Text(outbox::PENDING),
                Arg::Integer(0),
                Arg::Timestamp(due),
                Arg::Timestamp(due),
            ]
        })
        .collect();
    each_chunk(tx, &rows, 8, Vec::new(), |values| {
        format!(
            "INSERT INTO mail_outbox (recipient, kind, subject, body_text, status, attempts, \
             next_attempt_at, created_at) VALUES {values}"
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_come_in_key_order() {
        let map: HashMap<i64, i32> = [(3, 1), (1, 2), (2, 3)].into_iter().collect();
        assert_eq!(sorted(map), vec![(1, 2), (2, 3), (3, 1)]);
    }
}
