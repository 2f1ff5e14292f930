//! Daily supply from CSV (`store_code,date,quantity`, in any column order,
//! several dates a file, each within [`SupplyDates`] of today): the whole file
//! is checked first — every line, every store code, and every change against
//! what the store-days hold — and every bad line reported; nothing is written
//! unless the whole file passes. Then it is applied in chunks of [`CHUNK`]
//! lines, each its own transaction, so that a country's file does not hold the
//! rush's bookings (see [`import`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::json;

use crate::audit::{self, Entry};
use crate::db::schema::{store_days, stores};
use crate::db::{AsRetryable, Backend, Db, DbConnection, DbError, Tx, is_retryable};
use crate::i18n::Tr;
use crate::policy::Policy;
use crate::stores::is_store_code;
use crate::supply::allocation::{Allocated, NewDay, allocate_days};
use crate::supply::changes::{ChangeError, SupplyOutcome, set_supply};
use crate::supply::rules::{self, Refusal, SupplyDates};

/// More than this in one store-day is a typing mistake, not a delivery.
pub const MAX_QUANTITY: i32 = 1_000_000;

/// The columns a file must have (in any order).
pub const COLUMNS: [&str; 3] = ["store_code", "date", "quantity"];

/// One valid line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplyRow {
    pub line: u64,
    pub store_code: String,
    pub day: NaiveDate,
    pub quantity: i32,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file is not UTF-8 (this is the first line that is not).
    NotUtf8,
    MissingColumn(&'static str),
    /// The line cannot be read as CSV (e.g. a wrong number of fields).
    Unreadable,
    StoreCode(String),
    UnknownStore(String),
    Date(String),
    /// A date further from today than supply may be given for.
    DateOutOfRange {
        day: NaiveDate,
        dates: SupplyDates,
    },
    Quantity(String),
    Negative(String),
    TooLarge(String),
    /// The same store and date appear on an earlier line.
    Duplicate {
        store_code: String,
        date: NaiveDate,
        first_line: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub problem: Problem,
}

impl LineError {
    /// The problem in the reader's language, with the line's values.
    pub fn message(&self, t: &Tr) -> String {
        let line: &dyn std::fmt::Display = &self.line;
        let text = |key: &str, value: &str| t.fmt(key, &[("line", line), ("value", &value)]);
        match &self.problem {
            Problem::NotUtf8 => text("admin.supply.import.error.not_utf8", ""),
            Problem::MissingColumn(c) => text("admin.supply.import.error.missing_column", c),
            Problem::Unreadable => text("admin.supply.import.error.unreadable", ""),
            Problem::StoreCode(v) => text("admin.supply.import.error.store_code", v),
            Problem::UnknownStore(v) => text("admin.supply.import.error.unknown_store", v),
            Problem::Date(v) => text("admin.supply.import.error.date", v),
            Problem::DateOutOfRange { day, dates } => t.fmt(
                "admin.supply.import.error.date_range",
                &[
                    ("line", line),
                    ("value", day),
                    ("first", &dates.first),
                    ("last", &dates.last),
                ],
            ),
            Problem::Quantity(v) => text("admin.supply.import.error.quantity", v),
            Problem::Negative(v) => text("admin.supply.import.error.negative", v),
            Problem::TooLarge(v) => t.fmt(
                "admin.supply.import.error.too_large",
                &[("line", line), ("value", v), ("max", &MAX_QUANTITY)],
            ),
            Problem::Duplicate {
                store_code,
                date,
                first_line,
            } => t.fmt(
                "admin.supply.import.error.duplicate",
                &[
                    ("line", line),
                    ("code", store_code),
                    ("date", date),
                    ("first", first_line),
                ],
            ),
        }
    }
}

/// Reads the file: the valid rows and every problem found, by line; a date
/// outside `dates` is a problem. Rows are only worth applying when there are
/// no problems.
pub fn parse_csv(bytes: &[u8], dates: SupplyDates) -> (Vec<SupplyRow>, Vec<LineError>) {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            let problem = Problem::NotUtf8;
            return (Vec::new(), vec![LineError { line, problem }]);
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header_error = |problem| (Vec::new(), vec![LineError { line: 1, problem }]);
    let Ok(headers) = reader.headers() else {
        return header_error(Problem::Unreadable);
    };
    let headers: Vec<String> = headers.iter().map(str::to_lowercase).collect();
    let mut index = [0usize; 3];
    for (slot, name) in index.iter_mut().zip(COLUMNS) {
        match headers.iter().position(|h| h == name) {
            Some(i) => *slot = i,
            None => return header_error(Problem::MissingColumn(name)),
        }
    }

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<(String, NaiveDate), u64> = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let fallback = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(2);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(fallback, csv::Position::line);
                errors.push(LineError {
                    line,
                    problem: Problem::Unreadable,
                });
                continue;
            }
        };
        let line = record.position().map_or(fallback, csv::Position::line);
        let field = |n: usize| record.get(index[n]).unwrap_or("").to_owned();
        match check(field(0), field(1), field(2), dates) {
            Err(problem) => errors.push(LineError { line, problem }),
            Ok((store_code, day, quantity)) => match seen.get(&(store_code.clone(), day)) {
                Some(first) => errors.push(LineError {
                    line,
                    problem: Problem::Duplicate {
                        store_code,
                        date: day,
                        first_line: *first,
                    },
                }),
                None => {
                    seen.insert((store_code.clone(), day), line);
                    rows.push(SupplyRow {
                        line,
                        store_code,
                        day,
                        quantity,
                    });
                }
            },
        }
    }
    (rows, errors)
}

