//! Établissement: the machine table (sortable, filterable, paginated,
//! columns chosen by the user, bulk actions), the approval queue, the
//! enrolment tokens and the school's profile assignments.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use maud::{Markup, html};
use nird_proto::api::MachineStatus;
use nird_proto::uai::Uai;

use super::export::{COLUMNS, TableParams, cell};
use super::layout::{self, alerts, csrf, date_time, html, notice, profile_badge, state_badge};
use super::{FormData, WebError, WebResult, can_manage, scope, see_other};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::secrets;
use crate::store::web::{MachineQuery, MachineSort, MachineState, ProfileState, alert};
use crate::store::{NewToken, School};

/// The school named in the path, if it exists and is in scope (else 404).
pub async fn school_or_404(
    state: &AppState,
    session: &Session,
    uai: &str,
) -> Result<School, WebError> {
    let uai = Uai::parse(uai).map_err(|_| WebError::not_found())?;
    state
        .store
        .school_in(&scope(session), &uai)
        .await?
        .ok_or_else(WebError::not_found)
}

/// A profile name, checked like the CLI does.
pub fn profile_name(text: &str) -> Result<String, WebError> {
    let t = text.trim();
    if !nird_proto::profile::is_slug(t) {
        return Err(WebError::bad_request(format!(
            "Nom de profil « {} » invalide : lettres minuscules, chiffres et tirets \
             simples, 64 caractères au plus.",
            crate::echo::quoted(t, 64)
        )));
    }
    Ok(t.to_owned())
}

/// `GET /etablissements/{uai}`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(uai): Path<String>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let school = school_or_404(&state, &session, &uai).await?;
    let mut params = TableParams::parse(raw.as_deref())?;
    params.query.school = Some(school.uai.clone());
    render(&state, &session, &school, &params, None).await
}

/// Renders the page, with an optional message on top.
/// A refused form of the school page, shown again as typed, its reason
/// above it.
enum Refused<'a> {
    /// A new enrolment token; `days` tells which field is wrong.
    Token {
        uses: &'a str,
        days: &'a str,
        days_wrong: bool,
        error: &'a str,
    },
    /// The assignments.
    Assign { profiles: &'a str, error: &'a str },
}

async fn render(
    state: &AppState,
    session: &Session,
    school: &School,
    params: &TableParams,
    message: Option<Markup>,
) -> WebResult {
    render_page(state, session, school, params, message, None).await
}

/// The first page again after `refusal` (status 400).
async fn render_refused(
    state: &AppState,
    session: &Session,
    school: &School,
    refusal: Refused<'_>,
) -> WebResult {
    let mut params = TableParams::parse(None)?;
    params.query.school = Some(school.uai.clone());
    let page = render_page(state, session, school, &params, None, Some(refusal)).await?;
    Ok(layout::refused(page))
}

