//! Random secrets and how they are stored.
//!
//! Machine credentials and enrolment tokens are 256-bit random values: a
//! plain SHA-256 of them is enough to store (nobody can brute-force 2^256),
//! and it is cheap enough to check on every check-in. People's passwords are
//! low-entropy, so they get argon2.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// `n` random bytes from the thread-local CSPRNG (seeded by the OS).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A new 256-bit secret, base64url without padding (43 characters, never a
/// `.`, so it can follow the machine id in a bearer credential).
pub fn new_secret() -> String {
    typeable(|| URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Draws again until the text does not start with `-` or `_`: a token that
/// starts with a dash reads as an option on a command line
/// (`nird-agent enroll --token -x...`). Costs one extra draw in 32.
fn typeable(draw: impl Fn() -> String) -> String {
    loop {
        let s = draw();
        if s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return s;
        }
    }
}

/// A new machine identifier: 128 random bits in lowercase hex.
pub fn new_machine_id() -> String {
    hex::encode(random_bytes::<16>())
}

/// A new human password for the initial admin account (144 bits).
pub fn new_password() -> String {
    typeable(|| URL_SAFE_NO_PAD.encode(random_bytes::<18>()))
}

/// How a high-entropy secret (machine secret, enrolment token) is stored.
pub fn hash_secret(secret: &str) -> String {
    nird_proto::hash::sha256_hex(secret.as_bytes())
}

/// Compares two equal-length strings without an early exit, so the time
/// taken does not tell how many leading characters matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Argon2id hash (PHC string) of a person's password.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// True if `password` matches the stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_never_start_like_an_option() {
        for _ in 0..2000 {
            assert!(super::new_secret().starts_with(|c: char| c.is_ascii_alphanumeric()));
            assert!(super::new_password().starts_with(|c: char| c.is_ascii_alphanumeric()));
        }
    }

    use super::*;

    #[test]
    fn secrets_are_distinct_and_dot_free() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(!a.contains('.'));
        assert_eq!(new_machine_id().len(), 32);
    }

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
