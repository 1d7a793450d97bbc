//! One WebSocket session: the route, the handshake's answer, and the reader loop that turns
//! client frames into broker calls. The writer task is in [`super::writer`], pinging in
//! [`super::liveness`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, SplitStream};
use futures_util::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use warp::reply::Response;
use warp::{Filter, filters::BoxedFilter};

use super::authenticate::{Caller, ws_caller};
use super::error::{ApiError, method_not_allowed};
use super::liveness::Pinger;
use super::rate_limit::TokenBucket;
use super::upgrade::{Handshake, Socket, handshake, refuse};
use super::writer::write;
use super::{AppState, Limits, Liveness, PublishRate, with_state};
use crate::auth::{Auth, Need, Principal};
use crate::broker::{Client, Close, FrameKind, Outbox};
use crate::protocol::{
    ClientFrame, Command, ErrorBody, ErrorCode, Frame, ServerFrame, close, encode_published,
    encode_server_frame, exceeds_depth, parse_client_frame,
};

/// tungstenite's read buffer: it lives as long as the connection, so it is small, and grows
/// only for a frame that does not fit. Reads from the socket are larger ([`ReadAhead`] on the
/// stack): a busy connection makes no more system calls for it. 2 KiB took pubsub-bench's
/// conns scenario from 8.9 to 6.9 KiB per connection; 128 bytes and [`ReadAhead`] (issue 14)
/// took another 1.9 KiB off.
///
/// [`ReadAhead`]: super::read_ahead::ReadAhead
const READ_BUFFER_BYTES: usize = 128;

/// tungstenite collects a batch of frames up to this size before writing them to the socket.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The close for a connection whose token expired without a `refresh`: what is queued was
/// allowed, so it is delivered first.
const TOKEN_EXPIRED: Close = Close {
    code: close::TOKEN_EXPIRED,
    reason: "token expired",
    discard: false,
    linger: Close::LINGER,
};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("ws")
        .and(
            warp::get()
                .and(handshake())
                .and(ws_caller(state.auth.clone()))
                .and(with_state(state))
                .map(upgrade)
                .or(warp::any().map(|| method_not_allowed("GET")))
                .unify(),
        )
        .boxed()
}

fn upgrade(handshake: Result<Handshake, ApiError>, caller: Caller, state: AppState) -> Response {
    // A refused token is answered 401 before the upgrade. Take a place among the connections
    // before answering 101, so a full server refuses with a JSON 503 instead of accepting and
    // closing.
    let client = handshake.and_then(|h| {
        let principal = caller?;
        Ok((h, principal, state.broker.connect()?))
    });
    match client {
        Ok((handshake, principal, client)) => {
            let access = Access {
                auth: state.auth.clone(),
                principal: principal.map(Box::new),
            };
            handshake.accept(socket_config(state.limits), move |socket| {
                serve(socket, client, state.limits, access)
            })
        }
        Err(refusal) => refuse(refusal),
    }
}

