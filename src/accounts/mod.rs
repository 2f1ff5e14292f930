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
