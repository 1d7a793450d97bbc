//! Any bytes as a WebSocket text frame: the parser never panics, answers either a command or a
//! `bad_request` message, and a command it accepts, written out again, parses to the same command.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pubsub::protocol::{ClientFrame, Command, Replay, parse_client_frame};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // tungstenite hands the server only UTF-8 text frames (others close the connection with 1007).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_frame(text) {
        Ok(frame) => {
            let encoded = encode(&frame);
            let again = parse_client_frame(&encoded)
                .unwrap_or_else(|e| panic!("{encoded:?} re-encoded from {text:?}: {}", e.message));
            assert_eq!(format!("{again:?}"), format!("{frame:?}"), "{text:?}");
        }
        Err(e) => {
            assert!(!e.message.is_empty(), "{text:?}: an error says what is wrong");
            // An echoed request_id is the frame's own request_id string.
            if let Some(id) = &e.request_id {
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
                    assert_eq!(fields.get("request_id"), Some(&Value::from(id.as_ref())));
                }
            }
        }
    }
});

/// The frame as a client would write it.
fn encode(frame: &ClientFrame<'_>) -> String {
    let s = |v: &str| Value::from(v).to_string();
    let mut fields = Vec::new();
    match &frame.command {
        Command::Subscribe { topic, replay } => {
            fields.push(format!(r#""action":"subscribe","topic":{}"#, s(topic)));
            match replay {
                Replay::None => {}
                Replay::Last(n) => fields.push(format!(r#""replay_last":{n}"#)),
                Replay::After { seq, epoch } => {
                    fields.push(format!(r#""since_seq":{seq}"#));
                    if let Some(epoch) = epoch {
                        fields.push(format!(r#""epoch":{}"#, s(epoch)));
                    }
                }
            }
        }
        Command::Unsubscribe { topic } => {
            fields.push(format!(r#""action":"unsubscribe","topic":{}"#, s(topic)));
        }
        Command::Publish { topic, message } => fields.push(format!(
            r#""action":"publish","topic":{},"message":{}"#,
            s(topic),
            message.get()
        )),
        Command::Ping => fields.push(r#""action":"ping""#.to_owned()),
    }
    if let Some(id) = &frame.request_id {
        fields.push(format!(r#""request_id":{}"#, s(id)));
    }
    format!("{{{}}}", fields.join(","))
}
