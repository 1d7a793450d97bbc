//! Where the client's tokens come from: a [`TokenProvider`] asked before each connection and
//! ahead of the token's `exp`, and reading that `exp` without verifying the token (the server
//! verifies it; the client only needs to know when to ask for the next one).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) type Fetch = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Gives a fresh token: called before every connection and, for a token with an `exp`, ahead
/// of it to refresh the open connection. An `Err` says why no token could be had (a failed
/// connection attempt, retried with backoff).
#[derive(Clone)]
pub struct TokenProvider(Arc<dyn Fn() -> Fetch + Send + Sync>);

impl TokenProvider {
    pub fn new<F, Fut>(get: F) -> TokenProvider
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        TokenProvider(Arc::new(move || Box::pin(get())))
    }

    pub(super) fn fetch(&self) -> Fetch {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider")
    }
}

/// The `exp` claim of a JWT (seconds since the Unix epoch), read without verifying it; None
/// when `token` is not a JWT with a numeric `exp`.
pub fn expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let json = base64url(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("exp")?.as_u64()
}

/// How long until `exp` (zero when it has passed).
pub(super) fn left(exp: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(exp).saturating_sub(now)
}

/// When to refresh a token with `left` to live: `ahead` of its expiry, and at most halfway
/// through, so a token of a few seconds is refreshed in time too.
pub(super) fn refresh_after(left: Duration, ahead: Duration) -> Duration {
    left.saturating_sub(ahead).max(left / 2)
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_exp_without_verifying() {
        // {"alg":"HS256"} . {"sub":"a","exp":1795000000}
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxNzk1MDAwMDAwfQ.sig";
        assert_eq!(expiry(token), Some(1_795_000_000));
        for bad in ["", "hello", "a.!!!.c", "a.eyJleHAiOiJzb29uIn0.c", "a.e30.c"] {
            assert_eq!(expiry(bad), None, "{bad}");
        }
    }

    #[test]
    fn refresh_comes_ahead_of_expiry_and_at_most_halfway() {
        let s = Duration::from_secs;
        assert_eq!(refresh_after(s(3600), s(30)), s(3570));
        assert_eq!(refresh_after(s(3), s(30)), Duration::from_millis(1500));
        assert_eq!(refresh_after(s(0), s(30)), s(0));
    }
}
