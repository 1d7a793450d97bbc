//! Test harness: the real server on an ephemeral port, a raw HTTP/1.1 client (so tests can send
//! exactly the bytes they mean, malformed ones included) and a WebSocket client.
#![allow(dead_code)] // each test file uses its own part of the harness

pub mod auth;
pub mod bench;
pub mod child;
pub mod cli;
pub mod h2;
pub mod proxy;
pub mod redis;
pub mod reference;
pub mod tls;
pub mod tools;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use pubsub::broker::Broker;
use pubsub::config::Config;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server running in this process on 127.0.0.1 and a free port.
///
/// With `PUBSUB_TEST_ENGINE=redis` (and no `--engine` among the test's flags) it is two nodes on
/// a Redis of the test's own: REST requests go to the first, and WebSocket clients alternate
/// between the two, so every suite that uses this harness also runs across nodes.
pub struct TestServer {
    pub addr: SocketAddr,
    pub broker: Broker,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// The second node, under `PUBSUB_TEST_ENGINE=redis`.
    peer: Option<Box<TestServer>>,
    /// Declared last: dropped (stopped) after the nodes.
    _redis: Option<redis::RedisServer>,
    connections: std::sync::atomic::AtomicUsize,
}

/// Whether the suites run across two nodes on Redis (`PUBSUB_TEST_ENGINE=redis`).
pub fn across_nodes() -> bool {
    std::env::var("PUBSUB_TEST_ENGINE").is_ok_and(|e| e == "redis")
}

impl TestServer {
    /// Starts a server with default flags.
    pub async fn start() -> Self {
        Self::with_args(&[]).await
    }

    /// Starts a server as `pubsub ARGS...` would be configured (two nodes on Redis under
    /// `PUBSUB_TEST_ENGINE=redis`).
    pub async fn with_args(args: &[&str]) -> Self {
        if !across_nodes() || args.contains(&"--engine") {
            return Self::node(args).await;
        }
        let redis = redis::RedisServer::start();
        let url = redis.url();
        let mut args = args.to_vec();
        args.extend(["--engine", "redis", "--redis-url", &url]);
        let peer = Self::node(&args).await;
        let mut first = Self::node(&args).await;
        first.peer = Some(Box::new(peer));
        first._redis = Some(redis);
        first
    }

