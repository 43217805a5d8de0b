//! The agent API handlers (`/api/v1`): enrol, check in, fetch profiles and
//! blobs. Each validates its input completely before touching the store.
//!
//! Downloads are for the machine's assigned closure only
//! ([`crate::store::Store::assigned_closure`]): a release outside it, or a
//! blob no release of it pins, gets the same 404 as an unknown one, and a
//! pending machine gets nothing. Blobs are streamed chunk by chunk within
//! the in-flight memory budget ([`super::budget::BlobBody`]).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nird_proto::api::{
    ApplyReport, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    MAX_REPORTS_PER_CHECKIN, MAX_TRUST_PROBLEMS, MAX_WIRE_INT, MachineStatus, TrustReport,
};
use nird_proto::hash::{CanonicalObject, is_sha256_hex, sha256_hex};
use nird_proto::profile::is_slug;

use std::sync::Arc;

use super::AppState;
use super::error::{ApiJsonWithInventory, HttpError, SentInventory};
use super::metrics::InventoryForm;
use super::watchdog::ResponseDeadline;
use crate::secrets;
use crate::store::{Checkin, NewMachine};

/// Longest free-text message accepted in a report, in bytes.
const MAX_MESSAGE: usize = 4096;
/// Most resources in one report.
const MAX_RESOURCES: usize = 10_000;

/// The credential of an authenticated agent call.
pub struct Credential {
    /// Machine id (first half).
    pub machine_id: String,
    /// SHA-256 of the secret (second half).
    pub secret_hash: String,
}

/// Reads `Authorization: Bearer <machine_id>.<secret>`.
/// The machine credential's form, checked before the body is read: a
/// check-in without one gets 401 whatever its body holds.
pub struct MachineCredential(pub Credential);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MachineCredential {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, HttpError> {
        credential(&parts.headers).map(MachineCredential)
    }
}

pub fn credential(headers: &HeaderMap) -> Result<Credential, HttpError> {
    let bad = || HttpError::unauthorized("identifiants de machine absents ou mal formés");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(bad)?;
    let token = value.strip_prefix("Bearer ").ok_or_else(bad)?;
    let (id, secret) = token.trim().split_once('.').ok_or_else(bad)?;
    if id.is_empty() || secret.is_empty() || id.len() > 64 || secret.len() > 128 {
        return Err(bad());
    }
    Ok(Credential {
        machine_id: id.to_owned(),
        secret_hash: secrets::hash_secret(secret),
    })
}

/// Checks the credential of a read-only agent call (keyrings, indexes).
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<MachineStatus, HttpError> {
    let cred = credential(headers)?;
    let auth = state
        .store
        .authenticate(&cred.machine_id, &cred.secret_hash)
        .await?;
    Ok(auth.status)
}

