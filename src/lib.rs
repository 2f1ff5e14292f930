//! mask-reservation: an online reservation system for rationed public masks.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod config;
pub mod db;
pub mod demo;
pub mod mail;
pub mod pharmacy;
pub mod policy;
pub mod reservations;
pub mod settings;
pub mod stores;
pub mod supply;
pub mod verify;
pub mod web;
