//! Property tests for topic names through the public API: every name the documented pattern
//! allows is accepted, and names that break one rule (too long, a forbidden character, a bad first
//! character, empty) are rejected with `invalid_topic`, whatever else they hold.

use proptest::prelude::*;

use pubsub::broker::{BrokerError, MAX_TOPIC_NAME_LEN, validate_topic_name};
use pubsub::protocol::{ErrorCode, TOPIC_NAME_PATTERN};

/// The characters a name may hold after its first.
const ALLOWED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:";

/// The rule, spelled out character by character.
fn follows_the_rule(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= MAX_TOPIC_NAME_LEN
        && bytes.all(|b| ALLOWED.as_bytes().contains(&b))
}

fn assert_rejected(name: &str) -> Result<(), TestCaseError> {
    match validate_topic_name(name) {
        Err(e @ BrokerError::InvalidTopic(_)) => {
            prop_assert_eq!(e.code(), ErrorCode::InvalidTopic);
            prop_assert!(e.to_string().contains("invalid topic name"), "{}", e);
        }
        other => prop_assert!(false, "{name:?} gave {other:?}"),
    }
    Ok(())
}

/// A valid name of `len` characters from a seed.
fn valid_name(max_len: usize) -> impl Strategy<Value = String> {
    string(&format!(
        "[A-Za-z0-9][A-Za-z0-9._:-]{{0,{}}}",
        max_len.saturating_sub(1)
    ))
}

fn string(regex: &str) -> BoxedStrategy<String> {
    match proptest::string::string_regex(regex) {
        Ok(strategy) => strategy.boxed(),
        Err(e) => panic!("bad regex {regex}: {e}"),
    }
}

/// A character no name may hold.
fn forbidden_char() -> impl Strategy<Value = char> {
    any::<char>().prop_filter("a forbidden character", |c| !ALLOWED.contains(*c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The OpenAPI document's pattern, used as a generator, gives only names the server accepts.
    #[test]
    fn every_name_the_documented_pattern_allows_is_accepted(
        // proptest generates from a regex without anchors; the pattern's are its whole extent.
        name in string(TOPIC_NAME_PATTERN.trim_start_matches('^').trim_end_matches('$')),
    ) {
        prop_assert!(TOPIC_NAME_PATTERN.starts_with('^') && TOPIC_NAME_PATTERN.ends_with('$'));
        prop_assert!(validate_topic_name(&name).is_ok(), "{:?}", name);
    }

    #[test]
    fn names_up_to_the_limit_are_accepted(name in valid_name(MAX_TOPIC_NAME_LEN)) {
        prop_assert!(name.len() <= MAX_TOPIC_NAME_LEN);
        prop_assert!(validate_topic_name(&name).is_ok(), "{:?}", name);
    }

    #[test]
    fn names_over_the_limit_are_rejected(
        name in valid_name(MAX_TOPIC_NAME_LEN),
        extra in string("[A-Za-z0-9._:-]{1,300}"),
    ) {
        let long = format!("{name}{}", extra.repeat(MAX_TOPIC_NAME_LEN / extra.len() + 1));
        prop_assert!(long.len() > MAX_TOPIC_NAME_LEN);
        assert_rejected(&long)?;
    }

    #[test]
    fn a_forbidden_character_anywhere_is_rejected(
        name in valid_name(MAX_TOPIC_NAME_LEN),
        bad in forbidden_char(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut name = name;
        name.insert(at.index(name.len() + 1), bad);
        assert_rejected(&name)?;
    }

    #[test]
    fn a_bad_first_character_is_rejected(
        rest in valid_name(MAX_TOPIC_NAME_LEN - 1),
        first in prop::sample::select(vec!['.', '_', '-', ':']),
    ) {
        assert_rejected(&format!("{first}{rest}"))?;
    }

    /// Any string at all: accepted exactly when it follows the rule, never a panic.
    #[test]
    fn any_string_is_accepted_exactly_when_it_follows_the_rule(
        name in prop_oneof![any::<String>(), string("[A-Za-z0-9._:/ %-]{0,300}")],
    ) {
        if follows_the_rule(&name) {
            prop_assert!(validate_topic_name(&name).is_ok(), "{:?}", name);
        } else {
            assert_rejected(&name)?;
        }
    }
}

#[test]
fn the_empty_name_is_rejected() {
    assert!(matches!(
        validate_topic_name(""),
        Err(BrokerError::InvalidTopic(_))
    ));
}

#[test]
fn the_boundary_is_255_characters() {
    assert!(validate_topic_name(&"a".repeat(MAX_TOPIC_NAME_LEN)).is_ok());
    assert!(validate_topic_name(&"a".repeat(MAX_TOPIC_NAME_LEN + 1)).is_err());
}
