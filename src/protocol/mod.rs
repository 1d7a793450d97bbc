//! The wire: every REST body and WebSocket frame, as Rust types.
//!
//! These types are the single source of both the JSON on the wire (serde) and the documented
//! schemas (utoipa), so neither the OpenAPI document nor the AsyncAPI document can drift from
//! what the server reads and sends. The module knows nothing of warp or of the broker's
//! internals; both the broker and the HTTP layer use it.

mod asyncapi;
mod client;
mod error;
mod rest;
mod server;
mod timestamp;

pub use asyncapi::{asyncapi, asyncapi_json};
pub use client::{ClientFrame, ClientFrameSchema, Command, FrameError, Replay, parse_client_frame};
pub use error::{ErrorBody, ErrorCode, ErrorResponse};
pub use rest::*;
pub use server::{
    MessageFrame, ServerFrame, encode_message_frame, encode_published, encode_server_frame,
    message_frame_parts,
};
pub use timestamp::{Timestamp, format_timestamp};

/// An encoded server frame: JSON text, shared by reference count. A `message` frame is encoded
/// once per publish and the same bytes go to history and to every subscriber's socket.
pub type Frame = tokio_tungstenite::tungstenite::Utf8Bytes;

/// Whether `json` starts like a JSON object. Checked before reading a request into a struct:
/// serde's derived `Deserialize` would also accept the struct written as an array of its fields.
///
/// ```
/// use pubsub::protocol::looks_like_object;
///
/// assert!(looks_like_object(b" {\"name\": \"news\"}"));
/// assert!(!looks_like_object(b"[\"news\"]"));
/// ```
pub fn looks_like_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Whether `json` nests arrays and objects deeper than `max` levels. Checked before parsing, so
/// that a deeply nested document is refused with a clear error (and parsing stays shallow).
///
/// ```
/// use pubsub::protocol::exceeds_depth;
///
/// assert!(!exceeds_depth(br#"{"a":[{"b":"[[[["}]}"#, 3));
/// assert!(exceeds_depth(br#"{"a":[{"b":[]}]}"#, 3));
/// ```
pub fn exceeds_depth(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            // A string: jump to its closing quote (past escaped characters). A publish is
            // mostly string content, which memchr skips many bytes at a time.
            b'"' => loop {
                let Some(k) = json
                    .get(i + 1..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                else {
                    return false;
                };
                i += 1 + k;
                if json[i] == b'"' {
                    break;
                }
                i += 1; // the escaped character
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// WebSocket close codes the server sends (RFC 6455, section 7.4.1).
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame held invalid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: used for a subscriber too slow to keep up.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame over `--max-frame-bytes`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A normal close after the client closed.
    pub const NORMAL: u16 = 1000;
    /// The server failed while serving this connection (its task panicked).
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Never sent: stands for a connection that broke without a close frame.
    pub const ABNORMAL: u16 = 1006;
    /// The connection's token expired and no `refresh` came in time (a private-use code).
    pub const TOKEN_EXPIRED: u16 = 4001;
}

#[cfg(test)]
mod tests {
    use super::exceeds_depth;
    use proptest::prelude::*;

    /// The byte-at-a-time scan `exceeds_depth` replaced: the specification it must agree with.
    fn exceeds_depth_bytewise(json: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in json {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest! {
        #[test]
        fn exceeds_depth_agrees_with_the_bytewise_scan(
            json in proptest::collection::vec(
                proptest::sample::select(b"{}[]\"\\a:,".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            prop_assert_eq!(exceeds_depth(&json, max), exceeds_depth_bytewise(&json, max));
        }
    }
}
