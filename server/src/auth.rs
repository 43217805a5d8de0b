//! People's authentication: password logins with rate limiting, server-side
//! sessions, CSRF tokens and personal API tokens.
//!
//! A session is a 256-bit random value in a cookie
//! (`__Host-nird_session`, `Secure; HttpOnly; SameSite=Strict; Path=/`);
//! the database keeps only its SHA-256 (table `sessions`), with the user,
//! creation and last-request times, the client address and a revocation
//! time. A session is valid while it is not revoked (logout, password
//! change, account disabled or re-scoped), its user is not disabled, its
//! last request is less than [`IDLE_SECS`] old and its creation less than
//! [`ABSOLUTE_SECS`]. Each session has its own CSRF token, which every form
//! carries as a hidden field `csrf` and every POST must echo (compared in
//! constant time).
//!
//! Failed logins are stored (table `login_failures`), so the limit
//! ([`MAX_FAILURES_PER_LOGIN`] per account, [`MAX_FAILURES_PER_ADDRESS`] per
//! client address, over [`FAILURE_WINDOW_SECS`]; an account's own recent
//! addresses are not locked out by failures elsewhere, see [`limited`])
//! holds across every server process sharing the database and across
//! restarts. Within a process,
//! attempts on one account, and attempts from one address, run one after
//! the other (check, argon2, record), so concurrent guesses cannot all pass
//! the check before the first failure is recorded; with several server
//! processes on one PostgreSQL database, at most one attempt per account
//! and process is in flight. Logins and failed logins go to the audit log
//! with the address.
//!
//! Argon2 holds 19 MiB for ≈ 50 ms: every password check or hash on the
//! web side goes through [`argon2`], which runs at most a few at once (one
//! per core, four at most) and answers « busy » after waiting
//! [`ARGON2_WAIT`], so a flood of logins waits instead of holding memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::secrets::{self, Argon2Memory};
use crate::store::Store;
use crate::store::web::{LoginFailures, NewSession, User};

/// Name of the session cookie. The `__Host-` prefix makes browsers refuse
/// it unless it is `Secure`, has `Path=/` and no `Domain`.
pub const SESSION_COOKIE: &str = "__Host-nird_session";
/// A session unused this long is over (8 h).
pub const IDLE_SECS: i64 = 8 * 3600;
/// A session older than this is over, used or not (12 h).
pub const ABSOLUTE_SECS: i64 = 12 * 3600;
/// Failed logins per account within the window before refusing.
pub const MAX_FAILURES_PER_LOGIN: u64 = 5;
/// Failed logins per client address within the window before refusing
/// (higher: a school's staff share one address behind NAT).
pub const MAX_FAILURES_PER_ADDRESS: u64 = 20;
/// The rate-limit window (15 min).
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;
/// Failed logins per account within the window, all its known addresses
/// together, before refusing there too: guesses on an account stay below
/// this per window whatever addresses they come from.
pub const MAX_FAILURES_PER_LOGIN_KNOWN: u64 = 20;
/// An address a login opened a session from this recently (30 days) is
/// known: failures of that login elsewhere do not lock it out there.
pub const KNOWN_ADDRESS_SECS: i64 = 30 * 86_400;
/// Prefix of personal API tokens (recognisable in logs and secret scanners).
pub const API_TOKEN_PREFIX: &str = "nird_pat_";
/// `last_seen` is written at most this often per session.
const TOUCH_EVERY_SECS: i64 = 60;
/// Longest login or password accepted (argon2 work is bounded).
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// Why a login failed. Messages are French, shown on the login page.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many recent failures for this account or address.
    #[error("Trop de tentatives de connexion échouées. Par sécurité, réessayez dans 15 minutes.")]
    RateLimited,
    /// Unknown login, wrong password or disabled account (one message for
    /// all, so the page does not tell which logins exist).
    #[error("Identifiant ou mot de passe incorrect.")]
    BadCredentials,
    /// Too many password checks at once: the server is busy.
    #[error("Le serveur est très sollicité : réessayez dans un instant.")]
    Busy,
    /// The database failed.
    #[error("Erreur du serveur : {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A logged-in person on one request.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub user: User,
    /// The session's CSRF token.
    pub csrf: String,
    /// SHA-256 of the cookie (to log out).
    pub id_hash: String,
}

/// Now, Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A fixed argon2 hash verified when the login does not exist, so that
/// unknown and known logins take the same time.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| secrets::hash_password("nird-dummy-password").unwrap_or_default())
}

/// How long a password check or hash waits for its turn before the
/// server answers that it is busy.
pub const ARGON2_WAIT: Duration = Duration::from_secs(10);