fn check(
    code: String,
    date: String,
    quantity: String,
    dates: SupplyDates,
) -> Result<(String, NaiveDate, i32), Problem> {
    if !is_store_code(&code) {
        return Err(Problem::StoreCode(code));
    }
    let day = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == date)
        .ok_or_else(|| Problem::Date(date.clone()))?;
    let day = dates
        .check(day)
        .map_err(|dates| Problem::DateOutOfRange { day, dates })?;
    let digits = quantity.strip_prefix('-').unwrap_or(&quantity);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::Quantity(quantity));
    }
    if quantity.starts_with('-') {
        return Err(Problem::Negative(quantity));
    }
    let n = digits
        .parse::<i32>()
        .ok()
        .filter(|n| *n <= MAX_QUANTITY)
        .ok_or_else(|| Problem::TooLarge(quantity.clone()))?;
    Ok((code, day, n))
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    pub created: usize,
    pub changed: usize,
    pub unchanged: usize,
}

impl Imported {
    fn add(&mut self, other: Imported) {
        self.created += other.created;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
    }

    /// Lines applied.
    pub fn lines(&self) -> usize {
        self.created + self.changed + self.unchanged
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Lines that are wrong; nothing was imported.
    #[error("{} bad lines", .0.len())]
    Invalid(Vec<LineError>),
    /// A line's change is refused (a supply below what is reserved). When the
    /// file was checked it was not: the lines before it (`applied`) were
    /// written, none from it on. Found by the check, `applied` is empty.
    #[error("line {line}: refused")]
    Refused {
        line: u64,
        store_code: String,
        day: NaiveDate,
        refusal: Refusal,
        applied: Imported,
    },
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for ImportError {
    fn is_retryable(&self) -> bool {
        matches!(self, ImportError::Db(e) if is_retryable(e))
    }
}

/// Lines written in one transaction. Each chunk is a bulk write of its own
/// (`Db::write_bulk`): on SQLite it holds the one write lock, and every
/// booking queued behind it, for about as long as 250 lines take (about 20
/// ms in a release build), not for the whole file; and between chunks the
/// import rests ([`pause_after`]). Figures in docs/benchmarks.md, "Bulk
/// administration during the rush".
pub const CHUNK: usize = 250;

/// One line of a checked file: its store found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub line: u64,
    pub store_code: String,
    pub store_id: i64,
    pub day: NaiveDate,
    pub quantity: i32,
}

/// What a file's lines find in the database: each store code's store (id and
/// name), and each of its store-days' supply and what it has taken (reserved,
/// picked up and sold). Read in chunks, so that a national file stays within
/// the backends' limits on bound values.
struct StoreDays {
    stores: HashMap<String, (i64, String)>,
    days: HashMap<(i64, NaiveDate), (i32, i32)>,
}

impl StoreDays {
    /// Reads the stores and store-days of `rows`; bad lines (`problems`) and
    /// unknown store codes refuse the file whole, each named by its line.
    fn read(
        conn: &mut DbConnection,
        rows: &[SupplyRow],
        problems: &[LineError],
    ) -> Result<StoreDays, ImportError> {
        let codes: Vec<&str> = rows
            .iter()
            .map(|r| r.store_code.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut stores = HashMap::new();
        for chunk in codes.chunks(1000) {
            let found: Vec<(String, i64, String)> = stores::table
                .filter(stores::code.eq_any(chunk))
                .select((stores::code, stores::id, stores::name))
                .load(conn)?;
            stores.extend(found.into_iter().map(|(c, id, n)| (c, (id, n))));
        }
        let mut errors = problems.to_vec();
        for r in rows.iter().filter(|r| !stores.contains_key(&r.store_code)) {
            errors.push(LineError {
                line: r.line,
                problem: Problem::UnknownStore(r.store_code.clone()),
            });
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(ImportError::Invalid(errors));
        }
        let days: Vec<NaiveDate> = rows
            .iter()
            .map(|r| r.day)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut held = HashMap::new();
        for chunk in days.chunks(500) {
            let found: Vec<(i64, NaiveDate, i32, i32, i32, i32)> = store_days::table
                .filter(store_days::day.eq_any(chunk))
                .select((
                    store_days::store_id,
                    store_days::day,
                    store_days::supply,
                    store_days::reserved,
                    store_days::picked_up,
                    store_days::walk_in,
                ))
                .load(conn)?;
            held.extend(
                found
                    .into_iter()
                    .map(|(store, day, s, r, p, w)| ((store, day), (s, r + p + w))),
            );
        }
        Ok(StoreDays { stores, days: held })
    }

    /// The store of a code that [`StoreDays::read`] found: its id and name.
    fn store(&self, code: &str) -> (i64, &str) {
        self.stores
            .get(code)
            .map_or((0, ""), |(id, name)| (*id, name.as_str()))
    }

    /// A store-day's supply and what it has taken, if it has been allocated.
    fn now(&self, store_id: i64, day: NaiveDate) -> Option<(i32, i32)> {
        self.days.get(&(store_id, day)).copied()
    }
}

/// Checks a parsed file against the database without writing: every store
/// code exists, and no line would lower a store-day's supply below what it
/// has reserved, picked up and sold ([`rules::check_supply`], the rule the
/// change itself applies). Any problem refuses the whole file.
pub fn plan(
    conn: &mut DbConnection,
    rows: &[SupplyRow],
    problems: &[LineError],
) -> Result<Vec<Planned>, ImportError> {
    let held = StoreDays::read(conn, rows, problems)?;
    let mut planned = Vec::with_capacity(rows.len());
    for r in rows {
        let store_id = held.store(&r.store_code).0;
        let taken = held.now(store_id, r.day).map_or(0, |(_, t)| t);
        if let Err(refusal) = rules::check_supply(taken, r.quantity) {
            return Err(ImportError::Refused {
                line: r.line,
                store_code: r.store_code.clone(),
                day: r.day,
                refusal,
                applied: Imported::default(),
            });
        }
        planned.push(Planned {
            line: r.line,
            store_code: r.store_code.clone(),
            store_id,
            day: r.day,
            quantity: r.quantity,
        });
    }
    Ok(planned)
}

/// One store-day of a preview: its supply now (none when not allocated yet)
/// and in the file, what it holds taken, and the refusal the change would
/// meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewLine {
    pub line: u64,
    pub store_code: String,
    pub store_name: String,
    pub day: NaiveDate,
    pub before: Option<i32>,
    pub after: i32,
    pub taken: i32,
    pub refusal: Option<Refusal>,
}

impl PreviewLine {
    /// What the line does: allocate, change, or nothing.
    pub fn effect(&self) -> Effect {
        match self.before {
            None => Effect::Create,
            Some(b) if b == self.after => Effect::Unchanged,
            Some(_) => Effect::Change,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Create,
    Change,
    Unchanged,
}

/// The file's totals: supply now and after over the store-days it names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreviewTotals {
    pub lines: usize,
    pub stores: usize,
    pub before: i64,
    pub after: i64,
    pub created: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub refused: usize,
}

/// What a checked file would do, without doing it: every line old → new,
/// the totals, the refusals, and a digest of the "old" values shown
/// ([`crate::import_preview::digest_of`]), by which the confirmation sees
/// whether the store-days changed meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// In the file's order.
    pub lines: Vec<PreviewLine>,
    pub totals: PreviewTotals,
    pub seen: String,
}

/// Reads what the file's store-days hold now and previews the file against
/// it. Bad lines and unknown stores refuse the file as [`plan`] does
/// ([`ImportError::Invalid`]); a change the rule refuses
/// ([`rules::check_supply`]) is a line of the preview with its refusal.
pub fn preview(
    conn: &mut DbConnection,
    rows: &[SupplyRow],
    problems: &[LineError],
) -> Result<Preview, ImportError> {
    let held = StoreDays::read(conn, rows, problems)?;
    let mut totals = PreviewTotals {
        lines: rows.len(),
        stores: held.stores.len(),
        ..PreviewTotals::default()
    };
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        let (store_id, store_name) = held.store(&r.store_code);
        let now = held.now(store_id, r.day);
        let taken = now.map_or(0, |(_, t)| t);
        let line = PreviewLine {
            line: r.line,
            store_code: r.store_code.clone(),
            store_name: store_name.to_owned(),
            day: r.day,
            before: now.map(|(s, _)| s),
            after: r.quantity,
            taken,
            refusal: rules::check_supply(taken, r.quantity).err(),
        };
        totals.before += i64::from(line.before.unwrap_or(0));
        totals.after += i64::from(line.after);
        match line.effect() {
            Effect::Create => totals.created += 1,
            Effect::Change => totals.changed += 1,
            Effect::Unchanged => totals.unchanged += 1,
        }
        if line.refusal.is_some() {
            totals.refused += 1;
        }
        lines.push(line);
    }
    let mut shown: Vec<String> = lines
        .iter()
        .map(|l| {
            let before = l.before.map_or("-".to_owned(), |b| b.to_string());
            format!("{}/{}={before}", l.store_code, l.day)
        })
        .collect();
    shown.sort();
    let seen = crate::import_preview::digest_of(shown.iter().map(String::as_str));
    Ok(Preview {
        lines,
        totals,
        seen,
    })
}

