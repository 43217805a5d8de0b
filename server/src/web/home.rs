//! Accueil: per school in scope, machines by state, profile compliance and
//! alerts — counters the store keeps on the machine rows, so this page
//! never parses an inventory.

use axum::Extension;
use axum::extract::State;
use maud::html;

use super::layout::{html, page_at};
use super::{WebResult, scope};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::web::{MachineState, ProfileState, alert};

/// `GET /`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> WebResult {
    let scope = scope(&session);
    let rows = state.store.overview(&scope, auth::now()).await?;
    let mut totals = [0u64; MachineState::ALL.len() + ProfileState::ALL.len() + alert::ALL.len()];
    for r in &rows {
        let all = r.states.iter().chain(&r.profiles).chain(&r.alerts);
        for (t, n) in totals.iter_mut().zip(all) {
            *t += n;
        }
    }
    let body = html! {
        @if rows.is_empty() {
            p { "Aucun établissement dans votre périmètre." }
        } @else {
            p {
                (rows.len()) " établissement(s) dans votre périmètre ; "
                (totals[0] + totals[1] + totals[2] + totals[3]) " machine(s) en service."
            }
            table {
                caption { "Machines par établissement : états, conformité des profils et alertes" }
                thead {
                    tr {
                        th scope="col" rowspan="2" { "Établissement" }
                        th scope="colgroup" colspan="5" { "Machines" }
                        th scope="colgroup" colspan=(ProfileState::ALL.len()) { "Profils" }
                        th scope="colgroup" colspan=(alert::ALL.len()) { "Alertes (machines)" }
                    }
                    tr {
                        @for s in MachineState::ALL { th scope="col" class="n" { (s.label()) } }
                        @for p in ProfileState::ALL { th scope="col" class="n" { (p.column()) } }
                        @for (_, _, label) in alert::ALL { th scope="col" class="n" { (label) } }
                    }
                }
                tbody {
                    @for r in &rows {
                        tr {
                            th scope="row" {
                                a href={"/etablissements/" (r.school.uai)} { (r.school.name) }
                                " (" (r.school.uai) ", " (r.school.commune) ")"
                            }
                            @for n in r.states { td.n { (n) } }
                            @for n in r.profiles { td.n { (n) } }
                            @for n in r.alerts { td.n { (n) } }
                        }
                    }
                }
                @if rows.len() > 1 {
                    tfoot {
                        tr {
                            th scope="row" { "Total" }
                            @for n in totals { td.n { (n) } }
                        }
                    }
                }
            }
        }
    };
    Ok(html(page_at("Accueil", "/", Some(&session), body)))
}
