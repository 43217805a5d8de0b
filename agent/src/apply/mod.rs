//! The apply engine: from assigned releases to a machine in their desired
//! state, with a report per release.
//!
//! ```text
//! fetch (ReleaseSource) → verify every release and blob → resolve includes
//!   → union of desired states → plan (diff with the machine)
//!   → lesson guard (logind + maintenance windows) → apply → reports
//! ```
//!
//! Invariants:
//! - Nothing is changed before *every* assigned release and every blob it
//!   pins has been fetched and verified. A refused release contributes
//!   nothing; its report carries the exact reason.
//! - The anti-rollback floor (highest version whose apply started, per
//!   profile) is persisted before the first change.
//! - Every change is idempotent; an apply journal marks an apply in progress
//!   so that, after a power cut, the next run finishes dpkg's work and
//!   converges.
//! - Planning only reads; `dry_run` never writes anything.
//!
//! Using it: build [`ApplyOptions::new`] (then set `maintenance`, `bus`,
//! `ignore_lesson_guard`...), pass the assigned releases and a
//! [`ReleaseSource`], and spool the returned reports (their `seq` is 0).
//! systemd and logind are reached with zbus' blocking API: call
//! [`apply_assigned`] from a plain thread (`tokio::task::spawn_blocking`
//! inside async code), never on an async worker.

pub mod accounts;
pub mod apt;
pub mod cli;
pub mod files;
pub mod guard;
pub mod journal;
pub mod plan;
pub mod safe_fs;
pub mod source;
pub mod state;
pub mod systemd;

use std::collections::{BTreeSet, HashMap};
use std::fs;

use nird_proto::api::{
    ApplyOutcome, ApplyReport, ProfileRef, RefusalReason, ResourceResult, ResourceStatus,
};
use nird_proto::index::CatalogueIndex;
use nird_proto::profile::{self, Audience, Profile, ResolveError};
use nird_proto::signature::{ReleaseError, TrustedKeys, check_blob, verify_release};

pub use guard::{MaintenanceWindows, WindowError};
pub use plan::{Plan, PlannedResource, Verdict};
pub use source::{DirectorySource, ReleaseSource, SourceError};
pub use systemd::Bus;

use crate::paths::AgentPaths;
use crate::trust;
use journal::{Journal, JournalFile};
use plan::Action;
use state::{AppliedState, StateError};

/// Everything an apply depends on besides the releases.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The managed root and the agent's files under it.
    pub paths: AgentPaths,
    /// The clock for expiry checks (UTC or any offset).
    pub now: time::OffsetDateTime,
    /// The machine's local UTC offset: maintenance windows are local times.
    pub local_offset: time::UtcOffset,
    /// Plan and report what would change, change nothing.
    pub dry_run: bool,
    /// `--now`: apply disruptive changes even during a session.
    pub ignore_lesson_guard: bool,
    /// When disruptive changes may be made during a session.
    pub maintenance: MaintenanceWindows,
    /// Where systemd and logind are.
    pub bus: Bus,
    /// The machine's school, recorded at enrolment: releases whose signed
    /// targeting excludes it are refused.
    pub school: Option<nird_proto::api::EnrolledSchool>,
}

impl ApplyOptions {
    /// Defaults: the root's time zone (`/etc/localtime`, see
    /// [`guard::local_offset`]), no dry run, lesson guard on, default
    /// windows, the system bus when the root is `/` and no bus otherwise.
    pub fn new(paths: AgentPaths, now: time::OffsetDateTime) -> Self {
        let bus = if paths.root.as_os_str() == "/" {
            Bus::System
        } else {
            Bus::None
        };
        let paths_for_school = paths.clone();
        ApplyOptions {
            local_offset: guard::local_offset(&paths, now),
            paths,
            now,
            dry_run: false,
            ignore_lesson_guard: false,
            maintenance: MaintenanceWindows::default(),
            bus,
            school: crate::config::AgentConfig::load(&paths_for_school)
                .ok()
                .and_then(|c| c.school),
        }
    }
}

/// Progress of an apply, for a progress bar or logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// An interrupted apply was found: it is being finished.
    Recovering,
    /// Verification and planning are done; `changes` resources will change.
    Planned { changes: usize },
    /// Resource `index` (from 1) of `total` is being changed.
    Applying {
        index: usize,
        total: usize,
        id: String,
    },
    /// A resource is done.
    Done { id: String, status: ResourceStatus },
}

