//! `nird-agent run`: the check-in loop.
//!
//! Two layers, so that the logic is testable without timers or signals:
//! - [`Agent`] does one check-in *cycle*, synchronously (it blocks on the
//!   network and the disk): collect the inventory, spool what changed, send a
//!   heartbeat with the oldest spooled reports, drop what the server
//!   acknowledged, apply newly assigned profiles (their reports go to the
//!   spool and are delivered by a follow-up check-in in the same cycle), and
//!   say how long to wait before the next cycle.
//! - [`run`] is the async loop around it: the cycle runs on tokio's blocking
//!   pool; waits go through the injectable [`Clock`], so tests simulate a
//!   week offline in seconds; stop / reload requests arrive on a channel
//!   (SIGTERM / SIGHUP in production, see [`service`]); service manager
//!   notifications go through [`ServiceHooks`].
//!
//! Waiting rules: after a successful check-in, the server's
//! `next_checkin_secs` (never less than the configured `interval_secs`,
//! never more than a day),
//! ± `jitter_secs`; right away (1 s) while anything is left in the spool
//! (more reports than one check-in carries, inventory changes: one per
//! check-in, oldest first) or the server asked for the inventory; after a network
//! failure or a 5xx, exponential backoff from 30 s up to a cap (1 h by
//! default), jittered; after a refusal (401 / 403 / TLS), the normal interval.
//! While a plan waits for a maintenance window, the next cycle comes no
//! later than the window's opening (plus up to 5 minutes of spread, no
//! jitter).
//!
//! The server's word is bounded, not trusted: a reply assigning more than
//! `MAX_ASSIGNED` releases is refused as a server error (nothing acked,
//! nothing applied), and an `acked_seq` above the highest seq the agent has
//! handed out acknowledges nothing. A stop request that arrives during a
//! cycle sets the agent's cancellation flag: the release source checks it
//! before each download, the cycle then applies nothing, and the loop
//! returns as soon as the cycle does.

pub mod backoff;
pub mod clock;
pub mod releases;
pub mod service;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nird_proto::api::{
    ApplyReport, CheckinRequest, CheckinResponse, MAX_ASSIGNED, MAX_REPORTS_PER_CHECKIN,
    MachineStatus, ProfileRef,
};

pub use backoff::Backoff;
pub use clock::{Clock, SimulatedClock, SystemClock};

use crate::config::AgentConfig;
use crate::paths::AgentPaths;
use crate::spool::{Spool, SpoolError, SpoolLimits};
use crate::status::{ApplyMemo, DaemonStatus};
use crate::transport::{Transport, TransportError};

/// After a plan was deferred, how far past the window's opening the
/// machines of a school spread their retries (seconds).
const WINDOW_SPREAD_SECS: u64 = 300;

/// Interval used before the server has said anything (the product default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Delay before the follow-up check-in when work is left (more reports than
/// one check-in carries, inventory requested).
pub const FOLLOW_UP_DELAY: Duration = Duration::from_secs(1);

/// An inventory document and its `content_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct InventorySnapshot {
    /// The document (serialised `nird_proto::inventory::Inventory`).
    pub document: serde_json::Value,
    /// Its canonical content hash.
    pub hash: String,
}

impl InventorySnapshot {
    /// Hashes `document`.
    pub fn new(document: serde_json::Value) -> Result<Self, serde_json::Error> {
        let hash = nird_proto::hash::content_hash(&document)?;
        Ok(InventorySnapshot { document, hash })
    }
}

/// Length of `value` as JSON (0 if it does not serialise).
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0)
}

/// Where the daemon gets the machine's inventory from (the real collector in
/// production; tests change it to simulate hardware changes).
pub trait InventorySource: Send {
    /// Collects the current inventory.
    fn collect(&mut self) -> Result<InventorySnapshot, String>;
}

/// The apply engine, as the daemon sees it.
pub trait Applier: Send {
    /// True when something must be applied now: the assigned set differs
    /// from what was applied, or a deferred apply is due.
    /// `memo` is what the last attempt (persisted across restarts) said.
    fn needs_apply(
        &self,
        assigned: &[ProfileRef],
        memo: &ApplyMemo,
        now: time::OffsetDateTime,
    ) -> bool;
    /// Applies the assigned profiles, fetching releases through `transport`;
    /// the reports to spool (their `seq` is set by the spool).
    /// `memo` is updated with this attempt. Once `cancel` is set (the agent
    /// is stopping) no download starts, nothing is applied and nothing is
    /// reported or remembered.
    fn apply(
        &mut self,
        assigned: &[ProfileRef],
        memo: &mut ApplyMemo,
        transport: &dyn Transport,
        config: &AgentConfig,
        now: time::OffsetDateTime,
        cancel: &AtomicBool,
    ) -> Vec<ApplyReport>;
}

