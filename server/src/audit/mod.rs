//! The collectivités' audit: what their reused machines are, what Windows
//! 11 would have done with them, how long their life was extended and what
//! that saved, in figures each traceable to the machines behind it.
//!
//! ```text
//!  check-in with a new inventory ──► facts::from_document ──► audit_facts row
//!  (store, same transaction)          (pure; Windows 11 verdict recomputed)
//!  serve startup ──► backfill: machines without facts, or with facts from
//!                    another server version, get them from their latest inventory
//!  /audit, exports, API ──► AuditStore (SQL over audit_facts + machines + schools,
//!                           scoped) ──► figures + [`co2`] method
//! ```
//!
//! **Invariants:** audit pages, exports and the API read only the
//! `audit_facts` columns (never an inventory document), except the GLPI
//! export which renders each machine's latest inventory with
//! [`nird_proto::glpi::to_glpi`]; every query takes the reader's scope, so
//! a territory's totals are the sum of its schools' and nothing outside it
//! is ever counted or exported.

pub mod co2;
pub mod cpu;
pub mod facts;

use std::sync::Arc;

use crate::store::Store;

/// Which computation of the facts a row holds: rows written by another
/// server version are recomputed at startup, so a server upgrade (a newer
/// Windows 11 processor list, a better CPU table) refreshes every machine.
pub fn facts_version() -> String {
    format!("{}/2", env!("CARGO_PKG_VERSION"))
}

/// Machines (re)computed per batch by [`backfill`].
const BACKFILL_BATCH: u32 = 200;

/// Computes the facts of every machine that has none, or has facts from
/// another server version, from its latest inventory (read through
/// [`Store::latest_inventory`]), in batches so check-ins keep flowing.
/// Returns the number of machines written.
pub async fn backfill(store: Arc<dyn Store>) -> u64 {
    let version = facts_version();
    let mut written = 0u64;
    loop {
        let ids = match store.audit_facts_stale(&version, BACKFILL_BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "audit backfill: listing machines failed");
                return written;
            }
        };
        if ids.is_empty() {
            break;
        }
        let mut batch = Vec::with_capacity(ids.len());
        for id in ids {
            let text = match store.latest_inventory(&id).await {
                Ok(t) => t.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "audit backfill: reading an inventory failed");
                    return written;
                }
            };
            batch.push((id, facts::from_document(&text)));
        }
        let n = batch.len() as u64;
        if let Err(e) = store.record_audit_facts(version.clone(), batch).await {
            tracing::warn!(error = %e, "audit backfill: writing facts failed");
            return written;
        }
        written += n;
    }
    if written > 0 {
        tracing::info!(
            machines = written,
            "audit facts computed for existing machines"
        );
    }
    written
}
