//! Tokens for tests: signed with the test HMAC secret or the fixture keys in
//! `tests/fixtures/auth/`, and the bad ones every refusal test needs.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

/// The HMAC secret test servers verify with (`--auth-hmac-secret`).
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Claims for `sub` valid for an hour, with these rights.
pub fn claims(sub: &str, publish: &[&str], subscribe: &[&str], admin: bool) -> Value {
    json!({
        "sub": sub,
        "exp": now() + 3600,
        "publish": publish,
        "subscribe": subscribe,
        "admin": admin,
    })
}

/// Every right there is.
pub fn all_rights() -> Value {
    claims("root", &["*"], &["*"], true)
}

/// `claims` signed HS256 with `secret`.
pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret).expect("HMAC key");
    encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
}

/// `claims` signed HS256 with [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

/// The path of a fixture key, e.g. `rsa_public.pem`.
pub fn key_path(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "auth",
        name,
    ]
    .iter()
    .collect();
    path.to_string_lossy().into_owned()
}

pub fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).expect("fixture key")
}

/// `claims` signed with a fixture private key: RS256, ES256 or EdDSA.
pub fn signed(alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&key_bytes("rsa_private.pem")),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key_bytes("ec_private.pem")),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&key_bytes("ed_private.pem")),
        other => panic!("no fixture key for {other:?}"),
    }
    .expect("fixture private key");
    encode(&Header::new(alg), claims, &key).expect("sign")
}

/// base64url without padding, as JWTs use.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token: header `{"alg":"none"}`, empty signature.
pub fn alg_none(claims: &Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64url(claims.to_string().as_bytes()))
}

/// The classic algorithm confusion: HS256 "signed" with the server's RSA public key as the
/// HMAC secret, for a server that would use that key as a secret if it trusted the header.
pub fn confused(claims: &Value) -> String {
    hs256_with(&key_bytes("rsa_public.pem"), claims)
}

/// One way a token is wrong, and the words the refusal must contain.
pub struct BadToken {
    pub name: &'static str,
    /// `None`: no token sent at all.
    pub token: Option<String>,
    pub says: &'static str,
}

/// Every way a token is refused by a server verifying HS256 with [`SECRET`] and checking
/// issuer `pubsub-tests` and audience `pubsub` (see [`HMAC_SERVER`]).
pub fn bad_tokens() -> Vec<BadToken> {
    let good = || {
        let mut c = all_rights();
        c["iss"] = json!("pubsub-tests");
        c["aud"] = json!("pubsub");
        c
    };
    let with = |key: &str, value: Value| {
        let mut c = good();
        c[key] = value;
        hs256(&c)
    };
    let without = |key: &str| {
        let mut c = good();
        c.as_object_mut().expect("object").remove(key);
        hs256(&c)
    };
    let mut oversized = good();
    oversized["padding"] = json!("x".repeat(9 * 1024));
    vec![
        BadToken {
            name: "no token",
            token: None,
            says: "token is required",
        },
        BadToken {
            name: "other key",
            token: Some(hs256_with(b"another-secret-0123456789abcdef0123", &good())),
            says: "signature",
        },
        BadToken {
            name: "alg none",
            token: Some(alg_none(&good())),
            says: "not a JWT",
        },
        BadToken {
            name: "RS256 on an HMAC server",
            token: Some(signed(Algorithm::RS256, &good())),
            says: "algorithm",
        },
        BadToken {
            name: "malformed base64",
            token: Some("e30.!!!.abc".to_owned()),
            says: "not a JWT",
        },
        BadToken {
            name: "not a JWT",
            token: Some("hello".to_owned()),
            says: "not a JWT",
        },
        BadToken {
            name: "oversized",
            token: Some(hs256(&oversized)),
            says: "longer than 8192",
        },
        BadToken {
            name: "expired",
            token: Some(with("exp", json!(now() - 60))),
            says: "expired",
        },
        BadToken {
            name: "not yet valid",
            token: Some(with("nbf", json!(now() + 60))),
            says: "not valid yet",
        },
        BadToken {
            name: "wrong issuer",
            token: Some(with("iss", json!("someone-else"))),
            says: "issuer",
        },
        BadToken {
            name: "wrong audience",
            token: Some(with("aud", json!("other-service"))),
            says: "audience",
        },
        BadToken {
            name: "missing sub",
            token: Some(without("sub")),
            says: "'sub'",
        },
        BadToken {
            name: "missing exp",
            token: Some(without("exp")),
            says: "'exp'",
        },
        BadToken {
            name: "bad pattern",
            token: Some(with("publish", json!(["a*b"]))),
            says: "pattern",
        },
    ]
}

/// The flags of the server [`bad_tokens`] is written for.
pub const HMAC_SERVER: [&str; 6] = [
    "--auth-hmac-secret",
    SECRET,
    "--auth-issuer",
    "pubsub-tests",
    "--auth-audience",
    "pubsub",
];

/// A valid token for [`HMAC_SERVER`] with these rights.
pub fn token_for(sub: &str, publish: &[&str], subscribe: &[&str], admin: bool) -> String {
    let mut c = claims(sub, publish, subscribe, admin);
    c["iss"] = json!("pubsub-tests");
    c["aud"] = json!("pubsub");
    hs256(&c)
}
