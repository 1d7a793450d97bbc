//! Serving the app on a listener, and shutting down gracefully: stop accepting, close every
//! WebSocket with 1001 "going away", let in-flight requests finish, all within a timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::broker::{Broker, Close};
use crate::http::{Limits, PeerAddr, app};

/// Serves until `shutdown` resolves, then shuts down gracefully within `grace`.
///
/// The accept loop is ours rather than `warp::serve`'s so that hyper gets a timer: without one,
/// a client that opens a connection and never finishes its request headers holds it forever.
pub async fn serve(
    listener: TcpListener,
    broker: Broker,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let service = warp::service(app(broker.clone(), limits));
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Frames are batched by the writer already; Nagle's algorithm would only hold
                    // the last small frame of a batch back (tens of milliseconds with delayed ACKs).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("cannot set TCP_NODELAY: {e}");
                    }
                    (stream, peer)
                }
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let first_request = Arc::new(Notify::new());
        let service = FirstRequest {
            inner: TowerToHyperService::new(service.clone()),
            arrived: first_request.clone(),
            peer: PeerAddr(peer),
        };
        let connection = http
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let request_timeout = limits.request_timeout;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // hyper's header timeout starts only once it has told HTTP/1 from HTTP/2, which
            // waits for the client's first bytes: a client that never sends any would hold its
            // connection forever. Give the first request the same time as any other.
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                _ = first_request.notified() => None,
                _ = tokio::time::sleep(request_timeout) => {
                    tracing::debug!("no request within the request timeout; connection dropped");
                    return;
                }
            };
            if let Err(e) = match ended {
                Some(ended) => ended,
                None => connection.await,
            } {
                tracing::debug!("HTTP connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: closing connections");
    broker.close_all(Close::GOING_AWAY);
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        while broker.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = broker.connections(),
            "shutdown timeout reached with connections still open"
        );
    }
}

/// The connection's service, noting when its first request arrives and telling each request
/// who sent it.
struct FirstRequest<S> {
    inner: S,
    arrived: Arc<Notify>,
    peer: PeerAddr,
}

impl<S: hyper::service::Service<Request<B>>, B> hyper::service::Service<Request<B>>
    for FirstRequest<S>
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        self.arrived.notify_one();
        request.extensions_mut().insert(self.peer);
        self.inner.call(request)
    }
}

/// An accept that failed. Running out of file descriptors (EMFILE/ENFILE) would fail again at
/// once, so wait a little for connections to close; a connection reset before it was accepted
/// is nothing to wait for.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
