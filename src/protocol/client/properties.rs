//! Property tests for [`parse_client_frame`]: whatever text arrives, the parser returns either a
//! command or a `bad_request` message, never panics, and agrees with a model of the protocol
//! written over `serde_json::Value`. A command it accepts, written out again, parses the same.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

/// What the protocol (docs/websocket.md, "Client frames") says a frame means.
#[derive(Debug)]
enum Expected {
    Command {
        request_id: Option<String>,
        command: Model,
    },
    BadRequest {
        request_id: Option<String>,
    },
}

#[derive(Debug)]
enum Model {
    Subscribe {
        topic: String,
        replay: Replay<'static>,
    },
    Unsubscribe {
        topic: String,
    },
    Publish {
        topic: String,
        message: String,
    },
    Ping,
    Refresh {
        token: String,
    },
}

/// The model: the frame's fields as JSON values, checked one rule at a time.
fn model(fields: &Map<String, Value>) -> Expected {
    let request_id = match fields.get("request_id") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Expected::BadRequest { request_id: None },
    };
    let bad = || Expected::BadRequest {
        request_id: request_id.clone(),
    };
    let string = |name: &str| match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    let integer = |name: &str| match fields.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(()),
    };
    let Ok(Some(action)) = string("action") else {
        return bad();
    };
    let topic = string("topic");
    let command = match action.as_str() {
        "ping" => Model::Ping,
        "refresh" => match string("token") {
            Ok(Some(token)) => Model::Refresh { token },
            _ => return bad(),
        },
        "unsubscribe" => match topic {
            Ok(Some(topic)) => Model::Unsubscribe { topic },
            _ => return bad(),
        },
        "publish" => match (topic, fields.get("message")) {
            (Ok(Some(topic)), Some(message)) => Model::Publish {
                topic,
                message: message.to_string(),
            },
            _ => return bad(),
        },
        "subscribe" => {
            let (Ok(Some(topic)), Ok(last), Ok(since), Ok(epoch)) = (
                topic,
                integer("replay_last"),
                integer("since_seq"),
                string("epoch"),
            ) else {
                return bad();
            };
            let replay = match (last, since, epoch) {
                (None, None, None) => Replay::None,
                (Some(n), None, None) => Replay::Last(n),
                (None, Some(seq), epoch) => Replay::After {
                    seq,
                    epoch: epoch.map(Cow::Owned),
                },
                _ => return bad(),
            };
            Model::Subscribe { topic, replay }
        }
        _ => return bad(),
    };
    Expected::Command {
        request_id,
        command,
    }
}

/// Asserts the parser's answer for `text` (the JSON text of `fields`) is the model's.
fn assert_agrees(text: &str, fields: &Map<String, Value>) -> Result<(), TestCaseError> {
    match (parse_client_frame(text), model(fields)) {
        (
            Ok(frame),
            Expected::Command {
                request_id,
                command,
            },
        ) => {
            prop_assert_eq!(frame.request_id.as_deref(), request_id.as_deref());
            let same = match (&frame.command, &command) {
                (
                    Command::Subscribe { topic, replay },
                    Model::Subscribe {
                        topic: t,
                        replay: r,
                    },
                ) => topic == t && replay == r,
                (Command::Unsubscribe { topic }, Model::Unsubscribe { topic: t }) => topic == t,
                (
                    Command::Publish { topic, message },
                    Model::Publish {
                        topic: t,
                        message: m,
                    },
                ) => topic == t && message.get() == m,
                (Command::Ping, Model::Ping) => true,
                (Command::Refresh { token }, Model::Refresh { token: t }) => token == t,
                _ => false,
            };
            prop_assert!(
                same,
                "{text}: parsed {:?}, expected {command:?}",
                frame.command
            );
            assert_round_trip(&frame)?;
        }
        (Err(e), Expected::BadRequest { request_id }) => {
            prop_assert_eq!(e.request_id.as_deref(), request_id.as_deref(), "{}", text);
            prop_assert!(!e.message.is_empty());
        }
        (got, expected) => {
            prop_assert!(false, "{text}: parsed {got:?}, expected {expected:?}");
        }
    }
    Ok(())
}

