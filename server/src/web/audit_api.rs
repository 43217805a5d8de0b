//! `GET /api/v1/admin/reuse`: the audit figures as JSON for automation,
//! authenticated by a personal API token and scoped exactly like the
//! `/audit` page (roles `auditor` and `admin`; a territory node outside
//! the token owner's scope, or another role, answers 404). Documented in
//! `openapi.json` with the meaning and unit of every figure; the schema of
//! `figures` is built from [`COUNTERS`], so it cannot drift from what is
//! sent.

#![allow(dead_code)] // the `...Doc` types exist for their schemas

use axum::extract::{RawQuery, State};
use axum::response::Response;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::api::ApiUser;
use super::audit::{AuditParams, figures_json};
use super::export::json_response;
use crate::auth;
use crate::http::AppState;
use crate::http::error::HttpError;
use crate::store::Role;
use crate::store::audit::COUNTERS;

/// Every figure of a territory (or of one school), by key.
pub struct ReuseFiguresDoc;

impl PartialSchema for ReuseFiguresDoc {
    fn schema() -> RefOr<Schema> {
        let mut o = ObjectBuilder::new().description(Some(
            "Figures, each an integer. Machines \"in use\" are enrolled, not retired, and \
             seen in the 30 days before the end of the period; distributions count them.",
        ));
        for c in COUNTERS {
            o = o
                .property(
                    c.key,
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .description(Some(format!("{} (unit: {})", c.label, c.unit))),
                )
                .required(c.key);
        }
        RefOr::T(Schema::Object(o.build()))
    }
}

impl ToSchema for ReuseFiguresDoc {}

/// The period counted.
#[derive(ToSchema)]
pub struct ReusePeriodDoc {
    /// First day, `YYYY-MM-DD` (UTC).
    from: String,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive.
    to: String,
}

/// In-use machines of one processor generation.
#[derive(ToSchema)]
pub struct CpuGenerationDoc {
    /// Microarchitecture (code name); null when unknown.
    generation: Option<String>,
    /// Year its first parts were sold; null when unknown.
    launch_year: Option<i64>,
    /// Machines (unit: machines).
    machines: i64,
}

/// In-use machines refused by Windows 11 for exactly these blockers.
#[derive(ToSchema)]
pub struct BlockerCombinationDoc {
    /// Blockers: `tpm` (no TPM 2.0), `processeur` (CPU not supported),
    /// `micrologiciel` (no UEFI or no Secure Boot), `memoire` (< 4 GB RAM),
    /// `disque` (no 64 GB disk). Empty when the refusal has no blocker
    /// column (not expected).
    blockers: Vec<String>,
    /// Machines (unit: machines).
    machines: i64,
}

/// The emission factors used (`[audit]` of the server configuration).
#[derive(ToSchema)]
pub struct Co2eFactorsDoc {
    /// Manufacture footprint of a laptop (unit: kgCO2e per machine).
    laptop_manufacture_kgco2e: f64,
    /// Manufacture footprint of a professional desktop without screen
    /// (unit: kgCO2e per machine).
    desktop_manufacture_kgco2e: f64,
    /// Manufacture footprint of a 24-inch computer screen (unit: kgCO2e
    /// per screen).
    screen_manufacture_kgco2e: f64,
    /// Avoided per year of extended use (unit: kgCO2e per year).
    reuse_year_kgco2e: f64,
    /// Reference service life: reuse past build year + this is extended
    /// life (unit: years).
    standard_life_years: u32,
}

/// CO2e avoided: an estimate, see `method` and `sources`.
#[derive(ToSchema)]
pub struct Co2eDoc {
    /// In-use laptops × laptop factor + in-use desktops × desktop factor
    /// (unit: kgCO2e; a stock, not additive across periods).
    manufacture_avoided_kg: f64,
    /// External screens on in-use machines × screen factor (unit:
    /// kgCO2e; a stock, like the machines').
    screens_manufacture_avoided_kg: f64,
    /// Years of extended life × per-year factor (unit: kgCO2e).
    extended_use_kg: f64,
    /// Sum of the three (unit: kgCO2e).
    total_kg: f64,
    /// Years of extended life within the period, summed over machines
    /// (unit: years).
    extended_life_years: f64,
    /// The factors used.
    factors: Co2eFactorsDoc,
}

/// One school's figures.
#[derive(ToSchema)]
pub struct SchoolReuseDoc {
    /// UAI.
    uai: String,
    /// Name.
    name: String,
    /// Commune.
    commune: String,
    /// Département.
    departement: String,
    /// `ecole`, `college` or `lycee`.
    kind: String,
    /// Its figures (the territory's are their sum).
    figures: ReuseFiguresDoc,
}

/// A source of a factor.
#[derive(ToSchema)]
pub struct SourceDoc {
    /// What the source gives.
    figure: String,
    /// The source.
    source: String,
}