/// A `200` with raw bytes of the given content type.
fn reply(content_type: &'static str, body: impl IntoResponse) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Checks an inventory as the body brought it against its announced hash;
/// returns it as a canonical object. The text agents send is already
/// canonical (found so by the scan of the body): it is then hashed and
/// kept as it is, without building it as a value (≈ 250 KB with 2,500
/// packages); any other spelling of a JSON object was parsed and is
/// re-encoded, so that either way the hash checked is that of the
/// canonical encoding.
fn checked_sent_inventory(
    inventory: SentInventory,
    announced: &str,
    field: &str,
) -> Result<CanonicalObject, HttpError> {
    match inventory {
        // The scan that found it canonical found its members for the store.
        SentInventory::Canonical(document) => {
            check_announced(&document, announced)?;
            Ok(document)
        }
        SentInventory::Parsed(value) => checked_inventory(&value, announced, field),
    }
}

fn not_an_object(field: &str) -> HttpError {
    HttpError::bad_request(format!(
        "champ « {field} » : l'inventaire doit être un objet JSON"
    ))
}

/// Checks that a document hashes to `announced`.
fn check_announced(document: &CanonicalObject, announced: &str) -> Result<(), HttpError> {
    let actual = document.sha256_hex();
    if actual != announced {
        return Err(HttpError::bad_request(format!(
            "champ « inventory_hash » : ne correspond pas à l'inventaire envoyé (calculé : {actual})"
        )));
    }
    Ok(())
}

/// Checks an inventory against its announced hash; returns its canonical
/// JSON text.
fn checked_inventory(
    inventory: &serde_json::Value,
    announced: &str,
    field: &str,
) -> Result<CanonicalObject, HttpError> {
    let serde_json::Value::Object(map) = inventory else {
        return Err(not_an_object(field));
    };
    // Encoded once: its hash is `content_hash`, its text is what is stored.
    let document = CanonicalObject::from_map(map)
        .map_err(|e| HttpError::bad_request(format!("champ « {field} » : {e}")))?;
    check_announced(&document, announced)?;
    Ok(document)
}

/// The document an inventory delta makes of the machine's latest one, as
/// canonical JSON text, when the server holds the delta's base and the
/// result hashes to `announced`. `None` otherwise: nothing is stored and,
/// the hashes differing, the reply asks for the full document.
async fn rebuilt_inventory(
    state: &AppState,
    machine_id: &str,
    delta: nird_proto::inventory::delta::InventoryDelta,
    announced: &str,
) -> Result<Option<CanonicalObject>, HttpError> {
    let Some(base) = state.store.latest_inventory(machine_id).await? else {
        return Ok(None);
    };
    let announced = announced.to_owned();
    let machine = machine_id.to_owned();
    // Parsing, patching and hashing a 2,500-package document takes a few
    // milliseconds: off the async threads.
    tokio::task::spawn_blocking(move || {
        // Stored documents are canonical JSON: their hash is that of the
        // text.
        if sha256_hex(base.as_bytes()) != delta.base_hash {
            tracing::info!(machine = %machine, "inventory delta against an unknown base; full document asked");
            return None;
        }
        let base: serde_json::Value = serde_json::from_str(&base).ok()?;
        let rebuilt = match nird_proto::inventory::delta::apply(&base, &delta) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!(machine = %machine, error = %e, "inventory delta not applicable; full document asked");
                return None;
            }
        };
        match checked_inventory(&rebuilt, &announced, "inventory_delta") {
            Ok(text) => Some(text),
            Err(e) => {
                tracing::warn!(machine = %machine, error = %e.message, "rebuilt inventory does not match its hash; full document asked");
                None
            }
        }
    })
    .await
    .map_err(|e| HttpError::from(crate::store::StoreError::Backend(format!("delta task: {e}"))))
}

/// Checks an inventory delta's form (what its OpenAPI schema states).
fn check_delta_form(delta: &nird_proto::inventory::delta::InventoryDelta) -> Result<(), HttpError> {
    check_hash(&delta.base_hash, "inventory_delta.base_hash")?;
    if let Some(sw) = &delta.software
        && !sw.upserted.iter().all(serde_json::Value::is_object)
    {
        return Err(HttpError::bad_request(
            "champ « inventory_delta.software.upserted » : objets attendus",
        ));
    }
    Ok(())
}

/// Checks a `sha256` hex field.
fn check_hash(value: &str, field: &str) -> Result<(), HttpError> {
    if is_sha256_hex(value) {
        Ok(())
    } else {
        Err(HttpError::bad_request(format!(
            "champ « {field} » : attendu 64 chiffres hexadécimaux minuscules (sha256)"
        )))
    }
}

/// Checks a profile name (the slug every profile has) and version (fits
/// SQLite's integers).
fn check_profile_ref(name: &str, version: u64, field: &str) -> Result<(), HttpError> {
    if !is_slug(name) {
        return Err(HttpError::bad_request(format!(
            "champ « {field} » : nom de profil invalide"
        )));
    }
    if version > MAX_WIRE_INT {
        return Err(HttpError::bad_request(format!(
            "champ « {field} » : version trop grande (au plus 2^53-1)"
        )));
    }
    Ok(())
}

