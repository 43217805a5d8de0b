//! Machine: identity, hardware, disks with SMART, batteries, the Windows 11
//! verdict and its reasons, the inventory history as a readable diff,
//! applied profiles and the last reports per resource, actions allowed by
//! the role.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, State};
use maud::{Markup, html};
use nird_proto::api::MachineStatus;
use nird_proto::inventory::{Reading, Software, reason};
use serde_json::Value;

use super::layout::{self, alerts, csrf, date_time, html, profile_badge, state_badge, win11_label};
use super::school::profile_name;
use super::{FormData, WebError, WebResult, can_manage, scope};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::web::MachineDetail;

/// The text of a `Reading` at `pointer`: its value, or « indisponible ».
fn reading(doc: &Value, pointer: &str) -> String {
    match doc.pointer(pointer) {
        Some(Value::Object(o)) if o.contains_key("value") => scalar(&o["value"]),
        Some(Value::Object(o)) if o.contains_key("unavailable") => {
            format!(
                "indisponible ({})",
                reason::french(&scalar(&o["unavailable"]))
            )
        }
        Some(v) => scalar(v),
        None => NOT_REPORTED.into(),
    }
}

/// What a page shows for a fact the inventory does not carry.
const NOT_REPORTED: &str = "non renseigné";

/// The value of a `Reading` at `pointer`, if the agent read it.
fn known(doc: &Value, pointer: &str) -> Option<String> {
    match doc.pointer(pointer)? {
        Value::Object(o) => o.get("value").filter(|v| !v.is_null()).map(scalar),
        Value::Null => None,
        v => Some(scalar(v)),
    }
}

/// `text`, or « non renseigné » when it is empty.
fn or_not_reported(text: &str) -> &str {
    if text.trim().is_empty() {
        NOT_REPORTED
    } else {
        text
    }
}

/// Known parts joined by `sep`, or « non renseigné » when none is known.
fn joined(parts: &[Option<String>], sep: &str) -> String {
    let known: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    if known.is_empty() {
        NOT_REPORTED.into()
    } else {
        known.join(sep)
    }
}

/// The processor line: model, then cores and threads when known.
fn cpu_line(doc: &Value) -> String {
    let counts = joined(
        &[
            known(doc, "/cpu/cores").map(|c| format!("{c} cœurs")),
            known(doc, "/cpu/threads").map(|t| format!("{t} fils")),
        ],
        ", ",
    );
    match (known(doc, "/cpu/model_name"), counts.as_str()) {
        (Some(m), NOT_REPORTED) => m,
        (Some(m), c) => format!("{m} ({c})"),
        (None, NOT_REPORTED) => NOT_REPORTED.into(),
        (None, c) => c.to_owned(),
    }
}

/// "2014-01-15" → "15/01/2014", as every other date; anything else as it is.
fn iso_date_fr(iso: &str) -> String {
    match iso.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => format!("{d}/{m}/{y}"),
        _ => iso.to_owned(),
    }
}

/// The BIOS line: vendor, version and date, those known.
fn bios_line(doc: &Value) -> String {
    joined(
        &[
            known(doc, "/firmware/bios_vendor"),
            known(doc, "/firmware/bios_version"),
            known(doc, "/firmware/bios_date").map(|d| format!("du {}", iso_date_fr(&d))),
        ],
        " ",
    )
}

/// The boot line: mode and Secure Boot, those known.
fn boot_line(doc: &Value) -> String {
    joined(
        &[
            known(doc, "/firmware/boot_mode").map(|m| match m.as_str() {
                "uefi" => "UEFI".to_owned(),
                "legacy" => "BIOS hérité (legacy)".to_owned(),
                _ => m,
            }),
            known(doc, "/firmware/secure_boot").map(|s| {
                let state = match s.as_str() {
                    "enabled" => "activé",
                    "disabled" => "désactivé",
                    "unsupported" => "non pris en charge",
                    other => other,
                };
                format!("Secure Boot : {state}")
            }),
        ],
        ", ",
    )
}

