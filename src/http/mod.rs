//! The warp layer: route composition, the state filter and the one `recover` for rejections.
//!
//! Every route group puts its path filter first and answers every method on it itself (a JSON
//! 405 with `Allow` for the methods it lacks), so a rejection reaching [`error::recover`] means
//! no path matched.

mod authenticate;
mod body;
mod connections;
mod console;
pub mod docs;
mod error;
mod forward_write;
mod liveness;
mod metrics;
mod ops;
mod origin;
mod rate_limit;
mod read_ahead;
mod topics;
mod upgrade;
mod writer;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::Auth;
use crate::broker::Broker;
use crate::protocol::ErrorCode;

pub use connections::{Connections, Counted, Place};
pub use error::ApiError;
pub use origin::{Origin, Origins};
use rate_limit::AddressBuckets;

/// What the HTTP layer enforces on clients: sizes, rates and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest WebSocket frame (and message) a client may send.
    pub max_frame_bytes: usize,
    /// The largest REST request body.
    pub max_body_bytes: usize,
    /// The longest `request_id` a WebSocket frame may carry.
    pub max_request_id_bytes: usize,
    /// The deepest nesting of arrays and objects in a frame or body.
    pub max_json_depth: usize,
    /// Each WebSocket connection's publish budget; unlimited when `None`.
    pub publish_rate: Option<PublishRate>,
    /// Each client address's budget of REST publishes; unlimited when `None`.
    pub rest_publish_rate: Option<PublishRate>,
    /// Pinging WebSocket clients to find dead ones; off when `None`.
    pub liveness: Option<Liveness>,
    /// How long a client may take to send a request's headers, and then its body; and how long
    /// an HTTP connection may go without a request before it is closed.
    pub request_timeout: Duration,
    /// The most TCP connections open at once, of every kind.
    pub max_http_connections: usize,
}

/// A token bucket: `burst` publishes at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct PublishRate {
    pub per_second: f64,
    pub burst: usize,
}

impl PublishRate {
    /// `per_second`, with bursts of `burst` or by default one second's worth (at least 1).
    pub fn new(per_second: f64, burst: Option<usize>) -> Self {
        PublishRate {
            per_second,
            burst: burst.unwrap_or_else(|| per_second.ceil().max(1.0) as usize),
        }
    }
}

/// The TCP peer a request came from. The accept loop ([`crate::server`]) puts it in each
/// request's extensions: warp's own `addr::remote` is filled only by `warp::serve`.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Ping every `ping_interval`; a client that sends nothing for `ping_timeout` after a ping is
/// closed.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
}

/// What every handler gets: the broker handle, the limits, the count of TCP connections, the
/// REST publish budgets and the authentication settings.
/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub broker: Broker,
    pub limits: Limits,
    pub connections: Arc<Connections>,
    pub rest_publishes: Option<Arc<AddressBuckets>>,
    pub auth: Auth,
}

/// Injects the state into a route.
fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The whole route tree around `broker`: REST, WebSocket, the API documents with Swagger UI, and
/// the console at `/`. `connections` is what the server counts of its TCP connections, for
/// `/stats` and `/metrics`; `auth` says which requests need a token, and what it must allow;
/// `origins` are the browser origins allowed besides the server's own.
pub fn app(
    broker: Broker,
    limits: Limits,
    connections: Arc<Connections>,
    auth: Auth,
    origins: Origins,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let state = AppState {
        broker: broker.clone(),
        limits,
        connections,
        rest_publishes: limits
            .rest_publish_rate
            .map(|rate| Arc::new(AddressBuckets::new(rate))),
        auth: auth.clone(),
    };
    let routes = topics::routes(state.clone())
        .or(ops::routes(state.clone()))
        .unify()
        .or(metrics::routes(
            broker.clone(),
            state.connections.clone(),
            auth,
        ))
        .unify()
        .or(ws::routes(state))
        .unify()
        .or(docs::routes())
        .unify()
        .or(console::routes())
        .unify();
    let api = error::fault_injection()
        .and(routes)
        .recover(error::recover)
        .unify();
    origin::guard(origins, api)
        .map(move |response: Response| {
            if let Some(code) = response.extensions().get::<ErrorCode>() {
                broker.record_error(*code);
            }
            response
        })
        .with(warp::log("pubsub::http"))
}
