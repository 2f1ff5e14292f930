//! Reservations: a citizen's claim on masks in a pickup window — the pure
//! rules (`rules.rs`), the one booking transaction (`booking.rs`), cancelling
//! (`cancel.rs`), pickup codes (`code.rs`) and their QR image (`qr.rs`), the
//! reads (`queries.rs`) and the pages (`routes.rs`).

pub mod booking;
pub mod cancel;
pub mod code;
pub mod qr;
pub mod queries;
pub mod routes;
pub mod rules;