/// What verification said about one assigned release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseVerdict {
    /// Verified, resolved: part of the desired state.
    Ready {
        profile: ProfileRef,
        /// Label of the trusted key that signed it.
        signed_by: String,
        /// Same version as the last applied one.
        unchanged: bool,
    },
    /// Refused: contributes nothing.
    Refused {
        profile: ProfileRef,
        reason: RefusalReason,
        message: String,
    },
    /// Could not be fetched (network, missing file): retried next time.
    Unavailable {
        profile: ProfileRef,
        message: String,
    },
}

impl ReleaseVerdict {
    /// The release this verdict is about.
    pub fn profile(&self) -> &ProfileRef {
        match self {
            ReleaseVerdict::Ready { profile, .. }
            | ReleaseVerdict::Refused { profile, .. }
            | ReleaseVerdict::Unavailable { profile, .. } => profile,
        }
    }
}

/// Result of planning: the verdict on each assigned release and the plan of
/// the union of the ready ones.
#[derive(Debug, Clone)]
pub struct PlanOutcome {
    /// One per assigned release, in the assigned order.
    pub releases: Vec<ReleaseVerdict>,
    /// The diff between the desired state and the machine.
    pub plan: Plan,
}

/// An error that stops planning altogether.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    State(#[from] StateError),
}

/// What `prepare` builds for planning and applying.
struct Prepared {
    outcome: PlanOutcome,
    /// Ready release name → the profiles composed into it.
    layers: HashMap<String, BTreeSet<String>>,
    /// Verified blob bytes by sha256.
    blobs: HashMap<String, Vec<u8>>,
    /// systemd, when units are managed.
    systemd: Option<Result<systemd::Systemd, String>>,
    /// The applied state read at the start.
    applied: AppliedState,
}

/// The trust anchors an apply verifies against: the keyring held, the
/// newest valid catalogue index, and the machine's school.
struct Anchors {
    /// The keyring, or why there is none usable.
    keys: Result<TrustedKeys, ReleaseError>,
    /// The index, or why there is none usable.
    index: Result<CatalogueIndex, ReleaseError>,
}

/// Loads the keyring and the index (the machine's, or a newer one the
/// source carries and the keyring verifies, for this run only).
fn anchors(opts: &ApplyOptions, source: &dyn ReleaseSource) -> Anchors {
    let today = trust::utc_date(opts.now);
    let keyring = match trust::load_keyring(&opts.paths) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("keyring unusable: {e}");
            None
        }
    };
    let keys = match &keyring {
        None => Err(ReleaseError::NoKeyring),
        Some(k) if k.is_expired_on(today) => {
            Err(ReleaseError::KeyringExpired { expires: k.expires })
        }
        Some(k) => Ok(k.trusted_keys()),
    };
    let mut index = trust::load_index(&opts.paths, keyring.as_ref(), opts.now);
    if let (Some(k), Some((bytes, sig))) = (&keyring, source.index()) {
        let held = trust::index_floor(&index);
        match nird_proto::index::verify_index(&k.trusted_keys(), &bytes, &sig, held, opts.now) {
            // Used for this run only: planning and refusing never write.
            Ok((offered, _)) if held != Some(offered.version) => {
                index = trust::IndexState::Valid(offered);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("catalogue index from the source refused: {e}"),
        }
    }
    let index = match index {
        trust::IndexState::Valid(i) => Ok(i),
        trust::IndexState::Expired(i) => Err(ReleaseError::IndexExpired { expires: i.expires }),
        trust::IndexState::Missing => Err(ReleaseError::NoIndex),
    };
    Anchors { keys, index }
}

/// Checks a verified profile's signed targeting (audience, académies,
/// départements, UAIs) against the machine's school, as recorded at
/// enrolment.
fn check_targeting(
    profile: &Profile,
    school: Option<&nird_proto::api::EnrolledSchool>,
) -> Result<(), ReleaseError> {
    let place = school.and_then(|s| {
        Some(nird_proto::school::Place {
            uai: nird_proto::uai::Uai::parse(&s.uai).ok()?,
            kind: nird_proto::school::SchoolKind::parse(&s.kind)?,
            academie: s.academie.clone(),
        })
    });
    let Some(place) = place else {
        // Without a known school only profiles meant for every machine,
        // with no territorial scope, may run.
        let everywhere = profile.audience.contains(&Audience::All) && profile.scope.is_empty();
        return if everywhere {
            Ok(())
        } else {
            Err(ReleaseError::NotTargeted {
                detail: "l'établissement de cette machine est inconnu (enrôlement sans établissement) : \
                         ré-enrôlez-la"
                    .into(),
            })
        };
    };
    profile
        .admits(&place)
        .map_err(|e| ReleaseError::NotTargeted {
            detail: format!("« {} » : {e}", profile.name),
        })
}

