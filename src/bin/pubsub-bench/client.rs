//! Connections: the WebSocket handshake, a subscription, and topic creation over REST.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::wire::{self, Received};

pub type Ws = WebSocketStream<TcpStream>;

/// How long one connect, handshake, subscribe or REST request may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a WebSocket to `addr`. `read_buffer` is tungstenite's eagerly allocated read buffer:
/// large for a few busy connections, small when thousands of idle ones must fit in the harness's
/// memory.
pub async fn connect(addr: SocketAddr, ws_path: &str, read_buffer: usize) -> Result<Ws, String> {
    let step = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("set TCP_NODELAY: {e}"))?;
        let url = format!("ws://{addr}{ws_path}");
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(64 << 20);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        Ok(ws)
    };
    timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| format!("connecting took more than {STEP_TIMEOUT:?}"))?
}

/// Sends a subscribe and waits for its reply.
pub async fn subscribe(ws: &mut Ws, topic: &str) -> Result<(), String> {
    let step = async {
        ws.send(Message::text(wire::subscribe_frame(topic)))
            .await
            .map_err(|e| format!("send subscribe: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match wire::classify(t.as_bytes()) {
                    Received::Reply => return Ok(()),
                    Received::Error => {
                        return Err(format!("subscribe to '{topic}' refused: {}", t.as_str()));
                    }
                    Received::Delivery { .. } => {}
                },
                Some(Ok(Message::Close(c))) => {
                    return Err(format!("closed by the server while subscribing: {c:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("while subscribing: {e}")),
                None => return Err("connection ended while subscribing".to_owned()),
            }
        }
    };
    timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| format!("no reply to subscribe within {STEP_TIMEOUT:?}"))?
}

/// What `POST /topics` told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// 201 or 409: the topic exists now.
    Yes,
    /// 404 or 405: the server has no such route; topics come into being on subscribe.
    NoRoute,
}

/// `POST /topics {"name": topic}` on a fresh connection.
pub async fn create_topic(addr: SocketAddr, topic: &str) -> Result<Created, String> {
    let step = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let body = format!(r#"{{"name":"{topic}"}}"#);
        let request = format!(
            "POST /topics HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        // The status line is all we need; read until the server closes or 64 KiB.
        let mut response = Vec::with_capacity(1024);
        let mut limited = (&mut tcp).take(64 * 1024);
        limited
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let head = String::from_utf8_lossy(&response[..response.len().min(200)]).into_owned();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| head.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
        match status {
            201 | 409 => Ok(Created::Yes),
            404 | 405 => Ok(Created::NoRoute),
            other => Err(format!(
                "POST /topics answered {other}: {}",
                head.lines().next().unwrap_or("")
            )),
        }
    };
    timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| format!("POST /topics took more than {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("creating topic '{topic}' on {addr}: {e}"))
}
