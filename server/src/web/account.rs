//! Mon compte: change one's password, create and revoke personal API
//! tokens (shown once).

use axum::Extension;
use axum::extract::{Path, State};
use maud::{Markup, html};

use super::layout::{csrf, date_time, error_marks, form_error, html, notice, page_at, refused};
use super::{FormData, WebResult, see_other};
use crate::auth::{self, Session};
use crate::http::AppState;

/// A refused form of this page: which, and why.
enum Refused<'a> {
    /// The password change; `field` is the id of the input in error
    /// (passwords are never shown again).
    Password { field: &'static str, error: &'a str },
    /// A new API token's label, shown again as typed.
    Token { label: &'a str, error: &'a str },
}

async fn render(state: &AppState, session: &Session, message: Option<Markup>) -> WebResult {
    render_page(state, session, message, None).await
}

async fn render_page(
    state: &AppState,
    session: &Session,
    message: Option<Markup>,
    refusal: Option<Refused<'_>>,
) -> WebResult {
    let tokens = state.store.list_api_tokens(&session.user.login).await?;
    let (password_error, password_field) = match refusal {
        Some(Refused::Password { field, error }) => (Some(error), Some(field)),
        _ => (None, None),
    };
    let (token_error, label) = match refusal {
        Some(Refused::Token { label, error }) => (Some(error), Some(label)),
        _ => (None, None),
    };
    let marks = |id: &str| error_marks(password_field == Some(id));
    let body = html! {
        @if let Some(m) = message { (m) }
        @if let Some(e) = password_error {
            (form_error(e, "changer-mot-de-passe", "Corriger le changement de mot de passe"))
        }
        @if let Some(e) = token_error {
            (form_error(e, "nouveau-jeton-api", "Corriger le nouveau jeton"))
        }
        h2 { "Changer de mot de passe" }
        form method="post" action="/compte/mot-de-passe" id="changer-mot-de-passe" {
            (csrf(session))
            @let (invalid, described) = marks("ancien");
            label for="ancien" { "Mot de passe actuel" }
            input type="password" id="ancien" name="current" autocomplete="current-password" required
                aria-invalid=[invalid] aria-describedby=[described];
            @let (invalid, described) = marks("nouveau");
            label for="nouveau" { "Nouveau mot de passe (12 caractères au moins)" }
            input type="password" id="nouveau" name="new" autocomplete="new-password" minlength="12" required
                aria-invalid=[invalid] aria-describedby=[described];
            @let (invalid, described) = marks("confirmation");
            label for="confirmation" { "Nouveau mot de passe, à nouveau" }
            input type="password" id="confirmation" name="confirm" autocomplete="new-password" minlength="12" required
                aria-invalid=[invalid] aria-describedby=[described];
            p { button type="submit" { "Changer le mot de passe" } }
        }
        h2 { "Jetons d'API personnels" }
        p { "Pour l'automatisation : " code { "Authorization: Bearer <jeton>" } " sur "
            code { "/api/v1/admin/machines" } ", avec les mêmes droits et le même périmètre que votre compte." }
        @if tokens.is_empty() {
            p { "Aucun jeton." }
        } @else {
            table {
                caption { "Vos jetons d'API" }
                thead { tr { th scope="col" { "N°" } th scope="col" { "Libellé" } th scope="col" { "Créé le (UTC)" } th scope="col" { "Dernière utilisation (UTC)" } th scope="col" { "État" } th scope="col" { "Action" } } }
                tbody {
                    @for t in &tokens {
                        tr {
                            th scope="row" { (t.id) }
                            td { (t.label) }
                            td { (date_time(Some(t.created_at))) }
                            td { (date_time(t.last_used)) }
                            td { @if t.revoked_at.is_some() { "révoqué" } @else { "actif" } }
                            td {
                                @if t.revoked_at.is_none() {
                                    form.inline method="post" action={"/compte/jetons/" (t.id) "/revoquer"} {
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
        form method="post" action="/compte/jetons" id="nouveau-jeton-api" {
            (csrf(session))
            label for="jeton-libelle" { "Libellé du nouveau jeton" }
            @let (invalid, described) = error_marks(token_error.is_some());
            input type="text" id="jeton-libelle" name="label" required maxlength="100" value=[label]
                aria-invalid=[invalid] aria-describedby=[described];
            p { button type="submit" id="creer-jeton-api" { "Créer un jeton d'API" } }
        }
    };
    Ok(html(page_at("Mon compte", "/compte", Some(session), body)))
}

/// `GET /compte`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> WebResult {
    render(&state, &session, None).await
}

/// `POST /compte/mot-de-passe`: needs the current password; closes the
/// account's other sessions.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    addr: Option<Extension<super::ClientAddr>>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    let raw = |k: &str| {
        form.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (current, new, confirm) = (raw("current"), raw("new"), raw("confirm"));
    // Under the login rate limit: a wrong current password is a failed
    // login of this account from this address.
    let ip = super::addr_ip(addr.as_ref().map(|a| &a.0));
    let checked =
        auth::check_password(state.store.as_ref(), &session.user.login, &current, ip).await;
    // A refusal is said above the form, on the page itself (it was an
    // error page, away from the form).
    let refuse = |field, error: String| {
        let (state, session) = (&state, &session);
        async move {
            let refusal = Refused::Password {
                field,
                error: &error,
            };
            Ok(refused(
                render_page(state, session, None, Some(refusal)).await?,
            ))
        }
    };
    match checked {
        Ok(true) => {}
        Ok(false) => return refuse("ancien", "Mot de passe actuel incorrect.".into()).await,
        Err(e @ auth::LoginError::RateLimited) => return refuse("ancien", e.to_string()).await,
        Err(e) => return Err(e.into()),
    }
    if new != confirm {
        return refuse(
            "confirmation",
            "Les deux nouveaux mots de passe diffèrent.".into(),
        )
        .await;
    }
    if let Err(why) = auth::check_new_password(&new) {
        return refuse("nouveau", why).await;
    }
    let hash = super::hash_password(new).await?;
    state
        .store
        .set_password(
            &session.user.login,
            &session.user.login,
            hash,
            Some(&session.id_hash),
        )
        .await?;
    render(
        &state,
        &session,
        Some(notice(
            "Mot de passe changé ; vos autres sessions sont fermées.",
        )),
    )
    .await
}

/// `POST /compte/jetons`: a new personal API token, shown once.
pub async fn token_create(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
) -> WebResult {
    let typed = form.get("label").unwrap_or("");
    if typed.trim().is_empty() || typed.chars().count() > 100 || typed.chars().any(char::is_control)
    {
        let refusal = Refused::Token {
            // Shown again without what made it invalid.
            label: &typed
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>(),
            error: "Libellé invalide : 1 à 100 caractères, sans retour à la ligne.",
        };
        return Ok(refused(
            render_page(&state, &session, None, Some(refusal)).await?,
        ));
    }
    let label = typed.to_owned();
    let (token, hash) = auth::new_api_token();
    state
        .store
        .create_api_token(&session.user.login, &session.user.login, hash, label)
        .await?;
    let message = html! {
        div.notice role="status" {
            p { "Jeton créé. Il n'est affiché qu'une fois : copiez-le maintenant." }
            code.secret id="jeton-api" { (token) }
        }
    };
    render(&state, &session, Some(message)).await
}

/// `POST /compte/jetons/{id}/revoquer`.
pub async fn token_revoke(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Extension(_form): Extension<FormData>,
) -> WebResult {
    let id = super::path_id(&id)?;
    state
        .store
        .revoke_api_token(&session.user.login, &session.user.login, id)
        .await?;
    Ok(see_other("/compte"))
}
