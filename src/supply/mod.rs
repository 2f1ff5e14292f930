//! Daily supply and pickup windows: how a store-day's masks are split into the
//! windows citizens reserve from, and what is left for walk-in sales.

pub mod allocation;
pub mod changes;
pub mod import;
pub mod queries;
pub mod release;
pub mod rules;
