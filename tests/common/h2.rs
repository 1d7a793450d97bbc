//! HTTP/2 with prior knowledge (h2c) spoken by hand over TCP: the preface, SETTINGS, a GET with
//! a header block in plain HPACK, and frames read one by one. Enough for a test to be a real
//! HTTP/2 client, an idle one, or one that stops in the middle of its request headers.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// Frame types.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame from the server.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// How a client answers the server's frames while it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Acknowledges SETTINGS and PING, and gives back the window DATA used, as any HTTP/2
    /// library does.
    Answering,
    /// Never answers: a client that is stuck, or gone.
    Silent,
}

pub struct H2c {
    pub stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl H2c {
    /// Connects and sends the client preface with an empty SETTINGS frame; reads nothing.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        // Frames are small and written one by one: do not let Nagle hold them back.
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut client = H2c {
            stream,
            addr,
            buf: Vec::new(),
        };
        client.stream.write_all(PREFACE).await.expect("preface");
        client.send_frame(SETTINGS, 0, 0, &[]).await;
        client
    }

    pub async fn send_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.try_send_frame(kind, flags, stream, payload)
            .await
            .expect("send frame");
    }

    async fn try_send_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).expect("frame length");
        let mut frame = len.to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await
    }

    /// The header block of `GET path`, in HPACK without indexing or Huffman coding.
    pub fn get_block(&self, path: &str) -> Vec<u8> {
        // :method GET and :scheme http are entries 2 and 6 of the static table.
        let mut block = vec![0x82, 0x86];
        // Literals without indexing whose names are static entries 4 (:path), 1 (:authority).
        for (name, value) in [(0x04, path.to_owned()), (0x01, self.addr.to_string())] {
            block.push(name);
            block.push(u8::try_from(value.len()).expect("short header value"));
            block.extend_from_slice(value.as_bytes());
        }
        block
    }

    /// Sends `GET path` on `stream` (an odd number, higher than the last one used).
    pub async fn get(&mut self, stream: u32, path: &str) {
        let block = self.get_block(path);
        self.send_frame(HEADERS, END_HEADERS | END_STREAM, stream, &block)
            .await;
    }

    /// The next frame, or None once the server has closed the connection (or reset it).
    /// Answers SETTINGS and PING when `reading` says so.
    pub async fn next_frame(&mut self, reading: Reading) -> Option<Frame> {
        let frame = tokio::time::timeout(WAIT, self.read_frame())
            .await
            .expect("a frame or the end of the connection within the wait")?;
        if reading == Reading::Answering {
            // The server may have closed already; an answer it never reads does no harm.
            let _ = self.answer(&frame).await;
        }
        Some(frame)
    }

    async fn answer(&mut self, frame: &Frame) -> std::io::Result<()> {
        let acked = frame.flags & ACK != 0;
        match frame.kind {
            SETTINGS if !acked => self.try_send_frame(SETTINGS, ACK, 0, &[]).await,
            PING if !acked => self.try_send_frame(PING, ACK, 0, &frame.payload).await,
            // Streams are used once, so only the connection's window needs giving back.
            DATA if !frame.payload.is_empty() => {
                let used = u32::try_from(frame.payload.len()).expect("frame length");
                self.try_send_frame(WINDOW_UPDATE, 0, 0, &used.to_be_bytes())
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let head: [u8; 9] = self.buf.get(..9)?.try_into().ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let payload = self.buf.get(9..9 + len)?.to_vec();
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7FFF_FFFF;
        self.buf.drain(..9 + len);
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        })
    }

    /// The response on `stream`: its status and body. Fails if the connection ends first.
    pub async fn response(&mut self, stream: u32) -> (u16, Vec<u8>) {
        let mut status = None;
        let mut body = Vec::new();
        loop {
            let frame = self
                .next_frame(Reading::Answering)
                .await
                .expect("a response before the connection ends");
            if frame.stream != stream {
                continue;
            }
            match frame.kind {
                HEADERS => status = Some(status_of(&frame.payload)),
                DATA => body.extend_from_slice(&frame.payload),
                _ => {}
            }
            if frame.flags & END_STREAM != 0 {
                return (status.expect("response headers"), body);
            }
        }
    }

    /// `GET path` on `stream`, answered 200; returns the body as JSON.
    pub async fn get_json(&mut self, stream: u32, path: &str) -> serde_json::Value {
        self.get(stream, path).await;
        let (status, body) = self.response(stream).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("JSON body")
    }

    /// Every frame until the server ends the connection. Fails if it is still open after the
    /// wait.
    pub async fn frames_until_closed(&mut self, reading: Reading) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame(reading).await {
            frames.push(frame);
        }
        frames
    }
}

/// The status of a response header block that starts with it as an indexed static entry, as
/// hyper sends 200, 204, 206, 304, 400, 404 and 500.
fn status_of(block: &[u8]) -> u16 {
    match block.first() {
        Some(0x88) => 200,
        Some(0x89) => 204,
        Some(0x8a) => 206,
        Some(0x8b) => 304,
        Some(0x8c) => 400,
        Some(0x8d) => 404,
        Some(0x8e) => 500,
        other => panic!("a status this client cannot decode: {other:?} in {block:?}"),
    }
}
