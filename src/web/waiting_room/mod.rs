//! The fair waiting room: a bound on the work in flight on the pages a rush
//! comes for, and a line, kept in the visitor's browser, for everyone beyond it.
//!
//! **What is held.** `GET`/`POST /login`, `GET /stores/{code}` and
//! `POST /reservations` — the citizen's path to a reservation. Everything else
//! (the pharmacy's pages, admin, `/healthz`, `/metrics`, open data, static
//! files, a citizen's own reservations) passes without a look: pickups at the
//! counter and the published stock must stay answerable during the rush. The
//! middleware is the innermost layer of the page stack and compares method and
//! path itself, so a request that is not held costs two string comparisons.
//!
//! **The bound.** At most `WAITING_ROOM_CAPACITY` held requests are in flight
//! on an instance (a counter under a mutex, taken without waiting: nobody
//! queues inside the server, where a queue costs memory and makes every
//! admitted request slow). A request beyond it is answered at once with the
//! waiting page: `503`, `Retry-After`, in the visitor's language, "you are
//! number N, about M minutes". `0` turns the room off.
//!
//! **The ticket** ([`ticket`]) is a cookie holding the time of the first
//! refused request and a random nonce, signed with a key derived from the
//! server secret: every instance sharing `SECRET_KEY` reads it and puts its
//! holder at the same place, first come first served by ticket time. It
//! expires 30 minutes after issue. It is kept after admission, so a citizen
//! who got through to the store page is not sent to the back for the booking
//! that follows; one ticket holds one slot at a time, so a ticket copied into
//! many clients buys them no more than one browser has.
//!
//! **The line** ([`line`]) is in memory, per instance: the tickets seen,
//! ordered by time, dropped when their holder stops coming back (three of
//! their waits) or when the line is longer than [`line::MAX_WAITING`] (the
//! youngest go: they are told they are at the back). A ticket issued on
//! another instance is put in at its time. Holders are let in from the head:
//! those within the first second of service (at least the capacity) take any
//! free slot; a new visitor without a ticket is let in only when the line is
//! that short. A slot left free for two seconds while holders are waiting
//! (those at the head have walked away) goes to whoever asks next, and so do
//! the slots after it until someone from the head takes one again, so absent
//! holders never keep the server idle and, when the rush ends, everyone is let
//! in within a couple of seconds. The limit: each instance orders the holders *it* sees; with a
//! balancer that spreads one holder's visits over instances, each instance
//! still lets older tickets first, but two instances' lines are not one line.
//!
//! **Retry-After** is a second near the head; further back it grows with the
//! position over the measured speed of the line (completions per second while
//! somebody waits), so a holder comes back about halfway to their turn, at
//! most every 30 seconds.
//!
//! **Floods get 429.** One address asking for more than
//! [`line::NEW_TICKETS_PER_CLIENT_PER_SEC`] new tickets a second (a script
//! throwing its cookie away), or one ticket coming back before half its wait
//! three times running. Counted in memory, not in the database: the database
//! is what is overloaded.
//!
//! **The page tries again by itself** through `static/js/waiting-room.js`
//! when `Retry-After` is over, and says so; a button stops it. Not a
//! `<meta http-equiv="refresh">`: a page that moves on by itself must let its
//! reader stop it (WCAG 2.2.1; axe's `meta-refresh` rule fails the page), and a
//! refresh would turn a kept post into a `GET`. Without JavaScript the big
//! "try again" button does it by hand; a holder who is slow to press it drops
//! out of the line in memory but not out of their place: the ticket still
//! carries its time and is put back at it.
//!
//! **The page keeps the citizen's choice.** For `POST /reservations` it
//! carries the window, quantity and request id as hidden fields of the form
//! the script (or the button) sends again; the request id makes the repeated
//! form safe (SPEC: a resubmitted form returns the first reservation). For
//! `POST /login` the password is *not* written into the page: it goes back to
//! the login form, keeping the place in line, and asks for the password again
//! there.

