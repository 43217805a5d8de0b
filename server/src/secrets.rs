//! Random secrets and how they are stored.
//!
//! Machine credentials and enrolment tokens are 256-bit random values: a
//! plain SHA-256 of them is enough to store (nobody can brute-force 2^256),
//! and it is cheap enough to check on every check-in. People's passwords are
//! low-entropy, so they get argon2.

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Argon2's working memory (19 MiB with the default parameters), kept
/// from one hash to the next. A fresh 19 MiB buffer per hash is not given
/// back by glibc's allocator (its mmap threshold rises after the first
/// free): one thread hashing in a loop grew to 212 MiB, and a flood of
/// logins on the blocking pool's threads to 3.8 GB. The server keeps one
/// of these per argon2 permit ([`crate::auth::argon2`]).
#[derive(Default)]
pub struct Argon2Memory(Vec<Block>);

/// The largest memory cost a stored hash may ask for (KiB): a damaged row
/// cannot make a check allocate more than 64 MiB. Hashes made here use
/// argon2's default, 19 MiB.
const MAX_M_COST_KIB: u32 = 64 * 1024;

/// The output of `argon` for `password` and `salt`, computed in `memory`
/// (grown to the parameters' size, and cleared afterwards).
fn argon2_output(
    argon: &Argon2,
    params: &Params,
    password: &[u8],
    salt: Salt,
    memory: &mut Argon2Memory,
) -> argon2::password_hash::Result<Output> {
    let mut salt_arr = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_arr)?;
    let blocks = params.block_count();
    if memory.0.len() < blocks {
        memory.0.resize(blocks, Block::default());
    }
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        Ok(argon.hash_password_into_with_memory(
            password,
            salt_bytes,
            out,
            &mut memory.0[..blocks],
        )?)
    });
    // What the blocks hold is derived from the password.
    memory.0[..blocks].fill(Block::default());
    output
}

/// Argon2id hash (PHC string) of a person's password, with argon2's
/// default parameters, computed in `memory`.
pub fn hash_password_in(
    password: &str,
    memory: &mut Argon2Memory,
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())?;
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = argon2_output(&argon, &params, password.as_bytes(), salt.as_salt(), memory)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// True if `password` matches the stored PHC string, computed in `memory`.
/// False for a string that is not an argon2 hash, or asks for more than
/// 64 MiB.
pub fn verify_password_in(password: &str, phc: &str, memory: &mut Argon2Memory) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    // `Output`'s equality is constant-time.
    argon2_output(&argon, &params, password.as_bytes(), salt, memory)
        .is_ok_and(|out| out == expected)
}

/// Argon2id hash (PHC string) of a person's password (the command line's:
/// one hash, in fresh memory).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    hash_password_in(password, &mut Argon2Memory::default())
}

/// True if `password` matches the stored PHC string (in fresh memory).
pub fn verify_password(password: &str, phc: &str) -> bool {
    verify_password_in(password, phc, &mut Argon2Memory::default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_hashed_in_kept_memory_match_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut memory = super::Argon2Memory::default();
        // A hash stored by earlier versions (the crate's own hasher) checks
        // here, and one made here checks with the crate's verifier.
        let salt = super::SaltString::encode_b64(b"sel-de-seize-oct").unwrap();
        let old = argon2::Argon2::default()
            .hash_password(b"ancien mot", &salt)
            .unwrap()
            .to_string();
        assert!(super::verify_password_in("ancien mot", &old, &mut memory));
        assert!(!super::verify_password_in("autre mot", &old, &mut memory));
        let new = super::hash_password_in("nouveau mot", &mut memory).unwrap();
        let parsed = argon2::PasswordHash::new(&new).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"nouveau mot", &parsed)
                .is_ok()
        );
        assert!(super::verify_password_in("nouveau mot", &new, &mut memory));
        // Not a hash, or one asking for 128 MiB: refused, nothing allocated.
        assert!(!super::verify_password_in(
            "x",
            "pas un hachage",
            &mut memory
        ));
        let greedy = new.replace("m=19456", "m=131072");
        assert!(!super::verify_password_in(
            "nouveau mot",
            &greedy,
            &mut memory
        ));
        assert_eq!(
            memory.0.len(),
            19 * 1024,
            "one default-sized buffer, reused"
        );
    }

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
