//! Frames the server sends on `/ws`.

use serde::Serialize;

use super::{ErrorBody, Frame};

/// Every frame the server sends, tagged by `action`. Replies to a client frame echo its
/// `request_id`; frames the server sends on its own (`message`, `lagged`, `topic_deleted`) have none.
#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Subscribed {
        topic: &'a str,
        epoch: &'a str,
        /// How many history messages follow this ack.
        replayed: usize,
        last_seq: u64,
        /// Only in reply to `since_seq`: true when every message after it was replayed.
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    Unsubscribed {
        topic: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    Published {
        topic: &'a str,
        seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    Error {
        error: ErrorBody,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
    },
    /// A delivered message. Built by [`encode_message_frame`] on the hot path; this variant
    /// documents its shape and checks the hand-written encoding in tests.
    Message {
        topic: &'a str,
        seq: u64,
        message: &'a serde_json::value::RawValue,
        published_at: &'a str,
    },
    /// Under the `drop` policy: this many messages of `topic` were not delivered to this client.
    Lagged { topic: &'a str, dropped: u64 },
    /// The topic was deleted; the client is no longer subscribed to it.
    TopicDeleted { topic: &'a str },
}

/// Serializes a frame into the text sent on the socket.
pub fn encode_server_frame(frame: &ServerFrame<'_>) -> Frame {
    // Serializing these types cannot fail: no maps with non-string keys, no failing Serialize impls.
    Frame::from(serde_json::to_string(frame).unwrap_or_default())
}

/// Encodes a delivered `message` frame once per publish, to be shared by every subscriber.
/// `topic_json` is the topic name already encoded as a JSON string. Returns the frame and the
/// byte range of `message` inside it, so history can hand out the payload without a second copy.
pub fn encode_message_frame(
    topic_json: &str,
    seq: u64,
    message: &str,
    published_at: &str,
) -> (Frame, std::ops::Range<usize>) {
    const HEAD: &str = r#"{"action":"message","topic":"#;
    let mut out = String::with_capacity(
        HEAD.len() + topic_json.len() + message.len() + published_at.len() + 64,
    );
    out.push_str(HEAD);
    out.push_str(topic_json);
    out.push_str(r#","seq":"#);
    push_u64(&mut out, seq);
    out.push_str(r#","message":"#);
    let start = out.len();
    out.push_str(message);
    let end = out.len();
    out.push_str(r#","published_at":""#);
    out.push_str(published_at);
    out.push_str(r#""}"#);
    (Frame::from(out), start..end)
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
    out.extend(digits[i..].iter().map(|&d| d as char));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn hand_encoded_message_frame_matches_serde() {
        let raw = RawValue::from_string(r#"{"data":"Hello","n":[1,2]}"#.to_owned()).unwrap();
        for seq in [0, 1, 9, 10, 152, u64::MAX] {
            let (bytes, range) =
                encode_message_frame(r#""news""#, seq, raw.get(), "2026-11-27T12:00:00.123Z");
            let expected = serde_json::to_string(&ServerFrame::Message {
                topic: "news",
                seq,
                message: &raw,
                published_at: "2026-11-27T12:00:00.123Z",
            })
            .unwrap();
            assert_eq!(bytes.as_str(), expected);
            assert_eq!(&bytes[range], raw.get());
        }
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
