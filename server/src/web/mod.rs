//! The dashboard: French pages rendered on the server with maud, on the
//! same HTTPS listener as the agent API (pages under `/`, the read-only
//! admin JSON API under `/api/v1/admin`).
//!
//! One module per page, its templates next to its handlers: [`login`]
//! (Connexion, Déconnexion), [`home`] (Accueil), [`school`]
//! (Établissement: machine table, bulk actions, enrolment tokens, approval
//! queue, assignments), [`machine`] (Machine), [`software`] (a machine's
//! installed software, and which machines of a school have a package),
//! [`profiles`] (Profils),
//! [`journal`] (Journal), [`users`] (Utilisateurs, admin only), [`account`]
//! (Mon compte: password, personal API tokens), [`export`] (CSV / JSON of
//! the machine table, shared with [`api`]). [`layout`] holds the page
//! frame, the stylesheet and the shared widgets. The collectivités' audit:
//! [`audit`] (page, printable report, figures as CSV / JSON),
//! [`audit_export`] (per-machine table as CSV / JSON / GLPI, streamed; data
//! dictionary), [`audit_api`] (`GET /api/v1/admin/reuse`) and [`passport`]
//! (printable machine fiches with a QR code).
//!
//! Security model, enforced here and in the store:
//! - every page but the login page and the stylesheet goes through
//!   [`require_session`], which finds a live server-side session (see
//!   [`crate::auth`]) or redirects to `/connexion`, and for every POST
//!   reads the form once, checks its `csrf` field against the session's
//!   token in constant time (403 and nothing changes otherwise) and hands
//!   the parsed form to the handler as [`FormData`];
//! - every POST must also come from this site (`Origin`, when sent, must
//!   match `Host`);
//! - every listing and lookup passes the user's [`Scope`] to the store, so
//!   an object out of scope is never read: handlers answer 404 for it,
//!   whatever the role, and it never appears in a list, count or export;
//! - roles: `admin` everything; `school` (« gestionnaire ») may act on
//!   machines, tokens and assignments of schools in scope; `auditor`
//!   (« auditeur ») only reads. Admin-only pages answer 404 to others.

pub mod account;
pub mod api;
pub mod audit;
pub mod audit_api;
pub mod audit_export;
pub mod devices;
pub mod export;
pub mod home;
pub mod journal;
pub mod layout;
pub mod login;
pub mod machine;
pub mod passport;
pub mod profiles;
pub mod school;
pub mod software;
pub mod users;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::web::Scope;
use crate::store::{Role, StoreError};

/// The peer address of the connection, inserted by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Largest form accepted (a bulk action on 500 machines is ~25 KB).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A POSTed form, parsed once by [`require_session`] (CSRF checked).
#[derive(Debug, Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// Parses `application/x-www-form-urlencoded` text.
    pub fn parse(bytes: &[u8]) -> Self {
        FormData(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `key`, trimmed; `None` when absent or blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// An error page.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    message: String,
}

impl WebError {
    /// 404, for anything absent *or out of scope* (never 403 with a name).
    pub fn not_found() -> Self {
        WebError {
            status: StatusCode::NOT_FOUND,
            message: "Cette page n'existe pas ou vous n'y avez pas accès.".into(),
        }
    }

    /// 400 with a French explanation.
    pub fn bad_request(message: impl Into<String>) -> Self {
        WebError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 400: the form is refused and can be shown again with its message
    /// ([`layout::form_error`]) rather than on an error page.
    pub fn refusal(&self) -> Option<&str> {
        (self.status == StatusCode::BAD_REQUEST).then_some(self.message.as_str())
    }

    /// 403: the role does not allow the action (on an object in scope).
    pub fn forbidden() -> Self {
        WebError {
            status: StatusCode::FORBIDDEN,
            message: "Votre rôle ne permet pas cette action.".into(),
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => WebError::not_found(),
            StoreError::AlreadyExists(_) | StoreError::Conflict(_) | StoreError::Token(_) => {
                WebError::bad_request(e.to_string())
            }
            other => {
                tracing::error!(error = %other, "dashboard store error");
                WebError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "Erreur interne du serveur ; réessayez plus tard.".into(),
                }
            }
        }
    }
}

impl From<auth::LoginError> for WebError {
    fn from(e: auth::LoginError) -> Self {
        match e {
            auth::LoginError::Store(s) => s.into(),
            e @ auth::LoginError::Busy => WebError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
            },
            other => WebError::bad_request(other.to_string()),
        }
    }
}

/// A numeric identifier from the path: 404 (the French page) for anything
/// else, instead of axum's English plain-text rejection.
pub fn path_id(text: &str) -> Result<i64, WebError> {
    text.parse().map_err(|_| WebError::not_found())
}

/// A new password's argon2 hash, computed like every password check
/// ([`auth::argon2`]: a few at once, « busy » when too many wait).
pub async fn hash_password(password: String) -> Result<String, WebError> {
    auth::argon2(move |memory| crate::secrets::hash_password_in(&password, memory))
        .await?
        .map_err(|_| WebError::bad_request("Mot de passe impossible à chiffrer."))
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Page introuvable",
            StatusCode::FORBIDDEN => "Action refusée",
            StatusCode::BAD_REQUEST => "Demande invalide",
            _ => "Erreur",
        };
        let body = maud::html! {
            p role="alert" { (self.message) }
            p { a href="/" { "Retour à l'accueil" } }
        };
        (self.status, layout::html(layout::page(title, None, body))).into_response()
    }
}

/// Handler result.
pub type WebResult = Result<Response, WebError>;