/// Checks every report of a check-in.
fn check_reports(reports: &[ApplyReport]) -> Result<(), HttpError> {
    if reports.len() > MAX_REPORTS_PER_CHECKIN {
        return Err(HttpError::bad_request(format!(
            "champ « reports » : au plus {MAX_REPORTS_PER_CHECKIN} rapports par check-in"
        )));
    }
    for (i, r) in reports.iter().enumerate() {
        if r.seq == 0 || r.seq > MAX_WIRE_INT {
            return Err(HttpError::bad_request(format!(
                "champ « reports[{i}].seq » : doit être entre 1 et 2^53-1"
            )));
        }
        check_profile_ref(&r.profile, r.version, &format!("reports[{i}].profile"))?;
        if r.message
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
        {
            return Err(HttpError::bad_request(format!(
                "champ « reports[{i}].message » : trop long"
            )));
        }
        if r.resources.len() > MAX_RESOURCES {
            return Err(HttpError::bad_request(format!(
                "champ « reports[{i}].resources » : trop de ressources"
            )));
        }
        for (j, res) in r.resources.iter().enumerate() {
            if res.id.is_empty() || res.id.chars().count() > 1024 {
                return Err(HttpError::bad_request(format!(
                    "champ « reports[{i}].resources[{j}].id » : vide ou trop long"
                )));
            }
            if res
                .message
                .as_ref()
                .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
            {
                return Err(HttpError::bad_request(format!(
                    "champ « reports[{i}].resources[{j}].message » : trop long"
                )));
            }
        }
    }
    Ok(())
}

/// `POST /api/v1/enroll`.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "agent",
    request_body = nird_proto::api::EnrollRequest,
    responses(
        (status = 200, description = "Machine enrolled", body = nird_proto::api::EnrollResponse),
        (status = 400, description = "Invalid body (the message names the field)", body = nird_proto::api::ApiError),
        (status = 401, description = "Unknown, expired, exhausted or revoked token", body = nird_proto::api::ApiError),
        (status = 413, description = "Body over the limit", body = nird_proto::api::ApiError),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    ApiJsonWithInventory(req, inventory): ApiJsonWithInventory<EnrollRequest>,
) -> Result<axum::Json<EnrollResponse>, HttpError> {
    if req.token.is_empty() || req.token.chars().count() > 256 {
        return Err(HttpError::bad_request(
            "champ « token » : vide ou trop long",
        ));
    }
    // Lengths count characters, as the OpenAPI document's `maxLength` does.
    let hostname = req.hostname.trim();
    if hostname.is_empty()
        || req.hostname.chars().count() > 253
        || req.hostname.chars().any(char::is_control)
    {
        return Err(HttpError::bad_request(
            "champ « hostname » : 1 à 253 caractères imprimables",
        ));
    }
    check_hash(&req.inventory_hash, "inventory_hash")?;
    let inventory = match inventory {
        Some(text) => checked_sent_inventory(text, &req.inventory_hash, "inventory")?,
        None => return Err(not_an_object("inventory")),
    };
    let machine_id = secrets::new_machine_id();
    let secret = secrets::new_secret();
    let enrolment = state
        .store
        .enroll(NewMachine {
            token_hash: secrets::hash_secret(&req.token),
            machine_id: machine_id.clone(),
            secret_hash: secrets::hash_secret(&secret),
            hostname: hostname.to_owned(),
            inventory,
            inventory_hash: req.inventory_hash,
        })
        .await?;
    tracing::info!(machine = %machine_id, hostname, "machine enrolled");
    Ok(axum::Json(EnrollResponse {
        machine_id,
        secret,
        checkin_interval_secs: state.checkin_interval(),
        server_time: time::OffsetDateTime::now_utc(),
        status: enrolment.status,
        school: Some(enrolment.school),
    }))
}

