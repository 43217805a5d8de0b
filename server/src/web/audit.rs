//! Audit (collectivités): the figures of a territory node and a period —
//! machines reconditioned and in use, why Windows 11 refused them, ages,
//! processor generations, memory, storage, health, years of extended life,
//! CO2e avoided with its method and sources, upgrade planning — as a page
//! (`/audit`), a printable report (`/audit/rapport`), JSON
//! (`/audit/chiffres.json`, `GET /api/v1/admin/reuse`) and CSV
//! (`/audit/chiffres.csv`).
//!
//! Roles `auditor` and `admin` only (others get 404, like every page they
//! may not see); the reader's scope is applied in the store, and a
//! territory node outside it answers 404. Figures come from the
//! `audit_facts` columns ([`crate::store::audit`]): no inventory is parsed
//! here.

use crate::store::School;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use serde_json::{Value, json};

use super::export::{csv_field, json_response};
use super::layout::{html, page_at};
use super::{WebError, WebResult, scope};
use crate::audit::co2::{self, Co2Factors, YEAR_SECS, fr_number, kg};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::audit::{AuditFigures, AuditFilter, COUNTERS, IN_USE_DAYS, idx};
use crate::store::web::{Scope, ScopeLevel, ScopeNode};
use crate::store::{Role, SchoolKind};

/// Parsed query string of the audit pages, exports and API.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditParams {
    /// The store's filter.
    pub filter: AuditFilter,
    /// First day of the period.
    pub from: time::Date,
    /// Last day of the period.
    pub to: time::Date,
}

fn iso(d: time::Date) -> String {
    d.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

fn fr_date(d: time::Date) -> String {
    d.format(time::macros::format_description!("[day]/[month]/[year]"))
        .unwrap_or_default()
}

impl AuditParams {
    /// Parses `noeud` (`niveau:valeur`), `du` and `au` (`AAAA-MM-JJ`);
    /// the period defaults to 1 January of this year → today. Bad values
    /// answer 400 with a French message; unknown keys are ignored.
    pub fn parse(raw: Option<&str>, now: i64) -> Result<Self, WebError> {
        Self::parse_text(raw, now).map_err(WebError::bad_request)
    }

    /// [`AuditParams::parse`] with the French message as a string (for
    /// the JSON API).
    pub fn parse_text(raw: Option<&str>, now: i64) -> Result<Self, String> {
        let today = time::OffsetDateTime::from_unix_timestamp(now)
            .map(|d| d.date())
            .map_err(|_| "Horloge du serveur invalide.".to_owned())?;
        let mut node = None;
        let mut from = today.replace_ordinal(1).unwrap_or(today);
        let mut to = today;
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let date = |v: &str| {
                nird_proto::inventory::parse_iso_date(v)
                    .filter(|d| (2000..=2100).contains(&d.year()))
                    .ok_or_else(|| {
                        format!("Date « {v} » invalide : attendu AAAA-MM-JJ entre 2000 et 2100.")
                    })
            };
            match k.as_ref() {
                "noeud" => node = Some(ScopeNode::parse(v)?),
                "du" => from = date(v)?,
                "au" => to = date(v)?,
                _ => {}
            }
        }
        if from > to {
            return Err(
                "La période est vide : la date de début est après la date de fin.".to_owned(),
            );
        }
        let start = from.midnight().assume_utc().unix_timestamp();
        let end = to.midnight().assume_utc().unix_timestamp() + 86_399;
        Ok(AuditParams {
            filter: AuditFilter {
                node,
                from: start,
                to: end,
                now,
            },
            from,
            to,
        })
    }

    /// The query string that reproduces these parameters.
    pub fn to_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(n) = &self.filter.node {
            s.append_pair("noeud", &n.to_string());
        }
        s.append_pair("du", &iso(self.from));
        s.append_pair("au", &iso(self.to));
        s.finish()
    }

    /// « académie Lille », or « tout le périmètre ».
    pub fn territory_label(&self) -> String {
        match &self.filter.node {
            Some(n) => format!("{} {}", n.level.label(), n.value),
            None => "tout le périmètre".into(),
        }
    }

    /// « du 01/01/2026 au 31/12/2026 ».
    pub fn period_label(&self) -> String {
        format!("du {} au {}", fr_date(self.from), fr_date(self.to))
    }
}

/// 404 for roles that may not see the audit (gestionnaires).
pub fn auditor_or_admin(session: &Session) -> Result<(), WebError> {
    match session.user.role {
        Role::Admin | Role::Auditor => Ok(()),
        Role::School => Err(WebError::not_found()),
    }
}

