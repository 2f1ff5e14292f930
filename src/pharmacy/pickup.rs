//! Handing over a reserved mask (SPEC §3, §4 invariant 3): looking a
//! reservation up by its pickup code, the rules of whether this pharmacist may
//! hand it over now ([`judge`], pure), and the one write that does it
//! ([`confirm_in`]) — decided by a conditional update of the reservation, so that
//! two scans of one code hand over once, on any number of app instances.
//!
//! A reservation made for a dependant (SPEC §12) is collected by their
//! guardian: the counter shows who collects for whom, and hands it over only
//! with `proxy_checked` — the pharmacist saw the family documents — which is
//! recorded with the handover (`proxy_checked_at`).

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::BigInt;
use serde_json::json;

use crate::audit::{self, Entry};
use crate::db::schema::{dependants, people, pickup_windows, reservations, stores, users};
use crate::db::statement::{Arg, Statement};
use crate::db::{self, AsRetryable, Db, DbConnection, DbError, Form, Tx, is_retryable};
use crate::policy::Policy;
use crate::reservations::rules;
use crate::reservations::status::ReservationStatus;

/// A reservation as the pickup counter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub id: i64,
    pub code: String,
    pub store_id: i64,
    pub store_name: String,
    pub status: ReservationStatus,
    pub quantity: i32,
    pub window_id: i64,
    pub store_day_id: i64,
    /// The window's date in the service zone, its start and end (UTC).
    pub day: NaiveDate,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    /// The citizen's account name (shown masked) and masked national ID.
    pub citizen_name: String,
    pub national_id_masked: String,
    pub picked_up_at: Option<NaiveDateTime>,
    /// The name of the account that handed it over, if it was.
    pub picked_up_by: Option<String>,
    /// A reservation for a dependant: collected by the citizen
    /// (`citizen_name`) for them.
    pub proxy: Option<Proxy>,
}

/// Whom a proxy reservation is for: the name its guardian gave and the year
/// of birth (the masked national ID is the dependant's too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub dependant_name: String,
    pub birth_year: i32,
}

/// What the pharmacist asks of a code: to see the reservation, or to hand it
/// over — a proxy reservation only with the family documents seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    LookUp,
    HandOver { proxy_checked: bool },
}

impl Facts {
    /// Whether the citizen came before the window's start (served all the
    /// same: the stock is already theirs).
    pub fn came_early(&self, now: DateTime<Utc>) -> bool {
        now.naive_utc() < self.starts_at
    }
}

/// Why a code is not handed over, with what the pharmacist needs to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownCode,
    /// Booked at another pharmacy: which one, never whose.
    OtherStore {
        store: String,
    },
    Cancelled,
    Expired,
    /// A place offered from a waiting list that its citizen has not accepted
    /// (yet, or ever): not theirs to collect.
    NotAccepted,
    AlreadyPickedUp {
        at: NaiveDateTime,
        by: String,
    },
    /// The window is on another date than today.
    OtherDay {
        day: NaiveDate,
    },
    /// Today's window, but its end plus the grace period has passed.
    TooLate {
        closed_at: NaiveDateTime,
    },
    /// A proxy reservation asked to be handed over without `proxy_checked`.
    ProxyNotChecked,
}

impl Refusal {
    /// Its name in the page's `data-refusal` attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::UnknownCode => "unknown",
            Refusal::OtherStore { .. } => "other_store",
            // A refusal for the reservation's state is named by the state.
            Refusal::Cancelled => ReservationStatus::Cancelled.as_str(),
            Refusal::Expired => ReservationStatus::Expired.as_str(),
            Refusal::NotAccepted => "not_accepted",
            Refusal::AlreadyPickedUp { .. } => ReservationStatus::PickedUp.as_str(),
            Refusal::OtherDay { .. } => "other_day",
            Refusal::TooLate { .. } => "too_late",
            Refusal::ProxyNotChecked => "proxy_unchecked",
        }
    }
}

