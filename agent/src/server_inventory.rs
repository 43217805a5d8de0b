//! The copy of the inventory document the server acknowledged last
//! (`state/server-inventory.json`), so that the next change travels as a
//! delta against it ([`nird_proto::inventory::delta`]) instead of the whole
//! document: a 20-package upgrade costs about 1 KB instead of 13 KB.
//!
//! Only an optimisation: a missing, unreadable or stale copy (its hash is
//! not the one the server holds) just means the next change is sent whole,
//! and a server that does not hold the base asks for the whole document.

use crate::paths::AgentPaths;
use crate::spool::{SpooledInventory, write_atomic};

/// The copy, if present, readable and matching `server_hash`.
pub fn load(paths: &AgentPaths, server_hash: Option<&str>) -> Option<SpooledInventory> {
    let server_hash = server_hash?;
    let bytes = std::fs::read(paths.server_inventory_file()).ok()?;
    let copy: SpooledInventory = serde_json::from_slice(&bytes).ok()?;
    // Recomputed: a damaged file must not become the base of a delta.
    let actual = nird_proto::hash::content_hash(&copy.inventory).ok()?;
    (copy.hash == server_hash && actual == server_hash).then_some(copy)
}

/// Records `document` (hash `hash`) as what the server holds. Best effort:
/// a failure is logged, the next change then travels whole.
pub fn save(paths: &AgentPaths, hash: &str, document: &serde_json::Value) {
    let copy = SpooledInventory {
        hash: hash.to_owned(),
        inventory: document.clone(),
    };
    let result = serde_json::to_vec(&copy)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_atomic(&paths.server_inventory_file(), &bytes, 0o600));
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot keep the server's inventory copy; next change goes whole");
    }
}

/// Forgets the copy (the server does not hold it).
pub fn forget(paths: &AgentPaths) {
    match std::fs::remove_file(paths.server_inventory_file()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, "cannot remove the server's inventory copy"),
    }
}
