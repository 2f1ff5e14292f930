//! The waiting-room ticket: when its holder first asked (milliseconds since
//! the epoch) and a random nonce, signed with a key derived from the server
//! secret. Any instance sharing `SECRET_KEY` reads it back, so the holder's
//! place in line is the same wherever the load balancer sends them. The ticket
//! names no person, session or address: it only says "this browser came then".

use actix_web::cookie::{Cookie, time::Duration};
use rand::RngCore;

use crate::web::signed;

pub const COOKIE_NAME: &str = "mr_ticket";

/// How long a ticket keeps its place after it was issued. Long enough for the
/// worst morning's line; after it, the holder gets a new ticket at the back.
pub const LIFETIME_MS: i64 = 30 * 60 * 1000;

/// How far in the future an issue time may lie and still be believed: the
/// clocks of two instances differ a little, never by a minute.
pub const MAX_SKEW_MS: i64 = 60 * 1000;

/// The format's version, signed with the rest.
const VERSION: &str = "w1";

/// A place in line: ordered by issue time, then by nonce (two tickets issued
/// in the same millisecond on different instances still have one order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    pub issued_ms: i64,
    pub nonce: u64,
}

impl Ticket {
    /// A new ticket issued at `now_ms`.
    pub fn issue(now_ms: i64) -> Ticket {
        Ticket {
            issued_ms: now_ms,
            nonce: rand::rng().next_u64(),
        }
    }

    fn payload(&self) -> String {
        format!("{VERSION}.{}.{:016x}", self.issued_ms, self.nonce)
    }

    /// `w1.ISSUED.NONCE.MAC`, the MAC an HMAC-SHA256 of the rest.
    pub fn encode(&self, key: &[u8]) -> String {
        signed::sign(key, &self.payload())
    }

    /// The ticket a cookie value holds, if its signature is good and it is
    /// neither expired nor from the future at `now_ms`.
    pub fn decode(value: &str, key: &[u8], now_ms: i64) -> Option<Ticket> {
        let payload = signed::verified(key, value)?;
        let mut parts = payload.split('.');
        let (Some(VERSION), Some(issued), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let ticket = Ticket {
            issued_ms: issued.parse().ok()?,
            nonce: u64::from_str_radix(nonce, 16).ok()?,
        };
        let age = now_ms.checked_sub(ticket.issued_ms)?;
        (1 - MAX_SKEW_MS..LIFETIME_MS)
            .contains(&age)
            .then_some(ticket)
    }

    /// The cookie that keeps the place: it lives as long as the ticket, out of
    /// scripts' reach, sent on same-site navigation (the refresh) and on the
    /// same-site form posts the waiting page repeats.
    pub fn cookie(&self, key: &[u8], secure: bool) -> Cookie<'static> {
        signed::cookie(
            COOKIE_NAME,
            self.encode(key),
            Duration::milliseconds(LIFETIME_MS),
            secure,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[3u8; 64];
    const NOW: i64 = 1_583_971_200_000;

    #[test]
    fn a_signed_ticket_reads_back_until_it_expires() {
        let t = Ticket::issue(NOW);
        let value = t.encode(KEY);
        assert_eq!(Ticket::decode(&value, KEY, NOW), Some(t));
        assert_eq!(Ticket::decode(&value, KEY, NOW + LIFETIME_MS - 1), Some(t));
        assert_eq!(Ticket::decode(&value, KEY, NOW + LIFETIME_MS), None);
    }

    #[test]
    fn a_ticket_from_the_future_is_believed_only_within_the_clock_skew() {
        let t = Ticket::issue(NOW);
        let value = t.encode(KEY);
        assert_eq!(Ticket::decode(&value, KEY, NOW - MAX_SKEW_MS + 1), Some(t));
        assert_eq!(Ticket::decode(&value, KEY, NOW - MAX_SKEW_MS), None);
    }

    #[test]
    fn a_changed_ticket_or_another_key_is_refused() {
        let t = Ticket {
            issued_ms: NOW,
            nonce: 0xabcd,
        };
        let value = t.encode(KEY);
        assert!(Ticket::decode(&value, &[4u8; 64], NOW).is_none());
        let earlier = value.replacen(&NOW.to_string(), &(NOW - 1000).to_string(), 1);
        assert!(Ticket::decode(&earlier, KEY, NOW).is_none());
        let other_nonce = value.replacen("000000000000abcd", "000000000000abce", 1);
        assert!(Ticket::decode(&other_nonce, KEY, NOW).is_none());
        for junk in ["", ".", "w1.1.2", "w1.a.b.c", "w1.1.2.3.4", "한.국"] {
            assert!(Ticket::decode(junk, KEY, NOW).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn tickets_are_ordered_by_issue_time_then_nonce() {
        let a = Ticket {
            issued_ms: NOW,
            nonce: 9,
        };
        let b = Ticket {
            issued_ms: NOW + 1,
            nonce: 1,
        };
        let c = Ticket {
            issued_ms: NOW + 1,
            nonce: 2,
        };
        assert!(a < b && b < c);
        assert_ne!(Ticket::issue(NOW).nonce, Ticket::issue(NOW).nonce);
    }

    #[test]
    fn the_cookie_lives_as_long_as_the_ticket_and_is_http_only() {
        let c = Ticket::issue(NOW).cookie(KEY, true);
        assert_eq!(c.name(), COOKIE_NAME);
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.same_site(), Some(actix_web::cookie::SameSite::Lax));
        assert_eq!(c.max_age(), Some(Duration::minutes(30)));
    }
}
