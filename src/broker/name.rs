//! Topic names: the one rule every entry point (REST path, REST body, WebSocket frame) shares.

use super::BrokerError;

/// The longest topic name accepted, in bytes (names are ASCII, so also in characters).
pub const MAX_TOPIC_NAME_LEN: usize = 255;

/// Checks a topic name: 1 to 255 characters from `A-Z a-z 0-9 . _ - :`, starting with a letter
/// or digit. Every valid name can stand in a URL path segment as it is, unescaped.
///
/// ```
/// use pubsub::broker::validate_topic_name;
///
/// assert!(validate_topic_name("sensors.eu-west:temp_1").is_ok());
/// assert!(validate_topic_name("_private").is_err());
/// assert!(validate_topic_name("a/b").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let invalid = |why: &str| {
        Err(BrokerError::InvalidTopic(format!(
            "invalid topic name: {why}"
        )))
    };
    let Some(first) = name.bytes().next() else {
        return invalid("it must not be empty");
    };
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid("it must be at most 255 characters long");
    }
    if !first.is_ascii_alphanumeric() {
        return invalid("it must start with a letter or a digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
    {
        return invalid("only the characters A-Z a-z 0-9 . _ - : are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in ["a", "news", "Z9", "0", "a.b_c-d:e", &"x".repeat(255)] {
            assert!(validate_topic_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for name in [
            "",
            ".a",
            "_a",
            "-a",
            ":a",
            "a b",
            "a/b",
            "a%20",
            "é",
            "a\n",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(validate_topic_name(name), Err(BrokerError::InvalidTopic(_))),
                "{name:?}"
            );
        }
    }
}
