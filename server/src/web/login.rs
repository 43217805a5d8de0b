//! Connexion and Déconnexion.

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::page;
use super::{FormData, MAX_FORM_BYTES, WebError, client_ip, see_other};
use crate::auth::{self, LoginError, Session};
use crate::http::AppState;

fn login_page(message: Option<&str>, login: &str) -> Markup {
    page(
        "Connexion",
        None,
        html! {
            @if let Some(m) = message {
                div.error role="alert" { p { (m) } }
            }
            form method="post" action="/connexion" {
                label for="identifiant" { "Identifiant" }
                input type="text" id="identifiant" name="login" autocomplete="username"
                    required value=(login);
                label for="mot-de-passe" { "Mot de passe" }
                input type="password" id="mot-de-passe" name="password"
                    autocomplete="current-password" required;
                p { button type="submit" id="se-connecter" { "Se connecter" } }
            }
        },
    )
}

/// `GET /connexion`.
pub async fn form() -> Response {
    super::layout::html(login_page(None, ""))
}

/// `POST /connexion`: opens a session and goes to the home page.
pub async fn submit(State(state): State<AppState>, req: Request) -> Response {
    let ip = client_ip(req.extensions());
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES).await else {
        return WebError::bad_request("Formulaire trop volumineux.").into_response();
    };
    let f = FormData::parse(&bytes);
    let login = f.get("login").unwrap_or("");
    let password =
        f.0.iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
    match auth::login(state.store.as_ref(), login, password, ip).await {
        Ok((cookie, _)) => {
            let mut res = see_other("/");
            if let Ok(v) = HeaderValue::from_str(&auth::session_cookie(&cookie)) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e @ LoginError::RateLimited) => (
            StatusCode::TOO_MANY_REQUESTS,
            super::layout::html(login_page(Some(&e.to_string()), login)),
        )
            .into_response(),
        Err(e @ LoginError::Busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            super::layout::html(login_page(Some(&e.to_string()), login)),
        )
            .into_response(),
        Err(e @ LoginError::BadCredentials) => (
            StatusCode::UNAUTHORIZED,
            super::layout::html(login_page(Some(&e.to_string()), login)),
        )
            .into_response(),
        Err(e) => WebError::from(e).into_response(),
    }
}

/// `GET /deconnexion` (a bookmark, an address typed): logging out is a
/// POST with the session's CSRF token, so this page offers the button.
pub async fn logout_page(Extension(session): Extension<Session>) -> Response {
    super::layout::html(super::layout::page(
        "Se déconnecter",
        Some(&session),
        maud::html! {
            form method="post" action="/deconnexion" {
                (super::layout::csrf(&session))
                p { "Fermer votre session sur ce navigateur ?" }
                button type="submit" id="confirmer-deconnexion" { "Se déconnecter" }
            }
        },
    ))
}

/// `POST /deconnexion`: revokes the session.
pub async fn logout(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(_form): Extension<FormData>,
) -> Result<Response, WebError> {
    state
        .store
        .revoke_session(&session.user.login, &session.id_hash)
        .await?;
    let mut res = see_other("/connexion");
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}
