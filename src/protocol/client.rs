//! Frames clients send on `/ws`, and the parser that turns a text frame into a command or a
//! `bad_request` error with a message that says what to fix.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay<'a> {
    /// Live messages only.
    None,
    /// The newest `n` messages history holds, then live ones (`replay_last`).
    Last(u64),
    /// Every message with a seq above `seq` that history holds, then live ones (`since_seq`).
    /// `epoch`, when given, must match the topic's for the position to count as recovered.
    After {
        seq: u64,
        epoch: Option<Cow<'a, str>>,
    },
}

/// What a client asked for.
#[derive(Debug)]
pub enum Command<'a> {
    Subscribe {
        topic: Cow<'a, str>,
        replay: Replay<'a>,
    },
    Unsubscribe {
        topic: Cow<'a, str>,
    },
    Publish {
        topic: Cow<'a, str>,
        /// The message as the client wrote it; its length is its size.
        message: &'a RawValue,
    },
    Ping,
    /// Replaces the connection's token with a later one for the same subject.
    Refresh {
        token: Cow<'a, str>,
    },
}

#[cfg(test)]
impl PartialEq for Command<'_> {
    fn eq(&self, other: &Self) -> bool {
        // RawValue has no PartialEq: compare the debug forms, which hold the raw text.
        format!("{self:?}") == format!("{other:?}")
    }
}

/// A parsed client frame.
#[derive(Debug)]
pub struct ClientFrame<'a> {
    pub request_id: Option<Cow<'a, str>>,
    pub command: Command<'a>,
}

/// A frame that is not a valid command: always answered with `bad_request`, echoing the
/// `request_id` when one could be read.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError<'a> {
    pub request_id: Option<Cow<'a, str>>,
    pub message: String,
}

/// The frames a client sends, one variant per action, with the fields [`parse_client_frame`]
/// reads: the source of the AsyncAPI document's client messages. The parser reads raw fields for
/// precise errors, so this type is not what parses; instead the conversion from [`ClientFrame`]
/// matches every [`Command`] (a new command does not compile until it is documented here) and a
/// test sends every variant through the parser and back.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientFrameSchema {
    /// Starts delivery of a topic's messages, after an optional replay from history. Subscribing
    /// again is acked again and never doubles delivery.
    Subscribe {
        topic: String,
        /// Replay the newest N messages history holds first (not with `since_seq`).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        replay_last: Option<u64>,
        /// Replay every held message with a greater seq first: resume after a reconnect (not
        /// with `replay_last`).
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        since_seq: Option<u64>,
        /// Only with `since_seq`: the topic's epoch when that seq was seen; if it changed, the
        /// ack says `recovered: false`.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        epoch: Option<String>,
        /// Echoed in the reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<String>,
    },
    /// Stops delivery of a topic; acked also when not subscribed.
    Unsubscribe {
        topic: String,
        /// Echoed in the reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<String>,
    },
    /// Publishes a message, delivered to every subscriber of the topic, the sender included.
    Publish {
        topic: String,
        /// Any JSON value, `null` included; delivered byte for byte as written.
        #[schema(value_type = serde_json::Value)]
        message: Box<RawValue>,
        /// Echoed in the reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<String>,
    },
    /// Asks for a `pong`.
    Ping {
        /// Echoed in the reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<String>,
    },
    /// Replaces the connection's token (when the server requires tokens) with a valid one for
    /// the same `sub` that expires no earlier: acked with `refreshed`. Without it, the server
    /// closes the connection with 4001 "token expired" at the token's `exp`. The new token's
    /// rights apply from then on: a subscription they no longer allow ends with
    /// `subscription_revoked`.
    Refresh {
        /// The new JWT.
        token: String,
        /// Echoed in the reply.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<String>,
    },
}

