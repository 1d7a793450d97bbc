//! The frames as the client sees them: its own frames encoded from the protocol's documented
//! shape ([`ClientFrameSchema`], the type the AsyncAPI document is built from), and the server's
//! frames decoded into owned values.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::events::Start;
use crate::protocol::{ClientFrameSchema, ErrorBody};

/// A `subscribed` ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ack {
    pub topic: String,
    pub epoch: String,
    pub replayed: u64,
    pub last_seq: u64,
    pub recovered: Option<bool>,
}

/// A delivered `message` frame.
#[derive(Debug)]
pub(super) struct Delivered {
    pub topic: String,
    pub seq: u64,
    pub message: Box<RawValue>,
    pub published_at: String,
}

/// What a reply says, for the request it answers.
#[derive(Debug)]
pub(super) enum Reply {
    Subscribed(Ack),
    Unsubscribed,
    Published(u64),
    Pong,
    /// A `refresh` was accepted; the new token expires then (seconds since the Unix epoch).
    Refreshed(u64),
    Error(ErrorBody),
}

/// A frame from the server.
#[derive(Debug)]
pub(super) enum Incoming {
    /// A reply to the request with this `request_id` (None: the server could not read one).
    Reply {
        request_id: Option<String>,
        reply: Reply,
    },
    Message(Delivered),
    Lagged {
        topic: String,
    },
    TopicDeleted {
        topic: String,
    },
    /// After a refresh, the new token does not allow this subscription.
    Revoked {
        topic: String,
    },
    /// An action this client does not know: ignored.
    Unknown(String),
}

/// Every field any server frame has, so that one pass reads them all (serde cannot read a raw
/// `message` inside an internally tagged enum).
#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    request_id: Option<String>,
    topic: Option<String>,
    epoch: Option<String>,
    replayed: Option<u64>,
    last_seq: Option<u64>,
    recovered: Option<bool>,
    seq: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    message: Option<Box<RawValue>>,
    published_at: Option<String>,
    error: Option<ErrorBody>,
    expires_at: Option<u64>,
}

/// A field that may be `null` and still be present (serde reads `null` as a missing `Option`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// A frame that is not what the protocol says: the reason, and the `request_id` it carried if
/// one could be read (so the request it answers can be failed instead of waiting forever).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadFrame {
    pub request_id: Option<String>,
    pub reason: String,
}

pub(super) fn parse(text: &str) -> Result<Incoming, BadFrame> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| BadFrame {
        request_id: request_id_of(text),
        reason: format!("unreadable frame ({e}): {}", clip(text)),
    })?;
    let missing = |field: &str| BadFrame {
        request_id: raw.request_id.clone(),
        reason: format!("'{}' frame without '{field}': {}", raw.action, clip(text)),
    };
    let reply = |reply| {
        Ok(Incoming::Reply {
            request_id: raw.request_id.clone(),
            reply,
        })
    };
    match &*raw.action {
        "message" => Ok(Incoming::Message(Delivered {
            topic: raw.topic.clone().ok_or_else(|| missing("topic"))?,
            seq: raw.seq.ok_or_else(|| missing("seq"))?,
            message: raw.message.clone().ok_or_else(|| missing("message"))?,
            published_at: raw.published_at.clone().unwrap_or_default(),
        })),
        "subscribed" => reply(Reply::Subscribed(Ack {
            topic: raw.topic.clone().ok_or_else(|| missing("topic"))?,
            epoch: raw.epoch.clone().ok_or_else(|| missing("epoch"))?,
            replayed: raw.replayed.ok_or_else(|| missing("replayed"))?,
            last_seq: raw.last_seq.ok_or_else(|| missing("last_seq"))?,
            recovered: raw.recovered,
        })),
        "unsubscribed" => reply(Reply::Unsubscribed),
        "published" => reply(Reply::Published(raw.seq.ok_or_else(|| missing("seq"))?)),
        "pong" => reply(Reply::Pong),
        "refreshed" => reply(Reply::Refreshed(
            raw.expires_at.ok_or_else(|| missing("expires_at"))?,
        )),
        "error" => reply(Reply::Error(
            raw.error.clone().ok_or_else(|| missing("error"))?,
        )),
        "lagged" => Ok(Incoming::Lagged {
            topic: raw.topic.clone().ok_or_else(|| missing("topic"))?,
        }),
        "topic_deleted" => Ok(Incoming::TopicDeleted {
            topic: raw.topic.clone().ok_or_else(|| missing("topic"))?,
        }),
        "subscription_revoked" => Ok(Incoming::Revoked {
            topic: raw.topic.clone().ok_or_else(|| missing("topic"))?,
        }),
        other => Ok(Incoming::Unknown(other.to_owned())),
    }
}

