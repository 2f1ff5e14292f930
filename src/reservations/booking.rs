//! The one booking transaction (SPEC §3, §4 invariants 1, 2 and 4): every
//! reservation — from the store page, a command or a benchmark, alone or in a
//! group of the SQLite writer — is made by [`book`], and nothing else raises a
//! window's or a store-day's `reserved`.
//!
//! It is a plain synchronous function over the caller's transaction, with no
//! I/O but the database, so that it can run in a transaction of its own
//! (`Db::write`) or in a savepoint of a batch. Each limit is decided by a
//! conditional write whose affected-row count is the answer — the quota
//! counter, then the window, then the store-day — never by a read followed by
//! a write; a refusal after any write returns `Err`, which rolls the whole
//! transaction back. On SQLite each step is a statement; on PostgreSQL, where
//! each statement is a round trip, the same steps are two statements
//! (`booking/pg.rs`). Both forms hand what their takes wrote to one function,
//! [`settle`], which decides every refusal, and one table of scenarios
//! (`tests/api/booking_conformance.rs`) runs against each form on each
//! backend, so the two cannot drift.
//!
//! A citizen may book for one of their dependants (SPEC §12, `person` on the
//! form): the transaction then checks that the link is current and this
//! account's — holding it, so that it cannot end under the booking — and
//! the quota taken, the rotation day and the reservation's `person_id` are
//! the dependant's, its `user_id` the guardian's and its `dependant_id` the
//! link it was made under.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::accounts::{Role, SessionClaim};
use crate::db::schema::{people, pickup_windows, reservations, stock_ledger, stores, users};
use crate::db::statement::{Arg, Statement};
use crate::db::{self, AsRetryable, Db, DbError, LockMode, Locked, Tx, is_retryable};
use crate::dependants::queries::{Current, current_one};
use crate::dependants::rules::proxy_line;
use crate::i18n::Tr;
use crate::mail::outbox::{OutgoingMail, enqueue};
use crate::policy::Policy;
use crate::quantity::Quantity;
use crate::quota;
use crate::reservations::code;
use crate::reservations::rules::{self, OpenWindow, Refusal, WindowFacts};
use crate::reservations::status::ReservationStatus;
use crate::stock;

mod many;
mod pg;
pub use crate::db::Form;
pub use many::{Facts, book as book_many};
pub use pg::RESERVATION_ID_SEQUENCE;

/// A reservation asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub user_id: i64,
    pub window_id: i64,
    /// Parsed where the request comes in: a form's text that is no quantity
    /// is refused there (`Refusal::BadQuantity`), a quantity above what a form
    /// may ask for here ([`rules::check_quantity`]).
    pub quantity: Quantity,
    /// The form's random id: a second request with the same (user, id) answers
    /// the first reservation and books nothing.
    pub request_id: Option<String>,
    /// Whom the masks are for: the citizen, or one of their dependants.
    pub person: ForWhom,
    pub now: DateTime<Utc>,
    /// What the login session asking says of its account: held against the
    /// account row read in the transaction, before anything else is answered.
    /// `None` when no session asks: the service acts on what the account
    /// asked earlier (a waiting list's offer), and the account need only be
    /// an enabled citizen's.
    pub session: Option<SessionClaim>,
    /// Whether the reservation is booked outright, or held as an offer.
    pub hold: Hold,
}

/// What a reservation is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// `active`, with the confirmation mail: a booking.
    Booking,
    /// `offered` until `until`, with the offer's mail: a place freed in a full
    /// window for the first in its waiting list (SPEC §13).
    Offer { until: DateTime<Utc> },
    /// `active`, with the confirmation mail: a registration drawn in draw
    /// `draw_id`, the one booking allowed in that draw's windows until it is
    /// done (SPEC §13).
    Draw { draw_id: i64 },
}

impl Hold {
    fn status(self) -> ReservationStatus {
        match self {
            Hold::Booking | Hold::Draw { .. } => ReservationStatus::Active,
            Hold::Offer { .. } => ReservationStatus::Offered,
        }
    }