/// The scope's description, for the report and exports.
pub fn scope_label(scope: &Scope) -> String {
    match scope {
        Scope::All => "tous les établissements (administrateur)".into(),
        Scope::Nodes(nodes) if nodes.is_empty() => "aucun établissement".into(),
        Scope::Nodes(nodes) => nodes
            .iter()
            .map(|n| format!("{} {}", n.level.label(), n.value))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// 404 unless the node covers at least one school in scope (an auditor
/// cannot even learn whether a territory outside theirs exists) and lies
/// within the scope: a reader of one commune may not title a report with
/// its académie, whose figures would silently be the commune's.
pub async fn check_node(
    state: &AppState,
    scope: &Scope,
    params: &AuditParams,
) -> Result<(), WebError> {
    if let Some(node) = &params.filter.node {
        let schools = state.store.schools_in(scope).await?;
        if !schools.iter().any(|s| node.covers(s))
            || !within(&every_school(state, scope).await?, scope, node)
        {
            return Err(WebError::not_found());
        }
    }
    Ok(())
}

/// Every school on the server when `scope` is limited (to judge which
/// territories lie within it); none needed for an admin's.
async fn every_school(state: &AppState, scope: &Scope) -> Result<Vec<School>, WebError> {
    Ok(match scope {
        Scope::All => Vec::new(),
        Scope::Nodes(_) => state.store.list_schools().await?,
    })
}

/// True when every school of `all` that `node` covers is in `scope`.
fn within(all: &[School], scope: &Scope, node: &ScopeNode) -> bool {
    matches!(scope, Scope::All)
        || all
            .iter()
            .filter(|s| node.covers(s))
            .all(|s| scope.covers(s))
}

/// The figures of `params` in `scope` (404 for a node outside it).
pub async fn figures(
    state: &AppState,
    scope: &Scope,
    params: &AuditParams,
) -> Result<AuditFigures, WebError> {
    check_node(state, scope, params).await?;
    Ok(state
        .store
        .audit_figures(scope, &params.filter, state.co2.standard_life_years)
        .await?)
}

/// CO2e avoided, from the totals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Co2Avoided {
    /// Manufacture avoided, kgCO2e.
    pub manufacture_kg: f64,
    /// Extended use, kgCO2e.
    pub reuse_kg: f64,
    /// Screens' manufacture avoided, kgCO2e.
    pub screens_kg: f64,
    /// Years of extended life.
    pub extended_years: f64,
}

impl Co2Avoided {
    /// Computes both parts from the totals and the factors.
    pub fn of(totals: &[i64], f: &Co2Factors) -> Self {
        let laptops = totals[idx("portables")] as f64;
        let desktops = totals[idx("fixes")] as f64;
        let years = totals[idx("vie_prolongee_secondes")] as f64 / YEAR_SECS as f64;
        Co2Avoided {
            manufacture_kg: kg(
                laptops * f.laptop_manufacture_g as f64 + desktops * f.desktop_manufacture_g as f64
            ),
            reuse_kg: kg(years * f.reuse_year_g as f64),
            screens_kg: kg(totals[idx("ecrans")] as f64 * f.screen_manufacture_g as f64),
            extended_years: years,
        }
    }

    /// Both parts.
    pub fn total_kg(&self) -> f64 {
        self.manufacture_kg + self.screens_kg + self.reuse_kg
    }
}

/// « 0 machine », « 1 machine », « 2 machines » (French: the singular
/// below two).
pub fn count(n: i64, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        fr_number(n as f64, 0),
        if n.abs() < 2 { one } else { many }
    )
}

/// In-use machines per school kind: (kind, label, machines).
pub fn by_kind(fig: &AuditFigures) -> Vec<(&'static str, &'static str, i64)> {
    let at = idx("en_service");
    [
        (SchoolKind::Ecole, "écoles"),
        (SchoolKind::College, "collèges"),
        (SchoolKind::Lycee, "lycées"),
    ]
    .into_iter()
    .map(|(k, label)| {
        (
            k.as_str(),
            label,
            fig.schools
                .iter()
                .filter(|s| s.kind == k)
                .map(|s| s.counts[at])
                .sum(),
        )
    })
    .collect()
}

/// French names of the blocker keys of [`AuditFigures::combinations`].
fn blocker_label(key: &str) -> &'static str {
    match key {
        "tpm" => "pas de TPM 2.0",
        "processeur" => "processeur non pris en charge",
        "micrologiciel" => "pas d'UEFI / Secure Boot",
        "memoire" => "moins de 4 Go de mémoire",
        "disque" => "disque de moins de 64 Go",
        _ => "inconnu",
    }
}

fn combination_label(combo: &str) -> String {
    if combo.is_empty() {
        return "aucun bloquant identifié".into();
    }
    combo
        .split('+')
        .map(blocker_label)
        .collect::<Vec<_>>()
        .join(" + ")
}

