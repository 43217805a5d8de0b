//! Utilisateurs (administrators only; 404 for everyone else): create an
//! account, change its role and scope, disable or re-enable it, reset its
//! password. Generated passwords are shown once.

use axum::Extension;
use axum::extract::{Path, State};
use maud::{Markup, html};

use super::layout::{
    csrf, date, error_marks, form_error, html, notice, page_at, refused, role_label,
};
use super::{FormData, WebError, WebResult, see_other};
use crate::auth::Session;
use crate::http::AppState;
use crate::secrets;
use crate::store::web::{ScopeLevel, ScopeNode};
use crate::store::{NewUser, Role};

fn admin_only(session: &Session) -> Result<(), WebError> {
    if session.user.role == Role::Admin {
        Ok(())
    } else {
        Err(WebError::not_found())
    }
}

fn parse_role(text: Option<&str>) -> Result<Role, WebError> {
    match text {
        Some("admin") => Ok(Role::Admin),
        Some("school") => Ok(Role::School),
        Some("auditor") => Ok(Role::Auditor),
        _ => Err(WebError::bad_request("Rôle inconnu.")),
    }
}

fn parse_scope(role: Role, text: Option<&str>) -> Result<Vec<ScopeNode>, WebError> {
    let nodes = text
        .unwrap_or("")
        .split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| ScopeNode::parse(l).map_err(WebError::bad_request))
        .collect::<Result<Vec<_>, _>>()?;
    if role != Role::Admin && nodes.is_empty() {
        return Err(WebError::bad_request(
            "Un gestionnaire ou un auditeur doit avoir au moins un périmètre.",
        ));
    }
    Ok(nodes)
}

/// Checks scope nodes against the server's schools before anything is
/// written: an establishment not on the server is refused (the account
/// would see nothing, and the store's « introuvable » answered a 404
/// page); a territory with no school yet is accepted with a warning
/// (schools may come after their auditor, or the name is misspelt).
async fn check_nodes(state: &AppState, nodes: &[ScopeNode]) -> Result<String, WebError> {
    if nodes.is_empty() {
        return Ok(String::new());
    }
    let schools = state.store.list_schools().await?;
    let mut empty = Vec::new();
    for n in nodes {
        if schools.iter().any(|s| n.covers(s)) {
            continue;
        }
        if n.level == ScopeLevel::Uai {
            return Err(WebError::bad_request(format!(
                "L'établissement {} n'est pas sur ce serveur : ajoutez-le d'abord \
                 (« nird-server school add »), ou corrigez le code UAI. Rien n'a été modifié.",
                n.value
            )));
        }
        empty.push(format!("{} {}", n.level.label(), n.value));
    }
    Ok(if empty.is_empty() {
        String::new()
    } else {
        format!(
            "ATTENTION : aucun établissement de ce serveur n'est pour l'instant dans : {}. \
             Vérifiez l'orthographe ; le compte ne voit rien tant qu'il n'y en a pas.",
            empty.join(", ")
        )
    })
}

/// A form's scope, parsed ([`parse_scope`]) and checked against the
/// server's schools ([`check_nodes`]): the nodes and a warning.
async fn checked_scope(
    state: &AppState,
    role: Role,
    scope: &str,
) -> Result<(Vec<ScopeNode>, String), WebError> {
    let nodes = parse_scope(role, Some(scope))?;
    let warning = check_nodes(state, &nodes).await?;
    Ok((nodes, warning))
}

fn valid_login(login: &str) -> Result<String, WebError> {
    let l = login.trim();
    if l.is_empty()
        || l.len() > 64
        || !l
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
    {
        return Err(WebError::bad_request(
            "Identifiant invalide : lettres, chiffres, . - _ @ (64 au plus).",
        ));
    }
    Ok(l.to_owned())
}

fn role_select(id: &str, current: Role, invalid: Option<&str>, described: Option<&str>) -> Markup {
    html! {
        select id=(id) name="role" aria-invalid=[invalid] aria-describedby=[described] {
            @for r in [Role::School, Role::Auditor, Role::Admin] {
                option value=(r.as_str()) selected[r == current] { (role_label(r)) }
            }
        }
    }
}

/// Which field of an account form was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Login,
    Role,
    Scope,
}

/// A refused account form, shown again with what was typed and why.
struct Draft<'a> {
    /// The account the form was for (`None`: « Nouveau compte »).
    account: Option<&'a str>,
    login: &'a str,
    role: Option<Role>,
    scope: &'a str,
    field: Field,
    error: &'a str,
}

impl Draft<'_> {
    /// `aria-invalid` and `aria-describedby` for the field in error.
    fn marks(
        &self,
        account: Option<&str>,
        field: Field,
    ) -> (Option<&'static str>, Option<&'static str>) {
        error_marks(self.account == account && self.field == field)
    }
}

/// The page, with an optional message on top, or a refused form.
async fn render(state: &AppState, session: &Session, message: Option<Markup>) -> WebResult {
    render_page(state, session, message, None).await
}

/// The page again after `draft` was refused (status 400).
async fn render_refused(state: &AppState, session: &Session, draft: &Draft<'_>) -> WebResult {
    Ok(refused(
        render_page(state, session, None, Some(draft)).await?,
    ))
}

