//! The WebSocket frames: the few fields read from a client frame, and the replies and deliveries
//! written back. Nothing is validated beyond what routing a frame needs.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// A client frame, borrowed from the received text. `message` and `request_id` stay raw JSON:
/// they are copied into the output byte for byte, never re-encoded.
#[derive(Deserialize)]
pub struct Request<'a> {
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow, default)]
    pub topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub request_id: Option<&'a RawValue>,
}

/// What a client asked for.
pub enum Action<'a> {
    Subscribe(Cow<'a, str>),
    Unsubscribe(Cow<'a, str>),
    Publish(Cow<'a, str>, &'a RawValue),
    Ping,
    /// Unknown action, or a known one without the fields it needs.
    Bad,
}

impl<'a> Request<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    pub fn action(&self) -> Action<'a> {
        match (self.action.as_ref(), self.topic.clone(), self.message) {
            ("subscribe", Some(topic), _) => Action::Subscribe(topic),
            ("unsubscribe", Some(topic), _) => Action::Unsubscribe(topic),
            ("publish", Some(topic), Some(message)) => Action::Publish(topic, message),
            ("ping", _, _) => Action::Ping,
            _ => Action::Bad,
        }
    }
}

/// The reply to an ack without a request id: the same bytes every time, never allocated.
const PLAIN_ACK: &str = r#"{"type":"ack","status":"ok"}"#;

pub fn ack(request_id: Option<&RawValue>) -> Message {
    match request_id {
        None => Message::Text(Utf8Bytes::from_static(PLAIN_ACK)),
        Some(id) => reply("ack", Some(id), ""),
    }
}

pub fn pong(request_id: Option<&RawValue>) -> Message {
    reply("pong", request_id, "")
}

/// The answer to a frame that is not JSON (`request_id` null) or not a known action.
pub fn bad_request(request_id: Option<&RawValue>) -> Message {
    reply("error", request_id, r#","error":{"code":"BAD_REQUEST"}"#)
}

fn reply(kind: &str, request_id: Option<&RawValue>, rest: &str) -> Message {
    let id = request_id.map_or("null", RawValue::get);
    Message::text(format!(r#"{{"type":"{kind}","request_id":{id}{rest}}}"#))
}

/// The delivered frame, encoded once per publish; every subscriber gets a reference-counted
/// clone of the same bytes.
pub fn delivery(topic: &str, message: &RawValue) -> Message {
    let topic = serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".to_owned());
    let head = r#"{"type":"message","topic":"#;
    let mut text = String::with_capacity(head.len() + topic.len() + 12 + message.get().len());
    text.push_str(head);
    text.push_str(&topic);
    text.push_str(r#","message":"#);
    text.push_str(message.get());
    text.push('}');
    Message::Text(Utf8Bytes::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Message) -> String {
        m.into_text().unwrap().as_str().to_owned()
    }

    #[test]
    fn requests_route_by_action() {
        let r = Request::parse(
            r#"{"action":"publish","topic":"t","message":{"a":[1, 2]},"request_id":7}"#,
        )
        .unwrap();
        let Action::Publish(topic, message) = r.action() else {
            panic!("a publish")
        };
        assert_eq!(topic, "t");
        assert_eq!(message.get(), r#"{"a":[1, 2]}"#);
        assert_eq!(text(ack(r.request_id)), r#"{"type":"ack","request_id":7}"#);
        let r = Request::parse(r#"{"action":"publish","topic":"t"}"#).unwrap();
        assert!(matches!(r.action(), Action::Bad));
        assert!(Request::parse("not json").is_none());
        let r = Request::parse(r#"{"action":"ping"}"#).unwrap();
        assert!(matches!(r.action(), Action::Ping));
        assert_eq!(text(pong(None)), r#"{"type":"pong","request_id":null}"#);
    }

    #[test]
    fn replies_and_deliveries() {
        assert_eq!(text(ack(None)), PLAIN_ACK);
        assert_eq!(
            text(bad_request(None)),
            r#"{"type":"error","request_id":null,"error":{"code":"BAD_REQUEST"}}"#
        );
        let message = RawValue::from_string(r#"{"bt":"1"}"#.to_owned()).unwrap();
        assert_eq!(
            text(delivery("a\"b", &message)),
            r#"{"type":"message","topic":"a\"b","message":{"bt":"1"}}"#
        );
    }
}
