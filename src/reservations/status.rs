//! The states of a reservation (SPEC §3) and the one place their stored
//! names are written: `reservations.status` holds [`ReservationStatus::as_str`]
//! (the migrations' CHECK lists the same four), the query DSL binds and reads
//! the enum itself, and SQL text that must name a state takes it from here.

use std::fmt;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum ReservationStatus {
    /// Booked; its masks are held in its window until picked up, cancelled
    /// or expired.
    Active,
    /// Handed over at the store's counter.
    PickedUp,
    /// Cancelled by the citizen before the cut-off.
    Cancelled,
    /// Not picked up by the window's end plus the grace: a no-show.
    Expired,
    /// A place freed in a full window, held for the first in its waiting list
    /// until `offer_until` (SPEC §13): counted as taken, like `Active`, until
    /// it is accepted (then `Active`), declined or lapses.
    Offered,
    /// An offer its citizen declined: the place and the quota went back.
    Declined,
    /// An offer not accepted in time: the place and the quota went back.
    Lapsed,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 7] = [
        ReservationStatus::Active,
        ReservationStatus::PickedUp,
        ReservationStatus::Cancelled,
        ReservationStatus::Expired,
        ReservationStatus::Offered,
        ReservationStatus::Declined,
        ReservationStatus::Lapsed,
    ];

    /// The states that hold a window's places and their person's quota: the
    /// window's `reserved` and the quota's `used` count these.
    pub const HOLDING: [ReservationStatus; 2] =
        [ReservationStatus::Active, ReservationStatus::Offered];

    /// [`Self::HOLDING`] as an SQL list, `'active', 'offered'`, for the
    /// statements written as text.
    pub fn holding_sql() -> String {
        Self::HOLDING
            .map(|s| format!("'{}'", s.as_str()))
            .join(", ")
    }

    /// The stored value, also the pages' `data-status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Active => "active",
            ReservationStatus::PickedUp => "picked_up",
            ReservationStatus::Cancelled => "cancelled",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Offered => "offered",
            ReservationStatus::Declined => "declined",
            ReservationStatus::Lapsed => "lapsed",
        }
    }

    /// The status stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<ReservationStatus> {
        ReservationStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// Whether its pickup code is the citizen's to show: not for a place
    /// only offered from a waiting list, or one never accepted.
    pub fn has_code(self) -> bool {
        !matches!(
            self,
            ReservationStatus::Offered | ReservationStatus::Declined | ReservationStatus::Lapsed
        )
    }

    /// The locale key of its words ("예약됨", "Picked up", …).
    pub fn label_key(self) -> &'static str {
        match self {
            ReservationStatus::Active => "reservation.status.active",
            ReservationStatus::PickedUp => "reservation.status.picked_up",
            ReservationStatus::Cancelled => "reservation.status.cancelled",
            ReservationStatus::Expired => "reservation.status.expired",
            ReservationStatus::Offered => "reservation.status.offered",
            ReservationStatus::Declined => "reservation.status.declined",
            ReservationStatus::Lapsed => "reservation.status.lapsed",
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bound as its stored name, on every backend.
impl<DB> ToSql<Text, DB> for ReservationStatus
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <str as ToSql<Text, DB>>::to_sql(self.as_str(), out)
    }
}

/// Read from its stored name; any other text is a deserialization error (the
/// CHECK constraint admits none).
impl<DB> FromSql<Text, DB> for ReservationStatus
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        ReservationStatus::parse(&text)
            .ok_or_else(|| format!("not a reservation status: {text:?}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself() {
        for s in ReservationStatus::ALL {
            assert_eq!(ReservationStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for text in ["", "Active", "picked up", "canceled", "expired ", "unknown"] {
            assert_eq!(ReservationStatus::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_stored_names_are_those_the_migrations_admit() {
        let names: Vec<&str> = ReservationStatus::ALL.map(|s| s.as_str()).to_vec();
        assert_eq!(
            names,
            [
                "active",
                "picked_up",
                "cancelled",
                "expired",
                "offered",
                "declined",
                "lapsed"
            ]
        );
        let listed = ReservationStatus::ALL.map(|s| format!("'{s}'")).join(", ");
        let check = format!("CHECK (status IN ({listed}))");
        for backend in ["sqlite", "postgres"] {
            let path = format!(
                "{}/migrations/{backend}/2026-12-07-100000_waitlist/up.sql",
                env!("CARGO_MANIFEST_DIR")
            );
            let sql = std::fs::read_to_string(&path).unwrap();
            assert!(sql.contains(&check), "{path} has no {check}");
        }
        assert_eq!(ReservationStatus::holding_sql(), "'active', 'offered'");
    }

    #[test]
    fn every_status_has_words() {
        let keys: Vec<&str> = ReservationStatus::ALL.map(|s| s.label_key()).to_vec();
        assert_eq!(
            keys,
            [
                "reservation.status.active",
                "reservation.status.picked_up",
                "reservation.status.cancelled",
                "reservation.status.expired",
                "reservation.status.offered",
                "reservation.status.declined",
                "reservation.status.lapsed",
            ]
        );
    }
}
