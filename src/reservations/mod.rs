//! Reservations: a citizen's claim on masks in a pickup window.

pub mod expiry;
pub mod queries;
pub mod reminders;
pub mod routes;
