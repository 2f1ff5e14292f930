//! [`super::book`] on PostgreSQL in two round trips inside the transaction:
//! one read of everything the rules need, then one data-modifying statement
//! that takes the quota, the window and the store-day and writes the
//! reservation, its ledger row and its mail — each step only if the one
//! before it passed. Between the two, the same pure rules as on SQLite decide
//! in Rust, and the mail is written in Rust: the reservation's id is allocated
//! by the read (`nextval`) and the pickup code drawn beforehand, so the mail
//! text can travel with the statement that writes it.
//!
//! Every limit is still a conditional write whose row count is the answer, in
//! the same order and under the same row locks as the step-by-step path
//! (quota, window, store-day), and a refusal still returns `Err`, which rolls
//! back whatever steps of the statement had passed. The details of a refusal
//! (what is left of the quota, the windows still open) are read only then, so
//! the answers are exactly those of the step-by-step path.

use std::sync::LazyLock;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Bool, Date, Nullable, Text, Timestamp};

use super::{
    Account, BookError, Booked, Confirmation, DAY_TAKE_SQL, ForWhom, Holder, LEDGER_KIND, Request,
    TakeArgs, Taken, WINDOW_TAKE_SQL, Window, check, refusal, replay, settle,
};
use crate::db::statement::{Arg, Statement};
use crate::db::{self, DbConnection, Tx};
use crate::dependants::queries::Current;
use crate::i18n::Tr;
use crate::mail::outbox;
use crate::policy::Policy;
use crate::quota;
use crate::reservations::code;
use crate::reservations::rules::Refusal;

/// The sequence behind `reservations.id` (an identity column; its name is
/// checked against `pg_get_serial_sequence` by the tests).
pub const RESERVATION_ID_SEQUENCE: &str = "reservations_id_seq";

/// Round trip 1: the earlier reservation of this request id, the account, the
/// window with its store, the dependant booked for if any — their link held
/// (`FOR SHARE`) as the step-by-step form holds it — and, only when there is
/// something to book, the id the reservation will have. One row, whatever is
/// missing. `$1` user, `$2` request id (may be null: never a replay), `$3`
/// window, `$4` the dependant's link (null: the citizen themself).
static FACTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.id AS replay_id, r.pickup_code AS replay_code, \
                u.email, u.name, u.role, u.session_epoch, \
                u.email_verified_at IS NOT NULL AS verified, \
                u.disabled_at IS NOT NULL AS disabled, u.person_id, p.birth_date, \
                w.store_day_id, w.store_id, w.day, w.starts_at, w.ends_at, \
                s.suspended, s.name AS store_name, s.addr AS store_addr, w.draw_id, \
                dep.person_id AS dep_person_id, dep.birth_date AS dep_birth_date, \
                dep.name AS dep_name, \
                CASE WHEN r.id IS NULL AND u.id IS NOT NULL AND w.id IS NOT NULL \
                     THEN nextval('{RESERVATION_ID_SEQUENCE}') END AS next_id \
         FROM (VALUES (1)) AS one (x) \
         LEFT JOIN reservations r ON r.user_id = $1 AND r.request_id = $2 \
         LEFT JOIN users u ON u.id = $1 \
         LEFT JOIN people p ON p.id = u.person_id \
         LEFT JOIN pickup_windows w ON w.id = $3 \
         LEFT JOIN stores s ON s.id = w.store_id \
         LEFT JOIN LATERAL ( \
             SELECT d.person_id, dp.birth_date, d.name FROM dependants d \
             JOIN people dp ON dp.id = d.person_id \
             WHERE d.id = $4 AND d.guardian_user_id = $1 AND d.ended_at IS NULL \
             FOR SHARE OF d) dep ON true"
    )
});

#[derive(QueryableByName)]
struct Facts {
    #[diesel(sql_type = Nullable<BigInt>)]
    replay_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    replay_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    role: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    session_epoch: Option<i64>,
    #[diesel(sql_type = Nullable<Bool>)]
    verified: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    disabled: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    person_id: Option<i64>,
    #[diesel(sql_type = Nullable<Date>)]
    birth_date: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<BigInt>)]
    store_day_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    store_id: Option<i64>,
    #[diesel(sql_type = Nullable<Date>)]
    day: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    starts_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    ends_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Bool>)]
    suspended: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    store_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    store_addr: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    draw_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    dep_person_id: Option<i64>,
    #[diesel(sql_type = Nullable<Date>)]
    dep_birth_date: Option<NaiveDate>,
    #[diesel(sql_type = Nullable<Text>)]
    dep_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    next_id: Option<i64>,
}

impl Facts {
    fn replayed(&mut self) -> Option<Booked> {
        match (self.replay_id, self.replay_code.take()) {
            (Some(reservation_id), Some(pickup_code)) => Some(Booked {
                reservation_id,
                pickup_code,
                replayed: true,
            }),
            _ => None,
        }
    }

