//! A TCP proxy on 127.0.0.1 in front of a server, for breaking connections on purpose: between
//! clients and the broker (`client_reconnect.rs`), and between nodes and Redis (`redis_faults.rs`,
//! `history_checker.rs`).
//!
//! Two ways to steer it, which combine:
//! - a standing [`ProxyMode`] (`set`): pass, stall (every connection, open or new, holds and
//!   carries nothing until the mode changes back), refuse (every connection, open or new, is
//!   closed; the port still accepts), down (closed, and the port stops listening, so connecting
//!   gets `ECONNREFUSED`; it listens again on the same port when the mode leaves down);
//! - one-off actions on what is open now: [`Proxy::cut`] closes every open connection,
//!   [`Proxy::stall`] freezes every open one for good (until cut) while new ones pass, and
//!   [`Proxy::refuse`] / [`Proxy::restore`] stop and resume listening, returning once done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::WAIT;

/// What the proxy does with traffic, until told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Forwards both ways.
    #[default]
    Pass,
    /// Accepts and holds connections, forwarding nothing (a server that does not answer).
    Stall,
    /// Closes every connection, open or new (a server that is gone).
    Refuse,
    /// Closes every open connection and stops listening, so a new one is refused (a server
    /// whose process is gone); listens again on the same port after.
    Down,
}

/// What every connection and the accept loop watch. The counts only go up: a connection
/// compares them with what they were when it opened.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    mode: ProxyMode,
    /// Not listening, by [`Proxy::refuse`].
    refused: bool,
    cuts: u64,
    stalls: u64,
}

impl State {
    fn listening(&self) -> bool {
        !self.refused && self.mode != ProxyMode::Down
    }
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    open: AtomicUsize,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: watch::Sender<State>,
    /// Whether the port listens now, as the accept loop last set it.
    listening: watch::Receiver<bool>,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 and a free port, forwarding each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (state, _) = watch::channel(State::default());
        let (listening_tx, listening) = watch::channel(true);
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            upstream,
            state.clone(),
            listening_tx,
            counts.clone(),
        ));
        Proxy {
            addr,
            state,
            listening,
            counts,
            task,
        }
    }

    /// The URL of a Redis behind this proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Switches the standing mode (see [`ProxyMode`]); takes effect at once for every
    /// connection, and for listening as soon as the accept loop sees it.
    pub fn set(&self, mode: ProxyMode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    /// Closes every open connection, both sides.
    pub fn cut(&self) {
        self.state.send_modify(|s| s.cuts += 1);
    }

    /// Open connections stop carrying bytes either way but stay open (until cut); new ones work.
    pub fn stall(&self) {
        self.state.send_modify(|s| s.stalls += 1);
    }

    /// Stops listening: connecting is refused until [`Proxy::restore`]. Returns once the port
    /// is closed.
    pub async fn refuse(&self) {
        self.state.send_modify(|s| s.refused = true);
        self.wait_listening(false).await;
    }

    /// Listens again, on the same port; returns once it does.
    pub async fn restore(&self) {
        self.state.send_modify(|s| s.refused = false);
        self.wait_listening(true).await;
    }

    async fn wait_listening(&self, listening: bool) {
        let mut rx = self.listening.clone();
        tokio::time::timeout(WAIT, rx.wait_for(|l| *l == listening))
            .await
            .expect("the proxy changes its listening in time")
            .expect("proxy running");
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.counts.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.open.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    state: watch::Sender<State>,
    listening: watch::Sender<bool>,
    counts: Arc<Counts>,
) {
    let mut changes = state.subscribe();
    let mut listener = Some(listener);
    loop {
        let want = changes.borrow_and_update().listening();
        match (&listener, want) {
            (Some(_), false) => {
                listener = None;
                listening.send_replace(false);
                continue;
            }
            (None, true) => {
                listener = Some(rebind(addr).await);
                listening.send_replace(true);
                continue;
            }
            _ => {}
        }
        let accepted = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = accepted => {
                let Some((stream, _)) = accepted else { continue };
                counts.accepted.fetch_add(1, Ordering::Relaxed);
                let guard = OpenGuard::new(counts.clone());
                tokio::spawn(relay(stream, upstream, state.subscribe(), guard));
            }
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Listens on `addr` again. Another socket may hold the port for a moment (the kernel can hand
/// a free port to an outgoing connection): retry within the wait.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let bound = TcpSocket::new_v4().and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        });
        match bound {
            Ok(listener) => return listener,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("proxy: cannot listen on {addr} again yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("proxy: cannot listen on {addr} again: {e}"),
        }
    }
}

struct OpenGuard(Arc<Counts>);

impl OpenGuard {
    fn new(counts: Arc<Counts>) -> Self {
        counts.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(counts)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Relays one connection until either side ends it or the state says to drop it; while
/// stalled, reads nothing and writes nothing.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<State>,
    _open: OpenGuard,
) {
    let at_start = *state.borrow_and_update();
    if matches!(at_start.mode, ProxyMode::Refuse | ProxyMode::Down) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut a, mut b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        let now = *state.borrow_and_update();
        if now.cuts > at_start.cuts || matches!(now.mode, ProxyMode::Refuse | ProxyMode::Down) {
            return;
        }
        if now.mode == ProxyMode::Stall || now.stalls > at_start.stalls {
            if state.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            n = client.read(&mut a) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if server.write_all(&a[..n]).await.is_err() { return },
            },
            n = server.read(&mut b) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&b[..n]).await.is_err() { return },
            },
        }
    }
}
