//! Talking to the server: blocking HTTPS (`ureq` + rustls with the ring
//! provider) trusting only the CA pinned at enrolment.
//!
//! The daemon sees the network only through the [`Transport`] trait, so tests
//! can cut the link (a wrapper that fails while "the server is down") and
//! simulate a week of outage in seconds. Every call here blocks: the daemon
//! runs them on tokio's blocking pool, never on its async threads.
//!
//! Pinning the CA at enrolment: with `--ca-file`, the file is the trust
//! anchor. With `--ca-fingerprint`, [`fetch_pinned_ca`] opens one TLS
//! connection whose verifier looks, in the chain the server presents, for
//! the certificate whose SHA-256 (of its DER) is the fingerprint, and then
//! verifies the server certificate against that CA alone; only then is the CA
//! saved and used for every later call.
//!
//! Every body read from the server is bounded, counted after decompression
//! (ureq's limit applies to the decoded bytes, so a gzip bomb stops at the
//! limit): check-in and enrolment replies at
//! [`nird_proto::api::MAX_REPLY_BYTES`], downloads at the size the caller
//! gives (a blob's pinned size).

use std::io::Read as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nird_proto::api::{
    API_PREFIX, ApiError, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    MAX_REPLY_BYTES,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::ServerUrl;

/// Time allowed to open a TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Time allowed for a whole request (a big blob on a slow school link).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Request bodies larger than this travel gzip-compressed
/// (`Content-Encoding: gzip`): full inventories and package deltas. A
/// heartbeat (≈ 300 B) stays plain: compressing it would save nothing.
pub const GZIP_THRESHOLD_BYTES: usize = 1024;

/// `bytes` gzip-compressed at level 6 (≈ 1 ms and 10:1 for a 130 KB
/// inventory); `None` if the encoder fails, then the body goes plain.
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::new(6),
    );
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// Largest body the agent reads from the server (a profile's pinned files
/// are size-limited by the profile schema far below this).
pub const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer: DNS, refused connection, timeout, reset. Retried with
    /// backoff.
    #[error("le serveur {server} est injoignable : {detail}")]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// What the network layer said (English).
        detail: String,
    },
    /// The TLS handshake failed: the server's certificate is not signed by
    /// the pinned CA (or the pin is wrong).
    #[error(
        "le certificat présenté par {server} n'est pas signé par l'autorité épinglée ({detail})"
    )]
    Tls {
        /// The server's base URL.
        server: String,
        /// What rustls said.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("le serveur a refusé la requête (HTTP {status}) : {}", .error.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error body (code + French sentence).
        error: ApiError,
    },
    /// The server's answer does not follow the protocol.
    #[error("réponse inattendue du serveur : {0}")]
    Protocol(String),
}

impl TransportError {
    /// True when the server was not reached or is overloaded / failing:
    /// worth retrying with backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Unreachable { .. } => true,
            TransportError::Api { status, .. } => *status == 503 || *status >= 500,
            TransportError::Tls { .. } | TransportError::Protocol(_) => false,
        }
    }
}

