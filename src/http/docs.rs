//! The OpenAPI document and the Swagger UI that renders it.

use std::sync::Arc;

use utoipa::OpenApi;
use utoipa_swagger_ui::Config;
use warp::http::{Uri, header};
use warp::path::{FullPath, Tail};
use warp::reply::{Reply, Response};
use warp::{Filter, filters::BoxedFilter};

use super::error::{ApiError, method_not_allowed};
use super::{metrics, ops, topics};
use crate::protocol::{ErrorCode, ErrorResponse};

/// Where the generated document is served.
pub const OPENAPI_PATH: &str = "/api-doc/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pubsub",
        description = "An in-memory publish/subscribe broker. Manage topics and read history over \
REST; subscribe, unsubscribe, publish and ping over the WebSocket at `/ws` (JSON text frames, \
described in the README). Every error is `{\"error\": {\"code\": ..., \"message\": ...}}`."
    ),
    paths(
        topics::create_topic,
        topics::list_topics,
        topics::get_topic,
        topics::delete_topic,
        topics::publish_message,
        topics::list_messages,
        ops::health,
        ops::stats,
        metrics::metrics,
    ),
    components(schemas(ErrorResponse, ErrorCode)),
    tags(
        (name = "topics", description = "Create, list, inspect and delete topics"),
        (name = "messages", description = "Publish over REST and read history"),
        (name = "operations", description = "Health and statistics"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    // Serializing the derived document cannot fail.
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}

pub fn routes() -> BoxedFilter<(Response,)> {
    let document = Arc::new(openapi_json());
    let spec = warp::path!("api-doc" / "openapi.json").and(
        warp::get()
            .map(move || {
                let mut response = Response::new(document.to_string().into());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                response
            })
            .or(warp::any().map(|| method_not_allowed("GET")))
            .unify(),
    );
    let config = Arc::new(Config::from(OPENAPI_PATH));
    let ui = warp::path("docs").and(
        warp::get()
            .and(warp::path::full())
            .and(warp::path::tail())
            .map(move |full: FullPath, tail: Tail| swagger_ui(full, tail, config.clone()))
            .or(warp::any().map(|| method_not_allowed("GET")))
            .unify(),
    );
    spec.or(ui).unify().boxed()
}

fn swagger_ui(full: FullPath, tail: Tail, config: Arc<Config<'static>>) -> Response {
    // The UI loads its assets by relative path, so it must be served under `/docs/`.
    if full.as_str() == "/docs" {
        return warp::redirect::permanent(Uri::from_static("/docs/")).into_response();
    }
    match utoipa_swagger_ui::serve(tail.as_str(), config) {
        Ok(Some(file)) => {
            let mut response = Response::new(file.bytes.into_owned().into());
            if let Ok(value) = header::HeaderValue::from_str(&file.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Ok(None) => ApiError::new(ErrorCode::NotFound, "no such Swagger UI file").into_response(),
        Err(e) => ApiError::new(ErrorCode::Internal, e.to_string()).into_response(),
    }
}
