//! A TCP proxy on 127.0.0.1 between clients and a server, for breaking connections on purpose:
//! cut every open connection, refuse new ones (by closing the listening socket) and listen
//! again on the same port, or stall open connections (they stay open and carry nothing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::WAIT;

/// What open connections are told: each count only goes up.
#[derive(Debug, Clone, Copy, Default)]
struct Signals {
    cuts: u64,
    stalls: u64,
}

enum Control {
    Refuse(oneshot::Sender<()>),
    Restore(oneshot::Sender<()>),
}

pub struct Proxy {
    pub addr: SocketAddr,
    signals: watch::Sender<Signals>,
    control: mpsc::Sender<Control>,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    open: AtomicUsize,
}

impl Proxy {
    /// Listens on 127.0.0.1 and a free port, forwarding each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (signals, _) = watch::channel(Signals::default());
        let (control, commands) = mpsc::channel(4);
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            upstream,
            signals.clone(),
            commands,
            counts.clone(),
        ));
        Proxy {
            addr,
            signals,
            control,
            counts,
            task,
        }
    }

    /// Closes every open connection, both sides.
    pub fn cut(&self) {
        self.signals.send_modify(|s| s.cuts += 1);
    }

    /// Open connections stop carrying bytes either way but stay open; new ones work.
    pub fn stall(&self) {
        self.signals.send_modify(|s| s.stalls += 1);
    }

    /// Stops listening: connecting is refused until [`Proxy::restore`].
    pub async fn refuse(&self) {
        let (done, wait) = oneshot::channel();
        self.control
            .send(Control::Refuse(done))
            .await
            .expect("proxy running");
        wait.await.expect("proxy refused");
    }

    /// Listens again, on the same port.
    pub async fn restore(&self) {
        let (done, wait) = oneshot::channel();
        self.control
            .send(Control::Restore(done))
            .await
            .expect("proxy running");
        wait.await.expect("proxy restored");
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
    signals: watch::Sender<Signals>,
    mut commands: mpsc::Receiver<Control>,
    counts: Arc<Counts>,
) {
    let mut listener = Some(listener);
    loop {
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
                tokio::spawn(forward(stream, upstream, signals.subscribe(), guard));
            }
            command = commands.recv() => match command {
                Some(Control::Refuse(done)) => {
                    listener = None;
                    let _ = done.send(());
                }
                Some(Control::Restore(done)) => {
                    if listener.is_none() {
                        listener = Some(rebind(addr).await);
                    }
                    let _ = done.send(());
                }
                None => return,
            },
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

async fn forward(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut signals: watch::Receiver<Signals>,
    _open: OpenGuard,
) {
    let at_start = *signals.borrow_and_update();
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let cut = |s: &Signals| s.cuts > at_start.cuts;
    let stalled = |s: &Signals| s.stalls > at_start.stalls;
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    tokio::select! {
        _ = copy => return,
        signal = signals.wait_for(|s| cut(s) || stalled(s)) => {
            if signal.map_or(true, |s| cut(&s)) {
                return;
            }
        }
    }
    // Stalled: hold both sockets open, carrying nothing, until cut.
    let _ = signals.wait_for(cut).await;
    drop((client, server));
}
