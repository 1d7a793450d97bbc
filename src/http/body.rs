//! Reading JSON request bodies: content type, size limit and parsing, each with its own error.

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::http::HeaderMap;

use super::Limits;
use super::error::ApiError;
use crate::protocol::{ErrorCode, exceeds_depth, looks_like_object};

/// Extracts the JSON body as `T`, or the error to answer with. Never rejects, so a bad body is
/// answered by the route it was sent to (and not turned into a 405 by a sibling route).
/// A missing Content-Type is read as JSON; chunked bodies are accepted and held to the size
/// limit too. A body that does not arrive within the request timeout is a 408.
pub fn json<T: DeserializeOwned + Send>(
    limits: Limits,
) -> impl Filter<Extract = (Result<T, ApiError>,), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::body::stream())
        .then(move |headers: HeaderMap, body| async move {
            let read = read(&headers, body, limits);
            match tokio::time::timeout(limits.request_timeout, read).await {
                Ok(result) => result,
                Err(_) => Err(ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} s",
                        limits.request_timeout.as_secs_f64()
                    ),
                )),
            }
        })
}

async fn read<T, S, B>(headers: &HeaderMap, body: S, limits: Limits) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_content_type(headers)?;
    let limit = limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("could not read body: {e}")))?;
        if buf.len() + chunk.remaining() > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    if !looks_like_object(&buf) {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected a JSON object",
        ));
    }
    if exceeds_depth(&buf, limits.max_json_depth) {
        return Err(ApiError::bad_request(format!(
            "invalid JSON body: nesting is deeper than {} levels",
            limits.max_json_depth
        )));
    }
    serde_json::from_slice(&buf)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(warp::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type must be application/json, not '{}'",
                value.to_str().unwrap_or("?")
            ),
        ))
    }
}
