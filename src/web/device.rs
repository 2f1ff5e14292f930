//! The device cookie: a browser that has logged in to an account carries a
//! note, signed with a key of its own, naming that account and a random id for
//! the browser. Login failure limits treat such a browser apart (see
//! `accounts::service::login_buckets`), so that strangers failing on an
//! account cannot lock its owner out of a browser the owner has used before.
//! The cookie grants nothing else: it is not a session and proves no password.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, time::Duration};
use chrono::{DateTime, Utc};

use crate::web::signed;

pub const COOKIE_NAME: &str = "mr_device";

/// How long a browser is remembered after its last successful login.
pub const MAX_AGE_DAYS: i64 = 365;

/// The format's version, signed with the rest: a later format cannot be
/// mistaken for this one.
const VERSION: &str = "d1";

/// A browser that has logged in to `user_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user_id: i64,
    /// Random, per browser: the key of its own failure limit.
    pub device_id: String,
    /// When the cookie was issued (Unix seconds).
    pub issued_at: i64,
}

impl Device {
    /// A newly remembered browser.
    pub fn new(user_id: i64, now: DateTime<Utc>) -> Device {
        Device {
            user_id,
            device_id: crate::random::token(),
            issued_at: now.timestamp(),
        }
    }

    /// The same browser, remembered again from `now`.
    pub fn renewed(&self, now: DateTime<Utc>) -> Device {
        Device {
            issued_at: now.timestamp(),
            ..self.clone()
        }
    }

    fn payload(&self) -> String {
        format!(
            "{VERSION}.{}.{}.{}",
            self.user_id, self.device_id, self.issued_at
        )
    }

    /// `d1.USER.DEVICE.ISSUED.MAC`, the MAC an HMAC-SHA256 of the rest.
    pub fn encode(&self, key: &[u8]) -> String {
        signed::sign(key, &self.payload())
    }

    /// The device a cookie value names, if its signature is good and it is not
    /// older than [`MAX_AGE_DAYS`] at `now`.
    pub fn decode(value: &str, key: &[u8], now: DateTime<Utc>) -> Option<Device> {
        let payload = signed::verified(key, value)?;
        let mut parts = payload.split('.');
        let (Some(VERSION), Some(user), Some(device), Some(issued), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let device = Device {
            user_id: user.parse().ok()?,
            device_id: device.to_owned(),
            issued_at: issued.parse().ok()?,
        };
        let age = now.timestamp() - device.issued_at;
        (0..=MAX_AGE_DAYS * 86_400).contains(&age).then_some(device)
    }

    /// The device the request's cookie names, if it names this account.
    pub fn of_request(
        req: &HttpRequest,
        key: &[u8],
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Option<Device> {
        let cookie = req.cookie(COOKIE_NAME)?;
        Device::decode(cookie.value(), key, now).filter(|d| d.user_id == user_id)
    }

    /// The cookie that remembers this browser: long-lived, out of scripts' reach,
    /// not sent on cross-site posts, and only over HTTPS when `secure`.
    pub fn cookie(&self, key: &[u8], secure: bool) -> Cookie<'static> {
        signed::cookie(
            COOKIE_NAME,
            self.encode(key),
            Duration::days(MAX_AGE_DAYS),
            secure,
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    const KEY: &[u8] = &[7u8; 64];

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_583_971_200, 0).unwrap()
    }

    #[test]
    fn a_signed_cookie_reads_back_as_the_same_device() {
        let d = Device::new(42, now());
        assert_eq!(Device::decode(&d.encode(KEY), KEY, now()), Some(d.clone()));
        let later = now() + TimeDelta::days(MAX_AGE_DAYS);
        assert_eq!(Device::decode(&d.encode(KEY), KEY, later), Some(d));
    }

    #[test]
    fn each_browser_gets_its_own_id() {
        assert_ne!(
            Device::new(1, now()).device_id,
            Device::new(1, now()).device_id
        );
    }

    #[test]
    fn a_changed_cookie_or_another_key_is_refused() {
        let d = Device::new(42, now());
        let value = d.encode(KEY);
        let other_account = value.replacen(".42.", ".43.", 1);
        assert!(Device::decode(&other_account, KEY, now()).is_none());
        assert!(Device::decode(&value, &[8u8; 64], now()).is_none());
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(Device::decode(&flipped, KEY, now()).is_none());
        for junk in ["", ".", "d1.42", "a.b.c.d.e", "d1.x.y.z.!!!", "한국어.가"] {
            assert!(Device::decode(junk, KEY, now()).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn an_old_cookie_or_one_from_the_future_is_refused() {
        let d = Device::new(42, now());
        let too_late = now() + TimeDelta::days(MAX_AGE_DAYS) + TimeDelta::seconds(1);
        assert!(Device::decode(&d.encode(KEY), KEY, too_late).is_none());
        let early = now() - TimeDelta::seconds(1);
        assert!(Device::decode(&d.encode(KEY), KEY, early).is_none());
        let renewed = d.renewed(too_late);
        assert_eq!(renewed.device_id, d.device_id);
        assert!(Device::decode(&renewed.encode(KEY), KEY, too_late).is_some());
    }

    #[test]
    fn the_cookie_is_long_lived_http_only_lax_and_secure_when_asked() {
        let d = Device::new(42, now());
        let plain = d.cookie(KEY, false);
        assert_eq!(plain.name(), COOKIE_NAME);
        assert_eq!(plain.http_only(), Some(true));
        assert_eq!(plain.same_site(), Some(actix_web::cookie::SameSite::Lax));
        assert_eq!(plain.max_age(), Some(Duration::days(MAX_AGE_DAYS)));
        assert_eq!(plain.path(), Some("/"));
        assert_ne!(plain.secure(), Some(true));
        assert_eq!(d.cookie(KEY, true).secure(), Some(true));
    }
}