/// Frame limits from the configuration, and small buffers: an idle connection costs little.
fn socket_config(limits: Limits) -> WebSocketConfig {
    // The write buffer may grow past its flush threshold by the largest frame the server sends
    // (a message and its envelope) before a write must wait.
    let write_cap = WRITE_BUFFER_BYTES + 2 * limits.max_body_bytes.max(limits.max_frame_bytes);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(write_cap)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// Runs one connection until the client leaves, the server shuts down or a policy closes it.
/// A panic in the session is caught here and the client dropped, which frees its subscriptions
/// and its place; the server carries on.
///
/// Not an `async fn`: its future would keep room for the socket, the client and the limits
/// (about 600 bytes) for the connection's whole life, long after they were moved on. The setup
/// runs here, and the future holds only what the session uses.
fn serve(
    socket: Socket,
    client: Client,
    limits: Limits,
    access: Access,
) -> impl Future<Output = ()> + Send {
    let id = client.id();
    let opened = Instant::now();
    match &access.principal {
        Some(p) => tracing::info!(client = id, sub = %p.sub, "connection opened"),
        None => tracing::info!(client = id, "connection opened"),
    }
    let (sink, stream) = socket.split();
    let outbox = client.outbox().clone();
    let writer = tokio::spawn(write(sink, outbox.clone()));
    let session = Session {
        client,
        max_json_depth: limits.max_json_depth,
        max_request_id_bytes: limits.max_request_id_bytes,
        liveness: limits.liveness,
        bucket: limits
            .publish_rate
            .map(|rate| Box::new(TokenBucket::new(rate))),
        in_flight: None,
        access,
        expiry_changed: false,
    };
    run_session(id, opened, session, stream, outbox, writer)
}

async fn run_session(
    id: u64,
    opened: Instant,
    mut session: Session,
    mut stream: SplitStream<Socket>,
    outbox: Arc<Outbox>,
    writer: JoinHandle<bool>,
) {
    let ended = AssertUnwindSafe(session.run(&mut stream))
        .catch_unwind()
        .await;
    let (reason, linger) = match ended {
        Ok(ended) => ended,
        Err(panic) => {
            tracing::error!(
                client = id,
                panic = panic_message(&*panic),
                "connection task panicked; connection closed and cleaned up"
            );
            outbox.close(Close::INTERNAL_ERROR);
            (
                Close::INTERNAL_ERROR.reason,
                Some(Close::INTERNAL_ERROR.linger),
            )
        }
    };
    let delivered = writer.await.unwrap_or_else(|_| {
        tracing::error!(client = id, "connection writer panicked");
        false
    });
    // Only now, with the close frame written (or given up on after its linger), does the
    // connection stop counting as open (a shutdown waits for that count to reach zero).
    drop(session);
    // Read (and ignore) what the client still sends until it answers our close: dropping a
    // socket with unread input makes TCP reset it, and the client could lose our close frame.
    // A close that never went out (the client read nothing for its whole linger) is owed no
    // answer: the socket goes at once.
    if let Some(linger) = linger.filter(|_| delivered) {
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = tokio::time::timeout(linger, drain).await;
    }
    let seconds = opened.elapsed().as_secs_f64();
    tracing::info!(client = id, reason, seconds, "connection closed");
}

/// The text of a panic's payload, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The reader's side of a connection. It lives as long as the connection, so it keeps only the
/// limits the reader applies, and boxes what most connections never use.
struct Session {
    client: Client,
    max_json_depth: usize,
    max_request_id_bytes: usize,
    liveness: Option<Liveness>,
    /// Present only with `--publish-rate`.
    bucket: Option<Box<TokenBucket>>,
    /// Publishes in flight to a networked engine (empty on the memory engine).
    /// Made at the first such publish: an idle connection does not pay for it.
    in_flight: Option<Box<InFlight>>,
    access: Access,
    /// A `refresh` moved the token's expiry: the session's timer must follow.
    expiry_changed: bool,
}

/// What the connection's token allows, and the settings that checked it.
struct Access {
    auth: Auth,
    /// `None` when the server requires no tokens. Boxed: it lives as long as the connection,
    /// and most connections have none.
    principal: Option<Box<Principal>>,
}

impl Access {
    /// When the token expires, as a timer deadline; `None` without a token.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        let expires_at = self.principal.as_ref()?.expires_at;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let left = Duration::from_secs(expires_at).saturating_sub(now);
        // Far-future expiries are capped, as tokio's timer is.
        Some(tokio::time::Instant::now() + left.min(Duration::from_secs(86_400 * 365)))
    }
}

