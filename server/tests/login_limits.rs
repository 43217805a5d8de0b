//! The login rate limit and argon2's memory under concurrent attempts
//! (found by review: the limit was checked before argon2 and recorded after
//! it, so 30 simultaneous guesses were all verified and the last, right one
//! logged in; and each attempt held argon2's 19 MiB with nothing bounding
//! how many ran at once: 200 attempts took 3.8 GB).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use nird_server::auth::{self, LoginError};
use nird_server::store::sqlite::SqliteStore;
use nird_server::store::{NewUser, Role, Store};

fn store_with(login: &str, password: &str) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let rt = tokio::runtime::Handle::current();
    let hash = nird_server::secrets::hash_password(password).unwrap();
    let s = store.clone();
    let login = login.to_owned();
    tokio::task::block_in_place(|| {
        rt.block_on(s.add_user(
            "test",
            NewUser {
                login,
                password_hash: hash,
                role: Role::Admin,
                schools: vec![],
                territory: None,
            },
        ))
    })
    .unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_stop_at_the_limit() {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let n = 30;
    // From one address each (only the account's lock orders them), then,
    // on a fresh account, from one address: the limit holds either way.
    for spread in [true, false] {
        let (_dir, store) = store_with("victime", "le-bon-mot-de-passe");
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let store = store.clone();
                let ip = if spread {
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, i as u8))
                } else {
                    ip
                };
                // The right password comes last.
                let pw = if i == n - 1 {
                    "le-bon-mot-de-passe".to_owned()
                } else {
                    format!("mauvais-{i}")
                };
                tokio::spawn(async move { auth::login(store.as_ref(), "victime", &pw, ip).await })
            })
            .collect();
        let (mut wrong, mut limited, mut ok) = (0, 0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(LoginError::BadCredentials) => wrong += 1,
                Err(LoginError::RateLimited) => limited += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            (wrong, ok),
            (auth::MAX_FAILURES_PER_LOGIN as usize, 0),
            "spread={spread}: {wrong} wrong passwords checked, {limited} refused, {ok} logged in"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_elsewhere_do_not_lock_the_owner_out_of_a_known_address() {
    let (_dir, store) = store_with("chef", "le-bon-mot-de-passe");
    let school = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    let login = |pw: &'static str, ip: IpAddr| {
        let store = store.clone();
        async move { auth::login(store.as_ref(), "chef", pw, ip).await }
    };
    // The administrator has logged in from the school's network.
    assert!(login("le-bon-mot-de-passe", school).await.is_ok());
    // Someone who knows the login fails from elsewhere, from many addresses.
    for i in 0..auth::MAX_FAILURES_PER_LOGIN as u8 {
        let far = IpAddr::V4(Ipv4Addr::new(203, 0, 113, i));
        assert!(matches!(
            login("devine", far).await,
            Err(LoginError::BadCredentials)
        ));
    }
    // Guesses from a new address are refused, even the right password...
    let new = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200));
    assert!(matches!(
        login("le-bon-mot-de-passe", new).await,
        Err(LoginError::RateLimited)
    ));
    // ...but the administrator still logs in from the school (it used to
    // be locked out for as long as the failures went on).
    assert!(login("le-bon-mot-de-passe", school).await.is_ok());
    // Failures from the known address itself are limited there as before.
    for _ in 0..auth::MAX_FAILURES_PER_LOGIN {
        assert!(matches!(
            login("faute-de-frappe", school).await,
            Err(LoginError::BadCredentials)
        ));
    }
    assert!(matches!(
        login("le-bon-mot-de-passe", school).await,
        Err(LoginError::RateLimited)
    ));
}

/// Peak resident memory of this process, MiB.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_logins_from_many_addresses_holds_few_argon2_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let before = peak_rss_mib();
    let tasks: Vec<_> = (0..120u32)
        .map(|i| {
            let store = store.clone();
            let ip = IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i));
            // Unknown logins: the dummy hash is verified just the same.
            tokio::spawn(async move {
                auth::login(store.as_ref(), &format!("inconnu{i}"), "x", ip).await
            })
        })
        .collect();
    let (mut refused, mut busy) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(LoginError::BadCredentials) => refused += 1,
            Err(LoginError::Busy) => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    let grown = peak_rss_mib().saturating_sub(before);
    eprintln!("120 concurrent logins: {refused} refused, {busy} busy, peak RSS +{grown} MiB");
    // At most four argon2 at 19 MiB each (the other test may run beside).
    assert!(grown < 200, "peak RSS grew by {grown} MiB");
    assert!(refused > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_addresses_together_stay_bounded_and_the_password_change_is_limited() {
    let (_dir, store) = store_with("chef", "le-bon-mot-de-passe");
    let login = |pw: &'static str, ip: IpAddr| {
        let store = store.clone();
        async move { auth::login(store.as_ref(), "chef", pw, ip).await }
    };
    let known: Vec<IpAddr> = (1..=5)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    for &ip in &known {
        assert!(login("le-bon-mot-de-passe", ip).await.is_ok());
    }
    // Guesses from four of its known addresses (a school's shared
    // network): each gets its own 5, but all together no more than the cap.
    let mut checked = 0;
    for &ip in &known[..4] {
        for _ in 0..auth::MAX_FAILURES_PER_LOGIN {
            if matches!(login("devine", ip).await, Err(LoginError::BadCredentials)) {
                checked += 1;
            }
        }
    }
    assert_eq!(checked, auth::MAX_FAILURES_PER_LOGIN_KNOWN);
    assert!(matches!(
        login("le-bon-mot-de-passe", known[4]).await,
        Err(LoginError::RateLimited)
    ));

    // The password change's « current password » is a login attempt: on a
    // fresh account, 5 wrong ones, then even the right one is refused.
    let (_dir, store) = store_with("gest", "le-bon-mot-de-passe");
    let ip = known[0];
    for _ in 0..auth::MAX_FAILURES_PER_LOGIN {
        assert!(
            !auth::check_password(store.as_ref(), "gest", "devine", ip)
                .await
                .unwrap()
        );
    }
    assert!(matches!(
        auth::check_password(store.as_ref(), "gest", "le-bon-mot-de-passe", ip).await,
        Err(LoginError::RateLimited)
    ));
}
