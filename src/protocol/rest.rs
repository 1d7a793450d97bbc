//! REST request and response bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// The topic-name rule as the regular expression the OpenAPI document gives for every topic name
/// a client sends (the `name` path parameter and [`CreateTopicRequest::name`]). utoipa takes only
/// a literal there, so the attributes repeat it; `tests/openapi.rs` checks they agree with this
/// constant and `tests/properties.rs` that it agrees with `validate_topic_name`.
pub const TOPIC_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$";

/// `POST /topics`: the topic to create.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"name": "news"}))]
pub struct CreateTopicRequest {
    /// 1 to 255 characters from `A-Z a-z 0-9 . _ - :`, starting with a letter or digit.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$"
    )]
    pub name: String,
}

/// A topic and how many WebSocket connections are subscribed to it.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"name": "news", "subscriber_count": 3}))]
pub struct Topic {
    pub name: String,
    pub subscriber_count: usize,
}

/// `GET /topics`: every topic, sorted by name.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<Topic>,
}

/// `DELETE /topics/{name}`: the topic is gone and its subscribers were told.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"name": "news", "deleted": true}))]
pub struct TopicDeleted {
    pub name: String,
    pub deleted: bool,
}

/// `GET /topics/{name}`: one topic in detail.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"name": "news", "subscriber_count": 3, "messages_published": 151,
    "messages_in_history": 100, "last_seq": 151, "epoch": "Xq3bZ0aL7kPw"}))]
pub struct TopicDetails {
    pub name: String,
    pub subscriber_count: usize,
    /// Messages published since the topic was created.
    pub messages_published: u64,
    /// Messages history holds now (at most `--history-size`).
    pub messages_in_history: usize,
    /// The seq of the newest message, 0 when none was published yet.
    pub last_seq: u64,
    /// Changes each time a topic of this name is created; resume with it after a reconnect.
    pub epoch: String,
}

/// `POST /topics/{name}/messages`: the message to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"message": {"data": "Hello"}}))]
pub struct PublishRequest {
    /// Any JSON value, `null` included. Its size is the length of its JSON text in bytes.
    #[serde(deserialize_with = "present")]
    #[schema(value_type = serde_json::Value)]
    pub message: Box<RawValue>,
}

/// Deserializes a field that must be present but may be `null` (serde would read `null` as a
/// missing `Option`, so the field is taken as raw JSON text).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Box<RawValue>, D::Error> {
    Box::<RawValue>::deserialize(d)
}

/// A published message's place in its topic.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"topic": "news", "seq": 152, "epoch": "k3J9aQ2xW7pL"}))]
pub struct Published {
    pub topic: String,
    /// Counts from 1 per topic; never repeats within a topic's life.
    pub seq: u64,
    /// The topic's life this seq belongs to: it changes when the topic is deleted and created
    /// again, so a publisher can tell a recreated topic apart.
    pub epoch: String,
}

/// One message held in a topic's history.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct HistoryMessage {
    pub seq: u64,
    #[schema(value_type = serde_json::Value)]
    pub message: Box<RawValue>,
    /// When the server accepted it, RFC 3339 UTC with milliseconds.
    #[schema(example = "2026-11-27T12:00:00.123Z")]
    pub published_at: String,
}

/// `GET /topics/{name}/messages`: the messages history holds after `since_seq`, oldest first.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct History {
    pub topic: String,
    pub messages: Vec<HistoryMessage>,
    /// The seq of the newest message published, held or not; 0 when none was.
    pub last_seq: u64,
}

/// `GET /health`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"status": "healthy", "engine": "memory", "uptime_seconds": 3600}))]
pub struct Health {
    /// `healthy`, or `unavailable` (with status 503) while the engine does not answer.
    pub status: String,
    /// `memory` or `redis`.
    pub engine: String,
    /// Why the node is unavailable.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(nullable = false)]
    pub reason: Option<String>,
    pub uptime_seconds: u64,
}

/// One live node in `GET /stats`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NodeStats {
    /// Random, new at every start of a node.
    pub id: String,
    /// Open WebSocket connections on that node.
    pub connections: u64,
    /// Subscriptions of that node's connections.
    pub subscriptions: u64,
    /// When the node last reported, RFC 3339 UTC with milliseconds.
    pub last_seen: String,
}

/// Counters of one topic in `GET /stats`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TopicStats {
    pub subscribers: usize,
    pub messages_published: u64,
    pub messages_in_history: usize,
}

/// `GET /stats`: the counters. `topics`, `subscriptions` and `nodes` cover every live node;
/// `connections`, the `messages_*` counters, `errors` and `uptime_seconds` are this node's alone.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Stats {
    /// Every topic by name; `subscribers` summed over the live nodes.
    pub topics: BTreeMap<String, TopicStats>,
    /// Open WebSocket connections on this node.
    pub connections: u64,
    /// Open TCP connections of every kind: WebSocket, HTTP/1 and HTTP/2 (this request's own
    /// included).
    pub http_connections: u64,
    /// Connections closed on arrival because `--max-http-connections` were open, since start.
    pub http_connections_refused: u64,
    /// Whether this node serves HTTPS and WSS (`--tls-cert`, `--tls-key`).
    pub tls: bool,
    /// Connections closed because their TLS handshake failed or took longer than
    /// `--request-timeout`, since start.
    pub tls_handshakes_failed: u64,
    /// Subscriptions across all topics, connections and live nodes.
    pub subscriptions: u64,
    /// This node's id (see `nodes`).
    pub node_id: String,
    /// `memory` or `redis`.
    pub engine: String,
    /// Every live node, this one included; a node that stopped reporting drops out within 15 s.
    pub nodes: Vec<NodeStats>,
    /// Messages published through this node since it started, over REST and WebSocket.
    pub messages_published: u64,
    /// `message` frames written to subscribers, replays included.
    pub messages_delivered: u64,
    /// Messages not delivered to a slow subscriber under the `drop` policy.
    pub messages_dropped: u64,
    /// Connections closed for being too slow under the `disconnect` policy.
    pub slow_consumers_disconnected: u64,
    /// Connections closed for not answering a ping within `--ping-timeout`.
    pub dead_connections_closed: u64,
    /// Bytes every topic's history holds (each message's frame plus 128 bytes of bookkeeping),
    /// within `--history-bytes-total`. Memory engine only: Redis holds history on the Redis
    /// engine.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(nullable = false)]
    pub history_bytes: Option<u64>,
    /// Errors answered over REST and WebSocket, by code; every code is listed.
    #[schema(example = json!({"bad_request": 2, "topic_not_found": 1, "rate_limited": 0}))]
    pub errors: BTreeMap<String, u64>,
    pub uptime_seconds: u64,
}
