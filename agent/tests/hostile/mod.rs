//! A compromised server, played for real: a small HTTPS/1.1 server on
//! `127.0.0.1` holding the real server's CA-signed certificate and key
//! (made by `nird-server init`, so the agent's pinned CA accepts it), whose
//! answers a test writes by hand — gzip bombs, oversized blobs, absurd
//! counters. One request per connection (`Connection: close`).

#![allow(dead_code)] // each test file uses a subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use nird_agent::config::ServerUrl;
use nird_agent::transport::HttpsTransport;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request as the hostile server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`.
    pub method: String,
    /// The path, e.g. `/api/v1/checkin`.
    pub path: String,
    /// The body (JSON for check-ins).
    pub body: Vec<u8>,
}

/// What the hostile server answers.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added).
    pub headers: Vec<(String, String)>,
    /// The bytes sent as the body, as is.
    pub body: Vec<u8>,
}

impl Response {
    /// `200` with a JSON body.
    pub fn json(value: &impl serde::Serialize) -> Self {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap(),
        }
    }
    /// `200` with raw bytes.
    pub fn bytes(body: Vec<u8>) -> Self {
        Response {
            status: 200,
            headers: vec![],
            body,
        }
    }
    /// `404` with the server's error shape.
    pub fn not_found() -> Self {
        Response {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"error":"not_found","message":"introuvable"}"#.to_vec(),
        }
    }
}

/// The server's TLS identity, from a fresh `nird-server init`.
pub struct Identity {
    /// Keeps the data directory alive.
    pub tmp: tempfile::TempDir,
    /// The CA the agent pins.
    pub ca_file: PathBuf,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = nird_server::data_dir::DataDir::new(tmp.path().join("data"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(nird_server::init::init(&nird_server::init::InitOptions {
            data_dir: data.clone(),
            hostnames: vec![],
            keyring: None,
            database: None,
        }))
        .unwrap();
        let certs = CertificateDer::pem_file_iter(data.server_cert())
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(data.server_key()).unwrap();
        Identity {
            ca_file: data.ca_cert(),
            tmp,
            certs,
            key,
        }
    }
}

/// The running hostile server.
pub struct HostileServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA to pin.
    pub ca_pem: Vec<u8>,
    /// Kept alive for the certificate files.
    _identity: Identity,
}

impl HostileServer {
    /// Starts serving with `handler` on a free port (the thread lives as long
    /// as the test process; it only ever accepts on its own port).
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let identity = Identity::new();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(tcp) = stream else { continue };
                let config = config.clone();
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let Some(request) = read_request(&mut tls) else {
                        return;
                    };
                    let response = handler(&request);
                    // The client may hang up early (a refused bomb): ignore.
                    let _ = write_response(&mut tls, &response);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        let ca_pem = std::fs::read(&identity.ca_file).unwrap();
        HostileServer {
            url,
            ca_pem,
            _identity: identity,
        }
    }

    /// The agent's real HTTPS transport to this server.
    pub fn transport(&self) -> HttpsTransport {
        HttpsTransport::new(
            &ServerUrl::parse(&self.url).unwrap(),
            &self.ca_pem,
            Some("Bearer m.s".into()),
        )
        .unwrap()
    }
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

fn write_response(stream: &mut impl Write, r: &Response) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\n", r.status);
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        r.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    for chunk in r.body.chunks(64 * 1024) {
        stream.write_all(chunk)?;
    }
    stream.flush()
}

/// `members` gzip members, each `member_bytes` of `fill` once inflated:
/// a small download that inflates to `members × member_bytes`.
pub fn gzip_members(prefix: &[u8], fill: u8, member_bytes: usize, members: usize) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let gz = |data: &[u8]| {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut out = gz(prefix);
    let member = gz(&vec![fill; member_bytes]);
    for _ in 0..members {
        out.extend_from_slice(&member);
    }
    out
}