async fn render_page(
    state: &AppState,
    session: &Session,
    message: Option<Markup>,
    draft: Option<&Draft<'_>>,
) -> WebResult {
    let users = state.store.list_users().await?;
    let new_draft = draft.filter(|d| d.account.is_none());
    let marks =
        |account: Option<&str>, field| draft.map(|d| d.marks(account, field)).unwrap_or_default();
    let body = html! {
        @if let Some(m) = message { (m) }
        @if let Some(d) = draft {
            @if d.account.is_some() {
                (form_error(d.error, &format!("u-{}", d.login), &format!("Corriger le compte {}", d.login)))
            } @else {
                (form_error(d.error, "nouveau-compte", "Corriger le nouveau compte"))
            }
        }
        table {
            caption { "Comptes (" (users.len()) ")" }
            thead { tr { th scope="col" { "Identifiant" } th scope="col" { "Rôle" } th scope="col" { "Périmètre" } th scope="col" { "État" } th scope="col" { "Créé le" } } }
            tbody {
                @for u in &users {
                    tr {
                        th scope="row" { a href={"#u-" (u.login)} { (u.login) } }
                        td { (role_label(u.role)) }
                        td { @if u.role == Role::Admin { "tout" } @else { (u.nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) } }
                        td { @if u.disabled_at.is_some() { "désactivé" } @else { "actif" } }
                        td { (date(Some(u.created_at))) }
                    }
                }
            }
        }
        h2 { "Nouveau compte" }
        form method="post" action="/utilisateurs" id="nouveau-compte" {
            (csrf(session))
            @let (invalid, described) = marks(None, Field::Login);
            label for="n-login" { "Identifiant" }
            input type="text" id="n-login" name="login" required
                value=[new_draft.map(|d| d.login)] aria-invalid=[invalid] aria-describedby=[described];
            @let (invalid, described) = marks(None, Field::Role);
            label for="n-role" { "Rôle" }
            (role_select("n-role", new_draft.and_then(|d| d.role).unwrap_or(Role::School), invalid, described))
            @let (invalid, described) = marks(None, Field::Scope);
            label for="n-scope" { "Périmètre (un par ligne : academie:Lille, departement:062, commune:062/Calais, uai:0620056Z)" }
            textarea id="n-scope" name="scope" rows="3" cols="50" aria-invalid=[invalid] aria-describedby=[described] {
                @if let Some(d) = new_draft { (d.scope) }
            }
            p { button type="submit" id="creer-compte" { "Créer le compte" } }
        }
        h2 { "Modifier un compte" }
        @for u in &users {
            section id={"u-" (u.login)} aria-labelledby={"t-" (u.login)} {
                h3 id={"t-" (u.login)} { (u.login) }
                @let mine = draft.filter(|d| d.account == Some(u.login.as_str()));
                form method="post" action={"/utilisateurs/" (u.login) "/role"} {
                    (csrf(session))
                    @let (invalid, described) = marks(Some(&u.login), Field::Role);
                    label for={"r-" (u.login)} { "Rôle" }
                    (role_select(&format!("r-{}", u.login), mine.and_then(|d| d.role).unwrap_or(u.role), invalid, described))
                    @let (invalid, described) = marks(Some(&u.login), Field::Scope);
                    label for={"s-" (u.login)} { "Périmètre (un par ligne)" }
                    textarea id={"s-" (u.login)} name="scope" rows="2" cols="50" aria-invalid=[invalid] aria-describedby=[described] {
                        @if let Some(d) = mine {
                            (d.scope)
                        } @else {
                            (u.nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
                        }
                    }
                    p { button type="submit" { "Enregistrer le rôle et le périmètre de " (u.login) } }
                }
                form.inline method="post" action={"/utilisateurs/" (u.login) "/etat"} {
                    (csrf(session))
                    @if u.disabled_at.is_some() {
                        input type="hidden" name="etat" value="actif";
                        button type="submit" { "Réactiver " (u.login) }
                    } @else {
                        input type="hidden" name="etat" value="desactive";
                        button.danger type="submit" { "Désactiver " (u.login) }
                    }
                }
                " "
                form.inline method="post" action={"/utilisateurs/" (u.login) "/mot-de-passe"} {
                    (csrf(session))
                    button.secondary type="submit" { "Nouveau mot de passe pour " (u.login) }
                }
            }
        }
    };
    Ok(html(page_at(
        "Utilisateurs",
        "/utilisateurs",
        Some(session),
        body,
    )))
}

fn password_notice(login: &str, password: &str, reset: bool) -> Markup {
    html! {
        div.notice role="status" {
            p { "Mot de passe de « " (login) " », affiché une seule fois : transmettez-le par un canal sûr." }
            @if reset { p { "Ses sessions ouvertes sont fermées et ses jetons d'API personnels révoqués." } }
            code.secret id="mot-de-passe-genere" { (password) }
        }
    }
}

/// `GET /utilisateurs`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> WebResult {
    admin_only(&session)?;
    render(&state, &session, None).await
}