/// The audit figures of a territory and a period.
#[derive(ToSchema)]
pub struct ReuseDoc {
    /// The territory node asked for (`level:value`), null for the whole scope.
    territory: Option<String>,
    /// The token owner's scope, in words.
    scope: String,
    /// The period.
    period: ReusePeriodDoc,
    /// A machine seen within this many days of the period's end is in use
    /// (unit: days).
    in_use_days: i64,
    /// When the figures were computed (RFC 3339).
    generated_at: String,
    /// The territory's figures: the sum of `schools[].figures`.
    figures: ReuseFiguresDoc,
    /// Unit of each figure, by key.
    units: std::collections::BTreeMap<String, String>,
    /// French label of each figure, by key.
    labels: std::collections::BTreeMap<String, String>,
    /// In-use machines per school kind (`ecole`, `college`, `lycee`) (unit: machines).
    by_school_kind: std::collections::BTreeMap<String, i64>,
    /// In-use machines per processor generation, oldest first.
    cpu_generations: Vec<CpuGenerationDoc>,
    /// In-use machines refused by Windows 11 per combination of blockers,
    /// most frequent first.
    windows11_blocker_combinations: Vec<BlockerCombinationDoc>,
    /// CO2e avoided (estimate).
    co2e: Co2eDoc,
    /// Per school in the territory.
    schools: Vec<SchoolReuseDoc>,
    /// The method, in French sentences.
    method: Vec<String>,
    /// The sources of the factors.
    sources: Vec<SourceDoc>,
}

/// The audit API's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(reuse),
    components(schemas(
        ReuseDoc,
        ReuseFiguresDoc,
        ReusePeriodDoc,
        CpuGenerationDoc,
        BlockerCombinationDoc,
        Co2eDoc,
        Co2eFactorsDoc,
        SchoolReuseDoc,
        SourceDoc
    ))
)]
pub struct AuditApiDoc;

/// `GET /api/v1/admin/reuse`.
#[utoipa::path(get, path = "/api/v1/admin/reuse", tag = "admin",
    security(("personal_token" = [])),
    params(
        ("noeud" = Option<String>, Query, description = "Territory node inside the token owner's scope: academie:NAME, departement:CODE, commune:DEP/NAME or uai:UAI; absent for the whole scope"),
        ("du" = Option<String>, Query, description = "First day of the period, YYYY-MM-DD (default: 1 January of this year)"),
        ("au" = Option<String>, Query, description = "Last day of the period, YYYY-MM-DD, inclusive (default: today)"),
    ),
    responses(
        (status = 200, description = "Audit figures of the territory and period", body = ReuseDoc),
        (status = 400, description = "Invalid parameter", body = nird_proto::api::ApiError),
        (status = 401, description = "Missing, unknown or revoked token", body = nird_proto::api::ApiError),
        (status = 404, description = "Territory outside the token owner's scope, or a role without audit access", body = nird_proto::api::ApiError),
    ))]
pub async fn reuse(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, HttpError> {
    let not_found = || HttpError::not_found("territoire introuvable");
    if user.role == Role::School {
        return Err(not_found());
    }
    let params = AuditParams::parse_text(raw.as_deref(), auth::now())
        .map_err(|e| HttpError::bad_request(format!("paramètre invalide : {e}")))?;
    let scope = user.scope();
    // The pages' rule: a territory that covers a school in scope and lies
    // wholly within it (404 otherwise, naming nothing).
    let fig = super::audit::figures(&state, &scope, &params)
        .await
        .map_err(|e| {
            if e.status == axum::http::StatusCode::NOT_FOUND {
                not_found()
            } else {
                tracing::error!(error = %e.message, "audit figures failed");
                HttpError {
                    status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "erreur interne du serveur".into(),
                }
            }
        })?;
    Ok(json_response(&figures_json(
        &fig, &params, &scope, &state.co2,
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn openapi_documents_the_reuse_api_and_every_figure_with_its_unit() {
        let doc: Value = serde_json::from_str(&crate::http::openapi::document()).unwrap();
        let op = &doc["paths"]["/api/v1/admin/reuse"]["get"];
        assert!(op.is_object(), "path documented");
        assert!(op["responses"]["404"].is_object());
        let figures = &doc["components"]["schemas"]["ReuseFiguresDoc"]["properties"];
        for c in crate::store::audit::COUNTERS {
            let d = figures[c.key]["description"].as_str().unwrap_or_default();
            assert!(d.contains("unit:") && d.contains(c.label), "{}: {d}", c.key);
        }
        let co2 = &doc["components"]["schemas"]["Co2eDoc"]["properties"];
        for key in ["manufacture_avoided_kg", "extended_use_kg", "total_kg"] {
            let d = co2[key]["description"].as_str().unwrap_or_default();
            assert!(d.contains("unit: kgCO2e"), "{key}: {d}");
        }
    }
}
