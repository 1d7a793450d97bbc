//! Making tokens: what `pubsub token` prints, signed with the server's HMAC secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

use super::claims::Claims;
use super::pattern::TopicPattern;

/// The claims of a token to make.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub sub: String,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    pub admin: bool,
    /// How long from now it is valid.
    pub ttl: Duration,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Signs the token `request` describes with `secret` (HS256). Patterns are checked first: a
/// token the server would refuse is not made.
pub fn issue_hmac(secret: &[u8], request: &TokenRequest) -> Result<String, String> {
    if request.sub.is_empty() {
        return Err("--sub must not be empty".to_owned());
    }
    for pattern in request.publish.iter().chain(&request.subscribe) {
        TopicPattern::parse(pattern).map_err(|e| e.to_string())?;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?
        .as_secs();
    let claims = Claims {
        sub: request.sub.clone(),
        exp: now.saturating_add(request.ttl.as_secs().max(1)),
        iat: Some(now),
        nbf: None,
        iss: request.issuer.clone().map(serde_json::Value::String),
        aud: request.audience.clone().map(serde_json::Value::String),
        publish: request.publish.clone(),
        subscribe: request.subscribe.clone(),
        admin: request.admin,
    };
    let key = EncodingKey::from_secret(secret).map_err(|e| format!("the HMAC secret: {e}"))?;
    encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|e| format!("signing: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{KeySource, Need, Verifier, VerifierConfig};

    fn request() -> TokenRequest {
        TokenRequest {
            sub: "alice".to_owned(),
            publish: vec!["chat.*".to_owned()],
            subscribe: vec!["*".to_owned()],
            admin: false,
            ttl: Duration::from_secs(3600),
            issuer: None,
            audience: None,
        }
    }

    #[test]
    fn an_issued_token_verifies_with_the_same_secret_only() {
        let token = issue_hmac(b"0123456789abcdef0123456789abcdef", &request()).unwrap();
        let verifier = |secret: &[u8]| {
            Verifier::new(&VerifierConfig {
                key: KeySource::HmacSecret(secret.to_vec()),
                issuer: None,
                audience: None,
                leeway: Duration::from_secs(5),
            })
            .unwrap()
        };
        let p = verifier(b"0123456789abcdef0123456789abcdef")
            .verify(&token)
            .unwrap();
        assert_eq!(p.sub, "alice");
        assert!(p.rights.allows(Need::Publish("chat.1")));
        assert!(!p.rights.allows(Need::Publish("news")));
        assert!(verifier(b"another secret").verify(&token).is_err());
    }

    #[test]
    fn refuses_to_make_a_token_the_server_would_refuse() {
        let mut bad = request();
        bad.publish = vec!["a*b".to_owned()];
        assert!(issue_hmac(b"secret", &bad).is_err());
        let mut bad = request();
        bad.sub = String::new();
        assert!(issue_hmac(b"secret", &bad).is_err());
    }
}
