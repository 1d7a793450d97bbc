//! Serving the app on a listener, over plain TCP or TLS, and shutting down gracefully: stop
//! accepting, close every WebSocket with 1001 "going away", let in-flight requests finish, all
//! within a timeout.

mod connection;
mod tls;

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::broker::{Broker, Close};
use crate::http::{Connections, Counted, Limits, Origins, PeerAddr, app};
use connection::{Activity, Tracked};
pub use tls::Tls;

/// How the server meets the network beyond its routes: TLS or not, and which browser origins
/// besides its own may use it.
#[derive(Clone, Default)]
pub struct Edge {
    /// Serve HTTPS and WSS; plain HTTP and WS when `None`.
    pub tls: Option<Tls>,
    /// Origins allowed besides the server's own.
    pub origins: Origins,
}

/// Serves until `shutdown` resolves, then shuts down gracefully within `grace`.
///
/// The accept loop is ours rather than `warp::serve`'s so that every connection, HTTP/1 or
/// HTTP/2, is bounded: at most `max_http_connections` open, each closed once it has gone the
/// request timeout without a request, and hyper given a timer for its header timeout.
pub async fn serve(
    listener: TcpListener,
    broker: Broker,
    limits: Limits,
    auth: Auth,
    edge: Edge,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let connections = Connections::new(limits.max_http_connections, edge.tls.is_some());
    let origins = edge.origins.for_scheme(edge.tls.is_some());
    let service = warp::service(app(
        broker.clone(),
        limits,
        connections.clone(),
        auth,
        origins,
    ));
    let http = builder(limits);
    // Tells every HTTP connection that the server is shutting down; closed once all have ended.
    let (server_closing, _) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Over the limit the socket is closed at once: the client learns now, rather than
        // after waiting in the listen queue, and the server spends nothing more on it.
        let Some(place) = connections.admit() else {
            tracing::debug!("--max-http-connections reached; connection closed");
            continue;
        };
        // Frames are batched by the writer already; Nagle's algorithm would only hold the last
        // small frame of a batch back (tens of milliseconds with delayed ACKs).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let activity = Activity::default();
        let service = Tracked::new(
            TowerToHyperService::new(service.clone()),
            activity.clone(),
            PeerAddr(peer),
        );
        let io = Counted::new(stream, place);
        let (http, closing) = (http.clone(), server_closing.subscribe());
        let timeout = limits.request_timeout;
        let serve = move |io: Box<dyn Io>| {
            let connection = http
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            connection::run(
                connection,
                |connection| connection.graceful_shutdown(),
                activity,
                timeout,
                closing,
            )
        };
        match &edge.tls {
            None => {
                tokio::spawn(serve(Box::new(io)));
            }
            // The handshake runs on the connection's task: the loop goes back to accepting.
            // A shutdown ends a handshake still under way.
            Some(tls) => {
                let (tls, connections) = (tls.clone(), connections.clone());
                let mut shutting_down = server_closing.subscribe();
                tokio::spawn(async move {
                    let accepted = tokio::select! {
                        accepted = tls.accept(io, &connections) => accepted,
                        _ = shutting_down.wait_for(|closing| *closing) => None,
                    };
                    drop(shutting_down);
                    if let Some(io) = accepted {
                        serve(Box::new(io)).await;
                    }
                });
            }
        }
    }
    drop(listener);
    close_all(&broker, &server_closing, grace).await;
}

/// A connection's byte stream, plain TCP or TLS over it, behind one type so that one code path
/// serves both.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Closes every connection, HTTP ones gracefully and WebSockets with 1001, and waits for them
/// to end, within `grace`.
async fn close_all(broker: &Broker, server_closing: &watch::Sender<bool>, grace: Duration) {
    tracing::info!("shutting down: closing connections");
    server_closing.send_replace(true);
    broker.close_all(Close::GOING_AWAY);
    let drained = tokio::time::timeout(grace, async {
        server_closing.closed().await;
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

/// hyper's settings: HTTP/1 headers within the request timeout, and HTTP/2 pinged at the
/// WebSocket ping interval (when pings are on) so that a peer gone away mid-request is found.
fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout);
    let mut http2 = http.http2();
    http2.timer(TokioTimer::new());
    if let Some(liveness) = limits.liveness {
        http2
            .keep_alive_interval(liveness.ping_interval)
            .keep_alive_timeout(liveness.ping_timeout);
    }
    http
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