fn refusal_reason(e: &ReleaseError) -> RefusalReason {
    match e {
        ReleaseError::MalformedSignature => RefusalReason::MalformedSignature,
        ReleaseError::UnknownKey => RefusalReason::UnknownKey,
        ReleaseError::BadSignature => RefusalReason::BadSignature,
        ReleaseError::Parse(_) => RefusalReason::ParseError,
        ReleaseError::WrongName { .. } => RefusalReason::WrongName,
        ReleaseError::Rollback { .. } => RefusalReason::Rollback,
        ReleaseError::Expired { .. } => RefusalReason::Expired,
        ReleaseError::ExpiresTooFar { .. } => RefusalReason::ExpiryTooFar,
        ReleaseError::NotInIndex { .. } => RefusalReason::NotInIndex,
        ReleaseError::Stale { .. } => RefusalReason::Stale,
        ReleaseError::IndexExpired { .. } => RefusalReason::IndexExpired,
        ReleaseError::NoIndex => RefusalReason::NoIndex,
        ReleaseError::NotTargeted { .. } => RefusalReason::NotTargeted,
        ReleaseError::NoKeyring => RefusalReason::NoKeyring,
        ReleaseError::KeyringExpired { .. } => RefusalReason::KeyringExpired,
    }
}

/// Fetches and verifies one release and its blobs.
fn fetch_and_verify(
    opts: &ApplyOptions,
    anchors: &Anchors,
    applied: &AppliedState,
    wanted: &ProfileRef,
    source: &dyn ReleaseSource,
    blobs: &mut HashMap<String, Vec<u8>>,
) -> Result<(Profile, String, bool), ReleaseVerdict> {
    let unavailable = |profile: ProfileRef, e: SourceError| ReleaseVerdict::Unavailable {
        profile,
        message: e.to_string(),
    };
    let (bytes, sig) = source
        .profile(&wanted.name, wanted.version)
        .map_err(|e| unavailable(wanted.clone(), e))?;
    let floor = applied.floor(&wanted.name);
    let refused = |e: ReleaseError| ReleaseVerdict::Refused {
        profile: wanted.clone(),
        reason: refusal_reason(&e),
        message: e.to_string(),
    };
    let keys = anchors.keys.as_ref().map_err(|e| refused(e.clone()))?;
    let release =
        verify_release(keys, &wanted.name, &bytes, &sig, floor, opts.now).map_err(refused)?;
    // Only what the newest signed index pins, and only for this school.
    let index = anchors.index.as_ref().map_err(|e| refused(e.clone()))?;
    index
        .check(
            &release.profile.name,
            release.profile.version,
            &nird_proto::hash::sha256_hex(&bytes),
        )
        .map_err(refused)?;
    check_targeting(&release.profile, opts.school.as_ref()).map_err(refused)?;
    let profile = release.profile;
    let this = ProfileRef {
        name: profile.name.clone(),
        version: profile.version,
    };
    for blob in profile.blobs() {
        if blobs.contains_key(&blob.sha256) {
            continue;
        }
        let bytes = match source.blob(blob) {
            Ok(b) => b,
            Err(e @ SourceError::Invalid { .. }) => {
                return Err(ReleaseVerdict::Refused {
                    profile: this,
                    reason: RefusalReason::BlobMismatch,
                    message: e.to_string(),
                });
            }
            Err(e) => return Err(unavailable(this, e)),
        };
        check_blob(blob, &bytes).map_err(|e| ReleaseVerdict::Refused {
            profile: this.clone(),
            reason: RefusalReason::BlobMismatch,
            message: format!("fichier {} : {e}", blob.sha256),
        })?;
        blobs.insert(blob.sha256.clone(), bytes);
    }
    Ok((profile, release.signed_by.key_label, release.unchanged))
}

/// A profile that includes every ready release: resolving it yields the
/// union of their desired states, with conflicts detected by `proto`.
fn machine_root(includes: Vec<String>) -> Profile {
    Profile {
        name: "(machine)".to_owned(),
        version: 0,
        expires: time::Date::MAX,
        description: String::new(),
        audience: vec![Audience::All],
        scope: profile::Scope::default(),
        allow: Vec::new(),
        includes,
        packages_install: Vec::new(),
        packages_remove: Vec::new(),
        repositories: Vec::new(),
        files: Vec::new(),
        directories: Vec::new(),
        units: Vec::new(),
        groups: Vec::new(),
        users: Vec::new(),
    }
}