    fn offer_until(self) -> Option<NaiveDateTime> {
        match self {
            Hold::Booking | Hold::Draw { .. } => None,
            Hold::Offer { until } => Some(until.naive_utc()),
        }
    }

    fn mail_kind(self) -> &'static str {
        match self {
            Hold::Booking | Hold::Draw { .. } => MAIL_KIND,
            Hold::Offer { .. } => OFFER_MAIL_KIND,
        }
    }
}

/// Whom a reservation is for: the form's `person` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForWhom {
    /// The citizen asking (`self`, the default).
    Own,
    /// The dependant with this link id.
    Dependant(i64),
}

impl ForWhom {
    /// The form's value: empty or `self` for the citizen, a link's id for a
    /// dependant; anything else names nobody.
    pub fn parse(text: &str) -> Option<ForWhom> {
        match text.trim() {
            "" | "self" => Some(ForWhom::Own),
            id => id.parse().ok().map(ForWhom::Dependant),
        }
    }
}

/// A reservation that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booked {
    pub reservation_id: i64,
    pub pickup_code: String,
    /// `true` when the request id had already booked this reservation.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("reservation refused: {0:?}")]
    Refused(Refusal),
    /// The session no longer speaks for the account (disabled, password
    /// reset, gone): nothing is answered but that.
    #[error("the session has ended")]
    SessionEnded,
    /// A concurrent request with the same request id committed first. Retried
    /// by `write_tx`: the retry finds that reservation and answers it.
    #[error("lost a race for the same request id")]
    Raced,
    /// On PostgreSQL, the pickup code drawn was taken (practically never):
    /// retried by `write_tx` with a fresh code, the counters rolled back.
    #[error("the pickup code drawn was taken")]
    CodeTaken,
    /// Every fresh pickup code tried was taken: practically impossible (40
    /// random bits each), an error rather than a loop.
    #[error("no free pickup code")]
    NoFreeCode,
    /// A set of bookings ([`book_many`]) that did not fit whole: what its
    /// takes wrote must be rolled back, and its requests booked one at a time.
    #[error("a set of bookings did not fit whole")]
    NotAll,
    /// Not transparent: the database error stays in the cause chain, where a
    /// lost connection is recognised.
    #[error("database error")]
    Db(#[from] DieselError),
}

impl From<Refusal> for BookError {
    fn from(r: Refusal) -> Self {
        BookError::Refused(r)
    }
}

impl AsRetryable for BookError {
    fn is_retryable(&self) -> bool {
        match self {
            BookError::Raced | BookError::CodeTaken => true,
            BookError::Db(e) => is_retryable(e),
            BookError::Refused(_)
            | BookError::SessionEnded
            | BookError::NoFreeCode
            | BookError::NotAll => false,
        }
    }
}

/// How many fresh pickup codes are tried when one is already taken (about one
/// chance in 10^12 per existing reservation).
const CODE_ATTEMPTS: usize = 5;

/// What booking needs of the account asking.
#[derive(Clone)]
struct Account {
    email: String,
    name: String,
    role: String,
    session_epoch: i64,
    verified: bool,
    disabled: bool,
    person_id: Option<i64>,
    birth_date: Option<NaiveDate>,
}

/// An account as every form reads it with the query DSL
/// (`AccountRow::as_select()`, from users left-joined with people).
#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct AccountRow {
    email: String,
    name: String,
    role: String,
    session_epoch: i64,
    email_verified_at: Option<NaiveDateTime>,
    disabled_at: Option<NaiveDateTime>,
    person_id: Option<i64>,
    #[diesel(select_expression = people::birth_date.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<people::birth_date>)]
    birth_date: Option<NaiveDate>,
}

/// A citizen who may reserve: the account checks passed.
struct Citizen {
    email: String,
    name: String,
    person_id: i64,
    birth_date: NaiveDate,
}

impl Account {
    /// The account `user_id`, or `None`.
    fn read(tx: &mut Tx<'_>, user_id: i64) -> QueryResult<Option<Account>> {
        let row = crate::on_each_backend!(tx.conn(), |c| {
            users::table
                .left_join(people::table)
                .filter(users::id.eq(user_id))
                .select(AccountRow::as_select())
                .first::<AccountRow>(c)
                .optional()
        })?;
        Ok(row.map(Account::from_row))
    }

