//! Reading stores from CSV (`code,name,addr,type,lat,lng`) and inserting them.

use chrono::Utc;
use diesel::prelude::*;

use crate::db::Tx;
use crate::db::schema::stores;

/// One valid row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRow {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub lat: f64,
    pub lng: f64,
}

/// What is wrong with one line of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

#[derive(serde::Deserialize)]
struct RawRow {
    code: String,
    name: String,
    addr: String,
    #[serde(rename = "type")]
    store_type: String,
    lat: String,
    lng: String,
}

/// Parses and checks every row; either all rows are valid or every problem is
/// reported, so an import never half-happens.
pub fn parse_csv(input: impl std::io::Read) -> Result<Vec<StoreRow>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.deserialize::<RawRow>().enumerate() {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(2);
        let err = |reason: String| RowError { line, reason };
        match record {
            Err(e) => errors.push(err(e.to_string())),
            Ok(raw) => match check(raw) {
                Ok(row) if !seen.insert(row.code.clone()) => {
                    errors.push(err(format!("code {} appears twice", row.code)));
                }
                Ok(row) => rows.push(row),
                Err(reason) => errors.push(err(reason)),
            },
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn check(raw: RawRow) -> Result<StoreRow, String> {
    if !super::is_store_code(&raw.code) {
        return Err(format!("code `{}` is not 8 digits", raw.code));
    }
    let name_len = raw.name.chars().count();
    if name_len == 0 || name_len > 200 {
        return Err("name must be 1–200 characters".into());
    }
    let addr_len = raw.addr.chars().count();
    if addr_len == 0 || addr_len > 500 {
        return Err("addr must be 1–500 characters".into());
    }
    if !matches!(raw.store_type.as_str(), "01" | "02" | "03") {
        return Err(format!("type `{}` must be 01, 02 or 03", raw.store_type));
    }
    let coord = |text: &str, limit: f64, what: &str| {
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && v.abs() <= limit)
            .ok_or_else(|| format!("{what} `{text}` is not a valid coordinate"))
    };
    Ok(StoreRow {
        lat: coord(&raw.lat, 90.0, "lat")?,
        lng: coord(&raw.lng, 180.0, "lng")?,
        code: raw.code,
        name: raw.name,
        addr: raw.addr,
        store_type: raw.store_type,
    })
}

/// The region a store reports under: the first part of its address (the
/// province or metropolitan city, e.g. `서울특별시`).
pub fn region_of(addr: &str) -> String {
    addr.split_whitespace().next().unwrap_or("").to_owned()
}

/// Inserts new stores; returns their ids in order.
pub fn insert_all(tx: &mut Tx<'_>, rows: &[StoreRow]) -> QueryResult<Vec<i64>> {
    let now = Utc::now().naive_utc();
    rows.iter()
        .map(|r| {
            diesel::insert_into(stores::table)
                .values((
                    stores::code.eq(&r.code),
                    stores::name.eq(&r.name),
                    stores::addr.eq(&r.addr),
                    stores::store_type.eq(&r.store_type),
                    stores::region.eq(region_of(&r.addr)),
                    stores::lat.eq(r.lat),
                    stores::lng.eq(r.lng),
                    stores::created_at.eq(now),
                    stores::updated_at.eq(now),
                ))
                .returning(stores::id)
                .get_result(tx.conn())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_file_parses() {
        let rows = parse_csv(crate::demo::STORES_CSV.as_bytes()).unwrap();
        assert_eq!(rows.len(), 20);
        assert!(rows.iter().all(|r| region_of(&r.addr) == "서울특별시"));
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
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 7], "{errors:?}");
    }
}
