//! The read-only admin JSON API, authenticated by personal API tokens
//! (`Authorization: Bearer nird_pat_…`) and scoped exactly like the pages:
//! `GET /api/v1/admin/machines` (the machine table, same query parameters
//! as the Établissement page, all pages), `GET /api/v1/admin/machines.csv`
//! (the CSV export) and `GET /api/v1/admin/machines/{id}` (404 when absent
//! or out of scope). Documented in `openapi.json` with the agent API.

#![allow(dead_code)] // the `...Doc` types exist for their schemas

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::export::{self, COLUMNS, TableParams};
use crate::auth;
use crate::http::AppState;
use crate::http::error::HttpError;
use crate::store::web::User;

/// The person behind a valid personal API token.
pub struct ApiUser(pub User);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| HttpError::unauthorized("jeton d'API personnel manquant"))?;
        match auth::api_user(state.store.as_ref(), bearer.trim()).await {
            Ok(Some(user)) => Ok(ApiUser(user)),
            Ok(None) => Err(HttpError::unauthorized(
                "jeton d'API inconnu, révoqué, ou compte désactivé",
            )),
            Err(auth::LoginError::Store(e)) => Err(e.into()),
            Err(e) => Err(HttpError::unauthorized(e.to_string())),
        }
    }
}

fn bad(e: super::WebError) -> HttpError {
    if e.status == axum::http::StatusCode::NOT_FOUND {
        HttpError::not_found("établissement inconnu")
    } else {
        HttpError::bad_request(e.message)
    }
}

/// Query parameters of the machine table (JSON and CSV alike); an empty
/// value means "no filter".
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TableQueryDoc {
    /// UAI of one school (a well-formed code with a wrong check letter: 404).
    #[param(pattern = r"^\s*([0-9]{7}[A-Za-z])?\s*$")]
    etablissement: Option<String>,
    /// Machine state.
    etat: Option<StateFilterDoc>,
    /// Windows 11 verdict.
    win11: Option<Windows11FilterDoc>,
    /// Profile compliance.
    profil: Option<ProfileFilterDoc>,
    /// Alert.
    alerte: Option<AlertFilterDoc>,
    /// Text in hostname, serial or model.
    #[param(max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    q: Option<String>,
    /// Sort key.
    tri: Option<SortDoc>,
    /// Sort order.
    ordre: Option<OrderDoc>,
    /// Accepted for symmetry with the page; the API returns every row.
    #[param(minimum = 1, maximum = 999999)]
    page: Option<u32>,
    /// Columns to include (repeatable).
    col: Option<Vec<ColumnDoc>>,
}

/// Values of `etat` (empty: no filter).
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum StateFilterDoc {
    active,
    pending,
    stale,
    missing,
    retired,
    #[schema(rename = "")]
    any,
}

/// Values of `win11` (empty: no filter).
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum Windows11FilterDoc {
    eligible,
    ineligible,
    unknown,
    #[schema(rename = "")]
    any,
}

/// Values of `profil` (empty: no filter).
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum ProfileFilterDoc {
    applied,
    pending,
    failed,
    #[schema(rename = "")]
    any,
}

/// Values of `alerte` (empty: no filter).
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum AlertFilterDoc {
    smart,
    batterie,
    disque,
    refus,
    agent,
    #[schema(rename = "")]
    any,
}

/// Values of `tri` (empty: by hostname).
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum SortDoc {
    nom,
    etablissement,
    serie,
    modele,
    statut,
    vu,
    win11,
    #[schema(rename = "")]
    default,
}

/// Values of `ordre` (empty: ascending).
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum OrderDoc {
    asc,
    desc,
    #[schema(rename = "")]
    default,
}

/// Values of `col`.
#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum ColumnDoc {
    nom,
    etablissement,
    serie,
    modele,
    etat,
    vu,
    win11,
    profil,
    alertes,
    agent,
}

/// One machine of the admin API.
#[derive(ToSchema, serde::Serialize)]
pub struct AdminMachineDoc {
    /// Identifier.
    id: String,
    /// Hostname (column `nom`).
    hostname: Option<String>,
    /// School UAI (column `etablissement`).
    school: Option<String>,
    /// School name (column `etablissement`).
    school_name: Option<String>,
    /// Serial number (column `serie`).
    serial: Option<String>,
    /// Vendor and product (column `modele`).
    model: Option<String>,
    /// `active`, `pending`, `stale` (7 days), `missing` (30 days) or `retired` (column `etat`).
    state: Option<String>,
    /// Stored status (column `etat`).
    status: Option<String>,
    /// Last check-in, RFC 3339 (column `vu`).
    last_seen: Option<String>,
    /// `eligible`, `ineligible` or `unknown` (column `win11`).
    windows11: Option<String>,
    /// `applied`, `pending`, `failed` or `none` (nothing assigned) (column `profil`).
    profile_state: Option<String>,
    /// Alert names: smart, batterie, disque, refus, agent (column `alertes`).
    alerts: Option<Vec<String>>,
    /// Why the latest release was refused (column `alertes`).
    refused_reason: Option<String>,
    /// Agent version (column `agent`).
    agent_version: Option<String>,
}