    /// One node.
    async fn node(args: &[&str]) -> Self {
        let config = Config::try_parse_from(std::iter::once("pubsub").chain(args.iter().copied()))
            .expect("test flags parse");
        config.validate().expect("test flags are consistent");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let edge = config.edge().expect("TLS files and origins load");
        let broker = config.broker().await.expect("the engine starts");
        let auth = config.auth().expect("test auth flags are usable");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pubsub::server::serve(
            listener,
            broker.clone(),
            config.limits(),
            auth,
            edge,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        TestServer {
            addr,
            broker,
            stop: Some(stop),
            task,
            peer: None,
            _redis: None,
            connections: Default::default(),
        }
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(peer) = self.peer.take() {
            Box::pin(peer.shutdown()).await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.task).await;
    }

    /// Where the next WebSocket client connects: this node, or every other time its peer.
    pub fn ws_addr(&self) -> SocketAddr {
        let n = self
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &self.peer {
            Some(peer) if n % 2 == 1 => peer.addr,
            _ => self.addr,
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        self.settle().await;
        http_request(self.addr, method, path, headers, body).await
    }

    /// Across two nodes: waits until this node's view of its peer's subscriptions (the peer's
    /// last report) matches what the peer holds now, so that a count read here includes every
    /// subscribe and unsubscribe the peer has acknowledged. Nothing to wait for on one node.
    async fn settle(&self) {
        let Some(peer) = &self.peer else { return };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let held = peer.broker.local_stats().subscriptions;
            // What `/stats` on this node reports, read in process: the route may need a token.
            let stats = self.broker.stats().await.ok();
            let seen = stats
                .and_then(|s| s.nodes.into_iter().find(|n| n.id == peer.broker.node_id()))
                .map(|n| n.subscriptions);
            if seen == Some(held) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the peer's report never caught up: it holds {held}, this node sees {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"").await
    }

    pub async fn delete(&self, path: &str) -> HttpResponse {
        self.request("DELETE", path, &[], b"").await
    }

    /// POSTs `body` as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> HttpResponse {
        let body = serde_json::to_vec(body).expect("encode");
        self.request("POST", path, &[("Content-Type", "application/json")], &body)
            .await
    }

    pub async fn create_topic(&self, name: &str) {
        create_topic_at(self.addr, name).await;
    }

    /// `GET /stats` as JSON.
    /// `GET /stats` as JSON. Across two nodes, the figures that are each node's own (connections,
    /// message counters, errors) are the two nodes' added up, as a sum over nodes in Prometheus
    /// would show them: the deployment as one server.
    pub async fn stats(&self) -> Value {
        let r = self.get("/stats").await;
        assert_eq!(r.status, 200);
        let mut stats = r.json();
        if let Some(peer) = &self.peer {
            let theirs = http_request(peer.addr, "GET", "/stats", &[], b"")
                .await
                .json();
            add_node_figures(&mut stats, &theirs);
        }
        stats
    }

    /// Polls `GET /stats` until `check` holds, or fails after [`WAIT`].
    pub async fn wait_for_stats(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.stats().await;
            if check(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn ws(&self) -> WsClient {
        WsClient::connect(self.ws_addr()).await
    }
}

/// `value` without its `epoch`, after checking the epoch is there (12 letters and digits):
/// for comparing publish acks, whose epoch is random, with the expected rest.
pub fn without_epoch(mut value: Value) -> Value {
    let epoch = value
        .as_object_mut()
        .and_then(|o| o.remove("epoch"))
        .unwrap_or_else(|| panic!("an epoch in {value}"));
    assert!(
        epoch
            .as_str()
            .is_some_and(|e| e.len() == 12 && e.chars().all(|c| c.is_ascii_alphanumeric())),
        "epoch {epoch}"
    );
    value
}

/// Adds another node's own figures (those `/stats` documents as this node's alone) to `stats`.
fn add_node_figures(stats: &mut Value, other: &Value) {
    for key in [
        "connections",
        "http_connections",
        "http_connections_refused",
        "tls_handshakes_failed",
        "messages_published",
        "messages_delivered",
        "messages_dropped",
        "slow_consumers_disconnected",
        "dead_connections_closed",
    ] {
        let sum = stats[key].as_u64().unwrap_or(0) + other[key].as_u64().unwrap_or(0);
        stats[key] = sum.into();
    }
    if let (Some(mine), Some(theirs)) =
        (stats["errors"].as_object_mut(), other["errors"].as_object())
    {
        for (code, n) in theirs {
            let sum = mine.get(code).and_then(Value::as_u64).unwrap_or(0) + n.as_u64().unwrap_or(0);
            mine.insert(code.clone(), sum.into());
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }

    /// Asserts a JSON error response with `status` and `code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "error responses are JSON"
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error has a message: {body}"
        );
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response.
/// Creates a topic on the server at `addr` (in this process or a child), asserting 201.
pub async fn create_topic_at(addr: SocketAddr, name: &str) {
    let body = serde_json::json!({ "name": name }).to_string();
    let r = http_request(
        addr,
        "POST",
        "/topics",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "create topic {name}: {}", r.text());
}

pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !chunked && (!body.is_empty() || method == "POST" || method == "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    if chunked {
        if !body.is_empty() {
            raw.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            raw.extend_from_slice(body);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
    } else {
        raw.extend_from_slice(body);
    }
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&raw).await.expect("send request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response within the wait")
        .expect("read response");
    parse_response(&response)
}

/// Reads until the server ends the connection (EOF or reset); returns what arrived. Fails if it
/// is still open after the wait.
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server ends a stalled connection within the wait");
    got
}

/// Reads one response with a Content-Length body (the connection may stay open).
pub async fn read_response(stream: &mut TcpStream) -> HttpResponse {
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a Content-Length");
                if raw.len() >= end + 4 + length {
                    return;
                }
            }
            let n = stream.read(&mut chunk).await.expect("read response");
            assert!(n > 0, "connection closed before a full response: {raw:?}");
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a response within the wait");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let is_chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if is_chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// A WebSocket client speaking the broker's JSON protocol.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("WebSocket connect");
        assert_eq!(response.status(), 101);
        WsClient { ws }
    }

