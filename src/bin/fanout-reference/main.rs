//! fanout-reference: a WebSocket fan-out server with no features beyond the hot path, the speed
//! limit to measure the broker against (BENCHMARKS.md). It re-implements, inside this crate, the
//! documented behaviour of the `fanout-reference` that the first benchmarks used (an outside
//! program), so that a clean clone can rerun every row.
//!
//! What it does, and nothing more:
//! - `POST /topics {"name": …}`: 201, or 409 when the name was created before (any other HTTP
//!   request: 404). A topic also comes into being on the first `subscribe` to it.
//! - On a WebSocket (any path): `subscribe`, `unsubscribe`, `publish` and `ping`, each answered
//!   by exactly one reply, in order (`{"type":"ack",…}`, `{"type":"pong",…}`, or
//!   `{"type":"error",…,"error":{"code":"BAD_REQUEST"}}`). A publish is delivered to the topic's
//!   subscribers as `{"type":"message","topic":…,"message":<the published JSON, byte for byte>}`.
//! - A bounded queue of frames per connection (`--queue`, default 16 384) drained by a writer task
//!   that batches writes. When a subscriber's queue is full the publisher waits for it
//!   (`--overflow block`, the default: lossless) or the frame is dropped (`--overflow drop`).
//!
//! No history, no validation of names or sizes, no limits, no stats, no logging per request. It
//! listens on 127.0.0.1 only.
//!
//! Modules: `frames` what is read and written on the WebSocket; `hub` topics, subscribers and the
//! fan-out; `session` one WebSocket connection; `http` the one REST route.

mod frames;
mod http;
mod hub;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tokio::net::{TcpListener, TcpStream};

use hub::Hub;

#[derive(Parser, Debug)]
#[command(
    name = "fanout-reference",
    about = "Minimal WebSocket fan-out server (the benchmarks' speed limit); listens on 127.0.0.1 only."
)]
struct Flags {
    /// Port on 127.0.0.1 (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8002)]
    port: u16,

    /// Worker threads of the runtime (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,

    /// Frames queued per connection before `--overflow` applies.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    queue: u32,

    /// What a publish does when a subscriber's queue is full.
    #[arg(long, value_enum, default_value_t = Overflow::Block)]
    overflow: Overflow,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wait until the subscriber's queue has room (lossless; a slow subscriber slows publishers).
    Block,
    /// Drop the frame for that subscriber.
    Drop,
}

fn main() {
    let flags = Flags::parse();
    // Thousands of idle connections are one of the benchmarks: take every file the hard limit
    // allows. Failing to raise it only limits the connections.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("fanout-reference: cannot raise the open-file limit: {e}");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = flags.threads {
        runtime.worker_threads(n as usize);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fanout-reference: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let hub = Arc::new(Hub::new(flags.queue as usize, flags.overflow));
    if let Err(e) = runtime.block_on(serve(flags, hub)) {
        eprintln!("fanout-reference: {e}");
        std::process::exit(1);
    }
}

async fn serve(flags: Flags, hub: Arc<Hub>) -> Result<(), String> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], flags.port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", flags.port))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    // One line on stderr, which tests and scripts read to learn the port.
    eprintln!(
        "fanout-reference listening on {addr} queue={} overflow={}",
        flags.queue,
        match flags.overflow {
            Overflow::Block => "block",
            Overflow::Drop => "drop",
        }
    );
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                tokio::spawn(connection(socket, hub.clone()));
            }
            // Out of file descriptors, usually: wait for some connections to close.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// One accepted socket: an HTTP request when it starts with `P` (of `POST`), a WebSocket
/// handshake otherwise. Errors end the connection silently, as a benchmark target should.
async fn connection(socket: TcpStream, hub: Arc<Hub>) {
    if socket.set_nodelay(true).is_err() {
        return;
    }
    let mut first = [0u8; 1];
    match socket.peek(&mut first).await {
        Ok(0) | Err(_) => {}
        Ok(_) if first[0] == b'P' => {
            let _ = http::serve(socket, &hub).await;
        }
        Ok(_) => session::run(socket, hub).await,
    }
}