/// Imports a parsed file: [`plan`], then [`apply`] in chunks of [`CHUNK`]
/// lines, one bulk write each, so that bookings go on between them. The file
/// is refused whole for anything the check finds; a refusal that appears only
/// after the check (a booking made meanwhile on a store-day the file lowers)
/// stops the import at its line, and the answer says what was applied. Sending
/// the file again after fixing it converges: applied lines come back unchanged.
/// One audit entry records the import and what it came to.
pub async fn import(
    db: &Db,
    policy: Arc<Policy>,
    rows: Vec<SupplyRow>,
    problems: Vec<LineError>,
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<Imported, DbError<ImportError>> {
    // The plan reads every line's store-day: bounded on its own, not by the
    // request's deadline, like the chunks after it.
    let planned = Arc::new(
        crate::db::deadline::per_call(db.run(move |conn| plan(conn, &rows, &problems))).await?,
    );
    let mut done = Imported::default();
    let chunks = planned.len().div_ceil(CHUNK);
    for i in 0..chunks {
        let (policy, all) = (policy.clone(), planned.clone());
        let last = i + 1 == chunks;
        let started = std::time::Instant::now();
        let result = db
            .write_bulk(move |tx| {
                let lines = &all[i * CHUNK..all.len().min((i + 1) * CHUNK)];
                let applied = apply(tx, &policy, lines, actor, now)?;
                if last {
                    record(tx, &all, done_with(done, applied), None, actor)?;
                }
                Ok(applied)
            })
            .await;
        match result {
            Ok(applied) => {
                done.add(applied);
                if !last {
                    tokio::time::sleep(pause_after(db.backend(), started.elapsed())).await;
                }
            }
            Err(DbError::Work(ImportError::Refused {
                line,
                store_code,
                day,
                refusal,
                ..
            })) => {
                if done.lines() > 0 {
                    let all = planned.clone();
                    db.write_bulk(move |tx| {
                        record(tx, &all, done, Some(line), actor).map_err(ImportError::from)
                    })
                    .await?;
                }
                return Err(DbError::Work(ImportError::Refused {
                    line,
                    store_code,
                    day,
                    refusal,
                    applied: done,
                }));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// How long an import rests after a chunk that took `took`: on SQLite as long
/// again, so that the one writer gives the requests at least half its time
/// while a file goes in (the import takes about twice as long); on
/// PostgreSQL not at all, where a chunk holds only the rows it writes.
pub fn pause_after(backend: Backend, took: Duration) -> Duration {
    match backend {
        Backend::Sqlite => took,
        Backend::Postgres => Duration::ZERO,
    }
}

fn done_with(mut done: Imported, more: Imported) -> Imported {
    done.add(more);
    done
}

/// The import's audit entry: the dates it covered, and what it came to; a
/// partial import names the line it stopped at.
fn record(
    tx: &mut Tx<'_>,
    planned: &[Planned],
    done: Imported,
    stopped_at: Option<u64>,
    actor: Option<i64>,
) -> QueryResult<()> {
    let first = planned.iter().map(|p| p.day).min();
    let last = planned.iter().map(|p| p.day).max();
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(());
    };
    let mut after = json!({
        "rows": planned.len(),
        "created": done.created,
        "changed": done.changed,
        "unchanged": done.unchanged,
    });
    if let Some(line) = stopped_at {
        after["stopped_at_line"] = json!(line);
    }
    audit::record(
        tx,
        Entry {
            actor,
            action: "supply.import",
            entity: "supply",
            entity_id: if first == last {
                first.to_string()
            } else {
                format!("{first}..{last}")
            },
            before: None,
            after: Some(after),
        },
    )
}

/// Applies checked lines in the caller's transaction: store-days that are new
/// are allocated together; existing ones go through [`set_supply`] one by one
/// (each with its own audit entry), which refuses a change that is no longer
/// allowed.
pub fn apply(
    tx: &mut Tx<'_>,
    policy: &Policy,
    lines: &[Planned],
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<Imported, ImportError> {
    let days: Vec<NaiveDate> = lines
        .iter()
        .map(|r| r.day)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let stores: Vec<i64> = lines
        .iter()
        .map(|r| r.store_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut existing: HashSet<(i64, NaiveDate)> = HashSet::new();
    for chunk in stores.chunks(500) {
        let found: Vec<(i64, NaiveDate)> = store_days::table
            .filter(store_days::day.eq_any(&days))
            .filter(store_days::store_id.eq_any(chunk))
            .select((store_days::store_id, store_days::day))
            .load(tx.conn())?;
        existing.extend(found);
    }
    let (fresh, known): (Vec<&Planned>, Vec<&Planned>) = lines
        .iter()
        .partition(|r| !existing.contains(&(r.store_id, r.day)));
    let items: Vec<NewDay> = fresh
        .iter()
        .map(|r| NewDay {
            store_id: r.store_id,
            day: r.day,
            supply: r.quantity,
        })
        .collect();
    let allocated = allocate_days(tx, policy, &items, actor, now)?;
    let mut result = Imported::default();
    let mut to_change = known;
    for (row, done) in fresh.iter().zip(&allocated) {
        match done {
            Allocated::Created { .. } => result.created += 1,
            // Made by a concurrent transaction meanwhile: change it instead.
            Allocated::AlreadyAllocated => to_change.push(row),
        }
    }
    for row in to_change {
        let outcome = set_supply(tx, policy, row.store_id, row.day, row.quantity, actor, now);
        match outcome {
            Ok(SupplyOutcome::Created) => result.created += 1,
            Ok(SupplyOutcome::Changed { .. }) => result.changed += 1,
            Ok(SupplyOutcome::Unchanged) => result.unchanged += 1,
            Err(ChangeError::Refused(refusal)) => {
                return Err(ImportError::Refused {
                    line: row.line,
                    store_code: row.store_code.clone(),
                    day: row.day,
                    refusal,
                    applied: Imported::default(),
                });
            }
            Err(ChangeError::Db(e)) => return Err(ImportError::Db(e)),
            Err(ChangeError::NoSuchStore | ChangeError::NoSuchWindow) => {
                return Err(ImportError::Db(DieselError::NotFound));
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_sqlite_an_import_rests_as_long_as_each_chunk_took() {
        let took = Duration::from_millis(20);
        assert_eq!(pause_after(Backend::Sqlite, took), took);
        assert_eq!(pause_after(Backend::Postgres, took), Duration::ZERO);
    }

    fn lines(errors: &[LineError]) -> Vec<(u64, Problem)> {
        errors.iter().map(|e| (e.line, e.problem.clone())).collect()
    }

    /// The dates of 1 December 2026.
    fn dates() -> SupplyDates {
        SupplyDates::around(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
    }

    fn parse_csv(bytes: &[u8]) -> (Vec<SupplyRow>, Vec<LineError>) {
        super::parse_csv(bytes, dates())
    }

    #[test]
    fn dates_further_than_a_year_from_today_are_refused_with_the_range() {
        let csv = "store_code,date,quantity
                   31802095,1900-01-01,1
                   31802095,2025-12-01,1
                   31802095,2027-12-01,1
                   31802095,2027-12-02,1
                   31802095,9999-12-31,1
";
        let (rows, errors) = parse_csv(csv.as_bytes());
        assert_eq!(rows.len(), 2, "both ends of the range are fine");
        let out = |y, m, d| Problem::DateOutOfRange {
            day: NaiveDate::from_ymd_opt(y, m, d).unwrap(),
            dates: dates(),
        };
        assert_eq!(
            lines(&errors),
            vec![
                (2, out(1900, 1, 1)),
                (5, out(2027, 12, 2)),
                (6, out(9999, 12, 31))
            ]
        );
        let t = Tr::new(
            std::sync::Arc::new(crate::i18n::Catalog::load().unwrap()),
            crate::i18n::Lang::En,
        );
        let text = errors[0].message(&t);
        assert!(
            text.contains("1900-01-01")
                && text.contains("2025-12-01")
                && text.contains("2027-12-01"),
            "{text}"
        );
    }

    #[test]
    fn a_good_file_in_any_column_order_with_a_bom_parses() {
        let csv =
            "\u{feff}date,quantity,store_code\n2026-12-01,100,31802095\n2026-12-02, 0 ,31802095\n";
        let (rows, errors) = parse_csv(csv.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        assert_eq!(
            rows,
            vec![
                SupplyRow {
                    line: 2,
                    store_code: "31802095".into(),
                    day: day(1),
                    quantity: 100
                },
                SupplyRow {
                    line: 3,
                    store_code: "31802095".into(),
                    day: day(2),
                    quantity: 0
                },
            ]
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let csv = "store_code,date,quantity\n\
                   3180209,2026-12-01,1\n\
                   31802095,2026-02-30,1\n\
                   31802095,2026-12-01,-5\n\
                   31802095,2026-12-01,many\n\
                   31802095,2026-12-01,1000001\n\
                   31802095,2026-12-01,7\n\
                   31802095,2026-12-01,8\n\
                   31802095,2026-12-01\n";
        let (rows, errors) = parse_csv(csv.as_bytes());
        assert_eq!(rows.len(), 1);
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(
            lines(&errors),
            vec![
                (2, Problem::StoreCode("3180209".into())),
                (3, Problem::Date("2026-02-30".into())),
                (4, Problem::Negative("-5".into())),
                (5, Problem::Quantity("many".into())),
                (6, Problem::TooLarge("1000001".into())),
                (
                    8,
                    Problem::Duplicate {
                        store_code: "31802095".into(),
                        date,
                        first_line: 7
                    }
                ),
                (9, Problem::Unreadable),
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_at_its_first_bad_line() {
        let mut bytes = b"store_code,date,quantity\n31802095,2026-12-01,1\n".to_vec();
        bytes.extend_from_slice(b"\xc7\xd1\xb1\xdb,2026-12-01,1\n");
        let (rows, errors) = parse_csv(&bytes);
        assert!(rows.is_empty());
        assert_eq!(lines(&errors), vec![(3, Problem::NotUtf8)]);
    }

    #[test]
    fn a_missing_column_is_named() {
        let (_, errors) = parse_csv(b"store_code,day,quantity\n31802095,2026-12-01,1\n");
        assert_eq!(lines(&errors), vec![(1, Problem::MissingColumn("date"))]);
    }

    #[test]
    fn dates_must_be_written_in_full() {
        for bad in ["26-12-01", "2026-1-1", "2026/12/01", "2026-12-01T00:00"] {
            let csv = format!("store_code,date,quantity\n31802095,{bad},1\n");
            let (_, errors) = parse_csv(csv.as_bytes());
            assert_eq!(
                lines(&errors),
                vec![(2, Problem::Date(bad.into()))],
                "{bad}"
            );
        }
    }
}
