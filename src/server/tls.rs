//! HTTPS and WSS: the server's certificate and key from PEM files, and each accepted socket's
//! TLS handshake, bounded in time and run on the connection's own task so that a slow or
//! hostile peer never holds up the accept loop.

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::http::Connections;

/// Protocols offered in ALPN, preferred first: HTTP/2 for REST, HTTP/1.1 for everything else
/// (WebSocket handshakes among them).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How often at most a failed handshake is logged; the failures in between are counted and
/// reported with the next line, so a port scanner cannot flood the log.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The server's TLS side: the acceptor, and the bound on one handshake.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    failures: Arc<FailureLog>,
}

impl Tls {
    /// TLS with the certificate chain in `cert` and its private key in `key` (both PEM).
    /// Errors are one line each, naming the flag and the file.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        handshake_timeout: Duration,
    ) -> Result<Self, String> {
        let config = server_config(cert, key)?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshake_timeout,
            failures: Arc::default(),
        })
    }

    /// Runs the handshake on `io`, within the handshake timeout. A failure (a client speaking
    /// plain HTTP to this port, garbage, a client that stalls) is counted in `connections` and
    /// logged at most every [`LOG_EVERY`]; the socket is then dropped (closed).
    pub async fn accept<IO>(&self, io: IO, connections: &Connections) -> Option<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let why = match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(io)).await
        {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no handshake within {:?}", self.handshake_timeout),
        };
        connections.tls_handshake_failed();
        self.failures.record(&why);
        None
    }
}

/// The rustls configuration: the ring provider (no process-wide default needed), TLS 1.2 and
/// 1.3, no client certificates, ALPN for HTTP/2 and HTTP/1.1.
fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let cert_pem = read("--tls-cert", cert)?;
    let key_pem = read("--tls-key", key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "--tls-cert {}: not a PEM certificate file ({e})",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            cert.display()
        ));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "--tls-key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it ({e})",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            format!(
                "--tls-key {} does not go with the certificate in --tls-cert {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))
}

/// Failed handshakes not yet logged, and when the last line was written.
#[derive(Default)]
struct FailureLog(Mutex<(u64, Option<Instant>)>);

impl FailureLog {
    fn record(&self, why: &str) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (unlogged, last) = &mut *state;
        *unlogged += 1;
        if last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            failures = *unlogged,
            "TLS handshake failed, connection closed: {why} (failures counts those since the last \
             such line)"
        );
        *unlogged = 0;
        *last = Some(Instant::now());
    }
}
