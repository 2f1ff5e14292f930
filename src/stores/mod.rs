//! Stores: pharmacies, post offices and Nonghyup marts, each known by its
//! 8-digit code.

pub mod import;
