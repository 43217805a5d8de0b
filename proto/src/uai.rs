//! UAI codes (Unité Administrative Immatriculée): the national identifier of
//! every French school. Format: 3-digit département code, 4 digits, then a
//! check letter equal to `ABCDEFGHJKLMNPRSTUVWXYZ[n mod 23]` where `n` is the
//! first seven characters read as a number.
//!
//! Corsica uses `2A`/`2B` in place of the département digits elsewhere, but
//! UAI codes still use `620` / `720` there, so the first seven characters are
//! always digits.

use std::fmt;
use std::str::FromStr;

/// The 23 letters a check letter can take (I, O, Q are left out: they look
/// like digits).
const CHECK_LETTERS: &[u8; 23] = b"ABCDEFGHJKLMNPRSTUVWXYZ";

/// A validated UAI code, stored in canonical (uppercase) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uai(String);

/// Why a string is not a UAI code. Messages are in French: they reach the
/// school IT staff typing the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UaiError {
    #[error(
        "le code UAI « {0} » doit comporter 8 caractères (7 chiffres puis une lettre), par ex. 0620056Z"
    )]
    Length(String),
    #[error("le code UAI « {0} » doit commencer par 7 chiffres")]
    NotDigits(String),
    #[error("le code UAI « {input} » a une lettre de contrôle incorrecte : attendu « {expected} »")]
    CheckLetter { input: String, expected: char },
}

impl Uai {
    /// Parses a UAI code, case-insensitively, surrounding blanks ignored.
    pub fn parse(input: &str) -> Result<Self, UaiError> {
        let trimmed = input.trim();
        let upper = trimmed.to_ascii_uppercase();
        if upper.len() != 8 || !upper.is_ascii() {
            return Err(UaiError::Length(trimmed.to_owned()));
        }
        let (digits, letter) = upper.split_at(7);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UaiError::NotDigits(trimmed.to_owned()));
        }
        let expected = check_letter(digits);
        if letter.as_bytes()[0] != expected as u8 {
            return Err(UaiError::CheckLetter {
                input: trimmed.to_owned(),
                expected,
            });
        }
        Ok(Uai(upper))
    }

    /// The canonical uppercase code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The département part as written in the code (e.g. `062`).
    pub fn departement(&self) -> &str {
        &self.0[..3]
    }
}

/// The check letter of seven ASCII digits.
fn check_letter(digits: &str) -> char {
    // Seven digits fit easily in a u32 (< 10^7).
    let n = digits
        .bytes()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    CHECK_LETTERS[(n % 23) as usize] as char
}

impl FromStr for Uai {
    type Err = UaiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uai::parse(s)
    }
}

impl fmt::Display for Uai {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Uai {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Uai {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Uai::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<&str, UaiError>) {
        assert_eq!(Uai::parse(input).map(|u| u.0), expect.map(str::to_owned));
    }

    #[test]
    fn valid_codes() {
        check("0620056Z", Ok("0620056Z"));
        check("0620056z", Ok("0620056Z"));
        check("  0670001m ", Ok("0670001M"));
        // 0750001 mod 23 = 17 -> the 18th letter, U
        check("0750001U", Ok("0750001U"));
    }

    #[test]
    fn wrong_check_letter_names_the_right_one() {
        check(
            "0670001A",
            Err(UaiError::CheckLetter {
                input: "0670001A".into(),
                expected: 'M',
            }),
        );
    }

    #[test]
    fn malformed_codes() {
        check("", Err(UaiError::Length(String::new())));
        check("062005Z", Err(UaiError::Length("062005Z".into())));
        check("06200567Z", Err(UaiError::Length("06200567Z".into())));
        check("06A0056Z", Err(UaiError::NotDigits("06A0056Z".into())));
        check("0620056é", Err(UaiError::Length("0620056é".into())));
    }

    #[test]
    fn departement_and_serde_roundtrip() {
        let uai = Uai::parse("0620056Z").unwrap();
        assert_eq!(uai.departement(), "062");
        let json = serde_json::to_string(&uai).unwrap();
        assert_eq!(json, "\"0620056Z\"");
        let back: Uai = serde_json::from_str(&json).unwrap();
        assert_eq!(back, uai);
        assert!(serde_json::from_str::<Uai>("\"0670001A\"").is_err());
    }
}
