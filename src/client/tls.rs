//! TLS for `https://` and `wss://` URLs: which certificates the client trusts.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use super::Error;

/// A client TLS configuration: trusted certificates, and ALPN `http/1.1` (both the WebSocket
/// handshake and the REST calls speak HTTP/1.1).
pub type TlsConfig = Arc<ClientConfig>;

/// The system's trusted certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured), read
/// once per process.
pub fn system() -> Result<TlsConfig, Error> {
    static SYSTEM: OnceLock<Result<TlsConfig, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| config(RootCertStore::empty()))
        .clone()
        .map_err(Error::Connect)
}

/// The system's trusted certificates and those in `pem` (a private CA's, or a self-signed
/// server's).
pub fn trusting(pem: &[u8]) -> Result<TlsConfig, Error> {
    let invalid = |why: String| Error::InvalidUrl(format!("the certificates to trust: {why}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| invalid(e.to_string()))?;
        roots.add(cert).map_err(|e| invalid(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(invalid("no PEM certificate in them".to_owned()));
    }
    config(roots).map_err(Error::Connect)
}

fn config(mut roots: RootCertStore) -> Result<TlsConfig, String> {
    // Unreadable system certificates are skipped: the ones that load (or `pem`'s) still work,
    // and a server none of them vouch for fails its handshake with a clear error.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
