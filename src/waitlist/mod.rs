//! Waiting lists for full windows (SPEC §13): a citizen with quota left
//! queues for a full window (for themself or a dependant), first come first
//! served, one place in line per person per window (`line.rs`). A place freed
//! before the window starts — a cancellation, a declined or lapsed offer, a
//! capacity raised — is offered to the first in line whose quota allows
//! (`offers.rs`): a reservation in status `offered`, booked by the ordinary
//! booking function and so counted against the window and the quota, held
//! for `waitlist_hold_minutes`; accepted, it is an active reservation with its
//! pickup code; declined or lapsed, the place goes to the next in line. The
//! pages are in `routes.rs`.

pub mod line;
pub mod offers;
pub mod routes;

pub use offers::offer_freed;