/// Whether the pharmacist of `store_id` may see (`Intent::LookUp`) or hand
/// over `r` at `now`: another store's reservation is refused before anything
/// about it is said; then its state; then its date and time (SPEC §3: any
/// time on the window's date up to its end plus `pickup_grace_minutes`); and
/// a handover of a proxy reservation needs the family documents seen.
pub fn judge(
    r: &Facts,
    store_id: i64,
    now: DateTime<Utc>,
    policy: &Policy,
    intent: Intent,
) -> Result<(), Refusal> {
    if r.store_id != store_id {
        return Err(Refusal::OtherStore {
            store: r.store_name.clone(),
        });
    }
    match r.status {
        ReservationStatus::Active => {}
        ReservationStatus::Cancelled => return Err(Refusal::Cancelled),
        ReservationStatus::Expired => return Err(Refusal::Expired),
        ReservationStatus::Offered | ReservationStatus::Declined | ReservationStatus::Lapsed => {
            return Err(Refusal::NotAccepted);
        }
        ReservationStatus::PickedUp => {
            return Err(Refusal::AlreadyPickedUp {
                at: r.picked_up_at.unwrap_or_default(),
                by: r.picked_up_by.clone().unwrap_or_default(),
            });
        }
    }
    if r.day != rules::today(policy, now) {
        return Err(Refusal::OtherDay { day: r.day });
    }
    let grace = policy.pickup_grace_minutes;
    if rules::pickup_closed(grace, r.ends_at, now) {
        return Err(Refusal::TooLate {
            closed_at: rules::pickup_deadline(grace, r.ends_at),
        });
    }
    if r.proxy.is_some()
        && matches!(
            intent,
            Intent::HandOver {
                proxy_checked: false
            }
        )
    {
        return Err(Refusal::ProxyNotChecked);
    }
    Ok(())
}

type Row = (
    (i64, String, i64, ReservationStatus, i32, i64),
    (i64, NaiveDate, NaiveDateTime, NaiveDateTime),
    String,
    String,
    (String, NaiveDate),
    (Option<NaiveDateTime>, Option<i64>),
    Option<String>,
);

/// The reservation with this (normalised) pickup code, if any.
pub fn find(conn: &mut DbConnection, code: &str) -> QueryResult<Option<Facts>> {
    let row: Option<Row> = reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(stores::table)
        .inner_join(people::table)
        .inner_join(users::table.on(users::id.eq(reservations::user_id)))
        .left_join(dependants::table)
        .filter(reservations::pickup_code.eq(code))
        .select((
            (
                reservations::id,
                reservations::pickup_code,
                reservations::store_id,
                reservations::status,
                reservations::quantity,
                reservations::window_id,
            ),
            (
                pickup_windows::store_day_id,
                pickup_windows::day,
                pickup_windows::starts_at,
                pickup_windows::ends_at,
            ),
            stores::name,
            users::name,
            (people::national_id_masked, people::birth_date),
            (reservations::picked_up_at, reservations::picked_up_by),
            dependants::name.nullable(),
        ))
        .first(conn)
        .optional()?;
    let Some((
        (id, code, store_id, status, quantity, window_id),
        (store_day_id, day, starts_at, ends_at),
        store_name,
        citizen_name,
        (national_id_masked, birth_date),
        (picked_up_at, picked_up_by),
        dependant_name,
    )) = row
    else {
        return Ok(None);
    };
    let picked_up_by = match picked_up_by {
        Some(user) => Some(
            users::table
                .find(user)
                .select(users::name)
                .first::<String>(conn)?,
        ),
        None => None,
    };
    Ok(Some(Facts {
        id,
        code,
        store_id,
        store_name,
        status,
        quantity,
        window_id,
        store_day_id,
        day,
        starts_at,
        ends_at,
        citizen_name,
        national_id_masked,
        picked_up_at,
        picked_up_by,
        proxy: dependant_name.map(|dependant_name| Proxy {
            dependant_name,
            birth_year: birth_date.year(),
        }),
    }))
}

/// The look-up of a scanned code: the reservation if it may be handed over now.
pub fn look_up(
    conn: &mut DbConnection,
    store_id: i64,
    code: &str,
    now: DateTime<Utc>,
    policy: &Policy,
) -> QueryResult<Result<Facts, Refusal>> {
    let Some(found) = find(conn, code)? else {
        return Ok(Err(Refusal::UnknownCode));
    };
    Ok(judge(&found, store_id, now, policy, Intent::LookUp).map(|()| found))
}

