//! Wire types of the agent ↔ server API (`/api/v1`, JSON over HTTPS).
//!
//! This module is the contract between `nird-agent` and `nird-server`: both
//! sides serialise exactly these types, so a field renamed here is a protocol
//! change. Rules that keep it stable:
//! - new fields are added with `#[serde(default)]` so an older peer's message
//!   still parses, and unknown fields are ignored so a newer peer's message
//!   parses too; fields are never renamed or re-typed within one
//!   [`API_VERSION`];
//! - enums are written in `snake_case` strings;
//! - times are RFC 3339 strings (UTC);
//! - hashes are lowercase hex SHA-256 ([`crate::hash::content_hash`] for JSON
//!   documents, [`crate::hash::sha256_hex`] for bytes).
//!
//! # Endpoints (all under `/api/v1`)
//! | method + path | body | reply |
//! |---|---|---|
//! | `POST /enroll` | [`EnrollRequest`] | [`EnrollResponse`] |
//! | `POST /checkin` | [`CheckinRequest`] | [`CheckinResponse`] |
//! | `GET /profiles/{name}/{version}` | — | the exact signed profile bytes |
//! | `GET /profiles/{name}/{version}.minisig` | — | the detached minisign signature (text) |
//! | `GET /blobs/{sha256}` | — | the bytes of a file pinned by a profile |
//! | `GET /keyrings/{version}` | — | a keyring document (`crate::keyring`) |
//! | `GET /keyrings/{version}.minisig` | — | its signature bundle |
//! | `GET /index/{version}` | — | a signed catalogue index (`crate::index`) |
//! | `GET /index/{version}.minisig` | — | its signature |
//! | `GET /openapi.json` | — | the OpenAPI document of this API |
//!
//! The server also serves `GET /metrics` (Prometheus text) outside `/api/v1`.
//!
//! # Authentication
//! `enroll` is authenticated by the enrolment token inside its body. Every
//! other agent call carries the per-machine credential returned by `enroll`:
//!
//! ```text
//! Authorization: Bearer <machine_id>.<secret>
//! ```
//!
//! ([`machine_authorization`] builds the header value.) The server stores
//! only a hash of the secret. A missing or wrong credential gets `401`; a
//! retired machine gets `403`.
//!
//! # TLS pinning
//! `nird-server init` makes a self-signed CA and prints its fingerprint: the
//! lowercase hex SHA-256 of the CA certificate's DER bytes (64 characters, no
//! colons; `nird-server fingerprint --data-dir DIR` prints it again). The
//! server presents the chain `[server certificate, CA certificate]`, so at
//! enrolment the agent can take the CA from the handshake, check its
//! fingerprint against the one the operator gave, verify the server
//! certificate against it, and keep that CA as its only trust anchor.
//!
//! # Errors
//! Every non-2xx reply carries an [`ApiError`] body: `400` malformed JSON or
//! invalid field (the message names the field), `401` bad credential or
//! token, `403` retired machine, `404` unknown profile / blob, `413` body
//! over the limit, `503` overloaded (retry after the interval). A request
//! that gets an error changed nothing on the server.

use serde::{Deserialize, Serialize};

/// Version of this wire contract. It is also the `/api/v{N}` path segment;
/// it changes only for an incompatible change.
pub const API_VERSION: u32 = 1;

/// Path prefix of every agent endpoint.
pub const API_PREFIX: &str = "/api/v1";

/// Largest request body the server accepts, in bytes, counted after
/// decompression for `Content-Encoding: gzip` bodies (a full inventory with
/// 2,500 packages is ≈ 350 KB). Larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Most apply reports one check-in may carry; the agent sends the rest of its
/// spool on the next check-in.
pub const MAX_REPORTS_PER_CHECKIN: usize = 100;

/// Largest check-in or enrolment reply an agent reads, in bytes, counted
/// after decompression (a gzip bomb stops here). Real replies are a few
/// hundred bytes.
pub const MAX_REPLY_BYTES: u64 = 1024 * 1024;

/// Largest sequence number or release version on the wire: 2^53 - 1, the
/// largest integer every JSON implementation reads exactly.
pub const MAX_WIRE_INT: u64 = (1 << 53) - 1;

/// Most releases a check-in reply may assign; an agent refuses a longer
/// list as a server error (a real machine has a handful).
pub const MAX_ASSIGNED: usize = 64;

