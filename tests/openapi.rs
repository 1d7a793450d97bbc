//! The OpenAPI document: the committed copy matches the code, documented operations and served
//! routes agree in both directions, the document is well formed, and Swagger UI serves it.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::TestServer;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{RefOr, Response};

use pubsub::http::docs::{ApiDoc, OPENAPI_PATH, openapi_json};

/// The command that rewrites the committed document from the code.
const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test --test openapi";

/// Every REST operation the server routes: (method, path, operation_id).
const ROUTES: [(&str, &str, &str); 10] = [
    ("POST", "/topics", "create_topic"),
    ("GET", "/topics", "list_topics"),
    ("GET", "/topics/{name}", "get_topic"),
    ("DELETE", "/topics/{name}", "delete_topic"),
    ("POST", "/topics/{name}/messages", "publish_message"),
    ("GET", "/topics/{name}/messages", "list_messages"),
    ("GET", "/health", "get_health"),
    ("GET", "/stats", "get_stats"),
    ("GET", "/metrics", "get_metrics"),
    ("GET", "/api-doc/asyncapi.json", "get_asyncapi"),
];

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

/// Every operation of the generated document as (METHOD, path, operation).
fn operations() -> Vec<(&'static str, String, Operation)> {
    let mut all = Vec::new();
    for (path, item) in ApiDoc::openapi().paths.paths {
        let methods = [
            ("GET", item.get),
            ("PUT", item.put),
            ("POST", item.post),
            ("DELETE", item.delete),
            ("OPTIONS", item.options),
            ("HEAD", item.head),
            ("PATCH", item.patch),
            ("TRACE", item.trace),
        ];
        for (method, operation) in methods {
            if let Some(operation) = operation {
                all.push((method, path.clone(), operation));
            }
        }
    }
    all
}

#[test]
fn committed_document_matches_the_code() {
    let generated = openapi_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create openapi/");
        std::fs::write(&path, &generated).expect("write openapi/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json differs from the document the code generates; regenerate it with: {REGENERATE}"
    );
}

