//! The machine table's query string (filters, sort, page, visible
//! columns) and its exports: CSV (`;`, UTF-8 with BOM, French dates, cells
//! that a spreadsheet would run as a formula neutralised) and JSON. Used by
//! the Établissement page, `/machines.csv|json` (session) and the admin API
//! (personal token).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use nird_proto::uai::Uai;
use serde_json::{Value, json};

use super::layout::{alert_labels, date_time, win11_label};
use super::{WebError, WebResult, scope};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::web::{
    MachineQuery, MachineRow, MachineSort, MachineState, ProfileState, Scope, alert,
};

/// Rows per page of the machine table.
pub const PAGE_SIZE: u64 = 50;

/// The table's columns: (URL key, French header).
pub const COLUMNS: [(&str, &str); 10] = [
    ("nom", "Nom d'hôte"),
    ("etablissement", "Établissement"),
    ("serie", "N° de série"),
    ("modele", "Modèle"),
    ("etat", "État"),
    ("vu", "Dernier contact (UTC)"),
    ("win11", "Windows 11"),
    ("profil", "Profils"),
    ("alertes", "Alertes"),
    ("agent", "Version de l'agent"),
];

/// Parsed query string of the machine table.
#[derive(Debug, Clone, Default)]
pub struct TableParams {
    /// Filters, sort, page.
    pub query: MachineQuery,
    /// Visible columns (keys of [`COLUMNS`]), in table order.
    pub columns: Vec<&'static str>,
    /// Page number, from 1.
    pub page: u64,
    /// `tout=1`: the school page shows this page's rows already selected
    /// for a bulk action (the pages run no script).
    pub select_all: bool,
}

impl TableParams {
    /// Parses a query string; unknown values are refused with a French
    /// message (400), unknown keys ignored.
    pub fn parse(raw: Option<&str>) -> Result<Self, WebError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let mut q = MachineQuery::default();
        let mut columns = Vec::new();
        let mut page = 1u64;
        let mut select_all = false;
        for (k, raw) in &pairs {
            // Values are taken as sent (the filter form's selects send
            // exact names); an empty value means "no filter", except for
            // `page` and `col`, which forms never send empty. Only the school
            // code and the search text may carry surrounding blanks.
            let v = raw.as_str();
            let bad = || WebError::bad_request(format!("Valeur « {v} » invalide pour « {k} »."));
            if v.is_empty() {
                if matches!(k.as_str(), "page" | "col") {
                    return Err(bad());
                }
                continue;
            }
            match k.as_str() {
                "etablissement" if v.trim().is_empty() => {}
                "etablissement" => {
                    q.school = Some(Uai::parse(v).map_err(|e| match e {
                        // Well-formed but no such code: no such school.
                        nird_proto::uai::UaiError::CheckLetter { .. } => WebError::not_found(),
                        _ => bad(),
                    })?)
                }
                "etat" => q.state = Some(MachineState::parse(v).ok_or_else(bad)?),
                "win11" => {
                    if !matches!(v, "eligible" | "ineligible" | "unknown") {
                        return Err(bad());
                    }
                    q.win11 = Some(v.to_owned());
                }
                "profil" => q.profile = Some(ProfileState::parse(v).ok_or_else(bad)?),
                "alerte" => {
                    q.alert = Some(
                        alert::ALL
                            .iter()
                            .find(|(_, name, _)| *name == v)
                            .map(|(f, _, _)| *f)
                            .ok_or_else(bad)?,
                    )
                }
                "q" => {
                    if v.chars().count() > 100 || v.chars().any(char::is_control) {
                        return Err(bad());
                    }
                    let text = v.trim();
                    if !text.is_empty() {
                        q.text = Some(text.to_owned());
                    }
                }
                "tout" if v == "1" => select_all = true,
                "tout" => return Err(bad()),
                "tri" => q.sort = MachineSort::parse(v).ok_or_else(bad)?,
                "ordre" => {
                    q.desc = match v {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(bad()),
                    }
                }
                "page" => {
                    page = v
                        .parse()
                        .ok()
                        .filter(|p| *p >= 1 && *p < 1_000_000)
                        .ok_or_else(bad)?
                }
                "col" => {
                    let key = COLUMNS
                        .iter()
                        .find(|(c, _)| *c == v)
                        .map(|(c, _)| *c)
                        .ok_or_else(bad)?;
                    if !columns.contains(&key) {
                        columns.push(key);
                    }
                }
                _ => {}
            }
        }
        if columns.is_empty() {
            columns = COLUMNS.iter().map(|(c, _)| *c).collect();
        } else {
            columns.sort_by_key(|c| COLUMNS.iter().position(|(k, _)| k == c));
        }
        q.offset = (page - 1) * PAGE_SIZE;
        q.limit = Some(PAGE_SIZE);
        Ok(TableParams {
            query: q,
            columns,
            page,
            select_all,
        })
    }

    /// The query string that reproduces these parameters, with `page`
    /// replaced, sort overridden when given.
    pub fn to_query(&self, page: u64, sort: Option<(MachineSort, bool)>) -> String {
        let q = &self.query;
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(u) = &q.school {
            s.append_pair("etablissement", u.as_str());
        }
        if let Some(v) = q.state {
            s.append_pair("etat", v.as_str());
        }
        if let Some(v) = &q.win11 {
            s.append_pair("win11", v);
        }
        if let Some(v) = q.profile {
            s.append_pair("profil", v.as_str());
        }
        if let Some(a) = q.alert
            && let Some((_, name, _)) = alert::ALL.iter().find(|(f, _, _)| *f == a)
        {
            s.append_pair("alerte", name);
        }
        if let Some(v) = &q.text {
            s.append_pair("q", v);
        }
        let (sort, desc) = sort.unwrap_or((q.sort, q.desc));
        s.append_pair("tri", sort.as_str());
        s.append_pair("ordre", if desc { "desc" } else { "asc" });
        if self.columns.len() != COLUMNS.len() {
            for c in &self.columns {
                s.append_pair("col", c);
            }
        }
        if page > 1 {
            s.append_pair("page", &page.to_string());
        }
        s.finish()
    }
}

