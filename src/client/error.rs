//! The client's errors.

use std::fmt;

use crate::protocol::ErrorBody;

#[derive(Debug)]
pub enum Error {
    /// The URL is not one the client can use.
    InvalidUrl(String),
    /// Connecting failed: the TCP connection, the WebSocket handshake (an HTTP status other than
    /// 101, such as 401 for a wrong token or 503 `too_many_connections`), or the time it took.
    Connect(String),
    /// The server answered with an error (`code` tells which).
    Server(ErrorBody),
    /// An HTTP response that is not the JSON this API answers with.
    Http { status: u16, body: String },
    /// The request was sent, but the connection was lost before its reply came: it may or may
    /// not have taken effect. The client is reconnecting; retry if that is safe.
    ConnectionLost,
    /// The client was closed (or its task ended); nothing more can be sent.
    Closed,
    /// This client already holds a subscription to the topic.
    AlreadySubscribed(String),
    /// The subscription was removed (`unsubscribe`) before the server acknowledged it.
    Unsubscribed,
    /// The token has expired and there is no token provider to ask for another.
    TokenExpired,
    /// A message that is not valid JSON.
    InvalidJson(String),
    /// The server sent something this client cannot read.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Error::Connect(why) => write!(f, "cannot connect: {why}"),
            Error::Server(e) => write!(f, "{}: {}", e.code.as_str(), e.message),
            Error::Http { status, body } => write!(f, "HTTP {status}: {body}"),
            Error::ConnectionLost => f.write_str(
                "connection lost before the reply (the request may or may not have taken effect)",
            ),
            Error::Closed => f.write_str("the client is closed"),
            Error::AlreadySubscribed(topic) => write!(f, "already subscribed to '{topic}'"),
            Error::Unsubscribed => f.write_str("unsubscribed before the server acknowledged"),
            Error::TokenExpired => f.write_str(
                "the token has expired: give a new one (Client::refresh) or a token provider",
            ),
            Error::InvalidJson(why) => write!(f, "not valid JSON: {why}"),
            Error::Protocol(why) => write!(f, "unexpected from the server: {why}"),
        }
    }
}

impl std::error::Error for Error {}