/// The system line: distribution and kernel, those known.
fn os_line(doc: &Value) -> String {
    joined(
        &[
            known(doc, "/os/pretty_name"),
            known(doc, "/os/kernel").map(|k| format!("noyau {k}")),
        ],
        ", ",
    )
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Bool(true) => "oui".into(),
        Value::Bool(false) => "non".into(),
        other => other.to_string(),
    }
}

/// The list inside a `Reading<Vec<_>>` at `pointer`.
fn list<'a>(doc: &'a Value, pointer: &str) -> &'a [Value] {
    doc.pointer(pointer)
        .and_then(|v| v.get("value"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Memory in Go (as sold, 2³⁰ bytes), or « non renseigné ».
fn memory(bytes: Option<u64>) -> String {
    bytes
        .map(layout::memory_text)
        .unwrap_or_else(|| NOT_REPORTED.into())
}

/// A disk or file system in Go (10⁹ bytes, as sold), or « non renseigné ».
fn disk(bytes: Option<u64>) -> String {
    bytes
        .map(layout::disk_text)
        .unwrap_or_else(|| NOT_REPORTED.into())
}

/// Flattens a JSON document into `path → value` leaves.
fn flatten(prefix: String, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(p, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix, scalar(other));
        }
    }
}

/// A changed field for people: its section in French, then the rest of
/// its path without the `value` steps of readings (« Système › packages ›
/// installed_count »).
fn field_label(path: &str) -> String {
    let mut parts = path.split('.').filter(|p| *p != "value");
    let section = match parts.next().unwrap_or("") {
        "identity" => "Identité",
        "firmware" => "Micrologiciel",
        "cpu" => "Processeur",
        "memory" => "Mémoire",
        "storage" => "Stockage",
        "batteries" => "Batteries",
        "graphics" => "Graphique",
        "network" => "Réseau",
        "os" => "Système",
        "software" => return "Logiciels installés".into(),
        "monitors" => "Écrans",
        "peripherals" => "Périphériques",
        "windows11" => "Windows 11",
        "agent_version" => "Version de l'agent",
        "schema_version" => "Version du format",
        other => other,
    };
    std::iter::once(section)
        .chain(parts)
        .collect::<Vec<_>>()
        .join(" › ")
}

/// What changed between two inventory documents: (path, before, after).
pub fn diff(old: &Value, new: &Value) -> Vec<(String, Option<String>, Option<String>)> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(String::new(), old, &mut a);
    flatten(String::new(), new, &mut b);
    let mut out = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            Some(w) if w == v => {}
            other => out.push((k.clone(), Some(v.clone()), other.cloned())),
        }
    }
    for (k, w) in &b {
        if !a.contains_key(k) {
            out.push((k.clone(), None, Some(w.clone())));
        }
    }
    out.sort();
    out
}

/// `GET /machines/{id}`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> WebResult {
    render(&state, &session, &id, None).await
}

/// The machine's page, with `message` on top (after an action).
async fn render(state: &AppState, session: &Session, id: &str, message: Option<&str>) -> WebResult {
    render_page(state, session, id, message, None).await
}

/// A refused action of the machine page, shown again above its form.
enum Refused<'a> {
    /// Retiring without the confirmation ticked.
    Retire { error: &'a str },
    /// An exception: the profile as typed, the effect chosen.
    Exception {
        profile: &'a str,
        include: bool,
        error: &'a str,
    },
}

async fn render_page(
    state: &AppState,
    session: &Session,
    id: &str,
    message: Option<&str>,
    refusal: Option<Refused<'_>>,
) -> WebResult {
    let m = find(state, session, id).await?;
    let software = super::software::latest_software(state, &m.row.id).await?;
    let title = format!("Machine {}", m.row.hostname);
    Ok(html(layout::page(
        &title,
        Some(session),
        html! {
            @if let Some(text) = message { (layout::notice(text)) }
            @match &refusal {
                Some(Refused::Retire { error }) => {
                    (layout::form_error(error, "retrait", "Aller à la confirmation du retrait"))
                }
                Some(Refused::Exception { error, .. }) => {
                    (layout::form_error(error, "derogation", "Corriger la dérogation"))
                }
                None => {}
            }
            (body(session, &m, software.as_ref(), refusal.as_ref()))
        },
    )))
}

