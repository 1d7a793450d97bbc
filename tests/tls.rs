//! HTTPS and WSS (`--tls-cert`, `--tls-key`) over real sockets, with a CA and certificate made
//! at run time: REST over HTTP/1.1 and HTTP/2 (chosen by ALPN), WebSocket over TLS, the Rust
//! client and the CLI on `https://` and `wss://`, failed and stalled handshakes, the connection
//! limit, and bad certificate files at start-up.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::tls::Certs;
use common::{TestServer, WAIT};
use pubsub::client::{self, Client, Event, Options, Rest, Start};

async fn tls_server(certs: &Certs, extra: &[&str]) -> TestServer {
    let flags = certs.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    TestServer::with_args(&args).await
}

/// One request with hyper's HTTP/2 client on `sender`: status and JSON body.
async fn h2_call(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    port: u16,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{port}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .expect("request");
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("an answer within the wait")
        .expect("HTTP/2 response");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn https_serves_rest_over_http2_and_http1_chosen_by_alpn() {
    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;

    // A client offering both gets HTTP/2.
    let tls = certs.connect(server.addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let port = server.addr.port();
    let (status, body) = h2_call(&mut sender, port, "GET", "/health", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h2_call(
        &mut sender,
        port,
        "POST",
        "/topics",
        Some(json!({"name": "news"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = h2_call(
        &mut sender,
        port,
        "POST",
        "/topics/news/messages",
        Some(json!({"message": "over h2"})),
    )
    .await;
    assert_eq!((status, &body["seq"]), (201, &json!(1)), "{body}");

    // One offering only HTTP/1.1 gets that; /stats says the node speaks TLS.
    let tls = certs.connect(server.addr, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);
    let stats = certs
        .https_request(server.addr, "GET", "/stats", &[], b"")
        .await;
    assert_eq!(stats.status, 200, "{}", stats.text());
    let stats = stats.json();
    assert_eq!(stats["tls"], true);
    assert_eq!(stats["tls_handshakes_failed"], 0);
    let history = certs
        .https_request(server.addr, "GET", "/topics/news/messages", &[], b"")
        .await;
    assert_eq!(history.json()["messages"][0]["message"], "over h2");
    // Nothing secret shows: no key material or file contents in /health, /stats or /metrics.
    let key = std::fs::read_to_string(&certs.key).expect("key");
    let key_body: String = key.lines().nth(1).unwrap_or_default().to_owned();
    for path in ["/health", "/stats", "/metrics"] {
        let r = certs
            .https_request(server.addr, "GET", path, &[], b"")
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.text().contains(&key_body), "{path} shows no key");
        assert!(!r.text().contains("key.pem"), "{path} names no key file");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn wss_delivers_what_https_publishes() {
    let certs = Certs::make();
    let server = tls_server(&certs, &["--auto-create-topics"]).await;
    let mut ws = certs.wss(server.addr).await;
    let subscribed = ws.subscribe("chat").await;
    assert_eq!(subscribed["action"], "subscribed", "{subscribed}");
    let r = certs
        .https_request(
            server.addr,
            "POST",
            "/topics/chat/messages",
            &[("content-type", "application/json")],
            br#"{"message":{"text":"hi"}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let message = ws.recv().await;
    assert_eq!(
        (&message["action"], &message["message"]),
        (&json!("message"), &json!({"text": "hi"})),
        "{message}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_rust_client_speaks_wss_and_https_trusting_the_ca_it_is_given() {
    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;
    let port = server.addr.port();
    let tls = client::tls_trusting(&certs.ca_pem).expect("CA loads");
    let rest = Rest::new(&format!("https://localhost:{port}"), None)
        .expect("URL")
        .with_tls(tls.clone());
    rest.create_topic("news").await.expect("create over https");

    let options = Options {
        tls: Some(tls),
        ..Options::default()
    };
    let client = Client::connect(&format!("wss://localhost:{port}/ws"), options)
        .await
        .expect("connect over wss");
    let mut news = client
        .subscribe("news", Start::Now)
        .await
        .expect("subscribe");
    let seq = client
        .publish("news", &json!("hello"))
        .await
        .expect("publish");
    assert_eq!(seq, 1);
    match tokio::time::timeout(WAIT, news.next()).await {
        Ok(Some(Event::Message(m))) => assert_eq!(m.message.get(), r#""hello""#),
        other => panic!("expected the message, got {other:?}"),
    }
    assert_eq!(rest.list_topics().await.expect("list").topics.len(), 1);

    // Without the CA (the system's certificates only) the server's certificate is refused.
    let untrusting = Rest::new(&format!("https://localhost:{port}"), None).expect("URL");
    let e = untrusting.list_topics().await.expect_err("an unknown CA");
    assert!(
        e.to_string().contains("certificate"),
        "says what is wrong: {e}"
    );
    let options = Options {
        connect_timeout: Duration::from_secs(5),
        ..Options::default()
    };
    let Err(e) = client::Client::connect(&format!("wss://localhost:{port}/ws"), options).await
    else {
        panic!("connected without trusting the CA");
    };
    assert!(e.to_string().contains("certificate"), "{e}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_cli_trusts_a_ca_named_by_ssl_cert_file() {
    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;
    server.create_topic_tls(&certs, "news").await;
    let url = format!("https://localhost:{}", server.addr.port());
    let mut command = common::cli::pubsub(&["topics", "--url", &url, "--output", "json"]);
    command.env("SSL_CERT_FILE", &certs.ca);
    let run = common::tools::run(command, WAIT).await;
    assert!(run.success(), "{}", run.describe());
    assert!(run.stdout.contains("news"), "{}", run.describe());
    // Without it the certificate is unknown: exit 1 and one line saying so.
    let run = common::tools::run(common::cli::pubsub(&["topics", "--url", &url]), WAIT).await;
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("certificate"), "{}", run.describe());
    server.shutdown().await;
}

trait TlsTopics {
    async fn create_topic_tls(&self, certs: &Certs, name: &str);
}

impl TlsTopics for TestServer {
    async fn create_topic_tls(&self, certs: &Certs, name: &str) {
        let body = json!({ "name": name }).to_string();
        let r = certs
            .https_request(
                self.addr,
                "POST",
                "/topics",
                &[("content-type", "application/json")],
                body.as_bytes(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

/// Sends `bytes` on a fresh TCP connection and reads until the server closes it; returns what
/// came back.
async fn send_and_read_until_closed(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    common::read_until_closed(&mut stream).await
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_are_closed_and_counted() {
    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;
    let plain = send_and_read_until_closed(
        server.addr,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&plain).contains("HTTP/1.1 200"),
        "plain HTTP is not served on the TLS port"
    );
    send_and_read_until_closed(server.addr, &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]).await;
    send_and_read_until_closed(server.addr, b"\x00garbage\r\n\r\n").await;
    // The server still serves TLS, and counted the three.
    let stats = certs
        .https_request(server.addr, "GET", "/stats", &[], b"")
        .await
        .json();
    assert_eq!(stats["tls_handshakes_failed"], 3, "{stats}");
    let metrics = certs
        .https_request(server.addr, "GET", "/metrics", &[], b"")
        .await
        .text();
    assert!(
        metrics.contains("pubsub_tls_handshakes_failed_total 3"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_handshake_ends_after_the_request_timeout_and_holds_up_no_one() {
    let certs = Certs::make();
    let server = tls_server(&certs, &["--request-timeout", "1"]).await;
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    // Half a ClientHello, then nothing.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x80])
        .await
        .expect("send");
    let started = Instant::now();
    // Others are served meanwhile: the handshake is not on the accept loop.
    let health = certs
        .https_request(server.addr, "GET", "/health", &[], b"")
        .await;
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "served at once"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "closed within the wait");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after about the request timeout: {waited:?}"
    );
    let stats = certs
        .https_request(server.addr, "GET", "/stats", &[], b"")
        .await
        .json();
    assert_eq!(stats["tls_handshakes_failed"], 1, "{stats}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_handshake_under_way_does_not_hold_up_shutdown() {
    let certs = Certs::make();
    let server = tls_server(&certs, &[]).await;
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x80])
        .await
        .expect("send");
    // Let the server take the connection in before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    // The test server's grace period is 5 s and the handshake's bound 30 s: neither is waited.
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shut down in {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection is closed");
}

#[tokio::test]
async fn max_http_connections_bounds_tls_connections_too() {
    let certs = Certs::make();
    let server = tls_server(
        &certs,
        &["--max-connections", "1", "--max-http-connections", "2"],
    )
    .await;
    let first = certs.connect(server.addr, &[b"http/1.1"]).await;
    let second = certs.connect(server.addr, &[b"http/1.1"]).await;
    // The third is closed on arrival: its handshake fails.
    let third = certs.try_connect(server.addr, &[b"http/1.1"]).await;
    assert!(third.is_err(), "a third connection is refused");
    drop((first, second));
    // Places free again once the two close.
    let deadline = Instant::now() + WAIT;
    let stats = loop {
        let r = certs
            .https_request(server.addr, "GET", "/stats", &[], b"")
            .await;
        if r.status == 200 {
            break r.json();
        }
        assert!(Instant::now() < deadline, "a place frees within the wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stats["http_connections_refused"], 1, "{stats}");
    server.shutdown().await;
}

/// `pubsub ARGS` (port 0) exits 1 with one line on stderr mentioning each of `mentions`.
async fn assert_start_fails(args: &[&str], envs: &[(&str, &str)], mentions: &[&str]) {
    let mut command = common::cli::pubsub(&["--port", "0"]);
    command.args(args).envs(envs.iter().copied());
    let run = common::tools::run(command, Duration::from_secs(20)).await;
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(1),
        "{args:?}: {}",
        run.describe()
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", run.describe());
    assert!(lines[0].starts_with("error: "), "{}", run.describe());
    for text in mentions {
        assert!(
            lines[0].contains(text),
            "{args:?} mentions {text:?}: {}",
            lines[0]
        );
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.describe());
}

#[tokio::test]
async fn bad_certificate_files_exit_1_with_one_line_before_serving() {
    let certs = Certs::make();
    let (cert, key) = (
        certs.cert.display().to_string(),
        certs.key.display().to_string(),
    );
    let other_key = certs.other_key.display().to_string();
    let missing = certs.dir.join("missing.pem").display().to_string();
    let not_pem = certs.dir.join("not.pem");
    std::fs::write(&not_pem, "hello, this is not PEM\n").expect("write");
    let not_pem = not_pem.display().to_string();
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--tls-cert", &missing, "--tls-key", &key],
            &["--tls-cert", "missing.pem", "cannot read"],
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &missing],
            &["--tls-key", "missing.pem"],
        ),
        (
            &["--tls-cert", &not_pem, "--tls-key", &key],
            &["--tls-cert", "no PEM certificate"],
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &not_pem],
            &["--tls-key", "no PEM private key"],
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &cert],
            &["--tls-key", "no PEM private key"],
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &other_key],
            &["does not go with the certificate"],
        ),
        (&["--tls-cert", &cert], &["--tls-cert needs --tls-key"]),
    ];
    for (args, mentions) in cases {
        assert_start_fails(args, &[], mentions).await;
    }
    assert_start_fails(&["--tls-key", &key], &[], &["--tls-key needs --tls-cert"]).await;
    // The environment stands in for the flags, and is checked the same way.
    assert_start_fails(
        &[],
        &[("PUBSUB_TLS_CERT", &cert), ("PUBSUB_TLS_KEY", &other_key)],
        &["does not go with"],
    )
    .await;
}

#[tokio::test]
async fn the_binary_serves_https_from_environment_variables_and_says_so() {
    let certs = Certs::make();
    let (cert, key) = (
        certs.cert.display().to_string(),
        certs.key.display().to_string(),
    );
    let server = common::child::ChildServer::start_with_env(
        &[],
        &[("PUBSUB_TLS_CERT", &cert), ("PUBSUB_TLS_KEY", &key)],
    );
    let health = certs
        .https_request(server.addr, "GET", "/health", &[], b"")
        .await;
    assert_eq!(health.status, 200, "{}", health.text());
    // Plain HTTP gets no answer there.
    let plain = send_and_read_until_closed(
        server.addr,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(!String::from_utf8_lossy(&plain).contains("200"));
}

#[tokio::test]
async fn failed_handshakes_are_logged_once_per_interval_not_once_each() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let certs = Certs::make();
    let (cert, key) = (
        certs.cert.display().to_string(),
        certs.key.display().to_string(),
    );
    let mut child = common::cli::pubsub(&["--port", "0", "--tls-cert", &cert, "--tls-key", &key])
        .env("RUST_LOG", "warn,pubsub=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pubsub");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("a log line").expect("read log");
        if let Some(rest) = line.split("listening on https://").nth(1) {
            break rest
                .split(' ')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("address");
        }
    };
    for _ in 0..20 {
        send_and_read_until_closed(addr, b"GET / HTTP/1.1\r\n\r\n").await;
    }
    let stats = certs
        .https_request(addr, "GET", "/stats", &[], b"")
        .await
        .json();
    assert_eq!(stats["tls_handshakes_failed"], 20, "{stats}");
    let _ = child.kill();
    let _ = child.wait();
    let logged: Vec<String> = lines
        .map_while(Result::ok)
        .filter(|l| l.contains("TLS handshake failed"))
        .collect();
    assert_eq!(
        logged.len(),
        1,
        "one line for 20 failures within 10 s: {logged:?}"
    );
    assert!(
        logged[0].contains("WARN") && logged[0].contains("failures=1"),
        "{logged:?}"
    );
}
