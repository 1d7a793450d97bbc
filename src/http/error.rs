//! API errors and their JSON form: the one place error codes become HTTP statuses.

use std::convert::Infallible;

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};
use warp::{Rejection, reject};

use crate::broker::BrokerError;
use crate::protocol::{ErrorCode, ErrorResponse};

/// An error answered as `{"error":{"code":...,"message":...}}` with the status of its code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }
}

/// The HTTP status for each error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::InvalidTopic => StatusCode::BAD_REQUEST,
        ErrorCode::TopicNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::TopicExists => StatusCode::CONFLICT,
        ErrorCode::MessageTooLarge | ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::TooManyConnections | ErrorCode::EngineUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        // Only ever sent over WebSocket; 409 says "not in this state" should one reach REST.
        ErrorCode::TooManySubscriptions => StatusCode::CONFLICT,
        ErrorCode::TooManyTopics => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = (self.code, status_of(self.code));
        let body = ErrorResponse::new(code, self.message);
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), status).into_response();
        // Lets the app count every error answered in one place (see `http::app`).
        response.extensions_mut().insert(code);
        // RFC 6750: a 401 names the scheme the client should use.
        if code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="pubsub""#),
            );
        }
        response
    }
}

/// 405 for a known path, with the `Allow` header listing the methods it has.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this path allows only {allow}"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Turns whatever warp rejected into the JSON error body. Handlers answer their own errors, so
/// what reaches here is a path no route matched, or something unexpected. Every message is a
/// sentence written for clients: a rejection's own text names server internals, so it goes to
/// the log only.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::new(ErrorCode::NotFound, "no route for this path")
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this path does not allow this method",
        )
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::new(
            ErrorCode::Internal,
            "the server could not handle this request; the failure is logged",
        )
    };
    Ok(error.into_response())
}

/// A request header that makes the app reject the request in a way no route handles, when
/// built with the `fault-injection` feature (a test shows the client still gets a deliberate
/// JSON error).
#[cfg(feature = "fault-injection")]
pub const FAULT_REJECT: &str = "x-fault-injection-reject";

/// Rejects requests carrying [`FAULT_REJECT`]; lets every other through.
#[cfg(feature = "fault-injection")]
pub fn fault_injection() -> impl warp::Filter<Extract = (), Error = Rejection> + Clone {
    use warp::Filter;

    #[derive(Debug)]
    struct Injected;
    impl reject::Reject for Injected {}

    warp::header::headers_cloned()
        .and_then(|headers: warp::http::HeaderMap| async move {
            match headers.contains_key(FAULT_REJECT) {
                true => Err(reject::custom(Injected)),
                false => Ok(()),
            }
        })
        .untuple_one()
}

/// Without the `fault-injection` feature: lets every request through.
#[cfg(not(feature = "fault-injection"))]
pub fn fault_injection() -> impl warp::Filter<Extract = (), Error = Infallible> + Clone {
    warp::any()
}
