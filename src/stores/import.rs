//! Stores as an administrator gives them: the rules every store's fields obey
//! (shared by the CSV import and the form), reading a CSV file of stores
//! (`code,name,addr,type,lat,lng`, optionally `phone` and `region`, in any
//! column order), and writing a whole file's stores in one transaction.
//!
//! A file is checked whole before anything is written: either every line is
//! valid, or every bad line is reported by number and nothing is imported.

use std::collections::HashMap;

use chrono::Utc;
use diesel::prelude::*;
use diesel::upsert::excluded;
use serde_json::json;

use crate::accounts::email::is_unsafe_in_text;
use crate::audit::{self, Entry};
use crate::db::Tx;
use crate::db::schema::stores;
use crate::i18n::Tr;
use crate::stores::search::queries::search_text;

/// The columns a file must have, as its header names them.
pub const REQUIRED_COLUMNS: [&str; 6] = ["code", "name", "addr", "type", "lat", "lng"];
/// The columns a file may have besides.
pub const OPTIONAL_COLUMNS: [&str; 2] = ["phone", "region"];

pub const NAME_MAX: usize = 200;
pub const ADDR_MAX: usize = 500;
pub const PHONE_MAX: usize = 30;
pub const REGION_MAX: usize = 50;

/// One store, valid: what a CSV line or the form becomes once checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRow {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub lat: f64,
    pub lng: f64,
    pub phone: Option<String>,
    /// As given, or else [derived from the address](region_of).
    pub region: String,
}

/// A store's fields as text, as a CSV line or a form gives them.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreFields<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub addr: &'a str,
    pub store_type: &'a str,
    pub lat: &'a str,
    pub lng: &'a str,
    pub phone: &'a str,
    pub region: &'a str,
}

/// What is wrong: with one value (the form shows it next to that field), with
/// one line of a file, or with the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Code(String),
    Name,
    Addr,
    Type(String),
    Lat(String),
    Lng(String),
    Phone(String),
    Region,
    /// A text field holds a character that shows as nothing: a zero-width
    /// space or joiner, or a direction mark ([`is_invisible_mark`]).
    Invisible {
        field: &'static str,
        mark: char,
    },
    /// The line's bytes are not UTF-8 (a file saved as EUC-KR, say).
    NotUtf8,
    FieldCount {
        found: usize,
        expected: usize,
    },
    /// The code is on an earlier line too.
    DuplicateCode {
        code: String,
        first_line: u64,
    },
    /// The CSV reader could not read the line.
    Unreadable(String),
    /// The header line does not name the columns a file must have.
    Header {
        missing: Vec<String>,
        unknown: Vec<String>,
        repeated: Vec<String>,
    },
    /// Nothing but (at most) a header.
    NoStores,
}

impl Problem {
    /// The form field the problem is about (`file` for a file's problems).
    pub fn field(&self) -> &'static str {
        match self {
            Problem::Code(_) => "code",
            Problem::Name => "name",
            Problem::Addr => "addr",
            Problem::Type(_) => "type",
            Problem::Lat(_) => "lat",
            Problem::Lng(_) => "lng",
            Problem::Phone(_) => "phone",
            Problem::Region => "region",
            Problem::Invisible { field, .. } => field,
            _ => "file",
        }
    }

    /// The problem in `t`'s language.
    pub fn message(&self, t: &Tr) -> String {
        let value = |key: &str, v: &str| t.fmt(key, &[("value", &v)]);
        match self {
            Problem::Code(v) => value("admin.store.problem.code", v),
            Problem::Name => t.fmt("admin.store.problem.name", &[("max", &NAME_MAX)]),
            Problem::Addr => t.fmt("admin.store.problem.addr", &[("max", &ADDR_MAX)]),
            Problem::Type(v) => value("admin.store.problem.type", v),
            Problem::Lat(v) => value("admin.store.problem.lat", v),
            Problem::Lng(v) => value("admin.store.problem.lng", v),
            Problem::Phone(v) => t.fmt(
                "admin.store.problem.phone",
                &[("value", v), ("max", &PHONE_MAX)],
            ),
            Problem::Region => t.fmt("admin.store.problem.region", &[("max", &REGION_MAX)]),
            Problem::Invisible { field, mark } => t.fmt(
                match *field {
                    "name" => "admin.store.problem.name_invisible",
                    "addr" => "admin.store.problem.addr_invisible",
                    _ => "admin.store.problem.region_invisible",
                },
                &[("mark", &format!("U+{:04X}", u32::from(*mark)))],
            ),
            Problem::NotUtf8 => t.get("admin.store.problem.not_utf8").to_owned(),
            Problem::FieldCount { found, expected } => t.fmt(
                "admin.store.problem.field_count",
                &[("found", found), ("expected", expected)],
            ),
            Problem::DuplicateCode { code, first_line } => t.fmt(
                "admin.store.problem.duplicate",
                &[("code", code), ("line", first_line)],
            ),
            Problem::Unreadable(why) => value("admin.store.problem.unreadable", why),
            Problem::Header {
                missing,
                unknown,
                repeated,
            } => {
                let mut parts = Vec::new();
                for (key, names) in [
                    ("admin.store.problem.header_missing", missing),
                    ("admin.store.problem.header_unknown", unknown),
                    ("admin.store.problem.header_repeated", repeated),
                ] {
                    if !names.is_empty() {
                        parts.push(t.count(key, names.len(), &[("columns", &names.join(", "))]));
                    }
                }
                parts.push(t.fmt(
                    "admin.store.problem.header_expected",
                    &[
                        ("required", &REQUIRED_COLUMNS.join(",")),
                        ("optional", &OPTIONAL_COLUMNS.join(",")),
                    ],
                ));
                parts.join("; ")
            }
            Problem::NoStores => t.get("admin.store.problem.no_stores").to_owned(),
        }
    }
}

