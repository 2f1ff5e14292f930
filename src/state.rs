//! What every request shares: the database handle, the configuration, the
//! locale catalog, the keys derived from the one secret, and the request limits.
//! Route modules take it as `web::Data<AppState>`; only `app.rs` builds it.

use std::sync::Arc;

use actix_web::cookie::Key;
use hkdf::Hkdf;
use sha2::Sha256;
use tokio::sync::Notify;

use crate::accounts::hashing::HashPool;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::i18n::Catalog;
use crate::policy::{LoadError, Policy};
use crate::rate_limit::RateLimits;
use crate::settings::PolicyCache;
use crate::web::health::HealthCache;
use crate::web::waiting_room::WaitingRoom;

/// Shared by every request.
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub keys: Keys,
    /// Where links in e-mail point.
    pub base_url: String,
    pub rate_limits: RateLimits,
    /// The time that request limits are counted in.
    pub clock: Clock,
    /// Wakes the mail sender when a transaction has queued mail.
    pub mail_wake: Arc<Notify>,
    /// The rationing policy in force, kept in memory.
    pub policy: Arc<PolicyCache>,
    /// Where every password is hashed and checked, off the shared blocking pool.
    pub hashing: HashPool,
    /// The database probe's last answer, shared by `/healthz` and `/status`.
    pub health: HealthCache,
    /// The bound on held requests in flight, and the line beyond it.
    pub waiting_room: Arc<WaitingRoom>,
}

impl AppState {
    /// The policy in force: from memory, or read once if this instance has not
    /// read it yet (it started while the database was down).
    pub async fn policy(&self) -> Result<Arc<Policy>, DbError<LoadError>> {
        if let Some(policy) = self.policy.cached() {
            return Ok(policy);
        }
        let cache = self.policy.clone();
        self.db.run(move |conn| cache.refresh(conn)).await
    }
}

/// Keys derived from the one secret with HKDF-SHA256, one per purpose, so that
/// no two uses share key material.
#[derive(Clone)]
pub struct Keys {
    pub cookie: Key,
    pub national_id: Vec<u8>,
    /// Signs the device cookie (`web::device`).
    pub device: Vec<u8>,
    /// Signs the waiting-room ticket (`web::waiting_room::ticket`).
    pub waiting_room: Vec<u8>,
    /// Keys the pseudonyms a draw publishes its registrations under
    /// (`draws::entries::pseudonym`).
    pub draw_pseudonym: Vec<u8>,
}

impl Keys {
    pub fn derive(secret: &[u8]) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(Some(b"mask-reservation"), secret);
        let derive = |info: &str| -> [u8; 64] {
            let mut okm = [0u8; 64];
            #[expect(
                clippy::expect_used,
                reason = "HKDF-SHA256 gives up to 8160 bytes; 64 is always in range"
            )]
            hkdf.expand(info.as_bytes(), &mut okm)
                .expect("64 bytes is a valid HKDF-SHA256 length");
            okm
        };
        Keys {
            cookie: Key::from(&derive("cookie")),
            national_id: derive("national id hash").to_vec(),
            device: derive("device cookie").to_vec(),
            waiting_room: derive("waiting room ticket").to_vec(),
            draw_pseudonym: derive("draw pseudonym").to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn each_purpose_gets_its_own_key_and_the_same_secret_the_same_keys() {
        let a = Keys::derive(&[7u8; 64]);
        let b = Keys::derive(&[7u8; 64]);
        let other = Keys::derive(&[8u8; 64]);
        assert_eq!(a.national_id, b.national_id);
        assert_eq!(a.cookie.master(), b.cookie.master());
        assert_ne!(a.national_id, other.national_id);
        assert_ne!(&a.national_id[..], a.cookie.master());
        assert_eq!(a.device, b.device);
        assert_ne!(a.device, other.device);
        assert_ne!(a.device, a.national_id);
        assert_ne!(&a.device[..], a.cookie.master());
        assert_eq!(a.national_id.len(), 64);
        assert_eq!(a.waiting_room, b.waiting_room);
        assert_ne!(a.waiting_room, other.waiting_room);
        assert_ne!(a.waiting_room, a.device);
        assert_ne!(a.waiting_room, a.national_id);
    }
}