#[derive(Debug, thiserror::Error)]
pub enum PickupError {
    #[error("pickup refused: {0:?}")]
    Refused(Refusal),
    /// A counter did not hold what the reservation took: the data were
    /// already wrong, and nothing is changed.
    #[error("counters do not match reservation {0}")]
    Inconsistent(i64),
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for PickupError {
    fn is_retryable(&self) -> bool {
        matches!(self, PickupError::Db(e) if is_retryable(e))
    }
}

/// What the counter asks of [`confirm_in`].
#[derive(Debug, Clone)]
pub struct Handover {
    pub by: i64,
    pub store_id: i64,
    /// The pickup code, normalised.
    pub code: String,
    pub now: DateTime<Utc>,
    pub proxy_checked: bool,
}

/// [`confirm_in`] through the door `form` needs, as the counter's page does:
/// the one-statement form without an explicit transaction, so that the
/// window's and store-day's rows are locked for that one statement.
pub async fn confirm_through(
    db: &Db,
    form: Form,
    handover: Handover,
    policy: Arc<Policy>,
) -> Result<Facts, DbError<PickupError>> {
    db.write_in(form, move |tx| confirm_in(form, tx, &handover, &policy))
        .await
}

/// Hands over the reservation with pickup code `code` at the store
/// `store_id`, by the pharmacist `by`, at `now`, with the family documents of
/// a proxy reservation seen or not (`proxy_checked`); answers it as it was.
/// The reservation's conditional update decides — active, this store's, its
/// window today and not yet closed, not a proxy one unless checked — so of two
/// confirmations of one code one hands over and the other is told when and by
/// whom it was.
///
/// The same steps in either form, with the same answers: a table of
/// scenarios holds every form to them (`tests/api/pickup_conformance.rs`).
pub fn confirm_in(
    form: Form,
    tx: &mut Tx<'_>,
    h: &Handover,
    policy: &Policy,
) -> Result<Facts, PickupError> {
    let intent = Intent::HandOver {
        proxy_checked: h.proxy_checked,
    };
    let found = find(tx.conn(), &h.code)?.ok_or(PickupError::Refused(Refusal::UnknownCode))?;
    judge(&found, h.store_id, h.now, policy, intent).map_err(PickupError::Refused)?;

    let at = h.now.naive_utc();
    let args = vec![
        Arg::Timestamp(at),
        Arg::BigInt(h.by),
        // The tick, kept only where it means something (a CHECK holds it so).
        Arg::NullableTimestamp(found.proxy.as_ref().map(|_| at)),
        Arg::BigInt(found.id),
        Arg::BigInt(h.store_id),
        Arg::BigInt(found.window_id),
        Arg::Date(rules::today(policy, h.now)),
        Arg::Timestamp(rules::earliest_open_end(policy.pickup_grace_minutes, h.now)),
        Arg::Integer(i32::from(h.proxy_checked)),
        Arg::Integer(found.quantity),
        Arg::BigInt(found.store_day_id),
    ];
    let steps = match form {
        Form::StepByStep => HandedSteps::each(tx, &args)?,
        Form::OneStatement => HandedSteps::in_one(tx, args)?,
    };
    if steps.handed != 1 {
        // Someone else changed it since the read: say what it is now.
        let now_is = find(tx.conn(), &h.code)?.ok_or(PickupError::Refused(Refusal::UnknownCode))?;
        return Err(match judge(&now_is, h.store_id, h.now, policy, intent) {
            Err(refusal) => PickupError::Refused(refusal),
            Ok(()) => PickupError::Inconsistent(found.id),
        });
    }
    if steps.win != 1 || steps.day != 1 || steps.ledger != 1 {
        return Err(PickupError::Inconsistent(found.id));
    }
    Ok(found)
}

/// The reservation's conditional handover, the first step of both forms:
/// `$1` now, `$2` the pharmacist, `$3` the tick's time (null for one's own
/// reservation), `$4` the reservation, `$5` the store, `$6` its window, `$7`
/// today, `$8` the earliest end of a window still open for pickup, `$9` 1 if
/// the family documents were seen. Its own window, if still open for pickup,
/// is looked up by its key, not by scanning every window of the day in the
/// country.
static HAND_OVER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE reservations SET status = '{picked_up}', picked_up_at = $1, picked_up_by = $2, \
             updated_at = $1, proxy_checked_at = $3 \
         WHERE id = $4 AND status = '{active}' AND store_id = $5 \
           AND window_id IN (SELECT id FROM pickup_windows \
                             WHERE id = $6 AND day = $7 AND ends_at >= $8) \
           AND (dependant_id IS NULL OR $9 = 1)",
        picked_up = ReservationStatus::PickedUp.as_str(),
        active = ReservationStatus::Active.as_str(),
    )
});