/// RFC 3339 of now.
fn now_rfc3339(now: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The sources as JSON.
fn sources_json() -> Value {
    json!(
        co2::SOURCES
            .iter()
            .map(|(what, source)| json!({"figure": what, "source": source}))
            .collect::<Vec<_>>()
    )
}

/// The figures as the JSON document of `/audit/chiffres.json` and
/// `GET /api/v1/admin/reuse`.
pub fn figures_json(
    fig: &AuditFigures,
    params: &AuditParams,
    scope: &Scope,
    factors: &Co2Factors,
) -> Value {
    let totals = fig.totals();
    let named = |counts: &[i64]| {
        let mut o = serde_json::Map::new();
        for (c, v) in COUNTERS.iter().zip(counts) {
            o.insert(c.key.into(), json!(v));
        }
        Value::Object(o)
    };
    let co2 = Co2Avoided::of(&totals, factors);
    json!({
        "territory": params.filter.node.as_ref().map(|n| n.to_string()),
        "scope": scope_label(scope),
        "period": {"from": iso(params.from), "to": iso(params.to)},
        "in_use_days": IN_USE_DAYS,
        "generated_at": now_rfc3339(params.filter.now),
        "figures": named(&totals),
        "units": COUNTERS.iter().map(|c| (c.key.to_owned(), json!(c.unit))).collect::<serde_json::Map<_, _>>(),
        "labels": COUNTERS.iter().map(|c| (c.key.to_owned(), json!(c.label))).collect::<serde_json::Map<_, _>>(),
        "by_school_kind": by_kind(fig).iter().map(|(k, _, n)| ((*k).to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "cpu_generations": fig.cpu_generations.iter().map(|(g, y, n)| json!({
            "generation": if g.is_empty() { Value::Null } else { json!(g) },
            "launch_year": y, "machines": n})).collect::<Vec<_>>(),
        "windows11_blocker_combinations": fig.combinations.iter().map(|(c, n)| json!({
            "blockers": if c.is_empty() { Vec::new() } else { c.split('+').collect::<Vec<_>>() },
            "machines": n})).collect::<Vec<_>>(),
        "co2e": {
            "manufacture_avoided_kg": round1(co2.manufacture_kg),
            "screens_manufacture_avoided_kg": round1(co2.screens_kg),
            "extended_use_kg": round1(co2.reuse_kg),
            "total_kg": round1(co2.total_kg()),
            "extended_life_years": round2(co2.extended_years),
            "factors": {
                "laptop_manufacture_kgco2e": kg(factors.laptop_manufacture_g as f64),
                "desktop_manufacture_kgco2e": kg(factors.desktop_manufacture_g as f64),
                "screen_manufacture_kgco2e": kg(factors.screen_manufacture_g as f64),
                "reuse_year_kgco2e": kg(factors.reuse_year_g as f64),
                "standard_life_years": factors.standard_life_years,
            },
        },
        "schools": fig.schools.iter().map(|s| json!({
            "uai": s.uai.as_str(), "name": s.name, "commune": s.commune,
            "departement": s.departement, "kind": s.kind.as_str(),
            "figures": named(&s.counts)})).collect::<Vec<_>>(),
        "method": co2::method(factors),
        "sources": sources_json(),
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The figures as CSV (`;`, BOM, French numbers): one line per figure,
/// then the CO2e lines, then the method and the sources.
pub fn figures_csv(
    fig: &AuditFigures,
    params: &AuditParams,
    scope: &Scope,
    factors: &Co2Factors,
) -> String {
    let totals = fig.totals();
    let co2 = Co2Avoided::of(&totals, factors);
    let mut out = String::from("\u{feff}");
    let mut line = |cells: &[&str]| {
        let cells: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(";"));
        out.push_str("\r\n");
    };
    line(&["clé", "libellé", "unité", "valeur"]);
    line(&["territoire", "Territoire", "", &params.territory_label()]);
    line(&["perimetre", "Périmètre du lecteur", "", &scope_label(scope)]);
    line(&["periode", "Période", "", &params.period_label()]);
    line(&[
        "date",
        "Date d'édition (UTC)",
        "",
        &super::layout::date_time(Some(params.filter.now)),
    ]);
    for (c, v) in COUNTERS.iter().zip(&totals) {
        line(&[c.key, c.label, c.unit, &v.to_string()]);
    }
    for (k, label, n) in by_kind(fig) {
        line(&[
            &format!("en_service_{k}"),
            &format!("En service dans les {label}"),
            "machines",
            &n.to_string(),
        ]);
    }
    line(&[
        "vie_prolongee_annees",
        "Années de vie prolongée (cumul)",
        "années",
        &fr_number(co2.extended_years, 2),
    ]);
    line(&[
        "co2e_fabrication_evitee",
        "CO2e évité : fabrication évitée (estimation)",
        "kgCO2e",
        &fr_number(co2.manufacture_kg, 1),
    ]);
    line(&[
        "co2e_fabrication_evitee_ecrans",
        "CO2e évité : fabrication d'écrans évitée (estimation)",
        "kgCO2e",
        &fr_number(co2.screens_kg, 1),
    ]);
    line(&[
        "co2e_usage_prolonge",
        "CO2e évité : usage prolongé (estimation)",
        "kgCO2e",
        &fr_number(co2.reuse_kg, 1),
    ]);
    line(&[
        "co2e_total",
        "CO2e évité : total (estimation)",
        "kgCO2e",
        &fr_number(co2.total_kg(), 1),
    ]);
    for (combo, n) in &fig.combinations {
        line(&[
            &format!(
                "combinaison_{}",
                if combo.is_empty() { "aucune" } else { combo }
            ),
            &format!(
                "Refusées par Windows 11 pour : {}",
                combination_label(combo)
            ),
            "machines",
            &n.to_string(),
        ]);
    }
    for (g, y, n) in &fig.cpu_generations {
        line(&[
            "generation_processeur",
            &format!(
                "Processeur {} ({})",
                if g.is_empty() { "inconnu" } else { g },
                y.map(|y| y.to_string())
                    .unwrap_or_else(|| "année inconnue".into())
            ),
            "machines",
            &n.to_string(),
        ]);
    }
    for m in co2::method(factors) {
        line(&["methode", "Méthode", "", &m]);
    }
    for (what, source) in co2::SOURCES {
        line(&["source", what, "", source]);
    }
    out
}

fn attachment(body: String, content_type: &'static str, filename: &'static str) -> Response {
    use axum::response::IntoResponse;
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        header::HeaderValue::from_static(filename),
    );
    res
}

/// A horizontal bar chart drawn on the server (SVG), labelled by `title`;
/// the same numbers are in the table that follows it (RGAA: a complex
/// image has an adjacent text alternative).
pub fn bar_chart(id: &str, title: &str, rows: &[(String, i64)]) -> Markup {
    let max = rows.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let row_h = 26;
    let height = row_h * rows.len().max(1) + 8;
    let label_w = 260.0;
    let bar_w = 300.0;
    html! {
        figure.chart {
            svg role="img" aria-labelledby={(id) "-titre"} viewBox={"0 0 640 " (height)}
                width="640" height=(height) xmlns="http://www.w3.org/2000/svg" {
                title id={(id) "-titre"} { (title) " (données dans le tableau qui suit)" }
                @for (i, (label, value)) in rows.iter().enumerate() {
                    @let y = i * row_h + 4;
                    @let w = (*value as f64) * bar_w / max as f64;
                    text x="0" y=(y + 17) font-size="13" fill="#1e1e1e" { (label) }
                    rect x=(label_w) y=(y + 4) width=(format!("{w:.1}")) height="16" fill="#0b4f9c" {}
                    text x=(format!("{:.1}", label_w + w + 6.0)) y=(y + 17) font-size="13" fill="#1e1e1e" { (value) }
                }
            }
            figcaption { (title) }
        }
    }
}

/// A two-column figures table.
fn figures_table(caption: &str, head: &str, rows: &[(String, i64)]) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { th scope="col" { (head) } th scope="col" class="n" { "Machines" } } }
            tbody {
                @for (label, n) in rows {
                    tr { th scope="row" { (label) } td.n { (n) } }
                }
            }
        }
    }
}

