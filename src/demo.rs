//! Demo data for a first local run: twenty Seoul stores with a week of supply,
//! a pharmacist for each, an administrator and a citizen. Passwords are random
//! and printed once.

use chrono::Duration;
use diesel::prelude::*;

use crate::accounts::Role;
use crate::accounts::national_id::{NationalId, with_check_digit};
use crate::accounts::password::{self, NewPassword};
use crate::accounts::queries::{NewUser, find_or_insert_person, insert_user};
use crate::db::schema::{stores, users};
use crate::db::{AsRetryable, DbConnection, is_retryable, write_tx};
use crate::policy::Policy;
use crate::reservations::rules;
use crate::stores::import::{insert_all, parse_csv};
use crate::supply::allocation::allocate_new_day;

pub const STORES_CSV: &str = include_str!("../assets/demo/stores.csv");

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const CITIZEN_EMAIL: &str = "citizen@example.com";

/// The demo citizen's resident registration number (valid, fictitious).
pub fn citizen_national_id() -> String {
    with_check_digit("850101123456").unwrap_or_default()
}

pub fn pharmacist_email(store_code: &str) -> String {
    format!("pharmacy.{store_code}@example.com")
}

/// What was created, with the only copy of the passwords.
pub struct DemoCredentials {
    pub admin_password: String,
    pub pharmacist_password: String,
    pub citizen_password: String,
    pub first_store_code: String,
}

impl std::fmt::Display for DemoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Demo accounts (shown once; passwords are not stored in clear):"
        )?;
        writeln!(
            f,
            "  administrator  {ADMIN_EMAIL:<36} {}",
            self.admin_password
        )?;
        writeln!(
            f,
            "  citizen        {CITIZEN_EMAIL:<36} {}",
            self.citizen_password
        )?;
        writeln!(
            f,
            "  pharmacists    {:<36} {}",
            pharmacist_email(&self.first_store_code),
            self.pharmacist_password
        )?;
        write!(
            f,
            "                 (one per store: pharmacy.<store code>@example.com, same password)"
        )
    }
}

/// Whether the database has neither users nor stores.
pub fn is_empty(conn: &mut DbConnection) -> QueryResult<bool> {
    let users: i64 = users::table.count().get_result(conn)?;
    let stores: i64 = stores::table.count().get_result(conn)?;
    Ok(users == 0 && stores == 0)
}

/// Seeds the demo data in one transaction. Refuses if the database already has
/// users or stores, so it never mixes with real data.
/// Why the demo data could not be seeded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("demo stores: {0}")]
    Stores(String),
    #[error("demo password: {0}")]
    Password(String),
    #[error("demo national id: {0}")]
    NationalId(String),
    #[error(transparent)]
    Policy(#[from] crate::policy::LoadError),
    #[error("database error")]
    Db(#[from] diesel::result::Error),
}

impl AsRetryable for SeedError {
    fn is_retryable(&self) -> bool {
        matches!(self, SeedError::Db(e) if is_retryable(e))
    }
}

pub fn seed(conn: &mut DbConnection, id_key: &[u8]) -> Result<Option<DemoCredentials>, SeedError> {
    if !is_empty(conn)? {
        return Ok(None);
    }
    let rows = parse_csv(STORES_CSV.as_bytes()).map_err(|e| SeedError::Stores(format!("{e:?}")))?;
    let creds = DemoCredentials {
        admin_password: random_password(),
        pharmacist_password: random_password(),
        citizen_password: random_password(),
        first_store_code: rows.first().map(|r| r.code.clone()).unwrap_or_default(),
    };
    let hash = |p: &str| -> Result<String, SeedError> {
        let password = NewPassword::parse(p).map_err(|e| SeedError::Password(e.to_string()))?;
        password::hash(&password).map_err(|e| SeedError::Password(e.to_string()))
    };
    let admin_hash = hash(&creds.admin_password)?;
    let citizen_hash = hash(&creds.citizen_password)?;
    // One hash per pharmacist: each account has its own salt.
    let pharmacist_hashes = rows
        .iter()
        .map(|_| hash(&creds.pharmacist_password))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = Policy::load(conn)?;
    let today = rules::today(&policy, chrono::Utc::now());
    let national_id = NationalId::parse(&citizen_national_id(), today)
        .map_err(|e| SeedError::NationalId(e.to_string()))?;

    write_tx(conn, |tx| -> Result<(), SeedError> {
        let store_ids = insert_all(tx, &rows)?;
        for (i, (store_id, row)) in store_ids.iter().zip(&rows).enumerate() {
            for offset in 0..7 {
                let supply = demo_supply(i, offset);
                allocate_new_day(
                    tx,
                    &policy,
                    *store_id,
                    today + Duration::days(offset),
                    supply,
                    None,
                )?;
            }
            insert_user(
                tx,
                &NewUser {
                    role: Role::Pharmacist,
                    email: &pharmacist_email(&row.code),
                    name: &format!("{} 약사", row.name),
                    password_hash: &pharmacist_hashes[i],
                    person_id: None,
                    store_id: Some(*store_id),
                    email_verified: true,
                },
            )?;
        }
        insert_user(
            tx,
            &NewUser {
                role: Role::Admin,
                email: ADMIN_EMAIL,
                name: "관리자",
                password_hash: &admin_hash,
                person_id: None,
                store_id: None,
                email_verified: true,
            },
        )?;
        let person = find_or_insert_person(
            tx,
            &national_id.keyed_hash(id_key),
            national_id.birth_date(),
            &national_id.masked(),
        )?;
        insert_user(
            tx,
            &NewUser {
                role: Role::Citizen,
                email: CITIZEN_EMAIL,
                name: "홍길동",
                password_hash: &citizen_hash,
                person_id: Some(person),
                store_id: None,
                email_verified: true,
            },
        )?;
        Ok(())
    })?;
    Ok(Some(creds))
}

/// Varied supply so the demo shows every status: plenty, some, few.
fn demo_supply(store_index: usize, day_offset: i64) -> i32 {
    const SUPPLIES: [i32; 8] = [250, 120, 60, 400, 25, 180, 90, 300];
    let i = (store_index + usize::try_from(day_offset).unwrap_or(0)) % SUPPLIES.len();
    SUPPLIES[i]
}

fn random_password() -> String {
    crate::random::token()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect()
}