impl From<&ClientFrame<'_>> for ClientFrameSchema {
    fn from(frame: &ClientFrame<'_>) -> Self {
        let request_id = frame.request_id.as_deref().map(str::to_owned);
        match &frame.command {
            Command::Subscribe { topic, replay } => {
                let (replay_last, since_seq, epoch) = match replay {
                    Replay::None => (None, None, None),
                    Replay::Last(n) => (Some(*n), None, None),
                    Replay::After { seq, epoch } => {
                        (None, Some(*seq), epoch.as_deref().map(str::to_owned))
                    }
                };
                ClientFrameSchema::Subscribe {
                    topic: topic.to_string(),
                    replay_last,
                    since_seq,
                    epoch,
                    request_id,
                }
            }
            Command::Unsubscribe { topic } => ClientFrameSchema::Unsubscribe {
                topic: topic.to_string(),
                request_id,
            },
            Command::Publish { topic, message } => ClientFrameSchema::Publish {
                topic: topic.to_string(),
                message: (*message).to_owned(),
                request_id,
            },
            Command::Ping => ClientFrameSchema::Ping { request_id },
            Command::Refresh { token } => ClientFrameSchema::Refresh {
                token: token.to_string(),
                request_id,
            },
        }
    }
}

/// Every field as raw JSON, so that one mistyped field gives a precise error instead of failing
/// the whole frame, and so a present `null` is told apart from a missing field.
#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    action: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    request_id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    topic: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    message: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    replay_last: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    since_seq: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    epoch: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    token: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses one text frame. Unknown fields are ignored.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame<'_>, FrameError<'_>> {
    let malformed = |why: String| FrameError {
        request_id: None,
        message: format!("malformed frame: expected a JSON object ({why})"),
    };
    if !super::looks_like_object(text.as_bytes()) {
        return Err(malformed("it does not start with '{'".to_owned()));
    }
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let request_id = match raw.request_id {
        None => None,
        Some(v) => Some(string(v).ok_or_else(|| FrameError {
            request_id: None,
            message: "field 'request_id' must be a string".to_owned(),
        })?),
    };
    let fail = |message: String| FrameError {
        request_id: request_id.clone(),
        message,
    };
    let action = required(raw.action, "action", "a string", string).map_err(&fail)?;
    let command = match action.as_ref() {
        "subscribe" => Command::Subscribe {
            topic: required(raw.topic, "topic", "a string", string).map_err(&fail)?,
            replay: replay(&raw).map_err(&fail)?,
        },
        "unsubscribe" => Command::Unsubscribe {
            topic: required(raw.topic, "topic", "a string", string).map_err(&fail)?,
        },
        "publish" => Command::Publish {
            topic: required(raw.topic, "topic", "a string", string).map_err(&fail)?,
            message: raw
                .message
                .ok_or_else(|| fail("missing field 'message' (any JSON value)".to_owned()))?,
        },
        "ping" => Command::Ping,
        "refresh" => Command::Refresh {
            token: required(raw.token, "token", "a string", string).map_err(&fail)?,
        },
        other => {
            return Err(fail(format!(
                "unknown action '{other}': expected subscribe, unsubscribe, publish, ping or \
                 refresh"
            )));
        }
    };
    Ok(ClientFrame {
        request_id,
        command,
    })
}

fn replay<'a>(raw: &RawFrame<'a>) -> Result<Replay<'a>, String> {
    let last = optional(
        raw.replay_last,
        "replay_last",
        "a non-negative integer",
        integer,
    )?;
    let since = optional(
        raw.since_seq,
        "since_seq",
        "a non-negative integer",
        integer,
    )?;
    let epoch = optional(raw.epoch, "epoch", "a string", string)?;
    match (last, since) {
        (Some(_), Some(_)) => Err("send either 'replay_last' or 'since_seq', not both".to_owned()),
        (Some(_), None) | (None, None) if epoch.is_some() => {
            Err("field 'epoch' goes with 'since_seq'".to_owned())
        }
        (Some(n), None) => Ok(Replay::Last(n)),
        (None, Some(seq)) => Ok(Replay::After { seq, epoch }),
        (None, None) => Ok(Replay::None),
    }
}

fn string(v: &RawValue) -> Option<Cow<'_, str>> {
    let json = v.get();
    // A string without escapes is its text between the quotes (the value is valid JSON): no
    // copy. serde's `Cow` would always copy (it deserializes into a `String`).
    if let Some(text) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"'))
        && !text.contains('\\')
    {
        return Some(Cow::Borrowed(text));
    }
    serde_json::from_str::<String>(json).ok().map(Cow::Owned)
}

fn integer(v: &RawValue) -> Option<u64> {
    serde_json::from_str(v.get()).ok()
}