/// Rows of `keys` from the totals, with their labels after `strip`.
fn rows_of(totals: &[i64], keys: &[&str], strip: &str) -> Vec<(String, i64)> {
    keys.iter()
        .map(|k| {
            let c = &COUNTERS[idx(k)];
            (
                c.label.strip_prefix(strip).unwrap_or(c.label).to_owned(),
                totals[idx(k)],
            )
        })
        .collect()
}

const AGE_KEYS: [&str; 6] = [
    "age_0_4",
    "age_5_7",
    "age_8_10",
    "age_11_14",
    "age_15_plus",
    "age_inconnu",
];
const RAM_KEYS: [&str; 6] = [
    "memoire_moins_2",
    "memoire_2_4",
    "memoire_4_8",
    "memoire_8_16",
    "memoire_16_plus",
    "memoire_inconnue",
];
const DISK_KEYS: [&str; 5] = [
    "disque_hdd",
    "disque_ssd",
    "disque_nvme",
    "disque_autre",
    "disque_inconnu",
];
const DISK_SIZE_KEYS: [&str; 4] = [
    "disque_moins_128",
    "disque_128_256",
    "disque_256_512",
    "disque_512_plus",
];
const BLOCKER_KEYS: [&str; 5] = [
    "bloquant_tpm",
    "bloquant_processeur",
    "bloquant_micrologiciel",
    "bloquant_memoire",
    "bloquant_disque",
];

/// The method and sources block (page, report).
pub fn method_block(factors: &Co2Factors) -> Markup {
    html! {
        section aria-labelledby="methode" {
            h2 id="methode" { "Méthode" }
            ul {
                @for m in co2::method(factors) { li { (m) } }
            }
            h2 id="sources" { "Sources" }
            ul.sources {
                @for (what, source) in co2::SOURCES {
                    li { strong { (what) } " — " (source) }
                }
            }
        }
    }
}

