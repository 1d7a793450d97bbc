//! The engine: what every node of a deployment must agree on.
//!
//! The topic registry with its epochs, seq assignment, history, and delivery of each
//! publication to every node that holds subscribers of its topic. [`memory`] keeps it all in
//! this process (one node, nothing to run beside it); [`redis`] keeps it in Redis or a Redis
//! Cluster so that any number of nodes serve one API. The node side (connections, outboxes,
//! counters) is in [`super`] and is the same for both.
//!
//! Both implement [`Engine`]; [`super::Broker`] dispatches to one of them with a `match`, so a
//! publish on the memory engine costs no allocation for a boxed future.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::sync::Arc;

use super::BrokerError;
use super::info::{HistoryPage, NodeInfo, Subscribed, TopicInfo};
use super::outbox::Outbox;
use crate::protocol::{Frame, Replay};

/// What each message in history counts for besides its frame, in both engines: in memory its
/// `Arc<MessageFrame>` allocation, its slot in the ring and the allocator's rounding (about 100
/// to 150 bytes on a 64-bit build). Counting it keeps a flood of tiny messages from holding
/// twice what the figure says.
pub const HISTORY_ENTRY_OVERHEAD: usize = 128;

/// A message accepted by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    /// The epoch of the topic's life the message belongs to.
    pub epoch: Arc<str>,
}

/// Who is subscribing: the connection's id and where its frames go.
#[derive(Clone, Copy)]
pub struct Subscriber<'a> {
    pub client: u64,
    pub outbox: &'a Arc<Outbox>,
}

/// Builds the `subscribed` ack from what the subscribe found.
pub type AckBuilder<'a> = &'a mut (dyn FnMut(&Subscribed<'_>) -> Frame + Send);

/// A subscription held by a connection: the connection keeps it to leave the topic again.
pub trait Subscription: Send + Sync {
    /// Removes `client` from the topic's subscribers on this node.
    fn unsubscribe(&self, client: u64);
    /// Whether the topic was deleted since (its subscription no longer counts).
    fn is_deleted(&self) -> bool;
    /// Resolves once this node has delivered `seq` of the topic's life `epoch` to its local
    /// subscribers (or the wait is pointless: another life, or the topic is gone). The memory
    /// engine delivers before the publish returns, so there it resolves at once.
    fn delivered(
        &self,
        epoch: &str,
        seq: u64,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The operations a node needs from its engine.
pub trait Engine: Send + Sync + 'static {
    /// Creates a topic with a fresh epoch; exactly one of several racing creators succeeds.
    fn create_topic(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<TopicInfo, BrokerError>> + Send;

    /// Deletes a topic; its subscribers on every node get `topic_deleted`.
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Every topic, sorted by name, with figures over every live node.
    fn topics(&self) -> impl Future<Output = Result<Vec<TopicInfo>, BrokerError>> + Send;

    fn topic(&self, name: &str) -> impl Future<Output = Result<TopicInfo, BrokerError>> + Send;

    /// Assigns the next seq to `message` (valid JSON text), keeps it in history and delivers it
    /// to every subscriber, in seq order, on every node.
    fn publish(
        &self,
        name: &str,
        message: &str,
    ) -> impl Future<Output = Result<Published, BrokerError>> + Send;

    /// History with seq above `since`, oldest first, at most `limit` messages.
    fn history(
        &self,
        name: &str,
        since: u64,
        limit: usize,
    ) -> impl Future<Output = Result<HistoryPage, BrokerError>> + Send;

    /// Subscribes: queues the ack built by `ack`, then the replay, then live messages, with no
    /// gap and no duplicate between replay and live.
    fn subscribe(
        &self,
        name: &str,
        subscriber: Subscriber<'_>,
        replay: &Replay<'_>,
        ack: AckBuilder<'_>,
    ) -> impl Future<Output = Result<Arc<dyn Subscription>, BrokerError>> + Send;

    /// Why the engine cannot serve requests now, if it cannot.
    fn unavailable(&self) -> Option<String>;

    /// The live nodes, this one included.
    fn nodes(&self) -> impl Future<Output = Vec<NodeInfo>> + Send;

    /// This node's own figures, read without waiting (for metrics).
    fn local(&self) -> LocalFigures;

    /// Bytes held by every topic's history, when this node holds it (the memory engine; Redis
    /// accounts for its own memory).
    fn history_bytes(&self) -> Option<u64>;
}

/// What a node holds itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFigures {
    /// Subscriptions of this node's clients.
    pub subscriptions: u64,
    /// Topics that exist, when this node holds them all (the memory engine).
    pub topics: Option<u64>,
}
