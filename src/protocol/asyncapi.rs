//! The AsyncAPI 3.1 document of the WebSocket protocol at `/ws`.
//!
//! Every message payload is the utoipa schema of one variant of [`ClientFrameSchema`] or
//! [`ServerFrame`], the types the code parses and sends, so the document cannot drift from the
//! frames. What the schemas cannot say (which frame answers which) is in [`REPLIES`] and
//! [`EVENTS`], which the tests check against the schemas in both directions.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::{
    ClientFrameSchema, ErrorBody, ErrorCode, ServerFrame, encode_message_frame, encode_server_frame,
};

/// Each client action and the server action that acknowledges it; any of them may instead be
/// answered with `error`.
pub const REPLIES: [(&str, &str); 5] = [
    ("subscribe", "subscribed"),
    ("unsubscribe", "unsubscribed"),
    ("publish", "published"),
    ("ping", "pong"),
    ("refresh", "refreshed"),
];

/// Server actions sent on the server's own initiative, not as a reply.
pub const EVENTS: [&str; 4] = ["message", "lagged", "topic_deleted", "subscription_revoked"];

/// The server action that answers a client frame that failed.
pub const ERROR: &str = "error";

/// The frame types and the schemas they refer to, collected by utoipa.
#[derive(OpenApi)]
#[openapi(components(schemas(ClientFrameSchema, ServerFrame, ErrorBody, ErrorCode)))]
struct FrameSchemas;

/// The document as pretty JSON, exactly as committed in `openapi/asyncapi.json`.
pub fn asyncapi_json() -> String {
    // Serializing a `Value` cannot fail.
    serde_json::to_string_pretty(&asyncapi()).unwrap_or_default() + "\n"
}

/// The AsyncAPI 3.1 document.
pub fn asyncapi() -> Value {
    let mut schemas = component_schemas();
    let client = variants(schemas.remove("ClientFrameSchema"));
    let server = variants(schemas.remove("ServerFrame"));
    let client_examples = client_examples();
    let server_examples = server_examples();

    let mut messages = Map::new();
    for (action, payload) in client.iter().chain(&server) {
        let examples = client_examples
            .iter()
            .chain(&server_examples)
            .filter(|e| e["action"] == *action.as_str())
            .map(|e| json!({ "payload": e }))
            .collect::<Vec<_>>();
        messages.insert(action.clone(), message(action, payload, examples));
    }
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|name| {
            let reference = json!({ "$ref": format!("#/components/messages/{name}") });
            (name.clone(), reference)
        })
        .collect();

    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "pubsub WebSocket protocol",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Subscribe, unsubscribe, publish and ping over one WebSocket at `/ws`. \
    Every frame either way is one JSON object in a text frame, tagged by `action`. Every client frame \
    gets exactly one reply, its ack or an `error`, in the order sent; a reply echoes the frame's \
    `request_id` when it had one. An error never closes the connection. The REST API (topics, history, \
    statistics) is described by the OpenAPI document at `/api-doc/openapi.json`.\n\n\
    **Tokens.** When the server is started with an `--auth-*` key, the handshake must carry a JWT: \
    in `Authorization: Bearer TOKEN` or, from a browser (whose WebSocket cannot set headers), in the \
    `token` query parameter (`/ws?token=TOKEN`). Without a valid one the handshake is refused with \
    HTTP 401 `unauthorized` before the upgrade. A `subscribe` or `publish` the token's rights do not \
    cover is answered with an `error` frame `forbidden`; the connection stays open. At the token's \
    `exp` the server closes the connection with code 4001 and reason `token expired`, unless a \
    `refresh` with a later token for the same `sub` came first.\n\n\
    **Origins.** A handshake from a web page whose `Origin` is neither the server's own nor one of \
    `--allowed-origin` is refused with HTTP 403 `forbidden_origin` before the upgrade.",
            "license": { "name": env!("CARGO_PKG_LICENSE") },
            "contact": { "name": "pubsub maintainers" },
            "tags": [
                { "name": "websocket", "description": "One WebSocket at `/ws` per client." },
                { "name": "pubsub", "description": "Topics, subscriptions and delivery." }
            ]
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8000",
                "protocol": "ws",
                "description": "The server as `cargo run` starts it (change the address with \
    `--host` and `--port`).",
                "security": [
                    { "$ref": "#/components/securitySchemes/bearer" },
                    { "$ref": "#/components/securitySchemes/tokenQuery" }
                ]
            },
            "local-tls": {
                "host": "localhost:8000",
                "protocol": "wss",
                "description": "The same server started with `--tls-cert` and `--tls-key`: WebSocket \
    over TLS.",
                "security": [
                    { "$ref": "#/components/securitySchemes/bearer" },
                    { "$ref": "#/components/securitySchemes/tokenQuery" }
                ]
            }
        },
        "channels": {
            "ws": {
                "address": "/ws",
                "title": "The WebSocket",
                "description": "One connection carries any number of subscriptions.",
                "servers": [{ "$ref": "#/servers/local" }, { "$ref": "#/servers/local-tls" }],
                "messages": channel_messages,
                "bindings": { "ws": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {
                            "token": {
                                "type": "string",
                                "description": "The JWT, for clients that cannot set \
    `Authorization` (browsers); only when the server requires tokens."
                            }
                        }
                    },
                    "headers": {
                        "type": "object",
                        "properties": {
                            "Authorization": {
                                "type": "string",
                                "pattern": "^Bearer .+$",
                                "description": "`Bearer TOKEN`; only when the server requires \
    tokens."
                            }
                        }
                    },
                    "bindingVersion": "0.1.0"
                } }
            }
        },
        "operations": operations(),
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`Authorization: Bearer TOKEN` on the handshake."
                },
                "tokenQuery": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "The same JWT as the `token` query parameter, for browsers."
                }
            }
        }
    })
}

