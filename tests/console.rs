//! The console page at `/` as served (its behaviour in a browser is in tests/browser.rs): HTML
//! that loads nothing from another origin, links that lead somewhere, JSON 405 for other methods.

mod common;

use common::TestServer;

#[tokio::test]
async fn console_is_one_self_contained_page() {
    let server = TestServer::start().await;
    let r = server.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = r.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    // No CDN, no external script or style: every URL in it is a path on this server.
    for needle in ["http://", "https://", "//cdn", "src=\""] {
        assert!(!html.contains(needle), "the page has {needle:?}");
    }
    for link in ["/docs/", "/api-doc/asyncapi.json", "/metrics"] {
        assert!(html.contains(&format!("href=\"{link}\"")), "links {link}");
    }
    // The links this server serves today lead somewhere (/metrics comes with its own route).
    for link in ["/docs/", "/api-doc/asyncapi.json"] {
        assert_eq!(server.get(link).await.status, 200, "{link}");
    }
}

#[tokio::test]
async fn console_answers_other_methods_with_json_405() {
    let server = TestServer::start().await;
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = server
            .request(method, "/", &[("Content-Type", "application/json")], b"{}")
            .await;
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("GET"), "{method}");
    }
}
