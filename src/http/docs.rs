//! The OpenAPI document and the Swagger UI that renders it.

use std::sync::Arc;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::Config;
use warp::http::{Uri, header};
use warp::path::{FullPath, Tail};
use warp::reply::{Reply, Response};
use warp::{Filter, filters::BoxedFilter};

use super::error::{ApiError, method_not_allowed};
use super::{metrics, ops, topics};
use crate::protocol::{ErrorCode, ErrorResponse, asyncapi_json};

/// Where the generated document is served.
pub const OPENAPI_PATH: &str = "/api-doc/openapi.json";

/// Where the AsyncAPI document of the WebSocket protocol is served.
pub const ASYNCAPI_PATH: &str = "/api-doc/asyncapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pubsub",
        description = "An in-memory publish/subscribe broker. Manage topics and read history over \
REST; subscribe, unsubscribe, publish and ping over the WebSocket at `/ws` (JSON text frames, \
described by the [AsyncAPI document](/api-doc/asyncapi.json)). Every error is \
`{\"error\": {\"code\": ..., \"message\": ...}}`. Try it all in the [live console](/).",
        contact(name = "pubsub maintainers")
    ),
    servers((url = "/", description = "This server: the address this document was read from \
(HTTPS when started with `--tls-cert`)")),
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
        asyncapi_document,
    ),
    components(schemas(ErrorResponse, ErrorCode)),
    modifiers(&BearerScheme, &ForbiddenOrigin),
    tags(
        (name = "topics", description = "Create, list, inspect and delete topics"),
        (name = "messages", description = "Publish over REST and read history"),
        (name = "operations", description = "Health and statistics"),
        (name = "documents", description = "Machine-readable descriptions of the APIs"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the protected operations name: a JWT in `Authorization`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with `sub`, `exp` and the rights `publish` and `subscribe` (lists \
                         of topic patterns: a name, a prefix ending in `*`, or `*`) and `admin`. \
                         Needed only when the server is started with an `--auth-*` key \
                         (`pubsub token` makes one for development).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every operation answers 403 `forbidden_origin` to a request from a web page of an origin
/// neither the server's own nor allowed (see `http/origin.rs`, which runs before every route).
/// Where an operation documents a 403 already, its description names this code too.
struct ForbiddenOrigin;

const FORBIDDEN_ORIGIN: &str = "`forbidden_origin`: the request came from a web page (its \
`Origin` header) whose origin is neither the server's own nor one of `--allowed-origin`";

impl Modify for ForbiddenOrigin {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                match responses.get_mut("403") {
                    Some(RefOr::T(response)) => {
                        response.description =
                            format!("{}; or {FORBIDDEN_ORIGIN}", response.description);
                    }
                    _ => {
                        let body = ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorResponse")))
                            .build();
                        let response = ResponseBuilder::new()
                            .description(FORBIDDEN_ORIGIN)
                            .content("application/json", body)
                            .build();
                        responses.insert("403".to_owned(), RefOr::T(response));
                    }
                }
            }
        }
    }
}

/// The OpenAPI document as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    // Serializing the derived document cannot fail.
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}

/// An AsyncAPI 3.1 document: a JSON object.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct AsyncApiDocument(pub serde_json::Value);

/// The AsyncAPI 3.1 document of the WebSocket protocol at `/ws`.
///
/// Every frame either way, which frame answers which, and examples.
#[utoipa::path(
    get, path = "/api-doc/asyncapi.json", operation_id = "get_asyncapi", tag = "documents",
    security(()),
    responses((status = 200, description = "The AsyncAPI document", body = AsyncApiDocument))
)]
pub fn asyncapi_document(document: Arc<String>) -> Response {
    json_document(&document)
}

fn json_document(text: &str) -> Response {
    let mut response = Response::new(text.to_owned().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET` with `handler`, and 405 for any other method.
fn get_only(
    handler: impl Fn() -> Response + Clone + Send + Sync + 'static,
) -> BoxedFilter<(Response,)> {
    warp::get()
        .map(handler)
        .or(warp::any().map(|| method_not_allowed("GET")))
        .unify()
        .boxed()
}

pub fn routes() -> BoxedFilter<(Response,)> {
    let openapi = Arc::new(openapi_json());
    let spec =
        warp::path!("api-doc" / "openapi.json").and(get_only(move || json_document(&openapi)));
    let asyncapi = Arc::new(asyncapi_json());
    let asyncapi = warp::path!("api-doc" / "asyncapi.json")
        .and(get_only(move || asyncapi_document(asyncapi.clone())));
    let config = Arc::new(Config::from(OPENAPI_PATH));
    let ui = warp::path("docs").and(
        warp::get()
            .and(warp::path::full())
            .and(warp::path::tail())
            .map(move |full: FullPath, tail: Tail| swagger_ui(full, tail, config.clone()))
            .or(warp::any().map(|| method_not_allowed("GET")))
            .unify(),
    );
    spec.or(asyncapi).unify().or(ui).unify().boxed()
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
