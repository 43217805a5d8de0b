//! The page frame (skip link, banner, main menu, `main`, footer), the
//! stylesheet served from the binary, and small shared widgets.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::auth::Session;
use crate::store::Role;
use crate::store::web::{MachineState, ProfileState, alert};

/// Our one stylesheet. Contrast ≥ 4.5:1 for text, a visible focus ring,
/// states written in words (colour only repeats them).
const STYLE: &str = include_str!("style.css");

/// `GET /style.css`.
pub async fn stylesheet() -> Response {
    let mut res = STYLE.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// An HTML response.
pub fn html(markup: Markup) -> Response {
    let mut res = markup.into_string().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// French name of a role.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Admin => "administrateur",
        Role::School => "gestionnaire",
        Role::Auditor => "auditeur",
    }
}

/// The menu entries: (path, label, admin only).
const MENU: [(&str, &str, bool); 5] = [
    ("/", "Accueil", false),
    ("/profils", "Profils", false),
    ("/journal", "Journal", false),
    ("/utilisateurs", "Utilisateurs", true),
    ("/compte", "Mon compte", false),
];

/// A whole page: `title` is both the `<title>` and the `<h1>`.
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    page_at(title, "", session, body)
}

/// A page whose menu entry `current` is marked `aria-current="page"`.
pub fn page_at(title: &str, current: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — NIRD Flotte" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                a.skip href="#contenu" { "Aller au contenu" }
                header.banner {
                    p.brand { a href="/" { "NIRD Flotte" } }
                    @if let Some(s) = session {
                        nav aria-label="Menu principal" {
                            ul {
                                @for (path, label, admin) in MENU {
                                    @if !admin || s.user.role == Role::Admin {
                                        li {
                                            a href=(path) aria-current=[(current == path).then_some("page")] {
                                                (label)
                                            }
                                        }
                                    }
                                }
                                @if matches!(s.user.role, Role::Admin | Role::Auditor) {
                                    li {
                                        a href="/audit" aria-current=[(current == "/audit").then_some("page")] {
                                            "Audit"
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            p {
                                "Connecté : " strong { (s.user.login) }
                                " (" (role_label(s.user.role)) ")"
                            }
                            form method="post" action="/deconnexion" {
                                (csrf(s))
                                button type="submit" id="deconnexion" { "Se déconnecter" }
                            }
                        }
                    }
                }
                main id="contenu" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                footer.footer {
                    p { "NIRD Flotte — numérique inclusif, responsable et durable." }
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// `JJ/MM/AAAA HH:MM` (UTC) of a Unix time, or « jamais ».
pub fn date_time(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[day]/[month]/[year] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_else(|| "jamais".into())
}

/// `JJ/MM/AAAA` (UTC) of a Unix time.
pub fn date(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(time::macros::format_description!("[day]/[month]/[year]"))
                .ok()
        })
        .unwrap_or_else(|| "—".into())
}

/// A machine state as a labelled badge (the word carries the meaning).
pub fn state_badge(state: MachineState) -> Markup {
    html! { span class={"badge etat-" (state.as_str())} { (state.label()) } }
}

/// A profile state as a labelled badge.
pub fn profile_badge(p: ProfileState) -> Markup {
    html! { span class={"badge profil-" (p.as_str())} { (p.label()) } }
}

/// French label of a Windows 11 verdict.
pub fn win11_label(v: &str) -> &'static str {
    match v {
        "eligible" => "compatible",
        "ineligible" => "incompatible",
        _ => "indéterminé",
    }
}

/// The alert labels of a flag set.
pub fn alert_labels(flags: i64) -> Vec<&'static str> {
    alert::ALL
        .iter()
        .filter(|(f, _, _)| flags & f != 0)
        .map(|(_, _, label)| *label)
        .collect()
}

/// An alert list (words, with a warning sign for sighted users).
pub fn alerts(flags: i64) -> Markup {
    let labels = alert_labels(flags);
    html! {
        @if labels.is_empty() {
            "aucune"
        } @else {
            ul.alertes {
                @for l in labels { li { span aria-hidden="true" { "⚠ " } (l) } }
            }
        }
    }
}

/// A success or information message at the top of a page.
pub fn notice(text: &str) -> Markup {
    html! { div.notice role="status" { p { (text) } } }
}

/// The id of [`form_error`]'s message, for the fields' `aria-describedby`.
pub const FORM_ERROR_ID: &str = "erreur-formulaire";

/// The `aria-invalid` and `aria-describedby` of a form field: set to mark
/// it and point at [`form_error`]'s message when it is the one `wrong`.
pub fn error_marks(wrong: bool) -> (Option<&'static str>, Option<&'static str>) {
    if wrong {
        (Some("true"), Some(FORM_ERROR_ID))
    } else {
        (None, None)
    }
}

/// Why a form was refused, announced (`role="alert"`) at the top of the
/// page, with a link to the form (`#form`), which is shown again with what
/// was typed and its field in error marked (RGAA 11.10, 11.11).
pub fn form_error(text: &str, form: &str, fix: &str) -> Markup {
    html! {
        div.notice.erreur role="alert" id=(FORM_ERROR_ID) {
            p { strong { "Erreur : " } (text) " " a href={"#" (form)} { (fix) } }
        }
    }
}

/// A page shown again after a refused form, with status 400.
pub fn refused(page: Response) -> Response {
    (axum::http::StatusCode::BAD_REQUEST, page).into_response()
}

/// Whole Go (10⁹ bytes) of a disk, rounded: how disks are sold and how
/// the fiche and the exports give them.
pub fn disk_gb(bytes: u64) -> u64 {
    bytes.saturating_add(500_000_000) / 1_000_000_000
}

/// Memory in Go as it is sold (2³⁰ bytes), to one decimal.
pub fn memory_gb(bytes: u64) -> f64 {
    (bytes as f64 / 1_073_741_824.0 * 10.0).round() / 10.0
}

/// « 23,5 Go » (memory, [`memory_gb`]).
pub fn memory_text(bytes: u64) -> String {
    format!("{} Go", crate::audit::co2::fr_number(memory_gb(bytes), 1))
}

/// « 256 Go » (a disk or file system, [`disk_gb`]).
pub fn disk_text(bytes: u64) -> String {
    format!(
        "{} Go",
        crate::audit::co2::fr_number(disk_gb(bytes) as f64, 0)
    )
}

/// French name of a disk kind of the audit facts (`hdd`, `ssd`, `nvme`,
/// `other`).
pub fn disk_kind_label(kind: &str) -> &str {
    match kind {
        "hdd" => "disque dur",
        "ssd" => "SSD SATA",
        "nvme" => "SSD NVMe",
        "other" => "autre (virtuel ou USB)",
        other => other,
    }
}

/// Who did something, for people: `cli:NAME` (a command on the server)
/// reads « ligne de commande (NAME) », or just « ligne de commande » when
/// the user was unknown; a login as it is.
pub fn actor_fr(actor: &str) -> String {
    match actor.strip_prefix("cli:") {
        Some("inconnu" | "") => "ligne de commande".to_owned(),
        Some(user) => format!("ligne de commande ({user})"),
        None => actor.to_owned(),
    }
}