#[test]
fn document_is_openapi_3_1_with_every_operation_named_and_tagged() {
    let document: Value = serde_json::from_str(&openapi_json()).expect("the document is JSON");
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1.x, not {version}");
    assert!(
        document["info"]["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(
        document["info"]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert!(
        document["info"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );

    let declared_tags: BTreeSet<String> = ApiDoc::openapi()
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations() {
        let id = op.operation_id.clone().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operation_id");
        assert!(ids.insert(id.clone()), "operation_id {id} is used twice");
        let tags = op.tags.clone().unwrap_or_default();
        assert!(!tags.is_empty(), "{method} {path} has no tag");
        for tag in tags {
            assert!(
                declared_tags.contains(&tag),
                "{method} {path}: tag {tag} is not declared"
            );
        }
    }
}

/// The `$ref` of the JSON schema of `response`, if it has one.
fn json_schema_ref(response: &RefOr<Response>) -> Option<String> {
    let RefOr::T(response) = response else {
        return None;
    };
    match response.content.get("application/json")? {
        RefOr::T(content) => match content.schema.as_ref()? {
            RefOr::Ref(r) => Some(r.ref_location.clone()),
            RefOr::T(_) => None,
        },
        RefOr::Ref(_) => None,
    }
}

/// Whether a response is documented as Prometheus text.
fn text_response(response: &RefOr<utoipa::openapi::Response>) -> bool {
    let RefOr::T(response) = response else {
        return false;
    };
    response
        .content
        .keys()
        .any(|content_type| content_type.starts_with("text/plain; version=0.0.4"))
}

#[test]
fn every_error_response_is_documented_as_error_response() {
    let doc = ApiDoc::openapi();
    let schemas = doc
        .components
        .as_ref()
        .map(|c| &c.schemas)
        .expect("components");
    assert!(
        schemas.contains_key("ErrorResponse"),
        "ErrorResponse is a component schema"
    );
    for (method, path, op) in operations() {
        let responses = &op.responses.responses;
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} documents a success response"
        );
        for (status, response) in responses {
            if status.starts_with('2') {
                // JSON everywhere but the Prometheus text of /metrics.
                let described = json_schema_ref(response).is_some()
                    || (path == "/metrics" && text_response(response));
                assert!(described, "{method} {path} {status}: a body schema");
                continue;
            }
            // /health answers 503 with its own body: a load balancer reads `status`.
            let expected = if path == "/health" && status == "503" {
                "#/components/schemas/Health"
            } else {
                "#/components/schemas/ErrorResponse"
            };
            assert_eq!(
                json_schema_ref(response).as_deref(),
                Some(expected),
                "{method} {path} {status}"
            );
        }
    }
}

#[test]
fn every_error_the_issue_names_is_documented() {
    let documented = |method: &str, path: &str| -> BTreeSet<String> {
        let (_, _, op) = operations()
            .into_iter()
            .find(|(m, p, _)| *m == method && p == path)
            .unwrap_or_else(|| panic!("{method} {path} is documented"));
        op.responses.responses.keys().cloned().collect()
    };
    let statuses = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        documented("POST", "/topics"),
        statuses(&[
            "201", "400", "401", "403", "408", "409", "413", "415", "503", "507"
        ])
    );
    assert_eq!(
        documented("DELETE", "/topics/{name}"),
        statuses(&["200", "400", "401", "403", "404", "503"])
    );
    assert_eq!(
        documented("GET", "/topics/{name}"),
        statuses(&["200", "400", "401", "403", "404", "503"])
    );
    assert_eq!(
        documented("POST", "/topics/{name}/messages"),
        statuses(&[
            "201", "400", "401", "403", "404", "408", "413", "415", "429", "503", "507"
        ])
    );
    assert_eq!(
        documented("GET", "/topics/{name}/messages"),
        statuses(&["200", "400", "401", "403", "404", "503"])
    );
}

/// The operations anyone may call when the server requires tokens.
const OPEN: [&str; 2] = ["/health", "/api-doc/asyncapi.json"];