/// Every figure section, shared by the page and the report.
pub fn sections(fig: &AuditFigures, factors: &Co2Factors) -> Markup {
    let t = fig.totals();
    let co2 = Co2Avoided::of(&t, factors);
    let kinds = by_kind(fig);
    let blockers = rows_of(&t, &BLOCKER_KEYS, "Bloquant Windows 11 : ");
    let ages = rows_of(&t, &AGE_KEYS, "Âge estimé : ");
    let rams = rows_of(&t, &RAM_KEYS, "Mémoire : ");
    let disks = rows_of(&t, &DISK_KEYS, "Disque système : ");
    let sizes = rows_of(&t, &DISK_SIZE_KEYS, "Disque système : ");
    let cpus: Vec<(String, i64)> = fig
        .cpu_generations
        .iter()
        .map(|(g, y, n)| {
            (
                match (g.is_empty(), y) {
                    (true, _) => "inconnue".to_owned(),
                    (false, Some(y)) => format!("{g} ({y})"),
                    (false, None) => g.clone(),
                },
                *n,
            )
        })
        .collect();
    html! {
        section aria-labelledby="synthese" {
            h2 id="synthese" { "Synthèse" }
            dl.facts.figures {
                dt { "Machines reconditionnées en service" }
                dd { strong.chiffre { (t[idx("en_service")]) } " (inscrites et vues dans les " (IN_USE_DAYS) " derniers jours de la période)" }
                dt { "Prises en réemploi pendant la période" }
                dd { (t[idx("inscrites_periode")]) }
                dt { "Refusées par Windows 11 (en service)" }
                dd { (t[idx("w11_incompatibles")]) }
                dt { "Années de vie prolongée pendant la période" }
                dd { (fr_number(co2.extended_years, 1)) @if co2.extended_years < 2.0 { " année (" } @else { " années (" } (count(t[idx("machines_vie_prolongee")], "machine", "machines")) ")" }
                dt { "CO2e évité (estimation)" }
                dd {
                    strong.chiffre { (fr_number(co2.total_kg(), 1)) " kgCO2e" }
                    " dont fabrication évitée " (fr_number(co2.manufacture_kg, 1)) " kgCO2e (machines) et "
                    (fr_number(co2.screens_kg, 1)) " kgCO2e (écrans), usage prolongé "
                    (fr_number(co2.reuse_kg, 1)) " kgCO2e — voir la méthode et les sources plus bas."
                }
                dt { "Écrans externes réemployés avec elles" }
                dd { (t[idx("ecrans")]) }
                dt { "Machines retirées" }
                dd { (t[idx("retirees")]) }
            }
        }
        section aria-labelledby="en-service" {
            h2 id="en-service" { "Machines en service par type d'établissement" }
            table {
                caption { "Machines reconditionnées en service, par type d'établissement et par classe" }
                thead { tr { th scope="col" { "Type" } th scope="col" class="n" { "Machines en service" } } }
                tbody {
                    @for (_, label, n) in &kinds { tr { th scope="row" { (label) } td.n { (n) } } }
                    tr { th scope="row" { "dont portables" } td.n { (t[idx("portables")]) } }
                    tr { th scope="row" { "dont fixes" } td.n { (t[idx("fixes")]) } }
                    tr { th scope="row" { "dont autre classe ou inconnue" } td.n { (t[idx("autres_classes")]) } }
                }
            }
        }
        section aria-labelledby="windows11" {
            h2 id="windows11" { "Pourquoi Windows 11 les a refusées" }
            p {
                (count(t[idx("w11_incompatibles")], "machine", "machines")) " en service refusée(s) par Windows 11, "
                (t[idx("w11_compatibles")]) " acceptées, " (t[idx("w11_indetermines")]) " indéterminées. "
                "Une machine peut avoir plusieurs bloquants. "
                (count(t[idx("licence_oem")], "machine", "machines")) " avec une licence Windows OEM dans le micrologiciel (vendue(s) avec Windows), dont "
                (t[idx("licence_oem_incompatibles")]) " refusées par Windows 11 : celles que la fin du support de Windows 10 aurait mises au rebut."
            }
            p {
                "Processeur jugé d'après la liste Microsoft des processeurs pris en charge : "
                (count(t[idx("w11_cpu_liste")], "machine", "machines")) " ; absent de la liste, jugé par estimation (famille et modèle) : "
                (count(t[idx("w11_cpu_estimation")], "machine", "machines")) "."
            }
            (bar_chart("graphe-bloquants", "Machines en service par bloquant Windows 11", &blockers))
            (figures_table("Machines en service par bloquant Windows 11", "Bloquant", &blockers))
            table {
                caption { "Combinaisons de bloquants des machines refusées par Windows 11" }
                thead { tr { th scope="col" { "Bloquants" } th scope="col" class="n" { "Machines" } } }
                tbody {
                    @for (combo, n) in &fig.combinations {
                        tr { th scope="row" { (combination_label(combo)) } td.n { (n) } }
                    }
                    @if fig.combinations.is_empty() {
                        tr { td colspan="2" { "Aucune machine refusée." } }
                    }
                }
            }
        }
        section aria-labelledby="age" {
            h2 id="age" { "Âge du matériel" }
            (bar_chart("graphe-age", "Machines en service par âge estimé à la fin de la période", &ages))
            (figures_table("Machines en service par âge estimé à la fin de la période", "Âge", &ages))
            table {
                caption { "Machines en service par génération de processeur (année de lancement)" }
                thead { tr { th scope="col" { "Génération" } th scope="col" class="n" { "Machines" } } }
                tbody {
                    @for (label, n) in &cpus { tr { th scope="row" { (label) } td.n { (n) } } }
                }
            }
        }
        section aria-labelledby="materiel" {
            h2 id="materiel" { "Mémoire et stockage" }
            (bar_chart("graphe-memoire", "Machines en service par mémoire installée", &rams))
            (figures_table("Machines en service par mémoire installée", "Mémoire", &rams))
            (figures_table("Machines en service par type de disque système", "Disque", &disks))
            (figures_table("Machines en service par taille du disque système", "Taille", &sizes))
        }
        section aria-labelledby="sante" {
            h2 id="sante" { "Santé" }
            (figures_table("Santé des machines en service", "Constat", &[
                ("Disque signalé défaillant par SMART".to_owned(), t[idx("smart_defaillant")]),
                ("Machines avec batterie".to_owned(), t[idx("avec_batterie")]),
                ("Batterie usée à plus de 50 %".to_owned(), t[idx("batterie_usee")]),
            ]))
        }
        section aria-labelledby="evolutions" {
            h2 id="evolutions" { "Évolutions à prévoir (pièces plutôt que PC neufs)" }
            (figures_table("Machines en service qui gagneraient le plus à une pièce peu coûteuse", "Évolution", &[
                ("Remplacer le disque dur par un SSD".to_owned(), t[idx("evolution_ssd")]),
                ("Passer à 8 Go de mémoire (emplacement libre ou barrette remplaçable)".to_owned(), t[idx("evolution_memoire")]),
                ("Moins de 8 Go sans évolution possible (mémoire soudée, aucun emplacement libre)".to_owned(), t[idx("memoire_non_extensible")]),
            ]))
        }
        section aria-labelledby="co2" {
            h2 id="co2" { "CO2e évité (estimation)" }
            table {
                caption { "CO2e évité par le réemploi, en kgCO2e (estimation : voir la méthode)" }
                thead { tr { th scope="col" { "Poste" } th scope="col" class="n" { "Base" } th scope="col" class="n" { "Facteur" } th scope="col" class="n" { "kgCO2e" } } }
                tbody {
                    tr {
                        th scope="row" { "Fabrication évitée : portables en service" }
                        td.n { (count(t[idx("portables")], "machine", "machines")) }
                        td.n { (fr_number(kg(factors.laptop_manufacture_g as f64), 1)) " kgCO2e / machine" }
                        td.n { (fr_number(t[idx("portables")] as f64 * kg(factors.laptop_manufacture_g as f64), 1)) }
                    }
                    tr {
                        th scope="row" { "Fabrication évitée : fixes en service" }
                        td.n { (count(t[idx("fixes")], "machine", "machines")) }
                        td.n { (fr_number(kg(factors.desktop_manufacture_g as f64), 1)) " kgCO2e / machine" }
                        td.n { (fr_number(t[idx("fixes")] as f64 * kg(factors.desktop_manufacture_g as f64), 1)) }
                    }
                    tr {
                        th scope="row" { "Fabrication évitée : écrans externes en service" }
                        td.n { (count(t[idx("ecrans")], "écran", "écrans")) }
                        td.n { (fr_number(kg(factors.screen_manufacture_g as f64), 1)) " kgCO2e / écran" }
                        td.n { (fr_number(co2.screens_kg, 1)) }
                    }
                    tr {
                        th scope="row" { "Usage prolongé" }
                        td.n { (fr_number(co2.extended_years, 2)) @if co2.extended_years < 2.0 { " année" } @else { " années" } }
                        td.n { (fr_number(kg(factors.reuse_year_g as f64), 1)) " kgCO2e / année" }
                        td.n { (fr_number(co2.reuse_kg, 1)) }
                    }
                }
                tfoot {
                    tr { th scope="row" colspan="3" { "Total" } td.n { strong { (fr_number(co2.total_kg(), 1)) } } }
                }
            }
        }
    }
}

