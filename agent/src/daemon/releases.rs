//! The daemon's side of the apply engine: releases fetched from the server
//! ([`ServerReleases`], a [`ReleaseSource`] over the pinned HTTPS transport)
//! and the decision of *when* to apply ([`EngineApplier`]).
//!
//! When to apply: when some assigned release is not applied yet and either
//! the assignment changed since the last attempt, or the last attempt left
//! it in a non-final state (deferred to a maintenance window, failed, or
//! could not be fetched). A refused release (bad signature, rollback,
//! expired...) is final for that assignment: it is reported once, not at
//! every check-in; a new version assigned tries again. A deferred apply that
//! is still deferred, or a failure that repeats itself, is retried at every
//! check-in but not reported again.
//!
//! Reads from the server are bounded: a profile by `MAX_PROFILE_BYTES`, a
//! signature by `MAX_SIGNATURE_BYTES`, a blob by its pinned size (and
//! verified before it is kept in the cache). A stop request (SIGTERM) is
//! checked before each download: the cycle then applies nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use nird_proto::api::{ApplyOutcome, ApplyReport, ProfileRef};
use nird_proto::hash::is_sha256_hex;
use nird_proto::profile::{BlobRef, MAX_BLOB_BYTES, MAX_PROFILE_BYTES, is_slug};

use super::Applier;
use crate::apply::source::{MAX_SIGNATURE_BYTES, verified_blob};
use crate::apply::state::AppliedState;
use crate::apply::{ApplyOptions, ReleaseSource, SourceError, apply_assigned};
use crate::config::AgentConfig;
use crate::paths::AgentPaths;
use crate::status::{ApplyMemo, AttemptOutcome};
use crate::transport::{Transport, TransportError};

/// Releases and blobs from the server, with the machine's credential.
pub struct ServerReleases<'a> {
    /// The pinned HTTPS transport (or a test wrapper around it).
    pub transport: &'a dyn Transport,
    /// Where fetched bytes are also kept (`paths.cache_dir()`, the layout of
    /// `apply --from`), so `nird-agent plan` / `apply` work offline and the
    /// inventory knows which packages the profiles name. The bytes are not
    /// trusted there: every reader verifies them again. `None`: no copy.
    pub cache: Option<&'a std::path::Path>,
    /// Set when the agent is asked to stop: no download starts after it.
    pub cancel: Option<&'a AtomicBool>,
}

impl ServerReleases<'_> {
    /// Refuses to start a download once a stop was requested.
    fn check_cancel(&self, what: &str) -> Result<(), SourceError> {
        if self.cancelled() {
            return Err(SourceError::Unavailable {
                what: what.to_owned(),
                detail: "arrêt de l'agent demandé".to_owned(),
            });
        }
        Ok(())
    }

    /// Keeps a copy of fetched bytes; a failure only costs the offline copy.
    fn keep(&self, relative: &str, bytes: &[u8]) {
        if let Some(dir) = self.cache
            && let Err(e) = crate::spool::write_atomic(&dir.join(relative), bytes, 0o644)
        {
            tracing::warn!(file = relative, error = %e, "could not cache a fetched release file");
        }
    }
}

fn source_error(what: String, e: TransportError) -> SourceError {
    match e {
        TransportError::Api { status: 404, .. } => SourceError::NotFound { what },
        TransportError::Protocol(detail) => SourceError::Invalid { what, detail },
        other => SourceError::Unavailable {
            what,
            detail: other.to_string(),
        },
    }
}