pub mod countdown;
pub mod line;
pub mod page;
pub mod ticket;

use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use rand::RngCore;

use crate::clock::Clock;
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::limits::client_ip;

pub use line::{Outcome, Wait};
pub use ticket::Ticket;

/// The counters of the room, registered by `web::metrics`.
#[derive(Clone)]
pub struct RoomMetrics {
    pub in_flight: prometheus::IntGauge,
    pub waiting: prometheus::IntGauge,
    pub admitted: prometheus::IntCounter,
    pub told_to_wait: prometheus::IntCounter,
    pub too_many: prometheus::IntCounter,
}

/// One instance's room: the line behind a mutex (each visit holds it for a
/// few microseconds), the clock it counts time by, and its counters.
pub struct WaitingRoom {
    capacity: usize,
    line: Mutex<Line>,
    clock: Clock,
    metrics: Option<RoomMetrics>,
}

use line::Line;

/// What a held request gets.
pub enum Pass {
    /// In: the slot is given back when this is dropped.
    Admitted(Slot),
    Wait(Wait),
    TooMany {
        retry_after_secs: u64,
    },
}

/// A slot in flight; dropping it (the request answered, or abandoned by its
/// client) gives it back.
pub struct Slot {
    room: Arc<WaitingRoom>,
    ticket: Option<Ticket>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let now = self.room.now_ms();
        let mut line = self.room.lock();
        line.leave(self.ticket, now);
        self.room.observe(&line);
    }
}