/// Everything wrong with one line of a file (line 1 is the header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub problems: Vec<Problem>,
}

impl LineError {
    /// "line 3: …" in `t`'s language.
    pub fn message(&self, t: &Tr) -> String {
        let reasons: Vec<String> = self.problems.iter().map(|p| p.message(t)).collect();
        t.fmt(
            "admin.store.import.line",
            &[("line", &self.line), ("reason", &reasons.join("; "))],
        )
    }
}

/// Checks a store's fields; every problem is reported, each naming its field.
pub fn check(f: &StoreFields<'_>) -> Result<StoreRow, Vec<Problem>> {
    let mut problems = Vec::new();
    let (code, name, addr) = (f.code.trim(), f.name.trim(), f.addr.trim());
    let (store_type, phone, region) = (f.store_type.trim(), f.phone.trim(), f.region.trim());
    if !super::is_store_code(code) {
        problems.push(Problem::Code(code.to_owned()));
    }
    problems.extend(text_problem(name, NAME_MAX, "name", Problem::Name));
    problems.extend(text_problem(addr, ADDR_MAX, "addr", Problem::Addr));
    if !matches!(store_type, "01" | "02" | "03") {
        problems.push(Problem::Type(store_type.to_owned()));
    }
    let lat = coordinate(f.lat, 90.0).ok_or_else(|| Problem::Lat(f.lat.trim().to_owned()));
    let lng = coordinate(f.lng, 180.0).ok_or_else(|| Problem::Lng(f.lng.trim().to_owned()));
    let (lat, lng) = match (lat, lng) {
        (Ok(lat), Ok(lng)) => (lat, lng),
        (lat, lng) => {
            problems.extend(lat.err());
            problems.extend(lng.err());
            (0.0, 0.0)
        }
    };
    if !phone.is_empty() && !is_phone(phone) {
        problems.push(Problem::Phone(phone.to_owned()));
    }
    if !region.is_empty() {
        problems.extend(text_problem(region, REGION_MAX, "region", Problem::Region));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(StoreRow {
        code: code.to_owned(),
        name: name.to_owned(),
        addr: addr.to_owned(),
        store_type: store_type.to_owned(),
        lat,
        lng,
        phone: (!phone.is_empty()).then(|| phone.to_owned()),
        region: if region.is_empty() {
            region_of(addr)
        } else {
            region.to_owned()
        },
    })
}

/// The one rule of a store's text fields (name, address, region; the form
/// and the CSV import both check through [`check`]): 1 to `max` characters,
/// none of them [unsafe in text](is_unsafe_in_text) (`otherwise`), and none
/// an [invisible mark](is_invisible_mark), which is named.
fn text_problem(s: &str, max: usize, field: &'static str, otherwise: Problem) -> Option<Problem> {
    let n = s.chars().count();
    if !(1..=max).contains(&n) || s.chars().any(is_unsafe_in_text) {
        return Some(otherwise);
    }
    s.chars()
        .find(|&c| is_invisible_mark(c))
        .map(|mark| Problem::Invisible { field, mark })
}

/// Characters that show as nothing, so that a store's name or address can
/// look like another's while it is not the same text (and is not found by
/// what people type): the zero-width space, non-joiner and joiner, the
/// left-to-right and right-to-left marks (U+200B–U+200F), the Arabic letter
/// mark (U+061C), the word joiner (U+2060) and the zero-width no-break space
/// (U+FEFF; a file's byte order mark is taken off before its lines are read).
/// Store names are Korean and Latin text, which needs none of them.
pub fn is_invisible_mark(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{061c}' | '\u{2060}' | '\u{feff}'
    )
}