fn prepare(
    opts: &ApplyOptions,
    assigned: &[ProfileRef],
    source: &dyn ReleaseSource,
) -> Result<Prepared, ApplyError> {
    let applied = AppliedState::load(&opts.paths.applied_file())?;
    let anchors = anchors(opts, source);
    let mut blobs = HashMap::new();
    let mut verdicts: Vec<ReleaseVerdict> = Vec::new();
    let mut ready: Vec<(Profile, String, bool)> = Vec::new();
    let mut seen = BTreeSet::new();
    for wanted in assigned {
        if !seen.insert(wanted.name.clone()) {
            continue;
        }
        match fetch_and_verify(opts, &anchors, &applied, wanted, source, &mut blobs) {
            Ok(r) => ready.push(r),
            Err(v) => verdicts.push(v),
        }
    }

    // Resolve each release over the verified set, until no more refusals
    // (refusing one may break another that includes it).
    let mut layers: HashMap<String, BTreeSet<String>> = HashMap::new();
    let refuse = |p: &Profile, message: String| ReleaseVerdict::Refused {
        profile: ProfileRef {
            name: p.name.clone(),
            version: p.version,
        },
        reason: RefusalReason::ResolveError,
        message,
    };
    loop {
        let by_name: HashMap<&str, &Profile> =
            ready.iter().map(|(p, ..)| (p.name.as_str(), p)).collect();
        let mut failed = None;
        for (i, (p, ..)) in ready.iter().enumerate() {
            match profile::resolve(p, |n| by_name.get(n).copied()) {
                Ok(state) => {
                    layers.insert(
                        p.name.clone(),
                        state.layers.iter().map(|l| l.name.clone()).collect(),
                    );
                }
                Err(e) => {
                    failed = Some((i, format!("inclusions : {e}")));
                    break;
                }
            }
        }
        if failed.is_none() {
            // The union over all ready releases.
            let root = machine_root(ready.iter().map(|(p, ..)| p.name.clone()).collect());
            match profile::resolve(&root, |n| by_name.get(n).copied()) {
                Ok(mut state) => {
                    state.layers.retain(|l| l.name != root.name);
                    drop(by_name);
                    let systemd =
                        (!state.units.is_empty()).then(|| systemd::Systemd::connect(&opts.bus));
                    let machine = plan::Machine {
                        paths: &opts.paths,
                        blobs: &blobs,
                        systemd: systemd.as_ref(),
                    };
                    let plan = plan::compute(&state, &machine);
                    for (p, signed_by, unchanged) in &ready {
                        verdicts.push(ReleaseVerdict::Ready {
                            profile: ProfileRef {
                                name: p.name.clone(),
                                version: p.version,
                            },
                            signed_by: signed_by.clone(),
                            unchanged: *unchanged,
                        });
                    }
                    // Keep the assigned order in the verdicts.
                    verdicts.sort_by_key(|v| {
                        assigned
                            .iter()
                            .position(|a| a.name == v.profile().name)
                            .unwrap_or(usize::MAX)
                    });
                    layers.retain(|name, _| ready.iter().any(|(p, ..)| &p.name == name));
                    let prepared = Prepared {
                        outcome: PlanOutcome {
                            releases: verdicts,
                            plan,
                        },
                        layers,
                        blobs,
                        systemd,
                        applied,
                    };
                    return Ok(prepared);
                }
                Err(ResolveError::Conflict {
                    resource,
                    first,
                    second,
                }) => {
                    // Two releases disagree: refuse the later one(s).
                    let i = ready
                        .iter()
                        .position(|(p, ..)| {
                            layers.get(&p.name).is_some_and(|l| l.contains(&second))
                        })
                        .unwrap_or(ready.len() - 1);
                    failed = Some((
                        i,
                        format!("conflit avec le profil « {first} » sur {resource}"),
                    ));
                }
                Err(e) => failed = Some((ready.len() - 1, e.to_string())),
            }
        }
        if let Some((i, message)) = failed {
            let (p, ..) = ready.remove(i);
            verdicts.push(refuse(&p, message));
            layers.clear();
        }
    }
}

/// Verifies every assigned release and computes the plan; changes nothing.
pub fn plan_assigned(
    opts: &ApplyOptions,
    assigned: &[ProfileRef],
    source: &dyn ReleaseSource,
) -> Result<PlanOutcome, ApplyError> {
    Ok(prepare(opts, assigned, source)?.outcome)
}

/// Result of applying the plan: per resource id, its status and message.
type Results = HashMap<String, (ResourceStatus, Option<String>)>;