/// `GET /audit`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    let fig = figures(&state, &scope, &params).await?;
    let schools = state.store.schools_in(&scope).await?;
    let mut nodes: Vec<ScopeNode> = Vec::new();
    for s in &schools {
        for (level, value) in [
            (ScopeLevel::Academie, s.academie.clone()),
            (ScopeLevel::Departement, s.departement.clone()),
            (
                ScopeLevel::Commune,
                format!("{}/{}", s.departement, s.commune),
            ),
        ] {
            nodes.push(ScopeNode { level, value });
        }
    }
    nodes.sort();
    nodes.dedup();
    // Only territories wholly within the reader's scope.
    let all = every_school(&state, &scope).await?;
    nodes.retain(|n| within(&all, &scope, n));
    let q = params.to_query();
    let body = html! {
        p {
            "Territoire : " strong { (params.territory_label()) } " ; période " (params.period_label())
            " ; périmètre : " (scope_label(&scope)) "."
        }
        form method="get" action="/audit" class="filters" {
            div {
                label for="noeud" { "Territoire" }
                select id="noeud" name="noeud" {
                    option value="" selected[params.filter.node.is_none()] { "Tout mon périmètre" }
                    @for n in &nodes {
                        option value=(n.to_string()) selected[params.filter.node.as_ref() == Some(n)] {
                            (n.level.label()) " " (n.value)
                        }
                    }
                }
            }
            div { label for="du" { "Du" } input type="date" id="du" name="du" value=(iso(params.from)); }
            div { label for="au" { "Au" } input type="date" id="au" name="au" value=(iso(params.to)); }
            div { button type="submit" id="afficher" { "Afficher" } }
        }
        nav aria-label="Exports de l'audit" {
            h2 { "Rapport et exports" }
            ul {
                li { a href={"/audit/rapport?" (q)} { "Rapport imprimable" } }
                li { a href={"/audit/chiffres.csv?" (q)} { "Chiffres (CSV)" } }
                li { a href={"/audit/chiffres.json?" (q)} { "Chiffres (JSON)" } }
                li { a href={"/audit/machines.csv?" (q)} { "Tableau par machine, preuves de réemploi (CSV)" } }
                li { a href={"/audit/machines.json?" (q)} { "Tableau par machine (JSON)" } }
                li { a href={"/audit/glpi.jsonl?" (q)} { "Inventaires au format GLPI (un document par ligne)" } }
                li { a href="/audit/dictionnaire" { "Dictionnaire des données" } }
            }
        }
        (sections(&fig, &state.co2))
        @if fig.schools.len() > SCHOOL_ROWS_MAX {
            (by_departement_table(&fig, &params))
        } @else {
            (by_school_table(&fig, &params))
        }
        (method_block(&state.co2))
    };
    Ok(html(page_at(
        "Audit du réemploi",
        "/audit",
        Some(&session),
        body,
    )))
}

