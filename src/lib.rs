//! pubsub: an in-memory publish/subscribe broker.
//!
//! Data flows one way: socket or HTTP request → [`protocol`] types → [`broker`] →
//! per-connection outboxes → socket writer.
//!
//! - [`broker`]: the engine. Topics, history, sequence numbers, epochs, subscribers,
//!   slow-consumer policy and counters. No HTTP in it.
//! - [`protocol`]: the wire. REST bodies and WebSocket frames as Rust types (serde + utoipa),
//!   the client-frame parser, the shared `message` frame encoder, and the AsyncAPI document
//!   built from the frame types.
//! - [`http`]: the warp layer. Routes and handlers, the WebSocket handshake and session (pings,
//!   limits, panic containment), Prometheus metrics, the OpenAPI and AsyncAPI documents with
//!   Swagger UI, the live console at `/`, the browser-origin check with CORS, and the JSON form
//!   of every error.
//! - [`auth`]: tokens and rights: JWT verification, the topic patterns a token grants, what
//!   each action needs, and the aggregated log of refusals. No HTTP in it.
//! - [`config`]: flags and environment.
//! - [`server`]: the accept loop with its bound on TCP connections, TLS (HTTPS and WSS), the
//!   idle timeout of every HTTP connection, and graceful shutdown; used by `main` and by tests.
//! - [`client`]: a Rust client of the broker: WebSocket subscriptions that reconnect and resume
//!   by themselves, publishing, and the REST API.
//! - [`cli`]: the `pubsub sub|pub|topics|history` commands, built on [`client`].

pub mod auth;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod protocol;
pub mod server;

pub use http::app;