/// Resolves when the token's timer does; never for a connection without a token.
async fn expired(expiry: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match expiry {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// A connection's publishes in flight to a networked engine, each resolving to its reply, in the
/// order they were made.
type InFlight = FuturesOrdered<BoxFuture<'static, Frame>>;

/// The next reply of the publishes in flight, if there are any.
async fn next_reply(in_flight: &mut Option<Box<InFlight>>) -> Option<Frame> {
    match in_flight {
        Some(in_flight) => in_flight.next().await,
        None => None,
    }
}

/// Publishes one connection may have in flight; past it the reader waits for the oldest.
const MAX_IN_FLIGHT: usize = 64;

impl Session {
    /// Reads client frames until the connection ends. Returns why it ended and, when the server
    /// closed a connection the client may still be writing to, how long to wait for its close.
    async fn run(&mut self, stream: &mut SplitStream<Socket>) -> (&'static str, Option<Duration>) {
        let outbox = self.client.outbox().clone();
        let mut pinger = self.liveness.map(Pinger::new);
        // Made once, not per frame: a busy publisher should not pay for timer registrations.
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let tick = tokio::time::sleep_until(pinger.as_ref().map_or(far, Pinger::deadline));
        let closing = outbox.closing();
        // Boxed, and only with a token: most connections have none, and every connection would
        // otherwise carry a timer for it.
        let mut expiry = self
            .access
            .deadline()
            .map(|d| Box::pin(tokio::time::sleep_until(d)));
        tokio::pin!(tick, closing);
        let broker = self.client.broker().clone();
        // Why the session ended, and whether the server is closing a connection the client still
        // writes to.
        let (reason, server_closed) = loop {
            // Stop taking requests while replies are piling up unread.
            let next = async {
                outbox.room().await;
                stream.next().await
            };
            let expiring = self.access.principal.is_some();
            // Biased: a frame already read (a pong, say) is seen before the ping deadline.
            let next = tokio::select! {
                biased;
                Some(reply) = next_reply(&mut self.in_flight),
                    if self.in_flight.as_ref().is_some_and(|f| !f.is_empty()) => {
                    outbox.push(reply, FrameKind::Reply);
                    continue;
                }
                next = next => next,
                close = &mut closing => break (close.reason, Some(close)),
                () = expired(&mut expiry), if expiring => {
                    outbox.close(TOKEN_EXPIRED);
                    break (TOKEN_EXPIRED.reason, Some(TOKEN_EXPIRED));
                }
                _ = &mut tick, if pinger.is_some() => {
                    if let Some(p) = &mut pinger {
                        if !p.tick(&outbox) {
                            broker.record_dead_connection();
                            outbox.close(Close::PING_TIMEOUT);
                            break (Close::PING_TIMEOUT.reason, Some(Close::PING_TIMEOUT));
                        }
                        tick.as_mut().reset(p.deadline());
                    }
                    continue;
                }
            };
            if let (Some(p), Some(Ok(_))) = (&mut pinger, &next) {
                p.heard();
            }
            match next {
                // Boxed: handling a frame (a subscribe above all) needs far more room than
                // waiting for one, and an idle connection would otherwise carry that room.
                Some(Ok(Message::Text(text))) => {
                    Box::pin(self.handle_text(&text)).await;
                    if std::mem::take(&mut self.expiry_changed)
                        && let (Some(timer), Some(deadline)) = (&mut expiry, self.access.deadline())
                    {
                        timer.as_mut().reset(deadline);
                    }
                }
                Some(Ok(Message::Binary(_))) => self.reply_error(
                    None,
                    ErrorCode::BadRequest,
                    "binary frames are not supported: send JSON text frames",
                ),
                Some(Ok(Message::Close(_))) | None => {
                    outbox.close(Close::CLIENT_CLOSED);
                    break (Close::CLIENT_CLOSED.reason, None);
                }
                Some(Ok(_)) => {} // ping and pong: tungstenite answers pings itself
                Some(Err(e)) => {
                    let close = close_for(&e);
                    outbox.close(close);
                    break (close.reason, None);
                }
            }
        };
        // Free the subscriptions now; the writer may still need time to deliver the close frame.
        self.client.unsubscribe_all();
        // Every way out of the loop has set a close already; this guards the writer against
        // waiting for ever should a new one not.
        outbox.close(Close::NORMAL);
        let linger = server_closed.filter(Close::sends_frame).map(|c| c.linger);
        (reason, linger)
    }

    /// Waits for the publishes in flight and queues their replies: a subscribe's ack (which the
    /// engine queues itself) must come after the replies to what was asked before it.
    async fn settle(&mut self) {
        if let Some(in_flight) = &mut self.in_flight {
            while let Some(reply) = in_flight.next().await {
                self.client.outbox().push(reply, FrameKind::Reply);
            }
        }
    }

    /// Queues a reply behind the publishes in flight, if any: replies keep the order of the
    /// requests.
    fn queue_reply(&mut self, reply: Frame) {
        match &mut self.in_flight {
            Some(in_flight) if !in_flight.is_empty() => {
                in_flight.push_back(Box::pin(std::future::ready(reply)));
            }
            _ => self.client.outbox().push(reply, FrameKind::Reply),
        }
    }

    async fn handle_text(&mut self, text: &str) {
        if exceeds_depth(text.as_bytes(), self.max_json_depth) {
            let message = format!("JSON nesting is deeper than {} levels", self.max_json_depth);
            return self.reply_error(None, ErrorCode::BadRequest, &message);
        }
        match parse_client_frame(text) {
            Ok(frame) => self.handle_frame(frame).await,
            Err(e) => self.reply_error(
                e.request_id.as_deref().filter(|id| self.fits(id)),
                ErrorCode::BadRequest,
                &e.message,
            ),
        }
    }

    /// Whether a request_id is short enough to be accepted (and echoed).
    fn fits(&self, request_id: &str) -> bool {
        request_id.len() <= self.max_request_id_bytes
    }

    async fn handle_frame(&mut self, frame: ClientFrame<'_>) {
        let request_id = frame.request_id.as_deref();
        if let Some(id) = request_id.filter(|id| !self.fits(id)) {
            let message = format!(
                "request_id is {} bytes; the limit is {}",
                id.len(),
                self.max_request_id_bytes
            );
            return self.reply_error(None, ErrorCode::BadRequest, &message);
        }
        #[cfg(feature = "fault-injection")]
        if request_id == Some(FAULT_PANIC) {
            panic!("fault injection: the client asked this connection to panic");
        }
        if !matches!(frame.command, Command::Publish { .. }) {
            self.settle().await;
        }
        if let Command::Refresh { token } = &frame.command {
            return self.refresh(token, request_id);
        }
        let need = match &frame.command {
            Command::Subscribe { topic, .. } => Some(Need::Subscribe(topic)),
            Command::Publish { topic, .. } => Some(Need::Publish(topic)),
            _ => None,
        };
        if let Some(need) = need
            && !self
                .access
                .auth
                .permits(self.access.principal.as_deref(), need)
        {
            return self.reply_error(request_id, ErrorCode::Forbidden, &need.refused());
        }
        let client = &mut self.client;
        let result = match frame.command {
            Command::Subscribe { topic, replay } => {
                client
                    .subscribe(&topic, &replay, |s| {
                        encode_server_frame(&ServerFrame::Subscribed {
                            topic: s.topic,
                            epoch: s.epoch,
                            replayed: s.replayed,
                            last_seq: s.last_seq,
                            recovered: s.recovered,
                            request_id,
                        })
                    })
                    .await
            }
            Command::Unsubscribe { topic } => client.unsubscribe(&topic).map(|()| {
                reply(
                    client,
                    &ServerFrame::Unsubscribed {
                        topic: &topic,
                        request_id,
                    },
                );
            }),
            Command::Publish { topic, message } => {
                if let Some(bucket) = &mut self.bucket
                    && !bucket.try_take(Instant::now())
                {
                    let message = rate_limited_message(bucket.rate());
                    return self.reply_error(request_id, ErrorCode::RateLimited, &message);
                }
                if client.broker().publishes_over_network() {
                    let in_flight = self.in_flight.get_or_insert_with(Box::default);
                    if in_flight.len() >= MAX_IN_FLIGHT
                        && let Some(reply) = in_flight.next().await
                    {
                        client.outbox().push(reply, FrameKind::Reply);
                    }
                    let topic = topic.into_owned();
                    let publish = client.publish_detached(topic.clone(), message.to_owned());
                    let request_id = request_id.map(str::to_owned);
                    let broker = client.broker().clone();
                    in_flight.push_back(Box::pin(async move {
                        let result = publish.await;
                        published_reply(&broker, &topic, result, request_id.as_deref())
                    }));
                    return;
                }
                client.publish(&topic, message).await.map(|p| {
                    let ack = encode_published(&topic, p.seq, &p.epoch, request_id);
                    client.outbox().push(ack, FrameKind::Reply);
                })
            }
            Command::Ping => {
                reply(client, &ServerFrame::Pong { request_id });
                Ok(())
            }
            // Answered above, before the rights check.
            Command::Refresh { .. } => Ok(()),
        };
        if let Err(e) = result {
            self.reply_error(request_id, e.code(), &e.to_string());
        }
    }

    /// Replaces the connection's token with `token`: valid, for the same `sub`, expiring no
    /// earlier. Subscriptions its rights no longer cover end with `subscription_revoked`. A
    /// refused refresh leaves the current token in force.
    fn refresh(&mut self, token: &str, request_id: Option<&str>) {
        let Some((sub, expires_at)) = self
            .access
            .principal
            .as_ref()
            .map(|p| (p.sub.clone(), p.expires_at))
        else {
            return self.reply_error(
                request_id,
                ErrorCode::BadRequest,
                "this server requires no tokens: there is nothing to refresh",
            );
        };
        let new = match self.access.auth.authenticate(Some(token)) {
            Ok(Some(new)) => new,
            Ok(None) => return, // no tokens required: answered above
            Err(refusal) => {
                let message = format!("{}; the current token stays in force", refusal.message());
                return self.reply_error(request_id, ErrorCode::Unauthorized, &message);
            }
        };
        if new.sub != sub {
            return self.reply_error(
                request_id,
                ErrorCode::Forbidden,
                "a refresh must keep the token's subject (sub); the current token stays in force",
            );
        }
        if new.expires_at < expires_at {
            return self.reply_error(
                request_id,
                ErrorCode::BadRequest,
                "the new token expires before the current one; the current token stays in force",
            );
        }
        let revoked: Vec<Arc<str>> = self
            .client
            .subscribed_topics()
            .filter(|topic| !new.rights.allows(Need::Subscribe(topic)))
            .cloned()
            .collect();
        for topic in revoked {
            // The name came from a subscription, so it is valid and this cannot fail.
            let _ = self.client.unsubscribe(&topic);
            self.queue_reply(encode_server_frame(&ServerFrame::SubscriptionRevoked {
                topic: &topic,
            }));
        }
        tracing::info!(client = self.client.id(), sub = %new.sub, "token refreshed");
        self.expiry_changed = new.expires_at != expires_at;
        let expires_at = new.expires_at;
        self.access.principal = Some(Box::new(new));
        self.queue_reply(encode_server_frame(&ServerFrame::Refreshed {
            expires_at,
            request_id,
        }));
    }

    fn reply_error(&mut self, request_id: Option<&str>, code: ErrorCode, message: &str) {
        self.client.broker().record_error(code);
        let error = ErrorBody {
            code,
            message: message.to_owned(),
        };
        self.queue_reply(encode_server_frame(&ServerFrame::Error {
            error,
            request_id,
        }));
    }
}

/// The reply to a publish made in flight: its ack, or its error (counted).
fn published_reply(
    broker: &crate::broker::Broker,
    topic: &str,
    result: Result<crate::broker::Published, crate::broker::BrokerError>,
    request_id: Option<&str>,
) -> Frame {
    match result {
        Ok(p) => encode_published(topic, p.seq, &p.epoch, request_id),
        Err(e) => {
            broker.record_error(e.code());
            let error = ErrorBody {
                code: e.code(),
                message: e.to_string(),
            };
            encode_server_frame(&ServerFrame::Error { error, request_id })
        }
    }
}

fn rate_limited_message(rate: PublishRate) -> String {
    format!(
        "publishing faster than {} per second (bursts of {}); nothing was published",
        rate.per_second, rate.burst
    )
}

/// A `request_id` that makes the session panic, when built with the `fault-injection` feature
/// (tests use it to show a panicking connection is contained).
#[cfg(feature = "fault-injection")]
pub const FAULT_PANIC: &str = "fault-injection:panic";

/// The close frame for a read error: the protocol's own codes where it names one.
fn close_for(e: &WsError) -> Close {
    match e {
        WsError::Capacity(_) => Close {
            code: close::MESSAGE_TOO_BIG,
            reason: "frame too large",
            discard: false,
            linger: Close::LINGER,
        },
        WsError::Utf8(_) => Close {
            code: close::INVALID_PAYLOAD,
            reason: "invalid UTF-8 in text frame",
            discard: false,
            linger: Close::LINGER,
        },
        _ => Close::LOST,
    }
}

fn reply(client: &Client, frame: &ServerFrame<'_>) {
    client
        .outbox()
        .push(encode_server_frame(frame), FrameKind::Reply);
}
