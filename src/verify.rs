//! `mask-reservation verify`: checks the invariants of SPEC §4 over whatever data
//! exists, and reports every violation. A walk-in sale that was undone
//! (`undone_at` set) counts nowhere: not in the store-day, not in the quota.
//! With them, the rules of dependants (SPEC §12): a reservation is for its
//! account's own person or for a dependant of that account under a link
//! that exists (ended links are kept for this), and nobody is both an account
//! holder and someone's current dependant.

use std::sync::LazyLock;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Text, Timestamp};

use crate::db::DbConnection;
use crate::policy::{LoadError, Policy};
use crate::reservations::status::ReservationStatus;

#[derive(Debug, QueryableByName)]
struct Violation {
    #[diesel(sql_type = Text)]
    what: String,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// One named check: a query returning one row per violation.
struct Check {
    name: &'static str,
    sql: String,
}

const PICKED_UP: &str = ReservationStatus::PickedUp.as_str();

static CHECKS: LazyLock<[Check; 17]> = LazyLock::new(|| {
    // The states that hold places and quota: active, and offered from a
    // waiting list (SPEC §13).
    let holding = ReservationStatus::holding_sql();
    let offered = ReservationStatus::Offered.as_str();
    [
        // 1. No oversell.
        Check {
            name: "window over capacity",
            sql: "SELECT 'window' AS what, id FROM pickup_windows
                  WHERE reserved + picked_up > capacity OR reserved < 0 OR picked_up < 0".into(),
        },
        Check {
            name: "store-day over supply",
            sql: "SELECT 'store_day' AS what, id FROM store_days
                  WHERE reserved + picked_up + walk_in > supply OR window_capacity + walk_in > supply".into(),
        },
        Check {
            name: "window counters differ from reservations",
            sql: format!("SELECT 'window' AS what, w.id FROM pickup_windows w
                  LEFT JOIN (SELECT window_id,
                                    SUM(CASE WHEN status IN ({holding}) THEN quantity ELSE 0 END) AS active,
                                    SUM(CASE WHEN status = '{PICKED_UP}' THEN quantity ELSE 0 END) AS picked
                             FROM reservations GROUP BY window_id) r ON r.window_id = w.id
                  WHERE w.reserved <> COALESCE(r.active, 0) OR w.picked_up <> COALESCE(r.picked, 0)"),
        },
        Check {
            name: "store-day counters differ from its windows and walk-in sales",
            sql: "SELECT 'store_day' AS what, d.id FROM store_days d
                  LEFT JOIN (SELECT store_day_id, SUM(capacity) AS capacity, SUM(reserved) AS reserved,
                                    SUM(picked_up) AS picked
                             FROM pickup_windows GROUP BY store_day_id) w ON w.store_day_id = d.id
                  LEFT JOIN (SELECT store_day_id, SUM(quantity) AS sold
                             FROM walk_in_sales WHERE undone_at IS NULL
                             GROUP BY store_day_id) s ON s.store_day_id = d.id
                  WHERE d.window_capacity <> COALESCE(w.capacity, 0)
                     OR d.reserved <> COALESCE(w.reserved, 0)
                     OR d.picked_up <> COALESCE(w.picked, 0)
                     OR d.walk_in <> COALESCE(s.sold, 0)".into(),
        },
        // 2. No quota breach (the quota itself is checked against the policy below).
        Check {
            name: "quota usage differs from reservations and walk-in sales",
            sql: format!("SELECT 'person' AS what, q.person_id AS id FROM quota_usage q
                  LEFT JOIN (SELECT person_id, period_start, SUM(quantity) AS qty FROM reservations
                             WHERE status IN ({holding}, '{PICKED_UP}')
                             GROUP BY person_id, period_start) r
                    ON r.person_id = q.person_id AND r.period_start = q.period_start
                  LEFT JOIN (SELECT person_id, period_start, SUM(quantity) AS qty FROM walk_in_sales
                             WHERE undone_at IS NULL GROUP BY person_id, period_start) s
                    ON s.person_id = q.person_id AND s.period_start = q.period_start
                  WHERE q.used <> COALESCE(r.qty, 0) + COALESCE(s.qty, 0)"),
        },
        Check {
            name: "quota usage missing for a reservation or sale",
            sql: format!("SELECT 'person' AS what, x.person_id AS id FROM (
                      SELECT person_id, period_start FROM reservations WHERE status IN ({holding}, '{PICKED_UP}')
                      UNION SELECT person_id, period_start FROM walk_in_sales WHERE undone_at IS NULL) x
                  LEFT JOIN quota_usage q ON q.person_id = x.person_id AND q.period_start = x.period_start
                  WHERE q.person_id IS NULL"),
        },
        // 3. One handover, by the right store, on the window's date.
        Check {
            name: "pickup not by a pharmacist of the reservation's store",
            sql: format!("SELECT 'reservation' AS what, r.id FROM reservations r
                  LEFT JOIN users u ON u.id = r.picked_up_by
                  WHERE r.status = '{PICKED_UP}'
                    AND (u.id IS NULL OR u.role <> 'pharmacist' OR u.store_id IS NULL OR u.store_id <> r.store_id)"),
        },
        Check {
            name: "reservation's store differs from its window's",
            sql: "SELECT 'reservation' AS what, r.id FROM reservations r
                  JOIN pickup_windows w ON w.id = r.window_id
                  WHERE w.store_id <> r.store_id".into(),
        },
        Check {
            name: "pickup recorded more than once",
            sql: "SELECT 'reservation' AS what, reservation_id AS id FROM stock_ledger
                  WHERE kind = 'pickup' AND reservation_id IS NOT NULL
                  GROUP BY reservation_id HAVING COUNT(*) > 1".into(),
        },
        // Dependants (SPEC §12): whose reservation it is.
        Check {
            name: "reservation for someone neither its account's person nor its dependant",
            sql: "SELECT 'reservation' AS what, r.id FROM reservations r
                  JOIN users u ON u.id = r.user_id
                  LEFT JOIN dependants d ON d.id = r.dependant_id
                  WHERE (r.dependant_id IS NULL
                         AND (u.person_id IS NULL OR u.person_id <> r.person_id))
                     OR (r.dependant_id IS NOT NULL
                         AND (d.guardian_user_id <> r.user_id OR d.person_id <> r.person_id))".into(),
        },
        Check {
            name: "dependant who has an account of their own",
            sql: "SELECT 'dependant' AS what, d.id FROM dependants d
                  JOIN users u ON u.person_id = d.person_id
                  WHERE d.ended_at IS NULL".into(),
        },
        Check {
            name: "proxy handover without the family documents seen",
            sql: format!("SELECT 'reservation' AS what, id FROM reservations
                  WHERE (status = '{PICKED_UP}' AND dependant_id IS NOT NULL)
                        <> (proxy_checked_at IS NOT NULL)"),
        },
        // 4. Every movement is recorded: counters equal their ledger sums.
        Check {
            name: "store-day counters differ from the ledger",
            sql: "SELECT 'store_day' AS what, d.id FROM store_days d
                  LEFT JOIN (SELECT store_day_id, SUM(supply_delta) AS supply, SUM(capacity_delta) AS capacity,
                                    SUM(reserved_delta) AS reserved, SUM(picked_up_delta) AS picked,
                                    SUM(walk_in_delta) AS walk_in
                             FROM stock_ledger GROUP BY store_day_id) l ON l.store_day_id = d.id
                  WHERE d.supply <> COALESCE(l.supply, 0)
                     OR d.window_capacity <> COALESCE(l.capacity, 0)
                     OR d.reserved <> COALESCE(l.reserved, 0)
                     OR d.picked_up <> COALESCE(l.picked, 0)
                     OR d.walk_in <> COALESCE(l.walk_in, 0)".into(),
        },
        Check {
            name: "release that moves anything but a window's unbooked capacity",
            sql: "SELECT 'ledger' AS what, id FROM stock_ledger
                  WHERE kind = 'release'
                    AND (window_id IS NULL OR capacity_delta >= 0 OR supply_delta <> 0
                         OR reserved_delta <> 0 OR picked_up_delta <> 0 OR walk_in_delta <> 0)".into(),
        },
        Check {
            name: "window counters differ from the ledger",
            sql: "SELECT 'window' AS what, w.id FROM pickup_windows w
                  LEFT JOIN (SELECT window_id, SUM(capacity_delta) AS capacity,
                                    SUM(reserved_delta) AS reserved, SUM(picked_up_delta) AS picked
                             FROM stock_ledger WHERE window_id IS NOT NULL GROUP BY window_id) l
                    ON l.window_id = w.id
                  WHERE w.capacity <> COALESCE(l.capacity, 0)
                     OR w.reserved <> COALESCE(l.reserved, 0)
                     OR w.picked_up <> COALESCE(l.picked, 0)".into(),
        },
        // Waiting lists (SPEC §13): an offer and its place in line stand and
        // go together.
        Check {
            name: "offer without its place in a waiting list",
            sql: format!("SELECT 'reservation' AS what, r.id FROM reservations r
                  LEFT JOIN waitlist e ON e.offer_id = r.id
                  WHERE r.status = '{offered}' AND (e.id IS NULL OR e.window_id <> r.window_id
                                                    OR e.person_id <> r.person_id)"),
        },
        Check {
            name: "place in a waiting list holding a reservation that is no offer",
            sql: format!("SELECT 'waitlist' AS what, e.id FROM waitlist e
                  JOIN reservations r ON r.id = e.offer_id
                  WHERE r.status <> '{offered}'"),
        },
    ]
});

/// One broken invariant, with the row it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub what: String,
    pub id: i64,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.check, self.what, self.id)
    }
}

/// Why the checks could not be run (not a violation: the checks did not finish).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("database error")]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Policy(#[from] LoadError),
}

#[derive(Debug, QueryableByName)]
struct PeriodPair {
    #[diesel(sql_type = Date)]
    period_start: NaiveDate,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

/// Reservations counted against another period than the one containing their
/// window's date (SPEC §3). The period's arithmetic is the policy's, in Rust:
/// the distinct (period, date) pairs are few, and only the wrong ones are
/// looked up by reservation.
fn wrong_periods(conn: &mut DbConnection, policy: &Policy) -> QueryResult<Vec<Finding>> {
    let pairs: Vec<PeriodPair> = diesel::sql_query(
        "SELECT DISTINCT r.period_start, w.day FROM reservations r
         JOIN pickup_windows w ON w.id = r.window_id",
    )
    .load(conn)?;
    let mut findings = Vec::new();
    for pair in pairs {
        if policy.period.start_of(pair.day) == pair.period_start {
            continue;
        }
        let rows: Vec<Violation> = diesel::sql_query(
            "SELECT 'reservation' AS what, r.id FROM reservations r
             JOIN pickup_windows w ON w.id = r.window_id
             WHERE r.period_start = $1 AND w.day = $2",
        )
        .bind::<Date, _>(pair.period_start)
        .bind::<Date, _>(pair.day)
        .load(conn)?;
        findings.extend(rows.into_iter().map(|v| Finding {
            check: "reservation counted in another period than its window's date",
            what: v.what,
            id: v.id,
        }));
    }
    Ok(findings)
}

#[derive(Debug, QueryableByName)]
struct PickupDay {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

/// Reservations handed over on another date than their window's (invariant 3),
/// dates in the service zone. Each window date present is turned into its UTC
/// span in Rust, so the comparison needs no time-zone support from the database.
fn pickups_on_other_days(conn: &mut DbConnection, policy: &Policy) -> QueryResult<Vec<Finding>> {
    let days: Vec<PickupDay> = diesel::sql_query(format!(
        "SELECT DISTINCT w.day FROM reservations r
         JOIN pickup_windows w ON w.id = r.window_id
         WHERE r.status = '{PICKED_UP}'"
    ))
    .load(conn)?;
    let mut findings = Vec::new();
    for PickupDay { day } in days {
        let utc = |d: NaiveDate| {
            crate::supply::rules::local_to_utc(d.and_time(chrono::NaiveTime::MIN), policy.timezone)
        };
        let (Some(start), Some(end)) = (utc(day), day.succ_opt().and_then(utc)) else {
            continue;
        };
        let rows: Vec<Violation> = diesel::sql_query(format!(
            "SELECT 'reservation' AS what, r.id FROM reservations r
             JOIN pickup_windows w ON w.id = r.window_id
             WHERE r.status = '{PICKED_UP}' AND w.day = $1
               AND (r.picked_up_at < $2 OR r.picked_up_at >= $3)"
        ))
        .bind::<Date, _>(day)
        .bind::<Timestamp, _>(start)
        .bind::<Timestamp, _>(end)
        .load(conn)?;
        findings.extend(rows.into_iter().map(|v| Finding {
            check: "pickup on another date than its window's",
            what: v.what,
            id: v.id,
        }));
    }
    Ok(findings)
}

/// Runs every check in one read transaction, so they all see the same instant.
pub fn run(conn: &mut DbConnection) -> Result<Vec<Finding>, VerifyError> {
    conn.transaction(|conn| {
        let mut findings = Vec::new();
        for check in CHECKS.iter() {
            let rows: Vec<Violation> = diesel::sql_query(check.sql.as_str()).load(conn)?;
            findings.extend(rows.into_iter().map(|v| Finding {
                check: check.name,
                what: v.what,
                id: v.id,
            }));
        }
        let policy = Policy::load(conn)?;
        let quota = i64::from(policy.quota_per_period);
        let over: Vec<Violation> = diesel::sql_query(
            "SELECT 'person' AS what, person_id AS id FROM quota_usage WHERE used > $1",
        )
        .bind::<BigInt, _>(quota)
        .load(conn)?;
        findings.extend(over.into_iter().map(|v| Finding {
            check: "quota exceeded",
            what: v.what,
            id: v.id,
        }));
        findings.extend(wrong_periods(conn, &policy)?);
        findings.extend(pickups_on_other_days(conn, &policy)?);
        Ok(findings)
    })
}
