//! Browser origins over real sockets (`--allowed-origin`): REST and WebSocket handshakes from
//! the server's own origin, an allowed one, a foreign one and none; CORS preflights and headers;
//! the environment fallback and bad values; and Chromium pages on two other origins, one
//! allowed and one not.

mod common;

use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::tls::Certs;
use common::tools::{browser_missing, missing_tool, node};
use common::{HttpResponse, TestServer, WAIT};

const ALLOWED: &str = "https://app.example.com";

async fn server() -> TestServer {
    TestServer::with_args(&[
        "--allowed-origin",
        ALLOWED,
        "--allowed-origin",
        "http://other.example:8080",
    ])
    .await
}

async fn get_from(server: &TestServer, origin: Option<&str>) -> HttpResponse {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    server.request("GET", "/topics", &headers, b"").await
}

/// The WebSocket handshake with `origin`: Ok on 101, or the refusal's status and body.
async fn ws_from(addr: SocketAddr, origin: Option<&str>) -> Result<(), (u16, String)> {
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header value"));
    }
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("an answer within the wait")
    {
        Ok((_, response)) => {
            assert_eq!(response.status(), 101);
            Ok(())
        }
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Err((
                response.status().as_u16(),
                String::from_utf8_lossy(body).into_owned(),
            ))
        }
        Err(e) => panic!("handshake failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn rest_serves_no_origin_its_own_and_allowed_ones_and_refuses_the_rest() {
    let server = server().await;
    let own = format!("http://{}", server.addr);
    for origin in [None, Some(own.as_str())] {
        let r = get_from(&server, origin).await;
        assert_eq!(r.status, 200, "{origin:?}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin:?}");
        assert_eq!(r.header("vary"), Some("Origin"), "responses vary by Origin");
    }
    // An allowed origin, spelled with or without its default port, in any case.
    for origin in [
        ALLOWED,
        "https://APP.example.com:443",
        "http://other.example:8080",
    ] {
        let r = get_from(&server, Some(origin)).await;
        assert_eq!(r.status, 200, "{origin}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert!(
            r.header("access-control-expose-headers")
                .is_some_and(|h| h.contains("Retry-After")),
            "{:?}",
            r.headers
        );
    }
    // Foreign: another host, another port, another scheme (also for the server's own host),
    // a sandboxed page ("null"), something that is not an origin.
    let wrong_scheme = format!("https://{}", server.addr);
    let wrong_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    for origin in [
        "https://evil.example",
        "http://app.example.com",
        "http://other.example",
        &wrong_scheme,
        &wrong_port,
        "null",
        "not an origin",
    ] {
        let r = get_from(&server, Some(origin)).await;
        r.assert_error(403, "forbidden_origin");
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
    }
    // A refused request did nothing: no topic was created.
    let r = server
        .request(
            "POST",
            "/topics",
            &[
                ("Origin", "https://evil.example"),
                ("Content-Type", "application/json"),
            ],
            br#"{"name":"sneaky"}"#,
        )
        .await;
    r.assert_error(403, "forbidden_origin");
    assert_eq!(server.get("/topics/sneaky").await.status, 404);
    let stats = server.stats().await;
    assert_eq!(stats["errors"]["forbidden_origin"], 8, "{stats}");
    server.shutdown().await;
}