/// The value of the `Authorization` header for a machine credential.
pub fn machine_authorization(machine_id: &str, secret: &str) -> String {
    format!("Bearer {machine_id}.{secret}")
}

/// `POST /api/v1/enroll`: a freshly installed machine asks to join the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// The enrolment token an administrator created for the school
    /// (`nird-server token create`), exactly as printed.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub token: String,
    /// The machine's hostname, as shown on the dashboard until the inventory
    /// says better. 1 to 253 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 253,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub hostname: String,
    /// The full inventory document (`nird_proto::inventory::Inventory`
    /// serialised). The server treats it as opaque JSON: it stores it and its
    /// hash.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub inventory: serde_json::Value,
    /// `content_hash` of `inventory` (lowercase hex SHA-256 of its canonical
    /// JSON). The server recomputes it and refuses a mismatch with `400`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9a-f]{64}$"))]
    pub inventory_hash: String,
}

/// Reply to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    /// The machine's identifier, first half of its credential.
    pub machine_id: String,
    /// The machine's secret, second half of its credential. Shown once: the
    /// server keeps only its hash. The agent stores it readable by root only.
    pub secret: String,
    /// Seconds the agent should wait before its first check-in.
    pub checkin_interval_secs: u64,
    /// The server's clock, RFC 3339 UTC, so the agent can detect clock skew
    /// (profile expiry checks depend on its clock).
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: time::OffsetDateTime,
    /// The machine's status right after enrolment: `pending` when the school
    /// requires approval, else `active`.
    pub status: MachineStatus,
    /// The school the token enrolled the machine into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<EnrolledSchool>,
}

/// Where a machine stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MachineStatus {
    /// Enrolled, waiting for an administrator's approval: checks in, gets no
    /// profiles.
    Pending,
    /// Approved: gets its assigned profiles.
    Active,
    /// Taken out of the fleet: every call is refused with `403`.
    Retired,
}

impl MachineStatus {
    /// The lowercase name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineStatus::Pending => "pending",
            MachineStatus::Active => "active",
            MachineStatus::Retired => "retired",
        }
    }

    /// Inverse of [`MachineStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(MachineStatus::Pending),
            "active" => Some(MachineStatus::Active),
            "retired" => Some(MachineStatus::Retired),
            _ => None,
        }
    }
}

/// `POST /api/v1/checkin`: the periodic heartbeat. Small when nothing
/// changed: a hash, a few profile versions, no reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckinRequest {
    /// `content_hash` of the machine's current inventory.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9a-f]{64}$"))]
    pub inventory_hash: String,
    /// The full inventory, sent only when the server asked for it
    /// (`send_inventory` in the previous reply) or when the hash changed.
    /// Its `content_hash` must equal `inventory_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub inventory: Option<serde_json::Value>,
    /// Instead of `inventory`: the change from the document the server
    /// acknowledged last (`base_hash`) to the one whose hash is
    /// `inventory_hash` ([`crate::inventory::delta`]). A server that does not
    /// hold that base, or whose rebuilt document does not hash to
    /// `inventory_hash`, stores nothing and answers `send_inventory`; the
    /// agent then sends the full document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_delta: Option<crate::inventory::delta::InventoryDelta>,
    /// The profile releases currently applied on the machine.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub applied: Vec<ProfileRef>,
    /// Apply reports queued in the agent's spool, oldest first, at most
    /// [`MAX_REPORTS_PER_CHECKIN`].
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub reports: Vec<ApplyReport>,
    /// The agent's keyring and index versions and trust problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustReport>,
}

/// A profile release: its name and version (the signed profile's own
/// `name` and `version` fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileRef {
    /// Profile name, e.g. `primtux-base`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)
    )]
    pub name: String,
    /// Monotonic release number of that profile.
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740991.0))]
    pub version: u64,
}

