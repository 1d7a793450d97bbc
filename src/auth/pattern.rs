//! Topic patterns in a token's rights: an exact topic name, a prefix ending in `*` (`chat.*`),
//! or `*` for every topic.

use std::fmt;

/// Longest pattern accepted: a topic name (255 bytes) and the `*`.
const MAX_PATTERN_BYTES: usize = 256;

/// One pattern of a `publish` or `subscribe` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicPattern {
    /// Exactly this topic.
    Exact(String),
    /// Every topic starting with this (the empty prefix is `*`: every topic).
    Prefix(String),
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern(pub String);

impl fmt::Display for BadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TopicPattern {
    /// Parses a pattern: the characters of topic names (`A-Z a-z 0-9 . _ : -`), with at most
    /// one `*`, at the end. A `*` elsewhere could never match a topic, so it is refused rather
    /// than silently granting nothing.
    pub fn parse(text: &str) -> Result<Self, BadPattern> {
        if text.is_empty() {
            return Err(BadPattern("a topic pattern must not be empty".to_owned()));
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(BadPattern(format!(
                "a topic pattern may have at most {MAX_PATTERN_BYTES} bytes"
            )));
        }
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if let Some(c) = body.chars().find(|c| !is_topic_char(*c)) {
            return Err(BadPattern(format!(
                "topic pattern '{}' holds '{}': use topic-name characters and at most one '*', \
                 at the end",
                text.escape_default(),
                c.escape_default()
            )));
        }
        Ok(match prefix {
            true => TopicPattern::Prefix(body.to_owned()),
            false => TopicPattern::Exact(body.to_owned()),
        })
    }

    /// Whether `topic` is covered.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::Exact(name) => name == topic,
            TopicPattern::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicPattern::Exact(name) => f.write_str(name),
            TopicPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

/// Whether any of `patterns` covers `topic`.
pub fn any_matches(patterns: &[TopicPattern], topic: &str) -> bool {
    patterns.iter().any(|p| p.matches(topic))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> TopicPattern {
        TopicPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_three_forms() {
        assert!(parse("*").matches("anything"));
        assert!(parse("chat.*").matches("chat.room1"));
        assert!(parse("chat.*").matches("chat."));
        assert!(!parse("chat.*").matches("chat"));
        assert!(!parse("chat.*").matches("chatter"));
        assert!(parse("news").matches("news"));
        assert!(!parse("news").matches("news2"));
        assert!(!parse("news").matches("new"));
    }

    #[test]
    fn refuses_what_could_not_match_as_written() {
        for bad in ["", "a*b", "**", "*a", "sp ace", "é", "a/b", "chat.**"] {
            assert!(TopicPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TopicPattern::parse(&"a".repeat(257)).is_err());
        assert!(TopicPattern::parse(&format!("{}*", "a".repeat(255))).is_ok());
    }

    const TOPIC: &str = "[A-Za-z0-9][A-Za-z0-9._:-]{0,40}";

    proptest! {
        /// An exact pattern matches its own name and nothing else.
        #[test]
        fn exact_matches_only_itself(name in TOPIC, other in TOPIC) {
            let p = parse(&name);
            prop_assert!(p.matches(&name));
            prop_assert_eq!(p.matches(&other), name == other);
        }

        /// A prefix pattern matches exactly the topics that start with its prefix.
        #[test]
        fn prefix_matches_exactly_its_extensions(prefix in "[A-Za-z0-9._:-]{0,12}", topic in TOPIC) {
            let p = parse(&format!("{prefix}*"));
            prop_assert_eq!(p.matches(&topic), topic.starts_with(&prefix));
            let extended = format!("{prefix}{topic}");
            prop_assert!(p.matches(&extended));
        }

        /// `*` covers every topic.
        #[test]
        fn star_matches_every_topic(topic in TOPIC) {
            prop_assert!(parse("*").matches(&topic));
        }

        /// A pattern prints as it was written and parses back to itself.
        #[test]
        fn display_round_trips(text in "[A-Za-z0-9._:-]{1,20}\\*?") {
            let p = parse(&text);
            prop_assert_eq!(p.to_string(), text.clone());
            prop_assert_eq!(TopicPattern::parse(&p.to_string()), Ok(p));
        }

        /// A `*` anywhere but at the end is refused, whatever surrounds it.
        #[test]
        fn inner_star_is_refused(a in "[A-Za-z0-9._:-]{0,10}", b in "[A-Za-z0-9._:*-]{1,10}") {
            let text = format!("{a}*{b}");
            prop_assert!(TopicPattern::parse(&text).is_err(), "{} was accepted", text);
        }

        /// Parsing never panics, and what it accepts only ever matches topic-name text.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,30}", topic in TOPIC) {
            if let Ok(p) = TopicPattern::parse(&text) {
                let _ = p.matches(&topic);
                prop_assert!(text.trim_end_matches('*').chars().all(is_topic_char));
            }
        }
    }
}
