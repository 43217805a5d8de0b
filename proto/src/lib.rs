//! `nird-proto`: the shared language of nird-fleet.
//!
//! Architecture invariant: this crate does no I/O and no async. Everything
//! here is a pure function of its inputs (bytes, a clock value given by the
//! caller), so it cannot fail for environmental reasons and is cheap to test.

pub mod api;
pub mod glpi;
pub mod hash;
pub mod index;
pub mod inventory;
pub mod keyring;
pub mod kit;
pub mod profile;
pub mod school;
pub mod signature;
pub mod toml_fr;
pub mod uai;