/// Above this many schools, the audit page sums its table by département
/// (each a link narrowing the territory to it): a 2,000-row table is heavy
/// to send and to read on a 2012 laptop, and every school's figures stay
/// one click away and in the figures' CSV.
pub const SCHOOL_ROWS_MAX: usize = 300;

/// The per-school table of the audit page.
fn by_school_table(fig: &AuditFigures, params: &AuditParams) -> Markup {
    let at = |k: &str| idx(k);
    html! {
    section aria-labelledby="etablissements" {
        h2 id="etablissements" { "Par établissement" }
        table {
            caption { "Chiffres par établissement (le total du territoire est leur somme)" }
            thead {
                tr {
                    th scope="col" { "Établissement" }
                    th scope="col" { "Type" }
                    th scope="col" class="n" { "En service" }
                    th scope="col" class="n" { "Prises en réemploi pendant la période" }
                    th scope="col" class="n" { "Refusées par Windows 11" }
                    th scope="col" class="n" { "Retirées" }
                    th scope="col" { "Fiches" }
                }
            }
            tbody {
                @for s in &fig.schools {
                    tr {
                        th scope="row" {
                            a href={"/audit?" (AuditParams { filter: AuditFilter { node: Some(ScopeNode { level: ScopeLevel::Uai, value: s.uai.as_str().to_owned() }), ..params.filter.clone() }, ..params.clone() }.to_query())} { (s.name) }
                            " (" (s.uai) ", " (s.commune) ")"
                        }
                        td { (s.kind.label()) }
                        td.n { (s.counts[at("en_service")]) }
                        td.n { (s.counts[at("inscrites_periode")]) }
                        td.n { (s.counts[at("w11_incompatibles")]) }
                        td.n { (s.counts[at("retirees")]) }
                        td { a href={"/etablissements/" (s.uai) "/fiches"} { "Fiches de reconditionnement" span.visually-hidden { " — " (s.name) } } }
                    }
                }
            }
        }
    }
    }
}