/// Tuning of the loop.
#[derive(Debug, Clone, Copy)]
pub struct DaemonOptions {
    /// First backoff delay.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_cap: Duration,
    /// Spool bounds.
    pub spool_limits: SpoolLimits,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            spool_limits: SpoolLimits::default(),
        }
    }
}

/// How a cycle ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleResult {
    /// The server answered; wait `next` (before jitter).
    Delivered {
        /// Nominal delay before the next cycle.
        next: Duration,
    },
    /// The server was not reached or failed; retry after `retry` (jittered
    /// backoff when transient).
    Failed {
        /// Delay before the next attempt.
        retry: Duration,
        /// The error, in French.
        error: String,
    },
}

impl CycleResult {
    /// The delay before the next cycle.
    pub fn wait(&self) -> Duration {
        match self {
            CycleResult::Delivered { next } => *next,
            CycleResult::Failed { retry, .. } => *retry,
        }
    }
}

/// Why the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// One agent's check-in state machine.
pub struct Agent {
    /// File layout.
    paths: AgentPaths,
    /// Current configuration (replaced on reload).
    config: AgentConfig,
    /// The way to the server.
    transport: Arc<dyn Transport>,
    /// The inventory collector.
    inventory: Box<dyn InventorySource>,
    /// The apply engine, if wired.
    applier: Option<Box<dyn Applier>>,
    /// Reports and inventory changes waiting for the server.
    spool: Spool,
    /// What we know of the server (persisted after each cycle).
    status: DaemonStatus,
    /// Retry delays.
    backoff: Backoff,
    /// The server asked for the full inventory.
    server_wants_inventory: bool,
    /// Interval the server last gave.
    server_interval: Duration,
    /// Seqs of the spool entries the last check-in carried.
    last_sent: Vec<u64>,
    /// Spool entries before the last check-in was sent: a check-in after
    /// which the spool is not smaller delivered nothing, and its follow-up
    /// waits the normal interval (a server that never acknowledges must not
    /// keep the agent checking in every second).
    spool_len_before: usize,
    /// Set by [`run`] when a stop arrives during a cycle: downloads stop.
    cancel: Arc<AtomicBool>,
    /// Set by [`run`] when an apply replaced the agent's own executable and
    /// the new one answers: the service re-executes it
    /// ([`crate::self_update`]).
    reexec: Option<std::path::PathBuf>,
    /// A replaced executable that did not answer: not tried again.
    refused_binary: Option<std::path::PathBuf>,
    /// The next cycle is a maintenance window's opening, for a deferred plan.
    window_wake: bool,
}

/// What a check-in carries from the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// The oldest inventory change and the oldest reports, as many as fit.
    Spool,
    /// Nothing: a heartbeat.
    Nothing,
    /// The one entry at this seq.
    Only(u64),
}

impl Agent {
    /// An agent for the enrolled machine at `paths`.
    pub fn new(
        paths: AgentPaths,
        config: AgentConfig,
        transport: Arc<dyn Transport>,
        inventory: Box<dyn InventorySource>,
        options: DaemonOptions,
    ) -> Result<Self, DaemonError> {
        let spool = Spool::open(&paths.spool_dir(), options.spool_limits)?;
        let status = DaemonStatus::load(&paths);
        Ok(Agent {
            paths,
            config,
            transport,
            inventory,
            applier: None,
            spool,
            status,
            backoff: Backoff::new(options.backoff_base, options.backoff_cap),
            server_wants_inventory: false,
            server_interval: DEFAULT_INTERVAL,
            last_sent: Vec::new(),
            spool_len_before: 0,
            cancel: Arc::new(AtomicBool::new(false)),
            reexec: None,
            refused_binary: None,
            window_wake: false,
        })
    }

    /// The upgraded executable to re-execute, once [`run`] returned for it.
    pub fn take_reexec(&mut self) -> Option<std::path::PathBuf> {
        self.reexec.take()
    }

