//! Serving the app on a listener, and shutting down gracefully: stop accepting, close every
//! WebSocket with 1001 "going away", let in-flight requests finish, all within a timeout.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::broker::{Broker, Close};
use crate::http::{Limits, app};

/// Serves until `shutdown` resolves, then shuts down gracefully within `grace`.
pub async fn serve(
    listener: TcpListener,
    broker: Broker,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let server = warp::serve(app(broker.clone(), limits))
        .incoming(listener)
        .graceful(async move {
            let _ = stopped.await;
        });
    let mut running = tokio::spawn(server.run());
    tokio::select! {
        _ = shutdown => {}
        _ = &mut running => return,
    }
    tracing::info!("shutting down: closing connections");
    let _ = stop.send(());
    broker.close_all(Close::GOING_AWAY);
    let drained = tokio::time::timeout(grace, async {
        let _ = running.await;
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
