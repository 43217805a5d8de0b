//! Journal: the audit log, filterable by actor, action, school and date.
//! Administrators see everything; others see the entries that name a
//! school of their scope or one of its machines.

use axum::Extension;
use axum::extract::{RawQuery, State};
use maud::html;
use nird_proto::uai::Uai;

use super::layout::{date_time, html, page_at};
use super::{WebError, WebResult, scope};
use crate::auth::Session;
use crate::http::AppState;
use crate::store::web::AuditQuery;

/// Entries shown at most.
const LIMIT: u64 = 500;

fn parse_day(text: &str) -> Result<i64, WebError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| WebError::bad_request(format!("Date « {text} » invalide (AAAA-MM-JJ).")))
}

/// `GET /journal`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let mut q = AuditQuery {
        limit: LIMIT,
        ..AuditQuery::default()
    };
    let mut shown: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        let v = v.trim().to_owned();
        if v.is_empty() || v.len() > 100 {
            continue;
        }
        match k.as_ref() {
            "acteur" => q.actor = Some(v.clone()),
            "action" => q.action = Some(v.clone()),
            "etablissement" => {
                q.school = Some(Uai::parse(&v).map_err(|e| WebError::bad_request(e.to_string()))?)
            }
            "du" => q.since = Some(parse_day(&v)?),
            "au" => q.until = Some(parse_day(&v)? + 86_400),
            _ => continue,
        }
        shown.push((k.into_owned(), v));
    }
    let value = |key: &str| {
        shown
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let entries = state.store.audit_in(&scope(&session), &q).await?;
    let body = html! {
        form method="get" action="/journal" aria-label="Filtrer le journal" {
            div.filters {
                div { label for="j-acteur" { "Acteur" } input type="text" id="j-acteur" name="acteur" value=(value("acteur")); }
                div { label for="j-action" { "Action (début)" } input type="text" id="j-action" name="action" value=(value("action")); }
                div { label for="j-etab" { "Établissement (UAI)" } input type="text" id="j-etab" name="etablissement" value=(value("etablissement")); }
                div { label for="j-du" { "Du" } input type="date" id="j-du" name="du" value=(value("du")); }
                div { label for="j-au" { "Au" } input type="date" id="j-au" name="au" value=(value("au")); }
                div { button type="submit" id="filtrer-journal" { "Filtrer" } }
            }
        }
        table {
            caption { "Journal d'audit, du plus récent au plus ancien (" (entries.len()) " entrée(s), " (LIMIT) " au plus)" }
            thead { tr { th scope="col" { "Date (UTC)" } th scope="col" { "Acteur" } th scope="col" { "Action" } th scope="col" { "Détails" } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (date_time(Some(e.at))) }
                        td { (e.actor) }
                        td { (action_fr(&e.action)) " " span.code-action { "(" code { (e.action) } ")" } }
                        td { (detail(&e.detail)) }
                    }
                }
            }
        }
    };
    Ok(html(page_at("Journal", "/journal", Some(&session), body)))
}

/// An audit entry's details (a JSON object) as "name : value" lines, field
/// names in French where the journal uses them; anything else verbatim.
fn detail(text: &str) -> maud::Markup {
    use serde_json::Value;
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return html! { code { (text) } };
    };
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    html! {
        ul.detail {
            @for (k, v) in &map {
                li { span.key { (field_fr(k)) } " : " (value_fr(k, &show(v))) }
            }
        }
    }
}

/// An audit action in French; its code stays beside it (the filter takes
/// codes). Unknown codes are shown as they are.
fn action_fr(code: &str) -> &str {
    match code {
        "login" => "Connexion",
        "logout" => "Déconnexion",
        "login.failed" => "Connexion refusée",
        "user.add" => "Compte créé",
        "user.role" => "Rôle ou périmètre changé",
        "user.password" => "Mot de passe changé",
        "user.disable" => "Compte désactivé",
        "user.enable" => "Compte réactivé",
        "apitoken.create" => "Jeton d'API créé",
        "apitoken.revoke" => "Jeton d'API révoqué",
        "school.add" => "Établissement ajouté",
        "token.create" => "Jeton d'inscription créé",
        "token.revoke" => "Jeton d'inscription révoqué",
        "machine.status" => "État de machine changé",
        "assign.school" => "Profils de l'établissement",
        "assign.machine" => "Dérogation de profil",
        "profile.publish" => "Profil publié",
        "keyring.publish" => "Trousseau publié",
        "index.publish" => "Index du catalogue publié",
        other => other,
    }
}

/// A stored value in French where it is one of the product's codes
/// (machine states, roles); anything else as it is.
fn value_fr(key: &str, value: &str) -> String {
    let word = match (key, value) {
        ("from" | "to" | "status", "active") => "active",
        ("from" | "to" | "status", "pending") => "en attente",
        ("from" | "to" | "status", "retired") => "retirée",
        ("role", "admin") => "administrateur",
        ("role", "school") => "gestionnaire",
        ("role", "auditor") => "auditeur",
        ("include", "true") => "ajouté",
        ("include", "false") => "retiré",
        ("expires_at", v) => {
            return v
                .parse::<i64>()
                .map(|t| format!("{} (UTC)", date_time(Some(t))))
                .unwrap_or_else(|_| v.to_owned());
        }
        _ => return value.to_owned(),
    };
    word.to_owned()
}

fn field_fr(key: &str) -> &str {
    match key {
        "expires_at" => "expire le",
        "max_uses" => "utilisations permises",
        "revoked_releases" => "versions révoquées",
        "blobs" => "fichiers",
        "schools" => "établissements",
        "territory" => "territoire",
        "login" => "identifiant",
        "role" => "rôle",
        "scope" => "périmètre",
        "school" | "uai" => "établissement",
        "name" => "nom",
        "machine" => "machine",
        "ip" => "adresse IP",
        "expires" => "expire",
        "to" => "vers",
        "from" => "depuis",
        "profiles" => "profils",
        "profile" => "profil",
        "label" => "libellé",
        "keys" => "clés",
        "include" => "inclusion",
        "version" => "version",
        "id" => "n°",
        "status" => "statut",
        "hostname" => "nom d'hôte",
        "uses" => "utilisations",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_entries_read_in_french() {
        assert_eq!(action_fr("token.create"), "Jeton d'inscription créé");
        assert_eq!(action_fr("inconnu.x"), "inconnu.x");
        assert_eq!(value_fr("to", "retired"), "retirée");
        assert_eq!(value_fr("role", "school"), "gestionnaire");
        assert_eq!(value_fr("login", "school"), "school");
        assert_eq!(value_fr("expires_at", "0"), "01/01/1970 00:00 (UTC)");
        let html = detail(r#"{"max_uses": 30, "to": "retired"}"#).into_string();
        assert!(
            html.contains("utilisations permises") && html.contains("retirée"),
            "{html}"
        );
    }
}
