//! The integration tests: one binary, a module per feature, over real HTTP
//! against a fresh database per test (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set), and headless Chromium for the browser journeys.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod common;

mod account_probing;
mod accounts;
mod admin_audit;
mod admin_dashboard;
mod admin_pages;
mod admin_settings;
mod admin_stores;
mod admin_supply;
mod authorization;
mod booking_conformance;
mod booking_races;
mod booking_steps;
mod browser;
mod bulk_writes;
mod citizen_pages;
mod cli;
mod dependants;
mod draws;
mod expiry;
mod faults;
mod faults_clients;
mod faults_disk;
mod faults_held;
mod foundation;
mod hashing;
mod health;
mod hostile_input;
mod lanes;
mod layout;
mod mail;
mod map_browser;
mod nginx;
mod opendata;
mod pages;
mod pharmacy_pages;
mod pharmacy_pickup;
mod pharmacy_walk_in;
mod pickup_conformance;
mod public_pages;
mod quota;
mod rate_limit;
mod release;
mod reminders;
mod reservations;
mod schema;
mod staff_pages;
mod stock;
mod store_search;
mod surge;
mod waiting_room;
mod waitlist;
mod web_stack;
mod writer;
mod zh_tw;