#[test]
fn every_operation_says_whether_it_needs_a_token_and_documents_the_refusals() {
    let doc: Value = serde_json::from_str(&openapi_json()).expect("JSON");
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let security = &op["security"];
            let responses = op["responses"].as_object().expect("responses");
            if OPEN.contains(&path.as_str()) {
                assert_eq!(security, &json!([{}]), "{method} {path} is marked open");
                assert!(!responses.contains_key("401"), "{method} {path}");
            } else {
                assert_eq!(
                    security,
                    &json!([{"bearer": []}]),
                    "{method} {path} needs a token"
                );
                for status in ["401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_operation_documents_the_forbidden_origin_refusal() {
    for (method, path, op) in operations() {
        let description = op
            .responses
            .responses
            .get("403")
            .and_then(|r| match r {
                utoipa::openapi::RefOr::T(r) => Some(r.description.clone()),
                utoipa::openapi::RefOr::Ref(_) => None,
            })
            .unwrap_or_default();
        assert!(
            description.contains("forbidden_origin"),
            "{method} {path}: 403 forbidden_origin documented"
        );
    }
}

#[test]
fn every_route_the_server_has_is_documented() {
    let documented: BTreeSet<(String, String, String)> = operations()
        .into_iter()
        .map(|(method, path, op)| (method.to_owned(), path, op.operation_id.unwrap_or_default()))
        .collect();
    let routed: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(m, p, id)| (m.to_string(), p.to_string(), id.to_string()))
        .collect();
    for route in &routed {
        assert!(
            documented.contains(route),
            "{route:?} is missing from the document"
        );
    }
    assert_eq!(
        documented, routed,
        "the document lists exactly the server's REST routes"
    );
}

/// Every topic name a client sends is documented with the server's rule, as a pattern and
/// lengths a generator (schemathesis) can use; `tests/properties.rs` checks the pattern against
/// `validate_topic_name`.
#[test]
fn every_topic_name_a_client_sends_is_documented_with_the_naming_rule() {
    let document: Value = serde_json::from_str(&openapi_json()).expect("the document is JSON");
    let expected = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": pubsub::broker::MAX_TOPIC_NAME_LEN,
        "pattern": pubsub::protocol::TOPIC_NAME_PATTERN,
    });
    let mut schemas = vec![(
        "CreateTopicRequest.name".to_owned(),
        document["components"]["schemas"]["CreateTopicRequest"]["properties"]["name"].clone(),
    )];
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            for param in operation["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "name" && param["in"] == "path" {
                    schemas.push((format!("{method} {path}"), param["schema"].clone()));
                }
            }
        }
    }
    assert_eq!(schemas.len(), 5, "{schemas:?}");
    for (place, mut schema) in schemas {
        if let Some(schema) = schema.as_object_mut() {
            schema.remove("description");
        }
        assert_eq!(schema, expected, "{place}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_by_the_server() {
    let server = TestServer::start().await;
    for (i, (method, path, op)) in operations().into_iter().enumerate() {
        // A topic of its own for each operation, so a delete does not affect the next one.
        let topic = format!("topic-{i}");
        server.create_topic(&topic).await;
        let url = path.replace("{name}", &topic);
        assert!(
            !url.contains('{'),
            "{path}: a path parameter this test does not know"
        );
        let body = if op.request_body.is_some() {
            // Fits every documented request body: unknown fields are ignored.
            serde_json::to_vec(&json!({"name": format!("new-{i}"), "message": {"data": i}}))
                .unwrap()
        } else {
            Vec::new()
        };
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        let r = server.request(method, &url, headers, &body).await;
        let id = op.operation_id.unwrap_or_default();
        assert_ne!(r.status, 405, "{id}: {method} {url} -> {}", r.text());
        assert!(
            !(r.status == 404 && r.json()["error"]["code"] == "not_found"),
            "{id}: {method} {url} has no route"
        );
        assert!(
            (200..300).contains(&r.status),
            "{id}: {method} {url} with valid input succeeds: {} {}",
            r.status,
            r.text()
        );
        let documented = op.responses.responses.contains_key(&r.status.to_string());
        assert!(documented, "{id}: status {} is documented", r.status);
    }
}

#[tokio::test]
async fn docs_redirects_to_docs_slash() {
    let server = TestServer::start().await;
    let r = server.get("/docs").await;
    assert!(
        matches!(r.status, 301 | 302 | 307 | 308),
        "a redirect, not {}",
        r.status
    );
    assert_eq!(r.header("location"), Some("/docs/"));
}

#[tokio::test]
async fn docs_serves_swagger_ui_for_the_served_document() {
    let server = TestServer::start().await;
    let r = server.get("/docs/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/html")),
        "{:?}",
        r.header("content-type")
    );
    let html = r.text();
    assert!(html.contains("swagger-ui"), "{html}");

    let r = server.get("/docs/swagger-initializer.js").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains(OPENAPI_PATH), "{}", r.text());
    assert_eq!(OPENAPI_PATH, "/api-doc/openapi.json");

    // The assets the page loads by relative path are there.
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-ui-standalone-preset.js",
    ] {
        assert!(html.contains(asset), "index.html loads {asset}");
        let r = server.get(&format!("/docs/{asset}")).await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(!r.body.is_empty(), "{asset}");
    }
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let server = TestServer::start().await;
    let r = server.get("/api-doc/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let generated: Value = serde_json::from_str(&openapi_json()).expect("generated JSON");
    assert_eq!(r.json(), generated);
    let paths = generated["paths"].as_object().expect("paths");
    for (method, path, _) in ROUTES {
        assert!(
            paths
                .get(path)
                .and_then(|item| item.get(method.to_ascii_lowercase()))
                .is_some(),
            "{method} {path} is in the served document"
        );
    }
}