/// What the daemon needs from the server. Implemented over HTTPS by
/// [`HttpsTransport`]; tests wrap it to inject outages.
pub trait Transport: Send + Sync {
    /// `POST /api/v1/checkin`.
    fn checkin(&self, request: &CheckinRequest) -> Result<CheckinResponse, TransportError>;
    /// `GET /api/v1{path}` with the machine credential; the raw body, at
    /// most `max_bytes` (more is a [`TransportError::Protocol`] error).
    fn fetch(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, TransportError>;
}

/// HTTPS to one server, trusting only the pinned CA.
#[derive(Clone)]
pub struct HttpsTransport {
    /// The configured ureq agent (pinned roots, timeouts, no redirects).
    agent: ureq::Agent,
    /// `https://host:port`.
    base: String,
    /// `Bearer <machine_id>.<secret>`, absent for enrolment. Never logged.
    authorization: Option<String>,
    /// Set once this server refused a gzip-compressed body that it then
    /// accepted uncompressed (an older server): bodies stay plain.
    plain_bodies: Arc<AtomicBool>,
}

impl std::fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential stays out of debug output.
        f.debug_struct("HttpsTransport")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpsTransport {
    /// A transport to `server` trusting the CA certificate(s) in `ca_pem`,
    /// authenticating with `authorization` (an `Authorization` header value).
    pub fn new(
        server: &ServerUrl,
        ca_pem: &[u8],
        authorization: Option<String>,
    ) -> Result<Self, TransportError> {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(ca_pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| {
                TransportError::Protocol(format!("certificat d'autorité illisible : {e}"))
            })?;
        if certs.is_empty() {
            return Err(TransportError::Protocol(
                "le fichier d'autorité ne contient aucun certificat".into(),
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            // Keep a connection for the follow-up calls of one cycle (the
            // reports after an apply, releases and blobs), not across the
            // 15 minutes between check-ins, when the server has closed it.
            .max_idle_age(Duration::from_secs(20))
            .user_agent(concat!("nird-agent/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(HttpsTransport {
            agent: config.into(),
            base: server.base.clone(),
            authorization,
            plain_bodies: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/enroll` (authenticated by the token in the body).
    pub fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, TransportError> {
        self.post_json("/enroll", request)
    }

    /// The server's clock from the `Date` header of any reply (second
    /// precision), or `None` if the server sends none.
    pub fn server_date(&self) -> Result<Option<time::OffsetDateTime>, TransportError> {
        let url = format!("{}{API_PREFIX}/openapi.json", self.base);
        let response = self.agent.get(&url).call().map_err(|e| self.map_err(e))?;
        Ok(response
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date))
    }

    fn post_json<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
    ) -> Result<Resp, TransportError> {
        let url = format!("{}{API_PREFIX}{path}", self.base);
        let body = serde_json::to_vec(body)
            .map_err(|e| TransportError::Protocol(format!("sérialisation : {e}")))?;
        let compressed = (body.len() > GZIP_THRESHOLD_BYTES
            && !self.plain_bodies.load(Ordering::Relaxed))
        .then(|| gzip(&body))
        .flatten();
        let send = |bytes: &[u8], encoding: Option<&str>| {
            let mut request = self
                .agent
                .post(&url)
                .header("content-type", "application/json");
            if let Some(encoding) = encoding {
                request = request.header("content-encoding", encoding);
            }
            if let Some(auth) = &self.authorization {
                request = request.header("authorization", auth);
            }
            let response = request.send(bytes).map_err(|e| self.map_err(e))?;
            self.read_body(response, MAX_REPLY_BYTES)
        };
        let bytes = match compressed {
            Some(gz) => match send(&gz, Some("gzip")) {
                // A server older than compressed bodies reads gzip as bad
                // JSON (400) or refuses the encoding (415): say it plainly,
                // and keep to plain bodies with this server.
                Err(TransportError::Api { status, .. }) if status == 400 || status == 415 => {
                    tracing::warn!(status, "compressed body refused; sending it uncompressed");
                    let plain = send(&body, None);
                    if plain.is_ok() {
                        self.plain_bodies.store(true, Ordering::Relaxed);
                    }
                    plain?
                }
                other => other?,
            },
            None => send(&body, None)?,
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| TransportError::Protocol(format!("{path} : JSON invalide ({e})")))
    }

    fn read_body(
        &self,
        mut response: ureq::http::Response<ureq::Body>,
        max_bytes: u64,
    ) -> Result<Vec<u8>, TransportError> {
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(max_bytes.min(MAX_RESPONSE_BYTES))
            .read_to_vec()
            .map_err(|e| self.map_err(e))?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let error = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| ApiError {
            error: format!("http_{status}"),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        Err(TransportError::Api { status, error })
    }

    fn map_err(&self, e: ureq::Error) -> TransportError {
        let server = self.base.clone();
        match e {
            ureq::Error::Rustls(e) => TransportError::Tls {
                server,
                detail: e.to_string(),
            },
            ureq::Error::Tls(e) => TransportError::Tls {
                server,
                detail: e.to_string(),
            },
            ureq::Error::Io(ref io) if tls_cause(io).is_some() => TransportError::Tls {
                server,
                detail: tls_cause(io).unwrap_or_default(),
            },
            ureq::Error::BodyExceedsLimit(limit) => TransportError::Protocol(format!(
                "réponse de plus de {limit} octets (une fois décompressée) : refusée"
            )),
            ureq::Error::Protocol(_) | ureq::Error::Json(_) => {
                TransportError::Protocol(e.to_string())
            }
            other => TransportError::Unreachable {
                server,
                detail: other.to_string(),
            },
        }
    }
}

/// rustls errors sometimes arrive wrapped in an `io::Error`.
fn tls_cause(io: &std::io::Error) -> Option<String> {
    io.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|e| e.to_string())
}

impl Transport for HttpsTransport {
    fn checkin(&self, request: &CheckinRequest) -> Result<CheckinResponse, TransportError> {
        self.post_json("/checkin", request)
    }

    fn fetch(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, TransportError> {
        let url = format!("{}{API_PREFIX}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(auth) = &self.authorization {
            request = request.header("authorization", auth);
        }
        let response = request.call().map_err(|e| self.map_err(e))?;
        self.read_body(response, max_bytes)
    }
}

/// Parses an IMF-fixdate (`Mon, 23 Nov 2026 11:03:52 GMT`), the only form
/// servers must send.
pub fn parse_http_date(s: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), &format)
        .ok()
        .map(|t| t.assume_utc())
}

/// Normalises a CA fingerprint as people type it: with or without colons or
/// spaces, any case, optional `sha256:` prefix. `None` unless 64 hex digits.
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .unwrap_or(s);
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    nird_proto::hash::is_sha256_hex(&hex).then_some(hex)
}

/// Why the CA could not be pinned from a fingerprint.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The server could not be reached.
    #[error("le serveur {server} est injoignable : {detail}")]
    Unreachable {
        /// `host:port`.
        server: String,
        /// The system error (English).
        detail: String,
    },
    /// No certificate of the presented chain has the expected fingerprint.
    #[error(
        "l'empreinte de l'autorité de certification du serveur ne correspond pas : attendu {expected}, le serveur présente {presented} ; vérifiez l'empreinte affichée par « nird-server init »"
    )]
    Mismatch {
        /// The fingerprint given.
        expected: String,
        /// Fingerprints of the certificates the server presented.
        presented: String,
    },
    /// The pinned CA is there but the server certificate does not verify
    /// against it (wrong host name, expired...).
    #[error("le certificat du serveur {server} est invalide : {detail}")]
    Invalid {
        /// `host:port`.
        server: String,
        /// What rustls said.
        detail: String,
    },
}

/// A verifier that finds the CA by fingerprint in the presented chain, then
/// verifies the chain against that CA only.
#[derive(Debug)]
struct FingerprintVerifier {
    /// Lowercase hex SHA-256 of the CA's DER.
    expected: String,
    /// The ring provider.
    provider: Arc<CryptoProvider>,
    /// The CA found (or the fingerprints seen when none matched).
    outcome: Mutex<Option<Result<CertificateDer<'static>, Vec<String>>>>,
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<&CertificateDer<'_>> =
            std::iter::once(end_entity).chain(intermediates).collect();
        let seen: Vec<String> = chain
            .iter()
            .map(|c| nird_proto::hash::sha256_hex(c))
            .collect();
        let Some(pos) = seen.iter().position(|f| *f == self.expected) else {
            if let Ok(mut o) = self.outcome.lock() {
                *o = Some(Err(seen));
            }
            return Err(rustls::Error::General("CA fingerprint mismatch".into()));
        };
        let ca = chain[pos].clone().into_owned();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Ok(mut o) = self.outcome.lock() {
            *o = Some(Ok(ca));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects once to `server`, finds the CA whose SHA-256 is `fingerprint`
/// (normalised, see [`normalize_fingerprint`]) in the chain it presents,
/// verifies the server certificate against it, and returns that CA as PEM.
pub fn fetch_pinned_ca(server: &ServerUrl, fingerprint: &str) -> Result<String, PinError> {
    let shown = format!("{}:{}", server.host, server.port);
    let unreachable = |detail: String| PinError::Unreachable {
        server: shown.clone(),
        detail,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(FingerprintVerifier {
        expected: fingerprint.to_owned(),
        provider: provider.clone(),
        outcome: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreachable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(server.host.clone())
        .map_err(|e| unreachable(format!("invalid host name: {e}")))?;
    let addr = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address for host".into()))?;
    let mut sock = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| unreachable(e.to_string()))?;
    sock.set_read_timeout(Some(CONNECT_TIMEOUT))
        .and_then(|()| sock.set_write_timeout(Some(CONNECT_TIMEOUT)))
        .map_err(|e| unreachable(e.to_string()))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| unreachable(e.to_string()))?;
    let mut handshake_error = None;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            handshake_error = Some(e);
            break;
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let mut sink = [0u8; 1];
    let _ = conn.reader().read(&mut sink);
    let outcome = verifier.outcome.lock().ok().and_then(|mut o| o.take());
    match (outcome, handshake_error) {
        (Some(Ok(ca)), None) => Ok(to_pem(&ca)),
        (Some(Err(seen)), _) => Err(PinError::Mismatch {
            expected: fingerprint.to_owned(),
            presented: seen.join(", "),
        }),
        (Some(Ok(_)), Some(e)) | (None, Some(e)) if tls_cause(&e).is_some() => {
            Err(PinError::Invalid {
                server: shown,
                detail: tls_cause(&e).unwrap_or_default(),
            })
        }
        (_, Some(e)) => Err(unreachable(e.to_string())),
        (None, None) => Err(unreachable("handshake ended without a certificate".into())),
    }
}

/// The first certificate of a PEM text, with its fingerprint.
pub fn first_certificate(pem: &[u8]) -> Option<(CertificateDer<'static>, String)> {
    let cert = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let fp = nird_proto::hash::sha256_hex(&cert);
    Some((cert, fp))
}

/// PEM encoding of one certificate.
pub fn to_pem(cert: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalised() {
        let hex = "ab".repeat(32);
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(normalize_fingerprint(&hex).as_deref(), Some(hex.as_str()));
        assert_eq!(
            normalize_fingerprint(&colons).as_deref(),
            Some(hex.as_str())
        );
        assert_eq!(
            normalize_fingerprint(&format!("SHA256:{colons}")).as_deref(),
            Some(hex.as_str())
        );
        assert_eq!(normalize_fingerprint("abcd"), None);
        assert_eq!(normalize_fingerprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Mon, 23 Nov 2026 11:03:52 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_431_832);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn pem_roundtrip() {
        let der = CertificateDer::from(vec![1u8, 2, 3, 250]);
        let pem = to_pem(&der);
        let (back, fp) = first_certificate(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_ref());
        assert_eq!(fp, nird_proto::hash::sha256_hex(&[1, 2, 3, 250]));
    }
}