/// The window gives up `$10` reserved places to picked up ones: `$6` the
/// window. The reservation took them, so they must be there.
const WINDOW_GIVE_SQL: &str = "UPDATE pickup_windows \
     SET reserved = reserved - $10, picked_up = picked_up + $10 \
     WHERE id = $6 AND reserved >= $10";

/// The same on the store-day `$11`, whose stock changed at `$1`.
const DAY_GIVE_SQL: &str = "UPDATE store_days \
     SET reserved = reserved - $10, picked_up = picked_up + $10, stock_changed_at = $1 \
     WHERE id = $11 AND reserved >= $10";

/// The ledger's row of a pickup (invariant 4).
const LEDGER_SQL: &str = "INSERT INTO stock_ledger (store_day_id, window_id, reservation_id, \
         kind, reserved_delta, picked_up_delta, actor_user_id, created_at) \
     SELECT $11, $6, $4, 'pickup', -$10, $10, $2, $1";

/// The handover's writes as one statement (PostgreSQL's form), each step
/// reading the row of the one before it; a step after the handover that
/// writes nothing undoes the whole statement (`statement_rolled_back`).
static HAND_OVER_IN_ONE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH handed AS ({hand_over} RETURNING 1), \
         win AS ({window_give} AND EXISTS (SELECT 1 FROM handed) RETURNING 1), \
         day AS ({day_give} AND EXISTS (SELECT 1 FROM win) RETURNING 1), \
         ledger AS ({ledger} FROM day RETURNING 1) \
         SELECT * FROM ( \
             SELECT (SELECT count(*) FROM handed) AS handed, \
                    (SELECT count(*) FROM win) AS win, \
                    (SELECT count(*) FROM day) AS day, \
                    (SELECT count(*) FROM ledger) AS ledger) AS steps \
         WHERE CASE WHEN handed = 1 AND win + day + ledger < 3 \
                    THEN statement_rolled_back('{PICKUP_STATEMENT}', \
                         ARRAY[handed, win, day, ledger]) \
                    ELSE true END",
        hand_over = HAND_OVER_SQL.as_str(),
        window_give = WINDOW_GIVE_SQL,
        day_give = DAY_GIVE_SQL,
        ledger = LEDGER_SQL,
    )
});

/// The name the one statement gives `statement_rolled_back`.
const PICKUP_STATEMENT: &str = "pickup";

/// Rows written by each step of a handover.
#[derive(Debug, QueryableByName)]
struct HandedSteps {
    #[diesel(sql_type = BigInt)]
    handed: i64,
    #[diesel(sql_type = BigInt)]
    win: i64,
    #[diesel(sql_type = BigInt)]
    day: i64,
    #[diesel(sql_type = BigInt)]
    ledger: i64,
}