/// The `request_id` of a frame that does not parse as a whole, if it has a readable one.
fn request_id_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        request_id: Option<String>,
    }
    serde_json::from_str::<Id>(text).ok()?.request_id
}

/// The start of a frame, for error messages.
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn encode(frame: &ClientFrameSchema) -> String {
    // Strings, integers and an already valid raw JSON value: serializing cannot fail.
    serde_json::to_string(frame).unwrap_or_default()
}

pub(super) fn subscribe(topic: &str, start: &Start, request_id: String) -> String {
    let (replay_last, since_seq, epoch) = match start {
        Start::Now => (None, None, None),
        Start::Last(n) => (Some(*n), None, None),
        Start::After { seq, epoch } => (None, Some(*seq), epoch.clone()),
    };
    encode(&ClientFrameSchema::Subscribe {
        topic: topic.to_owned(),
        replay_last,
        since_seq,
        epoch,
        request_id: Some(request_id),
    })
}

pub(super) fn unsubscribe(topic: &str, request_id: String) -> String {
    encode(&ClientFrameSchema::Unsubscribe {
        topic: topic.to_owned(),
        request_id: Some(request_id),
    })
}

pub(super) fn publish(topic: &str, message: Box<RawValue>, request_id: String) -> String {
    encode(&ClientFrameSchema::Publish {
        topic: topic.to_owned(),
        message,
        request_id: Some(request_id),
    })
}

pub(super) fn refresh(token: &str, request_id: String) -> String {
    encode(&ClientFrameSchema::Refresh {
        token: token.to_owned(),
        request_id: Some(request_id),
    })
}

