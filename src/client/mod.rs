//! A Rust client for this broker's WebSocket protocol (and its REST API, in [`rest`]).
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use pubsub::client::{Client, Event, Options, Start};
//!
//! # async fn run() -> Result<(), pubsub::client::Error> {
//! let client = Client::connect("ws://127.0.0.1:8000/ws", Options::default()).await?;
//! let mut news = client.subscribe("news", Start::Last(10)).await?;
//! let seq = client.publish("news", &serde_json::json!({"text": "Hello"})).await?;
//! while let Some(event) = news.next().await {
//!     match event {
//!         Event::Message(m) => println!("{} {}", m.seq, m.message),
//!         other => eprintln!("{other:?}"), // a gap, an epoch change, the topic deleted
//!     }
//! #   let _ = seq; break;
//! }
//! # Ok(()) }
//! ```
//!
//! One connection per [`Client`], owned by a task that:
//! - reconnects by itself after the connection is lost, waiting by [`Backoff`] (exponential,
//!   with jitter) between attempts, and subscribes every topic again from the last seq it
//!   delivered (`since_seq` and `epoch`), so a subscription yields each seq once, in order,
//!   across any number of reconnects while history covers the time away; otherwise it yields an
//!   [`Event::Gap`] or [`Event::EpochChanged`] saying what is missing;
//! - sends a WebSocket ping after [`Options::ping_interval`] of silence and gives the
//!   connection up when nothing answers within [`Options::ping_timeout`];
//! - matches each reply to its request by `request_id`;
//! - never waits for the application: each subscription has a bounded buffer
//!   ([`Options::buffer`]); when it is full, messages are dropped and requested again from
//!   history once the application has read half of it.
//!
//! Files: `connection.rs` (the task: connect, session, reconnect), `subscriptions.rs` (resume
//! bookkeeping), `pending.rs` (reply matching), `backoff.rs`, `liveness.rs` (pings), `wire.rs`
//! (frames), `events.rs` (what a subscription yields), `rest.rs` (topics and history over
//! HTTP/1.1), `endpoint.rs` (URLs).

mod backoff;
mod connection;
mod endpoint;
mod error;
mod events;
mod liveness;
mod pending;
pub mod rest;
mod subscriptions;
mod tls;
mod wire;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};

pub use backoff::Backoff;
pub use endpoint::Endpoint;
pub use error::Error;
pub use events::{Event, Gap, GapCause, Message, Start, Subscribed};
pub use rest::Rest;
pub use tls::{TlsConfig, system as system_tls, trusting as tls_trusting};

/// How a [`Client`] connects and behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sent as `Authorization: Bearer <token>` with every WebSocket handshake (and REST call).
    pub token: Option<String>,
    /// Waits between reconnect attempts.
    pub backoff: Backoff,
    /// Silence after which the client pings the server.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is given up and replaced.
    pub ping_timeout: Duration,
    /// How long one connection attempt (TCP and WebSocket handshake) may take.
    pub connect_timeout: Duration,
    /// Events each subscription buffers for the application (at least 2).
    pub buffer: usize,
    /// Largest frame accepted from the server.
    pub max_frame_bytes: usize,
    /// For `wss://` (and `https://`) URLs: the certificates to trust. Default: the system's
    /// ([`system_tls`]); [`tls_trusting`] adds a private CA's.
    pub tls: Option<TlsConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: None,
            backoff: Backoff::default(),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            buffer: 1024,
            max_frame_bytes: 16 << 20,
            tls: None,
        }
    }
}

/// The connection as the client's task sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Whether a connection is up now.
    pub connected: bool,
    /// Connections made so far, the first included: reconnects are this minus one.
    pub connections: u64,
    /// Why the last connection ended or the last attempt failed.
    pub last_error: Option<String>,
}