/// Argon2 runs at once at most: one per core, four at most.
fn argon2_permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(cores.clamp(1, 4)))
    })
}

/// Argon2 working memories not in use: at most one per permit, kept.
fn argon2_memories() -> &'static Mutex<Vec<Argon2Memory>> {
    static MEMORIES: OnceLock<Mutex<Vec<Argon2Memory>>> = OnceLock::new();
    MEMORIES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs `work` (an argon2 check or hash, in the memory it is given) on the
/// blocking pool once a permit is free; [`LoginError::Busy`] after waiting
/// [`ARGON2_WAIT`]. The permit goes with the work, so a request given up
/// while its hash runs does not free its place early. So the server holds
/// at most one argon2 memory per permit (19 MiB each), reused.
pub async fn argon2<T: Send + 'static>(
    work: impl FnOnce(&mut Argon2Memory) -> T + Send + 'static,
) -> Result<T, LoginError> {
    let permit = tokio::time::timeout(ARGON2_WAIT, argon2_permits().clone().acquire_owned())
        .await
        .map_err(|_| LoginError::Busy)?
        .map_err(|_| LoginError::Busy)?;
    tokio::task::spawn_blocking(move || {
        let pool = argon2_memories();
        let taken = pool.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut memory = taken.unwrap_or_default();
        let out = work(&mut memory);
        pool.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(memory);
        drop(permit);
        out
    })
    .await
    .map_err(|_| LoginError::Busy)
}

