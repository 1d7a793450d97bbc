//! The task that owns a client's connection: one session per connection, and between sessions
//! the reconnect loop with its backoff. Requests made while there is no connection wait here
//! (up to [`HELD_REQUESTS`]) and go out on the next one.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::liveness::{Check, Liveness};
use super::pending::{Pending, Waiting};
use super::subscriptions::Subscriptions;
use super::wire::{self, Incoming};
use super::{Command, Endpoint, Error, HELD_REQUESTS, Options, Status};

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How often buffers that were full are looked at again.
const TICK: Duration = Duration::from_millis(20);

/// How long closing may wait to send the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Opens one connection: TCP, TLS for `wss://`, then the WebSocket handshake with the bearer
/// token, if any.
pub(super) async fn connect(endpoint: &Endpoint, options: &Options) -> Result<Ws, Error> {
    let url = endpoint.ws_url();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidUrl(format!("{url}: {e}")))?;
    if let Some(token) = &options.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::Connect("the token has characters an HTTP header cannot hold".to_owned())
        })?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_frame_bytes))
        .max_frame_size(Some(options.max_frame_bytes));
    let connector = match endpoint.tls {
        true => Some(tokio_tungstenite::Connector::Rustls(match &options.tls {
            Some(tls) => tls.clone(),
            None => super::tls::system()?,
        })),
        false => Some(tokio_tungstenite::Connector::Plain),
    };
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    match tokio::time::timeout(options.connect_timeout, handshake).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(Error::Connect(format!("{url}: {}", describe(e)))),
        Err(_) => Err(Error::Connect(format!(
            "{url}: no connection within {:?}",
            options.connect_timeout
        ))),
    }
}

/// A handshake error in words; an HTTP answer other than 101 with its status and body.
fn describe(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            format!("the server answered {} {}", response.status(), body.trim())
        }
        other => other.to_string(),
    }
}

/// How a session ended.
enum End {
    /// The connection is gone: reconnect.
    Lost(String),
    /// The client closed: end the task (telling whoever asked, once the close frame is sent).
    Closed(Option<oneshot::Sender<()>>),
}

struct Driver {
    endpoint: Endpoint,
    options: Options,
    commands: mpsc::Receiver<Command>,
    /// Resolves when the last client handle is dropped.
    alive: oneshot::Receiver<()>,
    status: watch::Sender<Status>,
    subs: Subscriptions,
    pending: Pending,
    /// Publishes and pings made while there was no connection.
    held: VecDeque<Command>,
    /// Frames to send.
    out: Vec<String>,
    /// Reconnect attempts since the last connection that worked (see [`Driver::session`]).
    attempts: u32,
    /// Whether the current session has had a frame from the server.
    answered: bool,
}

/// The connection's task: sessions, and reconnecting in between, until the client closes.
pub(super) async fn run(
    endpoint: Endpoint,
    options: Options,
    first: Ws,
    commands: mpsc::Receiver<Command>,
    alive: oneshot::Receiver<()>,
    status: watch::Sender<Status>,
) {
    let mut driver = Driver {
        endpoint,
        options,
        commands,
        alive,
        status,
        subs: Subscriptions::default(),
        pending: Pending::default(),
        held: VecDeque::new(),
        out: Vec::new(),
        attempts: 0,
        answered: false,
    };
    let mut next = Some(first);
    loop {
        let ws = match next.take() {
            Some(ws) => ws,
            None => match driver.reconnect().await {
                Some(ws) => ws,
                None => break,
            },
        };
        let started = Instant::now();
        driver.answered = false;
        let end = driver.session(ws).await;
        // A connection counts as working once the server answered on it (or it lasted): one
        // the server accepts and drops at once must not be retried without backoff.
        if driver.answered || started.elapsed() >= driver.options.backoff.max {
            driver.attempts = 0;
        }
        driver.subs.connection_lost();
        driver.pending.connection_lost();
        driver.out.clear();
        match end {
            End::Lost(why) => {
                tracing::info!(url = %driver.endpoint.ws_url(), "connection lost: {why}");
                driver.status.send_modify(|s| {
                    s.connected = false;
                    s.last_error = Some(why);
                });
            }
            End::Closed(done) => {
                driver.status.send_modify(|s| s.connected = false);
                if let Some(done) = done {
                    let _ = done.send(());
                }
                break;
            }
        }
    }
    // Dropping the driver ends every subscription's stream; requests still held get
    // `Error::Closed` as their reply channels close.
}