/// A request from a handle to the connection's task.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        id: u64,
        topic: String,
        start: Start,
        events: mpsc::Sender<Event>,
        opened: oneshot::Sender<Result<Subscribed, Error>>,
    },
    Unsubscribe {
        topic: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Publish {
        topic: String,
        message: Box<RawValue>,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    Ping {
        reply: oneshot::Sender<Result<Duration, Error>>,
    },
    Refresh {
        token: String,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    /// A [`Subscription`] was dropped.
    Dropped { topic: String, id: u64 },
    /// Close the connection and end the task.
    Close { done: oneshot::Sender<()> },
}

/// Requests the task holds at most while it has no connection; beyond that, callers wait.
pub(crate) const HELD_REQUESTS: usize = 1024;

/// A handle to one connection to the broker, reconnecting by itself. Cheap to clone; the
/// connection closes when the last clone is dropped (or at [`Client::close`]).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    buffer: usize,
    next_sub: AtomicU64,
    /// Dropped with the last handle: tells the task to close.
    _alive: oneshot::Sender<()>,
}

impl Client {
    /// Connects to `url` (`ws://HOST:PORT/ws`, or the server's `http://HOST:PORT` base), once:
    /// an error here (refused, unreachable, a handshake answered with 401) is returned rather
    /// than retried. Once connected, the client reconnects by itself for as long as it lives.
    pub async fn connect(url: &str, options: Options) -> Result<Client, Error> {
        let endpoint = Endpoint::parse(url)?;
        let options = Options {
            buffer: options.buffer.max(2),
            ..options
        };
        let ws = connection::connect(&endpoint, &options).await?;
        let (commands, rx) = mpsc::channel(64);
        let (status_tx, status) = watch::channel(Status {
            connected: true,
            connections: 1,
            last_error: None,
        });
        let (alive, dropped) = oneshot::channel();
        let buffer = options.buffer;
        tokio::spawn(connection::run(
            endpoint, options, ws, rx, dropped, status_tx,
        ));
        Ok(Client {
            inner: Arc::new(Inner {
                commands,
                status,
                buffer,
                next_sub: AtomicU64::new(1),
                _alive: alive,
            }),
        })
    }

    /// Subscribes to `topic` from `start`, and returns once the server has acknowledged it
    /// (with what [`Subscribed`] says); an error reply (`topic_not_found`, `invalid_topic`, ...)
    /// is returned as [`Error::Server`]. One subscription per topic and client.
    pub async fn subscribe(&self, topic: &str, start: Start) -> Result<Subscription, Error> {
        let id = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::channel(self.inner.buffer);
        let (opened, ack) = oneshot::channel();
        self.send(Command::Subscribe {
            id,
            topic: topic.to_owned(),
            start,
            events: events_tx,
            opened,
        })
        .await?;
        let subscribed = ack.await.map_err(|_| Error::Closed)??;
        Ok(Subscription {
            id,
            subscribed,
            events,
            commands: self.inner.commands.clone(),
        })
    }

    /// Ends the subscription to `topic`: its stream ends, and the server stops sending.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Unsubscribe {
            topic: topic.to_owned(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Publishes `message` (serialized to JSON) and returns its seq.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
    ) -> Result<u64, Error> {
        let json = serde_json::value::to_raw_value(message)
            .map_err(|e| Error::InvalidJson(e.to_string()))?;
        self.publish_raw(topic, json).await
    }

    /// Publishes a message given as JSON text, delivered byte for byte as written.
    pub async fn publish_json(&self, topic: &str, json: &str) -> Result<u64, Error> {
        let raw = RawValue::from_string(json.to_owned())
            .map_err(|e| Error::InvalidJson(e.to_string()))?;
        self.publish_raw(topic, raw).await
    }

    /// Publishes an already validated JSON value and returns its seq. Made while the client is
    /// reconnecting, it is sent once connected; in flight when the connection is lost, it fails
    /// with [`Error::ConnectionLost`] and is not retried (it may have been published).
    pub async fn publish_raw(&self, topic: &str, message: Box<RawValue>) -> Result<u64, Error> {
        self.send_publish(topic, message).await?.await
    }

    /// Hands a publish to the connection without waiting for its reply, which the returned
    /// [`PublishReply`] resolves to. Publishes sent one after the other keep their order, so
    /// many can be in flight at once.
    pub async fn send_publish(
        &self,
        topic: &str,
        message: Box<RawValue>,
    ) -> Result<PublishReply, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish {
            topic: topic.to_owned(),
            message,
            reply,
        })
        .await?;
        Ok(PublishReply(rx))
    }

    /// Sends the protocol's `ping` and returns the time to its `pong`.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Ping { reply }).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Replaces the connection's token before it expires (the server closes a connection with
    /// 4001 "token expired" at its token's `exp`). The new token must be for the same `sub` and
    /// expire no earlier; it is used for every reconnect from now on. Returns its expiry
    /// (seconds since the Unix epoch). Subscriptions its rights no longer cover end with
    /// [`Event::Revoked`]. A refused token leaves the current one in force on the connection
    /// ([`Error::Server`] with `unauthorized`, `forbidden` or `bad_request`).
    pub async fn refresh(&self, token: &str) -> Result<u64, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Refresh {
            token: token.to_owned(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The connection's state, to read now or to watch for changes.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    /// Closes the connection (with a close frame) and ends every subscription's stream. Other
    /// clones of this client get [`Error::Closed`] from then on.
    pub async fn close(self) {
        let (done, closed) = oneshot::channel();
        if self.send(Command::Close { done }).await.is_ok() {
            let _ = closed.await;
        }
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| Error::Closed)
    }
}

/// The reply to a [`Client::send_publish`]: the message's seq.
#[derive(Debug)]
pub struct PublishReply(oneshot::Receiver<Result<u64, Error>>);

impl std::future::Future for PublishReply {
    type Output = Result<u64, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// The events of one subscription, in order (a [`Stream`]). Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    subscribed: Subscribed,
    events: mpsc::Receiver<Event>,
    commands: mpsc::Sender<Command>,
}

impl Subscription {
    pub fn topic(&self) -> &str {
        &self.subscribed.topic
    }

    /// The server's first ack: the topic's epoch and last seq when the subscription started.
    pub fn subscribed(&self) -> &Subscribed {
        &self.subscribed
    }

    /// The next event; None once the subscription has ended (after [`Event::TopicDeleted`] or
    /// [`Event::Failed`], an unsubscribe, or the client closing).
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // If the queue is full the task notices the closed stream at its next delivery.
        let _ = self.commands.try_send(Command::Dropped {
            topic: self.subscribed.topic.clone(),
            id: self.id,
        });
    }
}
