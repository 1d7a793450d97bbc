//! Tokens and rights: verifying a JWT, the rights it carries, and what each action needs.
//!
//! No HTTP here: the warp filter that reads the token from a request is in
//! `http::authenticate`. Without a key ([`Auth::open`]) every request is let through, as before
//! authentication existed.

mod claims;
mod issue;
pub mod pattern;
mod refusals;
mod verify;

use std::sync::Arc;

pub use claims::{Claims, Principal, Rights};
pub use issue::{TokenRequest, issue_hmac};
pub use pattern::TopicPattern;
pub use refusals::{Refusal, RefusalLog};
pub use verify::{KeySource, Verifier, VerifierConfig};

/// Longest token accepted, in bytes; a longer one is refused without being parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What an action needs of the caller's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// A `publish` pattern covering the topic.
    Publish(&'a str),
    /// A `subscribe` pattern covering the topic.
    Subscribe(&'a str),
    /// `admin: true`: topic management and server-wide figures.
    Admin,
}

impl Need<'_> {
    /// The sentence a `forbidden` answer carries.
    pub fn refused(&self) -> String {
        match self {
            Need::Publish(topic) => format!("this token may not publish to '{topic}'"),
            Need::Subscribe(topic) => format!("this token may not subscribe to '{topic}'"),
            Need::Admin => "this needs a token with admin rights".to_owned(),
        }
    }
}

/// The server's authentication settings: a verifier when tokens are required, and the log of
/// refusals. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    verifier: Option<Arc<Verifier>>,
    public_metrics: bool,
    refusals: Arc<RefusalLog>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth::open()
    }
}

impl Auth {
    /// No tokens: every request is allowed.
    pub fn open() -> Self {
        Auth {
            verifier: None,
            public_metrics: true,
            refusals: Arc::new(RefusalLog::default()),
        }
    }

    /// Tokens verified by `verifier`; `/metrics` open only when `public_metrics`.
    pub fn required(verifier: Verifier, public_metrics: bool) -> Self {
        Auth {
            verifier: Some(Arc::new(verifier)),
            public_metrics,
            refusals: Arc::new(RefusalLog::default()),
        }
    }

    /// Whether requests need a token.
    pub fn is_on(&self) -> bool {
        self.verifier.is_some()
    }

    /// Whether `/metrics` may be read without an admin token.
    pub fn metrics_public(&self) -> bool {
        self.public_metrics || !self.is_on()
    }

    /// Verifies the token a request carries. `Ok(None)` when authentication is off (everything
    /// allowed); a refusal is counted in the refusal log.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Option<Principal>, Refusal> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let result = match token {
            None => Err(Refusal::Missing),
            Some(token) => verifier.verify(token),
        };
        result.map(Some).inspect_err(|r| self.refusals.note(r))
    }

    /// Whether `caller` may do what `need` says; a denial is counted in the refusal log.
    /// `None` (authentication off) may do everything.
    pub fn permits(&self, caller: Option<&Principal>, need: Need<'_>) -> bool {
        let allowed = caller.is_none_or(|p| p.rights.allows(need));
        if !allowed {
            self.refusals.note(&Refusal::Denied);
        }
        allowed
    }

    /// The refusals counted so far (for tests and the logs).
    pub fn refusals(&self) -> &RefusalLog {
        &self.refusals
    }
}