/// Verifies every assigned release, resolves, plans, applies (or defers)
/// and persists the applied versions. Returns one report per assigned
/// release, in the assigned order, with `seq = 0` (the spool numbers them).
///
/// With `dry_run`, nothing is written and the reports say what would be done
/// (`changed` = would change); they are for display, not for the spool.
pub fn apply_assigned(
    opts: &ApplyOptions,
    assigned: &[ProfileRef],
    source: &dyn ReleaseSource,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Vec<ApplyReport> {
    let started_at = time::OffsetDateTime::now_utc();
    let fail_all = |message: String| {
        assigned
            .iter()
            .map(|r| {
                report(
                    r,
                    ApplyOutcome::Failed,
                    None,
                    Some(message.clone()),
                    Vec::new(),
                    started_at,
                )
            })
            .collect()
    };
    let interrupted = if opts.dry_run {
        None
    } else {
        JournalFile::interrupted(&opts.paths.journal_file())
    };
    if let Some(journal) = &interrupted {
        tracing::warn!(started_at = %journal.started_at, current = ?journal.current, "resuming an interrupted apply");
        progress(ProgressEvent::Recovering);
        if journal.dpkg_running
            && let Err(e) = apt::configure_pending(&opts.paths)
        {
            tracing::warn!("dpkg --configure -a failed: {e}");
        }
    }
    let mut prepared = match prepare(opts, assigned, source) {
        Ok(p) => p,
        Err(e) => return fail_all(e.to_string()),
    };
    // The agent is stopping (SIGTERM between downloads): change nothing and
    // report nothing; everything is fetched again at the next start.
    if source.cancelled() {
        tracing::info!("stop requested while fetching releases; nothing applied");
        return Vec::new();
    }
    let mut deferral = deferral_for(opts, &prepared.outcome.plan);
    // One apply at a time per root (daemon and command line). Taken only
    // when something may be written, so that refusing or deferring leaves
    // the root untouched; the floors are re-read under the lock and
    // everything is verified again if another apply moved them meanwhile.
    let ready = prepared
        .outcome
        .releases
        .iter()
        .any(|v| matches!(v, ReleaseVerdict::Ready { .. }));
    let lock = if opts.dry_run || !ready || deferral.is_some() {
        None
    } else {
        match lock_apply(&opts.paths) {
            Ok(lock) => Some(lock),
            Err(e) => return fail_all(e),
        }
    };
    if lock.is_some()
        && AppliedState::load(&opts.paths.applied_file()).ok().as_ref() != Some(&prepared.applied)
    {
        prepared = match prepare(opts, assigned, source) {
            Ok(p) => p,
            Err(e) => return fail_all(e.to_string()),
        };
        deferral = deferral_for(opts, &prepared.outcome.plan);
    }
    let plan = &prepared.outcome.plan;
    if interrupted.is_some() && deferral.is_none() {
        // Temporary files a power cut may have left next to the files the
        // engine rewrites.
        let mut written: Vec<String> = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]
            .map(str::to_owned)
            .to_vec();
        for r in &plan.resources {
            match &r.action {
                Action::File(f) => written.push(f.path.clone()),
                Action::Repository(repo) => written.extend(apt::repository_paths(repo)),
                _ => {}
            }
        }
        for path in written {
            files::remove_leftover(&opts.paths, &path);
        }
        files::remove_temporary(&opts.paths.applied_file());
        files::remove_temporary(&opts.paths.journal_file());
    }
    progress(ProgressEvent::Planned {
        changes: plan.changes().count(),
    });

    let results: Results = if let Some(message) = &deferral {
        tracing::info!("disruptive plan deferred: {message}");
        HashMap::new()
    } else if opts.dry_run {
        plan.resources
            .iter()
            .map(|r| (r.id.clone(), simulated(&r.verdict)))
            .collect()
    } else {
        match execute(opts, &prepared, interrupted.is_some(), progress) {
            Ok(results) => results,
            Err(e) => return fail_all(e),
        }
    };

    let mut applied = prepared.applied.clone();
    let mut reports = Vec::new();
    for verdict in &prepared.outcome.releases {
        let r = match verdict {
            ReleaseVerdict::Refused {
                profile,
                reason,
                message,
            } => report(
                profile,
                ApplyOutcome::Refused,
                Some(*reason),
                Some(message.clone()),
                Vec::new(),
                started_at,
            ),
            ReleaseVerdict::Unavailable { profile, message } => report(
                profile,
                ApplyOutcome::Failed,
                None,
                Some(format!("profil indisponible : {message}")),
                Vec::new(),
                started_at,
            ),
            ReleaseVerdict::Ready { profile, .. } => {
                let layers = &prepared.layers[&profile.name];
                let mine: Vec<&PlannedResource> = plan
                    .resources
                    .iter()
                    .filter(|r| layers.contains(&r.origin))
                    .collect();
                let has_changes = mine
                    .iter()
                    .any(|r| matches!(r.verdict, Verdict::Change { .. }));
                if let (Some(message), true) = (&deferral, has_changes) {
                    report(
                        profile,
                        ApplyOutcome::Deferred,
                        None,
                        Some(message.clone()),
                        Vec::new(),
                        started_at,
                    )
                } else {
                    let resources: Vec<ResourceResult> = mine
                        .iter()
                        .map(|r| {
                            let (status, message) = results
                                .get(&r.id)
                                .cloned()
                                .unwrap_or_else(|| simulated(&r.verdict));
                            ResourceResult {
                                id: r.id.clone(),
                                status,
                                message,
                            }
                        })
                        .collect();
                    let failed = resources.iter().any(|r| r.status == ResourceStatus::Failed);
                    let outcome = if failed {
                        ApplyOutcome::Failed
                    } else {
                        ApplyOutcome::Applied
                    };
                    applied.record(
                        &profile.name,
                        profile.version,
                        outcome,
                        time::OffsetDateTime::now_utc(),
                    );
                    let message = opts
                        .dry_run
                        .then(|| "simulation : rien n'a été modifié".to_owned());
                    report(profile, outcome, None, message, resources, started_at)
                }
            }
        };
        reports.push(r);
    }
    if !opts.dry_run && applied != prepared.applied {
        save_applied(&opts.paths, lock.is_some(), &prepared.applied, &applied);
    }
    // Converged (or nothing was left to do): the interrupted apply is over.
    // A deferred plan keeps the journal for the next run.
    if !opts.dry_run && interrupted.is_some() && deferral.is_none() {
        let _ = fs::remove_file(opts.paths.journal_file());
    }
    reports
}

