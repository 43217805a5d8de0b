//! The per-machine audit table — the reuse evidence of the décret
//! 2023-266: when each machine was taken into reuse, where it is used,
//! when it was last seen, whether it is still in use — exported as CSV
//! (`;`, UTF-8 with BOM, French dates, formulas neutralised by the
//! dashboard's [`csv_field`]), JSON, and GLPI inventories (one document per
//! line, rendered by [`nird_proto::glpi::to_glpi`]); and its data
//! dictionary (`/audit/dictionnaire`, also `docs/audit-donnees.md`).
//!
//! **Streaming:** rows are read from the store in keyset pages of
//! [`CHUNK`] machines and written to a bounded channel body as they come,
//! so an export of 100,000 machines holds a few pages in memory, never the
//! whole table; a client that stops reading stops the reads.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Value, json};

use super::audit::{AuditParams, auditor_or_admin, check_node, scope_label};
use super::export::csv_field;
use super::layout::{date, html, page_at};
use super::{WebError, WebResult, scope};
use crate::audit::co2;
use crate::audit::facts::{AuditFacts, MachineClass};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::Store;
use crate::store::audit::{AuditFilter, AuditMachineRow, IN_USE_DAYS};
use crate::store::web::Scope;

/// Machines read per store call while streaming.
pub const CHUNK: u32 = 1_000;

/// Chunks buffered between the reader and the connection.
const BUFFERED: usize = 2;

/// A response body fed by a bounded channel: the task producing chunks
/// waits while the connection is slower (flat memory), and stops when the
/// client goes away (the receiver is dropped). Ends when the sender is
/// dropped; an `Err` sent aborts the response.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(http_body::Frame::data)))
    }
}

/// The sending half of a [`ChannelBody`].
type Sender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// A new channel body and its sender.
fn channel_body() -> (Sender, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFERED);
    (tx, Body::new(ChannelBody(rx)))
}