/// Reply to a check-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckinResponse {
    /// The machine's status. `pending` machines get no profiles.
    pub status: MachineStatus,
    /// True when the server does not know `inventory_hash`: the agent sends
    /// its full inventory on the next check-in (or retries this one at once
    /// with it).
    pub send_inventory: bool,
    /// Highest apply report `seq` the server has stored for this machine
    /// (0 when none). The agent drops every spooled report with
    /// `seq <= acked_seq`.
    pub acked_seq: u64,
    /// The profile releases assigned to this machine, latest published
    /// version of each, sorted by name. Empty for pending machines.
    pub assigned: Vec<ProfileRef>,
    /// Seconds until the next check-in. The server raises it under load; the
    /// agent adds its own jitter.
    pub next_checkin_secs: u64,
    /// Newest keyring version published on the server: an agent holding an
    /// older one fetches `keyrings/{v}` for each next version and verifies
    /// the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring_version: Option<u64>,
    /// Newest signed catalogue index version on the server (`index/{v}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_version: Option<u64>,
    /// The server's clock, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: time::OffsetDateTime,
}

/// What happened when the agent handled one profile release. Reports are
/// stored idempotently by `(machine, seq)`: sending the same report twice
/// (a retry after a lost reply) stores it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApplyReport {
    /// Per-machine sequence number, strictly increasing from 1, given by the
    /// agent's spool.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 9007199254740991.0))]
    pub seq: u64,
    /// Profile name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)
    )]
    pub profile: String,
    /// Profile version the agent handled.
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740991.0))]
    pub version: u64,
    /// The overall result.
    pub outcome: ApplyOutcome,
    /// Why the release was refused, when `outcome` is `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefusalReason>,
    /// Free-text detail for people (French or English), at most a few
    /// hundred characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub message: Option<String>,
    /// One entry per resource of the profile the agent looked at.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10000))]
    pub resources: Vec<ResourceResult>,
    /// When the agent started handling the release.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: time::OffsetDateTime,
}

/// Overall result of handling one profile release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ApplyOutcome {
    /// Every resource is in the desired state.
    Applied,
    /// The release was not applied because verification failed (`reason`
    /// says why); nothing was changed.
    Refused,
    /// At least one resource failed.
    Failed,
    /// Postponed (e.g. a user session is active and the change is
    /// disruptive); it will be applied in a maintenance window.
    Deferred,
}

impl ApplyOutcome {
    /// The lowercase name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Applied => "applied",
            ApplyOutcome::Refused => "refused",
            ApplyOutcome::Failed => "failed",
            ApplyOutcome::Deferred => "deferred",
        }
    }
}

/// Stable reason codes for a refused release. They match
/// `ReleaseError::code()` of the signature module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RefusalReason {
    /// The signature does not match the bytes.
    BadSignature,
    /// Signed by a key the machine does not trust.
    UnknownKey,
    /// The `.minisig` file could not be read.
    MalformedSignature,
    /// The profile's `name` is not the one that was assigned.
    WrongName,
    /// The version is lower than the last one applied.
    Rollback,
    /// The profile's `expires` date has passed.
    Expired,
    /// The profile does not parse.
    ParseError,
    /// A pinned file's bytes do not match its sha256 or size.
    BlobMismatch,
    /// The release cannot be composed with the others: an included profile
    /// is missing, includes form a cycle, or two profiles disagree about one
    /// resource.
    ResolveError,
    /// The profile's `expires` is further ahead than agents accept.
    ExpiryTooFar,
    /// The release is not the one the signed catalogue index pins (absent,
    /// other version, other bytes).
    NotInIndex,
    /// Older than the current version the signed catalogue index gives
    /// (first-contact rollback).
    Stale,
    /// The machine's newest signed catalogue index has expired: the server
    /// looks frozen.
    IndexExpired,
    /// No signed catalogue index received yet.
    NoIndex,
    /// The profile's signed targeting (audience, académies, départements,
    /// UAIs) excludes this machine's school.
    NotTargeted,
    /// The machine holds no keyring (no trusted key).
    NoKeyring,
    /// The machine's keyring has expired.
    KeyringExpired,
}

