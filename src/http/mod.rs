//! The warp layer: route composition, the state filter and the one `recover` for rejections.
//!
//! Every route group puts its path filter first and answers every method on it itself (a JSON
//! 405 with `Allow` for the methods it lacks), so a rejection reaching [`error::recover`] means
//! no path matched.

mod body;
mod console;
pub mod docs;
mod error;
mod ops;
mod topics;
mod upgrade;
mod ws;

use std::convert::Infallible;

use warp::{Filter, Reply};

use crate::broker::Broker;

pub use error::ApiError;

/// Sizes the HTTP layer enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest WebSocket frame (and message) a client may send.
    pub max_frame_bytes: usize,
    /// The largest REST request body.
    pub max_body_bytes: usize,
}

/// What every handler gets: the broker handle and the limits. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub broker: Broker,
    pub limits: Limits,
}

/// Injects the state into a route.
fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The whole route tree around `broker`: REST, WebSocket, the API documents with Swagger UI, and
/// the console at `/`.
pub fn app(
    broker: Broker,
    limits: Limits,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let state = AppState { broker, limits };
    topics::routes(state.clone())
        .or(ops::routes(state.clone()))
        .unify()
        .or(ws::routes(state))
        .unify()
        .or(docs::routes())
        .unify()
        .or(console::routes())
        .unify()
        .recover(error::recover)
        .with(warp::log("pubsub::http"))
}