#[tokio::test]
async fn preflights_are_answered_for_allowed_origins_only() {
    let server = server().await;
    let preflight = |origin: &'static str| {
        let server = &server;
        async move {
            server
                .request(
                    "OPTIONS",
                    "/topics/news/messages",
                    &[
                        ("Origin", origin),
                        ("Access-Control-Request-Method", "POST"),
                        (
                            "Access-Control-Request-Headers",
                            "authorization, content-type",
                        ),
                    ],
                    b"",
                )
                .await
        }
    };
    let r = preflight(ALLOWED).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(r.header("access-control-max-age").is_some());

    preflight("https://evil.example")
        .await
        .assert_error(403, "forbidden_origin");

    // OPTIONS that is not a preflight (no Origin) keeps the JSON 405 with Allow.
    let r = server.request("OPTIONS", "/topics", &[], b"").await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_handshakes_from_foreign_origins_are_refused_before_the_upgrade() {
    let server = server().await;
    let own = format!("http://{}", server.addr);
    for origin in [None, Some(own.as_str()), Some(ALLOWED)] {
        assert_eq!(ws_from(server.addr, origin).await, Ok(()), "{origin:?}");
    }
    for origin in ["https://evil.example", "null", "http://app.example.com"] {
        let (status, body) = ws_from(server.addr, Some(origin))
            .await
            .expect_err("refused");
        assert_eq!(status, 403, "{origin}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(body["error"]["code"], "forbidden_origin", "{body}");
    }
    let stats = server.stats().await;
    assert_eq!(
        stats["connections"], 0,
        "no refused handshake became a connection"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_allowed_origins_only_the_servers_own_is_served_and_nothing_varies() {
    let server = TestServer::start().await;
    let own = format!("http://{}", server.addr);
    let r = get_from(&server, Some(&own)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("vary"), None);
    get_from(&server, Some(ALLOWED))
        .await
        .assert_error(403, "forbidden_origin");
    assert!(ws_from(server.addr, Some(ALLOWED)).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn over_tls_the_servers_own_origin_is_https() {
    let certs = Certs::make();
    let flags = certs.flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = TestServer::with_args(&args).await;
    let port = server.addr.port();
    let own = format!("https://localhost:{port}");
    let r = certs
        .https_request(server.addr, "GET", "/topics", &[("Origin", &own)], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let plain = format!("http://localhost:{port}");
    let r = certs
        .https_request(server.addr, "GET", "/topics", &[("Origin", &plain)], b"")
        .await;
    r.assert_error(403, "forbidden_origin");
    server.shutdown().await;
}

#[tokio::test]
async fn the_environment_lists_origins_separated_by_commas_and_bad_ones_are_refused() {
    let server = common::child::ChildServer::start_with_env(
        &[],
        &[(
            "PUBSUB_ALLOWED_ORIGINS",
            "https://a.example,https://b.example",
        )],
    );
    for (origin, status) in [
        ("https://a.example", 200),
        ("https://b.example", 200),
        ("https://c.example", 403),
    ] {
        let r =
            common::http_request(server.addr, "GET", "/topics", &[("Origin", origin)], b"").await;
        assert_eq!(r.status, status, "{origin}: {}", r.text());
    }
    for bad in [
        "app.example.com",
        "ftp://a.example",
        "https://a.example/path",
        "https://user@a.example",
        "null",
    ] {
        let run = common::tools::run(
            common::cli::pubsub(&["--port", "0", "--allowed-origin", bad]),
            WAIT,
        )
        .await;
        assert_eq!(
            run.status.and_then(|s| s.code()),
            Some(2),
            "{bad}: {}",
            run.describe()
        );
        assert!(
            run.stderr.contains("--allowed-origin"),
            "{}",
            run.describe()
        );
        assert!(
            run.stderr.contains("is not an origin"),
            "{}",
            run.describe()
        );
    }
}

/// A tiny HTTP server standing for a web site on another origin: every request gets the same
/// blank page. Serves until the test ends.
async fn page_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let page = "<!doctype html><title>page</title><p>another site</p>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_pages_from_an_allowed_origin_work_and_from_a_foreign_one_do_not() {
    if let Some(reason) = browser_missing() {
        return missing_tool(&reason);
    }
    let allowed = page_server().await;
    let foreign = page_server().await;
    let allowed_origin = format!("http://{allowed}");
    let server = TestServer::with_args(&["--allowed-origin", &allowed_origin]).await;
    let run = node(
        "origin.mjs",
        &[
            &format!("http://{}", server.addr),
            &format!("{allowed_origin}/"),
            &format!("http://{foreign}/"),
        ],
    )
    .await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    // From the allowed origin: a preflighted POST, a GET, and a WebSocket round trip.
    assert_eq!(report["allowed"]["create"]["status"], 201, "{report}");
    assert_eq!(report["allowed"]["list"]["status"], 200, "{report}");
    assert_eq!(
        report["allowed"]["ws"],
        json!({"opened": true, "subscribed": "from-page", "message": {"hello": "page"}}),
        "{report}"
    );
    // From the foreign origin: the browser sees network errors and a WebSocket that never opens.
    assert_eq!(
        report["foreign"]["create"]["error"], "TypeError",
        "{report}"
    );
    assert_eq!(report["foreign"]["list"]["error"], "TypeError", "{report}");
    assert_eq!(report["foreign"]["ws"]["opened"], false, "{report}");
    // And the server refused them: nothing created, the refusals counted.
    assert_eq!(server.get("/topics/from-foreign-page").await.status, 404);
    let stats = server.stats().await;
    assert!(
        stats["errors"]["forbidden_origin"].as_u64() >= Some(3),
        "preflight, GET and handshake refused: {stats}"
    );
    server.shutdown().await;
}
