//! The pharmacist's side: today's stock at their store, handing over reserved
//! masks by their pickup code, walk-in sales with the quota check, and the
//! end-of-day summary.

pub mod pickup;
mod pickup_page;
pub mod queries;
pub mod routes;
pub mod summary;
mod summary_page;
pub mod walk_in;
mod walk_in_page;