impl HandedSteps {
    /// A statement per step, each only if the one before it wrote its row.
    fn each(tx: &mut Tx<'_>, args: &[Arg<'_>]) -> QueryResult<HandedSteps> {
        let mut steps = HandedSteps {
            handed: 0,
            win: 0,
            day: 0,
            ledger: 0,
        };
        let mut run = |sql: &'static str| Statement::new(sql, args.to_vec()).run(tx.conn());
        steps.handed = run(HAND_OVER_SQL.as_str())? as i64;
        if steps.handed == 1 {
            steps.win = run(WINDOW_GIVE_SQL)? as i64;
        }
        if steps.win == 1 {
            steps.day = run(DAY_GIVE_SQL)? as i64;
        }
        if steps.day == 1 {
            steps.ledger = run(LEDGER_SQL)? as i64;
        }
        Ok(steps)
    }

    /// The steps in one statement (PostgreSQL).
    fn in_one(tx: &mut Tx<'_>, args: Vec<Arg<'_>>) -> QueryResult<HandedSteps> {
        let counts = db::rolled_back_steps(tx, PICKUP_STATEMENT, |c| {
            Statement::new(HAND_OVER_IN_ONE_SQL.as_str(), args).get_result::<HandedSteps>(c)
        })?;
        Ok(match counts {
            Ok(steps) => steps,
            Err([handed, win, day, ledger]) => HandedSteps {
                handed,
                win,
                day,
                ledger,
            },
        })
    }
}

/// The audit log's `action` of a look-up by national ID at the pickup counter.
pub const LOOKUP_ACTION: &str = "pickup.lookup";

/// A look-up by national ID at the pickup counter, for someone without their
/// code (SPEC §7): the reservations *for* the person whose number has the
/// keyed hash `national_id_hash` — booked by them or by their guardian — that
/// are active at `store_id` on a window of today, in window order. Nothing of
/// another store or another day is read. Each look-up leaves an audit entry
/// in the same transaction, as a walk-in look-up does: who looked, at which
/// store, when, whom (the keyed hash, never the number) and how many were
/// found.
pub fn for_person_today(
    tx: &mut Tx<'_>,
    pharmacist_id: i64,
    store_id: i64,
    national_id_hash: &str,
    now: DateTime<Utc>,
    policy: &Policy,
) -> QueryResult<Vec<Facts>> {
    let today = rules::today(policy, now);
    let codes: Vec<String> = reservations::table
        .inner_join(pickup_windows::table)
        .inner_join(people::table)
        .filter(people::national_id_hash.eq(national_id_hash))
        .filter(reservations::store_id.eq(store_id))
        .filter(pickup_windows::day.eq(today))
        .filter(reservations::status.eq(ReservationStatus::Active))
        .order((pickup_windows::starts_at, reservations::id))
        .select(reservations::pickup_code)
        .load(tx.conn())?;
    let mut found = Vec::with_capacity(codes.len());
    for code in codes {
        if let Some(facts) = find(tx.conn(), &code)? {
            found.push(facts);
        }
    }
    let store_code = crate::stores::code_of(tx.conn(), store_id)?;
    audit::record_at(
        tx,
        Entry {
            actor: Some(pharmacist_id),
            action: LOOKUP_ACTION,
            entity: "person",
            entity_id: national_id_hash.to_owned(),
            before: None,
            after: Some(json!({
                "store": store_code,
                "found": found.len(),
            })),
        },
        now.naive_utc(),
    )?;
    Ok(found)
}

/// Whether the pharmacist `user_id` hands over at the first scan.
pub fn confirm_on_scan(conn: &mut DbConnection, user_id: i64) -> QueryResult<bool> {
    Ok(users::table
        .find(user_id)
        .select(users::confirm_on_scan)
        .first(conn)
        .optional()?
        .unwrap_or(false))
}

