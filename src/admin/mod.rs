//! Administration: the national dashboard, user accounts, and the audit log.

pub mod audit;
pub mod dashboard;
pub mod users;