/// What a verdict means without applying (dry run, or nothing to do).
fn simulated(verdict: &Verdict) -> (ResourceStatus, Option<String>) {
    match verdict {
        Verdict::Unchanged { note } => (ResourceStatus::Unchanged, note.clone()),
        Verdict::Change { summary, .. } => (ResourceStatus::Changed, Some(summary.clone())),
        Verdict::Blocked { reason } => (ResourceStatus::Failed, Some(reason.clone())),
    }
}

fn report(
    profile: &ProfileRef,
    outcome: ApplyOutcome,
    reason: Option<RefusalReason>,
    message: Option<String>,
    resources: Vec<ResourceResult>,
    started_at: time::OffsetDateTime,
) -> ApplyReport {
    ApplyReport {
        seq: 0,
        profile: profile.name.clone(),
        version: profile.version,
        outcome,
        reason,
        message,
        resources,
        started_at,
        finished_at: time::OffsetDateTime::now_utc(),
    }
}

/// `Some(message)` when the plan is disruptive and must wait (see
/// [`lesson_in_progress`]).
fn deferral_for(opts: &ApplyOptions, plan: &Plan) -> Option<String> {
    let has_changes = plan.changes().next().is_some();
    if has_changes && plan.is_disruptive() && !opts.ignore_lesson_guard {
        lesson_in_progress(opts)
    } else {
        None
    }
}

/// Saves what this run recorded in `applied.json`, always under the apply
/// lock. A run that held no lock so far (a deferred plan still records the
/// releases it had nothing to change for) takes it now and merges its
/// records into the state on disk, which another apply may have saved in the
/// meantime: otherwise that apply's records would be lost, or two writers
/// would share the state file's temporary name.
fn save_applied(
    paths: &AgentPaths,
    holding_lock: bool,
    before: &AppliedState,
    after: &AppliedState,
) {
    let path = paths.applied_file();
    let result = if holding_lock {
        after.save(&path).map_err(|e| e.to_string())
    } else {
        lock_apply(paths).and_then(|_lock| {
            let mut current = AppliedState::load(&path).map_err(|e| e.to_string())?;
            for (name, entry) in &after.profiles {
                if before.profiles.get(name) != Some(entry) {
                    current.record(name, entry.version, entry.outcome, entry.at);
                }
            }
            current.save(&path).map_err(|e| e.to_string())
        })
    };
    if let Err(e) = result {
        tracing::error!("{e}");
    }
}

/// One apply at a time per root (daemon and command line).
fn lock_apply(paths: &AgentPaths) -> Result<fs::File, String> {
    let dir = paths.state_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("{} : {e}", dir.display()))?;
    let path = dir.join("apply.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{} : {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("verrou {} : {e}", path.display()))?;
    Ok(file)
}