/// A finite number within ±`limit`.
fn coordinate(text: &str, limit: f64) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= limit)
}

/// Digits with the usual separators (`02-123-4567`, `+82 (2) 123 4567`).
fn is_phone(s: &str) -> bool {
    s.chars().count() <= PHONE_MAX
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '+' | '(' | ')' | '.'))
}

/// The region a store reports under: the first part of its address (the
/// province or metropolitan city, e.g. `서울특별시`), at most [`REGION_MAX`]
/// characters.
pub fn region_of(addr: &str) -> String {
    addr.split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(REGION_MAX)
        .collect()
}

/// Parses and checks a whole file; either every store is valid, or every bad
/// line is reported (in order), so that an import never half-happens.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<StoreRow>, Vec<LineError>> {
    parse_csv_reporting(bytes, &mut |_| {})
}

/// As [`parse_csv`], telling `progress` how many bytes have been read so far.
pub fn parse_csv_reporting(
    bytes: &[u8],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<StoreRow>, Vec<LineError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let file_error = |problem| {
        Err(vec![LineError {
            line: 1,
            problems: vec![problem],
        }])
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return file_error(Problem::NoStores);
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes);
    let columns = match reader.byte_headers() {
        Ok(header) => match Columns::from_header(header) {
            Ok(columns) => columns,
            Err(problem) => return file_error(problem),
        },
        Err(e) => return file_error(Problem::Unreadable(e.to_string())),
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut first_line_of: HashMap<String, u64> = HashMap::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, csv::Position::line);
                progress(record.position().map_or(0, csv::Position::byte));
                match columns.row(&record) {
                    Ok(row) => match first_line_of.get(&row.code) {
                        Some(&first_line) => errors.push(LineError {
                            line,
                            problems: vec![Problem::DuplicateCode {
                                code: row.code,
                                first_line,
                            }],
                        }),
                        None => {
                            first_line_of.insert(row.code.clone(), line);
                            rows.push(row);
                        }
                    },
                    Err(problems) => errors.push(LineError { line, problems }),
                }
            }
            Err(e) => {
                let at = e.position().map_or(line, csv::Position::line);
                errors.push(LineError {
                    line: at,
                    problems: vec![Problem::Unreadable(e.to_string())],
                });
                if e.is_io_error() {
                    break;
                }
            }
        }
    }
    progress(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    if !errors.is_empty() {
        Err(errors)
    } else if rows.is_empty() {
        file_error(Problem::NoStores)
    } else {
        Ok(rows)
    }
}