/// Sets the pharmacist's "confirm on scan".
pub fn set_confirm_on_scan(tx: &mut Tx<'_>, user_id: i64, on: bool) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::confirm_on_scan.eq(on))
        .execute(tx.conn())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn seoul(h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Seoul
            .with_ymd_and_hms(2026, 12, 1, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn facts() -> Facts {
        Facts {
            id: 1,
            code: "ABCD2345".into(),
            store_id: 7,
            store_name: "중앙약국".into(),
            status: ReservationStatus::Active,
            quantity: 2,
            window_id: 3,
            store_day_id: 4,
            day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            starts_at: seoul(12, 0).naive_utc(),
            ends_at: seoul(15, 0).naive_utc(),
            citizen_name: "김지수".into(),
            national_id_masked: "850101-1******".into(),
            picked_up_at: None,
            picked_up_by: None,
            proxy: None,
        }
    }

    const LOOK: Intent = Intent::LookUp;
    const HAND: Intent = Intent::HandOver {
        proxy_checked: false,
    };
    const HAND_CHECKED: Intent = Intent::HandOver {
        proxy_checked: true,
    };

    #[test]
    fn a_proxy_reservation_is_shown_but_handed_over_only_with_the_documents_seen() {
        let p = Policy::default();
        let mut r = facts();
        assert_eq!(
            judge(&r, 7, seoul(13, 0), &p, HAND),
            Ok(()),
            "not a proxy one"
        );
        r.proxy = Some(Proxy {
            dependant_name: "홍길동".into(),
            birth_year: 2012,
        });
        assert_eq!(judge(&r, 7, seoul(13, 0), &p, LOOK), Ok(()));
        assert_eq!(
            judge(&r, 7, seoul(13, 0), &p, HAND),
            Err(Refusal::ProxyNotChecked)
        );
        assert_eq!(judge(&r, 7, seoul(13, 0), &p, HAND_CHECKED), Ok(()));
        // Whatever else is wrong is said first: the tick would not help.
        assert_eq!(
            judge(&r, 8, seoul(13, 0), &p, HAND),
            Err(Refusal::OtherStore {
                store: "중앙약국".into()
            })
        );
        r.status = ReservationStatus::Cancelled;
        assert_eq!(
            judge(&r, 7, seoul(13, 0), &p, HAND),
            Err(Refusal::Cancelled)
        );
        r.status = ReservationStatus::Active;
        assert!(matches!(
            judge(&r, 7, seoul(16, 0), &p, HAND),
            Err(Refusal::TooLate { .. })
        ));
        assert_eq!(Refusal::ProxyNotChecked.kind(), "proxy_unchecked");
    }

    #[test]
    fn a_reservation_is_handed_over_all_day_until_the_end_plus_grace() {
        let p = Policy::default();
        let r = facts();
        assert_eq!(judge(&r, 7, seoul(0, 1), &p, LOOK), Ok(()));
        assert!(r.came_early(seoul(11, 59)));
        assert!(!r.came_early(seoul(12, 0)));
        assert_eq!(judge(&r, 7, seoul(15, 30), &p, LOOK), Ok(()));
        assert_eq!(
            judge(&r, 7, seoul(15, 31), &p, LOOK),
            Err(Refusal::TooLate {
                closed_at: seoul(15, 30).naive_utc()
            })
        );
    }

    #[test]
    fn another_store_is_named_before_anything_else_is_said() {
        let p = Policy::default();
        let mut r = facts();
        r.status = ReservationStatus::Cancelled;
        assert_eq!(
            judge(&r, 8, seoul(13, 0), &p, LOOK),
            Err(Refusal::OtherStore {
                store: "중앙약국".into()
            })
        );
        assert_eq!(
            judge(&r, 7, seoul(13, 0), &p, LOOK),
            Err(Refusal::Cancelled)
        );
        r.status = ReservationStatus::Expired;
        assert_eq!(judge(&r, 7, seoul(13, 0), &p, LOOK), Err(Refusal::Expired));
        r.status = ReservationStatus::PickedUp;
        r.picked_up_at = Some(seoul(12, 5).naive_utc());
        r.picked_up_by = Some("약사".into());
        assert_eq!(
            judge(&r, 7, seoul(13, 0), &p, LOOK),
            Err(Refusal::AlreadyPickedUp {
                at: seoul(12, 5).naive_utc(),
                by: "약사".into()
            })
        );
    }

    #[test]
    fn another_day_is_refused_with_its_date() {
        let p = Policy::default();
        let r = facts();
        // 23:59 on 30 November in Seoul, and 00:00 on 2 December.
        let before = seoul(0, 0) - TimeDelta::minutes(1);
        assert_eq!(
            judge(&r, 7, before, &p, LOOK),
            Err(Refusal::OtherDay { day: r.day })
        );
        assert_eq!(
            judge(&r, 7, seoul(0, 0) + TimeDelta::days(1), &p, LOOK),
            Err(Refusal::OtherDay { day: r.day })
        );
    }
}