    fn from_row(row: AccountRow) -> Account {
        Account {
            email: row.email,
            name: row.name,
            role: row.role,
            session_epoch: row.session_epoch,
            verified: row.email_verified_at.is_some(),
            disabled: row.disabled_at.is_some(),
            person_id: row.person_id,
            birth_date: row.birth_date,
        }
    }

    /// Whether `session` still speaks for the account (with no session, that
    /// it is an enabled citizen's); `None` is no account.
    fn held_by(account: Option<&Account>, session: Option<&SessionClaim>) -> Result<(), BookError> {
        match (account, session) {
            (Some(a), Some(session)) if session.holds(&a.role, a.disabled, a.session_epoch) => {
                Ok(())
            }
            (Some(a), None) if !a.disabled && Role::parse(&a.role) == Some(Role::Citizen) => Ok(()),
            _ => Err(BookError::SessionEnded),
        }
    }

    /// The refusals that depend on the account alone, in the order a citizen
    /// is best told; `None` is no account at all.
    fn citizen(account: Option<Account>) -> Result<Citizen, Refusal> {
        let Some(account) = account else {
            return Err(Refusal::NotCitizen);
        };
        let (Some(person_id), Some(birth_date)) = (account.person_id, account.birth_date) else {
            return Err(Refusal::NotCitizen);
        };
        if account.disabled {
            return Err(Refusal::AccountDisabled);
        }
        if !account.verified {
            return Err(Refusal::Unverified);
        }
        Ok(Citizen {
            email: account.email,
            name: account.name,
            person_id,
            birth_date,
        })
    }
}

/// Whose quota and rotation day a booking takes, and under which link.
struct Holder {
    person_id: i64,
    birth_date: NaiveDate,
    /// For a dependant: the link's id and the name the guardian gave.
    dependant: Option<(i64, String)>,
}

impl Holder {
    fn own(citizen: &Citizen) -> Holder {
        Holder {
            person_id: citizen.person_id,
            birth_date: citizen.birth_date,
            dependant: None,
        }
    }

    fn dependant(id: i64, d: Current) -> Holder {
        Holder {
            person_id: d.person_id,
            birth_date: d.birth_date,
            dependant: Some((id, d.name)),
        }
    }

    fn dependant_id(&self) -> Option<i64> {
        self.dependant.as_ref().map(|(id, _)| *id)
    }
}

/// The person `user_id` asks for (`person`), with the booking's account
/// checks passed for a citizen and the dependant's link current: whose quota
/// and rotation day, and under which link. For the requests that name someone
/// without booking yet (a waiting list, a draw), which have no session claim
/// to weigh: an account that is not a citizen's is refused.
pub fn holder_named<E>(
    tx: &mut Tx<'_>,
    user_id: i64,
    person: ForWhom,
) -> Result<(i64, NaiveDate, Option<i64>), E>
where
    E: From<Refusal> + From<DieselError>,
{
    let account = Account::read(tx, user_id)?;
    if account
        .as_ref()
        .is_some_and(|a| Role::parse(&a.role) != Some(Role::Citizen))
    {
        return Err(Refusal::NotCitizen.into());
    }
    let citizen = Account::citizen(account)?;
    let holder = match person {
        ForWhom::Own => Holder::own(&citizen),
        ForWhom::Dependant(id) => {
            let found = current_one(tx.conn(), user_id, id)?.ok_or(Refusal::UnknownPerson)?;
            Holder::dependant(id, found)
        }
    };
    Ok((holder.person_id, holder.birth_date, holder.dependant_id()))
}

/// A window with its store, read by every form with the query DSL
/// (`Window::as_select()`, from windows joined with stores).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pickup_windows)]
struct Window {
    store_day_id: i64,
    store_id: i64,
    day: NaiveDate,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    #[diesel(select_expression = stores::suspended)]
    suspended: bool,
    #[diesel(select_expression = stores::name)]
    store_name: String,
    #[diesel(select_expression = stores::addr)]
    store_addr: String,
    /// The draw that allocates this window, while it is not done.
    draw_id: Option<i64>,
}