    fn account(&mut self) -> Option<Account> {
        Some(Account {
            email: self.email.take()?,
            name: self.name.take()?,
            role: self.role.take()?,
            session_epoch: self.session_epoch?,
            verified: self.verified?,
            disabled: self.disabled?,
            person_id: self.person_id,
            birth_date: self.birth_date,
        })
    }

    fn dependant(&mut self) -> Option<Current> {
        Some(Current {
            person_id: self.dep_person_id?,
            birth_date: self.dep_birth_date?,
            name: self.dep_name.take()?,
        })
    }

    fn window(&mut self) -> Option<Window> {
        Some(Window {
            store_day_id: self.store_day_id?,
            store_id: self.store_id?,
            day: self.day?,
            starts_at: self.starts_at?,
            ends_at: self.ends_at?,
            suspended: self.suspended?,
            store_name: self.store_name.take()?,
            store_addr: self.store_addr.take()?,
            draw_id: self.draw_id,
        })
    }
}

/// Round trip 2: the writes of a booking as one statement, each step reading
/// the row of the step before it, so that a step that matches nothing stops
/// every later one; its answer is how many rows each step wrote.
///
/// `$1`–`$7` are those of the takes of the step-by-step path ([`TakeArgs`]),
/// whose statements are its first three steps: `$1`–`$4` of
/// [`quota::TAKE_SQL`] (person, period start, quantity, quota), `$5` window,
/// `$6` now, `$7` store-day (`WINDOW_TAKE_SQL`, `DAY_TAKE_SQL`); then `$8` the reservation's id, `$9` user, `$10` store,
/// `$11` pickup code, `$12` request id, `$13` mail language, `$14` recipient,
/// `$15` mail kind, `$16` subject, `$17` body, `$18` mail status, `$19` the
/// mail's due time, `$20` the dependant's link (null for the citizen's own),
/// `$21` the status (`active`, or `offered` for a waiting list's offer),
/// `$22` until when an offer is held (null for a booking). The outbox row is the one `mail::outbox::enqueue` writes
/// (pending, no attempt, due at once).
static BOOK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH taken AS ({take} RETURNING 1), \
         win AS ({window_take} AND EXISTS (SELECT 1 FROM taken) RETURNING 1), \
         store_day AS ({day_take} AND EXISTS (SELECT 1 FROM win) RETURNING 1), \
         link AS ( \
             SELECT 1 FROM dependants \
             WHERE id = $20 AND guardian_user_id = $9 AND ended_at IS NULL \
             FOR SHARE), \
         booked AS ( \
             INSERT INTO reservations (id, user_id, person_id, window_id, store_id, quantity, \
                 period_start, status, pickup_code, created_at, updated_at, request_id, mail_lang, \
                 dependant_id, offer_until) \
             OVERRIDING SYSTEM VALUE \
             SELECT $8, $9, $1, $5, $10, $3, $2, $21, $11, $6, $6, $12, $13, $20, $22 \
             FROM store_day \
             WHERE $20 IS NULL OR EXISTS (SELECT 1 FROM link) \
             ON CONFLICT DO NOTHING \
             RETURNING id), \
         ledger AS ( \
             INSERT INTO stock_ledger (store_day_id, window_id, reservation_id, kind, \
                 reserved_delta, actor_user_id, created_at) \
             SELECT $7, $5, id, '{LEDGER_KIND}', $3, $9, $6 FROM booked \
             RETURNING 1), \
         mail AS ( \
             INSERT INTO mail_outbox (recipient, kind, subject, body_text, status, attempts, \
                 next_attempt_at, created_at) \
             SELECT $14, $15, $16, $17, $18, 0, $19, $19 FROM ledger \
             RETURNING 1) \
         SELECT * FROM ( \
             SELECT (SELECT count(*) FROM taken) AS taken, \
                    (SELECT count(*) FROM win) AS win, \
                    (SELECT count(*) FROM store_day) AS store_day, \
                    (SELECT count(*) FROM booked) AS booked, \
                    (SELECT count(*) FROM ledger) AS ledger, \
                    (SELECT count(*) FROM mail) AS mail) AS steps \
         WHERE CASE WHEN taken = 1 AND win + store_day + booked + ledger + mail < 5 \
                    THEN statement_rolled_back('{BOOKING_STATEMENT}', \
                         ARRAY[taken, win, store_day, booked, ledger, mail]) \
                    ELSE true END",
        take = quota::TAKE_SQL,
        window_take = WINDOW_TAKE_SQL,
        day_take = DAY_TAKE_SQL,
    )
});

/// Rows written by each step of [`BOOK_SQL`].
#[derive(Debug, QueryableByName)]
struct Steps {
    #[diesel(sql_type = BigInt)]
    taken: i64,
    #[diesel(sql_type = BigInt)]
    win: i64,
    #[diesel(sql_type = BigInt)]
    store_day: i64,
    #[diesel(sql_type = BigInt)]
    booked: i64,
    #[diesel(sql_type = BigInt)]
    ledger: i64,
    #[diesel(sql_type = BigInt)]
    mail: i64,
}

/// The name [`BOOK_SQL`] gives `statement_rolled_back`.
const BOOKING_STATEMENT: &str = "booking";

