//! `nird-agent`: the daemon that lives on every reconditioned PC.
//!
//! The binary (`main.rs`) only parses arguments and calls into this library.

pub mod inventory;
pub mod paths;