impl WaitingRoom {
    /// A room letting `capacity` held requests in at once (`0`: no room).
    pub fn new(capacity: usize, clock: Clock, metrics: Option<RoomMetrics>) -> WaitingRoom {
        WaitingRoom {
            capacity,
            line: Mutex::new(Line::new(capacity)),
            clock,
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        // The line holds no invariant a panic half-way could break badly
        // enough to stop serving; a poisoned lock is used as it is.
        self.line
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn observe(&self, line: &Line) {
        if let Some(m) = &self.metrics {
            m.in_flight.set(line.in_flight() as i64);
            m.waiting.set(line.waiting() as i64);
        }
    }

    /// Takes a slot as a visitor without a ticket would, if one is free and
    /// nobody would be passed (what the room does for each new visitor; an
    /// operator's tool or a test holds the room full with it).
    pub fn hold(self: &Arc<Self>) -> Option<Slot> {
        let now = self.now_ms();
        let mut line = self.lock();
        let taken = line.hold(now);
        self.observe(&line);
        taken.then(|| Slot {
            room: self.clone(),
            ticket: None,
        })
    }

    /// A held request arrives with the ticket it carries (if valid), from
    /// `client` (its address).
    pub fn arrive(self: &Arc<Self>, ticket: Option<Ticket>, client: &str) -> Pass {
        let now = self.now_ms();
        let nonce = rand::rng().next_u64();
        let outcome = {
            let mut line = self.lock();
            let outcome = line.arrive(ticket, client, now, nonce);
            self.observe(&line);
            outcome
        };
        let m = self.metrics.as_ref();
        match outcome {
            Outcome::Admit { ticket } => {
                if let Some(m) = m {
                    m.admitted.inc();
                }
                Pass::Admitted(Slot {
                    room: self.clone(),
                    ticket,
                })
            }
            Outcome::Wait(w) => {
                if let Some(m) = m {
                    m.told_to_wait.inc();
                }
                Pass::Wait(w)
            }
            Outcome::TooMany { retry_after_secs } => {
                if let Some(m) = m {
                    m.too_many.inc();
                }
                Pass::TooMany { retry_after_secs }
            }
        }
    }

    /// Whether the room is full or has a line: the rush is on, and work that
    /// can wait (mail) should (`mail::sender::Sender::yielding_to`).
    pub fn crowded(&self) -> bool {
        if !self.enabled() {
            return false;
        }
        let line = self.lock();
        line.waiting() > 0 || line.in_flight() >= self.capacity
    }

    /// Requests in flight and tickets waiting, as the line stands.
    pub fn counts(&self) -> (usize, usize) {
        let line = self.lock();
        (line.in_flight(), line.waiting())
    }
}

/// The requests the room holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    LoginForm,
    Login,
    StorePage,
    Reservation,
}

/// Whether the room holds this request.
pub fn held(method: &Method, path: &str) -> Option<Held> {
    match (method, path) {
        (&Method::GET, "/login") => Some(Held::LoginForm),
        (&Method::POST, "/login") => Some(Held::Login),
        (&Method::POST, "/reservations") => Some(Held::Reservation),
        (&Method::GET, p) => p
            .strip_prefix("/stores/")
            .filter(|code| !code.is_empty() && !code.contains('/'))
            .map(|_| Held::StorePage),
        _ => None,
    }
}

/// The middleware, around every page: held requests pass the room.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    // Only a held request, with the room on, needs the state: every other
    // page passes straight through.
    let state = held(req.method(), req.path())
        .and_then(|held| Some((held, req.app_data::<web::Data<AppState>>()?.clone())));
    let Some((held, state)) = state.filter(|(_, s)| s.waiting_room.enabled()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let room = &state.waiting_room;
    let key = &state.keys.waiting_room;
    let ticket = req
        .cookie(ticket::COOKIE_NAME)
        .and_then(|c| Ticket::decode(c.value(), key, state.clock.now().timestamp_millis()));
    let client = client_ip(req.request(), &state.config.trusted_proxies);
    match room.arrive(ticket, &client) {
        Pass::Admitted(slot) => {
            let res = next.call(req).await;
            drop(slot);
            res.map(ServiceResponse::map_into_left_body)
        }
        Pass::TooMany { retry_after_secs } => {
            let res = AppError::TooManyRequests { retry_after_secs }.error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
        Pass::Wait(wait) => {
            let res = page::waiting_page(&mut req, &state, held, &wait).await;
            let res = match res {
                Ok(res) => res,
                Err(e) => e.error_response(),
            };
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_room_is_crowded_and_no_room_never_is() {
        let room = Arc::new(WaitingRoom::new(1, Clock::system(), None));
        assert!(!room.crowded());
        let slot = room.hold();
        assert!(slot.is_some());
        assert!(room.crowded());
        drop(slot);
        assert!(!room.crowded());
        assert!(!Arc::new(WaitingRoom::new(0, Clock::system(), None)).crowded());
    }

    #[test]
    fn only_the_rush_pages_are_held() {
        assert_eq!(held(&Method::GET, "/login"), Some(Held::LoginForm));
        assert_eq!(held(&Method::POST, "/login"), Some(Held::Login));
        assert_eq!(
            held(&Method::GET, "/stores/11800001"),
            Some(Held::StorePage)
        );
        assert_eq!(
            held(&Method::POST, "/reservations"),
            Some(Held::Reservation)
        );
        for (method, path) in [
            (Method::GET, "/stores"),
            (Method::GET, "/stores/"),
            (Method::GET, "/stores/1/x"),
            (Method::GET, "/reservations"),
            (Method::GET, "/reservations/1"),
            (Method::POST, "/reservations/1/cancel"),
            (Method::GET, "/pharmacy"),
            (Method::POST, "/pharmacy/pickup"),
            (Method::GET, "/healthz"),
            (Method::GET, "/metrics"),
            (Method::GET, "/corona19-masks/v1/stores/json"),
            (Method::POST, "/logout"),
            (Method::GET, "/"),
        ] {
            assert_eq!(held(&method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let room = Arc::new(WaitingRoom::new(1, Clock::system(), None));
        let slot = room.hold().unwrap();
        assert!(room.hold().is_none());
        assert!(matches!(room.arrive(None, "a"), Pass::Wait(_)));
        drop(slot);
        assert_eq!(room.counts(), (0, 1));
    }
}