/// The text of a cell, as shown and exported.
pub fn cell(row: &MachineRow, column: &str) -> String {
    match column {
        "nom" => row.hostname.clone(),
        "etablissement" => format!("{} ({})", row.school_name, row.school),
        "serie" => row.serial.clone(),
        "modele" => row.model.clone(),
        "etat" => row.state.label().to_owned(),
        "vu" => date_time(row.last_seen),
        "win11" => win11_label(&row.win11).to_owned(),
        "profil" => row.profile.label().to_owned(),
        "alertes" => {
            let mut labels: Vec<String> = alert_labels(row.alerts)
                .iter()
                .map(|s| s.to_string())
                .collect();
            if let Some(r) = &row.refused_reason
                && row.alerts & alert::REFUSED != 0
            {
                labels.push(format!(
                    "refus : {}",
                    nird_proto::api::RefusalReason::humanize(r)
                ));
            }
            labels.join(", ")
        }
        "agent" => row.agent_version.clone(),
        _ => String::new(),
    }
}

/// One CSV field: neutralised if a spreadsheet would read it as a formula
/// (leading `=`, `+`, `-`, `@`, tab or carriage return get a `'`), quoted
/// if it holds `;`, `"` or a line break.
pub fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The CSV document of `rows` with `columns`.
pub fn csv(rows: &[MachineRow], columns: &[&str]) -> String {
    let mut out = String::from("\u{feff}");
    let header: Vec<String> = columns
        .iter()
        .map(|c| {
            COLUMNS
                .iter()
                .find(|(k, _)| k == c)
                .map(|(_, l)| csv_field(l))
                .unwrap_or_default()
        })
        .collect();
    out.push_str(&header.join(";"));
    out.push_str("\r\n");
    for r in rows {
        let line: Vec<String> = columns.iter().map(|c| csv_field(&cell(r, c))).collect();
        out.push_str(&line.join(";"));
        out.push_str("\r\n");
    }
    out
}