/// Makes the reservation `req` asks for, or says why not. `policy` is the
/// policy in force, `t` the language of the confirmation mail, `base_url` where
/// its link points.
///
/// The same steps and the same answers on both backends; only the number of
/// statements differs. On SQLite, where a statement is a function call in the
/// process, each step is a statement of its own. On PostgreSQL, where each is
/// a network round trip, the reads are one statement and the writes another
/// ([`pg`]).
pub fn book(
    tx: &mut Tx<'_>,
    req: &Request,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<Booked, BookError> {
    book_in(Form::of(tx.backend()), tx, req, policy, t, base_url)
}

/// Books `req` as a page does: in `form`, through the door that form needs.
/// The one-statement form runs without an explicit transaction
/// ([`Db::write_statements`]), so that the rows its writes lock are held for
/// that one statement; the step-by-step form runs in a transaction
/// ([`Db::write`]), whose rollback undoes a refusal.
pub async fn book_through(
    db: &Db,
    form: Form,
    req: Request,
    policy: Arc<Policy>,
    t: Tr,
    base_url: String,
) -> Result<Booked, DbError<BookError>> {
    db.write_in(form, move |tx| {
        book_in(form, tx, &req, &policy, &t, &base_url)
    })
    .await
}

/// [`book`] in the form asked for, whatever the backend's own: for the table
/// of scenarios that holds every form to the same answers.
pub fn book_in(
    form: Form,
    tx: &mut Tx<'_>,
    req: &Request,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<Booked, BookError> {
    match form {
        Form::OneStatement => pg::book(tx, req, policy, t, base_url),
        Form::StepByStep => book_step_by_step(tx, req, policy, t, base_url),
    }
}

/// [`book`] one statement per step.
fn book_step_by_step(
    tx: &mut Tx<'_>,
    req: &Request,
    policy: &Policy,
    t: &Tr,
    base_url: &str,
) -> Result<Booked, BookError> {
    let account = Account::read(tx, req.user_id)?;
    Account::held_by(account.as_ref(), req.session.as_ref())?;
    if let Some(existing) = replay(tx, req)? {
        return Ok(existing);
    }
    let citizen = Account::citizen(account)?;
    let holder = match req.person {
        ForWhom::Own => Holder::own(&citizen),
        ForWhom::Dependant(id) => {
            db::lock_row(tx, Locked::Dependant(id), LockMode::Share)?;
            let found = current_one(tx.conn(), req.user_id, id)?.ok_or(Refusal::UnknownPerson)?;
            Holder::dependant(id, found)
        }
    };

    let window: Window = crate::on_each_backend!(tx.conn(), |c| {
        pickup_windows::table
            .inner_join(stores::table)
            .filter(pickup_windows::id.eq(req.window_id))
            .select(Window::as_select())
            .first(c)
            .optional()
    })?
    .ok_or(Refusal::UnknownWindow)?;
    let period_start = check(policy, req, &holder, &window)?;

    let q = req.quantity;
    let person_id = holder.person_id;
    let now = req.now.naive_utc();
    let takes = TakeArgs {
        person_id,
        period_start,
        quantity: q,
        quota: policy.quota_per_period,
        window_id: req.window_id,
        now,
        store_day_id: window.store_day_id,
        close_minutes: policy.booking_close_minutes,
    };
    let taken = takes.run_each(tx)?;
    settle(tx, req, &takes, &window, taken)?;

    let (reservation_id, pickup_code) =
        insert_reservation(tx, req, &holder, &window, period_start, t.code())?;

    crate::on_each_backend!(tx.conn(), |c| {
        diesel::insert_into(stock_ledger::table)
            .values((
                stock_ledger::store_day_id.eq(window.store_day_id),
                stock_ledger::window_id.eq(req.window_id),
                stock_ledger::reservation_id.eq(reservation_id),
                stock_ledger::kind.eq(LEDGER_KIND),
                stock_ledger::reserved_delta.eq(q.get()),
                stock_ledger::actor_user_id.eq(req.user_id),
                stock_ledger::created_at.eq(now),
            ))
            .execute(c)
    })?;

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
    enqueue(tx, &mail.outgoing(&citizen.email))?;

    Ok(Booked {
        reservation_id,
        pickup_code,
        replayed: false,
    })
}

/// The window's conditional take: `$3` the quantity, `$5` the window. One row
/// written means taken. The placeholders are those of [`TakeArgs`], which
/// are also the first of the PostgreSQL booking statement, where this text is
/// one of its steps: the rule is written once for both backends.
const WINDOW_TAKE_SQL: &str = "UPDATE pickup_windows SET reserved = reserved + $3 \
     WHERE id = $5 AND reserved + picked_up + $3 <= capacity";

/// The store-day's conditional take: `$3` the quantity, `$6` now (the stock's
/// new time), `$7` the store-day; as [`WINDOW_TAKE_SQL`].
const DAY_TAKE_SQL: &str = "UPDATE store_days SET reserved = reserved + $3, stock_changed_at = $6 \
     WHERE id = $7 AND reserved + picked_up + walk_in + $3 <= supply";

/// The arguments `$1`–`$7` of the conditional takes: `$1`–`$4` those of
/// [`quota::TAKE_SQL`] (person, period start, quantity, quota), then the
/// window, now and the store-day.
struct TakeArgs {
    person_id: i64,
    period_start: NaiveDate,
    quantity: Quantity,
    quota: i32,
    window_id: i64,
    now: NaiveDateTime,
    store_day_id: i64,
    /// The policy's `booking_close_minutes`, for the windows a refusal
    /// suggests (not a placeholder of the takes).
    close_minutes: i32,
}

/// What each conditional take wrote, in their order. A take that did not run
/// because one before it wrote nothing counts as not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Taken {
    quota: bool,
    window: bool,
    store_day: bool,
}

impl Taken {
    /// The quota was not even tried: more than the quota itself was asked.
    const NOTHING: Taken = Taken {
        quota: false,
        window: false,
        store_day: false,
    };

    /// All three took: the booking is made.
    const ALL: Taken = Taken {
        quota: true,
        window: true,
        store_day: true,
    };
}

/// Turns what the takes wrote into the booking's outcome, for every form of
/// the booking: `Ok` when all three took, otherwise [`refusal`].
fn settle(
    tx: &mut Tx<'_>,
    req: &Request,
    takes: &TakeArgs,
    window: &Window,
    taken: Taken,
) -> Result<(), BookError> {
    if taken == Taken::ALL {
        return Ok(());
    }
    Err(refusal(tx, req, takes, window, taken)?)
}

/// Why a booking whose takes did not all take is refused: the refusal of the
/// first that did not, with what it takes to explain it — unless this request
/// id booked meanwhile. That is a double click: both posts found no earlier
/// reservation, the second waited on a row the first held (the quota, the
/// window), and once the first committed its take no longer fitted. It is
/// answered as the replay it is, by [`BookError::Raced`]: the transaction is
/// rolled back and run again, and finds the reservation first.
fn refusal(
    tx: &mut Tx<'_>,
    req: &Request,
    takes: &TakeArgs,
    window: &Window,
    taken: Taken,
) -> QueryResult<BookError> {
    if replay(tx, req)?.is_some() {
        return Ok(BookError::Raced);
    }
    if !taken.quota {
        let e = quota::exceeded(tx, takes.person_id, takes.period_start, takes.quota)?;
        return Ok(Refusal::QuotaExceeded { left: e.left }.into());
    }
    if !taken.window {
        return Ok(window_full(tx, window, req, takes.close_minutes)?.into());
    }
    Ok(Refusal::SoldOut.into())
}

impl TakeArgs {
    /// Runs the takes one statement each, in order, each only if the one
    /// before it took.
    fn run_each(&self, tx: &mut Tx<'_>) -> QueryResult<Taken> {
        let mut taken = Taken::NOTHING;
        taken.quota = quota::try_take(
            tx,
            self.person_id,
            self.period_start,
            self.quantity,
            self.quota,
        )?;
        if taken.quota {
            taken.window = self.run(tx, WINDOW_TAKE_SQL)? == 1;
        }
        if taken.window {
            taken.store_day = self.run(tx, DAY_TAKE_SQL)? == 1;
        }
        Ok(taken)
    }

    fn args(&self) -> Vec<Arg<'static>> {
        vec![
            Arg::BigInt(self.person_id),
            Arg::Date(self.period_start),
            Arg::Integer(self.quantity.get()),
            Arg::Integer(self.quota),
            Arg::BigInt(self.window_id),
            Arg::Timestamp(self.now),
            Arg::BigInt(self.store_day_id),
        ]
    }

    /// Runs one take (kept prepared on the connection); the rows it wrote.
    fn run(&self, tx: &mut Tx<'_>, sql: &'static str) -> QueryResult<usize> {
        Statement::new(sql, self.args()).run(tx.conn())
    }
}

