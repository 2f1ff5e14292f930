//! mask-reservation: an online reservation system for rationed public masks.

pub mod accounts;
pub mod app;
pub mod config;
pub mod db;
pub mod policy;
pub mod web;
