//! The authentication flags, shared by the server and `pubsub token` (which signs with the
//! same secret the server verifies with).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::auth::{Auth, KeySource, Verifier, VerifierConfig};

/// A secret given on the command line or in the environment; never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.is_empty() {
            true => Err("must not be empty".to_owned()),
            false => Ok(Secret(s.to_owned())),
        }
    }
}

/// Below this many bytes an HMAC secret can be guessed offline from one token.
const WEAK_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Args)]
pub struct AuthFlags {
    /// Require tokens (JWT, HS256/HS384/HS512) signed with this shared secret. Without any
    /// --auth-* key the server is open to everyone.
    #[arg(long, env = "PUBSUB_AUTH_HMAC_SECRET", hide_env_values = true,
          conflicts_with_all = ["auth_hmac_secret_file", "auth_public_key"])]
    pub auth_hmac_secret: Option<Secret>,

    /// Like --auth-hmac-secret, the secret read from this file (a final newline is dropped).
    #[arg(
        long,
        env = "PUBSUB_AUTH_HMAC_SECRET_FILE",
        value_name = "FILE",
        conflicts_with = "auth_public_key"
    )]
    pub auth_hmac_secret_file: Option<PathBuf>,

    /// Require tokens signed with the private half of this PEM public key: RSA (RS256), EC
    /// P-256 (ES256) or Ed25519 (EdDSA), told apart by the key.
    #[arg(long, env = "PUBSUB_AUTH_PUBLIC_KEY", value_name = "FILE")]
    pub auth_public_key: Option<PathBuf>,

    /// With tokens: the issuer (`iss`) every token must name.
    #[arg(long, env = "PUBSUB_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// With tokens: the audience (`aud`) every token must name. Without it, a token naming
    /// any audience is refused.
    #[arg(long, env = "PUBSUB_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// Seconds of clock difference tolerated on a token's `exp` and `nbf`.
    #[arg(long, env = "PUBSUB_AUTH_LEEWAY", default_value = "5", value_parser = super::seconds)]
    pub auth_leeway: Duration,
}

impl AuthFlags {
    /// The HMAC secret, from the flag or its file; `None` when neither is given.
    pub fn hmac_secret(&self) -> Result<Option<Vec<u8>>, String> {
        if let Some(secret) = &self.auth_hmac_secret {
            return Ok(Some(secret.0.as_bytes().to_vec()));
        }
        let Some(path) = &self.auth_hmac_secret_file else {
            return Ok(None);
        };
        let mut secret = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read --auth-hmac-secret-file {}: {e}",
                path.display()
            )
        })?;
        while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            secret.pop();
        }
        if secret.is_empty() {
            return Err(format!(
                "--auth-hmac-secret-file {} is empty",
                path.display()
            ));
        }
        Ok(Some(secret))
    }

    /// The verifier these flags describe; `None` when no key is given (the server is open).
    pub fn verifier(&self) -> Result<Option<Verifier>, String> {
        let key = match (self.hmac_secret()?, &self.auth_public_key) {
            (Some(secret), _) => {
                if secret.len() < WEAK_SECRET_BYTES {
                    tracing::warn!(
                        "the HMAC secret has {} bytes; use at least {WEAK_SECRET_BYTES} random \
                         bytes, or tokens can be forged by guessing it",
                        secret.len()
                    );
                }
                KeySource::HmacSecret(secret)
            }
            (None, Some(path)) => {
                KeySource::PublicKeyPem(std::fs::read(path).map_err(|e| {
                    format!("cannot read --auth-public-key {}: {e}", path.display())
                })?)
            }
            (None, None) => {
                if self.auth_issuer.is_some() || self.auth_audience.is_some() {
                    return Err("--auth-issuer and --auth-audience need a key: \
                                --auth-hmac-secret, --auth-hmac-secret-file or --auth-public-key"
                        .to_owned());
                }
                return Ok(None);
            }
        };
        Verifier::new(&VerifierConfig {
            key,
            issuer: self.auth_issuer.clone(),
            audience: self.auth_audience.clone(),
            leeway: self.auth_leeway,
        })
        .map(Some)
    }

    /// The server's authentication: tokens required when a key is given.
    pub fn auth(&self, public_metrics: bool) -> Result<Auth, String> {
        Ok(match self.verifier()? {
            Some(verifier) => Auth::required(verifier, public_metrics),
            None => Auth::open(),
        })
    }
}
