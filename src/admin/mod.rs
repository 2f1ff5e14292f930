//! Administration: the national dashboard, stores, daily supply and window
//! capacities, user accounts, the policy settings, and the audit log.

pub mod accounts;
pub mod audit_page;
pub mod audit_words;
pub mod charts;
pub mod dashboard;
pub mod overview;
pub mod policy_changes;
pub mod settings;
pub mod stores;
pub mod supply;
pub mod users;
pub mod windows;
