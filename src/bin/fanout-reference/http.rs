//! The one HTTP route, `POST /topics {"name": …}`, on HTTP/1.1 with keep-alive. Every other
//! request gets a 404.

use std::io;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hub::Hub;

/// Longest request head, and longest body, accepted; beyond, the connection is closed.
const MAX_PART: usize = 64 * 1024;

#[derive(Deserialize)]
struct CreateTopic {
    name: String,
}

pub async fn serve(mut socket: TcpStream, hub: &Hub) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_PART || socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length = content_length(&head);
        if length > MAX_PART {
            return Ok(());
        }
        while buf.len() < head_end + length {
            if socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let (status, body) = answer(&head, &buf[head_end..head_end + length], hub);
        let close = head.contains("connection: close");
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        socket.write_all(response.as_bytes()).await?;
        buf.drain(..head_end + length);
        if close {
            return Ok(());
        }
    }
}

/// `head` is lower-cased.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn answer(head: &str, body: &[u8], hub: &Hub) -> (&'static str, String) {
    if !head.starts_with("post /topics ") {
        return ("404 Not Found", r#"{"error":"not found"}"#.to_owned());
    }
    match serde_json::from_slice::<CreateTopic>(body) {
        Ok(request) if hub.create(&request.name) => (
            "201 Created",
            serde_json::json!({"status": "created", "topic": request.name}).to_string(),
        ),
        Ok(_) => (
            "409 Conflict",
            r#"{"detail":"Topic already exists"}"#.to_owned(),
        ),
        Err(_) => ("400 Bad Request", r#"{"detail":"bad request"}"#.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Overflow;

    #[test]
    fn creates_once_then_conflicts() {
        let hub = Hub::new(1, Overflow::Block);
        let head = "post /topics http/1.1\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(content_length(head), 12);
        assert_eq!(answer(head, br#"{"name":"t"}"#, &hub).0, "201 Created");
        assert_eq!(answer(head, br#"{"name":"t"}"#, &hub).0, "409 Conflict");
        assert_eq!(answer(head, b"{", &hub).0, "400 Bad Request");
        assert_eq!(
            answer("get / http/1.1\r\n\r\n", b"", &hub).0,
            "404 Not Found"
        );
    }
}