/// The columns of the per-machine table: (key, CSV header, meaning).
pub const COLUMNS: &[(&str, &str, &str)] = &[
    (
        "id",
        "Identifiant",
        "Identifiant de la machine sur le serveur (32 caractères hexadécimaux).",
    ),
    ("nom_hote", "Nom d'hôte", "Nom de la machine sur le réseau."),
    (
        "uai",
        "UAI",
        "Code UAI de l'établissement où elle est utilisée.",
    ),
    ("etablissement", "Établissement", "Nom de l'établissement."),
    (
        "type_etablissement",
        "Type d'établissement",
        "ecole, college ou lycee.",
    ),
    ("commune", "Commune", "Commune de l'établissement."),
    (
        "departement",
        "Département",
        "Département de l'établissement.",
    ),
    ("academie", "Académie", "Académie de l'établissement."),
    (
        "statut",
        "Statut",
        "active (en service), pending (en attente d'approbation) ou retired (retirée de la flotte).",
    ),
    (
        "prise_en_reemploi",
        "Prise en réemploi le",
        "Date d'inscription de la machine sur le serveur (JJ/MM/AAAA, UTC) : sa prise en réemploi.",
    ),
    (
        "dernier_contact",
        "Dernier contact",
        "Date du dernier contact avec le serveur après l'inscription (JJ/MM/AAAA, UTC), vide si aucun depuis l'inscription.",
    ),
    (
        "en_service",
        "En service",
        "oui si la machine, non retirée, a été vue dans les 30 jours précédant la fin de la période : un contact, ou son inscription (faite par l'agent depuis la machine, avec son inventaire).",
    ),
    (
        "classe",
        "Classe",
        "portable, fixe (dont tout-en-un et mini-PC) ou autre / inconnue, d'après le type de châssis SMBIOS.",
    ),
    ("fabricant", "Fabricant", "Fabricant (SMBIOS)."),
    ("modele", "Modèle", "Modèle (SMBIOS)."),
    ("numero_serie", "N° de série", "Numéro de série (SMBIOS)."),
    ("processeur", "Processeur", "Nom du processeur."),
    (
        "generation_processeur",
        "Génération du processeur",
        "Microarchitecture du processeur (nom de code).",
    ),
    (
        "annee_processeur",
        "Année du processeur",
        "Année de lancement de cette génération de processeur.",
    ),
    (
        "annee_fabrication",
        "Année de fabrication estimée",
        "Année de la date du BIOS, au plus un an après le lancement du processeur (voir la méthode).",
    ),
    (
        "age",
        "Âge estimé (ans)",
        "Années entières entre l'année de fabrication estimée et la fin de la période.",
    ),
    (
        "memoire_go",
        "Mémoire (Go)",
        "Mémoire installée en Go comme elle est vendue (1 Go = 2³⁰ octets), une décimale, virgule décimale.",
    ),
    (
        "barrettes",
        "Barrettes",
        "Nombre de barrettes de mémoire installées.",
    ),
    (
        "emplacements",
        "Emplacements mémoire",
        "Nombre d'emplacements mémoire (occupés ou libres).",
    ),
    (
        "emplacements_libres",
        "Emplacements libres",
        "Emplacements mémoire libres.",
    ),
    (
        "memoire_remplacable",
        "Mémoire remplaçable",
        "oui si au moins une barrette est sur support (remplaçable), non si toute la mémoire est soudée.",
    ),
    (
        "disque",
        "Disque système",
        "hdd (disque dur), ssd (SSD SATA), nvme (SSD NVMe) ou other (virtuel, USB).",
    ),
    (
        "disque_go",
        "Disque (Go)",
        "Taille du disque système en Go comme il est vendu (10⁹ octets), arrondie à l'entier.",
    ),
    (
        "smart",
        "SMART",
        "passed (sain) ou failing (défaillant) selon le disque lui-même.",
    ),
    (
        "usure_batterie",
        "Usure de la batterie (%)",
        "Perte de capacité de la batterie la plus usée, en pour cent ; vide sans batterie.",
    ),
    (
        "uefi",
        "UEFI",
        "oui si le micrologiciel sait démarrer en UEFI.",
    ),
    (
        "secure_boot",
        "Secure Boot",
        "enabled, disabled ou unsupported.",
    ),
    ("tpm", "TPM", "none (absent ou désactivé), 1.2 ou 2.0."),
    (
        "windows11",
        "Windows 11",
        "eligible, ineligible ou unknown : verdict recalculé par le serveur.",
    ),
    (
        "bloquants_windows11",
        "Bloquants Windows 11",
        "Exigences non remplies, séparées par « + » : tpm, processeur, uefi, secure_boot, memoire, disque.",
    ),
    (
        "base_processeur",
        "Jugement du processeur",
        "liste (son nom est sur la liste Microsoft des processeurs pris en charge) ou estimation (absent de la liste : règle famille / modèle) ; vide si le processeur n'a pas pu être jugé.",
    ),
    (
        "ecrans",
        "Écrans externes",
        "Nombre d'écrans externes branchés (lus dans leur EDID ; l'écran intégré d'un portable n'est pas compté) ; vide si l'agent ne signale pas les écrans.",
    ),
    (
        "licence_oem",
        "Licence Windows OEM",
        "oui si le micrologiciel porte une licence Windows (table ACPI MSDM présente ; la clé n'est jamais lue).",
    ),
    ("systeme", "Système", "Système d'exploitation installé."),
    (
        "version_systeme",
        "Version du système",
        "Version du système (VERSION_ID).",
    ),
    (
        "profils",
        "Profils appliqués",
        "Profils NIRD appliqués, « nom vN », séparés par des virgules.",
    ),
    (
        "evolution",
        "Évolution conseillée",
        "ssd (remplacer le disque dur), memoire (passer à 8 Go), les deux séparées par « + », ou vide.",
    ),
];

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "oui",
        Some(false) => "non",
        None => "",
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The blockers of a machine, "+"-joined.
pub fn blockers(f: &AuditFacts) -> String {
    [
        (f.blocker_tpm, "tpm"),
        (f.blocker_cpu, "processeur"),
        (f.blocker_uefi, "uefi"),
        (f.blocker_secure_boot, "secure_boot"),
        (f.blocker_ram, "memoire"),
        (f.blocker_disk, "disque"),
    ]
    .iter()
    .filter(|(b, _)| *b)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join("+")
}

/// The upgrades worth a part, "+"-joined.
pub fn upgrades(f: &AuditFacts) -> String {
    let mut out = Vec::new();
    if f.disk_kind.as_deref() == Some("hdd") {
        out.push("ssd");
    }
    if f.ram_bytes
        .is_some_and(|r| r < crate::audit::facts::RAM_UPGRADE_BELOW)
        && (f.ram_free_slots.unwrap_or(0) > 0 || f.ram_replaceable == Some(true))
    {
        out.push("memoire");
    }
    out.join("+")
}

/// True if the machine counts as in use for `filter`.
pub fn in_use(r: &AuditMachineRow, filter: &AuditFilter) -> bool {
    r.status != "retired"
        && r.enrolled_at <= filter.to
        && r.last_seen.unwrap_or(r.enrolled_at) >= filter.in_use_since()
}