/// The ledger row's kind for a booking.
const LEDGER_KIND: &str = "reservation";
/// The confirmation mail's kind in the outbox.
const MAIL_KIND: &str = "reservation_confirmed";
/// The mail of an offer from a waiting list.
const OFFER_MAIL_KIND: &str = "waitlist_offer";

/// The rules that need no counter ([`rules::check`]); the period the
/// reservation counts in.
fn check(
    policy: &Policy,
    req: &Request,
    holder: &Holder,
    window: &Window,
) -> Result<NaiveDate, Refusal> {
    // A draw's windows take only that draw's bookings until it is done.
    if let Some(draw_id) = window.draw_id
        && req.hold != (Hold::Draw { draw_id })
    {
        return Err(Refusal::InDraw { draw_id });
    }
    let facts = WindowFacts {
        day: window.day,
        ends_at: window.ends_at,
        store_suspended: window.suspended,
    };
    rules::check(
        policy,
        req.now,
        rules::birth_year(holder.birth_date),
        &facts,
        req.quantity,
    )?;
    Ok(rules::period_of(policy, window.day))
}

/// The confirmation mail's subject and body, in `t`'s language.
struct Confirmation {
    subject: String,
    body: String,
    kind: &'static str,
}

impl Confirmation {
    #[expect(
        clippy::too_many_arguments,
        reason = "each is a different fact the mail says; a struct would only rename them"
    )]
    fn new(
        t: &Tr,
        policy: &Policy,
        base_url: &str,
        citizen: &Citizen,
        holder: &Holder,
        window: &Window,
        req: &Request,
        reservation_id: i64,
        pickup_code: &str,
    ) -> Confirmation {
        // A line of its own under the quantity, for a dependant only.
        let proxy = match &holder.dependant {
            Some((_, name)) => format!(
                "\n{}",
                proxy_line(t, &citizen.name, name, rules::birth_year(holder.birth_date))
            ),
            None => String::new(),
        };
        let (subject_key, body_key, until) = match req.hold {
            Hold::Booking | Hold::Draw { .. } => (
                "mail.reservation_confirmed.subject",
                "mail.reservation_confirmed.body",
                String::new(),
            ),
            Hold::Offer { until } => (
                "mail.waitlist_offer.subject",
                "mail.waitlist_offer.body",
                rules::local_date_time(t, policy.timezone, until),
            ),
        };
        let body = t.fmt(
            body_key,
            &[
                ("name", &citizen.name),
                ("store", &window.store_name),
                ("addr", &window.store_addr),
                ("date", &t.date(window.day)),
                (
                    "time",
                    &rules::time_range(policy.timezone, window.starts_at, window.ends_at),
                ),
                ("quantity", &req.quantity),
                ("proxy", &proxy),
                ("code", &code::display(pickup_code)),
                ("link", &format!("{base_url}/reservations/{reservation_id}")),
                ("cutoff", &policy.cancel_cutoff_minutes),
                ("until", &until),
            ],
        );
        let subject = t.fmt(
            subject_key,
            &[("date", &t.date(window.day)), ("store", &window.store_name)],
        );
        Confirmation {
            subject,
            body,
            kind: req.hold.mail_kind(),
        }
    }

    fn outgoing<'a>(&'a self, to: &'a str) -> OutgoingMail<'a> {
        OutgoingMail {
            to,
            kind: self.kind,
            subject: &self.subject,
            body_text: &self.body,
        }
    }
}

