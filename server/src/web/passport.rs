//! Machine passport (« fiche de reconditionnement »): a printable A4 page
//! per machine — identity and serial, hardware, health, the Windows 11
//! verdict and why, the OS and profiles applied, the school, the date it
//! was taken into reuse — with a QR code to its page on this server;
//! `/machines/{id}/fiche` for one, `/etablissements/{uai}/fiches` for a
//! whole school (one fiche per printed page, `@media print` in the
//! stylesheet). Every role, within scope (404 otherwise). Read from the
//! audit facts: no inventory is parsed.
//!
//! QR codes are drawn on the server as SVG by the `qrcode` crate (pure
//! Rust, no image library, no request to another host).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use maud::{Markup, html};

use super::audit::{base_url, raw_svg};
use super::audit_export::{blockers, in_use, upgrades};
use super::layout::{date, date_time, html, page_at, win11_label};
use super::school::school_or_404;
use super::{WebError, WebResult, scope};
use crate::audit::facts::{AuditFacts, MachineClass};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::audit::{AuditFilter, AuditMachineRow};
use crate::store::web::{ScopeLevel, ScopeNode};

/// An SVG QR code of `url` (quiet zone included), or nothing if the text
/// cannot be encoded.
pub fn qr_svg(url: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(150, 150)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

fn or_dash(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "inconnu".into())
}

fn requirement_label(key: &str) -> &'static str {
    match key {
        "tpm" => "pas de TPM 2.0",
        "processeur" => "processeur absent de la liste de Microsoft",
        "uefi" => "pas de micrologiciel UEFI",
        "secure_boot" => "pas de Secure Boot",
        "memoire" => "moins de 4 Go de mémoire",
        "disque" => "pas de disque de 64 Go",
        _ => "inconnu",
    }
}

fn status_label(s: &str) -> &'static str {
    match s {
        "active" => "active",
        "pending" => "en attente d'approbation",
        "retired" => "retirée",
        _ => "inconnu",
    }
}

