//! Reservations: a citizen's claim on masks in a pickup window — the pure
//! rules (`rules.rs`), the one booking transaction (`booking.rs`, with its
//! PostgreSQL form in `booking/pg.rs`), cancelling
//! (`cancel.rs`), no-show expiry (`expiry.rs`), reminders (`reminders.rs`),
//! pickup codes (`code.rs`) and their QR image (`qr.rs`), the states a
//! reservation goes through (`status.rs`), the reads (`queries.rs`) and the
//! pages (`routes.rs`).

pub mod booking;
pub mod cancel;
pub mod code;
pub mod expiry;
pub mod qr;
pub mod queries;
pub mod quota_view;
pub mod reminders;
pub mod routes;
pub mod rules;
pub mod status;