pub(super) async fn find(
    state: &AppState,
    session: &Session,
    id: &str,
) -> Result<MachineDetail, WebError> {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(WebError::not_found());
    }
    state
        .store
        .machine_in(&scope(session), id, auth::now())
        .await?
        .ok_or_else(WebError::not_found)
}

fn body(
    session: &Session,
    m: &MachineDetail,
    software: Option<&Reading<Software>>,
    refusal: Option<&Refused<'_>>,
) -> Markup {
    let r = &m.row;
    let retire_error = match refusal {
        Some(Refused::Retire { error }) => Some(*error),
        _ => None,
    };
    let (exception_error, typed, include) = match refusal {
        Some(Refused::Exception {
            profile,
            include,
            error,
        }) => (Some(*error), *profile, *include),
        _ => (None, "", true),
    };
    let docs: Vec<(i64, Value)> = m
        .history
        .iter()
        .map(|(_, at, text)| (*at, serde_json::from_str(text).unwrap_or(Value::Null)))
        .collect();
    let null = Value::Null;
    let doc = docs.first().map(|(_, d)| d).unwrap_or(&null);
    let applied: Vec<Value> = serde_json::from_str(&m.applied).unwrap_or_default();
    let manage = can_manage(session);
    html! {
        h2 id="identite" { "Identité" }
        dl.facts {
            dt { "Établissement" } dd { a href={"/etablissements/" (r.school)} { (r.school_name) } " (" (r.school) ")" }
            dt { "État" } dd { (state_badge(r.state)) }
            dt { "Nom d'hôte" } dd { (r.hostname) }
            dt { "Fabricant et modèle" } dd { (or_not_reported(&r.model)) }
            dt { "N° de série" } dd { (or_not_reported(&r.serial)) }
            dt { "Identifiant" } dd { code { (r.id) } }
            dt { "Inscrite le (UTC)" } dd { (date_time(Some(r.enrolled_at))) }
            // « jamais », as in the school's table and its exports.
            dt { "Dernier contact (UTC)" } dd { (date_time(r.last_seen)) }
            dt { "Contacts enregistrés" } dd { (m.checkins) }
            dt { "Version de l'agent" } dd { (or_not_reported(&r.agent_version)) }
            dt { "Système" } dd { (os_line(doc)) }
            dt { "Alertes" } dd { (alerts(r.alerts)) }
        }

        h2 id="materiel" { "Matériel" }
        dl.facts {
            dt { "Processeur" } dd { (cpu_line(doc)) }
            dt { "Mémoire" } dd { (memory(doc.pointer("/memory/total_bytes/value").and_then(Value::as_u64))) }
            dt { "BIOS" } dd { (bios_line(doc)) }
            dt { "Démarrage" } dd { (boot_line(doc)) }
            dt { "Licence Windows d'origine" } dd { (super::devices::windows_licence(doc)) }
        }
        @let modules = list(doc, "/memory/modules");
        @if modules.is_empty() {
            p { "Barrettes de mémoire : non renseignées par l'agent." }
        } @else {
            table {
                caption { "Barrettes de mémoire (" (modules.len()) ")" }
                thead { tr { th scope="col" { "Emplacement" } th scope="col" { "Taille" } th scope="col" { "Type" } th scope="col" { "Vitesse (MT/s)" } } }
                tbody {
                    @for mm in modules {
                        tr {
                            th scope="row" { (scalar(&mm["locator"])) }
                            td { @if mm["size_bytes"].as_u64() == Some(0) { "emplacement libre" } @else { (memory(mm["size_bytes"].as_u64())) } }
                            td { (scalar(&mm["kind"])) }
                            td { (scalar(&mm["speed_mts"])) }
                        }
                    }
                }
            }
        }
        @let disks = list(doc, "/storage/disks");
        @if disks.is_empty() {
            p { "Disques : non renseignés par l'agent." }
        } @else {
            table {
                caption { "Disques (" (disks.len()) ")" }
                thead { tr { th scope="col" { "Disque" } th scope="col" { "Modèle" } th scope="col" { "Taille" } th scope="col" { "Santé SMART" } th scope="col" { "Secteurs défectueux" } th scope="col" { "Heures de fonctionnement" } } }
                tbody {
                    @for d in disks {
                        tr {
                            th scope="row" { (scalar(&d["name"])) }
                            td { (reading(d, "/model")) }
                            td { (disk(d["size_bytes"].as_u64())) }
                            td {
                                @match d.pointer("/smart/value/health").and_then(Value::as_str) {
                                    Some("failing") => strong { span aria-hidden="true" { "⚠ " } "en échec" },
                                    Some("passed") => "bonne",
                                    _ => (reading(d, "/smart")),
                                }
                            }
                            td { (scalar(d.pointer("/smart/value/bad_sectors").unwrap_or(&Value::Null))) }
                            td { (scalar(d.pointer("/smart/value/power_on_hours").unwrap_or(&Value::Null))) }
                        }
                    }
                }
            }
        }
        @let fss = list(doc, "/storage/filesystems");
        @if fss.is_empty() {
            p { "Systèmes de fichiers : non renseignés par l'agent." }
        } @else {
            table {
                caption { "Systèmes de fichiers (" (fss.len()) ")" }
                thead { tr { th scope="col" { "Point de montage" } th scope="col" { "Type" } th scope="col" { "Taille" } th scope="col" { "Occupation" } } }
                tbody {
                    @for f in fss {
                        tr {
                            th scope="row" { (scalar(&f["mount_point"])) }
                            td { (scalar(&f["fs_type"])) }
                            td { (disk(f.pointer("/usage/value/size_bytes").and_then(Value::as_u64))) }
                            td { (scalar(f.pointer("/usage/value/used_percent").unwrap_or(&Value::Null))) " %" }
                        }
                    }
                }
            }
        }
        @let batteries = list(doc, "/batteries");
        @if !batteries.is_empty() {
            table {
                caption { "Batteries" }
                thead { tr { th scope="col" { "Batterie" } th scope="col" { "Usure" } th scope="col" { "Cycles" } } }
                tbody {
                    @for b in batteries {
                        tr {
                            th scope="row" { (scalar(&b["name"])) }
                            td { (reading(b, "/wear_percent")) " %" }
                            td { (reading(b, "/cycle_count")) }
                        }
                    }
                }
            }
        }

        h2 id="windows11" { "Windows 11" }
        p { "Verdict : " strong { (win11_label(&r.win11)) } }
        @if let Some(basis) = cpu_basis(doc) {
            p { "Jugement du processeur : " (basis) "." }
        }
        @let blockers = doc.pointer("/windows11/blockers").and_then(Value::as_array).cloned().unwrap_or_default();
        @let unknown = doc.pointer("/windows11/unknown").and_then(Value::as_array).cloned().unwrap_or_default();
        @if !blockers.is_empty() {
            p { "Exigences non remplies :" }
            ul { @for b in &blockers { li { (requirement(b)) } } }
        }
        @if !unknown.is_empty() {
            p { "Exigences non vérifiables :" }
            ul { @for b in &unknown { li { (requirement(b)) } } }
        }

        (super::devices::sections(doc))

        h2 id="logiciels" { "Logiciels" }
        @match software {
            None => p { "Liste des logiciels : pas encore d'inventaire lisible." },
            Some(Reading::Unavailable(why)) => p { "Liste des logiciels : indisponible (" (reason::french(why)) ")." },
            Some(Reading::Value(list)) => p {
                (list.packages.len()) " paquets Debian"
                @if !list.flatpaks.is_empty() { " et " (list.flatpaks.len()) " applications Flatpak" }
                " installés. "
                a href={"/machines/" (r.id) "/logiciels"} { "Voir et filtrer la liste des logiciels" }
            },
        }

        h2 id="historique" { "Historique de l'inventaire" }
        @if docs.len() < 2 {
            p { "Aucun changement enregistré depuis l'inscription." }
        }
        @for pair in docs.windows(2) {
            @let changes = diff(&pair[1].1, &pair[0].1);
            table {
                caption { "Changements du " (date_time(Some(pair[0].0))) " (UTC) par rapport au " (date_time(Some(pair[1].0))) }
                thead { tr { th scope="col" { "Champ" } th scope="col" { "Avant" } th scope="col" { "Après" } } }
                tbody {
                    @for (path, before, after) in changes.iter().take(200) {
                        tr {
                            th scope="row" { (field_label(path)) }
                            @if path == "software.part" {
                                // Stored lists are named by their hash: say what changed.
                                td { @if before.is_some() { "liste précédente" } @else { "(absente)" } }
                                td { @if after.is_some() { a href={"/machines/" (r.id) "/logiciels"} { "nouvelle liste des logiciels" } } @else { "(supprimée)" } }
                            } @else {
                                td { @if let Some(b) = before { del { (b) } } @else { "(absent)" } }
                                td { @if let Some(a) = after { ins { (a) } } @else { "(supprimé)" } }
                            }
                        }
                    }
                }
            }
        }

        h2 id="profils" { "Profils" }
        p { "Profils affectés à l'établissement : "
            @if m.assigned.is_empty() { "aucun" } @else { (m.assigned.join(", ")) } }
        @if !m.overrides.is_empty() {
            p { "Dérogations de cette machine : " }
            ul { @for (p, inc) in &m.overrides { li { (p) " : " @if *inc { "ajouté" } @else { "retiré" } } } }
        }
        p { "Conformité : " (profile_badge(r.profile)) }
        p { "Versions appliquées selon l'agent : "
            @if applied.is_empty() { "aucune" }
            @for (i, a) in applied.iter().enumerate() {
                @if i > 0 { ", " }
                (scalar(&a["name"])) " v" (scalar(&a["version"]))
            }
        }
        @if m.reports.is_empty() {
            p { "Aucun rapport d'application reçu." }
        } @else {
            table {
                caption { "Derniers rapports d'application (du plus récent au plus ancien)" }
                thead { tr { th scope="col" { "N°" } th scope="col" { "Profil" } th scope="col" { "Résultat" } th scope="col" { "Terminé le (UTC)" } th scope="col" { "Ressources" } } }
                tbody {
                    @for rep in &m.reports {
                        tr {
                            th scope="row" { (rep.seq) }
                            td { (rep.profile) " v" (rep.version) }
                            td {
                                (outcome_label(rep.outcome.as_str()))
                                @if let Some(reason) = &rep.reason { " : " (reason.label_fr()) }
                                @if let Some(msg) = &rep.message { " — " (msg) }
                            }
                            td { (date_time(Some(rep.finished_at.unix_timestamp()))) }
                            td {
                                @let changed: Vec<_> = rep.resources.iter().filter(|x| x.status.as_str() != "unchanged").collect();
                                @if changed.is_empty() { (rep.resources.len()) " inchangée(s)" }
                                @else {
                                    ul {
                                        @for res in changed {
                                            li { code { (res.id) } " : " (if res.status.as_str() == "failed" { "en échec" } else { "modifiée" })
                                                @if let Some(msg) = &res.message { " (" (msg) ")" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        @if manage {
            h2 id="actions" { "Actions" }
            @if r.status == MachineStatus::Pending {
                (action_form(session, &r.id, "approve", "Approuver la machine", None))
            }
            @if r.status != MachineStatus::Retired {
                form method="post" action={"/machines/" (r.id) "/actions"} id="retrait" {
                    (csrf(session))
                    input type="hidden" name="action" value="retire";
                    fieldset {
                        legend { "Retirer de la flotte" }
                        p { "La machine ne recevra plus rien et ne comptera plus dans l'audit. C'est définitif : pour la reprendre, il faudra la réinscrire." }
                        p.check {
                            @let (invalid, described) = layout::error_marks(retire_error.is_some());
                            input type="checkbox" id="confirmer-retrait" name="confirmer" value="oui" required
                                aria-invalid=[invalid] aria-describedby=[described];
                            label.check for="confirmer-retrait" { "Je confirme le retrait définitif de " (r.hostname) }
                        }
                        p { button.danger type="submit" id="action-retire" { "Retirer de la flotte" } }
                    }
                }
            }
            form method="post" action={"/machines/" (r.id) "/actions"} id="derogation" {
                (csrf(session))
                fieldset {
                    legend { "Dérogation de profil" }
                    label for="derogation-profil" { "Profil" }
                    @let (invalid, described) = layout::error_marks(exception_error.is_some());
                    input type="text" id="derogation-profil" name="profile" required value=(typed)
                        aria-invalid=[invalid] aria-describedby=[described];
                    label for="derogation-action" { "Effet" }
                    select id="derogation-action" name="action" {
                        option value="include" selected[include] { "ajouter ce profil à cette machine" }
                        option value="exclude" selected[!include] { "retirer ce profil de cette machine" }
                    }
                    p { button type="submit" { "Enregistrer la dérogation" } }
                }
            }
        }
    }
}

fn action_form(session: &Session, id: &str, action: &str, label: &str, _p: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action={"/machines/" (id) "/actions"} {
            (csrf(session))
            input type="hidden" name="action" value=(action);
            button type="submit" id={"action-" (action)} { (label) }
        }
        " "
    }
}

fn outcome_label(o: &str) -> &'static str {
    match o {
        "applied" => "appliqué",
        "refused" => "refusé",
        "failed" => "en échec",
        "deferred" => "reporté",
        _ => "inconnu",
    }
}

fn requirement(v: &Value) -> &'static str {
    match v.as_str().unwrap_or("") {
        "tpm2" => "puce TPM 2.0",
        "supported_cpu" => {
            "processeur pris en charge (Intel 8e génération, AMD Zen+ ou plus récent)"
        }
        "ram4_gb" => "au moins 4 Go de mémoire",
        "storage64_gb" => "un disque d'au moins 64 Go",
        "uefi" => "micrologiciel UEFI",
        "secure_boot" => "démarrage sécurisé (Secure Boot)",
        _ => "autre exigence",
    }
}

/// `POST /machines/{id}/actions`: approve, retire, include or exclude a
/// profile.
pub async fn action(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    let m = find(&state, &session, &id).await?;
    if !can_manage(&session) {
        return Err(WebError::forbidden());
    }
    let actor = session.user.login.as_str();
    match form.get("action").unwrap_or("") {
        "approve" => {
            state
                .store
                .set_machine_status(actor, &m.row.id, MachineStatus::Active)
                .await?
        }
        "retire" => {
            if m.row.status == MachineStatus::Retired {
                // Its page has no retire form to correct (found by review).
                let done = "Cette machine est déjà retirée de la flotte : rien n'a été modifié.";
                return render(&state, &session, &m.row.id, Some(done)).await;
            }
            if form.get("confirmer") != Some("oui") {
                let error = "Pour retirer cette machine de la flotte, cochez la case de \
                             confirmation : le retrait est définitif. Rien n'a été modifié.";
                let page = render_page(
                    &state,
                    &session,
                    &m.row.id,
                    None,
                    Some(Refused::Retire { error }),
                )
                .await?;
                return Ok(layout::refused(page));
            }
            state
                .store
                .set_machine_status(actor, &m.row.id, MachineStatus::Retired)
                .await?
        }
        a @ ("include" | "exclude") => {
            let typed = form.get("profile").unwrap_or("");
            let refuse = |error: String| {
                let (state, session, id) = (&state, &session, &m.row.id);
                async move {
                    // Shown again cut short, as a name in the message is.
                    let profile = crate::echo::quoted(typed, 200);
                    let refusal = Refused::Exception {
                        profile: &profile,
                        include: a == "include",
                        error: &error,
                    };
                    let page = render_page(state, session, id, None, Some(refusal)).await?;
                    Ok(layout::refused(page))
                }
            };
            let p = match profile_name(typed) {
                Ok(p) => p,
                Err(e) => match e.refusal() {
                    Some(error) => return refuse(error.to_owned()).await,
                    None => return Err(e),
                },
            };
            if a == "include" {
                // What the machine gets now, plus this: refused if its agent
                // would refuse it, as on the command line.
                let mut names: Vec<String> = state
                    .store
                    .assigned_closure(&m.row.id)
                    .await?
                    .into_iter()
                    .map(|p| p.name)
                    .collect();
                names.push(p.clone());
                let verdict = crate::admin::assignability(state.store.as_ref(), &names).await?;
                if let Some(refusal) = verdict.refusal() {
                    return refuse(format!("{refusal}.")).await;
                }
            }
            state
                .store
                .override_machine(actor, &m.row.id, &p, a == "include")
                .await?
        }
        _ => return Err(WebError::bad_request("Action inconnue.")),
    }
    let done = match form.get("action").unwrap_or("") {
        "approve" => "Machine approuvée : elle recevra ses profils au prochain contact.".to_owned(),
        "retire" => "Machine retirée de la flotte.".to_owned(),
        "include" => format!(
            "Profil « {} » ajouté à cette machine.",
            form.get("profile").unwrap_or("").trim()
        ),
        _ => format!(
            "Profil « {} » retiré de cette machine.",
            form.get("profile").unwrap_or("").trim()
        ),
    };
    render(&state, &session, &m.row.id, Some(&done)).await
}

/// How the processor requirement was judged: the server's own verdict when
/// the document reads as an inventory (its copy of Microsoft's list may be
/// newer than the agent's), else what the agent wrote.
fn cpu_basis(doc: &Value) -> Option<String> {
    use nird_proto::inventory::{Inventory, windows11};
    if let Ok(inv) = serde_json::from_value::<Inventory>(doc.clone()) {
        return Some(windows11::verdict(&inv).cpu_basis.label_fr());
    }
    let basis = doc.pointer("/windows11/cpu_basis")?;
    serde_json::from_value::<windows11::CpuBasis>(basis.clone())
        .ok()
        .map(|b| b.label_fr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_changed_added_and_removed_leaves() {
        let a = serde_json::json!({"cpu": {"cores": 2}, "disks": ["a"], "gone": true});
        let b = serde_json::json!({"cpu": {"cores": 4}, "disks": ["a", "b"]});
        let d = diff(&a, &b);
        assert!(d.contains(&("cpu.cores".into(), Some("2".into()), Some("4".into()))));
        assert!(d.contains(&("disks[1]".into(), None, Some("b".into()))));
        assert!(d.contains(&("gone".into(), Some("oui".into()), None)));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn facts_read_in_french() {
        assert_eq!(
            field_label("os.packages.value.installed_count"),
            "Système › packages › installed_count"
        );
        assert_eq!(field_label("software.part"), "Logiciels installés");
        assert_eq!(iso_date_fr("2014-01-15"), "15/01/2014");
        assert_eq!(iso_date_fr("01/15/2014"), "01/15/2014");
        // Memory as sold (2³⁰), disks as sold (10⁹), rounded, French comma.
        assert_eq!(memory(Some(25_275_000_000)), "23,5 Go");
        assert_eq!(disk(Some(274_877_906_944)), "275 Go");
        assert_eq!(disk(None), NOT_REPORTED);
        let doc = serde_json::json!({"storage": {"model": {"unavailable":
            nird_proto::inventory::reason::NOT_EXPOSED}}});
        assert_eq!(
            reading(&doc, "/storage/model"),
            "indisponible (cette machine ne l'indique pas)"
        );
    }
}
