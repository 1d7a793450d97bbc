//! What the broker reports: a topic's figures, a node's, a subscribe's ack values, a page of
//! history. Shared by both engines and the node.

use std::sync::Arc;

use crate::protocol::MessageFrame;

/// What a subscribe found: the values of the `subscribed` ack.
#[derive(Debug, Clone, Copy)]
pub struct Subscribed<'a> {
    pub topic: &'a str,
    pub epoch: &'a str,
    pub replayed: usize,
    pub last_seq: u64,
    pub recovered: Option<bool>,
}

/// A topic's numbers at one instant. With several nodes, `subscribers` is their total over the
/// live nodes.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: Arc<str>,
    pub epoch: Arc<str>,
    pub subscribers: usize,
    pub last_seq: u64,
    pub in_history: usize,
}

/// One node of the deployment, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub connections: u64,
    pub subscriptions: u64,
    /// Milliseconds since the Unix epoch.
    pub last_seen_ms: u64,
}

/// A page of history.
#[derive(Debug)]
pub struct HistoryPage {
    pub messages: Vec<Arc<MessageFrame>>,
    pub last_seq: u64,
}
