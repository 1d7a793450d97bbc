//! Error codes and the JSON error body shared by REST responses and WebSocket `error` frames.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A machine-readable error code. REST errors carry it in `{"error":{"code":...}}`; WebSocket
/// errors carry it in an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, a missing or mistyped field, an unknown action, a bad query parameter.
    BadRequest,
    /// The topic name breaks the naming rules.
    InvalidTopic,
    /// No topic by that name exists.
    TopicNotFound,
    /// A topic by that name already exists.
    TopicExists,
    /// The published message is larger than `--max-message-bytes`.
    MessageTooLarge,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body is not JSON.
    UnsupportedMediaType,
    /// No route matches the path.
    NotFound,
    /// The path exists but not with this method; the `Allow` header lists the methods it has.
    MethodNotAllowed,
    /// `/ws` was requested without a WebSocket upgrade.
    UpgradeRequired,
    /// The request took longer than `--request-timeout` to arrive.
    RequestTimeout,
    /// The server holds `--max-connections` WebSocket connections already.
    TooManyConnections,
    /// The connection holds `--max-subscriptions-per-connection` subscriptions already.
    TooManySubscriptions,
    /// The server holds `--max-topics` topics already.
    TooManyTopics,
    /// The connection publishes faster than `--publish-rate`; nothing was published.
    RateLimited,
    /// The engine behind this node (Redis) did not answer in time or refused; nothing was done.
    /// Retry, on this node or another.
    EngineUnavailable,
    /// No valid token came with the request (missing, malformed, badly signed, expired, ...);
    /// the message says which. REST answers it with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// The token is valid but its rights do not cover this action.
    Forbidden,
    /// The request came from a web page whose origin is neither the server's own nor one of
    /// `--allowed-origin` (the browser's `Origin` header).
    ForbiddenOrigin,
    /// The server failed; the message says what happened. (Kept last: see [`ErrorCode::ALL`].)
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order (the order of [`ErrorCode::index`]).
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidTopic,
        ErrorCode::TopicNotFound,
        ErrorCode::TopicExists,
        ErrorCode::MessageTooLarge,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UpgradeRequired,
        ErrorCode::RequestTimeout,
        ErrorCode::TooManyConnections,
        ErrorCode::TooManySubscriptions,
        ErrorCode::TooManyTopics,
        ErrorCode::RateLimited,
        ErrorCode::EngineUnavailable,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::ForbiddenOrigin,
        ErrorCode::Internal,
    ];

    /// A dense index, for tables of per-code counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidTopic => "invalid_topic",
            ErrorCode::TopicNotFound => "topic_not_found",
            ErrorCode::TopicExists => "topic_exists",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::TooManyTopics => "too_many_topics",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::Internal => "internal",
        }
    }
}

/// What went wrong: a stable `code` to branch on and a `message` for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// The body of every REST error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "topic_not_found", "message": "topic 'news' does not exist"}}))]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

impl ErrorResponse {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorResponse {
            error: ErrorBody {
                code,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn all_lists_every_code_at_its_index_with_its_wire_name() {
        assert_eq!(ErrorCode::ALL.len(), ErrorCode::Internal.index() + 1);
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(code.index(), i);
            let wire = serde_json::to_value(code).unwrap_or_default();
            assert_eq!(wire.as_str(), Some(code.as_str()));
        }
    }
}
