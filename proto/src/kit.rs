//! The enrolment kit: one small TOML file that holds everything a PC needs
//! to join the fleet — the server's address, its CA certificate (pinned),
//! an enrolment token with its limits, and the maintainers' keyring as the
//! server held it when the kit was made (so agents do not trust the server
//! on first use). `nird-server kit create` writes it (mode 0600),
//! `nird-agent enroll --kit FILE` reads it.
//!
//! The kit is a secret while its token is valid: anyone holding it can
//! enrol machines into the school. The token is an ordinary enrolment
//! token (revocable, limited in uses and time); the limits are copied here
//! only to give a clear sentence before contacting the server.
//!
//! Pure: [`EnrolmentKit::render`] and [`EnrolmentKit::parse`], no I/O, no
//! clock (time is a parameter).

use serde::{Deserialize, Serialize};

use crate::uai::Uai;

/// Version of the kit format written in `format`.
pub const KIT_FORMAT: u32 = 1;

/// Largest kit file read (a CA certificate and a keyring fit in a few KiB).
pub const MAX_KIT_BYTES: usize = 256 * 1024;

/// A signed keyring carried by a kit: the document exactly as signed and its
/// signature bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitKeyring {
    /// `keyring.toml`, byte for byte.
    pub document: String,
    /// Its minisign signature(s).
    pub signature: String,
}

/// An enrolment kit.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentKit {
    /// [`KIT_FORMAT`].
    pub format: u32,
    /// The server's address agents use, `https://HOST:PORT`.
    pub server: String,
    /// The school machines enrolled with this kit join (UAI).
    pub school: String,
    /// The enrolment token (secret).
    pub token: String,
    /// How many machines the token may enrol.
    pub max_uses: u32,
    /// When the token stops being accepted (none: never).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<time::OffsetDateTime>,
    /// When the kit was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created: time::OffsetDateTime,
    /// The server's CA certificate (PEM), pinned by the agent.
    pub ca_certificate: String,
    /// The keyring the server held when the kit was made, if any.
    #[serde(default)]
    pub keyring: Option<KitKeyring>,
}

impl std::fmt::Debug for EnrolmentKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentKit")
            .field("server", &self.server)
            .field("school", &self.school)
            .field("token", &"<hidden>")
            .field("max_uses", &self.max_uses)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why a kit file is refused. Each message is one French sentence (the
/// caller names the file).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KitError {
    /// Larger than [`MAX_KIT_BYTES`].
    #[error("ce fichier est trop gros pour être un kit d'inscription")]
    TooLarge,
    /// Not UTF-8 or not TOML of the right shape.
    #[error(
        "ce n'est pas un kit d'inscription valide (ligne {line} : {detail}) ; recopiez le fichier donné par l'administrateur"
    )]
    Invalid {
        /// 1-based line.
        line: usize,
        /// What is wrong (French).
        detail: String,
    },
    /// A newer format than this agent knows.
    #[error(
        "ce kit est au format {0}, plus récent que cet agent (format {KIT_FORMAT}) : mettez nird-agent à jour"
    )]
    Format(u32),
    /// A field holds something unusable.
    #[error(
        "ce kit d'inscription est abîmé : {0} ; recopiez le fichier donné par l'administrateur"
    )]
    Field(&'static str),
}

/// The warning written at the top of every kit (French, for whoever finds
/// the USB stick).
const WARNING: &str = "\
# KIT D'INSCRIPTION nird-fleet — DOCUMENT SECRET tant qu'il est valable.
#
# Toute personne qui possède ce fichier peut inscrire des machines dans
# l'établissement ci-dessous. Gardez-le sur une clé USB que vous ne prêtez
# pas, ne l'envoyez pas par courriel, et effacez-le une fois les PC inscrits.
# En cas de perte, révoquez son jeton : « nird-server token list » puis
# « nird-server token revoke NUMÉRO ».
#
# Sur chaque PC (en root) : nird-agent enroll --kit CE_FICHIER
";

impl EnrolmentKit {
    /// The kit file's text: the French warning, a summary of the limits in
    /// comments, then the TOML document.
    pub fn render(&self) -> String {
        let when = |t: Option<time::OffsetDateTime>| match t {
            Some(t) => t
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .unwrap_or_default(),
            None => "jamais".into(),
        };
        let mut out = String::from(WARNING);
        out.push_str(&format!(
            "#\n# Établissement : {}\n# Serveur : {}\n# Machines permises : {}\n# Expire : {}\n",
            self.school,
            self.server,
            self.max_uses,
            when(self.expires.map(|t| t.to_offset(time::UtcOffset::UTC)))
        ));
        match &self.keyring {
            Some(_) => out.push_str(
                "# Trousseau des mainteneurs inclus : les PC n'ont rien d'autre à croire.\n",
            ),
            None => out.push_str(
                "# Aucun trousseau inclus (le serveur n'en avait pas) : les PC prendront celui\n\
                 # du serveur à l'inscription (confiance à la première utilisation).\n",
            ),
        }
        out.push('\n');
        // Serialising plain strings, integers and tables cannot fail.
        out.push_str(&toml::to_string(self).unwrap_or_default());
        out
    }