impl ReleaseSource for ServerReleases<'_> {
    fn profile(&self, name: &str, version: u64) -> Result<(Vec<u8>, String), SourceError> {
        let what = format!("le profil {name} v{version}");
        let sig_what = format!("la signature du profil {name} v{version}");
        if !is_slug(name) {
            return Err(SourceError::Invalid {
                what,
                detail: "nom de profil invalide".into(),
            });
        }
        self.check_cancel(&what)?;
        let path = format!("/profiles/{name}/{version}");
        let bytes = self
            .transport
            .fetch(&path, MAX_PROFILE_BYTES as u64)
            .map_err(|e| source_error(what.clone(), e))?;
        let sig = self
            .transport
            .fetch(&format!("{path}.minisig"), MAX_SIGNATURE_BYTES)
            .map_err(|e| source_error(sig_what.clone(), e))?;
        let sig = String::from_utf8(sig).map_err(|_| SourceError::Invalid {
            what: sig_what,
            detail: "pas du texte UTF-8".into(),
        })?;
        self.keep(&format!("{name}.toml"), &bytes);
        self.keep(&format!("{name}.toml.minisig"), sig.as_bytes());
        Ok((bytes, sig))
    }

    fn blob(&self, blob: &BlobRef) -> Result<Vec<u8>, SourceError> {
        let sha256 = &blob.sha256;
        let what = format!("le fichier {sha256}");
        if !is_sha256_hex(sha256) {
            return Err(SourceError::Invalid {
                what,
                detail: "empreinte sha256 invalide".into(),
            });
        }
        self.check_cancel(&what)?;
        // At most the pinned size: a longer answer is refused as soon as it
        // passes it, never read whole.
        let bytes = self
            .transport
            .fetch(&format!("/blobs/{sha256}"), blob.size.min(MAX_BLOB_BYTES))
            .map_err(|e| source_error(what, e))?;
        // Verified before it is kept: the cache never holds foreign bytes
        // under a pinned digest.
        let bytes = verified_blob(blob, bytes)?;
        self.keep(&format!("blobs/{sha256}"), &bytes);
        Ok(bytes)
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// The apply engine driven by the daemon.
pub struct EngineApplier {
    /// The agent's files and the managed root.
    paths: AgentPaths,
}

impl EngineApplier {
    /// An applier for the machine at `paths`.
    pub fn new(paths: AgentPaths) -> Self {
        EngineApplier { paths }
    }

    fn applied(&self) -> Vec<ProfileRef> {
        AppliedState::load(&self.paths.applied_file())
            .map(|s| s.applied())
            .unwrap_or_default()
    }
}

fn sorted(v: &[ProfileRef]) -> Vec<ProfileRef> {
    let mut v = v.to_vec();
    v.sort();
    v
}

impl Applier for EngineApplier {
    fn needs_apply(
        &self,
        assigned: &[ProfileRef],
        memo: &ApplyMemo,
        _now: time::OffsetDateTime,
    ) -> bool {
        let applied = self.applied();
        let missing: Vec<&ProfileRef> = assigned.iter().filter(|p| !applied.contains(p)).collect();
        if missing.is_empty() {
            return false;
        }
        if memo.assigned.as_deref().map(sorted) != Some(sorted(assigned)) {
            return true;
        }
        // Same assignment as last time: only non-final outcomes are retried.
        missing.iter().any(|p| match memo.outcomes.get(&p.name) {
            Some(l) if l.version == p.version => l.outcome != ApplyOutcome::Refused,
            _ => true,
        })
    }

    fn apply(
        &mut self,
        assigned: &[ProfileRef],
        memo: &mut ApplyMemo,
        transport: &dyn Transport,
        config: &AgentConfig,
        now: time::OffsetDateTime,
        cancel: &AtomicBool,
    ) -> Vec<ApplyReport> {
        // `new` reads the root's /etc/localtime, so maintenance windows are
        // in the school's time zone (the libc query fails in a threaded
        // process and would silently fall back to UTC).
        let mut options = ApplyOptions::new(self.paths.clone(), now);
        match config.maintenance.parsed() {
            Ok(w) => options.maintenance = w,
            Err(e) => tracing::error!(error = %e, "maintenance windows unusable; using defaults"),
        }
        let cache = self.paths.cache_dir();
        let source = ServerReleases {
            transport,
            cache: Some(&cache),
            cancel: Some(cancel),
        };
        let reports = apply_assigned(&options, assigned, &source, &mut |event| {
            tracing::debug!(?event, "apply progress");
        });
        if reports.is_empty() && source.cancelled() {
            // Stopped between downloads: nothing was applied and nothing is
            // remembered, so the next start tries again. (A stop that came
            // after the downloads lets the apply finish and report.)
            return Vec::new();
        }
        let mut out = Vec::with_capacity(reports.len());
        for report in reports {
            // Why, for `nird-agent status`: the report's message, else the
            // first resource that failed.
            let message = report.message.clone().or_else(|| {
                report
                    .resources
                    .iter()
                    .find(|r| r.status == nird_proto::api::ResourceStatus::Failed)
                    .map(|r| match &r.message {
                        Some(m) => format!("{} : {m}", r.id),
                        None => r.id.clone(),
                    })
            });
            let now = AttemptOutcome {
                version: report.version,
                outcome: report.outcome,
                reason: report.reason,
                message,
            };
            let previous = memo.outcomes.insert(report.profile.clone(), now.clone());
            // Still deferred, or failing the same way, as already reported:
            // say nothing new (the retry happens at every check-in).
            if matches!(now.outcome, ApplyOutcome::Deferred | ApplyOutcome::Failed)
                && previous.as_ref().is_some_and(|p| p.same_as(&now))
            {
                continue;
            }
            tracing::info!(
                profile = %report.profile,
                version = report.version,
                outcome = report.outcome.as_str(),
                reason = report.reason.map(|r| r.as_str()),
                "profile handled"
            );
            out.push(report);
        }
        memo.assigned = Some(assigned.to_vec());
        out
    }
}
