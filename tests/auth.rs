//! Tokens and rights over real sockets: every route and every WebSocket action against every
//! kind of bad token, rights per topic, expiry and refresh on an open connection, the
//! public-key algorithms, auto-created topics, the logs, and two nodes on Redis.

mod common;

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use common::auth::{
    BadToken, HMAC_SERVER, SECRET, all_rights, bad_tokens, claims, confused, hs256, key_path, now,
    signed, token_for,
};
use common::child::ChildServer;
use common::{TestServer, WsClient};

/// Every protected REST route: (method, path, JSON body).
fn protected_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/topics", Some(json!({"name": "fresh"}))),
        ("GET", "/topics", None),
        ("GET", "/topics/news", None),
        ("DELETE", "/topics/news", None),
        ("POST", "/topics/news/messages", Some(json!({"message": 1}))),
        ("GET", "/topics/news/messages", None),
        ("GET", "/stats", None),
        ("GET", "/metrics", None),
    ]
}

/// Sends a request with `token` (if any) as a bearer token.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> common::HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    server.request(method, path, &headers, &bytes).await
}

/// Creates topic `name` as the holder of `token`, and checks it was created.
async fn create_topic_as(server: &TestServer, name: &str, token: &str) {
    let r = call(
        server,
        "POST",
        "/topics",
        Some(&json!({"name": name})),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 201, "create {name}: {}", r.text());
}

async fn hmac_server(extra: &[&str]) -> TestServer {
    let mut args = HMAC_SERVER.to_vec();
    args.extend_from_slice(extra);
    let server = TestServer::with_args(&args).await;
    let admin = token_for("admin", &[], &[], true);
    create_topic_as(&server, "news", &admin).await;
    server
}

/// Asserts a 401 `unauthorized` with the bearer challenge and a message containing `says`.
fn assert_unauthorized(r: &common::HttpResponse, says: &str, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "unauthorized", "{what}");
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(says), "{what}: {message:?} lacks {says:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="pubsub""#),
        "{what}"
    );
}

