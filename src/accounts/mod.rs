//! Accounts: who someone is (role, national ID, password) and how they prove it.

pub mod email;
pub mod hashing;
pub mod national_id;
pub mod password;
pub mod queries;
pub mod routes;
pub mod service;
pub mod tokens;

use serde::{Deserialize, Serialize};

/// Lower-case hexadecimal, for digests stored as text.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Citizen,
    Pharmacist,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Pharmacist => "pharmacist",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "citizen" => Some(Role::Citizen),
            "pharmacist" => Some(Role::Pharmacist),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The title of the page at [`Role::home_path`], which the navigation names too.
    pub fn home_title_key(self) -> &'static str {
        match self {
            Role::Citizen => "reservations.title",
            Role::Pharmacist => "pharmacy.title",
            Role::Admin => "admin.title",
        }
    }

    /// Where a user of this role lands after logging in (SPEC §2).
    pub fn home_path(self) -> &'static str {
        match self {
            Role::Citizen => "/reservations",
            Role::Pharmacist => "/pharmacy",
            Role::Admin => "/admin",
        }
    }
}

/// What a login session says of its account: the role, and the account's
/// session epoch when the session began (a password reset or a disable
/// raises the epoch and so ends every session). A session is never taken at
/// its word: wherever a request's account is read — the `CurrentUser`
/// extractor, or the booking transaction, which reads the account anyway —
/// the claim is held against the row with [`SessionClaim::holds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaim {
    pub role: Role,
    pub epoch: i64,
}

impl SessionClaim {
    /// A citizen's login before any password reset or disable: the epoch every
    /// account starts with. For tools and tests that book for accounts they
    /// made themselves.
    pub const FIRST_CITIZEN_LOGIN: SessionClaim = SessionClaim {
        role: Role::Citizen,
        epoch: 0,
    };

    /// Whether the account as the database has it now (`role`, `disabled`,
    /// `epoch`) still stands behind the session.
    pub fn holds(&self, role: &str, disabled: bool, epoch: i64) -> bool {
        !disabled && epoch == self.epoch && Role::parse(role) == Some(self.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_only_for_its_enabled_account_of_the_same_role_and_epoch() {
        let claim = SessionClaim {
            role: Role::Citizen,
            epoch: 3,
        };
        assert!(claim.holds("citizen", false, 3));
        assert!(!claim.holds("citizen", true, 3), "disabled since");
        assert!(!claim.holds("citizen", false, 4), "password reset since");
        assert!(!claim.holds("pharmacist", false, 3), "another role");
        assert!(!claim.holds("mayor", false, 3), "no role at all");
    }
}