/// Where each column is in the file's lines.
struct Columns {
    width: usize,
    required: [usize; 6],
    phone: Option<usize>,
    region: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord) -> Result<Columns, Problem> {
        let mut names = Vec::with_capacity(header.len());
        for field in header {
            let Ok(name) = std::str::from_utf8(field) else {
                return Err(Problem::NotUtf8);
            };
            names.push(name.trim().to_ascii_lowercase());
        }
        let position = |name: &str| names.iter().position(|n| n == name);
        let missing: Vec<String> = REQUIRED_COLUMNS
            .iter()
            .filter(|c| position(c).is_none())
            .map(|c| (*c).to_owned())
            .collect();
        let known = |n: &str| REQUIRED_COLUMNS.contains(&n) || OPTIONAL_COLUMNS.contains(&n);
        let unknown: Vec<String> = names.iter().filter(|n| !known(n)).cloned().collect();
        let mut repeated: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, n)| known(n) && names[..*i].contains(n))
            .map(|(_, n)| n.clone())
            .collect();
        repeated.dedup();
        let [code, name, addr, store_type, lat, lng] = REQUIRED_COLUMNS.map(position);
        match (code, name, addr, store_type, lat, lng) {
            (Some(code), Some(name), Some(addr), Some(ty), Some(lat), Some(lng))
                if unknown.is_empty() && repeated.is_empty() =>
            {
                Ok(Columns {
                    width: names.len(),
                    required: [code, name, addr, ty, lat, lng],
                    phone: position("phone"),
                    region: position("region"),
                })
            }
            _ => Err(Problem::Header {
                missing,
                unknown,
                repeated,
            }),
        }
    }

    fn row(&self, record: &csv::ByteRecord) -> Result<StoreRow, Vec<Problem>> {
        if record.len() != self.width {
            return Err(vec![Problem::FieldCount {
                found: record.len(),
                expected: self.width,
            }]);
        }
        let text = |i: usize| std::str::from_utf8(record.get(i).unwrap_or_default());
        let optional = |i: Option<usize>| i.map_or(Ok(""), text);
        let [code, name, addr, store_type, lat, lng] = self.required.map(text);
        match (
            code,
            name,
            addr,
            store_type,
            lat,
            lng,
            optional(self.phone),
            optional(self.region),
        ) {
            (
                Ok(code),
                Ok(name),
                Ok(addr),
                Ok(store_type),
                Ok(lat),
                Ok(lng),
                Ok(phone),
                Ok(region),
            ) => check(&StoreFields {
                code,
                name,
                addr,
                store_type,
                lat,
                lng,
                phone,
                region,
            }),
            _ => Err(vec![Problem::NotUtf8]),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Rows per multi-row `INSERT`: 11 bound values a row keeps a batch far under
/// SQLite's limit of 32,766 variables (and PostgreSQL's 65,535).
const INSERT_BATCH: usize = 1000;

/// A store as the import compares it with a row of the file.
#[derive(Queryable)]
struct Existing {
    code: String,
    name: String,
    addr: String,
    store_type: String,
    region: String,
    lat: f64,
    lng: f64,
    phone: Option<String>,
}

impl Existing {
    fn same_as(&self, r: &StoreRow) -> bool {
        self.code == r.code
            && self.name == r.name
            && self.addr == r.addr
            && self.store_type == r.store_type
            && self.region == r.region
            && self.lat == r.lat
            && self.lng == r.lng
            && self.phone == r.phone
    }
}

/// Creates the stores whose code is new, updates those that differ, leaves the
/// rest alone, and records one audit entry for the whole import (`source` is
/// the file's name). Call it in one transaction: all of it happens, or none.
/// A store's suspension is not part of a file and stays as it is.
pub fn upsert_all(
    tx: &mut Tx<'_>,
    rows: &[StoreRow],
    actor: Option<i64>,
    source: &str,
) -> QueryResult<Counts> {
    upsert_all_reporting(tx, rows, actor, source, &mut |_| {})
}

/// As [`upsert_all`], telling `progress` how many rows have been written or
/// found unchanged so far.
pub fn upsert_all_reporting(
    tx: &mut Tx<'_>,
    rows: &[StoreRow],
    actor: Option<i64>,
    source: &str,
    progress: &mut dyn FnMut(usize),
) -> QueryResult<Counts> {
    let existing: HashMap<String, Existing> = stores::table
        .select((
            stores::code,
            stores::name,
            stores::addr,
            stores::store_type,
            stores::region,
            stores::lat,
            stores::lng,
            stores::phone,
        ))
        .load::<Existing>(tx.conn())?
        .into_iter()
        .map(|e| (e.code.clone(), e))
        .collect();
    let mut counts = Counts::default();
    let mut to_write = Vec::new();
    for row in rows {
        match existing.get(&row.code) {
            None => {
                counts.created += 1;
                to_write.push(row);
            }
            Some(e) if e.same_as(row) => counts.unchanged += 1,
            Some(_) => {
                counts.updated += 1;
                to_write.push(row);
            }
        }
    }
    let mut done = counts.unchanged;
    progress(done);
    let now = Utc::now().naive_utc();
    for batch in to_write.chunks(INSERT_BATCH) {
        let values: Vec<_> = batch.iter().map(|r| insertable(r, now)).collect();
        // New codes are inserted, known ones updated, in one statement a batch;
        // a store created meanwhile under the same code is updated, not refused.
        crate::on_each_backend!(tx.conn(), |c| {
            diesel::insert_into(stores::table)
                .values(&values)
                .on_conflict(stores::code)
                .do_update()
                .set((
                    stores::name.eq(excluded(stores::name)),
                    stores::addr.eq(excluded(stores::addr)),
                    stores::store_type.eq(excluded(stores::store_type)),
                    stores::region.eq(excluded(stores::region)),
                    stores::lat.eq(excluded(stores::lat)),
                    stores::lng.eq(excluded(stores::lng)),
                    stores::phone.eq(excluded(stores::phone)),
                    stores::search_text.eq(excluded(stores::search_text)),
                    stores::updated_at.eq(excluded(stores::updated_at)),
                ))
                .execute(c)
        })?;
        done += batch.len();
        progress(done);
    }
    audit::record(
        tx,
        Entry {
            actor,
            action: "store.import",
            entity: "store",
            entity_id: if source.is_empty() {
                "csv".to_owned()
            } else {
                source
                    .chars()
                    .filter(|&c| !is_unsafe_in_text(c))
                    .take(200)
                    .collect()
            },
            before: None,
            after: Some(json!(counts)),
        },
    )?;
    Ok(counts)
}

type Insertable<'a> = (
    diesel::dsl::Eq<stores::code, &'a str>,
    diesel::dsl::Eq<stores::name, &'a str>,
    diesel::dsl::Eq<stores::addr, &'a str>,
    diesel::dsl::Eq<stores::store_type, &'a str>,
    diesel::dsl::Eq<stores::region, &'a str>,
    diesel::dsl::Eq<stores::lat, f64>,
    diesel::dsl::Eq<stores::lng, f64>,
    diesel::dsl::Eq<stores::phone, Option<&'a str>>,
    diesel::dsl::Eq<stores::search_text, String>,
    diesel::dsl::Eq<stores::created_at, chrono::NaiveDateTime>,
    diesel::dsl::Eq<stores::updated_at, chrono::NaiveDateTime>,
);

fn insertable(r: &StoreRow, now: chrono::NaiveDateTime) -> Insertable<'_> {
    (
        stores::code.eq(r.code.as_str()),
        stores::name.eq(r.name.as_str()),
        stores::addr.eq(r.addr.as_str()),
        stores::store_type.eq(r.store_type.as_str()),
        stores::region.eq(r.region.as_str()),
        stores::lat.eq(r.lat),
        stores::lng.eq(r.lng),
        stores::phone.eq(r.phone.as_deref()),
        stores::search_text.eq(search_text(&r.name, &r.addr, &r.region)),
        stores::created_at.eq(now),
        stores::updated_at.eq(now),
    )
}

