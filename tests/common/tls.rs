//! Certificates made at run time (a CA and a server certificate it signs, for `localhost` and
//! 127.0.0.1), and TLS clients that trust that CA: HTTP/1.1 and HTTP/2 chosen by ALPN, and
//! WebSocket over TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{HttpResponse, WAIT, WsClient, parse_response};

/// A CA, a server certificate it signed and the server's key, as PEM files in a folder of
/// their own (removed on drop); and a second key that goes with neither.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub other_key: PathBuf,
    pub ca_pem: Vec<u8>,
}

impl Certs {
    pub fn make() -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("certificate folder");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pubsub test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let other_key = KeyPair::generate().expect("another key");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        Certs {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            other_key: write("other-key.pem", other_key.serialize_pem()),
            ca_pem: ca_cert.pem().into_bytes(),
            dir,
        }
    }

    /// `--tls-cert CERT --tls-key KEY` (as owned strings).
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            self.cert.display().to_string(),
            "--tls-key".to_owned(),
            self.key.display().to_string(),
        ]
    }

    /// A client configuration trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A TLS connection to `addr` (as `localhost`) offering `alpn`.
    pub async fn connect(&self, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        self.try_connect(addr, alpn).await.expect("TLS handshake")
    }

    pub async fn try_connect(
        &self,
        addr: SocketAddr,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        let handshake = TlsConnector::from(self.client_config(alpn)).connect(name, tcp);
        tokio::time::timeout(WAIT, handshake)
            .await
            .map_err(|_| std::io::Error::other("no TLS handshake within the wait"))?
    }

    /// One HTTP/1.1 request over TLS (`Connection: close`), its response read to the end.
    pub async fn https_request(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut tls = self.connect(addr, &[b"http/1.1"]).await;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            addr.port(),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tls.write_all(head.as_bytes()).await.expect("send head");
        tls.write_all(body).await.expect("send body");
        let mut raw = Vec::new();
        // A TLS peer that closes without close_notify is an error after the data: keep what came.
        let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut raw))
            .await
            .expect("a response within the wait");
        parse_response(&raw)
    }

    /// A WebSocket client over TLS (`wss://localhost:PORT/ws`).
    pub async fn wss(&self, addr: SocketAddr) -> WsClient {
        let url = format!("wss://localhost:{}/ws", addr.port());
        let connector = tokio_tungstenite::Connector::Rustls(self.client_config(&[b"http/1.1"]));
        let (ws, response) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
                .await
                .expect("wss connect");
        assert_eq!(response.status(), 101);
        WsClient { ws }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