pub(super) fn ping(request_id: String) -> String {
    encode(&ClientFrameSchema::Ping {
        request_id: Some(request_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        Command, ErrorCode, Replay, ServerFrame, encode_message_frame, encode_server_frame,
        parse_client_frame,
    };

    /// Every frame the server can send, encoded by the server's own code, reads back.
    #[test]
    fn reads_every_server_frame_as_the_server_encodes_it() {
        let raw = RawValue::from_string(r#"{"text":"hi"}"#.to_owned()).unwrap_or_default();
        let frames = [
            encode_server_frame(&ServerFrame::Subscribed {
                topic: "news",
                epoch: "E1",
                replayed: 2,
                last_seq: 9,
                recovered: Some(false),
                request_id: Some("c1"),
            }),
            encode_server_frame(&ServerFrame::Unsubscribed {
                topic: "news",
                request_id: Some("c2"),
            }),
            encode_server_frame(&ServerFrame::Published {
                topic: "news",
                seq: 10,
                epoch: "E1",
                request_id: Some("c3"),
            }),
            encode_server_frame(&ServerFrame::Pong {
                request_id: Some("c4"),
            }),
            encode_server_frame(&ServerFrame::Error {
                error: ErrorBody {
                    code: ErrorCode::TopicNotFound,
                    message: "no".to_owned(),
                },
                request_id: Some("c5"),
            }),
            encode_message_frame(r#""news""#, 11, raw.get(), "2026-11-27T12:00:00.123Z").frame,
            encode_server_frame(&ServerFrame::Lagged {
                topic: "news",
                dropped: 3,
            }),
            encode_server_frame(&ServerFrame::TopicDeleted { topic: "news" }),
        ];
        let parsed: Vec<String> = frames
            .iter()
            .map(|f| format!("{:?}", parse(f.as_str())))
            .collect();
        let expected = [
            r#"Ok(Reply { request_id: Some("c1"), reply: Subscribed(Ack { topic: "news", epoch: "E1", replayed: 2, last_seq: 9, recovered: Some(false) }) })"#,
            r#"Ok(Reply { request_id: Some("c2"), reply: Unsubscribed })"#,
            r#"Ok(Reply { request_id: Some("c3"), reply: Published(10) })"#,
            r#"Ok(Reply { request_id: Some("c4"), reply: Pong })"#,
            r#"Ok(Reply { request_id: Some("c5"), reply: Error(ErrorBody { code: TopicNotFound, message: "no" }) })"#,
            r#"Ok(Message(Delivered { topic: "news", seq: 11, message: RawValue({"text":"hi"}), published_at: "2026-11-27T12:00:00.123Z" }))"#,
            r#"Ok(Lagged { topic: "news" })"#,
            r#"Ok(TopicDeleted { topic: "news" })"#,
        ];
        assert_eq!(parsed, expected);
    }

    #[test]
    fn a_null_message_is_a_message() {
        let frame = encode_message_frame(r#""news""#, 1, "null", "t").frame;
        match parse(frame.as_str()) {
            Ok(Incoming::Message(m)) => assert_eq!(m.message.get(), "null"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_broken_reply_names_its_request() {
        let bad = parse(r#"{"action":"published","request_id":"c7"}"#);
        assert_eq!(
            bad.map(|_| ()).map_err(|e| e.request_id),
            Err(Some("c7".to_owned()))
        );
        let bad = parse(
            r#"{"action":"error","error":{"code":"new_code","message":"x"},"request_id":"c8"}"#,
        );
        assert_eq!(
            bad.map(|_| ()).map_err(|e| e.request_id),
            Err(Some("c8".to_owned()))
        );
        assert!(parse("not json").is_err());
        assert!(matches!(
            parse(r#"{"action":"future_notice","topic":"news"}"#),
            Ok(Incoming::Unknown(a)) if a == "future_notice"
        ));
    }

    /// What the client sends is what the server's parser reads.
    #[test]
    fn the_server_reads_every_frame_the_client_sends() {
        let frames = [
            subscribe("news", &Start::Now, "c1".to_owned()),
            subscribe("news", &Start::Last(5), "c2".to_owned()),
            subscribe(
                "news",
                &Start::After {
                    seq: 7,
                    epoch: Some("E1".to_owned()),
                },
                "c3".to_owned(),
            ),
            subscribe(
                "news",
                &Start::After {
                    seq: 7,
                    epoch: None,
                },
                "c4".to_owned(),
            ),
            unsubscribe("news", "c5".to_owned()),
            publish(
                "news",
                RawValue::from_string("[1, null]".to_owned()).unwrap_or_default(),
                "c6".to_owned(),
            ),
            ping("c7".to_owned()),
        ];
        let commands: Vec<String> = frames
            .iter()
            .map(|f| match parse_client_frame(f) {
                Ok(frame) => format!("{:?} {:?}", frame.request_id, frame.command),
                Err(e) => panic!("{f}: {e:?}"),
            })
            .collect();
        let replay = |r: Replay<'static>| {
            format!(
                "{:?}",
                Command::Subscribe {
                    topic: "news".into(),
                    replay: r
                }
            )
        };
        assert_eq!(
            commands,
            [
                format!("Some(\"c1\") {}", replay(Replay::None)),
                format!("Some(\"c2\") {}", replay(Replay::Last(5))),
                format!(
                    "Some(\"c3\") {}",
                    replay(Replay::After {
                        seq: 7,
                        epoch: Some("E1".into())
                    })
                ),
                format!(
                    "Some(\"c4\") {}",
                    replay(Replay::After {
                        seq: 7,
                        epoch: None
                    })
                ),
                r#"Some("c5") Unsubscribe { topic: "news" }"#.to_owned(),
                r#"Some("c6") Publish { topic: "news", message: RawValue([1, null]) }"#.to_owned(),
                "Some(\"c7\") Ping".to_owned(),
            ]
        );
    }
}