/// Writes `r`'s fields over the store `id` (its code included).
pub(crate) fn update(tx: &mut Tx<'_>, id: i64, r: &StoreRow) -> QueryResult<usize> {
    diesel::update(stores::table.find(id))
        .set((
            stores::code.eq(&r.code),
            stores::name.eq(&r.name),
            stores::addr.eq(&r.addr),
            stores::store_type.eq(&r.store_type),
            stores::region.eq(&r.region),
            stores::lat.eq(r.lat),
            stores::lng.eq(r.lng),
            stores::phone.eq(r.phone.as_deref()),
            stores::search_text.eq(search_text(&r.name, &r.addr, &r.region)),
            stores::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(tx.conn())
}

/// Inserts new stores one by one; returns their ids in order. For set-up
/// (demo data, tests) where the ids are needed; imports use [`upsert_all`].
pub fn insert_all(tx: &mut Tx<'_>, rows: &[StoreRow]) -> QueryResult<Vec<i64>> {
    let now = Utc::now().naive_utc();
    rows.iter()
        .map(|r| {
            diesel::insert_into(stores::table)
                .values(insertable(r, now))
                .returning(stores::id)
                .get_result(tx.conn())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "code,name,addr,type,lat,lng\n";

    fn lines_of(errors: &[LineError]) -> Vec<u64> {
        errors.iter().map(|e| e.line).collect()
    }

    fn only_problem(csv: &str) -> Problem {
        let errors = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].problems.len(), 1, "{errors:?}");
        errors[0].problems[0].clone()
    }

    #[test]
    fn the_demo_file_parses() {
        let rows = parse_csv(crate::demo::STORES_CSV.as_bytes()).unwrap();
        assert_eq!(rows.len(), 20);
        assert!(rows.iter().all(|r| r.region == "서울특별시"));
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let csv = "code,name,addr,type,lat,lng\n\
                   1234567,A,addr,01,37.5,127.0\n\
                   12345678,B,addr,04,37.5,127.0\n\
                   12345679,C,addr,01,north,127.0\n\
                   12345680,,addr,01,37.5,127.0\n\
                   12345681,E,addr,01,37.5,127.0\n\
                   12345681,F,addr,01,37.5,127.0\n";
        let errors = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(lines_of(&errors), vec![2, 3, 4, 5, 7], "{errors:?}");
        assert_eq!(
            errors[4].problems,
            vec![Problem::DuplicateCode {
                code: "12345681".into(),
                first_line: 6
            }]
        );
    }

    #[test]
    fn every_problem_of_a_line_is_reported() {
        let errors = parse_csv(format!("{HEADER}1,,,09,91,181\n").as_bytes()).unwrap_err();
        let fields: Vec<&str> = errors[0].problems.iter().map(Problem::field).collect();
        assert_eq!(fields, ["code", "name", "addr", "type", "lat", "lng"]);
    }

    #[test]
    fn columns_may_come_in_any_order_with_phone_and_region() {
        let csv = "LNG, lat ,region,phone,type,addr,name,code\n\
                   127.0,37.5,,02-123-4567,03,서울특별시 중구 1,하나로마트,12345678\n\
                   127.0,37.5,수도권,,01,서울특별시 중구 2,약국,12345679\n";
        let rows = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows[0].code, "12345678");
        assert_eq!(rows[0].store_type, "03");
        assert_eq!(rows[0].phone.as_deref(), Some("02-123-4567"));
        assert_eq!(rows[0].region, "서울특별시");
        assert_eq!(rows[1].phone, None);
        assert_eq!(rows[1].region, "수도권");
    }

    #[test]
    fn a_header_missing_a_column_or_naming_an_unknown_one_is_one_error_on_line_1() {
        let errors = parse_csv(b"code,name,address,type,lat,lng,lng\n1,2,3,4,5,6,7\n").unwrap_err();
        assert_eq!(
            errors,
            vec![LineError {
                line: 1,
                problems: vec![Problem::Header {
                    missing: vec!["addr".into()],
                    unknown: vec!["address".into()],
                    repeated: vec!["lng".into()],
                }]
            }]
        );
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let csv = format!("\u{feff}{HEADER}12345678,약국,서울특별시 중구,01,37.5,127\n");
        assert_eq!(parse_csv(csv.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn lines_that_are_not_utf8_are_named() {
        let mut csv = HEADER.as_bytes().to_vec();
        csv.extend_from_slice(b"12345678,ok,addr,01,37.5,127\n");
        csv.extend_from_slice(b"12345679,\xbe\xe0\xb1\xb9,addr,01,37.5,127\n");
        csv.extend_from_slice(b"12345680,ok,addr,01,37.5,127\n");
        csv.extend_from_slice(b"12345681,ok,\xff,01,37.5,127\n");
        let errors = parse_csv(&csv).unwrap_err();
        assert_eq!(lines_of(&errors), vec![3, 5]);
        assert!(errors.iter().all(|e| e.problems == [Problem::NotUtf8]));
        let header = parse_csv(b"code,\xffname\n").unwrap_err();
        assert_eq!(header[0].problems, [Problem::NotUtf8]);
    }

    #[test]
    fn an_empty_file_or_a_header_alone_has_no_stores() {
        for csv in [
            "",
            "  \n",
            "\u{feff}",
            HEADER,
            "code,name,addr,type,lat,lng",
        ] {
            assert_eq!(only_problem(csv), Problem::NoStores, "{csv:?}");
        }
    }

    #[test]
    fn a_line_with_too_few_or_too_many_fields_is_refused() {
        assert_eq!(
            only_problem(&format!("{HEADER}12345678,a,b,01,37.5\n")),
            Problem::FieldCount {
                found: 5,
                expected: 6
            }
        );
    }

    #[test]
    fn coordinates_must_be_finite_and_in_range() {
        for (lat, lng, bad) in [
            ("90.1", "0", "lat"),
            ("-90.5", "0", "lat"),
            ("NaN", "0", "lat"),
            ("0", "inf", "lng"),
            ("0", "-180.01", "lng"),
            ("0", "", "lng"),
        ] {
            let p = only_problem(&format!("{HEADER}12345678,a,b,01,{lat},{lng}\n"));
            assert_eq!(p.field(), bad, "{lat},{lng}");
        }
        let ok = format!("{HEADER}12345678,a,b,01,-90,180\n");
        assert!(parse_csv(ok.as_bytes()).is_ok());
    }

    #[test]
    fn text_fields_have_bounds_and_no_control_characters() {
        let fields = |name: &str, addr: &str, phone: &str, region: &str| {
            check(&StoreFields {
                code: "12345678",
                name,
                addr,
                store_type: "02",
                lat: "37",
                lng: "127",
                phone,
                region,
            })
        };
        let long = |n: usize| "가".repeat(n);
        assert!(fields(&long(200), &long(500), "", &long(50)).is_ok());
        let errs = |r: Result<StoreRow, Vec<Problem>>| {
            r.unwrap_err()
                .iter()
                .map(Problem::field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            errs(fields(&long(201), &long(501), "", &long(51))),
            ["name", "addr", "region"]
        );
        assert_eq!(
            errs(fields("a\u{202e}b", "x\u{0}", "", "")),
            ["name", "addr"]
        );
        for phone in ["02-123-4567", "+82 (2) 123.4567", "1588"] {
            assert!(fields("a", "b", phone, "").is_ok(), "{phone}");
        }
        for phone in ["call me", "---", &"1".repeat(31)] {
            assert_eq!(errs(fields("a", "b", phone, "")), ["phone"], "{phone}");
        }
    }

    #[test]
    fn zero_width_and_direction_marks_are_refused_in_every_text_field_and_named() {
        let fields = |name: &str, addr: &str, region: &str| {
            check(&StoreFields {
                code: "12345678",
                name,
                addr,
                store_type: "01",
                lat: "37",
                lng: "127",
                phone: "",
                region,
            })
        };
        for mark in [
            '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{061c}', '\u{2060}',
            '\u{feff}',
        ] {
            let marked = format!("성모{mark}약국");
            assert_eq!(
                fields(&marked, &marked, &marked).unwrap_err(),
                [
                    Problem::Invisible {
                        field: "name",
                        mark
                    },
                    Problem::Invisible {
                        field: "addr",
                        mark
                    },
                    Problem::Invisible {
                        field: "region",
                        mark
                    },
                ],
                "{mark:?}"
            );
        }
        // The neighbours of the refused ranges, and other spaces, are text.
        for fine in [
            "a\u{200a}b",
            "a\u{2010}b",
            "a\u{061b}b",
            "a\u{2061}b",
            "a\u{a0}b",
        ] {
            assert!(fields(fine, fine, "").is_ok(), "{fine:?}");
        }
        // In a file the same rule holds, and the message names the mark.
        let csv = format!("{HEADER}12345678,성모\u{200b}약국,서울특별시 중구,01,37.5,127\n");
        let errors = parse_csv(csv.as_bytes()).unwrap_err();
        assert_eq!(lines_of(&errors), [2]);
        let t = Tr::new(
            std::sync::Arc::new(crate::i18n::Catalog::load().unwrap()),
            crate::i18n::Lang::En,
        );
        let text = errors[0].message(&t);
        assert!(text.contains("U+200B"), "{text}");
    }

    #[test]
    fn the_region_comes_from_the_address_when_not_given() {
        assert_eq!(region_of("  부산광역시 해운대구 1"), "부산광역시");
        assert_eq!(region_of(""), "");
        assert_eq!(region_of(&"가".repeat(80)).chars().count(), REGION_MAX);
    }

    #[test]
    fn problems_read_in_both_languages() {
        let catalog = std::sync::Arc::new(crate::i18n::Catalog::load().unwrap());
        let en = Tr::new(catalog, crate::i18n::Lang::En);
        let e = LineError {
            line: 7,
            problems: vec![Problem::Type("04".into()), Problem::NotUtf8],
        };
        let text = e.message(&en);
        assert!(text.contains('7') && text.contains("04"), "{text}");
        assert!(!text.contains('{'), "{text}");
    }
}