/// `POST /api/v1/checkin`.
#[utoipa::path(post, path = "/api/v1/checkin", tag = "agent",
    request_body = nird_proto::api::CheckinRequest,
    security(("machine" = [])),
    responses(
        (status = 200, description = "Check-in recorded", body = nird_proto::api::CheckinResponse),
        (status = 400, description = "Invalid body (the message names the field)", body = nird_proto::api::ApiError),
        (status = 401, description = "Bad machine credential", body = nird_proto::api::ApiError),
        (status = 403, description = "Machine retired", body = nird_proto::api::ApiError),
        (status = 413, description = "Body over the limit", body = nird_proto::api::ApiError),
    ))]
pub async fn checkin(
    State(state): State<AppState>,
    MachineCredential(cred): MachineCredential,
    ApiJsonWithInventory(req, inventory): ApiJsonWithInventory<CheckinRequest>,
) -> Result<axum::Json<CheckinResponse>, HttpError> {
    check_hash(&req.inventory_hash, "inventory_hash")?;
    // The whole document, when sent, supersedes a delta sent with it (the
    // delta is still checked for form).
    let (inventory, form) = match (inventory, req.inventory_delta) {
        (Some(inv), delta) => {
            if let Some(delta) = delta {
                check_delta_form(&delta)?;
            }
            let text = checked_sent_inventory(inv, &req.inventory_hash, "inventory")?;
            (Some(text), Some(InventoryForm::Document))
        }
        (None, Some(delta)) => {
            check_delta_form(&delta)?;
            state
                .store
                .authenticate(&cred.machine_id, &cred.secret_hash)
                .await?;
            let rebuilt =
                rebuilt_inventory(&state, &cred.machine_id, delta, &req.inventory_hash).await?;
            let form = if rebuilt.is_some() {
                InventoryForm::Delta
            } else {
                InventoryForm::DeltaRefused
            };
            (rebuilt, Some(form))
        }
        (None, None) => (None, None),
    };
    if req.applied.len() > 1000 {
        return Err(HttpError::bad_request(
            "champ « applied » : trop de profils",
        ));
    }
    for (i, p) in req.applied.iter().enumerate() {
        check_profile_ref(&p.name, p.version, &format!("applied[{i}].name"))?;
    }
    check_reports(&req.reports)?;
    let trust = req.trust.as_ref().map(checked_trust).transpose()?;
    let outcome = state
        .store
        .checkin(Checkin {
            machine_id: cred.machine_id,
            secret_hash: cred.secret_hash,
            inventory_hash: req.inventory_hash,
            inventory,
            applied: req.applied,
            reports: req.reports,
            trust,
            max_inventory_changes_per_day: state.inventory_changes_per_day,
        })
        .await?;
    if let Some(form) = form {
        state.metrics.record_inventory(form);
    }
    Ok(axum::Json(CheckinResponse {
        status: outcome.status,
        send_inventory: outcome.send_inventory,
        acked_seq: outcome.acked_seq,
        assigned: outcome.assigned,
        next_checkin_secs: state.checkin_interval(),
        server_time: time::OffsetDateTime::now_utc(),
        keyring_version: outcome.keyring_version,
        index_version: outcome.index_version,
    }))
}

