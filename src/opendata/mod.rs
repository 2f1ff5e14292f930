//! Open data (SPEC §8): the 2020 public-mask API, the exact stock as CSV and
//! JSON, the API's OpenAPI description, and the public map page — all served
//! from one in-memory snapshot per instance (`snapshot.rs`), refreshed every
//! second, so that no request of them reads the database.

pub mod api;
pub mod map;
pub mod query;
pub mod snapshot;
pub mod stock;