/// `Some(message)` when a disruptive plan must wait: no maintenance window
/// is open, and a graphical session is, or logind cannot tell (with no
/// system bus at all, there is no desktop and nothing waits).
fn lesson_in_progress(opts: &ApplyOptions) -> Option<String> {
    if opts.bus == Bus::None {
        return None;
    }
    let local = opts.now.to_offset(opts.local_offset);
    let local = time::PrimitiveDateTime::new(local.date(), local.time());
    if opts.maintenance.contains(local) {
        return None;
    }
    let who = match guard::graphical_sessions(&opts.bus) {
        Ok(sessions) if sessions.is_empty() => return None,
        Ok(sessions) => {
            let who: Vec<&str> = sessions.iter().map(|s| s.user.as_str()).collect();
            format!("session graphique ouverte ({})", who.join(", "))
        }
        Err(guard::SessionsError::NoBus(e)) => {
            // No system bus, no desktop: nobody can be in a graphical
            // session (a chroot, a machine being installed).
            tracing::warn!("no system bus, so no graphical session: {e}");
            return None;
        }
        Err(guard::SessionsError::Unknown(e)) => {
            // Unknown is not « nobody »: a lesson may be going on. The plan
            // waits for the next maintenance window, when it runs whoever
            // is logged in, so a machine whose logind is broken still
            // converges, only later (found by review: it used to run at
            // once, in the middle of a lesson).
            tracing::warn!("cannot list sessions, deferring disruptive changes: {e}");
            "sessions ouvertes inconnues (logind ne répond pas)".to_owned()
        }
    };
    let next = opts
        .maintenance
        .next_opening(local)
        .map(|t| {
            format!(
                " ({} {:02}:{:02})",
                guard::jour(t.weekday()),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default();
    Some(format!(
        "{who} : changements perturbants reportés à la prochaine fenêtre de maintenance{next}"
    ))
}

/// Applies the plan's changes in order; returns the status of every
/// resource.
fn execute(
    opts: &ApplyOptions,
    prepared: &Prepared,
    interrupted: bool,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<Results, String> {
    let paths = &opts.paths;
    let plan = &prepared.outcome.plan;
    let mut results: Results = plan
        .resources
        .iter()
        .map(|r| (r.id.clone(), simulated(&r.verdict)))
        .collect();
    let changes: Vec<&PlannedResource> = plan.changes().collect();
    if changes.is_empty() {
        return Ok(results);
    }

    let releases = prepared
        .outcome
        .releases
        .iter()
        .filter(|v| matches!(v, ReleaseVerdict::Ready { .. }))
        .map(|v| v.profile().clone())
        .collect();
    let mut journal = JournalFile::begin(
        &paths.journal_file(),
        Journal {
            started_at: time::OffsetDateTime::now_utc(),
            releases,
            current: None,
            dpkg_running: false,
        },
    )
    .map_err(|e| format!("journal d'application : {e}"))?;
    // The floor rises before the first change (after the journal, so that
    // an interrupted write of the state is cleaned up by the next run).
    let mut applied = prepared.applied.clone();
    for v in &prepared.outcome.releases {
        if let ReleaseVerdict::Ready { profile, .. } = v {
            applied.record(
                &profile.name,
                profile.version,
                ApplyOutcome::Failed,
                opts.now,
            );
        }
    }
    applied
        .save(&paths.applied_file())
        .map_err(|e| e.to_string())?;

    let total = changes.len();
    let mut refresh_lists = false;
    let mut packages_done = false;
    let mut reload_needed = false;
    let mut enablement_changed = false;
    let systemd = prepared.systemd.as_ref();

    // Units run in two passes (enablement, reload, then start/stop).
    let mut unit_changes = Vec::new();
    let mut accounts_now: Option<Result<accounts::Accounts, String>> = None;
    for (index, change) in changes.iter().enumerate() {
        progress(ProgressEvent::Applying {
            index: index + 1,
            total,
            id: change.id.clone(),
        });
        // Files and directories are replaced atomically: a step in the
        // journal for each would only double their fsyncs.
        if !matches!(change.action, Action::File(_) | Action::Directory(_)) {
            journal
                .step(&change.id, false)
                .map_err(|e| format!("journal d'application : {e}"))?;
        }
        // Owners are looked up in the accounts as they are now (groups and
        // users come first); read again only after they changed.
        let accounts = accounts_now
            .get_or_insert_with(|| accounts::Accounts::load(paths))
            .as_ref()
            .map_err(Clone::clone);
        let result = match &change.action {
            Action::Group(g) => accounts::apply_group(paths, g),
            Action::User(u) => accounts::apply_user(paths, u, opts.now),
            Action::Repository(r) => {
                let key = &prepared.blobs[&r.key.sha256];
                accounts
                    .and_then(|a| apt::apply_repository(paths, r, key, a))
                    .map(|_| {
                        refresh_lists = true;
                        true
                    })
            }
            Action::Install(_) | Action::Remove(_) => {
                if !packages_done {
                    packages_done = true;
                    let (install, remove) = package_changes(&changes);
                    journal
                        .step("packages", true)
                        .map_err(|e| format!("journal d'application : {e}"))?;
                    let outcome =
                        apt::apply_packages(paths, &install, &remove, refresh_lists, interrupted);
                    journal
                        .step("packages", false)
                        .map_err(|e| format!("journal d'application : {e}"))?;
                    for (name, r) in outcome {
                        set(
                            &mut results,
                            &format!("package:{name}"),
                            r.map(|_| true),
                            progress,
                        );
                    }
                }
                continue;
            }
            Action::Directory(d) => accounts
                .and_then(|a| files::apply_directory(paths, d, a))
                .map(|_| true),
            Action::File(f) => {
                let content = plan::content_of(f, &prepared.blobs).unwrap_or_default();
                if f.path.contains("/systemd/") {
                    reload_needed = true;
                }
                accounts
                    .and_then(|a| files::apply_file(paths, f, content, a))
                    .map(|_| true)
            }
            Action::Unit(u) => {
                let r = match systemd {
                    Some(Ok(s)) => s.apply_enablement(u),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("systemd injoignable".to_owned()),
                };
                enablement_changed |= r == Ok(true);
                unit_changes.push((change.id.clone(), u, r));
                continue;
            }
        };
        if matches!(change.action, Action::Group(_) | Action::User(_)) {
            accounts_now = None;
        }
        set(&mut results, &change.id, result, progress);
    }
    if let Some(Ok(s)) = systemd
        && (reload_needed || enablement_changed)
        && let Err(e) = s.reload()
    {
        tracing::warn!("daemon-reload failed: {e}");
    }
    for (id, unit, enablement) in unit_changes {
        let result = enablement.and_then(|_| match systemd {
            Some(Ok(s)) => s.apply_run_state(unit),
            _ => Ok(false),
        });
        set(&mut results, &id, result, progress);
    }
    journal
        .finish()
        .map_err(|e| format!("journal d'application : {e}"))?;
    Ok(results)
}

/// Records the result of one change.
fn set(
    results: &mut Results,
    id: &str,
    result: Result<bool, String>,
    progress: &mut dyn FnMut(ProgressEvent),
) {
    let value = match result {
        Ok(_) => (ResourceStatus::Changed, None),
        Err(e) => (ResourceStatus::Failed, Some(e)),
    };
    progress(ProgressEvent::Done {
        id: id.to_owned(),
        status: value.0,
    });
    results.insert(id.to_owned(), value);
}

/// The packages to install and remove among the changes.
fn package_changes(changes: &[&PlannedResource]) -> (Vec<String>, Vec<String>) {
    let mut install = Vec::new();
    let mut remove = Vec::new();
    for c in changes {
        match &c.action {
            Action::Install(n) => install.push(n.clone()),
            Action::Remove(n) => remove.push(n.clone()),
            _ => {}
        }
    }
    (install, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlocked_save_merges_into_what_another_apply_saved() {
        let root = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(root.path());
        let at = time::OffsetDateTime::UNIX_EPOCH;
        // This run started from an empty state and recorded `socle`...
        let before = AppliedState::default();
        let mut after = before.clone();
        after.record("socle", 2, ApplyOutcome::Applied, at);
        // ...while another apply saved `classe` v5.
        let mut other = AppliedState::default();
        other.record("classe", 5, ApplyOutcome::Applied, at);
        other.save(&paths.applied_file()).unwrap();

        save_applied(&paths, false, &before, &after);
        let saved = AppliedState::load(&paths.applied_file()).unwrap();
        assert_eq!(saved.floor("classe"), Some(5));
        assert_eq!(saved.floor("socle"), Some(2));

        // Holding the lock, the run's own state is authoritative.
        save_applied(&paths, true, &before, &after);
        let saved = AppliedState::load(&paths.applied_file()).unwrap();
        assert_eq!(saved.floor("classe"), None);
        assert_eq!(saved.floor("socle"), Some(2));
    }
}