/// The refusal of a full window, with the windows of the day still open.
fn window_full(
    tx: &mut Tx<'_>,
    window: &Window,
    req: &Request,
    close_minutes: i32,
) -> QueryResult<Refusal> {
    Ok(Refusal::WindowFull {
        open: open_windows(tx, window, req, close_minutes)?,
    })
}

/// The reservation this request id already made, if any.
fn replay(tx: &mut Tx<'_>, req: &Request) -> QueryResult<Option<Booked>> {
    let Some(request_id) = &req.request_id else {
        return Ok(None);
    };
    let found: Option<(i64, String)> = crate::on_each_backend!(tx.conn(), |c| {
        reservations::table
            .filter(reservations::user_id.eq(req.user_id))
            .filter(reservations::request_id.eq(request_id))
            .select((reservations::id, reservations::pickup_code))
            .first(c)
            .optional()
    })?;
    Ok(found.map(|(reservation_id, pickup_code)| Booked {
        reservation_id,
        pickup_code,
        replayed: true,
    }))
}

/// Inserts the reservation with a fresh pickup code. `ON CONFLICT DO NOTHING`
/// covers both unique keys without an error (which on PostgreSQL would abort
/// the transaction): no row back means either the code was taken — try
/// another — or a concurrent request with the same request id committed
/// first, which [`BookError::Raced`] hands to `write_tx` to retry.
fn insert_reservation(
    tx: &mut Tx<'_>,
    req: &Request,
    holder: &Holder,
    window: &Window,
    period_start: NaiveDate,
    mail_lang: &str,
) -> Result<(i64, String), BookError> {
    let now = req.now.naive_utc();
    for _ in 0..CODE_ATTEMPTS {
        let pickup_code = code::generate();
        let row = (
            reservations::user_id.eq(req.user_id),
            reservations::person_id.eq(holder.person_id),
            reservations::dependant_id.eq(holder.dependant_id()),
            reservations::window_id.eq(req.window_id),
            reservations::store_id.eq(window.store_id),
            reservations::quantity.eq(req.quantity.get()),
            reservations::period_start.eq(period_start),
            reservations::status.eq(req.hold.status()),
            reservations::offer_until.eq(req.hold.offer_until()),
            reservations::pickup_code.eq(&pickup_code),
            reservations::created_at.eq(now),
            reservations::updated_at.eq(now),
            reservations::request_id.eq(req.request_id.as_deref()),
            reservations::mail_lang.eq(mail_lang),
        );
        let inserted: Option<i64> = crate::on_each_backend!(tx.conn(), |c| {
            diesel::insert_into(reservations::table)
                .values(row)
                .on_conflict_do_nothing()
                .returning(reservations::id)
                .get_result(c)
                .optional()
        })?;
        if let Some(id) = inserted {
            return Ok((id, pickup_code));
        }
        if replay(tx, req)?.is_some() {
            return Err(BookError::Raced);
        }
    }
    Err(BookError::NoFreeCode)
}

/// Windows of the same store-day, other than the one asked for, that still
/// take bookings and have room.
fn open_windows(
    tx: &mut Tx<'_>,
    window: &Window,
    req: &Request,
    close_minutes: i32,
) -> QueryResult<Vec<OpenWindow>> {
    let rows: Vec<(i64, NaiveDateTime, NaiveDateTime, i32)> = pickup_windows::table
        .filter(pickup_windows::store_day_id.eq(window.store_day_id))
        .filter(pickup_windows::id.ne(req.window_id))
        .filter(pickup_windows::ends_at.gt(rules::earliest_bookable_end(close_minutes, req.now)))
        .filter(stock::window_remaining_sql().gt(0))
        .order(pickup_windows::starts_at)
        .select((
            pickup_windows::id,
            pickup_windows::starts_at,
            pickup_windows::ends_at,
            stock::window_remaining_sql(),
        ))
        .load(tx.conn())?;
    Ok(rows
        .into_iter()
        .map(|(id, starts_at, ends_at, remaining)| OpenWindow {
            id,
            starts_at,
            ends_at,
            remaining,
        })
        .collect())
}