/// The schemas utoipa generates, as JSON, by name.
fn component_schemas() -> Map<String, Value> {
    let components = FrameSchemas::openapi().components.unwrap_or_default();
    match serde_json::to_value(components.schemas) {
        Ok(Value::Object(schemas)) => schemas,
        _ => Map::new(),
    }
}

/// The variants of an internally tagged enum's schema as (action, schema of that variant).
fn variants(schema: Option<Value>) -> Vec<(String, Value)> {
    let Some(Value::Array(items)) = schema.and_then(|mut s| s.get_mut("oneOf").map(Value::take))
    else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| Some((action_of(&item)?.to_owned(), item)))
        .collect()
}

/// The one value a variant's `action` property allows.
fn action_of(variant: &Value) -> Option<&str> {
    variant["properties"]["action"]["enum"][0].as_str()
}

fn message(action: &str, payload: &Value, examples: Vec<Value>) -> Value {
    let mut message = json!({
        "name": action,
        "title": format!("`{action}` frame"),
        "payload": payload,
        "examples": examples,
    });
    if let Some(description) = payload.get("description") {
        message["summary"] = description.clone();
    }
    message
}

fn operations() -> Value {
    let reference = |action: &str| json!({ "$ref": format!("#/channels/ws/messages/{action}") });
    let mut operations = Map::new();
    for (request, ack) in REPLIES {
        let operation = json!({
            "action": "receive",
            "title": format!("Handle `{request}`"),
            "summary": format!("The client sends `{request}`; the server answers `{ack}` or `{ERROR}`."),
            "description": format!("The client sends a `{request}` frame; the server answers with \
        exactly one `{ack}` frame, or an `{ERROR}` frame whose `code` says why, in the order the \
        client's frames were sent and echoing the frame's `request_id` if it had one. An error leaves \
        the connection open."),
            "channel": { "$ref": "#/channels/ws" },
            "messages": [reference(request)],
            "reply": {
                "channel": { "$ref": "#/channels/ws" },
                "messages": [reference(ack), reference(ERROR)]
            }
        });
        operations.insert(request.to_owned(), operation);
    }
    let events = json!({
        "action": "send",
        "title": "Deliver",
        "summary": "Frames the server sends on its own: delivered messages, and notices about \
    subscriptions.",
        "description": "Each message published to a subscribed topic arrives as a `message` frame \
    with its seq, in seq order per topic; `lagged` says messages were dropped for a slow \
    subscriber, `topic_deleted` that a subscription ended with its topic.",
        "channel": { "$ref": "#/channels/ws" },
        "messages": EVENTS.iter().map(|e| reference(e)).collect::<Vec<_>>()
    });
    operations.insert("deliver".to_owned(), events);
    Value::Object(operations)
}

