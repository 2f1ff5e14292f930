//! Daily supply from CSV (`store_code,date,quantity`, in any column order,
//! several dates a file, each within [`SupplyDates`] of today): the whole file
//! is checked first and every bad line reported; then every row is applied in
//! one transaction, or none is.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use serde_json::json;

use crate::admin::audit::{self, Entry};
use crate::db::schema::{store_days, stores};
use crate::db::{AsRetryable, Tx, is_retryable};
use crate::i18n::Tr;
use crate::policy::Policy;
use crate::stores::is_store_code;
use crate::supply::allocation::{Allocated, NewDay, allocate_days};
use crate::supply::changes::{ChangeError, SupplyOutcome, set_supply};
use crate::supply::rules::{Refusal, SupplyDates};

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

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Lines that are wrong; nothing was imported.
    #[error("{} bad lines", .0.len())]
    Invalid(Vec<LineError>),
    /// A line's change is refused (a supply below what is reserved); nothing
    /// was imported.
    #[error("line {line}: refused")]
    Refused {
        line: u64,
        store_code: String,
        day: NaiveDate,
        refusal: Refusal,
    },
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for ImportError {
    fn is_retryable(&self) -> bool {
        matches!(self, ImportError::Db(e) if is_retryable(e))
    }
}

/// Applies a checked file in the caller's transaction: store codes that do not
/// exist are added to `problems`, and any problem means nothing is written.
/// Store-days that are new are allocated together; existing ones go through
/// [`set_supply`] one by one. One audit entry records the import; each
/// changed store-day has its own from [`set_supply`].
pub fn apply(
    tx: &mut Tx<'_>,
    policy: &Policy,
    rows: &[SupplyRow],
    problems: &[LineError],
    actor: Option<i64>,
    now: NaiveDateTime,
) -> Result<Imported, ImportError> {
    let codes: Vec<String> = rows
        .iter()
        .map(|r| r.store_code.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut ids: HashMap<String, i64> = HashMap::new();
    for chunk in codes.chunks(1000) {
        let found: Vec<(String, i64)> = stores::table
            .filter(stores::code.eq_any(chunk))
            .select((stores::code, stores::id))
            .load(tx.conn())?;
        ids.extend(found);
    }
    let mut errors = problems.to_vec();
    for r in rows.iter().filter(|r| !ids.contains_key(&r.store_code)) {
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
    let mut existing: HashSet<(i64, NaiveDate)> = HashSet::new();
    for chunk in days.chunks(500) {
        let found: Vec<(i64, NaiveDate)> = store_days::table
            .filter(store_days::day.eq_any(chunk))
            .select((store_days::store_id, store_days::day))
            .load(tx.conn())?;
        existing.extend(found);
    }
    let id_of = |r: &SupplyRow| ids.get(&r.store_code).copied().unwrap_or_default();
    let (fresh, known): (Vec<&SupplyRow>, Vec<&SupplyRow>) = rows
        .iter()
        .partition(|r| !existing.contains(&(id_of(r), r.day)));
    let items: Vec<NewDay> = fresh
        .iter()
        .map(|r| NewDay {
            store_id: id_of(r),
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
        let outcome = set_supply(tx, policy, id_of(row), row.day, row.quantity, actor, now);
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
                });
            }
            Err(ChangeError::Db(e)) => return Err(ImportError::Db(e)),
            Err(ChangeError::NoSuchStore | ChangeError::NoSuchWindow) => {
                return Err(ImportError::Db(DieselError::NotFound));
            }
        }
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
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
                after: Some(json!({
                    "rows": rows.len(),
                    "created": result.created,
                    "changed": result.changed,
                    "unchanged": result.unchanged,
                })),
            },
        )?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

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