/// One fiche.
pub fn fiche(r: &AuditMachineRow, base: &str, now: i64) -> Markup {
    let empty = AuditFacts::default();
    let f = r.facts.as_ref().unwrap_or(&empty);
    let url = format!("{base}/machines/{}", r.id);
    let filter = AuditFilter {
        node: None,
        from: now,
        to: now,
        now,
    };
    let age = f.build_year.map(|y| filter.end_year() - y);
    let blockers = blockers(f);
    let upgrades = upgrades(f);
    html! {
        article.fiche aria-labelledby={"fiche-" (r.id)} {
            h2 id={"fiche-" (r.id)} { "Fiche de reconditionnement — " (r.hostname) }
            div.fiche-haut {
                dl.facts {
                    dt { "Fabricant et modèle" } dd { (or_dash(f.vendor.as_ref())) " " (f.model.clone().unwrap_or_default()) }
                    dt { "N° de série" } dd { (or_dash(f.serial.as_ref())) }
                    dt { "Classe" } dd { (if r.facts.is_some() { MachineClass::label(&f.class) } else { "inconnue" }) }
                    dt { "Identifiant" } dd { code { (r.id) } }
                    dt { "Établissement" } dd { (r.school_name) " (" (r.uai) "), " (r.commune) }
                    dt { "Pris en réemploi le" } dd { (date(Some(r.enrolled_at))) }
                    dt { "Dernier contact" } dd { (date_time(r.last_seen)) @if r.last_seen.is_some() { " (UTC)" } }
                    dt { "Statut" } dd { (status_label(&r.status)) @if in_use(r, &filter) { ", en service" } @else { ", hors service" } }
                }
                figure.qr {
                    @if let Some(svg) = qr_svg(&url) {
                        div aria-hidden="true" { (raw_svg(&svg)) }
                    }
                    figcaption { "Code QR vers la page de la machine : " span.url { (url) } }
                }
            }
            h3 { "Matériel" }
            dl.facts {
                dt { "Processeur" }
                dd {
                    (or_dash(f.cpu_model.as_ref()))
                    @if let (Some(g), Some(y)) = (&f.cpu_generation, f.cpu_year) { " — " (g) ", lancé en " (y) }
                }
                dt { "Année de fabrication estimée" }
                dd {
                    @match (f.build_year, age) {
                        (Some(y), Some(a)) => { (y) " (environ " (a) " ans)" },
                        _ => "inconnue",
                    }
                }
                dt { "Mémoire" }
                dd {
                    @match f.ram_bytes {
                        Some(b) => (super::layout::memory_text(b.max(0).unsigned_abs())),
                        None => "inconnue",
                    }
                    @if let Some(m) = f.ram_modules { ", " (m) " barrette(s)" }
                    @if let Some(s) = f.ram_free_slots { ", " (s) " emplacement(s) libre(s)" }
                    @match f.ram_replaceable { Some(true) => ", remplaçable", Some(false) => ", soudée", None => "" }
                }
                dt { "Disque système" }
                dd {
                    @match (&f.disk_kind, f.disk_bytes) {
                        (Some(k), Some(b)) => { (super::layout::disk_kind_label(k)) ", " (super::layout::disk_text(b.max(0).unsigned_abs())) },
                        _ => "inconnu",
                    }
                }
                dt { "Écrans externes" }
                dd {
                    @match f.screens {
                        Some(0) => "aucun",
                        Some(n) => { (n) " (réemployé" @if n > 1 { "s" } " avec la machine)" },
                        None => "non signalés",
                    }
                }
                dt { "Micrologiciel" }
                dd {
                    "UEFI : " (match f.uefi { Some(true) => "oui", Some(false) => "non", None => "inconnu" })
                    " ; Secure Boot : " (match f.secure_boot.as_deref() {
                        Some("enabled") => "activé",
                        Some("disabled") => "disponible, désactivé",
                        Some("unsupported") => "non pris en charge",
                        _ => "inconnu",
                    })
                    " ; TPM : " (match f.tpm.as_deref() {
                        Some("none") => "absent ou désactivé".to_owned(),
                        Some(v) => v.to_owned(),
                        None => "inconnu".to_owned(),
                    })
                }
            }
            h3 { "Santé" }
            dl.facts {
                dt { "Disque (SMART)" }
                dd { (match f.smart.as_deref() { Some("failing") => "défaillant", Some("passed") => "sain", _ => "inconnu" }) }
                dt { "Batterie" }
                dd {
                    @match (f.has_battery, f.battery_wear) {
                        (Some(false), _) => "aucune",
                        (_, Some(w)) => { "usure " (w) " %" },
                        _ => "inconnue",
                    }
                }
            }
            h3 { "Windows 11" }
            p {
                "Verdict : " strong { (win11_label(&f.win11)) }
                @if !blockers.is_empty() {
                    " — " (blockers.split('+').map(requirement_label).collect::<Vec<_>>().join(", "))
                }
                "."
                @match f.cpu_basis.as_deref() {
                    Some("list") => " Processeur jugé d'après la liste Microsoft des processeurs pris en charge.",
                    Some("estimate") => " Processeur absent de la liste Microsoft : jugé par estimation (famille et modèle).",
                    _ => "",
                }
                @if f.windows_oem_licence == Some(true) {
                    " Vendue avec une licence Windows (OEM) : la fin du support de Windows 10 l'aurait mise au rebut."
                }
            }
            h3 { "Logiciel" }
            dl.facts {
                dt { "Système" } dd { (or_dash(f.os_name.as_ref())) }
                dt { "Profils appliqués" } dd { @if r.profiles.is_empty() { "aucun" } @else { (r.profiles) } }
                dt { "Évolution conseillée" }
                dd {
                    @if upgrades.is_empty() { "aucune" } @else {
                        (upgrades.split('+').map(|u| if u == "ssd" { "remplacer le disque dur par un SSD" } else { "passer à 8 Go de mémoire" }).collect::<Vec<_>>().join(", "))
                    }
                }
            }
            p.edition { "Fiche éditée le " (date_time(Some(now))) " (UTC) par NIRD Flotte." }
        }
    }
}

/// `GET /machines/{id}/fiche`.
pub async fn machine(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> WebResult {
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(WebError::not_found());
    }
    let row = state
        .store
        .audit_machine(&scope(&session), &id)
        .await?
        .ok_or_else(WebError::not_found)?;
    let title = format!("Fiche de reconditionnement — {}", row.hostname);
    let body = html! {
        p.noprint { a href={"/machines/" (row.id)} { "Retour à la machine" } " — imprimez avec la fonction Imprimer du navigateur." }
        (fiche(&row, &base_url(&headers, &uri), auth::now()))
    };
    Ok(html(page_at(&title, "", Some(&session), body)))
}

/// `GET /etablissements/{uai}/fiches`: every machine of the school.
pub async fn school(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    uri: Uri,
    Path(uai): Path<String>,
) -> WebResult {
    let school = school_or_404(&state, &session, &uai).await?;
    let scope = scope(&session);
    let now = auth::now();
    let filter = AuditFilter {
        node: Some(ScopeNode {
            level: ScopeLevel::Uai,
            value: school.uai.as_str().to_owned(),
        }),
        from: 0,
        to: now,
        now,
    };
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .audit_machines(&scope, &filter, after.clone(), 1_000)
            .await?;
        let done = page.len() < 1_000;
        after = page.last().map(|r| r.id.clone());
        rows.extend(page.into_iter().filter(|r| r.status != "retired"));
        if done {
            break;
        }
    }
    let base = base_url(&headers, &uri);
    let title = format!("Fiches de reconditionnement — {}", school.name);
    let body = html! {
        p.noprint {
            (rows.len()) " machine(s), une fiche par page imprimée. "
            a href={"/etablissements/" (school.uai)} { "Retour à l'établissement" }
        }
        @for r in &rows { (fiche(r, &base, now)) }
    };
    Ok(html(page_at(&title, "", Some(&session), body)))
}
