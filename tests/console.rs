//! The console page at `/` and its files under `/console/` as served (its behaviour in a
//! browser is in tests/browser.rs): HTML that loads nothing from another origin and no inline
//! script, the JavaScript client served as built (`clients/js/dist`), links that lead
//! somewhere, JSON 405 for other methods and JSON 404 for an unknown file.

mod common;

use common::TestServer;

/// Every `src="..."` and `href="..."` value in `html`.
fn urls(html: &str) -> Vec<&str> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| {
            html.match_indices(attr).filter_map(|(at, _)| {
                let rest = &html[at + attr.len()..];
                rest.find('"').map(|end| &rest[..end])
            })
        })
        .collect()
}

#[tokio::test]
async fn console_is_a_page_of_this_servers_own_files() {
    let server = TestServer::start().await;
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline"),
        "no inline script or style: {csp}"
    );
    let html = r.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("<style>"), "no inline style");
    // No CDN: every URL in it is a path on this server (or the empty data: icon).
    let urls = urls(&html);
    for url in &urls {
        assert!(
            url.starts_with('/') && !url.starts_with("//") || *url == "data:,",
            "{url}"
        );
    }
    for link in ["/docs/", "/api-doc/asyncapi.json", "/metrics"] {
        assert!(html.contains(&format!("href=\"{link}\"")), "links {link}");
    }
    // What the page loads, and the links this server serves today, lead somewhere (/metrics
    // comes with its own route).
    for url in urls.iter().filter(|u| u.starts_with("/console/")) {
        assert_eq!(server.get(url).await.status, 200, "{url}");
    }
    for link in ["/docs/", "/api-doc/asyncapi.json"] {
        assert_eq!(server.get(link).await.status, 200, "{link}");
    }
}

#[tokio::test]
async fn the_javascript_client_is_served_as_built() {
    let server = TestServer::start().await;
    let client = server.get("/console/pubsub-client.js").await;
    assert_eq!(client.status, 200);
    assert_eq!(
        client.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(client.header("x-content-type-options"), Some("nosniff"));
    let built = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js/dist/index.js"),
    )
    .expect("clients/js/dist/index.js");
    assert_eq!(client.text(), built);
    assert!(built.contains("export class PubSubClient"));

    let script = server.get("/console/console.js").await;
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        script
            .text()
            .contains("import { PubSubClient, rest } from './pubsub-client.js';"),
        "the page's script runs on the client"
    );
    let css = server.get("/console/console.css").await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
}

#[tokio::test]
async fn console_answers_other_methods_with_json_405_and_unknown_files_with_404() {
    let server = TestServer::start().await;
    for path in ["/", "/console/pubsub-client.js"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = server
                .request(method, path, &[("Content-Type", "application/json")], b"{}")
                .await;
            r.assert_error(405, "method_not_allowed");
            assert_eq!(r.header("allow"), Some("GET"), "{method} {path}");
        }
    }
    for path in [
        "/console/nope.js",
        "/console/",
        "/console/../Cargo.toml",
        "/console/index.html",
    ] {
        server.get(path).await.assert_error(404, "not_found");
    }
}