/// One example of each client frame, in the words of docs/websocket.md. A test parses each one.
fn client_examples() -> Vec<Value> {
    vec![
        json!({"action": "subscribe", "topic": "news", "replay_last": 10, "request_id": "s1"}),
        json!({"action": "subscribe", "topic": "news", "since_seq": 151, "epoch": "Xq3bZ0aL7kPw"}),
        json!({"action": "unsubscribe", "topic": "news", "request_id": "u1"}),
        json!({"action": "publish", "topic": "news", "message": {"data": "Hello"}, "request_id": "p1"}),
        json!({"action": "ping", "request_id": "r1"}),
        json!({"action": "refresh", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln", "request_id": "t1"}),
    ]
}

/// One example of each server frame, encoded by the code that encodes them on the socket.
fn server_examples() -> Vec<Value> {
    let error = ErrorBody {
        code: ErrorCode::TopicNotFound,
        message: "topic 'sports' does not exist".to_owned(),
    };
    let frames = [
        encode_server_frame(&ServerFrame::Subscribed {
            topic: "news",
            epoch: "Xq3bZ0aL7kPw",
            replayed: 10,
            last_seq: 151,
            recovered: None,
            request_id: Some("s1"),
        }),
        encode_server_frame(&ServerFrame::Subscribed {
            topic: "news",
            epoch: "Xq3bZ0aL7kPw",
            replayed: 3,
            last_seq: 154,
            recovered: Some(true),
            request_id: None,
        }),
        encode_server_frame(&ServerFrame::Unsubscribed {
            topic: "news",
            request_id: Some("u1"),
        }),
        encode_server_frame(&ServerFrame::Published {
            topic: "news",
            seq: 152,
            epoch: "Xq3bZ0aL7kPw",
            request_id: Some("p1"),
        }),
        encode_server_frame(&ServerFrame::Pong {
            request_id: Some("r1"),
        }),
        encode_server_frame(&ServerFrame::Error {
            error,
            request_id: Some("s2"),
        }),
        encode_message_frame(
            r#""news""#,
            152,
            r#"{"data":"Hello"}"#,
            "2026-11-27T12:00:00.123Z",
        )
        .frame,
        encode_server_frame(&ServerFrame::Lagged {
            topic: "news",
            dropped: 37,
        }),
        encode_server_frame(&ServerFrame::TopicDeleted { topic: "news" }),
        encode_server_frame(&ServerFrame::Refreshed {
            expires_at: 1_795_000_000,
            request_id: Some("t1"),
        }),
        encode_server_frame(&ServerFrame::SubscriptionRevoked { topic: "news" }),
    ];
    frames
        .iter()
        .filter_map(|f| serde_json::from_str(f.as_str()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::protocol::parse_client_frame;

    fn actions(enum_name: &str) -> BTreeSet<String> {
        variants(component_schemas().remove(enum_name))
            .into_iter()
            .map(|(action, _)| action)
            .collect()
    }

    #[test]
    fn every_variant_of_both_frame_enums_becomes_a_message() {
        let schemas = component_schemas();
        for name in ["ClientFrameSchema", "ServerFrame"] {
            let all = schemas[name]["oneOf"].as_array().map_or(0, Vec::len);
            assert!(all > 0, "{name} is a oneOf: {}", schemas[name]);
            assert_eq!(
                actions(name).len(),
                all,
                "every {name} variant has an action"
            );
        }
        let document = asyncapi();
        let messages = document["components"]["messages"]
            .as_object()
            .expect("messages");
        let expected: BTreeSet<String> = actions("ClientFrameSchema")
            .union(&actions("ServerFrame"))
            .cloned()
            .collect();
        assert_eq!(messages.keys().cloned().collect::<BTreeSet<_>>(), expected);
        for (name, message) in messages {
            assert!(
                message["examples"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty()),
                "{name} has an example"
            );
        }
    }

    #[test]
    fn replies_and_events_cover_every_action_exactly() {
        let client: BTreeSet<String> = REPLIES.iter().map(|(c, _)| c.to_string()).collect();
        assert_eq!(client, actions("ClientFrameSchema"));
        let mut server: BTreeSet<String> = REPLIES.iter().map(|(_, s)| s.to_string()).collect();
        server.extend(EVENTS.iter().map(|e| e.to_string()));
        assert!(server.insert(ERROR.to_owned()));
        assert_eq!(server, actions("ServerFrame"));
    }

    #[test]
    fn client_examples_parse_back_to_themselves() {
        for example in client_examples() {
            let text = example.to_string();
            let frame = parse_client_frame(&text)
                .unwrap_or_else(|e| panic!("{text} does not parse: {}", e.message));
            let back = serde_json::to_value(ClientFrameSchema::from(&frame)).expect("encode");
            assert_eq!(back, example);
        }
    }

    #[test]
    fn the_handshake_authentication_and_the_expiry_close_are_declared() {
        let document = asyncapi();
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["tokenQuery"]["in"], "query");
        assert_eq!(schemes["tokenQuery"]["name"], "token");
        let security = document["servers"]["local"]["security"].as_array();
        assert_eq!(security.map(Vec::len), Some(2));
        let binding = &document["channels"]["ws"]["bindings"]["ws"];
        assert!(binding["query"]["properties"]["token"].is_object());
        assert!(binding["headers"]["properties"]["Authorization"].is_object());
        let description = document["info"]["description"].as_str().unwrap_or_default();
        let close = format!(
            "code {} and reason `token expired`",
            crate::protocol::close::TOKEN_EXPIRED
        );
        assert!(description.contains(&close), "{description}");
    }

    #[test]
    fn optional_fields_are_absent_not_null() {
        // A skipped `Option` is never sent as null, so the schema must not allow null.
        let text = asyncapi_json();
        assert!(!text.contains("\"null\""), "{text}");
    }
}
