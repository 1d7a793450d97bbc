//! The few frames the harness sends, and a cheap reading of the frames it receives.
//!
//! Our broker and fanout-reference word their replies differently (`{"action":"published",...}`
//! against `{"type":"ack",...}`), but both answer every client frame exactly once, in order, and
//! both deliver the published `message` text byte for byte. So by default the harness never
//! parses a frame: a delivery is recognised by the timestamp marker inside the message it
//! published, and anything else is a reply, an error when it has an `"error"` key.
//! `--parse full` reads the same from a full JSON parse of every frame instead, as a real client
//! pays for it.

use std::sync::LazyLock;
use std::time::Instant;

use memchr::memmem::Finder;

/// Nanoseconds are written as this many digits, so every message of a run has the same size.
const TS_DIGITS: usize = 16;
/// What precedes the send time in every published message. The time is a string of digits: JSON
/// numbers may not have the leading zeros that keep every message the same size.
const MARKER: &str = r#"{"bt":""#;
/// The smallest message: marker, time, and an empty pad.
pub const MIN_MESSAGE_BYTES: usize = MARKER.len() + TS_DIGITS + r#"","p":""}"#.len();

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
static MARKER_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER));
static ERROR_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(r#""error""#));

/// Nanoseconds since the harness started: the clock every send time and receive time uses.
pub fn now_ns() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Builds publish frames for one topic with a message of a fixed size.
pub struct PublishFrames {
    prefix: String,
    pad: String,
}

impl PublishFrames {
    pub fn new(topic: &str, message_bytes: usize) -> Self {
        PublishFrames {
            prefix: format!(r#"{{"action":"publish","topic":"{topic}","message":"#),
            pad: "x".repeat(message_bytes.saturating_sub(MIN_MESSAGE_BYTES)),
        }
    }

    /// The frame for publish number `id`, stamped with the current time.
    pub fn frame(&self, id: u64) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(self.prefix.len() + self.pad.len() + 64);
        s.push_str(&self.prefix);
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            r#"{MARKER}{:0width$}","p":"{}"}},"request_id":"p{id}"}}"#,
            now_ns(),
            self.pad,
            width = TS_DIGITS
        );
        s
    }
}

pub fn subscribe_frame(topic: &str) -> String {
    format!(r#"{{"action":"subscribe","topic":"{topic}","request_id":"s"}}"#)
}

/// What a received text frame is.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A delivery of a message this harness published, with its send time.
    Delivery { sent_ns: u64 },
    /// A reply to one of our frames.
    Reply,
    /// An error reply.
    Error,
}

pub fn classify(text: &[u8]) -> Received {
    if let Some(at) = MARKER_FINDER.find(text) {
        let digits = text.get(at + MARKER.len()..at + MARKER.len() + TS_DIGITS);
        if let Some(sent_ns) = digits.and_then(parse_digits) {
            return Received::Delivery { sent_ns };
        }
    }
    if ERROR_FINDER.find(text).is_some() {
        Received::Error
    } else {
        Received::Reply
    }
}

/// [`classify`] from a full parse of the frame: a delivery has the send time at `message.bt`,
/// an error an `error` key. A frame that is not JSON counts as an error.
pub fn classify_full(text: &[u8]) -> Received {
    let Ok(frame) = serde_json::from_slice::<serde_json::Value>(text) else {
        return Received::Error;
    };
    let sent = frame
        .get("message")
        .and_then(|m| m.get("bt"))
        .and_then(serde_json::Value::as_str)
        .filter(|digits| digits.len() == TS_DIGITS)
        .and_then(|digits| parse_digits(digits.as_bytes()));
    match sent {
        Some(sent_ns) => Received::Delivery { sent_ns },
        None if frame.get("error").is_some() => Received::Error,
        None => Received::Reply,
    }
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_message_has_the_asked_size_and_is_recognised_when_delivered() {
        let frames = PublishFrames::new("t1", 64);
        let frame = frames.frame(7);
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["request_id"], "p7");
        assert_eq!(serde_json::to_string(&v["message"]).unwrap().len(), 64);
        let message = serde_json::to_string(&v["message"]).unwrap();
        // Our broker's delivery and fanout-reference's.
        let ours = format!(
            r#"{{"action":"message","topic":"t1","seq":3,"message":{message},"published_at":"x"}}"#
        );
        let reference = format!(r#"{{"type":"message","topic":"t1","message":{message}}}"#);
        for delivered in [ours, reference] {
            for read in [classify, classify_full] {
                assert!(matches!(
                    read(delivered.as_bytes()),
                    Received::Delivery { sent_ns } if sent_ns <= now_ns()
                ));
            }
        }
    }

    #[test]
    fn replies_and_errors_of_both_servers() {
        for reply in [
            r#"{"action":"published","topic":"t","seq":1,"request_id":"p1"}"#,
            r#"{"action":"subscribed","topic":"t","epoch":"e","replayed":0,"last_seq":0,"request_id":"s"}"#,
            r#"{"type":"ack","request_id":"p1"}"#,
        ] {
            assert_eq!(classify(reply.as_bytes()), Received::Reply);
            assert_eq!(classify_full(reply.as_bytes()), Received::Reply);
        }
        for error in [
            r#"{"action":"error","error":{"code":"topic_not_found","message":"m"},"request_id":"s"}"#,
            r#"{"type":"error","request_id":"s","error":{"code":"BAD_REQUEST"}}"#,
        ] {
            assert_eq!(classify(error.as_bytes()), Received::Error);
            assert_eq!(classify_full(error.as_bytes()), Received::Error);
        }
        assert_eq!(classify_full(b"not json"), Received::Error);
    }
}