/// The cells of a row, in [`COLUMNS`] order.
pub fn cells(r: &AuditMachineRow, filter: &AuditFilter) -> Vec<String> {
    let empty = AuditFacts::default();
    let f = r.facts.as_ref().unwrap_or(&empty);
    let age = f.build_year.map(|y| filter.end_year() - y);
    vec![
        r.id.clone(),
        r.hostname.clone(),
        r.uai.clone(),
        r.school_name.clone(),
        r.school_kind.clone(),
        r.commune.clone(),
        r.departement.clone(),
        r.academie.clone(),
        r.status.clone(),
        date(Some(r.enrolled_at)),
        r.last_seen.map(|t| date(Some(t))).unwrap_or_default(),
        yes_no(Some(in_use(r, filter))).into(),
        if r.facts.is_some() {
            MachineClass::label(&f.class).into()
        } else {
            String::new()
        },
        opt(f.vendor.as_ref()),
        opt(f.model.as_ref()),
        opt(f.serial.as_ref()),
        opt(f.cpu_model.as_ref()),
        opt(f.cpu_generation.as_ref()),
        opt(f.cpu_year),
        opt(f.build_year),
        opt(age),
        f.ram_bytes
            .and_then(|b| u64::try_from(b).ok())
            .map(|b| co2::fr_number(super::layout::memory_gb(b), 1))
            .unwrap_or_default(),
        opt(f.ram_modules),
        opt(f.ram_slots),
        opt(f.ram_free_slots),
        yes_no(f.ram_replaceable).into(),
        opt(f.disk_kind.as_ref()),
        f.disk_bytes
            .and_then(|b| u64::try_from(b).ok())
            .map(|b| super::layout::disk_gb(b).to_string())
            .unwrap_or_default(),
        opt(f.smart.as_ref()),
        opt(f.battery_wear),
        yes_no(f.uefi).into(),
        opt(f.secure_boot.as_ref()),
        opt(f.tpm.as_ref()),
        if r.facts.is_some() {
            f.win11.clone()
        } else {
            String::new()
        },
        blockers(f),
        match f.cpu_basis.as_deref() {
            Some("list") => "liste".to_owned(),
            Some("estimate") => "estimation".to_owned(),
            _ => String::new(),
        },
        opt(f.screens),
        yes_no(f.windows_oem_licence).into(),
        opt(f.os_name.as_ref()),
        opt(f.os_version.as_ref()),
        r.profiles.clone(),
        upgrades(f),
    ]
}

/// One CSV line of a row.
pub fn csv_line(r: &AuditMachineRow, filter: &AuditFilter, out: &mut String) {
    let cells = cells(r, filter);
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(&csv_field(c));
    }
    out.push_str("\r\n");
}

/// The CSV header line (with its BOM).
pub fn csv_header() -> String {
    let mut s = String::from("\u{feff}");
    s.push_str(
        &COLUMNS
            .iter()
            .map(|(_, h, _)| csv_field(h))
            .collect::<Vec<_>>()
            .join(";"),
    );
    s.push_str("\r\n");
    s
}

/// A row as JSON (keys of [`COLUMNS`]; dates RFC 3339, numbers as numbers).
pub fn row_json(r: &AuditMachineRow, filter: &AuditFilter) -> Value {
    let mut o = serde_json::Map::new();
    for ((key, _, _), cell) in COLUMNS.iter().zip(cells(r, filter)) {
        o.insert((*key).into(), json!(cell));
    }
    let f = r.facts.clone().unwrap_or_default();
    let rfc = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    o.insert("prise_en_reemploi".into(), json!(rfc(r.enrolled_at)));
    o.insert("dernier_contact".into(), json!(r.last_seen.and_then(rfc)));
    o.insert("en_service".into(), json!(in_use(r, filter)));
    o.insert(
        "memoire_go".into(),
        json!(
            f.ram_bytes
                .and_then(|b| u64::try_from(b).ok())
                .map(super::layout::memory_gb)
        ),
    );
    o.insert(
        "disque_go".into(),
        json!(
            f.disk_bytes
                .and_then(|b| u64::try_from(b).ok())
                .map(super::layout::disk_gb)
        ),
    );
    for (key, v) in [
        ("annee_processeur", f.cpu_year),
        ("annee_fabrication", f.build_year),
        ("age", f.build_year.map(|y| filter.end_year() - y)),
        ("barrettes", f.ram_modules),
        ("emplacements", f.ram_slots),
        ("emplacements_libres", f.ram_free_slots),
        ("usure_batterie", f.battery_wear),
    ] {
        o.insert(key.into(), json!(v));
    }
    Value::Object(o)
}