#[tokio::test]
async fn every_protected_route_refuses_every_bad_token_with_401() {
    let server = hmac_server(&[]).await;
    for BadToken { name, token, says } in bad_tokens() {
        for (method, path, body) in protected_routes() {
            let r = call(&server, method, path, body.as_ref(), token.as_deref()).await;
            assert_unauthorized(&r, says, &format!("{name}: {method} {path}"));
        }
        // The WebSocket handshake: refused before the upgrade, header or query parameter.
        for in_query in [false, true] {
            if token.is_none() && in_query {
                continue;
            }
            let Err((status, body)) =
                WsClient::connect_with_token(server.ws_addr(), token.as_deref(), in_query).await
            else {
                panic!("{name}: the handshake was accepted (query: {in_query})");
            };
            assert_eq!(status, 401, "{name}: /ws");
            assert_eq!(body["error"]["code"], "unauthorized", "{name}: /ws");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{name}: /ws {message:?}");
        }
    }
    // Still healthy, and nothing was done: the topic list is as it was.
    assert_eq!(server.get("/health").await.status, 200);
    let admin = token_for("admin", &[], &[], true);
    let topics = call(&server, "GET", "/topics", None, Some(&admin))
        .await
        .json();
    assert_eq!(
        topics["topics"].as_array().map(Vec::len),
        Some(1),
        "{topics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_header_that_is_not_a_bearer_token_is_refused() {
    let server = hmac_server(&[]).await;
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"] {
        let r = server
            .request("GET", "/topics", &[("Authorization", value)], b"")
            .await;
        assert_unauthorized(&r, "not a JWT", value);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn open_routes_need_no_token() {
    let server = hmac_server(&[]).await;
    for path in [
        "/health",
        "/docs/",
        "/api-doc/openapi.json",
        "/api-doc/asyncapi.json",
        "/",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn rights_decide_each_route_with_403_forbidden() {
    let server = hmac_server(&[]).await;
    // Publish and subscribe on chat.*, no admin.
    let user = token_for("alice", &["chat.*"], &["chat.*"], false);
    let admin = token_for("admin", &[], &[], true);
    let create = |name: &str| json!({"name": name});
    let r = call(
        &server,
        "POST",
        "/topics",
        Some(&create("chat.1")),
        Some(&admin),
    )
    .await;
    assert_eq!(r.status, 201);
    let forbidden = |r: common::HttpResponse, what: &str| {
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "forbidden", "{what}");
        assert!(r.header("www-authenticate").is_none(), "{what}");
    };
    // Admin-only routes refuse the user, and so do topic routes outside the user's patterns.
    let msg = json!({"message": "hi"});
    let chat_2 = create("chat.2");
    let refused: [(&str, &str, Option<&Value>, &str); 8] = [
        ("POST", "/topics", Some(&chat_2), "create"),
        ("GET", "/topics", None, "list"),
        ("DELETE", "/topics/chat.1", None, "delete"),
        ("GET", "/stats", None, "stats"),
        ("GET", "/metrics", None, "metrics"),
        ("POST", "/topics/news/messages", Some(&msg), "publish news"),
        ("GET", "/topics/news/messages", None, "history news"),
        ("GET", "/topics/news", None, "show news"),
    ];
    for (method, path, body, what) in refused {
        forbidden(call(&server, method, path, body, Some(&user)).await, what);
    }
    // Inside them.
    let r = call(
        &server,
        "POST",
        "/topics/chat.1/messages",
        Some(&msg),
        Some(&user),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(&server, "GET", "/topics/chat.1/messages", None, Some(&user)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["messages"][0]["message"], "hi");
    let r = call(&server, "GET", "/topics/chat.1", None, Some(&user)).await;
    assert_eq!(r.status, 200);
    // Admin does not imply publishing.
    forbidden(
        call(
            &server,
            "POST",
            "/topics/chat.1/messages",
            Some(&msg),
            Some(&admin),
        )
        .await,
        "admin publish",
    );
    // And the admin may manage.
    for (method, path) in [
        ("GET", "/topics"),
        ("GET", "/stats"),
        ("GET", "/metrics"),
        ("DELETE", "/topics/chat.1"),
    ] {
        let r = call(&server, method, path, None, Some(&admin)).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    }
    // Refusals are counted by code.
    let stats = call(&server, "GET", "/stats", None, Some(&admin))
        .await
        .json();
    let errors = &stats["errors"];
    assert!(errors["forbidden"].as_u64().unwrap_or(0) >= 9, "{stats}");
    server.shutdown().await;
}

#[tokio::test]
async fn public_metrics_opens_metrics_only() {
    let server = hmac_server(&["--public-metrics"]).await;
    assert_eq!(server.get("/metrics").await.status, 200);
    assert_eq!(server.get("/stats").await.status, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_actions_follow_the_rights() {
    let server = hmac_server(&[]).await;
    let token = token_for("alice", &["chat.*"], &["chat.*", "news"], false);
    let admin = token_for("admin", &[], &[], true);
    create_topic_as(&server, "chat.1", &admin).await;
    create_topic_as(&server, "secret", &admin).await;
    for in_query in [false, true] {
        let mut ws = WsClient::connect_with_token(server.ws_addr(), Some(&token), in_query)
            .await
            .expect("a valid token is accepted");
        // Not allowed: an error frame, and the connection stays open.
        for frame in [
            json!({"action": "subscribe", "topic": "secret", "request_id": "s"}),
            json!({"action": "publish", "topic": "news", "message": 1, "request_id": "p"}),
            json!({"action": "publish", "topic": "secret", "message": 1, "request_id": "p2"}),
        ] {
            let reply = ws.request(frame.clone()).await;
            assert_eq!(reply["action"], "error", "{frame}: {reply}");
            assert_eq!(reply["error"]["code"], "forbidden", "{frame}");
            assert_eq!(reply["request_id"], frame["request_id"]);
        }
        // Allowed ones work on the same connection.
        ws.publish("chat.1", json!("hello")).await;
        assert_eq!(ws.subscribe("chat.1").await["action"], "subscribed");
        assert_eq!(ws.subscribe("news").await["action"], "subscribed");
        let pong = ws
            .request(json!({"action": "ping", "request_id": "r"}))
            .await;
        assert_eq!(pong["action"], "pong");
        let un = ws
            .request(json!({"action": "unsubscribe", "topic": "secret"}))
            .await;
        assert_eq!(un["action"], "unsubscribed", "unsubscribing needs no right");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn refresh_refuses_every_bad_token_and_keeps_the_connection() {
    let server = hmac_server(&[]).await;
    let token = token_for("alice", &[], &["news"], false);
    let mut ws = WsClient::connect_with_token(server.ws_addr(), Some(&token), false)
        .await
        .expect("accepted");
    assert_eq!(ws.subscribe("news").await["action"], "subscribed");
    for BadToken { name, token, says } in bad_tokens() {
        let Some(token) = token else { continue };
        let reply = ws
            .request(json!({"action": "refresh", "token": token, "request_id": name}))
            .await;
        assert_eq!(reply["action"], "error", "{name}: {reply}");
        assert_eq!(reply["error"]["code"], "unauthorized", "{name}");
        assert_eq!(reply["request_id"], name);
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
    }
    // Another subject may not take over the connection.
    let other = token_for("mallory", &["*"], &["*"], true);
    let reply = ws
        .request(json!({"action": "refresh", "token": other}))
        .await;
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    // A token expiring sooner is refused too.
    let mut sooner = claims("alice", &[], &["news"], false);
    sooner["exp"] = json!(now() + 60);
    sooner["iss"] = json!("pubsub-tests");
    sooner["aud"] = json!("pubsub");
    let reply = ws
        .request(json!({"action": "refresh", "token": hs256(&sooner)}))
        .await;
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    // Missing token field: bad_request.
    let reply = ws.request(json!({"action": "refresh"})).await;
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    // Still subscribed and served.
    let publisher = token_for("bob", &["news"], &[], false);
    let r = call(
        &server,
        "POST",
        "/topics/news/messages",
        Some(&json!({"message": 7})),
        Some(&publisher),
    )
    .await;
    assert_eq!(r.status, 201);
    let m = ws.recv().await;
    assert_eq!(
        (m["action"].as_str(), m["message"].as_i64()),
        (Some("message"), Some(7))
    );
    server.shutdown().await;
}

/// A token for the HMAC server that expires `seconds` from now.
fn expiring(sub: &str, subscribe: &[&str], seconds: u64) -> String {
    let mut c = claims(sub, &[], subscribe, false);
    c["exp"] = json!(now() + seconds);
    c["iss"] = json!("pubsub-tests");
    c["aud"] = json!("pubsub");
    hs256(&c)
}

#[tokio::test]
async fn at_expiry_the_connection_is_closed_with_4001() {
    let server = hmac_server(&["--auth-leeway", "0"]).await;
    let mut ws = WsClient::connect_with_token(
        server.ws_addr(),
        Some(&expiring("alice", &["news"], 2)),
        false,
    )
    .await
    .expect("accepted");
    assert_eq!(ws.subscribe("news").await["action"], "subscribed");
    let started = std::time::Instant::now();
    let (code, reason) = ws.recv_close().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.get("/health").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_refresh_extends_the_connection_and_applies_the_new_rights() {
    let server = hmac_server(&["--auth-leeway", "0"]).await;
    let admin = token_for("admin", &[], &[], true);
    create_topic_as(&server, "chat.1", &admin).await;
    let mut ws = WsClient::connect_with_token(
        server.ws_addr(),
        Some(&expiring("alice", &["news", "chat.*"], 2)),
        false,
    )
    .await
    .expect("accepted");
    assert_eq!(ws.subscribe("news").await["action"], "subscribed");
    assert_eq!(ws.subscribe("chat.1").await["action"], "subscribed");
    // The new token keeps chat.* but not news.
    let later = expiring("alice", &["chat.*"], 3600);
    ws.send(json!({"action": "refresh", "token": later, "request_id": "t1"}))
        .await;
    let notice = ws.recv().await;
    assert_eq!(
        notice,
        json!({"action": "subscription_revoked", "topic": "news"})
    );
    let ack = ws.recv().await;
    assert_eq!(ack["action"], "refreshed", "{ack}");
    assert_eq!(ack["request_id"], "t1");
    assert!(
        ack["expires_at"].as_u64().unwrap_or(0) >= now() + 3000,
        "{ack}"
    );
    // Past the first token's expiry the connection is still open, and the rights are the new
    // ones: news is refused, chat.1 still delivers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reply = ws
        .request(json!({"action": "subscribe", "topic": "news"}))
        .await;
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    let publisher = token_for("bob", &["*"], &[], false);
    for topic in ["news", "chat.1"] {
        let r = call(
            &server,
            "POST",
            &format!("/topics/{topic}/messages"),
            Some(&json!({"message": topic})),
            Some(&publisher),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let m = ws.recv().await;
    assert_eq!(
        (m["topic"].as_str(), m["message"].as_str()),
        (Some("chat.1"), Some("chat.1"))
    );
    ws.assert_silent(Duration::from_millis(300)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn refresh_on_an_open_server_is_a_bad_request() {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect(server.ws_addr()).await;
    let reply = ws
        .request(json!({"action": "refresh", "token": hs256(&all_rights())}))
        .await;
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn public_keys_of_each_kind_verify_their_own_algorithm_only() {
    for (file, alg) in [
        ("rsa_public.pem", Algorithm::RS256),
        ("ec_public.pem", Algorithm::ES256),
        ("ed_public.pem", Algorithm::EdDSA),
    ] {
        let key = key_path(file);
        let server = TestServer::with_args(&["--auth-public-key", &key]).await;
        let good = signed(alg, &all_rights());
        let r = call(&server, "GET", "/topics", None, Some(&good)).await;
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        let mut ws = WsClient::connect_with_token(server.ws_addr(), Some(&good), true)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        assert_eq!(
            ws.request(json!({"action": "ping"})).await["action"],
            "pong"
        );
        // The other families, HMAC with the public key as secret, and alg none.
        let others = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .filter(|a| *a != alg)
            .map(|a| (format!("{a:?}"), signed(a, &all_rights())));
        let mut wrong: Vec<(String, String)> = others.collect();
        wrong.push(("confusion".to_owned(), confused(&all_rights())));
        wrong.push(("HS256".to_owned(), hs256(&all_rights())));
        wrong.push(("none".to_owned(), common::auth::alg_none(&all_rights())));
        for (name, token) in wrong {
            let r = call(&server, "GET", "/topics", None, Some(&token)).await;
            assert_eq!(r.status, 401, "{file} accepted {name}: {}", r.text());
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_bad_key_or_flag_combination_stops_the_server_at_start() {
    use clap::Parser;
    use pubsub::config::Config;
    let parse = |args: &[&str]| {
        Config::try_parse_from(std::iter::once("pubsub").chain(args.iter().copied()))
    };
    let private = key_path("rsa_private.pem");
    let readme = key_path("README.md");
    for (args, says) in [
        (vec!["--auth-public-key", private.as_str()], "private key"),
        (vec!["--auth-public-key", readme.as_str()], "not an RSA"),
        (vec!["--auth-public-key", "/nonexistent.pem"], "cannot read"),
        (
            vec!["--auth-hmac-secret-file", "/nonexistent"],
            "cannot read",
        ),
        (vec!["--auth-issuer", "x"], "need a key"),
    ] {
        let config = parse(&args).expect("flags parse");
        let e = config
            .auth()
            .err()
            .unwrap_or_else(|| panic!("{args:?} accepted"));
        assert!(e.contains(says), "{args:?}: {e}");
    }
    // Two keys at once are refused by the parser.
    assert!(
        parse(&[
            "--auth-hmac-secret",
            "x",
            "--auth-public-key",
            &key_path("rsa_public.pem")
        ])
        .is_err()
    );
    assert!(parse(&["--auth-hmac-secret", ""]).is_err());
}

#[tokio::test]
async fn a_secret_file_works_like_the_flag() {
    let dir = std::env::temp_dir().join(format!("pubsub-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write");
    let server = TestServer::with_args(&["--auth-hmac-secret-file", &file.to_string_lossy()]).await;
    let r = call(&server, "GET", "/topics", None, Some(&hs256(&all_rights()))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn auto_created_topics_need_the_action_right_not_admin() {
    let server =
        TestServer::with_args(&["--auth-hmac-secret", SECRET, "--auto-create-topics"]).await;
    let user = hs256(&claims("alice", &["auto.*"], &["live.*"], false));
    let r = call(
        &server,
        "POST",
        "/topics/auto.1/messages",
        Some(&json!({"message": 1})),
        Some(&user),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(
        &server,
        "POST",
        "/topics/other/messages",
        Some(&json!({"message": 1})),
        Some(&user),
    )
    .await;
    assert_eq!(r.status, 403);
    let mut ws = WsClient::connect_with_token(server.ws_addr(), Some(&user), false)
        .await
        .expect("accepted");
    assert_eq!(ws.subscribe("live.1").await["action"], "subscribed");
    let reply = ws
        .request(json!({"action": "subscribe", "topic": "other2"}))
        .await;
    assert_eq!(reply["error"]["code"], "forbidden");
    let admin = hs256(&claims("admin", &[], &[], true));
    let topics = call(&server, "GET", "/topics", None, Some(&admin))
        .await
        .json();
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["auto.1", "live.1"],
        "refused actions created nothing"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn no_token_ever_reaches_the_log_and_refusals_are_aggregated() {
    let good = hs256(&all_rights());
    let server =
        ChildServer::start_with_env(&["--auth-hmac-secret", SECRET], &[("RUST_LOG", "debug")]);
    let addr = server.addr;
    let bad = bad_tokens();
    for _ in 0..5 {
        for t in &bad {
            let mut headers = vec![];
            let auth = t.token.as_ref().map(|t| format!("Bearer {t}"));
            if let Some(auth) = &auth {
                headers.push(("Authorization", auth.as_str()));
            }
            let r = common::http_request(addr, "GET", "/topics", &headers, b"").await;
            assert_eq!(r.status, 401);
        }
    }
    // Valid tokens, over REST, the WebSocket header and the query parameter, and a refresh.
    let auth = format!("Bearer {good}");
    let r = common::http_request(addr, "GET", "/topics", &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 200);
    for in_query in [false, true] {
        let mut ws = WsClient::connect_with_token(addr, Some(&good), in_query)
            .await
            .expect("ws");
        let reply = ws
            .request(json!({"action": "refresh", "token": good}))
            .await;
        assert_eq!(reply["action"], "refreshed");
        drop(ws);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    assert!(log.len() > 10, "the debug log has lines: {log:?}");
    let secrets: Vec<String> = bad
        .iter()
        .filter_map(|t| t.token.clone())
        .chain([good.clone()])
        // Each token's signature, and its claims part, are what must never show.
        .flat_map(|t| t.split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|part| part.len() >= 16)
        .collect();
    for line in &log {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a token part is in the log: {line}"
            );
        }
        assert!(!line.contains(SECRET), "the secret is in the log: {line}");
    }
    // 70 refusals, one aggregated line (the interval is 10 s).
    let refusal_lines = log
        .iter()
        .filter(|l| l.contains("refused for their token"))
        .count();
    assert_eq!(refusal_lines, 1, "{log:#?}");
}

#[tokio::test]
async fn rights_hold_across_two_nodes_on_redis() {
    if common::redis::redis_missing() {
        return;
    }
    let redis = common::redis::RedisServer::start();
    let url = redis.url();
    let args = [
        "--auth-hmac-secret",
        SECRET,
        "--engine",
        "redis",
        "--redis-url",
        &url,
    ];
    let a = TestServer::with_args(&args).await;
    let b = TestServer::with_args(&args).await;
    let admin = hs256(&claims("admin", &[], &[], true));
    create_topic_as(&a, "chat.1", &admin).await;
    create_topic_as(&a, "secret", &admin).await;
    // A reader on node B with rights on chat.* only.
    let reader = hs256(&claims("reader", &[], &["chat.*"], false));
    let mut ws = WsClient::connect_with_token(b.addr, Some(&reader), false)
        .await
        .expect("ws");
    assert_eq!(ws.subscribe("chat.1").await["action"], "subscribed");
    let reply = ws
        .request(json!({"action": "subscribe", "topic": "secret"}))
        .await;
    assert_eq!(
        reply["error"]["code"], "forbidden",
        "checked on the node the client is on"
    );
    // A writer on node A.
    let writer = hs256(&claims("writer", &["chat.*"], &[], false));
    let r = call(
        &a,
        "POST",
        "/topics/chat.1/messages",
        Some(&json!({"message": "x"})),
        Some(&writer),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        &a,
        "POST",
        "/topics/secret/messages",
        Some(&json!({"message": "x"})),
        Some(&writer),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(&b, "GET", "/topics/chat.1/messages", None, Some(&writer)).await;
    assert_eq!(r.status, 403, "the writer may not read");
    let m = ws.recv().await;
    assert_eq!(
        (m["topic"].as_str(), m["message"].as_str()),
        (Some("chat.1"), Some("x"))
    );
    // Unauthenticated on either node: 401.
    for node in [&a, &b] {
        assert_eq!(node.get("/topics/chat.1/messages").await.status, 401);
    }
    drop(ws);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_rust_client_sends_its_token_and_refreshes() {
    use pubsub::client::{Client, Error, Event, Options, Rest, Start};
    let server = hmac_server(&["--auth-leeway", "0"]).await;
    let url = format!("http://{}", server.addr);
    // REST: the token goes with every call; without one, the server's 401 comes back.
    let admin = Rest::new(&url, Some(token_for("admin", &[], &[], true))).expect("rest");
    admin.create_topic("chat.1").await.expect("admin creates");
    let anonymous = Rest::new(&url, None).expect("rest");
    match anonymous.list_topics().await {
        Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "unauthorized"),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    let user = Rest::new(&url, Some(token_for("alice", &["chat.*"], &[], false))).expect("rest");
    match user.list_topics().await {
        Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "forbidden"),
        other => panic!("expected forbidden, got {other:?}"),
    }
    // WebSocket: refused handshake without a token, served with one.
    let ws_url = format!("ws://{}/ws", server.ws_addr());
    match Client::connect(&ws_url, Options::default()).await {
        Err(Error::Connect(why)) => assert!(why.contains("401"), "{why}"),
        other => panic!("expected a refused handshake, got {:?}", other.err()),
    }
    let options = Options {
        token: Some(expiring("alice", &["news", "chat.*"], 2)),
        ..Options::default()
    };
    let client = Client::connect(&ws_url, options)
        .await
        .expect("connect with a token");
    let mut news = client
        .subscribe("news", Start::Now)
        .await
        .expect("subscribe news");
    let mut chat = client
        .subscribe("chat.1", Start::Now)
        .await
        .expect("subscribe chat");
    match client.subscribe("secret", Start::Now).await {
        Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "forbidden"),
        other => panic!("expected forbidden, got {:?}", other.err()),
    }
    // A refused refresh leaves the connection as it was.
    match client
        .refresh(&token_for("mallory", &["*"], &["*"], false))
        .await
    {
        Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "forbidden"),
        other => panic!("expected forbidden, got {other:?}"),
    }
    // A later token without news: the news subscription ends with Revoked.
    let expires_at = client
        .refresh(&expiring("alice", &["chat.*"], 3600))
        .await
        .expect("refresh");
    assert!(expires_at >= now() + 3000);
    let event = tokio::time::timeout(common::WAIT, news.recv())
        .await
        .expect("an event");
    assert!(matches!(event, Some(Event::Revoked)), "{event:?}");
    // Past the first token's expiry, still connected on the first connection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let publisher = Rest::new(&url, Some(token_for("bob", &["*"], &[], false))).expect("rest");
    let message =
        serde_json::value::RawValue::from_string("\"still here\"".to_owned()).expect("raw");
    publisher
        .publish("chat.1", &message)
        .await
        .expect("publish");
    let event = tokio::time::timeout(common::WAIT, chat.recv())
        .await
        .expect("an event");
    match event {
        Some(Event::Message(m)) => assert_eq!(m.message.get(), "\"still here\""),
        other => panic!("expected the message, got {other:?}"),
    }
    assert_eq!(client.status().borrow().connections, 1, "never reconnected");
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_cli_sends_its_token_from_the_flag_or_the_environment() {
    let server = hmac_server(&[]).await;
    let url = format!("http://{}", server.addr);
    let admin = token_for("admin", &[], &[], true);
    let within = Duration::from_secs(30);
    let run = common::cli::run(&["topics", "--url", &url, "--output", "json"], "", within).await;
    assert!(!run.success(), "no token: refused");
    assert!(run.stderr.contains("unauthorized"), "{}", run.stderr);
    let run = common::cli::run(
        &[
            "topics", "--url", &url, "--token", &admin, "--output", "json",
        ],
        "",
        within,
    )
    .await;
    assert!(run.success(), "{}", run.stderr);
    assert!(run.stdout.contains("news"), "{}", run.stdout);
    // PUBSUB_TOKEN, and publishing over WebSocket with a publish right.
    let writer = token_for("writer", &["news"], &[], false);
    let mut cmd = common::cli::pubsub(&["pub", "news", "{\"n\":1}", "--url", &url]);
    cmd.env("PUBSUB_TOKEN", &writer);
    let run = common::tools::run_with_input(cmd, None, within).await;
    assert!(run.success(), "{}", run.stderr);
    let r = call(
        &server,
        "GET",
        "/topics/news/messages",
        None,
        Some(&token_for("r", &[], &["news"], false)),
    )
    .await;
    assert_eq!(r.json()["messages"][0]["message"], json!({"n": 1}));
    // A token without the right: the command fails and says why.
    let mut cmd = common::cli::pubsub(&["pub", "news", "1", "--url", &url]);
    cmd.env("PUBSUB_TOKEN", token_for("reader", &[], &["news"], false));
    let run = common::tools::run_with_input(cmd, None, within).await;
    assert!(!run.success());
    assert!(run.stderr.contains("forbidden"), "{}", run.stderr);
    server.shutdown().await;
}

#[tokio::test]
async fn pubsub_token_prints_a_token_the_server_accepts() {
    let server = TestServer::with_args(&["--auth-hmac-secret", SECRET]).await;
    let within = Duration::from_secs(30);
    let args = [
        "token",
        "--sub",
        "alice",
        "--publish",
        "chat.*",
        "--subscribe",
        "*",
        "--admin",
        "--ttl",
        "1h",
    ];
    let mut cmd = common::cli::pubsub(&args);
    cmd.env("PUBSUB_AUTH_HMAC_SECRET", SECRET);
    let run = common::tools::run_with_input(cmd, None, within).await;
    assert!(run.success(), "{}", run.stderr);
    let token = run.stdout.trim();
    create_topic_as(&server, "chat.1", token).await;
    let r = call(
        &server,
        "POST",
        "/topics/chat.1/messages",
        Some(&json!({"message": 1})),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        &server,
        "POST",
        "/topics/news/messages",
        Some(&json!({"message": 1})),
        Some(token),
    )
    .await;
    assert_eq!(r.status, 403);
    // Signed with another secret: refused. Without a secret, or with a bad pattern: no token.
    let run = common::cli::run(
        &["token", "--sub", "a", "--auth-hmac-secret", "other-secret"],
        "",
        within,
    )
    .await;
    assert!(run.success());
    let r = call(
        &server,
        "GET",
        "/topics/chat.1",
        None,
        Some(run.stdout.trim()),
    )
    .await;
    assert_eq!(r.status, 401);
    let run = common::cli::run(&["token", "--sub", "a"], "", within).await;
    assert_eq!(run.status.and_then(|s| s.code()), Some(2));
    assert!(run.stderr.contains("no secret"), "{}", run.stderr);
    let run = common::cli::run(
        &[
            "token",
            "--sub",
            "a",
            "--publish",
            "a*b",
            "--auth-hmac-secret",
            SECRET,
        ],
        "",
        within,
    )
    .await;
    assert_eq!(run.status.and_then(|s| s.code()), Some(2));
    assert!(run.stderr.contains("pattern"), "{}", run.stderr);
    server.shutdown().await;
}

#[tokio::test]
async fn the_per_connection_limits_still_apply_to_authenticated_connections() {
    let server = TestServer::with_args(&[
        "--auth-hmac-secret",
        SECRET,
        "--max-subscriptions-per-connection",
        "1",
        "--publish-rate",
        "1",
    ])
    .await;
    let admin = hs256(&claims("admin", &[], &[], true));
    for name in ["a", "b"] {
        create_topic_as(&server, name, &admin).await;
    }
    let token = hs256(&all_rights());
    let mut ws = WsClient::connect_with_token(server.ws_addr(), Some(&token), false)
        .await
        .expect("accepted");
    assert_eq!(ws.subscribe("a").await["action"], "subscribed");
    let reply = ws
        .request(json!({"action": "subscribe", "topic": "b"}))
        .await;
    assert_eq!(reply["error"]["code"], "too_many_subscriptions", "{reply}");
    let first = ws
        .request(json!({"action": "publish", "topic": "b", "message": 1}))
        .await;
    assert_eq!(first["action"], "published", "{first}");
    let second = ws
        .request(json!({"action": "publish", "topic": "b", "message": 2}))
        .await;
    assert_eq!(second["error"]["code"], "rate_limited", "{second}");
    server.shutdown().await;
}

#[tokio::test]
async fn start_up_says_whether_tokens_are_required() {
    let open = ChildServer::start(&[]);
    let secured = ChildServer::start(&["--auth-hmac-secret", SECRET]);
    // The lines come right after "listening on": wait until both servers have logged theirs.
    let said = |server: &ChildServer| {
        server
            .log()
            .iter()
            .any(|l| l.contains("tokens required") || l.contains("anyone who reaches"))
    };
    let deadline = std::time::Instant::now() + common::WAIT;
    while !(said(&open) && said(&secured)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no start-up line about tokens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let warned = |server: &ChildServer| {
        server
            .log()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("anyone who reaches this port"))
    };
    assert!(warned(&open), "{:#?}", open.log());
    assert!(!warned(&secured), "{:#?}", secured.log());
    assert!(
        secured.log().iter().any(|l| l.contains("tokens required")),
        "{:#?}",
        secured.log()
    );
    // The open server serves without tokens, as before.
    let r = common::http_request(open.addr, "GET", "/topics", &[], b"").await;
    assert_eq!(r.status, 200);
    // A bad key stops the binary with a clear error and exit code 2.
    let run = common::cli::run(
        &["--auth-public-key", "/nonexistent.pem", "--port", "0"],
        "",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(run.status.and_then(|s| s.code()), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot read --auth-public-key"),
        "{}",
        run.stderr
    );
}
