//! The claims a token carries and the rights read from them.

use serde::{Deserialize, Serialize};

use super::Need;
use super::pattern::{BadPattern, TopicPattern, any_matches};

/// A token's payload as this server reads and writes it. `iss`, `aud` and `nbf` are checked by
/// the verifier from the raw payload; unknown claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Who the token is for: named in logs, and a refresh must keep it.
    pub sub: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// A string or a list of them: the verifier checks them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Topic patterns the holder may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Topic patterns the holder may subscribe to and read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    /// Topic management (create, delete, list) and server-wide figures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// What a token allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    pub publish: Vec<TopicPattern>,
    pub subscribe: Vec<TopicPattern>,
    pub admin: bool,
}

impl Rights {
    /// Reads the rights from the claims; a pattern that is not one is an error naming it.
    pub fn from_claims(claims: &Claims) -> Result<Self, BadPattern> {
        let parse = |list: &[String], which: &str| {
            list.iter()
                .map(|p| {
                    TopicPattern::parse(p).map_err(|e| BadPattern(format!("claim '{which}': {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Rights {
            publish: parse(&claims.publish, "publish")?,
            subscribe: parse(&claims.subscribe, "subscribe")?,
            admin: claims.admin,
        })
    }

    /// Whether these rights cover `need`. `admin` is topic management only: it does not grant
    /// publishing or subscribing.
    pub fn allows(&self, need: Need<'_>) -> bool {
        match need {
            Need::Publish(topic) => any_matches(&self.publish, topic),
            Need::Subscribe(topic) => any_matches(&self.subscribe, topic),
            Need::Admin => self.admin,
        }
    }
}

/// A verified token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    pub rights: Rights,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(publish: &[&str], subscribe: &[&str], admin: bool) -> Claims {
        Claims {
            sub: "alice".to_owned(),
            exp: 1,
            iat: None,
            nbf: None,
            iss: None,
            aud: None,
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            admin,
        }
    }

    #[test]
    fn rights_cover_what_they_list_and_nothing_more() {
        let rights = Rights::from_claims(&claims(&["chat.*"], &["*"], false)).unwrap();
        assert!(rights.allows(Need::Publish("chat.x")));
        assert!(!rights.allows(Need::Publish("news")));
        assert!(rights.allows(Need::Subscribe("news")));
        assert!(!rights.allows(Need::Admin));
        let admin = Rights::from_claims(&claims(&[], &[], true)).unwrap();
        assert!(admin.allows(Need::Admin));
        assert!(!admin.allows(Need::Publish("x")));
        assert!(!admin.allows(Need::Subscribe("x")));
    }

    #[test]
    fn a_bad_pattern_names_its_claim() {
        let e = Rights::from_claims(&claims(&[], &["a*b"], false)).unwrap_err();
        assert!(e.0.contains("claim 'subscribe'"), "{e}");
    }

    #[test]
    fn claims_missing_rights_read_as_none() {
        let c: Claims = serde_json::from_str(r#"{"sub":"s","exp":5}"#).unwrap();
        assert_eq!(Rights::from_claims(&c).unwrap(), Rights::default());
    }
}
