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
    /// The server failed; the message says what happened.
    Internal,
}

/// What went wrong: a stable `code` to branch on and a `message` for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
