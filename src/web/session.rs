//! What the signed, encrypted session cookie holds: the CSRF token, once
//! logged in who the user is, and after a sign-up the address it was for.

use actix_session::Session;
use serde::{Deserialize, Serialize};

use crate::accounts::{Role, SessionClaim};

const CSRF_KEY: &str = "csrf";
const USER_KEY: &str = "user";
const FLASH_KEY: &str = "flash";
const SIGNUP_KEY: &str = "signup_email";

/// How long a login lasts, whatever the cookie says.
pub const MAX_SESSION_AGE_SECS: i64 = 12 * 3600;

/// The logged-in user as the session remembers them. Protected routes re-check
/// the account (disabled, session epoch) against the database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionUser {
    pub id: i64,
    pub role: Role,
    pub name: String,
    pub epoch: i64,
    /// When the user logged in (Unix seconds).
    pub issued_at: i64,
}

impl SessionUser {
    /// What the session says of its account, for checking against the row.
    pub fn claim(&self) -> SessionClaim {
        SessionClaim {
            role: self.role,
            epoch: self.epoch,
        }
    }

    /// The claims of a login happening at `now` (the app's clock).
    pub fn new(
        id: i64,
        role: Role,
        name: String,
        epoch: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> SessionUser {
        SessionUser {
            id,
            role,
            name,
            epoch,
            issued_at: now.timestamp(),
        }
    }

    /// Whether the login still holds at `now`: not older than
    /// [`MAX_SESSION_AGE_SECS`], and not issued in the future — a cookie from
    /// an instance whose clock ran ahead is not a login that has not begun
    /// yet, but one whose age cannot be known. Instances' clocks may differ
    /// by up to [`crate::clock::MAX_SKEW`].
    pub fn current_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let age = now.timestamp() - self.issued_at;
        (-crate::clock::MAX_SKEW.num_seconds()..=MAX_SESSION_AGE_SECS).contains(&age)
    }
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(CSRF_KEY) {
        return token;
    }
    let token = crate::random::token();
    if let Err(e) = session.insert(CSRF_KEY, &token) {
        tracing::warn!(error = %e, "could not store the CSRF token in the session");
    }
    token
}

/// The session's CSRF token if it already has one.
pub fn existing_csrf_token(session: &Session) -> Option<String> {
    session.get::<String>(CSRF_KEY).ok().flatten()
}

pub fn current_user(session: &Session) -> Option<SessionUser> {
    session.get::<SessionUser>(USER_KEY).ok().flatten()
}

/// Starts a logged-in session under a new cookie (no session fixation), with a
/// fresh CSRF token.
pub fn log_in(
    session: &Session,
    user: &SessionUser,
) -> Result<(), actix_session::SessionInsertError> {
    session.renew();
    session.remove(CSRF_KEY);
    session.remove(SIGNUP_KEY);
    session.insert(USER_KEY, user)
}

/// Forgets everything in the session and moves it to a new cookie, keeping it
/// usable for a flash message.
pub fn reset(session: &Session) {
    session.clear();
    session.renew();
}

/// Ends the session entirely.
pub fn log_out(session: &Session) {
    session.purge();
}

/// A one-time message shown on the next page (a locale key).
pub fn set_flash(session: &Session, key: &str) {
    if let Err(e) = session.insert(FLASH_KEY, key) {
        tracing::warn!(error = %e, "could not store a flash message");
    }
}

pub fn take_flash(session: &Session) -> Option<String> {
    session.remove_as::<String>(FLASH_KEY).and_then(Result::ok)
}

/// Remembers the address of a sign-up, for the page that says where the mail
/// went. Written the same way whatever the sign-up turned out to be, so the
/// cookie that comes back tells nothing either.
pub fn set_signup_address(
    session: &Session,
    email: &str,
) -> Result<(), actix_session::SessionInsertError> {
    session.insert(SIGNUP_KEY, email)
}

pub fn signup_address(session: &Session) -> Option<String> {
    session.get::<String>(SIGNUP_KEY).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_holds_for_its_age_and_never_from_the_future() {
        let at = chrono::DateTime::from_timestamp(1_764_540_000, 0).unwrap();
        let user = SessionUser::new(1, Role::Citizen, "김".into(), 0, at);
        let after = |secs| at + chrono::TimeDelta::seconds(secs);
        assert!(user.current_at(at));
        assert!(user.current_at(after(MAX_SESSION_AGE_SECS)));
        assert!(!user.current_at(after(MAX_SESSION_AGE_SECS + 1)));
        // Issued by a clock a little ahead: within the skew instances may have.
        assert!(user.current_at(after(-60)));
        // Issued three days ahead: refused.
        assert!(!user.current_at(after(-61)));
        assert!(!user.current_at(after(-3 * 86_400)));
    }
}
