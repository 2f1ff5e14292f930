//! mask-reservation: an online reservation system for rationed public masks.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod i18n;
pub mod mail;
pub mod opendata;
pub mod pharmacy;
pub mod policy;
pub mod quota;
pub mod random;
pub mod rate_limit;
pub mod reservations;
pub mod settings;
pub mod state;
pub mod stock;
pub mod stores;
pub mod supply;
pub mod surge;
pub mod verify;
pub mod web;