/// Headers of a download.
fn download(body: Body, content_type: &'static str, filename: &'static str) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(filename),
    );
    res
}

/// Streams every row of `filter` in `scope` through `render`, between
/// `head` and `tail`.
pub fn stream_rows<F>(
    store: std::sync::Arc<dyn Store>,
    scope: Scope,
    filter: AuditFilter,
    head: String,
    tail: String,
    mut render: F,
) -> Body
where
    F: FnMut(&AuditMachineRow, &AuditFilter, &mut String) + Send + 'static,
{
    let filter_for_render = filter.clone();
    let (tx, body) = channel_body();
    // Reading and rendering overlap: one task reads the next page of rows
    // (on the store's reader) while this one renders the previous page;
    // at most `BUFFERED` pages wait, so memory stays flat.
    let (pages_tx, mut pages) =
        tokio::sync::mpsc::channel::<Result<Vec<AuditMachineRow>, ()>>(BUFFERED);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let rows = match store
                .audit_machines(&scope, &filter, after.take(), CHUNK)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "audit export: reading rows failed");
                    let _ = pages_tx.send(Err(())).await;
                    return;
                }
            };
            let last_page = rows.len() < CHUNK as usize;
            after = rows.last().map(|r| r.id.clone());
            if !rows.is_empty() && pages_tx.send(Ok(rows)).await.is_err() {
                return; // the client went away
            }
            if last_page || after.is_none() {
                return;
            }
        }
    });
    let filter = filter_for_render;
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        while let Some(page) = pages.recv().await {
            let Ok(rows) = page else {
                let _ = tx.send(Err(std::io::Error::other("database error"))).await;
                return;
            };
            let mut buf = String::with_capacity(rows.len() * 512);
            for r in &rows {
                render(r, &filter, &mut buf);
            }
            if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return; // the client went away
            }
        }
        let _ = tx.send(Ok(Bytes::from(tail))).await;
    });
    body
}

/// The per-machine CSV of `params` in `scope`, streamed.
pub fn machines_csv_body(state: &AppState, scope: Scope, params: &AuditParams) -> Body {
    stream_rows(
        state.store.clone(),
        scope,
        params.filter.clone(),
        csv_header(),
        String::new(),
        csv_line,
    )
}

/// `GET /audit/machines.csv`.
pub async fn machines_csv(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    check_node(&state, &scope, &params).await?;
    Ok(download(
        machines_csv_body(&state, scope, &params),
        "text/csv; charset=utf-8",
        "attachment; filename=\"audit-machines.csv\"",
    ))
}

/// `GET /audit/machines.json`: `{territoire, periode, methode, sources,
/// machines: [...]}`, streamed.
pub async fn machines_json(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    check_node(&state, &scope, &params).await?;
    let head = json!({
        "territory": params.filter.node.as_ref().map(|n| n.to_string()),
        "scope": scope_label(&scope),
        "period": {"from": params.filter.from, "to": params.filter.to},
        "in_use_days": IN_USE_DAYS,
        "method": co2::method(&state.co2),
        "sources": co2::SOURCES.iter().map(|(w, s)| json!({"figure": w, "source": s})).collect::<Vec<_>>(),
        "dictionary": "/audit/dictionnaire",
    })
    .to_string();
    // `{…, "machines": [` then rows then `]}`.
    let head = format!("{},\"machines\":[", head.trim_end_matches('}'));
    let mut first = true;
    let body = stream_rows(
        state.store.clone(),
        scope,
        params.filter.clone(),
        head,
        "]}".into(),
        move |r, f, out| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&row_json(r, f).to_string());
        },
    );
    Ok(download(
        body,
        "application/json",
        "attachment; filename=\"audit-machines.json\"",
    ))
}

/// The GLPI document of a machine's latest inventory, if it has a
/// readable one.
async fn glpi_of(store: &dyn Store, id: &str) -> Option<Value> {
    let text = store.latest_inventory(id).await.ok()??;
    let inv: nird_proto::inventory::Inventory = serde_json::from_str(&text).ok()?;
    Some(nird_proto::glpi::to_glpi(&inv))
}