async fn render_page(
    state: &AppState,
    session: &Session,
    school: &School,
    params: &TableParams,
    message: Option<Markup>,
    refusal: Option<Refused<'_>>,
) -> WebResult {
    let (token_error, uses_typed, days_typed, uses_wrong, days_wrong) = match &refusal {
        Some(Refused::Token {
            uses,
            days,
            days_wrong,
            error,
        }) => (Some(*error), *uses, *days, !days_wrong, *days_wrong),
        _ => (None, "30", "7", false, false),
    };
    let (assign_error, profiles_typed) = match &refusal {
        Some(Refused::Assign { profiles, error }) => (Some(*error), Some(*profiles)),
        _ => (None, None),
    };
    let scope = scope(session);
    let now = auth::now();
    let table = state.store.machines_in(&scope, &params.query, now).await?;
    let pending = state
        .store
        .machines_in(
            &scope,
            &MachineQuery {
                school: Some(school.uai.clone()),
                state: Some(MachineState::Pending),
                limit: Some(100),
                ..MachineQuery::default()
            },
            now,
        )
        .await?;
    let tokens = state.store.tokens_in(&scope, &school.uai).await?;
    let assigned = state.store.school_assignments(&school.uai).await?;
    let manage = can_manage(session);
    let base = format!("/etablissements/{}", school.uai);
    let filtered = {
        let q = &params.query;
        q.state.is_some()
            || q.win11.is_some()
            || q.profile.is_some()
            || q.alert.is_some()
            || q.text.is_some()
    };
    let pages = table.total.div_ceil(super::export::PAGE_SIZE).max(1);
    let q = &params.query;
    let export_query = params.to_query(1, None);
    let body = html! {
        @if let Some(m) = message { (m) }
        @if let Some(e) = token_error {
            (layout::form_error(e, "nouveau-jeton", "Corriger le nouveau jeton"))
        }
        @if let Some(e) = assign_error {
            (layout::form_error(e, "affectations", "Corriger les affectations"))
        }
        p { (school.name) " — " (school.commune) " (" (school.departement) "), académie de "
            (school.academie) " — UAI " (school.uai) }

        h2 id="machines" { "Machines" }
        p { a href={(base) "/logiciels"} { "Rechercher un logiciel installé" } " (quelles machines ont encore telle version de GCompris ?)" }
        form method="get" action=(base) aria-label="Filtrer les machines" {
            div.filters {
                div {
                    label for="f-etat" { "État" }
                    select id="f-etat" name="etat" {
                        option value="" { "tous" }
                        @for s in MachineState::ALL {
                            option value=(s.as_str()) selected[q.state == Some(s)] { (s.label()) }
                        }
                    }
                }
                div {
                    label for="f-win11" { "Windows 11" }
                    select id="f-win11" name="win11" {
                        option value="" { "tous" }
                        @for (v, l) in [("eligible", "compatible"), ("ineligible", "incompatible"), ("unknown", "indéterminé")] {
                            option value=(v) selected[q.win11.as_deref() == Some(v)] { (l) }
                        }
                    }
                }
                div {
                    label for="f-profil" { "Profils" }
                    select id="f-profil" name="profil" {
                        option value="" { "tous" }
                        @for p in ProfileState::ALL {
                            option value=(p.as_str()) selected[q.profile == Some(p)] { (p.label()) }
                        }
                    }
                }
                div {
                    label for="f-alerte" { "Alerte" }
                    select id="f-alerte" name="alerte" {
                        option value="" { "toutes" }
                        @for (flag, name, l) in alert::ALL {
                            option value=(name) selected[q.alert == Some(flag)] { (l) }
                        }
                    }
                }
                div {
                    label for="f-q" { "Nom, n° de série ou modèle" }
                    input type="search" id="f-q" name="q" value=(q.text.as_deref().unwrap_or(""));
                }
            }
            fieldset {
                legend { "Colonnes affichées" }
                @for (key, label) in COLUMNS {
                    span.check {
                        input type="checkbox" id={"col-" (key)} name="col" value=(key)
                            checked[params.columns.contains(&key)];
                        label for={"col-" (key)} { (label) }
                    }
                }
            }
            input type="hidden" name="tri" value=(q.sort.as_str());
            input type="hidden" name="ordre" value=(if q.desc { "desc" } else { "asc" });
            p { button type="submit" id="filtrer" { "Filtrer" } }
        }
        p {
            "Exporter ces machines (tous les résultats, colonnes affichées) : "
            a href={"/machines.csv?" (export_query)} id="export-csv" { "CSV" } " · "
            a href={"/machines.json?" (export_query)} id="export-json" { "JSON" }
        }
        form method="post" action={(base) "/actions"} id="actions-groupees" {
            @if manage {
                (csrf(session))
                @if !table.rows.is_empty() { p {
                    @if params.select_all {
                        a href={(base) "?" (params.to_query(params.page, None)) "#actions-groupees"} id="tout-deselectionner" { "Tout désélectionner" }
                    } @else {
                        a href={(base) "?" (params.to_query(params.page, None)) "&tout=1#actions-groupees"} id="tout-selectionner" { "Tout sélectionner sur cette page" }
                    }
                } }
            }
            table {
                caption {
                    "Machines de l'établissement : " (table.total) " résultat(s), page "
                    (params.page) " sur " (pages)
                }
                thead {
                    tr {
                        @if manage { th scope="col" { span.visually-hidden { "Sélection" } } }
                        @for c in &params.columns {
                            (header_cell(params, &base, c))
                        }
                    }
                }
                tbody {
                    @if table.rows.is_empty() {
                        tr {
                            td colspan=(params.columns.len() + usize::from(manage)) {
                                @if filtered {
                                    "Aucune machine ne correspond à ces filtres."
                                } @else if manage {
                                    "Aucune machine inscrite dans cet établissement pour l'instant : "
                                    a href="#jetons" { "créez un jeton d'inscription" } "."
                                } @else {
                                    "Aucune machine inscrite dans cet établissement pour l'instant."
                                }
                            }
                        }
                    }
                    @for r in &table.rows {
                        tr {
                            @if manage {
                                td {
                                    input type="checkbox" name="machine" value=(r.id) id={"sel-" (r.id)} checked[params.select_all];
                                    label.visually-hidden for={"sel-" (r.id)} { "Sélectionner " (r.hostname) }
                                }
                            }
                            @for c in &params.columns {
                                @match *c {
                                    "nom" => td { a href={"/machines/" (r.id)} { (r.hostname) } },
                                    "etat" => td { (state_badge(r.state)) },
                                    "profil" => td { (profile_badge(r.profile)) },
                                    "alertes" => td {
                                        (alerts(r.alerts))
                                        @if let (Some(reason), true) = (&r.refused_reason, r.alerts & alert::REFUSED != 0) {
                                            p { "Refus : " (nird_proto::api::RefusalReason::humanize(reason)) }
                                        }
                                    },
                                    other => td { (cell(r, other)) },
                                }
                            }
                        }
                    }
                }
            }
            @if manage && !table.rows.is_empty() {
                fieldset {
                    legend { "Action sur les machines sélectionnées" }
                    label for="action" { "Action" }
                    select id="action" name="action" {
                        option value="approve" { "Approuver" }
                        option value="retire" { "Retirer de la flotte" }
                        option value="include" { "Ajouter un profil (dérogation)" }
                        option value="exclude" { "Retirer un profil (dérogation)" }
                    }
                    label for="action-profil" { "Profil (pour les dérogations)" }
                    input type="text" id="action-profil" name="profile";
                    p.check {
                        input type="checkbox" id="confirmer-retrait" name="confirmer" value="oui";
                        label.check for="confirmer-retrait" { "Je confirme le retrait définitif (pour « Retirer de la flotte » : les machines devront être réinscrites)" }
                    }
                    p { button type="submit" id="appliquer-action" { "Appliquer" } }
                }
            }
        }
        nav.pager aria-label="Pages des machines" {
            @if params.page > 1 {
                a href={(base) "?" (params.to_query(params.page - 1, None))} rel="prev" { "Page précédente" }
            }
            span { "Page " (params.page) " sur " (pages) }
            @if params.page < pages {
                a href={(base) "?" (params.to_query(params.page + 1, None))} rel="next" { "Page suivante" }
            }
        }

        h2 id="approbation" { "File d'approbation" }
        @if pending.rows.is_empty() {
            p { "Aucune machine en attente d'approbation." }
        } @else {
            table {
                caption { "Machines en attente d'approbation (" (pending.total) ")" }
                thead { tr {
                    th scope="col" { "Nom d'hôte" } th scope="col" { "N° de série" }
                    th scope="col" { "Inscrite le (UTC)" }
                    @if manage { th scope="col" { "Action" } }
                } }
                tbody {
                    @for r in &pending.rows {
                        tr {
                            th scope="row" { a href={"/machines/" (r.id)} { (r.hostname) } }
                            td { (r.serial) }
                            td { (date_time(Some(r.enrolled_at))) }
                            @if manage {
                                td {
                                    form.inline method="post" action={(base) "/actions"} {
                                        (csrf(session))
                                        input type="hidden" name="machine" value=(r.id);
                                        input type="hidden" name="action" value="approve";
                                        button type="submit" { "Approuver " span.visually-hidden { (r.hostname) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        h2 id="jetons" { "Jetons d'inscription" }
        @if tokens.is_empty() {
            p { "Aucun jeton." }
        } @else {
            table {
                caption { "Jetons d'inscription de l'établissement" }
                thead { tr {
                    th scope="col" { "N°" } th scope="col" { "Créé le (UTC)" }
                    th scope="col" { "Expire le (UTC)" } th scope="col" { "Utilisations" }
                    th scope="col" { "État" }
                    @if manage { th scope="col" { "Action" } }
                } }
                tbody {
                    @for t in &tokens {
                        @let usable = t.revoked_at.is_none() && t.uses < t.max_uses
                            && t.expires_at.is_none_or(|e| e > now);
                        tr {
                            th scope="row" { (t.id) }
                            td { (date_time(Some(t.created_at))) }
                            td { @if t.expires_at.is_some() { (date_time(t.expires_at)) } @else { "jamais" } }
                            td { (t.uses) " / " (t.max_uses) }
                            td { @if t.revoked_at.is_some() { "révoqué" } @else if usable { "utilisable" } @else { "épuisé ou expiré" } }
                            @if manage {
                                td {
                                    @if t.revoked_at.is_none() {
                                        form.inline method="post" action={(base) "/jetons/" (t.id) "/revoquer"} {
                                            (csrf(session))
                                            button.danger type="submit" { "Révoquer le jeton " (t.id) }
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
            form method="post" action={(base) "/jetons"} id="nouveau-jeton" {
                (csrf(session))
                fieldset {
                    legend { "Nouveau jeton" }
                    @let (invalid, described) = layout::error_marks(uses_wrong);
                    label for="jeton-uses" { "Nombre d'inscriptions permises" }
                    input type="number" id="jeton-uses" name="uses" min="1" max="10000" value=(uses_typed) required
                        aria-invalid=[invalid] aria-describedby=[described];
                    @let (invalid, described) = layout::error_marks(days_wrong);
                    label for="jeton-jours" { "Valable (jours)" }
                    input type="number" id="jeton-jours" name="days" min="1" max="365" value=(days_typed) required
                        aria-invalid=[invalid] aria-describedby=[described];
                    p { button type="submit" id="creer-jeton" { "Créer le jeton" } }
                }
            }
        }

        h2 id="profils" { "Profils affectés" }
        @if assigned.is_empty() {
            p { "Aucun profil affecté à cet établissement." }
        } @else {
            ul { @for p in &assigned { li { (p) } } }
        }
        @if manage {
            form method="post" action={(base) "/profils"} id="affectations" {
                (csrf(session))
                @let (invalid, described) = layout::error_marks(assign_error.is_some());
                label for="profils-liste" { "Profils affectés (séparés par des espaces ou des virgules)" }
                input type="text" id="profils-liste" name="profiles" size="60"
                    value=(profiles_typed.map_or_else(|| assigned.join(" "), str::to_owned))
                    aria-invalid=[invalid] aria-describedby=[described];
                p { button type="submit" id="enregistrer-profils" { "Enregistrer les affectations" } }
            }
        }
    };
    Ok(html(layout::page(
        &format!("Établissement {}", school.name),
        Some(session),
        body,
    )))
}

/// A sortable column header with `aria-sort`.
fn header_cell(params: &TableParams, base: &str, column: &str) -> Markup {
    let label = COLUMNS
        .iter()
        .find(|(k, _)| *k == column)
        .map(|(_, l)| *l)
        .unwrap_or("");
    let sort = match column {
        "nom" => Some(MachineSort::Hostname),
        "etablissement" => Some(MachineSort::School),
        "serie" => Some(MachineSort::Serial),
        "modele" => Some(MachineSort::Model),
        "etat" => Some(MachineSort::Status),
        "vu" => Some(MachineSort::LastSeen),
        "win11" => Some(MachineSort::Win11),
        _ => None,
    };
    let q = &params.query;
    html! {
        @if let Some(key) = sort {
            @let current = q.sort == key;
            @let aria = current.then_some(if q.desc { "descending" } else { "ascending" });
            @let next_desc = current && !q.desc;
            th scope="col" aria-sort=[aria] {
                a href={(base) "?" (params.to_query(1, Some((key, next_desc))))} {
                    (label)
                    span.visually-hidden { @if next_desc { " (trier par ordre décroissant)" } @else { " (trier par ordre croissant)" } }
                    @if current { span aria-hidden="true" { @if q.desc { " ▼" } @else { " ▲" } } }
                }
            }
        } @else {
            th scope="col" { (label) }
        }
    }
}

/// `POST /etablissements/{uai}/actions`: approve, retire, include or
/// exclude a profile on the selected machines. Every machine must be of
/// this school and in scope, or nothing changes (404).
pub async fn bulk(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(uai): Path<String>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    let school = school_or_404(&state, &session, &uai).await?;
    let ids = form.all("machine");
    if ids.is_empty() {
        return Err(WebError::bad_request("Aucune machine sélectionnée."));
    }
    if ids.len() > 5_000 {
        return Err(WebError::bad_request("Trop de machines sélectionnées."));
    }
    let action = form.get("action").unwrap_or("");
    let profile = match action {
        "approve" | "retire" => None,
        "include" | "exclude" => Some(profile_name(form.get("profile").unwrap_or(""))?),
        _ => return Err(WebError::bad_request("Action inconnue.")),
    };
    // One scoped query for the school's machines, not one per selection.
    let of_school: std::collections::HashMap<String, (MachineState, String)> = state
        .store
        .machines_in(
            &scope(&session),
            &MachineQuery {
                school: Some(school.uai.clone()),
                ..MachineQuery::default()
            },
            auth::now(),
        )
        .await?
        .rows
        .into_iter()
        .map(|r| (r.id, (r.state, r.hostname)))
        .collect();
    if ids.iter().any(|id| !of_school.contains_key(*id)) {
        return Err(WebError::not_found());
    }
    // Out of scope answered 404 above, whatever the role.
    if !can_manage(&session) {
        return Err(WebError::forbidden());
    }
    if action == "retire" && form.get("confirmer") != Some("oui") {
        return Err(WebError::bad_request(
            "Pour retirer des machines de la flotte, cochez « Je confirme le retrait définitif » : \
             le retrait est définitif. Rien n'a été modifié.",
        ));
    }
    // Everything is checked before anything is written: a refusal changes
    // nothing. Machines already in the state asked are left alone.
    let retired: Vec<&str> = ids
        .iter()
        .filter_map(|id| match &of_school[*id] {
            (MachineState::Retired, host) => Some(host.as_str()),
            _ => None,
        })
        .collect();
    if action != "retire" && !retired.is_empty() {
        return Err(WebError::bad_request(format!(
            "Retirée de la flotte : {} (une machine retirée doit être réinscrite). \
             Rien n'a été modifié : désélectionnez-la.",
            retired.join(", ")
        )));
    }
    let ids: Vec<&str> = ids
        .into_iter()
        .filter(|id| match (action, of_school[*id].0) {
            ("approve", state) => state == MachineState::Pending,
            ("retire", state) => state != MachineState::Retired,
            _ => true,
        })
        .collect();
    // An inclusion gets the same judgement as an assignment: refused if
    // agents would refuse the profile, a warning if it is not published.
    let verdict = match (action, &profile) {
        ("include", Some(p)) => {
            let verdict =
                crate::admin::assignability(state.store.as_ref(), std::slice::from_ref(p)).await?;
            if let Some(refusal) = verdict.refusal() {
                return Err(WebError::bad_request(format!("{refusal}.")));
            }
            Some(verdict)
        }
        _ => None,
    };
    let actor = session.user.login.as_str();
    for id in &ids {
        match (action, &profile) {
            ("approve", _) => {
                state
                    .store
                    .set_machine_status(actor, id, MachineStatus::Active)
                    .await?
            }
            ("retire", _) => {
                state
                    .store
                    .set_machine_status(actor, id, MachineStatus::Retired)
                    .await?
            }
            (_, Some(p)) => {
                state
                    .store
                    .override_machine(actor, id, p, action == "include")
                    .await?
            }
            _ => {}
        }
    }
    let n = ids.len();
    let done = match (action, &profile) {
        ("approve", _) => format!("{n} machine(s) approuvée(s)."),
        ("retire", _) => format!(
            "{n} machine(s) retirée(s) de la flotte : elles ne reçoivent plus rien et ne \
             comptent plus dans l'audit ; pour en reprendre une, réinscrivez-la."
        ),
        ("include", Some(p)) => format!("Profil « {p} » ajouté à {n} machine(s)."),
        (_, Some(p)) => format!("Profil « {p} » retiré de {n} machine(s)."),
        _ => String::new(),
    };
    let warning = verdict.map(|v| v.warning()).unwrap_or_default();
    render_first_page(
        &state,
        &session,
        &school,
        format!("{done} {warning}").trim(),
    )
    .await
}

/// The school's page, first page of its table unfiltered, with `message`
/// on top (after a change).
async fn render_first_page(
    state: &AppState,
    session: &Session,
    school: &School,
    message: &str,
) -> WebResult {
    let mut params = TableParams::parse(None)?;
    params.query.school = Some(school.uai.clone());
    render(state, session, school, &params, Some(notice(message))).await
}

/// `POST /etablissements/{uai}/jetons`: a new enrolment token, shown once
/// with the command to paste on the machines.
pub async fn token_create(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(uai): Path<String>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    Extension(form): Extension<FormData>,
) -> WebResult {
    let school = school_or_404(&state, &session, &uai).await?;
    if !can_manage(&session) {
        return Err(WebError::forbidden());
    }
    let (uses_typed, days_typed) = (
        form.get("uses").unwrap_or(""),
        form.get("days").unwrap_or(""),
    );
    let refuse = |days_wrong, error| {
        // Shown again cut short: the fields hold numbers.
        let cut = |t: &str| crate::echo::quoted(t, 12);
        let (state, session, school) = (&state, &session, &school);
        async move {
            let (uses, days) = (cut(uses_typed), cut(days_typed));
            let refusal = Refused::Token {
                uses: &uses,
                days: &days,
                days_wrong,
                error,
            };
            render_refused(state, session, school, refusal).await
        }
    };
    let Some(uses) = uses_typed
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|u| (1..=10_000).contains(u))
    else {
        return refuse(false, "Nombre d'inscriptions invalide (1 à 10 000).").await;
    };
    let Some(days) = days_typed
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|d| (1..=365).contains(d))
    else {
        return refuse(true, "Durée de validité invalide (1 à 365 jours).").await;
    };
    let token = secrets::new_secret();
    state
        .store
        .create_token(
            &session.user.login,
            NewToken {
                school: school.uai.clone(),
                token_hash: secrets::hash_secret(&token),
                expires_at: Some(auth::now() + days * 86_400),
                max_uses: uses,
            },
        )
        .await?;
    // HTTP/1.1 sends Host; HTTP/2 puts the authority in the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("SERVEUR:8443");
    let fingerprint = state.ca_fingerprint.as_deref().unwrap_or("EMPREINTE");
    let command = format!(
        "nird-agent enroll --server https://{host} --token {token} --ca-fingerprint {fingerprint}"
    );
    let message = html! {
        div.notice role="status" {
            p { "Jeton créé. Il n'est affiché qu'une fois : copiez maintenant la commande à lancer sur chaque machine (en root)." }
            code.secret id="commande-inscription" { (command) }
        }
    };
    let mut params = TableParams::parse(None)?;
    params.query.school = Some(school.uai.clone());
    render(&state, &session, &school, &params, Some(message)).await
}

/// `POST /etablissements/{uai}/jetons/{id}/revoquer`.
pub async fn token_revoke(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path((uai, id)): Path<(String, String)>,
    Extension(_form): Extension<FormData>,
) -> WebResult {
    let id = super::path_id(&id)?;
    let school = school_or_404(&state, &session, &uai).await?;
    let tokens = state.store.tokens_in(&scope(&session), &school.uai).await?;
    if !tokens.iter().any(|t| t.id == id) {
        return Err(WebError::not_found());
    }
    if !can_manage(&session) {
        return Err(WebError::forbidden());
    }
    state.store.revoke_token(&session.user.login, id).await?;
    Ok(see_other(&format!("/etablissements/{}#jetons", school.uai)))
}

/// `POST /etablissements/{uai}/profils`: replaces the school's assignments.
pub async fn assign(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(uai): Path<String>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    let school = school_or_404(&state, &session, &uai).await?;
    if !can_manage(&session) {
        return Err(WebError::forbidden());
    }
    let typed = form.get("profiles").unwrap_or("");
    let refuse = |error: String| {
        let (state, session, school) = (&state, &session, &school);
        async move {
            // Shown again cut short between names: 100 names of 64
            // characters fit (found by review: cut at 4,000 characters, the
            // last name could come back cut into another valid name).
            let profiles = crate::echo::form_value(typed, 8_000, crate::echo::NAME_SEPARATORS);
            let refusal = Refused::Assign {
                profiles,
                error: &error,
            };
            render_refused(state, session, school, refusal).await
        }
    };
    let profiles = match typed
        .split([',', ' ', '\n', '\t'])
        .filter(|p| !p.trim().is_empty())
        .map(profile_name)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(p) => p,
        Err(e) => {
            let Some(error) = e.refusal() else {
                return Err(e);
            };
            return refuse(error.to_owned()).await;
        }
    };
    if profiles.len() > 100 {
        return refuse("Trop de profils (100 au plus).".into()).await;
    }
    // The same judgement as the command line: refused if agents would
    // refuse it, a warning for profiles not yet published.
    let verdict = crate::admin::assignability(state.store.as_ref(), &profiles).await?;
    if let Some(refusal) = verdict.refusal() {
        return refuse(format!("{refusal}.")).await;
    }
    state
        .store
        .assign_school(&session.user.login, &school.uai, profiles)
        .await?;
    let warning = verdict.warning();
    render_first_page(
        &state,
        &session,
        &school,
        &format!("Affectations enregistrées. {warning}"),
    )
    .await
}