    /// Wires the apply engine.
    pub fn with_applier(mut self, applier: Box<dyn Applier>) -> Self {
        self.applier = Some(applier);
        self
    }

    /// The spool (tests and `status` look at it).
    pub fn spool(&mut self) -> &mut Spool {
        &mut self.spool
    }

    /// The last persisted status.
    pub fn status(&self) -> &DaemonStatus {
        &self.status
    }

    /// The current configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The cancellation flag: once set, the current cycle starts no more
    /// downloads and applies nothing. [`run`] sets it on [`Control::Stop`]
    /// and clears it when it starts.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Re-reads the configuration (SIGHUP). Interval, jitter, maintenance
    /// windows and log level take effect; a different server, machine or CA
    /// needs a restart (the transport is built once).
    pub fn reload_config(&mut self) -> Result<(), crate::config::ConfigError> {
        let new = AgentConfig::load(&self.paths)?;
        if new.server != self.config.server
            || new.machine_id != self.config.machine_id
            || new.ca_file != self.config.ca_file
        {
            tracing::warn!("server, machine_id or ca_file changed: restart the agent to use them");
        }
        self.config = new;
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// The interval between successful check-ins, before jitter.
    fn interval(&self) -> Duration {
        let floor = Duration::from_secs(self.config.interval_secs.unwrap_or(0));
        self.server_interval.max(floor)
    }

    /// `d` ± the configured jitter, at least one second.
    pub fn jittered(&self, d: Duration) -> Duration {
        let j = self.config.jitter_secs as i64;
        let delta = if j > 0 { rand::random_range(-j..=j) } else { 0 };
        let secs = (d.as_secs() as i64 + delta).max(1) as u64;
        Duration::from_secs(secs)
    }

    /// One check-in cycle at time `now`.
    pub fn cycle(&mut self, now: time::OffsetDateTime) -> CycleResult {
        self.spool_inventory_change();
        let first = match self.check_in(now, Payload::Spool) {
            Err(TransportError::Api { status: 400, .. }) if !self.last_sent.is_empty() => {
                self.set_aside_rejected(now)
            }
            other => other,
        };
        let result = match first {
            Ok(mut response) => {
                let mut next = self.after_checkin(&response, now);
                if self.server_wants_inventory {
                    // The server does not know our inventory (restored from
                    // a backup, say): send it at once.
                    match self.check_in(now, Payload::Spool) {
                        Ok(r) => {
                            next = self.after_checkin(&r, now);
                            response = r;
                        }
                        Err(e) => tracing::warn!(error = %e, "inventory re-send failed"),
                    }
                }
                if self.refresh_trust(&response, now) {
                    // New keys or a new index can change every verdict:
                    // what was refused for want of them is tried again.
                    self.status.last_apply = Default::default();
                }
                if self.run_applier(&response, now) {
                    // Deliver the new reports right away, in this cycle.
                    match self.check_in(now, Payload::Spool) {
                        Ok(r) => next = self.after_checkin(&r, now),
                        Err(e) => {
                            tracing::warn!(error = %e, "follow-up check-in failed; reports stay spooled")
                        }
                    }
                }
                CycleResult::Delivered {
                    next: self.sooner_for_deferred(next, now),
                }
            }
            Err(e) => self.after_failure(e, now),
        };
        self.status.next_checkin_at = Some(now + result.wait());
        if let Err(e) = self.status.save(&self.paths) {
            tracing::error!(error = %e, "cannot write status file");
        }
        result
    }

    /// A plan waiting for a maintenance window is tried again when the
    /// window opens, if that comes before the next check-in (found by
    /// review: it waited for a check-in, which a long interval could put
    /// past the window): at the opening plus a spread of up to
    /// [`WINDOW_SPREAD_SECS`], so that a school's machines do not all start
    /// at once, and without the loop's jitter, which could carry it past a
    /// short window ([`Agent::waits_for_window`]). Only releases assigned
    /// now count: one deferred and then withdrawn waits for nothing.
    fn sooner_for_deferred(&mut self, next: Duration, now: time::OffsetDateTime) -> Duration {
        self.window_wake = false;
        let deferred = self.status.last_apply.outcomes.iter().any(|(name, o)| {
            o.outcome == nird_proto::api::ApplyOutcome::Deferred
                && self
                    .status
                    .assigned
                    .iter()
                    .any(|a| a.name == *name && a.version == o.version)
        });
        if !deferred {
            return next;
        }
        let Ok(windows) = self.config.maintenance.parsed() else {
            return next;
        };
        let offset = crate::apply::guard::local_offset(&self.paths, now);
        match windows.until_next_opening(offset, now) {
            Some(until) if until < next => {
                self.window_wake = true;
                until + Duration::from_secs(rand::random_range(0..=WINDOW_SPREAD_SECS))
            }
            _ => next,
        }
    }

    /// Whether the next cycle is a maintenance window's opening
    /// ([`Agent::sooner_for_deferred`]): the loop does not jitter it.
    pub fn waits_for_window(&self) -> bool {
        self.window_wake
    }

    /// Collects the inventory and spools it if its hash changed since what
    /// the server has or what is already spooled.
    fn spool_inventory_change(&mut self) {
        let snapshot = match self.inventory.collect() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "inventory collection failed");
                return;
            }
        };
        let known = match self.spool.latest_inventory() {
            Ok(Some((_, spooled))) => Some(spooled.hash),
            _ => self.status.server_inventory_hash.clone(),
        };
        if self.status.rejected_inventory_hash.as_deref() == Some(snapshot.hash.as_str()) {
            // The server refused this very document (set aside): spooling
            // it again would only be refused again, a copy each cycle.
            tracing::debug!(hash = %snapshot.hash, "inventory the server refused; not spooled again");
            return;
        }
        if known.as_deref() != Some(snapshot.hash.as_str()) {
            match self
                .spool
                .push_inventory(&snapshot.document, &snapshot.hash)
            {
                Ok(seq) => tracing::info!(seq, hash = %snapshot.hash, "inventory changed; spooled"),
                Err(e) => tracing::error!(error = %e, "cannot spool inventory"),
            }
        }
    }

    /// The server refused (400) a check-in carrying spool entries: one of
    /// them is bad (damaged on disk yet still JSON, or beyond a limit of the
    /// server) and would block every later check-in. If a heartbeat is
    /// accepted, the entries are sent one by one, oldest first; those the
    /// server refuses are set aside, the others delivered.
    fn set_aside_rejected(
        &mut self,
        now: time::OffsetDateTime,
    ) -> Result<CheckinResponse, TransportError> {
        let mut suspects = std::mem::take(&mut self.last_sent);
        suspects.sort_unstable();
        tracing::warn!(
            entries = suspects.len(),
            "check-in with spooled entries refused; sending them one by one"
        );
        let mut last = self.check_in(now, Payload::Nothing)?;
        for seq in suspects {
            match self.check_in(now, Payload::Only(seq)) {
                Ok(r) => last = r,
                Err(TransportError::Api { status: 400, error }) => {
                    tracing::error!(
                        seq,
                        reason = %error.message,
                        "the server refuses this spool entry; set aside as *.rejected"
                    );
                    if let Ok(Some(inventory)) = self.spool.inventory(seq) {
                        self.status.rejected_inventory_hash = Some(inventory.hash);
                    }
                    self.spool.set_aside_rejected(seq);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(last)
    }

    /// Builds and sends one check-in carrying `payload`; on success drops
    /// what the server acknowledged.
    fn check_in(
        &mut self,
        now: time::OffsetDateTime,
        payload: Payload,
    ) -> Result<CheckinResponse, TransportError> {
        self.status.last_attempt_at = Some(now);
        let read_error = |what: &str, e: SpoolError| {
            tracing::error!(error = %e, "cannot read spooled {what}");
        };
        let (pending_inventory, reports) = match payload {
            Payload::Spool => (
                self.spool.oldest_inventory().unwrap_or_else(|e| {
                    read_error("inventory", e);
                    None
                }),
                self.spool
                    .pending_reports(MAX_REPORTS_PER_CHECKIN)
                    .unwrap_or_else(|e| {
                        read_error("reports", e);
                        Vec::new()
                    }),
            ),
            Payload::Nothing => (None, Vec::new()),
            Payload::Only(seq) => (
                self.spool
                    .inventory(seq)
                    .unwrap_or_else(|e| {
                        read_error("inventory", e);
                        None
                    })
                    .map(|inv| (seq, inv)),
                self.spool
                    .report(seq)
                    .unwrap_or_else(|e| {
                        read_error("report", e);
                        None
                    })
                    .into_iter()
                    .collect(),
            ),
        };
        self.spool_len_before = self.spool.len();
        self.last_sent = reports
            .iter()
            .map(|r| r.seq)
            .chain(pending_inventory.as_ref().map(|(seq, _)| *seq))
            .collect();
        let (inventory_hash, inventory, sent_inventory_seq) = match &pending_inventory {
            Some((seq, inv)) => (inv.hash.clone(), Some(inv.inventory.clone()), Some(*seq)),
            None if self.server_wants_inventory && payload == Payload::Spool => {
                match self.inventory.collect() {
                    Ok(s) => (s.hash, Some(s.document), None),
                    Err(_) => (self.known_hash(), None, None),
                }
            }
            None => (self.known_hash(), None, None),
        };
        // What the server will hold if this check-in succeeds.
        let sent_document = inventory.clone();
        let (inventory, inventory_delta) = self.as_delta(inventory);
        let sent_delta = inventory_delta.is_some();
        let request = CheckinRequest {
            inventory_hash: inventory_hash.clone(),
            inventory,
            inventory_delta,
            applied: applied_profiles(&self.paths),
            reports,
            trust: Some(crate::trust::report(&self.paths, now)),
        };
        let sent_reports = request.reports.len();
        let response = self.transport.checkin(&request)?;
        // A delta the server could not apply (it lacks the base) stored
        // nothing: the entry stays spooled and goes whole right away.
        let delta_refused = sent_delta && response.send_inventory;
        let sent_inventory = sent_document.is_some() && !delta_refused;
        let sent_inventory_seq = sent_inventory_seq.filter(|_| !delta_refused);
        if delta_refused {
            tracing::warn!("the server lacks the base of the inventory delta; sending it whole");
            crate::server_inventory::forget(&self.paths);
        }
        if response.assigned.len() > MAX_ASSIGNED {
            tracing::error!(
                assigned = response.assigned.len(),
                max = MAX_ASSIGNED,
                "check-in reply assigns too many releases; reply refused"
            );
            return Err(TransportError::Protocol(format!(
                "le serveur assigne {} profils à cette machine, plus que la limite de {MAX_ASSIGNED} : réponse refusée",
                response.assigned.len()
            )));
        }
        tracing::debug!(
            reports = sent_reports,
            inventory = sent_inventory,
            acked_seq = response.acked_seq,
            "checked in"
        );
        if let Err(e) = self.acknowledge(&response, sent_inventory_seq) {
            tracing::error!(error = %e, "cannot clean the spool");
        }
        if let Some(document) = sent_document.filter(|_| sent_inventory) {
            crate::server_inventory::save(&self.paths, &inventory_hash, &document);
            self.status.server_inventory_hash = Some(inventory_hash);
        }
        self.server_wants_inventory = response.send_inventory && !sent_inventory;
        Ok(response)
    }

    /// `document` as a delta against the copy of what the server holds,
    /// when there is such a copy and the delta is smaller; else unchanged.
    fn as_delta(
        &self,
        document: Option<serde_json::Value>,
    ) -> (
        Option<serde_json::Value>,
        Option<nird_proto::inventory::delta::InventoryDelta>,
    ) {
        let Some(new) = document else {
            return (None, None);
        };
        let base = crate::server_inventory::load(
            &self.paths,
            self.status.server_inventory_hash.as_deref(),
        );
        let delta =
            base.and_then(|b| nird_proto::inventory::delta::diff(&b.inventory, &new, &b.hash));
        match delta {
            Some(d) if json_len(&d) < json_len(&new) => (None, Some(d)),
            _ => (Some(new), None),
        }
    }

    fn known_hash(&self) -> String {
        self.status
            .server_inventory_hash
            .clone()
            .unwrap_or_else(|| "0".repeat(64))
    }

    fn acknowledge(
        &mut self,
        response: &CheckinResponse,
        sent_inventory_seq: Option<u64>,
    ) -> Result<(), SpoolError> {
        let last = self.spool.last_seq();
        if response.acked_seq > last {
            // The server claims reports this agent never numbered: a
            // compromised server (or a spool wiped by hand). Ignore it
            // entirely: acknowledge nothing, and do not raise the counter
            // either — once raised, the next identical claim would look
            // legitimate and drop reports the server never stored.
            tracing::warn!(
                acked_seq = response.acked_seq,
                local_last = last,
                "server acknowledges seqs never handed out; ignored, no report dropped"
            );
        } else {
            let dropped = self.spool.ack_reports(response.acked_seq)?;
            if dropped > 0 {
                tracing::info!(dropped, acked_seq = response.acked_seq, "reports delivered");
            }
        }
        if let Some(seq) = sent_inventory_seq {
            self.spool.ack_inventory(seq)?;
        }
        Ok(())
    }

    /// Updates the state after a successful check-in; returns the delay
    /// before the next one.
    fn after_checkin(&mut self, r: &CheckinResponse, now: time::OffsetDateTime) -> Duration {
        self.backoff.reset();
        // At most a day, as a configured floor: an absurd interval from a
        // misconfigured server would overflow the next check-in's date.
        self.server_interval = Duration::from_secs(
            r.next_checkin_secs
                .clamp(1, crate::config::MAX_INTERVAL_SECS),
        );
        self.status.last_checkin_at = Some(now);
        self.status.last_error = None;
        self.status.consecutive_failures = 0;
        self.status.machine_status = Some(r.status);
        self.status.assigned = r.assigned.clone();
        self.status.acked_seq = r.acked_seq;
        let skew = (now - r.server_time).abs();
        if skew > crate::enroll::MAX_CLOCK_SKEW {
            tracing::warn!(
                skew_secs = skew.whole_seconds(),
                "local clock differs from the server's"
            );
        }
        // More to deliver right away only when this check-in delivered
        // something: a server that acknowledges nothing gets the interval.
        let progressed = self.spool.len() < self.spool_len_before;
        if self.server_wants_inventory || (!self.spool.is_empty() && progressed) {
            FOLLOW_UP_DELAY
        } else {
            self.interval()
        }
    }

    /// Takes the newer keyring(s) and catalogue index the server announces,
    /// each verified (keyrings chained from the one held). True when the
    /// anchors changed. Failures are logged and reported through the trust
    /// report; they never stop the cycle.
    fn refresh_trust(&mut self, r: &CheckinResponse, now: time::OffsetDateTime) -> bool {
        let mut changed = false;
        let mut keyring = match crate::trust::load_keyring(&self.paths) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "keyring unreadable");
                return false;
            }
        };
        let transport = self.transport.as_ref();
        let fetch_pair = |kind: &str, version: u64, max: usize| {
            let path = format!("/{kind}/{version}");
            let doc = transport.fetch(&path, max as u64).map_err(|e| {
                crate::trust::TrustError::Fetch {
                    what: path.clone(),
                    detail: e.to_string(),
                }
            })?;
            let sig = transport
                .fetch(
                    &format!("{path}.minisig"),
                    nird_proto::keyring::MAX_KEYRING_SIGNATURES_BYTES as u64,
                )
                .map_err(|e| crate::trust::TrustError::Fetch {
                    what: format!("{path}.minisig"),
                    detail: e.to_string(),
                })?;
            let sig = String::from_utf8(sig).map_err(|_| crate::trust::TrustError::Fetch {
                what: format!("{path}.minisig"),
                detail: "pas du texte UTF-8".into(),
            })?;
            Ok((doc, sig))
        };
        if let (Some(held), Some(target)) = (keyring.clone(), r.keyring_version)
            && target > held.version
        {
            let fetch = |v: u64| fetch_pair("keyrings", v, nird_proto::keyring::MAX_KEYRING_BYTES);
            let before = held.version;
            match crate::trust::advance_keyring(&self.paths, held, target, &fetch) {
                Ok(k) => {
                    changed |= k.version != before;
                    keyring = Some(k);
                }
                Err(e) => tracing::error!(error = %e, "new keyring refused"),
            }
            // A partial walk keeps what was accepted.
            if let Ok(k) = crate::trust::load_keyring(&self.paths) {
                changed |= k.as_ref().map(|k| k.version) != Some(before);
                keyring = k;
            }
        }
        let Some(keyring) = keyring else {
            if r.keyring_version.is_some() {
                tracing::warn!(
                    "no keyring on this machine: re-enrol with --keyring (the server's is not taken silently)"
                );
            }
            return changed;
        };
        let held_index = crate::trust::load_index(&self.paths, Some(&keyring), now);
        if let Some(v) = r.index_version
            && crate::trust::index_floor(&held_index).is_none_or(|h| v > h)
        {
            match fetch_pair("index", v, nird_proto::index::MAX_INDEX_BYTES).and_then(
                |(bytes, sig)| crate::trust::accept_index(&self.paths, &keyring, &bytes, &sig, now),
            ) {
                Ok(_) => changed = true,
                Err(e) => tracing::error!(error = %e, "catalogue index refused"),
            }
        }
        changed
    }

    /// Runs the apply engine if the assignment needs it; true if it spooled
    /// reports.
    fn run_applier(&mut self, r: &CheckinResponse, now: time::OffsetDateTime) -> bool {
        if r.status != MachineStatus::Active {
            return false;
        }
        let Some(applier) = self.applier.as_mut() else {
            return false;
        };
        if !applier.needs_apply(&r.assigned, &self.status.last_apply, now) {
            return false;
        }
        let reports = applier.apply(
            &r.assigned,
            &mut self.status.last_apply,
            self.transport.as_ref(),
            &self.config,
            now,
            &self.cancel,
        );
        let mut spooled = false;
        for report in reports {
            match self.spool.push_report(report) {
                Ok(seq) => {
                    spooled = true;
                    tracing::info!(seq, "apply report spooled");
                }
                Err(e) => tracing::error!(error = %e, "cannot spool apply report"),
            }
        }
        spooled
    }

    fn after_failure(&mut self, e: TransportError, _now: time::OffsetDateTime) -> CycleResult {
        self.status.consecutive_failures = self.status.consecutive_failures.saturating_add(1);
        let hint = match &e {
            TransportError::Api { status: 401, .. } => {
                " ; le serveur ne reconnaît plus cette machine : ré-enrôlez-la avec « nird-agent enroll --force »"
            }
            TransportError::Api { status: 403, .. } => {
                " ; cette machine a été retirée du parc par un administrateur"
            }
            _ => "",
        };
        self.status.last_error = Some(format!("{e}{hint}"));
        let overloaded = matches!(e, TransportError::Api { status: 503, .. });
        let retry = if overloaded {
            // The server sheds load: come back after a full interval, not
            // after a short backoff.
            let backoff = self.backoff.next_delay();
            let d = self.jittered(self.interval().max(backoff));
            tracing::warn!(error = %e, retry_secs = d.as_secs(), "server overloaded");
            d
        } else if e.is_transient() {
            let d = self.backoff.next_delay_jittered();
            tracing::warn!(error = %e, retry_secs = d.as_secs(), failures = self.backoff.failures(), "check-in failed");
            d
        } else {
            tracing::error!(error = %e, "check-in refused");
            self.interval()
        };
        CycleResult::Failed {
            retry,
            error: format!("{e}{hint}"),
        }
    }
}