/// What a session may do.
pub fn can_manage(session: &Session) -> bool {
    matches!(session.user.role, Role::Admin | Role::School)
}

/// The scope of the logged-in user.
pub fn scope(session: &Session) -> Scope {
    session.user.scope()
}

/// A 303 redirect after a successful POST.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The dashboard routes (pages, exports, admin API), with their layers.
pub fn router(state: AppState) -> Router<AppState> {
    let public = Router::new()
        .route("/connexion", get(login::form).post(login::submit))
        .route("/style.css", get(layout::stylesheet));
    let private = Router::new()
        .route("/", get(home::page))
        .route("/deconnexion", get(login::logout_page).post(login::logout))
        .route("/etablissements/{uai}", get(school::page))
        .route("/etablissements/{uai}/actions", post(school::bulk))
        .route("/etablissements/{uai}/jetons", post(school::token_create))
        .route(
            "/etablissements/{uai}/jetons/{id}/revoquer",
            post(school::token_revoke),
        )
        .route("/etablissements/{uai}/profils", post(school::assign))
        .route("/machines.csv", get(export::csv_page))
        .route("/machines.json", get(export::json_page))
        .route("/machines/{id}", get(machine::page))
        .route("/machines/{id}/actions", post(machine::action))
        .route("/machines/{id}/logiciels", get(software::machine))
        .route("/etablissements/{uai}/logiciels", get(software::school))
        .route("/profils", get(profiles::page))
        .route("/journal", get(journal::page))
        .route("/utilisateurs", get(users::page).post(users::create))
        .route("/utilisateurs/{login}/role", post(users::set_role))
        .route("/utilisateurs/{login}/etat", post(users::set_state))
        .route(
            "/utilisateurs/{login}/mot-de-passe",
            post(users::reset_password),
        )
        .route("/compte", get(account::page))
        .route("/compte/mot-de-passe", post(account::change_password))
        .route("/compte/jetons", post(account::token_create))
        .route("/compte/jetons/{id}/revoquer", post(account::token_revoke))
        // The collectivités' audit (issue 10): pages, report, exports,
        // passports.
        .route("/audit", get(audit::page))
        .route("/audit/rapport", get(audit::report))
        .route("/audit/chiffres.json", get(audit::figures_json_page))
        .route("/audit/chiffres.csv", get(audit::figures_csv_page))
        .route("/audit/machines.csv", get(audit_export::machines_csv))
        .route("/audit/machines.json", get(audit_export::machines_json))
        .route("/audit/glpi.jsonl", get(audit_export::glpi_bulk))
        .route("/audit/dictionnaire", get(audit_export::dictionary))
        .route("/machines/{id}/fiche", get(passport::machine))
        .route("/machines/{id}/glpi.json", get(audit_export::glpi_one))
        .route("/etablissements/{uai}/fiches", get(passport::school))
        .route_layer(from_fn_with_state(state.clone(), require_session));
    let api = Router::new()
        .route("/api/v1/admin/machines", get(api::machines))
        .route("/api/v1/admin/machines.csv", get(api::machines_csv))
        .route("/api/v1/admin/machines/{id}", get(api::machine))
        .route("/api/v1/admin/reuse", get(audit_api::reuse));
    public
        .merge(private)
        .layer(from_fn(same_origin_posts))
        .merge(api)
        .layer(from_fn(security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
}

/// The client's address (for rate limiting and the audit log).
pub fn client_ip(req_ext: &axum::http::Extensions) -> IpAddr {
    addr_ip(req_ext.get::<ClientAddr>())
}

/// The address of a connection's peer, as [`client_ip`] reads it.
pub fn addr_ip(addr: Option<&ClientAddr>) -> IpAddr {
    addr.map(|a| a.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Refuses a POST whose `Origin` names another site.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST
        && let Some(origin) = req.headers().get(header::ORIGIN)
    {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        let expected = format!("https://{host}");
        if origin.to_str().ok() != Some(expected.as_str()) {
            drain(req).await;
            return WebError {
                status: StatusCode::FORBIDDEN,
                message: "Requête refusée : elle ne vient pas de ce site.".into(),
            }
            .into_response();
        }
    }
    next.run(req).await
}

/// Headers every dashboard answer carries: no other host may be asked for
/// anything, no framing, no caching of pages.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Reads (and drops) a refused request's body, bounded, so the connection
/// stays usable for the client's next request.
async fn drain(req: Request) {
    let _ = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES).await;
}

/// Finds the session (or redirects to the login page) and, for POSTs,
/// checks the CSRF token and parses the form.
pub async fn require_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| auth::cookie_value(h, auth::SESSION_COOKIE))
        .map(str::to_owned);
    let session = match cookie {
        Some(c) => match auth::session(state.store.as_ref(), &c).await {
            Ok(s) => s,
            Err(e) => return WebError::from(e).into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        drain(req).await;
        let mut res = Redirect::to("/connexion").into_response();
        if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie()) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    };
    let mut req = req;
    if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return WebError::bad_request("Formulaire trop volumineux.").into_response();
        };
        let form = FormData::parse(&bytes);
        if !auth::csrf_ok(&session, form.get("csrf")) {
            tracing::warn!(login = %session.user.login, "POST refused: bad CSRF token");
            return WebError {
                status: StatusCode::FORBIDDEN,
                message: "Jeton de sécurité du formulaire absent ou invalide : rechargez la \
                          page et recommencez."
                    .into(),
            }
            .into_response();
        }
        req = Request::from_parts(parts, Body::empty());
        req.extensions_mut().insert(form);
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}
