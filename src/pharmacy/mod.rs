//! The pharmacist's side: today's stock at their store.

pub mod queries;
pub mod routes;
