//! Profils: published releases, the key that signed each (key id and
//! trusted comment, read from the stored signature), publication date,
//! where each profile is assigned (schools in scope) and how many machines
//! in scope applied the release.

use axum::Extension;
use axum::extract::State;
use base64::Engine as _;
use maud::html;

use super::layout::{date_time, html, page_at};
use super::{WebResult, scope};
use crate::auth::Session;
use crate::http::AppState;

/// (key id in minisign's notation, trusted comment) of a `.minisig` text.
pub fn signature_facts(minisig: &str) -> (String, String) {
    let mut lines = minisig.lines();
    let _untrusted = lines.next();
    let key_id = lines
        .next()
        .and_then(|l| {
            base64::engine::general_purpose::STANDARD
                .decode(l.trim())
                .ok()
        })
        .filter(|b| b.len() >= 10)
        .map(|b| b[2..10].iter().rev().map(|x| format!("{x:02X}")).collect())
        .unwrap_or_else(|| "inconnue".into());
    let trusted = lines
        .next()
        .and_then(|l| l.strip_prefix("trusted comment: "))
        .unwrap_or("")
        .to_owned();
    (key_id, trusted)
}

/// `GET /profils`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> WebResult {
    let releases = state.store.releases_in(&scope(&session)).await?;
    let body = html! {
        @if releases.is_empty() {
            p { "Aucune version de profil publiée." }
        } @else {
            table {
                caption { "Versions publiées, de la plus récente à la plus ancienne pour chaque profil" }
                thead { tr {
                    th scope="col" { "Profil" } th scope="col" { "Version" }
                    th scope="col" { "Clé de signature" } th scope="col" { "Commentaire signé" }
                    th scope="col" { "Publiée le (UTC)" } th scope="col" { "Publiée par" }
                    th scope="col" { "Affectée à" } th scope="col" class="n" { "Machines l'ayant appliquée" }
                } }
                tbody {
                    @for r in &releases {
                        @let (key, comment) = signature_facts(&r.minisig);
                        tr {
                            th scope="row" { (r.info.name) }
                            td.n { (r.info.version) }
                            td {
                                code { (r.info.signed_by.as_deref().unwrap_or(&key)) }
                                @if r.info.revoked_at.is_some() { " — " strong { "clé révoquée le " (date_time(r.info.revoked_at)) " (UTC) : version plus distribuée" } }
                            }
                            td { (comment_fr(&comment)) }
                            td { (date_time(Some(r.info.published_at))) }
                            td { (super::layout::actor_fr(&r.info.published_by)) }
                            td {
                                @if r.assigned_to.is_empty() { "aucun établissement" }
                                @for (i, u) in r.assigned_to.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    a href={"/etablissements/" (u)} { (u) }
                                }
                            }
                            td.n { (r.applied) }
                        }
                    }
                }
            }
        }
    };
    Ok(html(page_at("Profils", "/profils", Some(&session), body)))
}

/// minisign's trusted comment (tab-separated fields) in words:
/// `timestamp:N` → « signé le … »,
/// `file:NAME` → « fichier NAME », the `hashed` mode flag dropped; other
/// words (a comment the maintainers wrote) kept as they are.
fn comment_fr(comment: &str) -> String {
    let words: Vec<String> = comment
        .split('\t')
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "hashed")
        .map(|w| {
            if let Some(t) = w
                .strip_prefix("timestamp:")
                .and_then(|t| t.parse::<i64>().ok())
            {
                format!("signé le {} (UTC)", date_time(Some(t)))
            } else if let Some(file) = w.strip_prefix("file:") {
                format!("fichier {file}")
            } else {
                w.to_owned()
            }
        })
        .collect();
    words.join(", ")
}

#[cfg(test)]
mod comment_tests {
    #[test]
    fn minisigns_trusted_comment_reads_in_french() {
        assert_eq!(
            super::comment_fr("timestamp:0\tfile:primtux.toml\thashed"),
            "signé le 01/01/1970 00:00 (UTC), fichier primtux.toml"
        );
        assert_eq!(super::comment_fr("relu par Anne"), "relu par Anne");
    }
}