/// `POST /utilisateurs`: creates an account with a generated password.
pub async fn create(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    admin_only(&session)?;
    let typed = form.get("login").unwrap_or("");
    let scope = form.get("scope").unwrap_or("");
    let role = parse_role(form.get("role"));
    // Shown back cut short (found by review: a refused page could quote
    // a whole 256 KiB form).
    let typed_shown = crate::echo::quoted(typed, 100);
    let scope_shown = crate::echo::form_value(scope, 8_000, crate::echo::LINE_SEPARATORS);
    // A refused form is shown again with what was typed, the field in error
    // marked (found by review: the error page lost the scope's lines).
    let refuse = |field, e: WebError, role: Option<Role>| {
        let (state, session) = (&state, &session);
        async move {
            let Some(error) = e.refusal() else {
                return Err(e);
            };
            let draft = Draft {
                account: None,
                login: &typed_shown,
                role,
                scope: scope_shown,
                field,
                error,
            };
            render_refused(state, session, &draft).await
        }
    };
    let login = match valid_login(typed) {
        Ok(l) => l,
        Err(e) => return refuse(Field::Login, e, role.as_ref().ok().copied()).await,
    };
    let role = match role {
        Ok(r) => r,
        Err(e) => return refuse(Field::Role, e, None).await,
    };
    let (nodes, warning) = match checked_scope(&state, role, scope).await {
        Ok(checked) => checked,
        Err(e) => return refuse(Field::Scope, e, Some(role)).await,
    };
    let password = secrets::new_password();
    let hash = super::hash_password(password.clone()).await?;
    let added = state
        .store
        .add_user_scoped(
            &session.user.login,
            NewUser {
                login: login.clone(),
                password_hash: hash,
                role,
                schools: Vec::new(),
                territory: None,
            },
            nodes,
        )
        .await;
    if let Err(e) = added {
        // An existing login: the identifier is what to change.
        return refuse(Field::Login, e.into(), Some(role)).await;
    }
    render(
        &state,
        &session,
        Some(html! {
            (password_notice(&login, &password, false))
            @if !warning.is_empty() { (notice(&warning)) }
        }),
    )
    .await
}

/// `POST /utilisateurs/{login}/role`.
pub async fn set_role(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(login): Path<String>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    admin_only(&session)?;
    let scope = form.get("scope").unwrap_or("");
    let scope_shown = crate::echo::form_value(scope, 8_000, crate::echo::LINE_SEPARATORS);
    let refuse = |field, e: WebError, role: Option<Role>| {
        let (state, session, login) = (&state, &session, &login);
        async move {
            let Some(error) = e.refusal() else {
                return Err(e);
            };
            // Only an account that exists has a form to show again.
            if !state.store.user_exists(login).await? {
                return Err(WebError::not_found());
            }
            let draft = Draft {
                account: Some(login),
                login,
                role,
                scope: scope_shown,
                field,
                error,
            };
            render_refused(state, session, &draft).await
        }
    };
    let role = match parse_role(form.get("role")) {
        Ok(r) => r,
        Err(e) => return refuse(Field::Role, e, None).await,
    };
    // As for disabling: an admin cannot take away its own rights (the last
    // one would leave the server with no admin, and no page to undo it).
    if login == session.user.login && role != Role::Admin {
        let e = WebError::bad_request(
            "Vous ne pouvez pas retirer votre propre rôle d'administrateur : \
             demandez-le à un autre administrateur. Rien n'a été modifié.",
        );
        return refuse(Field::Role, e, Some(role)).await;
    }
    let (nodes, warning) = match checked_scope(&state, role, scope).await {
        Ok(checked) => checked,
        Err(e) => return refuse(Field::Scope, e, Some(role)).await,
    };
    state
        .store
        .set_user_role(&session.user.login, &login, role, nodes)
        .await?;
    render(
        &state,
        &session,
        Some(notice(
            format!(
                "Rôle et périmètre enregistrés ; les sessions de ce compte sont fermées. {warning}"
            )
            .trim(),
        )),
    )
    .await
}

/// `POST /utilisateurs/{login}/etat`: disable or re-enable.
pub async fn set_state(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(login): Path<String>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    admin_only(&session)?;
    let disable = match form.get("etat") {
        Some("desactive") => true,
        Some("actif") => false,
        _ => return Err(WebError::bad_request("État inconnu.")),
    };
    if disable && login == session.user.login {
        return Err(WebError::bad_request(
            "Vous ne pouvez pas désactiver votre propre compte.",
        ));
    }
    state
        .store
        .set_user_disabled(&session.user.login, &login, disable)
        .await?;
    Ok(see_other("/utilisateurs"))
}

/// `POST /utilisateurs/{login}/mot-de-passe`: a new generated password.
pub async fn reset_password(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(login): Path<String>,
    Extension(_form): Extension<FormData>,
) -> WebResult {
    admin_only(&session)?;
    let password = secrets::new_password();
    let hash = super::hash_password(password.clone()).await?;
    state
        .store
        .set_password(&session.user.login, &login, hash, None)
        .await?;
    render(
        &state,
        &session,
        Some(password_notice(&login, &password, true)),
    )
    .await
}
