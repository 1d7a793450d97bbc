//! Frames the server sends on `/ws`.

use std::ops::Range;

use serde::Serialize;
use utoipa::ToSchema;

use super::{ErrorBody, Frame};

/// Every frame the server sends, tagged by `action`. Replies to a client frame echo its
/// `request_id`; frames the server sends on its own (`message`, `lagged`, `topic_deleted`) have none.
///
/// Its schema is the source of the AsyncAPI document's server messages.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// Acknowledges `subscribe`; `replayed` history messages follow it, then live ones.
    Subscribed {
        topic: &'a str,
        epoch: &'a str,
        /// How many history messages follow this ack.
        replayed: usize,
        last_seq: u64,
        /// Only in reply to `since_seq`: true when every message after it was replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        recovered: Option<bool>,
        /// The `request_id` of the client frame this answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<&'a str>,
    },
    /// Acknowledges `unsubscribe`, also when the client was not subscribed.
    Unsubscribed {
        topic: &'a str,
        /// The `request_id` of the client frame this answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<&'a str>,
    },
    /// Acknowledges `publish`: the message's place in its topic.
    Published {
        topic: &'a str,
        seq: u64,
        /// The topic's life the seq belongs to (it changes when the topic is recreated).
        epoch: &'a str,
        /// The `request_id` of the client frame this answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<&'a str>,
    },
    /// Answers `ping`.
    Pong {
        /// The `request_id` of the client frame this answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<&'a str>,
    },
    /// A client frame failed; the connection stays open.
    Error {
        error: ErrorBody,
        /// The `request_id` of the client frame this answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<&'a str>,
    },
    /// A delivered message. Built by [`encode_message_frame`] on the hot path; this variant
    /// documents its shape and checks the hand-written encoding in tests.
    Message {
        topic: &'a str,
        seq: u64,
        /// The message exactly as it was published: any JSON value.
        #[schema(value_type = serde_json::Value)]
        message: &'a serde_json::value::RawValue,
        /// When the server accepted it, RFC 3339 UTC with milliseconds.
        published_at: &'a str,
    },
    /// Under the `drop` policy: this many messages of `topic` were not delivered to this client.
    Lagged { topic: &'a str, dropped: u64 },
    /// The topic was deleted; the client is no longer subscribed to it.
    TopicDeleted { topic: &'a str },
    /// Acknowledges `refresh`: the new token applies from now on.
    Refreshed {
        /// When the new token expires, in seconds since the Unix epoch: refresh before then.
        expires_at: u64,
        /// The `request_id` of the client frame this answers, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        request_id: Option<&'a str>,
    },
    /// After a `refresh`: the new token does not allow this subscription, so it has ended; the
    /// client is no longer subscribed to the topic.
    SubscriptionRevoked { topic: &'a str },
}

/// Serializes a frame into the text sent on the socket.
pub fn encode_server_frame(frame: &ServerFrame<'_>) -> Frame {
    // Serializing these types cannot fail: no maps with non-string keys, no failing Serialize impls.
    Frame::from(serde_json::to_string(frame).unwrap_or_default())
}

/// A published message, encoded once as the `message` frame every subscriber receives, with
/// where its fields sit inside it: history hands out the message and its timestamp from the
/// frame, without a second copy.
#[derive(Debug)]
pub struct MessageFrame {
    pub seq: u64,
    pub frame: Frame,
    /// Byte range of the `message` JSON text.
    pub message: Range<usize>,
    /// Byte range of the `published_at` timestamp (without its quotes).
    pub published_at: Range<usize>,
}

impl MessageFrame {
    /// The message's JSON text, as published.
    pub fn message(&self) -> &str {
        self.slice(&self.message)
    }

    /// When it was published, RFC 3339 UTC with milliseconds.
    pub fn published_at(&self) -> &str {
        self.slice(&self.published_at)
    }

    fn slice(&self, range: &Range<usize>) -> &str {
        // The ranges were cut at ASCII delimiters, so they are always on character boundaries.
        self.frame.get(range.clone()).unwrap_or_default()
    }
}

/// The parts of a `message` frame around its seq: the head (up to `"seq":`) and the tail (the
/// message and timestamp). The memory engine joins them around the seq at once; the Redis
/// engine sends both to Redis, where the seq is assigned, and gets the frame back whole.
pub fn message_frame_parts(
    topic_json: &str,
    message: &str,
    published_at: &str,
) -> (String, String) {
    let mut head = String::with_capacity(HEAD.len() + topic_json.len() + SEQ.len());
    head.push_str(HEAD);
    head.push_str(topic_json);
    head.push_str(SEQ);
    let mut tail = String::with_capacity(message.len() + published_at.len() + 32);
    tail.push_str(MESSAGE);
    tail.push_str(message);
    tail.push_str(PUBLISHED_AT);
    tail.push_str(published_at);
    tail.push_str(r#""}"#);
    (head, tail)
}

const HEAD: &str = r#"{"action":"message","topic":"#;
const SEQ: &str = r#","seq":"#;
const MESSAGE: &str = r#","message":"#;
const PUBLISHED_AT: &str = r#","published_at":""#;

/// Encodes a delivered `message` frame once per publish, to be shared by every subscriber.
/// `topic_json` is the topic name already encoded as a JSON string.
pub fn encode_message_frame(
    topic_json: &str,
    seq: u64,
    message: &str,
    published_at: &str,
) -> MessageFrame {
    let mut out = String::with_capacity(
        HEAD.len() + topic_json.len() + message.len() + published_at.len() + 64,
    );
    out.push_str(HEAD);
    out.push_str(topic_json);
    out.push_str(SEQ);
    push_u64(&mut out, seq);
    out.push_str(MESSAGE);
    let message = span(&mut out, message);
    out.push_str(PUBLISHED_AT);
    let published_at = span(&mut out, published_at);
    out.push_str(r#""}"#);
    MessageFrame {
        seq,
        frame: Frame::from(out),
        message,
        published_at,
    }
}

impl MessageFrame {
    /// Finds the fields of a frame this module encoded (kept as text in Redis history). `None`
    /// when the text is not such a frame.
    pub fn parse(text: String) -> Option<MessageFrame> {
        let seq_start = text.find(SEQ)? + SEQ.len();
        let seq_end = seq_start + text[seq_start..].find(',')?;
        let seq = text[seq_start..seq_end].parse().ok()?;
        let message_start = seq_end + MESSAGE.len();
        if !text[seq_end..].starts_with(MESSAGE) {
            return None;
        }
        let message_end = text.rfind(PUBLISHED_AT)?;
        let at_end = text.len().checked_sub(2)?;
        let at_start = message_end + PUBLISHED_AT.len();
        if message_end < message_start || at_end < at_start || !text.ends_with(r#""}"#) {
            return None;
        }
        Some(MessageFrame {
            seq,
            frame: Frame::from(text),
            message: message_start..message_end,
            published_at: at_start..at_end,
        })
    }
}

/// Encodes the `published` ack as [`encode_server_frame`] would (the tests check it), by hand:
/// it answers every publish, and serde_json's string escaping cost about 1 200 instructions of
/// each (issue 14).
pub fn encode_published(topic: &str, seq: u64, epoch: &str, request_id: Option<&str>) -> Frame {
    let ids = topic.len() + epoch.len() + request_id.map_or(0, str::len);
    let mut out = String::with_capacity(80 + ids);
    out.push_str(r#"{"action":"published","topic":"#);
    push_json_str(&mut out, topic);
    out.push_str(SEQ);
    push_u64(&mut out, seq);
    out.push_str(r#","epoch":"#);
    push_json_str(&mut out, epoch);
    if let Some(id) = request_id {
        out.push_str(r#","request_id":"#);
        push_json_str(&mut out, id);
    }
    out.push('}');
    Frame::from(out)
}

/// Appends `text` as a JSON string: as it is when nothing in it needs escaping (the usual
/// case), else as serde_json escapes it.
fn push_json_str(out: &mut String, text: &str) {
    // A fold without an early exit: the compiler checks many bytes at a time.
    let plain = !text.bytes().fold(false, |escape, b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
}

/// Appends `text` and returns where it went.
fn span(out: &mut String, text: &str) -> Range<usize> {
    let start = out.len();
    out.push_str(text);
    start..out.len()
}

/// Appends the decimal digits of `n` without going through the `fmt` machinery.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only: from_utf8 cannot fail, and is cheaper than pushing char by char.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn hand_encoded_message_frame_matches_serde() {
        let raw = RawValue::from_string(r#"{"data":"Hello","n":[1,2]}"#.to_owned()).unwrap();
        for seq in [0, 1, 9, 10, 152, u64::MAX] {
            let encoded =
                encode_message_frame(r#""news""#, seq, raw.get(), "2026-11-27T12:00:00.123Z");
            let expected = serde_json::to_string(&ServerFrame::Message {
                topic: "news",
                seq,
                message: &raw,
                published_at: "2026-11-27T12:00:00.123Z",
            })
            .unwrap();
            assert_eq!(encoded.frame.as_str(), expected);
            let (head, tail) =
                message_frame_parts(r#""news""#, raw.get(), "2026-11-27T12:00:00.123Z");
            assert_eq!(format!("{head}{seq}{tail}"), expected);
            let parsed = MessageFrame::parse(expected.clone()).unwrap();
            assert_eq!((parsed.seq, parsed.message()), (seq, raw.get()));
            assert_eq!(parsed.published_at(), "2026-11-27T12:00:00.123Z");
            assert_eq!(encoded.message(), raw.get());
            assert_eq!(encoded.published_at(), "2026-11-27T12:00:00.123Z");
        }
    }

    #[test]
    fn hand_encoded_published_ack_matches_serde() {
        let ids = [
            None,
            Some(""),
            Some("r1"),
            Some("quote\" and \\ backslash"),
            Some("tab\t nul\u{0} del\u{7f}"),
            Some("ünï 😀"),
        ];
        for (topic, epoch) in [("news", "AbC123xyz789"), ("a.b_c-d:e", ""), ("q\"t", "e\n")] {
            for request_id in ids {
                for seq in [0, 7, u64::MAX] {
                    let expected = encode_server_frame(&ServerFrame::Published {
                        topic,
                        seq,
                        epoch,
                        request_id,
                    });
                    assert_eq!(encode_published(topic, seq, epoch, request_id), expected);
                }
            }
        }
    }

    #[test]
    fn parse_refuses_what_is_not_a_message_frame() {
        assert!(MessageFrame::parse(r#"{"action":"pong"}"#.to_owned()).is_none());
        assert!(MessageFrame::parse(r#"{"x","seq":1,"y":2}"#.to_owned()).is_none());
    }

    #[test]
    fn replies_omit_absent_request_id() {
        let frame = encode_server_frame(&ServerFrame::Pong { request_id: None });
        assert_eq!(frame.as_str(), r#"{"action":"pong"}"#);
        let frame = encode_server_frame(&ServerFrame::Pong {
            request_id: Some("r1"),
        });
        assert_eq!(frame.as_str(), r#"{"action":"pong","request_id":"r1"}"#);
    }
}
