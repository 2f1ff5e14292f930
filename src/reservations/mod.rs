//! Reservations: a citizen's claim on masks in a pickup window.

pub mod queries;
pub mod routes;