    /// Parses and checks a kit file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, KitError> {
        if bytes.len() > MAX_KIT_BYTES {
            return Err(KitError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| KitError::Invalid {
            line: line_of(bytes, e.valid_up_to()),
            detail: "caractères illisibles (pas de l'UTF-8)".into(),
        })?;
        let kit: EnrolmentKit = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            KitError::Invalid {
                line: line_of(text.as_bytes(), offset),
                detail: crate::toml_fr::french(e.message()),
            }
        })?;
        if kit.format != KIT_FORMAT {
            return Err(KitError::Format(kit.format));
        }
        kit.check()?;
        Ok(kit)
    }

    /// Checks every field's shape (the keyring's signatures are checked by
    /// whoever installs it).
    pub fn check(&self) -> Result<(), KitError> {
        let host = self.server.strip_prefix("https://").ok_or(KitError::Field(
            "l'adresse du serveur ne commence pas par https://",
        ))?;
        if host.is_empty()
            || self.server.len() > 512
            || self
                .server
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(KitError::Field("l'adresse du serveur est invalide"));
        }
        Uai::parse(&self.school).map_err(|_| KitError::Field("le code UAI est invalide"))?;
        if self.token.is_empty()
            || self.token.len() > 256
            || !self
                .token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(KitError::Field("le jeton est invalide"));
        }
        if self.max_uses == 0 {
            return Err(KitError::Field("le nombre de machines permises est nul"));
        }
        if !self.ca_certificate.contains("-----BEGIN CERTIFICATE-----") {
            return Err(KitError::Field("le certificat du serveur manque"));
        }
        if let Some(k) = &self.keyring
            && (k.document.is_empty() || k.signature.is_empty())
        {
            return Err(KitError::Field("le trousseau de clés est incomplet"));
        }
        Ok(())
    }

    /// True when the token's expiry has passed at `now`.
    pub fn is_expired_at(&self, now: time::OffsetDateTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// 1-based line of a byte offset.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit() -> EnrolmentKit {
        EnrolmentKit {
            format: KIT_FORMAT,
            server: "https://nird.example.org:8443".into(),
            school: "0620056Z".into(),
            token: "AbC-123_xyz".into(),
            max_uses: 30,
            expires: Some(time::macros::datetime!(2026-12-09 07:00 UTC)),
            created: time::macros::datetime!(2026-12-02 07:00 UTC),
            ca_certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            keyring: Some(KitKeyring {
                document: "version = 1\n\"quoted\" = \"\"\"x\"\"\"\n".into(),
                signature: "untrusted comment: x\nRWQ\n".into(),
            }),
        }
    }

    #[test]
    fn a_kit_renders_with_its_warning_and_parses_back() {
        let k = kit();
        let text = k.render();
        assert!(text.starts_with("# KIT D'INSCRIPTION"), "{text}");
        assert!(text.contains("SECRET"), "{text}");
        assert!(text.contains("Expire : 2026-12-09 07:00 UTC"), "{text}");
        assert_eq!(EnrolmentKit::parse(text.as_bytes()).unwrap(), k);
        assert!(!format!("{k:?}").contains("AbC-123"));
        let none = EnrolmentKit {
            keyring: None,
            expires: None,
            ..kit()
        };
        assert_eq!(EnrolmentKit::parse(none.render().as_bytes()).unwrap(), none);
    }

    #[test]
    fn damaged_kits_are_refused_in_one_french_sentence() {
        let text = kit().render();
        for (bad, needle) in [
            (text.replace("https://", "http://"), "https://"),
            (text.replace("0620056Z", "0620056A"), "UAI"),
            (text.replace("AbC-123_xyz", "a b"), "jeton"),
            (text.replace("format = 1", "format = 2"), "plus récent"),
            (text.replace("max_uses = 30", "max_uses = \"30\""), "ligne"),
            (text.replace("BEGIN CERTIFICATE", "BEGIN X"), "certificat"),
            (format!("{text}\nextra = 1\n"), "inconnue"),
            ("pas du toml [".to_owned(), "kit d'inscription valide"),
        ] {
            let err = EnrolmentKit::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "« {err} » lacks « {needle} »");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        assert_eq!(
            EnrolmentKit::parse(&vec![b'#'; MAX_KIT_BYTES + 1]),
            Err(KitError::TooLarge)
        );
    }

    #[test]
    fn expiry_is_a_parameter() {
        let k = kit();
        assert!(!k.is_expired_at(time::macros::datetime!(2026-12-09 06:59 UTC)));
        assert!(k.is_expired_at(time::macros::datetime!(2026-12-09 07:00 UTC)));
    }
}
