//! Draws instead of a rush (SPEC §13). An administrator opens a draw for a
//! set of days, in every store or one region (`admin.rs`): the windows of
//! those days become the draw's, and ordinary booking refuses them until it
//! is done. During registration a verified citizen (or a guardian, for each
//! dependant) registers up to three ranked choices of window and a quantity,
//! editable until it closes (`entries.rs`); registering takes no stock and no
//! quota. At the close one instance runs it (`run.rs`): the registrations are
//! frozen into a published list, the order is a uniformly random permutation
//! of them from a seed committed before registration opened (`seed.rs`,
//! `order.rs`), and in that order each registration gets its highest choice
//! that still has room and that its person's quota allows, booked by the
//! ordinary booking function. The rule itself is `allocate.rs`, which
//! `mask-reservation draw-verify ID` replays against what the run recorded
//! (`check.rs`). The pages are in `routes.rs`.

pub mod admin;
pub mod allocate;
pub mod check;
pub mod entries;
pub mod order;
pub mod routes;
pub mod run;
pub mod seed;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::draws;

/// Where a draw stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Registration has not opened.
    Upcoming,
    /// Registration is open.
    Registering,
    /// Registration has closed; the draw has not finished.
    Drawing,
    /// Drawn: the results are published and its windows are ordinary again.
    Done,
}

/// A draw as its pages and its run read it.
#[derive(Debug, Clone, Queryable)]
pub struct Draw {
    pub id: i64,
    pub name: String,
    pub region: Option<String>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub opens_at: NaiveDateTime,
    pub closes_at: NaiveDateTime,
    pub results_at: NaiveDateTime,
    pub commitment: String,
    pub digest: Option<String>,
    pub seed: Option<String>,
    pub state: String,
    pub drawn: i32,
}

impl Draw {
    /// Where it stands at `now`.
    pub fn phase(&self, now: DateTime<Utc>) -> Phase {
        let now = now.naive_utc();
        match self.state.as_str() {
            "done" => Phase::Done,
            _ if now < self.opens_at => Phase::Upcoming,
            _ if now < self.closes_at => Phase::Registering,
            _ => Phase::Drawing,
        }
    }
}

/// The columns of a [`Draw`], in its fields' order.
#[diesel::dsl::auto_type]
fn columns() -> _ {
    (
        draws::id,
        draws::name,
        draws::region,
        draws::first_day,
        draws::last_day,
        draws::opens_at,
        draws::closes_at,
        draws::results_at,
        draws::commitment,
        draws::digest,
        draws::seed,
        draws::state,
        draws::drawn,
    )
}

/// Draw `id`, if there is one.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Draw>> {
    draws::table
        .find(id)
        .select(columns())
        .first(conn)
        .optional()
}

/// Every draw, newest first.
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<Draw>> {
    draws::table
        .order(draws::id.desc())
        .select(columns())
        .load(conn)
}
