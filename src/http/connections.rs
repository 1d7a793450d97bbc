//! The server's TCP connections of every kind (WebSocket, HTTP/1, HTTP/2): a bound on how many
//! are open at once, and the counts `/stats` and `/metrics` show.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Open connections against their limit, shared by the accept loop and the routes that report.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    open: AtomicUsize,
    refused: AtomicU64,
    /// Whether the server speaks TLS (HTTPS and WSS).
    tls: bool,
    tls_handshakes_failed: AtomicU64,
}

impl Connections {
    pub fn new(max: usize, tls: bool) -> Arc<Self> {
        Arc::new(Connections {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            tls,
            tls_handshakes_failed: AtomicU64::new(0),
        })
    }

    /// Takes a place for a new connection, or counts it as refused when every place is taken.
    pub fn admit(self: &Arc<Self>) -> Option<Place> {
        let taken = self
            .open
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1));
        match taken {
            Ok(_) => Some(Place(self.clone())),
            Err(_) => {
                self.refused.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Relaxed) as u64
    }

    /// Connections closed on arrival because every place was taken, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Whether connections are TLS (HTTPS and WSS).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Counts a connection closed because its TLS handshake failed or took too long.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshakes_failed.fetch_add(1, Relaxed);
    }

    /// Connections closed because their TLS handshake failed or took too long, since start.
    pub fn tls_handshakes_failed(&self) -> u64 {
        self.tls_handshakes_failed.load(Relaxed)
    }
}

/// One connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Place(Arc<Connections>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// A socket that holds its place for as long as it lives. hyper hands the socket itself to a
/// WebSocket after an upgrade, so the place follows it there.
#[derive(Debug)]
pub struct Counted<T> {
    io: T,
    _place: Place,
}

impl<T> Counted<T> {
    pub fn new(io: T, place: Place) -> Self {
        Counted { io, _place: place }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

super::forward_write::forward_async_write!(Counted, io);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_counts_refusals_and_frees_places_on_drop() {
        let connections = Connections::new(2, false);
        let first = connections.admit().expect("first");
        let _second = connections.admit().expect("second");
        assert!(connections.admit().is_none());
        assert_eq!((connections.open(), connections.refused()), (2, 1));
        drop(first);
        assert_eq!(connections.open(), 1);
        assert!(connections.admit().is_some());
    }
}