impl RefusalReason {
    /// The stable snake_case code (as on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::UnknownKey => "unknown_key",
            RefusalReason::MalformedSignature => "malformed_signature",
            RefusalReason::WrongName => "wrong_name",
            RefusalReason::Rollback => "rollback",
            RefusalReason::Expired => "expired",
            RefusalReason::ParseError => "parse_error",
            RefusalReason::BlobMismatch => "blob_mismatch",
            RefusalReason::ResolveError => "resolve_error",
            RefusalReason::ExpiryTooFar => "expiry_too_far",
            RefusalReason::NotInIndex => "not_in_index",
            RefusalReason::Stale => "stale",
            RefusalReason::IndexExpired => "index_expired",
            RefusalReason::NoIndex => "no_index",
            RefusalReason::NotTargeted => "not_targeted",
            RefusalReason::NoKeyring => "no_keyring",
            RefusalReason::KeyringExpired => "keyring_expired",
        }
    }

    /// The reason with this code, if any (inverse of [`Self::as_str`]).
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// What the refusal means, in French, for the dashboard and the agent's
    /// own messages.
    pub fn label_fr(self) -> &'static str {
        match self {
            RefusalReason::BadSignature => "signature invalide (profil modifié après signature)",
            RefusalReason::UnknownKey => "signé par une clé que la machine ne connaît pas",
            RefusalReason::MalformedSignature => "fichier de signature illisible",
            RefusalReason::WrongName => "le profil ne porte pas le nom attribué",
            RefusalReason::Rollback => "version plus ancienne que celle déjà appliquée",
            RefusalReason::Expired => "version expirée",
            RefusalReason::ParseError => "profil illisible",
            RefusalReason::BlobMismatch => "un fichier ne correspond pas à son empreinte",
            RefusalReason::ResolveError => "une inclusion manque ou entre en conflit",
            RefusalReason::ExpiryTooFar => "expiration à plus de 400 jours",
            RefusalReason::NotInIndex => "absent de l'index signé du catalogue",
            RefusalReason::Stale => "une version plus récente figure dans l'index signé",
            RefusalReason::IndexExpired => "index du catalogue expiré",
            RefusalReason::NoIndex => "aucun index signé du catalogue reçu",
            RefusalReason::NotTargeted => "ne vise pas cet établissement",
            RefusalReason::NoKeyring => "aucun trousseau de clés : réinscrire la machine",
            RefusalReason::KeyringExpired => "trousseau de clés expiré",
        }
    }

    /// A stored refusal text `NAME vN : code (detail)` with its code
    /// replaced by the French label (other texts unchanged).
    pub fn humanize(text: &str) -> String {
        let Some((release, rest)) = text.split_once(" : ") else {
            return text.to_owned();
        };
        let (code, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        match Self::parse(code) {
            Some(r) if detail.is_empty() => format!("{release} : {}", r.label_fr()),
            Some(r) => format!("{release} : {} {detail}", r.label_fr()),
            None => text.to_owned(),
        }
    }

    /// Every reason, for tables and tests.
    pub const ALL: [RefusalReason; 17] = [
        RefusalReason::BadSignature,
        RefusalReason::UnknownKey,
        RefusalReason::MalformedSignature,
        RefusalReason::WrongName,
        RefusalReason::Rollback,
        RefusalReason::Expired,
        RefusalReason::ParseError,
        RefusalReason::BlobMismatch,
        RefusalReason::ResolveError,
        RefusalReason::ExpiryTooFar,
        RefusalReason::NotInIndex,
        RefusalReason::Stale,
        RefusalReason::IndexExpired,
        RefusalReason::NoIndex,
        RefusalReason::NotTargeted,
        RefusalReason::NoKeyring,
        RefusalReason::KeyringExpired,
    ];
}

/// The school a machine was enrolled into, as the server knows it; the
/// agent records it at enrolment (trust on first use, like the CA) and
/// checks every release's signed targeting against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolledSchool {
    /// UAI code of the school.
    pub uai: String,
    /// `ecole`, `college` or `lycee`.
    pub kind: String,
    /// Académie name, e.g. `Lille`.
    pub academie: String,
}

/// What the agent knows about its trust anchors, sent with every check-in
/// so the server can show a frozen or mis-keyed machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustReport {
    /// Version of the keyring the agent holds (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740991.0))]
    pub keyring_version: Option<u64>,
    /// Version of the newest valid catalogue index it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 9007199254740991.0))]
    pub index_version: Option<u64>,
    /// What is wrong, as stable codes: `no_keyring`, `keyring_expired`,
    /// `no_index`, `index_expired`, `applied_expired:NAME` (an applied
    /// release is past its `expires` and no newer one arrived),
    /// `keyring_refused` / `index_refused` (the server offered one that did
    /// not verify). Empty when all is well. At most 32 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<TrustProblem>, max_items = 32))]
    pub problems: Vec<String>,
}