fn rfc3339(t: Option<i64>) -> Value {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// A machine as JSON, the fields of `columns` (plus `id` always).
pub fn row_json(r: &MachineRow, columns: &[&str]) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), json!(r.id));
    for c in columns {
        match *c {
            "nom" => {
                o.insert("hostname".into(), json!(r.hostname));
            }
            "etablissement" => {
                o.insert("school".into(), json!(r.school.as_str()));
                o.insert("school_name".into(), json!(r.school_name));
            }
            "serie" => {
                o.insert("serial".into(), json!(r.serial));
            }
            "modele" => {
                o.insert("model".into(), json!(r.model));
            }
            "etat" => {
                o.insert("state".into(), json!(r.state.as_str()));
                o.insert("status".into(), json!(r.status.as_str()));
            }
            "vu" => {
                o.insert("last_seen".into(), rfc3339(r.last_seen));
            }
            "win11" => {
                o.insert("windows11".into(), json!(r.win11));
            }
            "profil" => {
                o.insert("profile_state".into(), json!(r.profile.as_str()));
            }
            "alertes" => {
                let names: Vec<&str> = alert::ALL
                    .iter()
                    .filter(|(f, _, _)| r.alerts & f != 0)
                    .map(|(_, n, _)| *n)
                    .collect();
                o.insert("alerts".into(), json!(names));
                o.insert("refused_reason".into(), json!(r.refused_reason));
            }
            "agent" => {
                o.insert("agent_version".into(), json!(r.agent_version));
            }
            _ => {}
        }
    }
    Value::Object(o)
}

/// Every row matching `params` (all pages) in `scope`.
pub async fn all_rows(
    state: &AppState,
    scope: &Scope,
    params: &TableParams,
) -> Result<(Vec<MachineRow>, u64), WebError> {
    let mut q = params.query.clone();
    q.offset = 0;
    q.limit = None;
    let page = state.store.machines_in(scope, &q, auth::now()).await?;
    Ok((page.rows, page.total))
}

/// A CSV download response.
pub fn csv_response(body: String) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"machines.csv\""),
    );
    res
}

/// A JSON response.
pub fn json_response(value: &Value) -> Response {
    let mut res = value.to_string().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The JSON document of a machine list.
pub fn list_json(rows: &[MachineRow], total: u64, columns: &[&str]) -> Value {
    json!({
        "total": total,
        "machines": rows.iter().map(|r| row_json(r, columns)).collect::<Vec<_>>(),
    })
}

/// `GET /machines.csv`: the table (all pages) as CSV, for the session.
pub async fn csv_page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let params = TableParams::parse(raw.as_deref())?;
    let (rows, _) = all_rows(&state, &scope(&session), &params).await?;
    Ok(csv_response(csv(&rows, &params.columns)))
}

/// `GET /machines.json`: the same as JSON.
pub async fn json_page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let params = TableParams::parse(raw.as_deref())?;
    let (rows, total) = all_rows(&state, &scope(&session), &params).await?;
    Ok(json_response(&list_json(&rows, total, &params.columns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_separators_quoted() {
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("+33"), "'+33");
        assert_eq!(csv_field("-x"), "'-x");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("a;b"), "\"a;b\"");
        assert_eq!(csv_field("dit \"x\""), "\"dit \"\"x\"\"\"");
        assert_eq!(csv_field("PC-01"), "PC-01");
    }

    #[test]
    fn query_round_trips_and_refuses_unknown_values() {
        let p = TableParams::parse(Some("etat=pending&q=pc&col=serie&col=nom&page=2")).unwrap();
        assert_eq!(p.query.state, Some(MachineState::Pending));
        assert_eq!(p.columns, vec!["nom", "serie"]);
        assert_eq!(p.query.offset, PAGE_SIZE);
        let again = TableParams::parse(Some(&p.to_query(2, None))).unwrap();
        assert_eq!(again.query, p.query);
        assert!(TableParams::parse(Some("etat=perdu")).is_err());
        assert!(TableParams::parse(Some("col=secret")).is_err());
    }
}