    /// Connects with `token` in `Authorization: Bearer` (or, with `in_query`, as `?token=`);
    /// a refused handshake is its HTTP status and JSON body.
    pub async fn connect_with_token(
        addr: SocketAddr,
        token: Option<&str>,
        in_query: bool,
    ) -> Result<Self, (u16, Value)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = match (token, in_query) {
            (Some(token), true) => format!("ws://{addr}/ws?token={token}"),
            _ => format!("ws://{addr}/ws"),
        };
        let mut request = url.into_client_request().expect("request");
        if let (Some(token), false) = (token, in_query) {
            let value = format!("Bearer {token}").parse().expect("header value");
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(WsClient { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                Err((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
            }
            Err(e) => panic!("WebSocket connect: {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next frame of any kind (pings and pongs included), or None when the stream ended.
    pub async fn next_raw(&mut self) -> Option<Message> {
        tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("a frame within the wait")
            .map(|r| r.expect("read frame"))
    }

    /// The next JSON text frame.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.next_raw().await {
                Some(Message::Text(text)) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad JSON {text}: {e}"));
                }
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends `frame` and returns the next frame received.
    pub async fn request(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.recv().await
    }

    /// The close frame the server sends next (skipping anything else), as (code, reason).
    pub async fn recv_close(&mut self) -> (u16, String) {
        loop {
            match self.next_raw().await {
                Some(Message::Close(Some(frame))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Message::Close(None)) => return (1005, String::new()),
                None => panic!("stream ended without a close frame"),
                Some(_) => continue,
            }
        }
    }

    /// Asserts that nothing arrives for `within`.
    pub async fn assert_silent(&mut self, within: Duration) {
        if let Ok(frame) = tokio::time::timeout(within, self.ws.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    /// Subscribes and returns the ack.
    pub async fn subscribe(&mut self, topic: &str) -> Value {
        let ack = self
            .request(serde_json::json!({"action": "subscribe", "topic": topic}))
            .await;
        assert_eq!(ack["action"], "subscribed", "{ack}");
        ack
    }

    /// Publishes and returns the seq from the ack. The caller must not be subscribed to `topic`
    /// (its own message would arrive before the ack).
    pub async fn publish(&mut self, topic: &str, message: Value) -> u64 {
        let ack = self
            .request(serde_json::json!({"action": "publish", "topic": topic, "message": message}))
            .await;
        assert_eq!(ack["action"], "published", "{ack}");
        ack["seq"].as_u64().expect("seq")
    }
}

/// The headers of a valid WebSocket upgrade request (a fixed key is as good as any).
pub const UPGRADE_HEADERS: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// WebSocket opcodes a [`RawWs`] reads.
pub mod opcode {
    pub const TEXT: u8 = 0x1;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// A WebSocket spoken by hand over TCP, so a test can be the client no library would be: one
/// that never reads, never answers a ping, or stops in the middle of anything.
pub struct RawWs {
    pub stream: TcpStream,
    /// Bytes read but not yet parsed into frames.
    buf: Vec<u8>,
}

/// One frame from the server: (opcode, payload).
pub type RawFrame = (u8, Vec<u8>);

impl RawWs {
    /// Sends an upgrade request and reads the 101; nothing more.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::handshake(stream, addr).await
    }

    /// [`RawWs::connect`] with a socket receive buffer of `bytes` (the kernel may round it up):
    /// once this client stops reading, the buffers between it and the server fill after a few
    /// frames, and what the server sends next waits in its own queue.
    pub async fn connect_with_recv_buffer(addr: SocketAddr, bytes: u32) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connect");
        Self::handshake(stream, addr).await
    }

    /// Upgrades a connected `stream` and reads the 101.
    pub async fn handshake(mut stream: TcpStream, addr: SocketAddr) -> Self {
        let mut head = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n");
        for (name, value) in UPGRADE_HEADERS {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send upgrade");
        let mut buf = Vec::new();
        let end = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    return end + 4;
                }
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await.expect("read handshake");
                assert!(n > 0, "connection closed during the handshake");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("handshake answer within the wait");
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "expected 101, got {head}");
        RawWs {
            stream,
            buf: buf[end..].to_vec(),
        }
    }

    /// Sends one masked text frame (the mask is all zeros: valid, and the payload stays readable).
    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(opcode::TEXT, text.as_bytes()).await;
    }

    /// Sends a close frame with `code` and no reason.
    pub async fn send_close(&mut self, code: u16) {
        self.send_frame(opcode::CLOSE, &code.to_be_bytes()).await;
    }

    /// Sends one final, masked frame (all-zero mask) with `opcode` and `payload`.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.expect("send frame");
    }

    /// The next frame, or None once the server has closed the TCP connection (or reset it).
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some((frame, used)) = parse_frame(&self.buf) {
                    self.buf.drain(..used);
                    return Some(frame);
                }
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("a frame or the end of the connection within the wait")
    }

    /// The next text frame as JSON, skipping pings.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Some((opcode::TEXT, payload)) => {
                    return serde_json::from_slice(&payload).expect("JSON text frame");
                }
                Some((opcode::PING, _)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Every frame until the server ends the connection.
    pub async fn frames_until_closed(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame().await {
            frames.push(frame);
        }
        frames
    }
}

/// Parses one unmasked server frame from the start of `buf`: the frame and the bytes it used.
fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    let (len, mut at) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    Some(((b0 & 0x0F, payload), at))
}

/// The close code and reason of a close frame's payload.
pub fn close_payload(payload: &[u8]) -> (u16, String) {
    assert!(payload.len() >= 2, "close frame without a code");
    (
        u16::from_be_bytes([payload[0], payload[1]]),
        String::from_utf8_lossy(&payload[2..]).into_owned(),
    )
}