/// The profiles applied on the machine at `paths` (name, version), from the
/// apply engine's `applied.json`; empty if none or unreadable.
pub fn applied_profiles(paths: &AgentPaths) -> Vec<ProfileRef> {
    let mut out = crate::apply::state::AppliedState::load(&paths.applied_file())
        .map(|s| s.applied())
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "applied state unreadable");
            Vec::new()
        });
    out.sort();
    out
}

/// What the service manager is told (systemd `sd_notify` in production).
pub trait ServiceHooks: Send + Sync {
    /// The daemon is up (its loop is running).
    fn ready(&self) {}
    /// Still alive (watchdog keep-alive).
    fn watchdog(&self) {}
    /// Reloading configuration.
    fn reloading(&self) {}
    /// Stopping.
    fn stopping(&self) {}
    /// A one-line status for `systemctl status`.
    fn status(&self, _line: &str) {}
    /// How often to call [`ServiceHooks::watchdog`], if at all.
    fn watchdog_interval(&self) -> Option<Duration> {
        None
    }
}

/// No service manager.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl ServiceHooks for NoHooks {}

/// A request to the running loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Finish the current cycle and return.
    Stop,
    /// Re-read the configuration.
    Reload,
}

/// How [`run`] should loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Until told to stop.
    Forever,
    /// One cycle, then return (`run --once`).
    Once,
}