/// Checks an agent's trust report; returns its JSON text.
fn checked_trust(trust: &TrustReport) -> Result<String, HttpError> {
    for (field, v) in [
        ("keyring_version", trust.keyring_version),
        ("index_version", trust.index_version),
    ] {
        if v.is_some_and(|v| v > MAX_WIRE_INT) {
            return Err(HttpError::bad_request(format!(
                "champ « trust.{field} » : au plus 2^53-1"
            )));
        }
    }
    if trust.problems.len() > MAX_TRUST_PROBLEMS {
        return Err(HttpError::bad_request(format!(
            "champ « trust.problems » : au plus {MAX_TRUST_PROBLEMS} entrées"
        )));
    }
    for (i, p) in trust.problems.iter().enumerate() {
        let (code, profile) = p.split_once(':').unwrap_or((p.as_str(), ""));
        let code_ok = !code.is_empty()
            && code.len() <= 32
            && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        // The profile part is only shown, never looked up: any name of 1 to
        // 64 lowercase letters, digits and inner hyphens (the OpenAPI
        // pattern of `TrustProblem`).
        let profile_ok = profile.is_empty()
            || (profile.len() <= 64
                && profile
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !profile.starts_with('-')
                && !profile.ends_with('-'));
        if !code_ok || !profile_ok || (p.contains(':') && profile.is_empty()) {
            return Err(HttpError::bad_request(format!(
                "champ « trust.problems[{i}] » : code inconnu ou mal formé"
            )));
        }
    }
    serde_json::to_string(trust).map_err(|e| HttpError::bad_request(e.to_string()))
}

/// `GET /api/v1/keyrings/{version}` (the keyring document) and
/// `GET /api/v1/keyrings/{version}.minisig` (its signature bundle).
#[utoipa::path(get, path = "/api/v1/keyrings/{file}", tag = "agent",
    security(("machine" = [])),
    params(("file" = String, Path, description = "`{version}` for the keyring, `{version}.minisig` for its signatures")),
    responses(
        (status = 200, description = "The exact signed bytes", content_type = "application/octet-stream"),
        (status = 401, description = "Bad machine credential", body = nird_proto::api::ApiError),
        (status = 403, description = "Machine retired", body = nird_proto::api::ApiError),
        (status = 404, description = "No such keyring", body = nird_proto::api::ApiError),
    ))]
pub async fn keyring(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, HttpError> {
    authenticate(&state, &headers).await?;
    let (version, want_signature) = split_signed_file(&file);
    let not_found = || HttpError::not_found(format!("trousseau {file} inconnu"));
    let version = version.ok_or_else(not_found)?;
    let doc = state.store.keyring(version).await?.ok_or_else(not_found)?;
    Ok(signed_reply(doc, want_signature))
}

/// `GET /api/v1/index/{version}` (a signed catalogue index) and
/// `GET /api/v1/index/{version}.minisig`.
#[utoipa::path(get, path = "/api/v1/index/{file}", tag = "agent",
    security(("machine" = [])),
    params(("file" = String, Path, description = "`{version}` for the index, `{version}.minisig` for its signature")),
    responses(
        (status = 200, description = "The exact signed bytes", content_type = "application/octet-stream"),
        (status = 401, description = "Bad machine credential", body = nird_proto::api::ApiError),
        (status = 403, description = "Machine retired", body = nird_proto::api::ApiError),
        (status = 404, description = "No such index", body = nird_proto::api::ApiError),
    ))]
