//! The WebSocket handshake as a warp filter.
//!
//! warp's own `ws()` filter cannot size tungstenite's buffers, which default to 128 KiB for
//! reading and 128 KiB for writing: measured, about 136 KiB of resident memory per idle
//! connection. Doing the handshake here (validate the request, answer 101, take the upgraded
//! connection from hyper) lets each connection start small and grow only while it is busy.

use std::convert::Infallible;
use std::future::Future;

use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use super::error::ApiError;
use super::read_ahead::ReadAhead;
use crate::protocol::ErrorCode;

/// An established WebSocket connection. Its reads go through [`ReadAhead`], so tungstenite's own
/// read buffer can stay small.
pub type Socket = WebSocketStream<ReadAhead<TokioIo<Upgraded>>>;

/// A valid upgrade request, ready to be accepted.
pub struct Handshake {
    accept_key: String,
    on_upgrade: OnUpgrade,
}

/// Extracts a valid WebSocket upgrade request, or why it is refused: `upgrade_required` when the
/// request is not a WebSocket upgrade of version 13, `bad_request` when it is one without a
/// valid key.
/// Answer a refusal with [`refuse`].
pub fn handshake()
-> impl Filter<Extract = (Result<Handshake, ApiError>,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(warp::ext::optional::<OnUpgrade>())
        .map(|headers: HeaderMap, on_upgrade| check(&headers, on_upgrade))
}

fn check(headers: &HeaderMap, on_upgrade: Option<OnUpgrade>) -> Result<Handshake, ApiError> {
    let upgrade_required = |why: &str| ApiError::new(ErrorCode::UpgradeRequired, why);
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(upgrade_required(
            "this endpoint speaks WebSocket: send a GET with 'Connection: Upgrade' and 'Upgrade: websocket'",
        ));
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(upgrade_required("only WebSocket version 13 is supported"));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(ApiError::bad_request("missing Sec-WebSocket-Key header"));
    };
    if !is_key(key.as_bytes()) {
        return Err(ApiError::bad_request(
            "Sec-WebSocket-Key must be the base64 encoding of 16 bytes \
             (24 characters ending in '==')",
        ));
    }
    let Some(on_upgrade) = on_upgrade else {
        return Err(upgrade_required("this connection cannot be upgraded"));
    };
    Ok(Handshake {
        accept_key: derive_accept_key(key.as_bytes()),
        on_upgrade,
    })
}

/// Whether `key` is base64 of 16 bytes (RFC 6455 4.2.1): 22 base64 digits, then "==". The
/// unused low bits of the last digit are not checked: only the key's form matters, not its value.
fn is_key(key: &[u8]) -> bool {
    let is_digit = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    match key.split_last_chunk::<2>() {
        Some((digits, b"==")) => digits.len() == 22 && digits.iter().all(is_digit),
        _ => false,
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// The JSON error for a refused handshake; a 426 also names the protocol and version we speak.
pub fn refuse(error: ApiError) -> Response {
    let upgrade_required = error.code == ErrorCode::UpgradeRequired;
    let mut response = error.into_response();
    if upgrade_required {
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    response
}

impl Handshake {
    /// Answers 101 and runs `session` on the connection once hyper hands it over.
    pub fn accept<F, Fut>(self, config: WebSocketConfig, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Combinators rather than an async block: each stage (the pending upgrade; then the
        // config and `session` while the socket is set up; then the session) takes the place of
        // the one before in the task, where an async block would keep everything it captured
        // for the connection's whole life.
        let connection = self.on_upgrade.then(move |upgraded| match upgraded {
            Ok(upgraded) => {
                let io = ReadAhead::new(TokioIo::new(upgraded));
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config));
                Either::Left(socket.then(session))
            }
            Err(e) => {
                tracing::debug!("WebSocket upgrade failed: {e}");
                Either::Right(std::future::ready(()))
            }
        });
        tokio::spawn(connection);
        let mut response = Response::default();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&self.accept_key) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}
