//! Administration: the national dashboard, user accounts, and the audit log.

pub mod accounts;
pub mod audit;
pub mod charts;
pub mod dashboard;
pub mod overview;
pub mod users;