/// Whatever the outcome, it is a command or a `bad_request` with a message; no panic.
fn assert_command_or_bad_request(text: &str) -> Result<(), TestCaseError> {
    match parse_client_frame(text) {
        Ok(frame) => assert_round_trip(&frame)?,
        Err(e) => prop_assert!(!e.message.is_empty(), "{text:?}"),
    }
    Ok(())
}

/// A frame written out as a client would parses to the same frame.
fn assert_round_trip(frame: &ClientFrame<'_>) -> Result<(), TestCaseError> {
    let text = encode(frame);
    match parse_client_frame(&text) {
        Ok(again) => {
            prop_assert_eq!(&again.command, &frame.command, "{}", text);
            prop_assert_eq!(&again.request_id, &frame.request_id, "{}", text);
        }
        Err(e) => prop_assert!(false, "{text} does not parse again: {}", e.message),
    }
    Ok(())
}

/// The frame as a client would write it.
fn encode(frame: &ClientFrame<'_>) -> String {
    let mut fields = Map::new();
    let mut raw_message = None;
    match &frame.command {
        Command::Subscribe { topic, replay } => {
            fields.insert("action".into(), json!("subscribe"));
            fields.insert("topic".into(), json!(topic));
            match replay {
                Replay::None => {}
                Replay::Last(n) => {
                    fields.insert("replay_last".into(), json!(n));
                }
                Replay::After { seq, epoch } => {
                    fields.insert("since_seq".into(), json!(seq));
                    if let Some(epoch) = epoch {
                        fields.insert("epoch".into(), json!(epoch));
                    }
                }
            }
        }
        Command::Unsubscribe { topic } => {
            fields.insert("action".into(), json!("unsubscribe"));
            fields.insert("topic".into(), json!(topic));
        }
        Command::Publish { topic, message } => {
            fields.insert("action".into(), json!("publish"));
            fields.insert("topic".into(), json!(topic));
            raw_message = Some(message.get());
        }
        Command::Ping => {
            fields.insert("action".into(), json!("ping"));
        }
        Command::Refresh { token } => {
            fields.insert("action".into(), json!("refresh"));
            fields.insert("token".into(), json!(token));
        }
    }
    if let Some(id) = &frame.request_id {
        fields.insert("request_id".into(), json!(id));
    }
    let text = Value::Object(fields).to_string();
    match raw_message {
        // The message goes in as the client wrote it, byte for byte.
        Some(raw) => format!("{},\"message\":{raw}}}", &text[..text.len() - 1]),
        None => text,
    }
}

/// The parser's answer with a published message read as a JSON value, for comparing frames
/// that differ only in whitespace.
fn outcome(text: &str) -> String {
    match parse_client_frame(text) {
        Ok(ClientFrame {
            request_id,
            command: Command::Publish { topic, message },
        }) => {
            let message: Option<Value> = serde_json::from_str(message.get()).ok();
            format!("publish {request_id:?} {topic:?} {message:?}")
        }
        Ok(frame) => format!("{:?} {:?}", frame.request_id, frame.command),
        Err(e) => format!("bad_request {:?}", e.request_id),
    }
}

/// Any JSON value, nested a few levels, with unicode strings and numbers of every kind.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        any::<String>().prop_map(Value::from),
        "[a-z]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values for a field: mostly the right type (with edge cases), sometimes any JSON at all.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => "[A-Za-z0-9][A-Za-z0-9._:-]{0,12}".prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        2 => prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>()].prop_map(Value::from),
        1 => prop_oneof![Just(-1i64), Just(i64::MIN), any::<i64>()].prop_map(Value::from),
        1 => prop_oneof![Just(1.5f64), Just(1e300), Just(-0.0), Just(3.0)].prop_map(Value::from),
        1 => Just(Value::Null),
        2 => any_json(),
    ]
}