/// Most entries in [`TrustReport::problems`].
pub const MAX_TRUST_PROBLEMS: usize = 32;

/// Schema of one [`TrustReport::problems`] entry: a lowercase code, then
/// optionally `:` and a profile name.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(pattern = r"^[a-z_]{1,32}(:[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)?$")]
pub struct TrustProblem(#[allow(dead_code)] String);

/// Result for one resource of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceResult {
    /// The resource's identifier inside the profile, e.g. `package:gcompris`
    /// or `file:/etc/nird/motd`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub id: String,
    /// What the agent did to it.
    pub status: ResourceStatus,
    /// Detail, mostly for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub message: Option<String>,
}

/// What the agent did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ResourceStatus {
    /// Already in the desired state.
    Unchanged,
    /// Changed to the desired state.
    Changed,
    /// Could not be brought to the desired state.
    Failed,
}

impl ResourceStatus {
    /// The lowercase name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Unchanged => "unchanged",
            ResourceStatus::Changed => "changed",
            ResourceStatus::Failed => "failed",
        }
    }
}

/// Body of every error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// Stable machine-readable code: `bad_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `payload_too_large`, `overloaded`,
    /// `internal`.
    pub error: String,
    /// A sentence for people, in French; for `bad_request` it names the
    /// offending field.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_texts_are_humanized() {
        assert_eq!(
            RefusalReason::humanize("primtux v3 : unknown_key"),
            "primtux v3 : signé par une clé que la machine ne connaît pas"
        );
        assert_eq!(
            RefusalReason::humanize("primtux v3 : stale (v4 in index)"),
            "primtux v3 : une version plus récente figure dans l'index signé (v4 in index)"
        );
        assert_eq!(RefusalReason::humanize("x : ?"), "x : ?");
        assert_eq!(RefusalReason::humanize("free text"), "free text");
        for r in RefusalReason::ALL {
            assert!(!r.label_fr().is_empty());
        }
    }

    fn at(s: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn checkin_roundtrip_and_wire_names() {
        let req = CheckinRequest {
            inventory_hash: "ab".repeat(32),
            inventory: None,
            inventory_delta: None,
            applied: vec![ProfileRef {
                name: "primtux-base".into(),
                version: 3,
            }],
            reports: vec![ApplyReport {
                seq: 7,
                profile: "primtux-base".into(),
                version: 3,
                outcome: ApplyOutcome::Refused,
                reason: Some(RefusalReason::BadSignature),
                message: None,
                resources: vec![ResourceResult {
                    id: "package:gcompris".into(),
                    status: ResourceStatus::Unchanged,
                    message: None,
                }],
                started_at: at("2026-01-05T08:00:00Z"),
                finished_at: at("2026-01-05T08:00:02Z"),
            }],
            trust: None,
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["reports"][0]["outcome"], "refused");
        assert_eq!(json["reports"][0]["reason"], "bad_signature");
        assert_eq!(json["reports"][0]["resources"][0]["status"], "unchanged");
        assert_eq!(json["reports"][0]["started_at"], "2026-01-05T08:00:00Z");
        assert!(json.get("inventory").is_none());
        let back: CheckinRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn minimal_heartbeat_parses_and_stays_small() {
        let body = format!(r#"{{"inventory_hash":"{}"}}"#, "0".repeat(64));
        let req: CheckinRequest = serde_json::from_str(&body).unwrap();
        assert!(req.applied.is_empty() && req.reports.is_empty());
        assert!(body.len() <= 512);
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        // A newer agent may send fields an older server does not know yet.
        let req: CheckinRequest =
            serde_json::from_str(r#"{"inventory_hash":"x","added_in_v1_1":1}"#).unwrap();
        assert_eq!(req.inventory_hash, "x");
        let err = serde_json::from_str::<CheckinRequest>(r#"{"applied":[]}"#).unwrap_err();
        assert!(err.to_string().contains("inventory_hash"), "{err}");
    }

    #[test]
    fn status_names_roundtrip() {
        for s in [
            MachineStatus::Pending,
            MachineStatus::Active,
            MachineStatus::Retired,
        ] {
            assert_eq!(MachineStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for r in [
            RefusalReason::BlobMismatch,
            RefusalReason::MalformedSignature,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(machine_authorization("m1", "s"), "Bearer m1.s");
    }
}
