//! Our own figures beside the 2020 API: `/opendata/stock.csv` and
//! `/opendata/stock.json`, one row per store by code, the same columns in
//! both, from the same snapshot. They carry what the 2020 objects do not:
//! `remain`, the exact number of masks someone can still get today, and its
//! two parts: `reservable` (free places of the windows still taking bookings)
//! and `walk_in` (what the counter can sell now); and, while a draw holds some
//! of today's windows (SPEC §13), `in_draw`: their free places, given out by
//! the draw and so in neither part.

use std::borrow::Cow;

use serde::Serialize;

use crate::csv_util::inert;
use crate::opendata::snapshot::{Entry, Snapshot};

/// The columns of `stock.csv`, which are also the keys of each store of
/// `stock.json`, in this order: [`Row`]'s fields.
pub const COLUMNS: [&str; 12] = [
    "code",
    "name",
    "addr",
    "type",
    "lat",
    "lng",
    "remain",
    "reservable",
    "walk_in",
    "in_draw",
    "remain_stat",
    "stock_at",
];

/// One store's stock: a line of the CSV, an object of the JSON.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    code: &'a str,
    name: Cow<'a, str>,
    addr: Cow<'a, str>,
    #[serde(rename = "type")]
    store_type: &'a str,
    lat: f64,
    lng: f64,
    /// Masks left today; none (an empty cell, `null`) without supply today.
    remain: Option<i64>,
    /// Of `remain`, what can be booked now, and what sold at the counter now.
    reservable: Option<i32>,
    walk_in: Option<i32>,
    /// Free places of windows a draw holds: not in `remain` until drawn.
    in_draw: Option<i32>,
    remain_stat: Option<&'static str>,
    stock_at: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn of(e: &'a Entry) -> Row<'a> {
        Row {
            code: &e.code,
            name: Cow::Borrowed(&e.name),
            addr: Cow::Borrowed(&e.addr),
            store_type: &e.store_type,
            lat: e.lat,
            lng: e.lng,
            remain: e.remain,
            reservable: e.figures.map(|f| f.reservable),
            walk_in: e.figures.map(|f| f.walk_in),
            in_draw: e.figures.map(|f| f.in_draw),
            remain_stat: e.stat.map(|s| s.as_str()),
            stock_at: e.stock_at.as_deref(),
        }
    }

    /// As a spreadsheet may open it: names and addresses come from imported
    /// files, so one that a spreadsheet would run as a formula is made inert.
    fn for_spreadsheet(e: &'a Entry) -> Row<'a> {
        Row {
            name: Cow::Owned(inert(&e.name)),
            addr: Cow::Owned(inert(&e.addr)),
            ..Row::of(e)
        }
    }
}

/// `stock.csv`: the header [`COLUMNS`], then one line per store, by code.
/// Empty cells where a store has no supply today.
pub fn csv(s: &Snapshot) -> String {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(s.store_count() * 120));
    let mut write = || -> Result<(), csv::Error> {
        out.write_record(COLUMNS)?;
        for e in s.entries() {
            out.serialize(Row::for_spreadsheet(e))?;
        }
        Ok(())
    };
    // Writing into a `Vec` cannot fail; an error would leave a shorter file.
    if let Err(e) = write() {
        tracing::error!(error = %e, "stock.csv could not be written");
    }
    match out.into_inner() {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// `stock.json`: when the data was read, how many stores, and the stores.
#[derive(Serialize)]
struct List<'a> {
    /// As the 2020 API's `created_at`: `YYYY/MM/DD HH:MM:SS` in the service
    /// zone.
    created_at: &'a str,
    /// Always the length of `stores`.
    count: usize,
    stores: Vec<Row<'a>>,
}

/// `stock.json`: `{"created_at": …, "count": n, "stores": [{…}, …]}`, each
/// store with the keys [`COLUMNS`], by code.
pub fn json(s: &Snapshot) -> String {
    let list = List {
        created_at: s.created_at(),
        count: s.store_count(),
        stores: s.entries().iter().map(|e| Row::of(e)).collect(),
    };
    serde_json::to_string(&list).unwrap_or_else(|e| {
        // Plain data into a `String` cannot fail to serialise.
        tracing::error!(error = %e, "stock.json could not be written");
        String::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(remain: Option<i64>) -> Row<'static> {
        Row {
            code: "31802095",
            name: Cow::Borrowed("메디팜우정약국"),
            addr: Cow::Borrowed("경기도 성남시 분당구 서현로210번길 2, 105호 (서현동)"),
            store_type: "01",
            lat: 37.3868395,
            lng: 127.1254838,
            remain,
            reservable: remain.map(|_| 7),
            walk_in: remain.map(|_| 5),
            in_draw: remain.map(|_| 0),
            remain_stat: remain.map(|_| "few"),
            stock_at: remain.map(|_| "2020/03/11 10:09:00"),
        }
    }

    #[test]
    fn the_json_keys_and_the_csv_header_are_the_columns_in_order() {
        let json = serde_json::to_string(&row(Some(12))).unwrap();
        let mut at = 0;
        for column in COLUMNS {
            let found = json[at..]
                .find(&format!("\"{column}\":"))
                .unwrap_or_else(|| panic!("{column} after byte {at} of {json}"));
            at += found + column.len();
        }
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value.as_object().unwrap().len(), COLUMNS.len());

        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.serialize(row(None)).unwrap();
        let text = String::from_utf8(csv.into_inner().unwrap()).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "31802095,메디팜우정약국,\"경기도 성남시 분당구 서현로210번길 2, 105호 (서현동)\",01,37.3868395,127.1254838,,,,,,"
            )
        );
    }

    #[test]
    fn a_store_without_supply_has_nulls_in_json() {
        let value = serde_json::to_value(row(None)).unwrap();
        for k in ["remain", "remain_stat", "stock_at"] {
            assert!(value[k].is_null(), "{k}");
        }
        assert_eq!(serde_json::to_value(row(Some(12))).unwrap()["remain"], 12);
    }
}
