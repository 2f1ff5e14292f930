//! Signed cookie values: `PAYLOAD.MAC`, the MAC an HMAC-SHA256 of the payload
//! under the caller's key, in URL-safe base64 without padding. What the
//! payload says and how long it is good for are the caller's (the device
//! cookie, the waiting-room ticket); this module only makes sure it is the
//! payload the server wrote.

use actix_web::cookie::{Cookie, SameSite, time::Duration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `payload` with its MAC under `key` appended after a dot. The payload may
/// contain dots itself: the MAC is whatever follows the last one.
pub fn sign(key: &[u8], payload: &str) -> String {
    let tag = mac(key, payload).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The payload of `value` if its MAC under `key` is good.
pub fn verified<'v>(key: &[u8], value: &'v str) -> Option<&'v str> {
    let (payload, tag) = value.rsplit_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    // Constant-time comparison: the tag is not guessable byte by byte.
    mac(key, payload).verify_slice(&tag).ok()?;
    Some(payload)
}

/// A cookie carrying a signed value: for the whole site, out of scripts'
/// reach, sent on same-site navigation and same-site form posts but not on
/// cross-site posts, over HTTPS only when `secure`.
pub fn cookie(
    name: &'static str,
    value: String,
    max_age: Duration,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .max_age(max_age)
        .same_site(SameSite::Lax)
        .http_only(true)
        .secure(secure)
        .finish()
}

fn mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    #[expect(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length; `new_from_slice` cannot fail for it"
    )]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("an HMAC key");
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[5u8; 64];

    #[test]
    fn a_signed_value_gives_back_its_payload_dots_and_all() {
        let value = sign(KEY, "v1.42.abc");
        assert_eq!(verified(KEY, &value), Some("v1.42.abc"));
    }

    #[test]
    fn a_changed_payload_another_key_or_junk_is_refused() {
        let value = sign(KEY, "v1.42.abc");
        assert_eq!(verified(&[6u8; 64], &value), None);
        assert_eq!(verified(KEY, &value.replacen("42", "43", 1)), None);
        assert_eq!(verified(KEY, &format!("{value}x")), None);
        for junk in ["", ".", "v1", "v1.42.abc.", "한.국", "v1.!!!"] {
            assert_eq!(verified(KEY, junk), None, "{junk:?}");
        }
    }
}