/// Locks by key (an account's login, or an address): attempts holding the
/// same key run one after the other. Entries no attempt holds are dropped
/// once the map has many.
struct KeyLocks(Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    fn new() -> Self {
        KeyLocks(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        if map.len() >= 1024 {
            map.retain(|_, held| held.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

fn login_locks() -> &'static KeyLocks {
    static LOCKS: OnceLock<KeyLocks> = OnceLock::new();
    LOCKS.get_or_init(KeyLocks::new)
}

fn address_locks() -> &'static KeyLocks {
    static LOCKS: OnceLock<KeyLocks> = OnceLock::new();
    LOCKS.get_or_init(KeyLocks::new)
}

/// Checks a login and password and, if they are right and no limit is hit,
/// opens a session. Returns the cookie value (shown once to the browser)
/// and the user.
pub async fn login(
    store: &dyn Store,
    login: &str,
    password: &str,
    ip: IpAddr,
) -> Result<(String, User), LoginError> {
    let ip = ip.to_string();
    let login = login.trim();
    if login.is_empty()
        || login.len() > MAX_CREDENTIAL_LEN
        || password.len() > MAX_CREDENTIAL_LEN
        || login.chars().any(char::is_control)
    {
        return Err(LoginError::BadCredentials);
    }
    let Some(user) = verify_limited(store, login, password, &ip).await? else {
        return Err(LoginError::BadCredentials);
    };
    let cookie = secrets::new_secret();
    let session = NewSession {
        id_hash: secrets::hash_secret(&cookie),
        csrf: secrets::new_secret(),
        ip,
    };
    store.create_session(&user, session).await?;
    tracing::info!(login = %user.login, "login");
    Ok((cookie, user))
}

/// Whether `password` is `login`'s, checked under the login rate limit as
/// a login is (a wrong one counts as a failed login): for the password
/// change, which asks for the current one (found by review: it was a
/// password oracle without limit for whoever held an open session).
pub async fn check_password(
    store: &dyn Store,
    login: &str,
    password: &str,
    ip: IpAddr,
) -> Result<bool, LoginError> {
    if password.len() > MAX_CREDENTIAL_LEN {
        return Ok(false);
    }
    Ok(verify_limited(store, login, password, &ip.to_string())
        .await?
        .is_some())
}

/// Checks a password under the rate limit: the user if it is theirs and
/// the account is enabled, `None` (the failure recorded) otherwise.
async fn verify_limited(
    store: &dyn Store,
    login: &str,
    password: &str,
    ip: &str,
) -> Result<Option<User>, LoginError> {
    // One attempt at a time per account, then per address (always in
    // this order, so two attempts never wait for each other's lock): the
    // count below then includes every earlier attempt's failure.
    let login_lock = login_locks().get(login);
    let _login_turn = login_lock.lock().await;
    let address_lock = address_locks().get(ip);
    let _address_turn = address_lock.lock().await;
    let t = now();
    let failures = store
        .login_failures(login, ip, t - FAILURE_WINDOW_SECS, t - KNOWN_ADDRESS_SECS)
        .await?;
    if limited(&failures) {
        tracing::warn!(%ip, "login refused: rate limit");
        return Err(LoginError::RateLimited);
    }
    let found = store.user_auth(login).await?;
    let (user, phc) = match found {
        Some((user, phc)) => (Some(user), phc),
        None => (None, dummy_hash().to_owned()),
    };
    let password = password.to_owned();
    let ok = argon2(move |memory| secrets::verify_password_in(&password, &phc, memory)).await?;
    match user {
        Some(user) if ok && user.disabled_at.is_none() => Ok(Some(user)),
        _ => {
            store.record_login_failure(login, ip).await?;
            tracing::info!(%ip, "failed login");
            Ok(None)
        }
    }
}

/// The rate limit. From an address, a login gets [`MAX_FAILURES_PER_LOGIN`]
/// failures, and all logins together [`MAX_FAILURES_PER_ADDRESS`]. Across
/// addresses, a login gets [`MAX_FAILURES_PER_LOGIN`] failures too, except
/// from an address it logged in from within [`KNOWN_ADDRESS_SECS`]: someone
/// who knows the administrator's login can no longer lock them out of
/// their own school's network by failing from elsewhere, while guesses
/// from unknown addresses stay bounded as before (found by review).
fn limited(f: &LoginFailures) -> bool {
    f.by_pair >= MAX_FAILURES_PER_LOGIN
        || f.by_address >= MAX_FAILURES_PER_ADDRESS
        || (f.by_login >= MAX_FAILURES_PER_LOGIN && !f.known_address)
        // Known addresses together get a bounded number too, so shared
        // networks do not multiply the guesses (found by review).
        || f.by_login >= MAX_FAILURES_PER_LOGIN_KNOWN
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The live session a cookie value names, if any (refreshes its last
/// request time at most once a minute).
pub async fn session(store: &dyn Store, cookie: &str) -> Result<Option<Session>, LoginError> {
    if cookie.is_empty() || cookie.len() > 100 {
        return Ok(None);
    }
    let id_hash = secrets::hash_secret(cookie);
    let Some(record) = store.session(&id_hash).await? else {
        return Ok(None);
    };
    let t = now();
    if record.revoked_at.is_some()
        || record.user.disabled_at.is_some()
        || t - record.last_seen >= IDLE_SECS
        || t - record.created_at >= ABSOLUTE_SECS
    {
        return Ok(None);
    }
    if t - record.last_seen >= TOUCH_EVERY_SECS {
        store.touch_session(&id_hash).await?;
    }
    Ok(Some(Session {
        user: record.user,
        csrf: record.csrf,
        id_hash,
    }))
}

/// `Set-Cookie` value that stores a session.
pub fn session_cookie(value: &str) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={ABSOLUTE_SECS}"
    )
}

/// `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// True if the form's CSRF token is the session's (constant time).
pub fn csrf_ok(session: &Session, sent: Option<&str>) -> bool {
    sent.is_some_and(|s| secrets::constant_time_eq(s, &session.csrf))
}

/// A new personal API token: (clear token shown once, hash to store).
pub fn new_api_token() -> (String, String) {
    let token = format!("{API_TOKEN_PREFIX}{}", secrets::new_secret());
    let hash = secrets::hash_secret(&token);
    (token, hash)
}

/// The user a `Authorization: Bearer` API token belongs to, if it is live.
pub async fn api_user(store: &dyn Store, bearer: &str) -> Result<Option<User>, LoginError> {
    if !bearer.starts_with(API_TOKEN_PREFIX) || bearer.len() > 100 {
        return Ok(None);
    }
    Ok(store.api_token_user(&secrets::hash_secret(bearer)).await?)
}

/// Checks a new password's strength; French message when refused.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 12 {
        return Err("Le mot de passe doit compter au moins 12 caractères.".into());
    }
    if password.len() > MAX_CREDENTIAL_LEN {
        return Err("Le mot de passe est trop long (256 octets au plus).".into());
    }
    if password.chars().any(char::is_control) {
        return Err("Le mot de passe contient des caractères de contrôle.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_finds_only_the_named_cookie() {
        let h = "a=1; __Host-nird_session=abc; b=2";
        assert_eq!(cookie_value(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value("x__Host-nird_session=1", SESSION_COOKIE), None);
        assert_eq!(cookie_value("", SESSION_COOKIE), None);
    }

    #[test]
    fn cookies_carry_every_protection() {
        let c = session_cookie("v");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_new_password("court").is_err());
        assert!(check_new_password("assez-long-maintenant").is_ok());
    }
}