/// `GET /audit/glpi.jsonl`: one GLPI inventory document per line, for
/// every machine of the table that has a readable inventory.
pub async fn glpi_bulk(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    check_node(&state, &scope, &params).await?;
    let (tx, body) = channel_body();
    let store = state.store.clone();
    let filter = params.filter.clone();
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let rows = match store
                .audit_machines(&scope, &filter, after.clone(), CHUNK / 10)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "GLPI export: reading rows failed");
                    let _ = tx.send(Err(std::io::Error::other("database error"))).await;
                    return;
                }
            };
            let Some(last) = rows.last() else { break };
            after = Some(last.id.clone());
            let mut buf = String::new();
            for r in &rows {
                if let Some(doc) = glpi_of(store.as_ref(), &r.id).await {
                    buf.push_str(&doc.to_string());
                    buf.push('\n');
                }
            }
            if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return;
            }
            if rows.len() < (CHUNK / 10) as usize {
                break;
            }
        }
    });
    Ok(download(
        body,
        "application/x-ndjson",
        "attachment; filename=\"audit-glpi.jsonl\"",
    ))
}

/// `GET /machines/{id}/glpi.json`: one machine's GLPI inventory (every
/// role, within scope; 404 otherwise or without a readable inventory).
pub async fn glpi_one(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(WebError::not_found());
    }
    state
        .store
        .audit_machine(&scope(&session), &id)
        .await?
        .ok_or_else(WebError::not_found)?;
    let doc = glpi_of(state.store.as_ref(), &id)
        .await
        .ok_or_else(WebError::not_found)?;
    let mut res = doc.to_string().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// `GET /audit/dictionnaire`: the data dictionary of the exports.
pub async fn dictionary(Extension(session): Extension<Session>) -> WebResult {
    auditor_or_admin(&session)?;
    let body = html! {
        p {
            "Les exports de l'audit sont publiables sur un portail de données ouvertes. "
            "CSV : séparateur « ; », encodage UTF-8 avec BOM, dates JJ/MM/AAAA (UTC), virgule décimale ; "
            "une cellule commençant par =, +, - ou @ est précédée d'une apostrophe (protection contre l'injection de formules). "
            "JSON : mêmes clés, dates RFC 3339, nombres en nombres. GLPI : un document d'inventaire GLPI par ligne."
        }
        table {
            caption { "Colonnes du tableau par machine (audit-machines.csv, audit-machines.json)" }
            thead { tr { th scope="col" { "Clé JSON" } th scope="col" { "En-tête CSV" } th scope="col" { "Signification" } } }
            tbody {
                @for (key, head, meaning) in COLUMNS {
                    tr { th scope="row" { code { (key) } } td { (head) } td { (meaning) } }
                }
            }
        }
        table {
            caption { "Chiffres du territoire (audit-chiffres.csv, audit-chiffres.json, API /api/v1/admin/reuse)" }
            thead { tr { th scope="col" { "Clé" } th scope="col" { "Signification" } th scope="col" { "Unité" } } }
            tbody {
                @for c in crate::store::audit::COUNTERS {
                    tr { th scope="row" { code { (c.key) } } td { (c.label) } td { (c.unit) } }
                }
            }
        }
        p { a href="/audit" { "Retour à l'audit" } }
    };
    Ok(html(page_at(
        "Dictionnaire des données de l'audit",
        "/audit",
        Some(&session),
        body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_dictionary_lists_every_column_and_figure() {
        let doc = include_str!("../../../docs/audit-donnees.md");
        // Word for word: the published file must not drift from the page.
        for (key, head, what) in COLUMNS {
            assert!(
                doc.contains(&format!("| `{key}` | {head} | {what} |")),
                "docs/audit-donnees.md: row of {key} differs from the dictionary"
            );
        }
        for c in crate::store::audit::COUNTERS {
            assert!(doc.contains(&format!("`{}`", c.key)), "{}", c.key);
        }
    }

    #[test]
    fn a_row_is_one_line_with_formulas_neutralised_and_french_dates() {
        let row = AuditMachineRow {
            id: "ab12".into(),
            hostname: "=HYPERLINK(\"x\")".into(),
            status: "active".into(),
            enrolled_at: 1_780_000_000,
            uai: "0620056Z".into(),
            school_name: "École; Jaurès".into(),
            ..AuditMachineRow::default()
        };
        let filter = AuditFilter {
            node: None,
            from: 0,
            to: 1_780_000_000,
            now: 1_780_000_000,
        };
        let mut out = String::new();
        csv_line(&row, &filter, &mut out);
        assert!(out.ends_with("\r\n") && out.matches("\r\n").count() == 1);
        assert!(out.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{out}");
        assert!(out.contains("\"École; Jaurès\""), "{out}");
        assert!(out.contains("28/05/2026"), "{out}");
        assert_eq!(out.split(';').count() - 1, COLUMNS.len() - 1 + 1, "{out}");
        assert!(csv_header().starts_with('\u{feff}'));
    }
}