pub async fn catalogue_index(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, HttpError> {
    // The index names every profile: only machines that get profiles see it.
    let status = authenticate(&state, &headers).await?;
    let (version, want_signature) = split_signed_file(&file);
    let not_found = || HttpError::not_found(format!("index {file} inconnu"));
    if status != MachineStatus::Active {
        return Err(not_found());
    }
    let version = version.ok_or_else(not_found)?;
    let doc = state
        .store
        .catalogue_index(Some(version))
        .await?
        .ok_or_else(not_found)?;
    Ok(signed_reply(doc, want_signature))
}

/// `{version}` or `{version}.minisig`.
fn split_signed_file(file: &str) -> (Option<u64>, bool) {
    let (version, signature) = match file.strip_suffix(".minisig") {
        Some(v) => (v, true),
        None => (file, false),
    };
    (version.parse().ok().filter(|v| *v > 0), signature)
}

/// The document's bytes or its signature.
fn signed_reply(doc: crate::store::SignedDocument, want_signature: bool) -> Response {
    if want_signature {
        reply("text/plain; charset=utf-8", doc.signature)
    } else {
        reply("application/octet-stream", doc.bytes)
    }
}

/// `GET /api/v1/profiles/{name}/{version}` (the signed bytes) and
/// `GET /api/v1/profiles/{name}/{version}.minisig` (the signature).
#[utoipa::path(get, path = "/api/v1/profiles/{name}/{file}", tag = "agent",
    security(("machine" = [])),
    params(
        ("name" = String, Path, description = "Profile name"),
        ("file" = String, Path, description = "`{version}` for the signed profile bytes, `{version}.minisig` for its detached signature"),
    ),
    responses(
        (status = 200, description = "The exact bytes", content_type = "application/octet-stream"),
        (status = 401, description = "Bad machine credential", body = nird_proto::api::ApiError),
        (status = 403, description = "Machine retired", body = nird_proto::api::ApiError),
        (status = 404, description = "No such release, or not in this machine's assigned closure (same reply)", body = nird_proto::api::ApiError),
    ))]
pub async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    let cred = credential(&headers)?;
    let (version, want_signature) = match file.strip_suffix(".minisig") {
        Some(v) => (v, true),
        None => (file.as_str(), false),
    };
    // One answer for "no such release" and "not assigned to you": the
    // reply tells a machine nothing about releases it may not fetch.
    let not_found = || HttpError::not_found(format!("profil « {name} » version {file} inconnu"));
    let version: Option<u64> = version.parse().ok();
    let release = state
        .store
        .assigned_release(
            &cred.machine_id,
            &cred.secret_hash,
            &name,
            // An unparsable version is looked up as one no release has, so
            // that the credential is still checked first.
            version.unwrap_or(u64::MAX),
        )
        .await?
        .ok_or_else(not_found)?;
    Ok(if want_signature {
        reply("text/plain; charset=utf-8", release.minisig)
    } else {
        reply("application/octet-stream", release.bytes)
    })
}

/// `GET /api/v1/blobs/{sha256}`.
#[utoipa::path(get, path = "/api/v1/blobs/{sha256}", tag = "agent",
    security(("machine" = [])),
    params(("sha256" = String, Path, description = "Lowercase hex SHA-256 of the file")),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream"),
        (status = 401, description = "Bad machine credential", body = nird_proto::api::ApiError),
        (status = 403, description = "Machine retired", body = nird_proto::api::ApiError),
        (status = 404, description = "No such blob, or not pinned by a release assigned to this machine (same reply)", body = nird_proto::api::ApiError),
    ))]
pub async fn blob(
    State(state): State<AppState>,
    deadline_ext: Option<axum::Extension<Arc<ResponseDeadline>>>,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> Result<Response, HttpError> {
    let cred = credential(&headers)?;
    let not_found = || HttpError::not_found(format!("fichier {sha256} inconnu"));
    // Checked after the credential, so that a bad name is a 404 only for
    // an authenticated machine, like every other 404 here.
    let key = if is_sha256_hex(&sha256) {
        sha256.as_str()
    } else {
        ""
    };
    let size = state
        .store
        .assigned_blob_size(&cred.machine_id, &cred.secret_hash, key)
        .await?
        .ok_or_else(not_found)?;
    // Blobs can be large (64 MiB): streamed in chunks within the memory
    // budget, under a time limit the connection's write watch enforces too.
    let deadline = tokio::time::Instant::now() + state.body_time_limit;
    let guard = deadline_ext.map(|d| d.0.arm(deadline));
    let body = super::budget::BlobBody::new(
        state.store.clone(),
        state.blob_budget.clone(),
        &sha256,
        size,
        deadline,
        guard,
    );
    Ok(reply(
        "application/octet-stream",
        axum::body::Body::new(body),
    ))
}