impl Driver {
    /// Serves one connection until it is lost or the client closes.
    async fn session(&mut self, ws: Ws) -> End {
        let (mut sink, mut stream) = ws.split();
        self.subs.connected(&mut self.pending, &mut self.out);
        while let Some(command) = self.held.pop_front() {
            if let Some(end) = self.command(command, true) {
                return self.close(sink, end).await;
            }
        }
        if let Err(why) = self.flush(&mut sink, false).await {
            return End::Lost(why);
        }
        let mut liveness = Liveness::new(
            Instant::now(),
            self.options.ping_interval,
            self.options.ping_timeout,
        );
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Armed lazily: frames move the deadline later without touching the timer; when it
        // fires early, it is set again to the deadline as it is then.
        let liveness_check = tokio::time::sleep_until(liveness.deadline());
        tokio::pin!(liveness_check);
        loop {
            let mut ping = false;
            let end = tokio::select! {
                _ = &mut self.alive => Some(End::Closed(None)),
                frame = stream.next() => {
                    liveness.heard(Instant::now());
                    self.incoming(frame)
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command, true),
                    None => Some(End::Closed(None)),
                },
                _ = &mut liveness_check => {
                    let check = liveness.check(Instant::now());
                    liveness_check.as_mut().reset(liveness.deadline());
                    match check {
                    Check::Wait => None,
                    Check::Ping => {
                        ping = true;
                        None
                    }
                    Check::Dead => Some(End::Lost(format!(
                        "nothing heard from the server for {:?}, a ping unanswered",
                        liveness.limit()
                    ))),
                    }
                }
                _ = tick.tick(), if self.subs.needs_tick() => {
                    self.subs.tick(&mut self.pending, &mut self.out);
                    None
                }
            };
            match end {
                Some(End::Lost(why)) => return End::Lost(why),
                Some(closed) => return self.close(sink, closed).await,
                None => {}
            }
            if let Err(why) = self.flush(&mut sink, ping).await {
                return End::Lost(why);
            }
        }
    }

    /// Sends the frames waiting in `out` (after a ping, if `ping`), within the ping timeout: a
    /// server that takes nothing for that long is as dead as one that says nothing.
    async fn flush(&mut self, sink: &mut SplitSink<Ws, Message>, ping: bool) -> Result<(), String> {
        if self.out.is_empty() && !ping {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.out);
        let write = async {
            if ping {
                sink.feed(Message::Ping(Bytes::new())).await?;
            }
            for frame in frames {
                sink.feed(Message::text(frame)).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(self.options.ping_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot send: {e}")),
            Err(_) => Err(format!(
                "the server took nothing for {:?}",
                self.options.ping_timeout
            )),
        }
    }

    /// Ends the session with a close frame.
    async fn close(&mut self, mut sink: SplitSink<Ws, Message>, end: End) -> End {
        let frame = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "client closed".into(),
        }));
        let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(frame)).await;
        end
    }

    /// Waits out the backoff, then tries to connect, until it works or the client closes.
    /// Requests keep being taken meanwhile.
    async fn reconnect(&mut self) -> Option<Ws> {
        loop {
            let wait = tokio::time::sleep(self.options.backoff.delay_random(self.attempts));
            self.attempts = self.attempts.saturating_add(1);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    _ = &mut self.alive => return None,
                    command = self.commands.recv(), if self.held.len() < HELD_REQUESTS => {
                        let end = match command {
                            Some(command) => self.command(command, false),
                            None => Some(End::Closed(None)),
                        };
                        if let Some(End::Closed(done)) = end {
                            if let Some(done) = done {
                                let _ = done.send(());
                            }
                            return None;
                        }
                    }
                }
            }
            let attempt = tokio::select! {
                attempt = connect(&self.endpoint, &self.options) => attempt,
                _ = &mut self.alive => return None,
            };
            match attempt {
                Ok(ws) => {
                    tracing::info!(url = %self.endpoint.ws_url(), "reconnected");
                    self.status.send_modify(|s| {
                        s.connected = true;
                        s.connections += 1;
                    });
                    return Some(ws);
                }
                Err(e) => {
                    tracing::debug!("reconnect attempt failed: {e}");
                    self.status
                        .send_modify(|s| s.last_error = Some(e.to_string()));
                }
            }
        }
    }

    /// Takes one request from a handle. Without a connection, publishes and pings wait for
    /// the next one; subscriptions are recorded and subscribed once connected.
    fn command(&mut self, command: Command, connected: bool) -> Option<End> {
        match command {
            Command::Subscribe {
                id,
                topic,
                start,
                events,
                opened,
            } => self.subs.add(
                id,
                topic,
                start,
                events,
                opened,
                &mut self.pending,
                &mut self.out,
            ),
            Command::Unsubscribe { topic, reply } => {
                self.subs.remove(&topic, None);
                if connected {
                    let request_id = self.pending.register(Waiting::Unsubscribe(reply));
                    self.out.push(wire::unsubscribe(&topic, request_id));
                } else {
                    // Nothing to tell a server this client is not connected to: the next
                    // connection simply does not subscribe again.
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Publish {
                topic,
                message,
                reply,
            } => {
                if !connected {
                    self.held.push_back(Command::Publish {
                        topic,
                        message,
                        reply,
                    });
                    return None;
                }
                let request_id = self.pending.register(Waiting::Publish(reply));
                self.out.push(wire::publish(&topic, message, request_id));
            }
            Command::Ping { reply } => {
                if !connected {
                    self.held.push_back(Command::Ping { reply });
                    return None;
                }
                let request_id = self.pending.register(Waiting::Ping {
                    sent: Instant::now(),
                    reply,
                });
                self.out.push(wire::ping(request_id));
            }
            Command::Refresh { token, reply } => {
                // Reconnects use the new token from now on, whether or not it is accepted
                // here: the old one is about to expire anyway.
                self.options.token = Some(token.clone());
                if !connected {
                    self.held.push_back(Command::Refresh { token, reply });
                    return None;
                }
                let request_id = self.pending.register(Waiting::Refresh(reply));
                self.out.push(wire::refresh(&token, request_id));
            }
            Command::Dropped { topic, id } => {
                self.subs
                    .drop_sub(&topic, Some(id), &mut self.pending, &mut self.out);
            }
            Command::Close { done } => return Some(End::Closed(Some(done))),
        }
        None
    }

    /// A frame (or the end of the stream) from the server.
    fn incoming(&mut self, frame: Option<Result<Message, tungstenite::Error>>) -> Option<End> {
        let text = match frame {
            Some(Ok(Message::Text(text))) => {
                self.answered = true;
                text
            }
            Some(Ok(Message::Close(Some(close)))) => {
                return Some(End::Lost(format!(
                    "closed by the server: {} {}",
                    u16::from(close.code),
                    close.reason
                )));
            }
            Some(Ok(Message::Close(None))) => {
                return Some(End::Lost("closed by the server".to_owned()));
            }
            Some(Ok(_)) => return None, // pings (answered by the library), pongs
            Some(Err(e)) => return Some(End::Lost(e.to_string())),
            None => return Some(End::Lost("the connection ended".to_owned())),
        };
        let (pending, out) = (&mut self.pending, &mut self.out);
        match wire::parse(&text) {
            Ok(Incoming::Message(message)) => self.subs.on_message(message, pending, out),
            Ok(Incoming::Reply {
                request_id: Some(request_id),
                reply,
            }) => {
                if let Some(reply) = pending.complete(&request_id, reply) {
                    self.subs.on_reply(reply, pending, out);
                }
            }
            Ok(Incoming::Reply {
                request_id: None,
                reply,
            }) => tracing::warn!("a reply without request_id: {reply:?}"),
            Ok(Incoming::Lagged { topic }) => self.subs.on_lagged(&topic, pending, out),
            Ok(Incoming::TopicDeleted { topic }) => self.subs.on_deleted(&topic),
            Ok(Incoming::Revoked { topic }) => self.subs.on_revoked(&topic),
            Ok(Incoming::Unknown(action)) => tracing::debug!(%action, "unknown frame ignored"),
            Err(bad) => {
                tracing::warn!("{}", bad.reason);
                if let Some(request_id) = bad.request_id
                    && let Some(reply) = pending.fail(&request_id, bad.reason)
                {
                    self.subs.on_reply(reply, pending, out);
                }
            }
        }
        None
    }
}
