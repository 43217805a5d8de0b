//! Certificates: the self-signed CA and server certificate `init` makes
//! (rcgen), and the rustls configuration `serve` loads (ring provider only).

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the parameters (e.g. an invalid host name).
    #[error("impossible de générer le certificat : {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file could not be read or holds nothing usable.
    #[error("impossible de lire {path} : {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A name given for the certificate is neither a DNS name nor an IP.
    #[error("« {0} » n'est ni un nom DNS ni une adresse IP")]
    BadName(String),
    /// rustls refused the certificate / key pair.
    #[error("configuration TLS refusée : {0}")]
    Rustls(#[from] rustls::Error),
}

/// The PEM texts `init` writes, and the CA fingerprint agents pin.
pub struct GeneratedPki {
    /// CA certificate.
    pub ca_cert_pem: String,
    /// CA private key.
    pub ca_key_pem: String,
    /// Server certificate followed by the CA certificate (full chain).
    pub server_chain_pem: String,
    /// Server private key.
    pub server_key_pem: String,
    /// Lowercase hex SHA-256 of the CA certificate (DER).
    pub ca_fingerprint: String,
}

/// Makes a CA valid ten years and a server certificate for `names` (DNS
/// names or IP addresses) valid two years, signed by it. ECDSA P-256.
pub fn generate(names: &[String]) -> Result<GeneratedPki, TlsError> {
    if let Some(bad) = names.iter().find(|n| !is_valid_name(n)) {
        return Err(TlsError::BadName(bad.clone()));
    }
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "nird-fleet CA");
    dn.push(DnType::OrganizationName, "nird-fleet");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names
            .first()
            .cloned()
            .unwrap_or_else(|| "nird-server".into()),
    );
    server.distinguished_name = dn;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(730);
    server.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(ca, &ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    Ok(GeneratedPki {
        ca_fingerprint: nird_proto::hash::sha256_hex(ca_cert.der()),
        server_chain_pem: format!("{}{}", server_cert.pem(), ca_cert.pem()),
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_key_pem: server_key.serialize_pem(),
    })
}

/// True for an IP address or a DNS name (labels of letters, digits and
/// inner hyphens, at most 253 characters).
pub fn is_valid_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |reason: String| TlsError::Pem {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("aucun certificat".into()));
    }
    Ok(certs)
}

/// Lowercase hex SHA-256 of the first certificate of a PEM file: what
/// agents pin (`nird-agent enroll --ca-fingerprint`).
pub fn fingerprint(path: &Path) -> Result<String, TlsError> {
    let certs = load_certs(path)?;
    Ok(nird_proto::hash::sha256_hex(&certs[0]))
}

/// The rustls server configuration for a certificate chain and key (PEM
/// files), HTTP/2 and HTTP/1.1 offered by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls client configuration trusting only the CA in `ca_pem` (for
/// tests and the load generator).
pub fn client_config(ca_cert: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_cert)? {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pki_loads_into_rustls_and_fingerprint_matches() {
        let pki = generate(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, ca) = (
            dir.path().join("s.crt"),
            dir.path().join("s.key"),
            dir.path().join("ca.crt"),
        );
        std::fs::write(&cert, &pki.server_chain_pem).unwrap();
        std::fs::write(&key, &pki.server_key_pem).unwrap();
        std::fs::write(&ca, &pki.ca_cert_pem).unwrap();
        server_config(&cert, &key).unwrap();
        client_config(&ca).unwrap();
        assert_eq!(fingerprint(&ca).unwrap(), pki.ca_fingerprint);
        assert_eq!(load_certs(&cert).unwrap().len(), 2);
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(generate(&["not a host name!".into()]).is_err());
        assert!(generate(&["-bad.example".into()]).is_err());
        assert!(is_valid_name("nird.ac-lille.fr"));
        assert!(is_valid_name("::1"));
        assert!(!is_valid_name("a..b"));
    }
}