/// A frame close to valid: a known action (or not), each known field present or absent with a
/// right or wrong value, and a few extra fields.
fn near_valid_frame() -> impl Strategy<Value = Map<String, Value>> {
    let action = prop_oneof![
        4 => prop::sample::select(vec!["subscribe", "unsubscribe", "publish", "ping"])
            .prop_map(Value::from),
        1 => prop::sample::select(vec!["Subscribe", "PING", "", "publish ", "unknown"])
            .prop_map(Value::from),
        1 => field_value(),
    ];
    let optional = || prop::option::weighted(0.5, field_value());
    (
        prop::option::weighted(0.95, action),
        prop::option::weighted(0.9, field_value()),
        prop::option::weighted(0.5, any_json()),
        (optional(), optional(), optional()),
        prop::option::weighted(0.4, field_value()),
        prop::collection::btree_map("[a-z_]{1,12}|.{0,6}", any_json(), 0..3),
    )
        .prop_map(
            |(action, topic, message, (replay_last, since_seq, epoch), request_id, extra)| {
                let mut fields: Map<String, Value> = extra.into_iter().collect();
                for (name, value) in [
                    ("action", action),
                    ("topic", topic),
                    ("message", message),
                    ("replay_last", replay_last),
                    ("since_seq", since_seq),
                    ("epoch", epoch),
                    ("request_id", request_id),
                ] {
                    match value {
                        Some(value) => fields.insert(name.to_owned(), value),
                        None => fields.remove(name),
                    };
                }
                fields
            },
        )
}

proptest! {
    // Enough cases to cover the strategies' corners while the suite stays at a few seconds; the
    // fuzz target (fuzz/) explores further.
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_give_a_command_or_bad_request(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_command_or_bad_request(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_text_gives_a_command_or_bad_request(text in any::<String>()) {
        assert_command_or_bad_request(&text)?;
    }

    #[test]
    fn arbitrary_json_gives_a_command_or_bad_request(value in any_json()) {
        let text = value.to_string();
        match value {
            Value::Object(fields) => assert_agrees(&text, &fields)?,
            _ => {
                let e = parse_client_frame(&text);
                prop_assert!(e.is_err(), "{} is not an object", text);
            }
        }
    }

    #[test]
    fn near_valid_frames_follow_the_protocol(fields in near_valid_frame()) {
        let text = Value::Object(fields.clone()).to_string();
        assert_agrees(&text, &fields)?;
        // Whitespace between the tokens changes nothing (but the message's own text).
        let spaced = serde_json::to_string_pretty(&Value::Object(fields.clone()))
            .unwrap_or_default();
        prop_assert_eq!(outcome(&spaced), outcome(&text));
    }

    #[test]
    fn mangled_frames_give_a_command_or_bad_request(
        fields in near_valid_frame(),
        cut in any::<prop::sample::Index>(),
        insert in prop::sample::select(vec!["", "{", "}", "[", "\"", ",", ":", "\\", "\\ud800", "\u{0}", "é", "1e999"]),
    ) {
        let text = Value::Object(fields).to_string();
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        assert_command_or_bad_request(&format!("{}{insert}{}", &text[..at], &text[at..]))?;
        assert_command_or_bad_request(&text[..at])?;
    }

    #[test]
    fn numbers_of_any_size_and_form(digits in "-?[0-9]{1,40}(\\.[0-9]{1,5})?([eE][-+]?[0-9]{1,4})?") {
        let text = format!(r#"{{"action":"subscribe","topic":"t","replay_last":{digits}}}"#);
        // Only a plain integer in u64's range is a count; JSON forbids leading zeros.
        let plain = digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
        let expected = digits.parse::<u64>().ok().filter(|_| plain);
        match parse_client_frame(&text) {
            Ok(frame) => {
                let Command::Subscribe { replay: Replay::Last(n), .. } = frame.command else {
                    return Err(TestCaseError::fail(format!("{text}: {:?}", frame.command)));
                };
                prop_assert_eq!(Some(n), expected, "{}", text);
            }
            Err(e) => prop_assert!(expected.is_none(), "{} should parse: {}", text, e.message),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deep_nesting_is_a_command_or_bad_request(depth in 0usize..5000, open in prop::sample::select(vec!["[", "{\"a\":"])) {
        let close = if open == "[" { "]" } else { "}" };
        let message = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let text = format!(r#"{{"action":"publish","topic":"t","message":{message}}}"#);
        match parse_client_frame(&text) {
            Ok(frame) => {
                let Command::Publish { message: raw, .. } = frame.command else {
                    return Err(TestCaseError::fail("not a publish"));
                };
                prop_assert_eq!(raw.get(), message.as_str());
            }
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
        // The same nesting where the parser reads values itself, and in an unknown field.
        assert_command_or_bad_request(&format!(r#"{{"action":"subscribe","topic":{message}}}"#))?;
        assert_command_or_bad_request(&format!(r#"{{"action":"ping","extra":{message}}}"#))?;
    }
}
