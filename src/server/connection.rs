//! One HTTP connection's life after accept: which requests are in flight, and when it has been
//! idle long enough to close. hyper's own header timeout covers HTTP/1 only, and only once the
//! first bytes have arrived; this covers every protocol, from accept on.

use crate::http::PeerAddr;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::sync::watch;

/// Runs one connection to its end. Once no request has been in flight for `timeout` (from
/// accept, or from the end of the last response), or when the server shuts down, the
/// connection is closed gracefully: what is in flight finishes and an HTTP/2 client gets GOAWAY.
/// One that has not ended `timeout` after that is dropped.
pub async fn run<C, E>(
    connection: C,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
    activity: Activity,
    timeout: Duration,
    mut server_closing: watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut connection = std::pin::pin!(connection);
    let why = tokio::select! {
        ended = connection.as_mut() => return report(ended),
        () = activity.idle_for(timeout) => "no request within the request timeout",
        _ = server_closing.wait_for(|closing| *closing) => "server shutting down",
    };
    tracing::debug!("closing an HTTP connection: {why}");
    graceful_shutdown(connection.as_mut());
    match tokio::time::timeout(timeout, connection).await {
        Ok(ended) => report(ended),
        Err(_) => tracing::debug!("HTTP connection not closed within the request timeout; dropped"),
    }
}

fn report<E: Display>(ended: Result<(), E>) {
    if let Err(e) = ended {
        tracing::debug!("HTTP connection ended with an error: {e}");
    }
}

/// How many requests are in flight on one connection; every change wakes the idle timer.
#[derive(Clone, Default)]
pub struct Activity(Arc<watch::Sender<usize>>);

impl Activity {
    /// A request arrived: it is in flight until the guard is dropped.
    fn started(&self) -> InFlight {
        self.0.send_modify(|n| *n += 1);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let mut requests = self.0.subscribe();
        loop {
            // The sender lives in `self`, so waiting cannot fail.
            if requests.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            // Any change (a request starting) before the timeout starts the wait over.
            if tokio::time::timeout(timeout, requests.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A request in flight; dropping it ends it.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A connection's service: each request is in flight from its complete headers until its
/// response's body has been sent, or dropped (a reset stream, a closed connection). Each request
/// also carries who sent it (warp's own remote-address filter is filled only by `warp::serve`).
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
    peer: PeerAddr,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Activity, peer: PeerAddr) -> Self {
        Tracked {
            inner,
            activity,
            peer,
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.peer);
        let in_flight = self.activity.started();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub struct TrackedBody<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_once_no_request_has_been_in_flight_for_the_timeout() {
        let activity = Activity::default();
        let timeout = Duration::from_millis(50);
        let request = activity.started();
        let idle = tokio::time::timeout(Duration::from_millis(200), activity.idle_for(timeout));
        assert!(idle.await.is_err(), "not idle while a request is in flight");
        drop(request);
        let ended = tokio::time::Instant::now();
        activity.idle_for(timeout).await;
        assert!(ended.elapsed() >= timeout);
    }
}