/// The audit page's table for a large territory: its schools' figures
/// summed by département.
fn by_departement_table(fig: &AuditFigures, params: &AuditParams) -> Markup {
    let keys = [
        "en_service",
        "inscrites_periode",
        "w11_incompatibles",
        "retirees",
    ];
    let mut rows: std::collections::BTreeMap<&str, (usize, [i64; 4])> =
        std::collections::BTreeMap::new();
    for s in &fig.schools {
        let row = rows.entry(s.departement.as_str()).or_default();
        row.0 += 1;
        for (sum, k) in row.1.iter_mut().zip(keys) {
            *sum += s.counts[idx(k)];
        }
    }
    html! {
        section aria-labelledby="etablissements" {
            h2 id="etablissements" { "Par département" }
            p {
                (fig.schools.len()) " établissements : au-delà de " (SCHOOL_ROWS_MAX)
                ", les chiffres sont additionnés par département. Choisissez un département pour voir ses établissements ; "
                "le CSV des chiffres et le tableau par machine gardent le détail de chacun."
            }
            table {
                caption { "Chiffres par département (le total du territoire est leur somme)" }
                thead {
                    tr {
                        th scope="col" { "Département" }
                        th scope="col" class="n" { "Établissements" }
                        th scope="col" class="n" { "En service" }
                        th scope="col" class="n" { "Prises en réemploi pendant la période" }
                        th scope="col" class="n" { "Refusées par Windows 11" }
                        th scope="col" class="n" { "Retirées" }
                    }
                }
                tbody {
                    @for (dep, (schools, n)) in &rows {
                        tr {
                            th scope="row" {
                                a href={"/audit?" (AuditParams { filter: AuditFilter { node: Some(ScopeNode { level: ScopeLevel::Departement, value: (*dep).to_owned() }), ..params.filter.clone() }, ..params.clone() }.to_query())} { "Département " (dep) }
                            }
                            td.n { (schools) }
                            @for v in n { td.n { (v) } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /audit/rapport`: the council's printable report.
pub async fn report(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    let fig = figures(&state, &scope, &params).await?;
    let title = format!("Rapport d'audit du réemploi — {}", params.territory_label());
    let body = html! {
        div.rapport-entete {
            dl.facts {
                dt { "Territoire" } dd { (params.territory_label()) }
                dt { "Période" } dd { (params.period_label()) }
                dt { "Périmètre du lecteur" } dd { (scope_label(&scope)) }
                dt { "Établissements" } dd { (fig.schools.len()) }
                dt { "Édité le" } dd { (super::layout::date_time(Some(params.filter.now))) " (UTC) par " (session.user.login) }
            }
            p.noprint { a href={"/audit?" (params.to_query())} { "Retour à l'audit" } " — imprimez cette page avec la fonction Imprimer du navigateur (PDF possible)." }
        }
        (sections(&fig, &state.co2))
        (method_block(&state.co2))
    };
    Ok(html(page_at(&title, "/audit", Some(&session), body)))
}

/// `GET /audit/chiffres.json`.
pub async fn figures_json_page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    let fig = figures(&state, &scope, &params).await?;
    Ok(json_response(&figures_json(
        &fig, &params, &scope, &state.co2,
    )))
}

/// `GET /audit/chiffres.csv`.
pub async fn figures_csv_page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    auditor_or_admin(&session)?;
    let scope = scope(&session);
    let params = AuditParams::parse(raw.as_deref(), auth::now())?;
    let fig = figures(&state, &scope, &params).await?;
    Ok(attachment(
        figures_csv(&fig, &params, &scope, &state.co2),
        "text/csv; charset=utf-8",
        "attachment; filename=\"audit-chiffres.csv\"",
    ))
}

/// The server's own address as the browser used it, for QR codes: the
/// `Host` header (HTTP/1.1) or the request's authority (HTTP/2).
pub fn base_url(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
}

/// Raw SVG markup (already escaped by its producer).
pub fn raw_svg(svg: &str) -> Markup {
    let start = svg.find("<svg").unwrap_or(0);
    PreEscaped(svg[start..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_french_singular_below_two() {
        assert_eq!(count(0, "machine", "machines"), "0 machine");
        assert_eq!(count(1, "machine", "machines"), "1 machine");
        assert_eq!(count(1500, "machine", "machines"), "1\u{202f}500 machines");
    }

    #[test]
    fn a_large_territory_is_summed_by_departement() {
        use crate::store::audit::SchoolFigures;
        let params = AuditParams::parse(None, 1_780_000_000).unwrap();
        let mut fig = AuditFigures::default();
        for n in 0..(SCHOOL_ROWS_MAX + 1) {
            let mut counts = vec![0; COUNTERS.len()];
            counts[idx("en_service")] = 2;
            counts[idx("retirees")] = i64::from(n % 2 == 0);
            fig.schools.push(SchoolFigures {
                uai: nird_proto::uai::Uai::parse("0620056Z").unwrap(),
                name: format!("École {n}"),
                commune: "Arras".into(),
                departement: if n < 100 { "062" } else { "059" }.into(),
                kind: SchoolKind::Ecole,
                counts,
            });
        }
        let html = by_departement_table(&fig, &params).into_string();
        assert!(html.contains("Par département"));
        assert!(!html.contains("École 1"), "no per-school row");
        // 059: schools 100 to 300, 201 of them, 2 in use each, the 101
        // even-numbered ones retired.
        assert!(html.contains("noeud=departement%3A059"), "{html}");
        let row059 = &html[html.find("Département 059").unwrap()..];
        let cells: Vec<&str> = row059
            .split("<td class=\"n\">")
            .skip(1)
            .take(5)
            .map(|c| c.split('<').next().unwrap())
            .collect();
        assert_eq!(cells, ["201", "402", "0", "0", "101"]);
        // A smaller territory lists its schools.
        fig.schools.truncate(SCHOOL_ROWS_MAX);
        assert!(
            by_school_table(&fig, &params)
                .into_string()
                .contains("École 1")
        );
    }

    #[test]
    fn params_default_to_this_year_and_refuse_bad_dates() {
        let now = 1_780_000_000; // 2026-05-28
        let p = AuditParams::parse(None, now).unwrap();
        assert_eq!(iso(p.from), "2026-01-01");
        assert_eq!(iso(p.to), "2026-05-28");
        let p = AuditParams::parse(
            Some("noeud=departement:062&du=2025-01-01&au=2025-12-31"),
            now,
        )
        .unwrap();
        assert_eq!(
            p.filter.node.as_ref().unwrap().to_string(),
            "departement:062"
        );
        assert_eq!(p.filter.to - p.filter.from, 365 * 86_400 - 1);
        let again = AuditParams::parse(Some(&p.to_query()), now).unwrap();
        assert_eq!(again, p);
        assert!(AuditParams::parse(Some("du=2026-13-01"), now).is_err());
        assert!(AuditParams::parse(Some("du=2026-02-01&au=2026-01-01"), now).is_err());
        assert!(AuditParams::parse(Some("noeud=pays:France"), now).is_err());
    }

    #[test]
    fn co2_is_factors_times_counts() {
        let mut t = vec![0i64; COUNTERS.len()];
        t[idx("portables")] = 10;
        t[idx("fixes")] = 5;
        t[idx("vie_prolongee_secondes")] = 2 * YEAR_SECS;
        let c = Co2Avoided::of(&t, &Co2Factors::default());
        assert!((c.manufacture_kg - (10.0 * 182.6 + 5.0 * 204.4)).abs() < 1e-6);
        assert!((c.reuse_kg - 54.0).abs() < 1e-6);
        assert!((c.extended_years - 2.0).abs() < 1e-9);
    }
}
