//! Test support shared by several of the agent's test crates (include with
//! `mod support;` from a file in `agent/tests/`, or with
//! `#[path = "…/support/mod.rs"]` from elsewhere).
#![allow(dead_code)]

pub mod chroot;
pub mod private_bus;