/// One machine with its check-in count and its latest inventory.
#[derive(ToSchema, serde::Serialize)]
pub struct AdminMachineDetailDoc {
    /// The machine's columns, as in the list.
    #[serde(flatten)]
    machine: AdminMachineDoc,
    /// Check-ins recorded.
    checkins: u64,
    /// The latest inventory document (`nird_proto::inventory::Inventory`)
    /// exactly as the agent sent it, installed software (`software`: every
    /// dpkg package and Flatpak application) included.
    #[schema(value_type = Option<Object>)]
    inventory: Option<serde_json::Value>,
}

/// The machine list.
#[derive(ToSchema)]
pub struct AdminMachineListDoc {
    /// Machines matching the filters, in scope.
    total: u64,
    /// The machines (every page).
    machines: Vec<AdminMachineDoc>,
}

/// Declares the personal token scheme.
struct PersonalToken;

impl Modify for PersonalToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "personal API token `nird_pat_…` (web page « Mon compte » or \
             `nird-server user token create`)"
                .into(),
        );
        components.add_security_scheme("personal_token", SecurityScheme::Http(http));
    }
}

/// The admin API's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(machines, machines_csv, machine),
    components(schemas(AdminMachineDoc, AdminMachineDetailDoc, AdminMachineListDoc)),
    modifiers(&PersonalToken)
)]
pub struct AdminApiDoc;

/// `GET /api/v1/admin/machines`.
#[utoipa::path(get, path = "/api/v1/admin/machines", tag = "admin",
    security(("personal_token" = [])),
    params(TableQueryDoc),
    responses(
        (status = 200, description = "Machines in the token owner's scope", body = AdminMachineListDoc),
        (status = 400, description = "Invalid parameter", body = nird_proto::api::ApiError),
        (status = 401, description = "Missing, unknown or revoked token", body = nird_proto::api::ApiError),
        (status = 404, description = "No such school", body = nird_proto::api::ApiError),
    ))]
pub async fn machines(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, HttpError> {
    let params = TableParams::parse(raw.as_deref()).map_err(bad)?;
    let (rows, total) = export::all_rows(&state, &user.scope(), &params)
        .await
        .map_err(|_| HttpError::unavailable("erreur de la base de données"))?;
    Ok(export::json_response(&export::list_json(
        &rows,
        total,
        &params.columns,
    )))
}

/// `GET /api/v1/admin/machines.csv`.
#[utoipa::path(get, path = "/api/v1/admin/machines.csv", tag = "admin",
    security(("personal_token" = [])),
    params(TableQueryDoc),
    responses(
        (status = 200, description = "CSV: `;` separated, UTF-8 with BOM, French dates", content_type = "text/csv", body = String),
        (status = 400, description = "Invalid parameter", body = nird_proto::api::ApiError),
        (status = 401, description = "Missing, unknown or revoked token", body = nird_proto::api::ApiError),
        (status = 404, description = "No such school", body = nird_proto::api::ApiError),
    ))]
pub async fn machines_csv(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, HttpError> {
    let params = TableParams::parse(raw.as_deref()).map_err(bad)?;
    let (rows, _) = export::all_rows(&state, &user.scope(), &params)
        .await
        .map_err(|_| HttpError::unavailable("erreur de la base de données"))?;
    Ok(export::csv_response(export::csv(&rows, &params.columns)))
}

/// `GET /api/v1/admin/machines/{id}`.
#[utoipa::path(get, path = "/api/v1/admin/machines/{id}", tag = "admin",
    security(("personal_token" = [])),
    params(("id" = String, Path, description = "Machine id")),
    responses(
        (status = 200, description = "The machine, with every column and its latest inventory", body = AdminMachineDetailDoc),
        (status = 401, description = "Missing, unknown or revoked token", body = nird_proto::api::ApiError),
        (status = 404, description = "No such machine in the token owner's scope", body = nird_proto::api::ApiError),
    ))]
pub async fn machine(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let not_found = || HttpError::not_found("machine introuvable");
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    let m = state
        .store
        .machine_in(&user.scope(), &id, auth::now())
        .await?
        .ok_or_else(not_found)?;
    let columns: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
    let mut v = export::row_json(&m.row, &columns);
    // The whole document: the history rows keep a reference in place of
    // the package list, which is stored once for every machine having it.
    let inventory = state
        .store
        .latest_inventory(&m.row.id)
        .await?
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("checkins".into(), json!(m.checkins));
        o.insert("inventory".into(), inventory);
    }
    Ok(export::json_response(&v))
}