impl Steps {
    /// Runs [`BOOK_SQL`] with `args` (see [`db::rolled_back_steps`]): a
    /// transaction of its own on the booking's door, so that its rows are
    /// locked for that statement only.
    fn written_by(tx: &mut Tx<'_>, args: Vec<Arg<'_>>) -> QueryResult<Steps> {
        let counts = db::rolled_back_steps(tx, BOOKING_STATEMENT, |c| {
            Statement::new(BOOK_SQL.as_str(), args).get_result::<Steps>(c)
        })?;
        Ok(match counts {
            Ok(steps) => steps,
            Err([taken, win, store_day, booked, ledger, mail]) => Steps {
                taken,
                win,
                store_day,
                booked,
                ledger,
                mail,
            },
        })
    }
}

pub(super) fn book(
    tx: &mut Tx<'_>,
    req: &Request,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<Booked, BookError> {
    let mut facts: Facts = Statement::new(
        FACTS_SQL.as_str(),
        vec![
            Arg::BigInt(req.user_id),
            Arg::NullableText(req.request_id.as_deref()),
            Arg::BigInt(req.window_id),
            Arg::NullableBigInt(match req.person {
                ForWhom::Own => None,
                ForWhom::Dependant(id) => Some(id),
            }),
        ],
    )
    .get_result(pg(tx)?)?;
    let account = facts.account();
    Account::held_by(account.as_ref(), req.session.as_ref())?;
    if let Some(existing) = facts.replayed() {
        return Ok(existing);
    }
    let citizen = Account::citizen(account)?;
    let holder = match req.person {
        ForWhom::Own => Holder::own(&citizen),
        ForWhom::Dependant(id) => {
            Holder::dependant(id, facts.dependant().ok_or(Refusal::UnknownPerson)?)
        }
    };
    let window = facts.window().ok_or(Refusal::UnknownWindow)?;
    let period_start = check(policy, req, &holder, &window)?;
    let takes = TakeArgs {
        person_id: holder.person_id,
        period_start,
        quantity: req.quantity,
        quota: policy.quota_per_period,
        window_id: req.window_id,
        now: req.now.naive_utc(),
        store_day_id: window.store_day_id,
        close_minutes: policy.booking_close_minutes,
    };
    if takes.quantity.get() > takes.quota {
        // `TAKE_SQL` may not run then (see there); the step-by-step form does
        // not run it either.
        return Err(refusal(tx, req, &takes, &window, Taken::NOTHING)?);
    }
    let reservation_id = facts.next_id.ok_or_else(|| {
        BookError::Db(DieselError::QueryBuilderError(
            "no reservation id allocated".into(),
        ))
    })?;

    let pickup_code = code::generate();
    let mail = Confirmation::new(
        t,
        policy,
        base_url,
        &citizen,
        &holder,
        &window,
        req,
        reservation_id,
        &pickup_code,
    );
    let steps = Steps::written_by(
        tx,
        [
            takes.args(),
            vec![
                Arg::BigInt(reservation_id),
                Arg::BigInt(req.user_id),
                Arg::BigInt(window.store_id),
                Arg::Text(&pickup_code),
                Arg::NullableText(req.request_id.as_deref()),
                Arg::Text(t.code()),
                Arg::Text(&citizen.email),
                Arg::Text(mail.kind),
                Arg::Text(&mail.subject),
                Arg::Text(&mail.body),
                Arg::Text(outbox::PENDING),
                Arg::Timestamp(Utc::now().naive_utc()),
                Arg::NullableBigInt(holder.dependant_id()),
                Arg::Text(req.hold.status().as_str()),
                Arg::NullableTimestamp(req.hold.offer_until()),
            ],
        ]
        .concat(),
    )?;

    let taken = Taken {
        quota: steps.taken == 1,
        window: steps.win == 1,
        store_day: steps.store_day == 1,
    };
    settle(tx, req, &takes, &window, taken)?;
    if steps.booked != 1 {
        // Either unique key matched: a concurrent request with this request
        // id committed first (its retry answers it), or, about once in 10^12,
        // the pickup code was taken: the retry draws another. Or the
        // dependant's link ended since the facts were read: the retry finds
        // no link. Either way the statement undid the counters it raised.
        if replay(tx, req)?.is_some() {
            return Err(BookError::Raced);
        }
        return Err(BookError::CodeTaken);
    }
    if steps.ledger != 1 || steps.mail != 1 {
        return Err(BookError::Db(DieselError::QueryBuilderError(
            format!("booking stopped after the reservation: {steps:?}").into(),
        )));
    }
    Ok(Booked {
        reservation_id,
        pickup_code,
        replayed: false,
    })
}

fn pg<'t>(tx: &'t mut Tx<'_>) -> Result<&'t mut PgConnection, BookError> {
    match tx.conn() {
        DbConnection::Postgres(c) => Ok(c),
        DbConnection::Sqlite(_) => Err(BookError::Db(DieselError::QueryBuilderError(
            "PostgreSQL booking on an SQLite connection".into(),
        ))),
    }
}