/// The daemon loop. Returns the agent when stopped (tests inspect it, and
/// may start a new loop on it to simulate a restart).
pub async fn run(
    agent: Agent,
    clock: Arc<dyn Clock>,
    mut control: tokio::sync::mpsc::UnboundedReceiver<Control>,
    hooks: Arc<dyn ServiceHooks>,
    mode: RunMode,
) -> Agent {
    let mut agent = agent;
    // A new loop (a restart in tests) starts with downloads allowed.
    let cancel = agent.cancel_flag();
    cancel.store(false, Ordering::SeqCst);
    // Ready as soon as the loop runs: a first check-in against an
    // unreachable server may take minutes, and systemd would time the start
    // out. Progress is reported with STATUS= after each cycle.
    hooks.ready();
    let mut control_open = true;
    let watchdog_every = hooks.watchdog_interval();
    loop {
        let now = clock.now();
        let job = tokio::task::spawn_blocking(move || {
            let result = agent.cycle(now);
            (agent, result)
        });
        let (joined, deferred) = await_cycle(
            job,
            hooks.as_ref(),
            watchdog_every,
            &mut control,
            &mut control_open,
            &cancel,
        )
        .await;
        let (returned, result) = match joined {
            Ok(v) => v,
            // The cycle panicked: nothing sane to continue with.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        agent = returned;
        hooks.status(&match &result {
            CycleResult::Delivered { .. } => format!(
                "dernier contact réussi ; {} rapport(s) en attente",
                agent.spool.report_count()
            ),
            CycleResult::Failed { error, .. } => format!("échec du contact : {error}"),
        });
        if mode == RunMode::Once {
            break;
        }
        // The apply replaced our own executable (a self-update) and its
        // report went out with this cycle: hand over to the new binary.
        if deferred.is_none()
            && let Some(binary) = crate::self_update::replaced_binary()
            && agent.refused_binary.as_ref() != Some(&binary)
        {
            if crate::self_update::answers(&binary) {
                agent.reexec = Some(binary);
                hooks.reloading();
                return agent;
            }
            tracing::error!(
                binary = %binary.display(),
                "the upgraded agent does not answer --version; the running one carries on"
            );
            agent.refused_binary = Some(binary);
        }
        match deferred {
            Some(Control::Stop) => break,
            Some(Control::Reload) => {
                hooks.reloading();
                if let Err(e) = agent.reload_config() {
                    tracing::error!(error = %e, "configuration reload refused; keeping the old one");
                }
                hooks.ready();
            }
            None => {}
        }
        let wait = match &result {
            CycleResult::Delivered { next }
                if *next > FOLLOW_UP_DELAY && !agent.waits_for_window() =>
            {
                agent.jittered(*next)
            }
            other => other.wait(),
        };
        // Wait, staying responsive to control messages and the watchdog.
        let sleep = clock.sleep(wait);
        tokio::pin!(sleep);
        let stop = loop {
            let tick = async {
                match watchdog_every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                msg = control.recv(), if control_open => match msg {
                    Some(Control::Stop) => break true,
                    Some(Control::Reload) => {
                        hooks.reloading();
                        if let Err(e) = agent.reload_config() {
                            tracing::error!(error = %e, "configuration reload refused; keeping the old one");
                        }
                        hooks.ready();
                    }
                    None => control_open = false,
                },
                () = &mut sleep => break false,
                () = tick => hooks.watchdog(),
            }
        };
        if stop {
            break;
        }
    }
    hooks.stopping();
    agent
}

/// Awaits the cycle's blocking job while keeping the watchdog fed (the
/// event loop is alive even while a long apply runs) and listening for
/// control messages: a stop sets `cancel` at once — the release source
/// checks it before each download — and is returned to act on when the job
/// is done; a reload waits for the job too (a stop wins over it).
async fn await_cycle<T>(
    mut job: tokio::task::JoinHandle<T>,
    hooks: &dyn ServiceHooks,
    every: Option<Duration>,
    control: &mut tokio::sync::mpsc::UnboundedReceiver<Control>,
    control_open: &mut bool,
    cancel: &AtomicBool,
) -> (Result<T, tokio::task::JoinError>, Option<Control>) {
    let mut deferred = None;
    loop {
        let tick = async {
            match every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut job => return (r, deferred),
            msg = control.recv(), if *control_open => match msg {
                Some(Control::Stop) => {
                    tracing::info!("stop requested during a cycle; no further download");
                    cancel.store(true, Ordering::SeqCst);
                    deferred = Some(Control::Stop);
                }
                Some(Control::Reload) => {
                    if deferred.is_none() {
                        deferred = Some(Control::Reload);
                    }
                }
                None => *control_open = false,
            },
            () = tick => hooks.watchdog(),
        }
    }
}
