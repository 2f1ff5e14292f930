//! Open data (SPEC §8): the 2020 public-mask API with exact figures, the stock
//! as CSV, the API's OpenAPI description, and the public map page — all served
//! from one in-memory snapshot per instance (`snapshot.rs`), refreshed every
//! second, so that no request of them reads the database.

pub mod api;
pub mod map;
pub mod query;
pub mod snapshot;

use crate::admin::dashboard::inert;
use crate::opendata::snapshot::Snapshot;

/// `stock.csv`: one line per store, by code, with the header
/// `code,name,addr,type,lat,lng,remain,remain_stat,stock_at`. Empty cells
/// where a store has no supply today. Names and addresses come from imported
/// files, so one that a spreadsheet would run as a formula is made inert.
pub fn stock_csv(s: &Snapshot) -> String {
    let mut out = csv::Writer::from_writer(Vec::with_capacity(s.store_count() * 120));
    let mut write = || -> Result<(), csv::Error> {
        out.write_record([
            "code",
            "name",
            "addr",
            "type",
            "lat",
            "lng",
            "remain",
            "remain_stat",
            "stock_at",
        ])?;
        for e in s.entries() {
            out.write_record([
                e.code.as_str(),
                &inert(&e.name),
                &inert(&e.addr),
                &e.store_type,
                &e.lat.to_string(),
                &e.lng.to_string(),
                &e.remain.map(|r| r.to_string()).unwrap_or_default(),
                e.stat.map_or("", |st| st.as_str()),
                e.stock_at.as_deref().unwrap_or(""),
            ])?;
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