fn required<'a, T>(
    v: Option<&'a RawValue>,
    name: &str,
    what: &str,
    convert: fn(&'a RawValue) -> Option<T>,
) -> Result<T, String> {
    optional(v, name, what, convert)?.ok_or_else(|| format!("missing field '{name}' ({what})"))
}

fn optional<'a, T>(
    v: Option<&'a RawValue>,
    name: &str,
    what: &str,
    convert: fn(&'a RawValue) -> Option<T>,
) -> Result<Option<T>, String> {
    v.map(|v| convert(v).ok_or_else(|| format!("field '{name}' must be {what}")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> ClientFrame<'_> {
        parse_client_frame(text).unwrap_or_else(|e| panic!("{text}: {}", e.message))
    }

    fn err(text: &str) -> FrameError<'_> {
        parse_client_frame(text).expect_err(text)
    }

    #[test]
    fn parses_every_action() {
        let f = ok(r#"{"action":"subscribe","topic":"news","replay_last":10,"request_id":"r1"}"#);
        assert_eq!(f.request_id.as_deref(), Some("r1"));
        assert_eq!(
            f.command,
            Command::Subscribe {
                topic: "news".into(),
                replay: Replay::Last(10)
            }
        );
        let f = ok(r#"{"action":"subscribe","topic":"news","since_seq":5,"epoch":"e1"}"#);
        assert_eq!(
            f.command,
            Command::Subscribe {
                topic: "news".into(),
                replay: Replay::After {
                    seq: 5,
                    epoch: Some("e1".into())
                }
            }
        );
        let f = ok(r#"{"action":"unsubscribe","topic":"news","extra":[1]}"#);
        assert_eq!(
            f.command,
            Command::Unsubscribe {
                topic: "news".into()
            }
        );
        assert_eq!(ok(r#"{"action":"ping"}"#).command, Command::Ping);
    }

    #[test]
    fn publish_keeps_message_text_and_accepts_null() {
        let f = ok(r#"{"action":"publish","topic":"t","message":{"a": [1, 2]}}"#);
        let Command::Publish { message, .. } = f.command else {
            panic!()
        };
        assert_eq!(message.get(), r#"{"a": [1, 2]}"#);
        let f = ok(r#"{"action":"publish","topic":"t","message":null}"#);
        let Command::Publish { message, .. } = f.command else {
            panic!()
        };
        assert_eq!(message.get(), "null");
    }

    #[test]
    fn reports_what_is_wrong_and_keeps_request_id() {
        for (text, needle) in [
            ("not json", "malformed"),
            ("[1,2]", "malformed"),
            (r#"["ping"]"#, "malformed"),
            (r#"{"action":"x","request_id":"r"}"#, "unknown action 'x'"),
            (r#"{"request_id":"r"}"#, "missing field 'action'"),
            (
                r#"{"action":7,"request_id":"r"}"#,
                "'action' must be a string",
            ),
            (
                r#"{"action":"publish","topic":"t","request_id":"r"}"#,
                "missing field 'message'",
            ),
            (
                r#"{"action":"subscribe","request_id":"r"}"#,
                "missing field 'topic'",
            ),
            (
                r#"{"action":"subscribe","topic":1,"request_id":"r"}"#,
                "'topic' must be a string",
            ),
            (
                r#"{"action":"subscribe","topic":"t","replay_last":-1,"request_id":"r"}"#,
                "replay_last",
            ),
            (
                r#"{"action":"subscribe","topic":"t","replay_last":1.5,"request_id":"r"}"#,
                "replay_last",
            ),
            (
                r#"{"action":"subscribe","topic":"t","since_seq":"3","request_id":"r"}"#,
                "since_seq",
            ),
            (
                r#"{"action":"subscribe","topic":"t","since_seq":1,"replay_last":1,"request_id":"r"}"#,
                "not both",
            ),
            (
                r#"{"action":"subscribe","topic":"t","epoch":"e","request_id":"r"}"#,
                "epoch",
            ),
        ] {
            let e = err(text);
            assert!(e.message.contains(needle), "{text}: {}", e.message);
            if text.contains("request_id") {
                assert_eq!(e.request_id.as_deref(), Some("r"), "{text}");
            }
        }
        let e = err(r#"{"action":"ping","request_id":5}"#);
        assert!(e.message.contains("request_id"));
        assert_eq!(e.request_id, None);
    }
}

#[cfg(test)]
mod properties;
