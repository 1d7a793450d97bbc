//! Why a token was refused, and the log of refusals: aggregated, so that a client hammering
//! the server with bad tokens costs one line per interval, not one per request. No line ever
//! holds a token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token at all.
    Missing,
    /// Over [`super::MAX_TOKEN_BYTES`]: not parsed.
    TooLarge,
    /// Not three base64url parts of JSON (an unknown algorithm such as `none` included).
    Malformed,
    /// The signature does not match the key.
    BadSignature,
    /// Signed with an algorithm outside the key's family; holds the accepted ones.
    WrongAlgorithm(&'static str),
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A claim is missing or wrong; says which.
    BadClaims(String),
    /// A valid token whose rights do not cover the action.
    Denied,
}

impl Refusal {
    /// A short stable name, for the aggregated log line.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::WrongAlgorithm(_) => "wrong_algorithm",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::WrongIssuer => "wrong_issuer",
            Refusal::WrongAudience => "wrong_audience",
            Refusal::BadClaims(_) => "bad_claims",
            Refusal::Denied => "denied",
        }
    }

    /// The sentence for the client.
    pub fn message(&self) -> String {
        match self {
            Refusal::Missing => "a token is required: send 'Authorization: Bearer TOKEN' \
                                 (or, for a WebSocket from a browser, the 'token' query parameter)"
                .to_owned(),
            Refusal::TooLarge => format!(
                "the token is longer than {} bytes and was not read",
                super::MAX_TOKEN_BYTES
            ),
            Refusal::Malformed => {
                "the token is not a JWT (three base64url parts: header, claims, signature) \
                 with a supported algorithm"
                    .to_owned()
            }
            Refusal::BadSignature => {
                "the token's signature does not match the server's key".to_owned()
            }
            Refusal::WrongAlgorithm(accepted) => {
                format!("the token's algorithm is not accepted here; the server accepts {accepted}")
            }
            Refusal::Expired => "the token has expired".to_owned(),
            Refusal::NotYetValid => "the token is not valid yet (nbf)".to_owned(),
            Refusal::WrongIssuer => {
                "the token's issuer (iss) is not the one this server trusts".to_owned()
            }
            Refusal::WrongAudience => "the token's audience (aud) is not this server".to_owned(),
            Refusal::BadClaims(why) => format!("the token's claims are not usable: {why}"),
            Refusal::Denied => "the token does not allow this".to_owned(),
        }
    }
}

const KINDS: [&str; 11] = [
    "missing",
    "too_large",
    "malformed",
    "bad_signature",
    "wrong_algorithm",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "bad_claims",
    "denied",
];

/// How often at most a line of refusals is written.
const INTERVAL: Duration = Duration::from_secs(10);

/// Counts refusals by kind and writes one line per [`INTERVAL`] at most: the first refusal is
/// logged at once (with the counts since the last line), later ones wait for the next line.
#[derive(Debug, Default)]
pub struct RefusalLog {
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    /// Refusals by kind since the last line.
    pending: [u64; KINDS.len()],
    /// Every refusal by kind since the start.
    total: [u64; KINDS.len()],
    last_line: Option<Instant>,
}

impl RefusalLog {
    pub fn note(&self, refusal: &Refusal) {
        let index = KINDS.iter().position(|k| *k == refusal.kind()).unwrap_or(0);
        let line = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            state.pending[index] += 1;
            state.total[index] += 1;
            let now = Instant::now();
            if state
                .last_line
                .is_some_and(|at| now.duration_since(at) < INTERVAL)
            {
                return;
            }
            state.last_line = Some(now);
            let counts = std::mem::take(&mut state.pending);
            summary(&counts)
        };
        // Written with the lock released: a slow log output must not hold up other requests.
        tracing::warn!(
            refused = %line,
            "requests refused for their token (counts since the last such line; at most one line every {}s)",
            INTERVAL.as_secs()
        );
    }

    /// Refusals of `kind` (see [`Refusal::kind`]) since the start.
    pub fn count(&self, kind: &str) -> u64 {
        let index = KINDS.iter().position(|k| *k == kind);
        match (index, self.state.lock()) {
            (Some(i), Ok(state)) => state.total[i],
            _ => 0,
        }
    }
}

/// "expired=3 denied=1": the kinds with a count.
fn summary(counts: &[u64; KINDS.len()]) -> String {
    KINDS
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_slot() {
        for r in [
            Refusal::Missing,
            Refusal::TooLarge,
            Refusal::Malformed,
            Refusal::BadSignature,
            Refusal::WrongAlgorithm("HS256"),
            Refusal::Expired,
            Refusal::NotYetValid,
            Refusal::WrongIssuer,
            Refusal::WrongAudience,
            Refusal::BadClaims(String::new()),
            Refusal::Denied,
        ] {
            assert!(KINDS.contains(&r.kind()), "{r:?}");
        }
    }

    #[test]
    fn counts_add_up_and_lines_are_rate_limited() {
        let log = RefusalLog::default();
        for _ in 0..5 {
            log.note(&Refusal::Expired);
        }
        log.note(&Refusal::Denied);
        assert_eq!(log.count("expired"), 5);
        assert_eq!(log.count("denied"), 1);
        // Only the first went out as a line; the rest wait for the next interval.
        let state = log.state.lock().unwrap();
        assert_eq!(state.pending.iter().sum::<u64>(), 5);
    }
}
