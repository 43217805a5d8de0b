//! Content hashes shared by agent and server.
//!
//! The agent sends its full inventory only when its hash changed, so both
//! sides must agree on one canonical encoding: JSON with object keys sorted
//! (serde_json's default `Map` is a `BTreeMap`), no insignificant whitespace,
//! hashed with SHA-256 and written as lowercase hex.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Canonical JSON encoding of a serialisable value: keys sorted at every
/// level, compact. Two values that are equal as JSON encode identically.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // Going through `Value` sorts every object's keys (BTreeMap-backed Map).
    let value = serde_json::to_value(value)?;
    serde_json::to_vec(&value)
}

/// `sha256:`-less hex digest of the canonical JSON encoding of `value`.
pub fn content_hash<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    Ok(sha256_hex(&canonical_json(value)?))
}

/// True if `s` looks like a lowercase hex SHA-256 digest (64 hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,2]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "a": {"x":[1,2],"y":2}, "b":1 }"#).unwrap();
        assert_eq!(content_hash(&a).unwrap(), content_hash(&b).unwrap());
        assert_eq!(
            canonical_json(&a).unwrap(),
            br#"{"a":{"x":[1,2],"y":2},"b":1}"#
        );
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&sha256_hex(b"")));
        assert!(!is_sha256_hex("ABC"));
    }
}
