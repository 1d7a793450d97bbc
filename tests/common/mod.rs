//! Test harness: the real server on an ephemeral port, a raw HTTP/1.1 client (so tests can send
//! exactly the bytes they mean, malformed ones included) and a WebSocket client.
#![allow(dead_code)] // each test file uses its own part of the harness

pub mod child;

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
pub struct TestServer {
    pub addr: SocketAddr,
    pub broker: Broker,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server with default flags.
    pub async fn start() -> Self {
        Self::with_args(&[]).await
    }

    /// Starts a server as `pubsub ARGS...` would be configured.
    pub async fn with_args(args: &[&str]) -> Self {
        let config = Config::try_parse_from(std::iter::once("pubsub").chain(args.iter().copied()))
            .expect("test flags parse");
        config.validate().expect("test flags are consistent");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let broker = Broker::new(config.broker_config());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pubsub::server::serve(
            listener,
            broker.clone(),
            config.limits(),
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
        }
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(WAIT, &mut self.task).await;
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(self.addr, method, path, headers, body).await
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
        let r = self
            .post_json("/topics", &serde_json::json!({ "name": name }))
            .await;
        assert_eq!(r.status, 201, "create topic {name}: {}", r.text());
    }

    /// `GET /stats` as JSON.
    pub async fn stats(&self) -> Value {
        let r = self.get("/stats").await;
        assert_eq!(r.status, 200);
        r.json()
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
        WsClient::connect(self.addr).await
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

fn parse_response(raw: &[u8]) -> HttpResponse {
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
