//! Verifying a JWT: signature with the configured key, only that key's algorithm family,
//! `exp` and `sub` required, `nbf`, issuer and audience checked, a small clock leeway.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use super::MAX_TOKEN_BYTES;
use super::claims::{Claims, Principal, Rights};
use super::refusals::Refusal;

/// Where the verifying key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A shared secret: HS256, HS384 or HS512.
    HmacSecret(Vec<u8>),
    /// A PEM public key: RSA (RS256 and the other RSA algorithms), EC P-256 (ES256) or
    /// Ed25519 (EdDSA), told apart by its contents.
    PublicKeyPem(Vec<u8>),
}

impl std::fmt::Debug for KeySource {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::HmacSecret(_) => f.write_str("HmacSecret([redacted])"),
            KeySource::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
        }
    }
}

/// Everything a verifier needs.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub key: KeySource,
    /// When set, `iss` must be present and equal.
    pub issuer: Option<String>,
    /// When set, `aud` must be present and name it. When not, a token with any `aud` is
    /// refused: it was meant for some other service.
    pub audience: Option<String>,
    /// Clock difference tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Checks tokens against one key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// The algorithms accepted, for messages and the start-up log.
    family: &'static str,
}

impl Verifier {
    pub fn new(config: &VerifierConfig) -> Result<Self, String> {
        let (key, algorithms, family) = match &config.key {
            KeySource::HmacSecret(secret) => {
                let key = DecodingKey::from_secret(secret)
                    .map_err(|e| format!("the HMAC secret is not usable: {e}"))?;
                let algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
                (key, algorithms, "HS256/HS384/HS512")
            }
            KeySource::PublicKeyPem(pem) => public_key(pem)?,
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algorithms;
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &config.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Verifier {
            key,
            validation,
            family,
        })
    }

    /// The algorithms this verifier accepts, e.g. "RS256/RS384/...".
    pub fn algorithms(&self) -> &'static str {
        self.family
    }

    /// Verifies `token`. Nothing of the token goes into the refusal: it may end up in a log.
    pub fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::TooLarge);
        }
        // The header first: a header that does not parse (`alg: none` among them, an algorithm
        // jsonwebtoken does not know) is a malformed token, not a claims problem.
        decode_header(token).map_err(|_| Refusal::Malformed)?;
        let data = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| refusal(e.into_kind(), self.family))?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(Refusal::BadClaims(
                "claim 'sub' must not be empty".to_owned(),
            ));
        }
        let rights = Rights::from_claims(&claims).map_err(|e| Refusal::BadClaims(e.0))?;
        Ok(Principal {
            sub: claims.sub,
            expires_at: claims.exp,
            rights,
        })
    }
}

/// The key in a PEM file, by what it holds: RSA, then EC, then Ed25519.
fn public_key(pem: &[u8]) -> Result<(DecodingKey, Vec<Algorithm>, &'static str), String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("PRIVATE KEY") {
        return Err(
            "--auth-public-key holds a private key: give the public key only \
                    (e.g. `openssl pkey -in private.pem -pubout`)"
                .to_owned(),
        );
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        let algorithms = vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ];
        return Ok((key, algorithms, "RS256/RS384/RS512/PS256/PS384/PS512"));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, vec![Algorithm::ES256], "ES256"));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, vec![Algorithm::EdDSA], "EdDSA"));
    }
    Err("--auth-public-key is not an RSA, EC (P-256) or Ed25519 public key in PEM form".to_owned())
}

/// Why jsonwebtoken refused a token, as a refusal with a message fit for the client.
fn refusal(kind: ErrorKind, family: &'static str) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
        ErrorKind::InvalidAudience => Refusal::WrongAudience,
        ErrorKind::InvalidSignature => Refusal::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            Refusal::WrongAlgorithm(family)
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            Refusal::BadClaims(format!("claim '{claim}' is required"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            Refusal::BadClaims(format!("claim '{claim}' has the wrong type"))
        }
        // The signature was checked before the payload was read: a payload that is not the
        // claims object is still the key holder's mistake, and said so.
        ErrorKind::Json(_) => Refusal::BadClaims(
            "the payload is not a claims object with 'sub' (a string), 'exp' (an integer) \
             and optional 'publish'/'subscribe' lists of strings and 'admin' (a boolean)"
                .to_owned(),
        ),
        // A header naming an algorithm this crate does not know (`none` among them) fails to
        // parse as a header.
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => Refusal::Malformed,
        _ => Refusal::BadSignature,
    }
}
