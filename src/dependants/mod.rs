//! Dependants (SPEC §12): the people a verified citizen books for — children
//! and the elderly, by the policy's proxy rule — each a person (the keyed
//! hash of their national ID, never the number) linked to one guardian
//! account at a time, and never while they have an account of their own.
//!
//! The rules that need no database (`rules.rs`: who may be a dependant, every
//! refusal with its words, the masked "who collects for whom" line), adding
//! and removing one as one transaction each, with the sign-up's side of the
//! rule (`service.rs`), the reads (`queries.rs`) and the page `/dependants`
//! (`routes.rs`). A booking for a dependant is made by the one booking
//! transaction (`reservations::booking`), with the dependant's quota and
//! rotation day; the counter hands it over, or sells for someone, only with
//! the family documents seen (`pharmacy::pickup`, `pharmacy::walk_in`).

pub mod queries;
pub mod routes;
pub mod rules;
pub mod service;
