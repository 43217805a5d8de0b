//! `nird-server`: the central server, its admin CLI and the profile signing tools.
//!
//! The binary (`main.rs`) only parses arguments; the work lives here:
//! [`store`] keeps the data (SQLite behind the [`store::Store`] interface),
//! [`http`] serves the agent API over TLS, [`init`], [`admin`] and
//! [`publish`] are the operator's commands, [`tls`] makes and loads
//! certificates, [`signing`] and [`keyring_tool`] hold the maintainers' offline
//! tools, [`trust`] the published keyring and catalogue index.

pub mod admin;
pub mod audit;
pub mod auth;
#[path = "../../packaging/clap_fr.rs"]
pub mod clap_fr;
pub mod cli;
pub mod config_file;
pub mod data_dir;
#[path = "../../packaging/generate_docs.rs"]
pub mod docs;
pub mod echo;
pub mod fs_util;
pub mod http;
pub mod init;
pub mod keyring_tool;
pub mod kit;
pub mod publish;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod systemd;
pub mod tls;
pub mod trust;
pub mod web;
