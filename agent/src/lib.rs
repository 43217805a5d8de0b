//! `nird-agent`: the daemon that lives on every reconditioned PC.
//!
//! The binary (`main.rs`) only parses arguments and calls into this library.

pub mod apply;
#[path = "../../packaging/clap_fr.rs"]
pub mod clap_fr;
pub mod config;
pub mod daemon;
#[path = "../../packaging/generate_docs.rs"]
pub mod docs;
pub mod enroll;
pub mod inventory;
pub mod paths;
pub mod self_update;
pub mod server_inventory;
pub mod spool;
pub mod status;
pub mod transport;
pub mod trust;

/// `FILE.minisig`: where a signed file's detached signature lives.
pub fn trust_sig_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".minisig");
    s.into()
}
