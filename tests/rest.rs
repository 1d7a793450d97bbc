//! The REST API over real HTTP: every row of the route table, every error it names, bad input of
//! every kind, and the JSON 404 / 405 / 426 answers for routes and methods the API does not have.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{HttpResponse, TestServer};
use pubsub::protocol::ErrorCode;
use serde_json::{Value, json};

/// Names that break the rules, as sent in a JSON body.
fn invalid_names() -> Vec<String> {
    vec![
        String::new(),
        ".news".to_owned(),
        "_news".to_owned(),
        "-news".to_owned(),
        ":news".to_owned(),
        "a b".to_owned(),
        " news".to_owned(),
        "a/b".to_owned(),
        "news!".to_owned(),
        "café".to_owned(),
        "x".repeat(256),
    ]
}

/// Names that break the rules, as they appear (percent-encoded where needed) in a URL path.
fn invalid_path_names() -> Vec<String> {
    vec![
        ".news".to_owned(),
        "_news".to_owned(),
        "-news".to_owned(),
        ":news".to_owned(),
        "a%20b".to_owned(),
        "caf%C3%A9".to_owned(),
        "a%2Fb".to_owned(),
        "news!".to_owned(),
        // Not UTF-8 once decoded: judged as sent, and '%' breaks the rules.
        "%FF".to_owned(),
        "x".repeat(256),
        // 256 characters once decoded.
        format!("a%3A{}", "x".repeat(254)),
    ]
}

/// Asserts that no topic exists: a rejected request created nothing.
async fn assert_no_topics(server: &TestServer) {
    assert_eq!(
        list_topics(server).await,
        json!({"topics": []}),
        "nothing was created"
    );
}

/// POSTs raw `body` with an optional Content-Type.
async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    server.request("POST", path, &headers, body).await
}

/// `POST /topics/{topic}/messages` with `{"message": message}`.
async fn publish(server: &TestServer, topic: &str, message: Value) -> HttpResponse {
    server
        .post_json(
            &format!("/topics/{topic}/messages"),
            &json!({ "message": message }),
        )
        .await
}

/// Publishes over REST and returns the seq.
async fn publish_ok(server: &TestServer, topic: &str, message: Value) -> u64 {
    let r = publish(server, topic, message).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["seq"].as_u64().expect("seq")
}

/// `GET /topics/{topic}/messages{query}`, which must succeed.
async fn history(server: &TestServer, topic: &str, query: &str) -> Value {
    let r = server
        .get(&format!("/topics/{topic}/messages{query}"))
        .await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()
}

/// The seqs of a history page, in the order given.
fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

/// `GET /topics/{name}`, which must succeed.
async fn topic_details(server: &TestServer, name: &str) -> Value {
    let r = server.get(&format!("/topics/{name}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// `GET /topics`, which must succeed.
async fn list_topics(server: &TestServer) -> Value {
    let r = server.get("/topics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until `topic` has `n` subscribers in `/stats`.
async fn wait_for_subscribers(server: &TestServer, topic: &str, n: u64) {
    server
        .wait_for_stats(&format!("{n} subscribers on {topic}"), |s| {
            s["topics"][topic]["subscribers"] == n
        })
        .await;
}

fn object_keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

// POST /topics

#[tokio::test]
async fn create_topic_returns_201_with_the_topic() {
    let server = TestServer::start().await;
    let r = server.post_json("/topics", &json!({"name": "news"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"name": "news", "subscriber_count": 0}));
    assert_eq!(topic_details(&server, "news").await["name"], "news");
}

#[tokio::test]
async fn creating_an_existing_topic_is_409_topic_exists() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    publish_ok(&server, "news", json!(1)).await;
    server
        .post_json("/topics", &json!({"name": "news"}))
        .await
        .assert_error(409, "topic_exists");
    assert_eq!(
        topic_details(&server, "news").await["last_seq"],
        1,
        "the existing topic is untouched"
    );
}

#[tokio::test]
async fn create_accepts_every_name_the_rules_allow() {
    let server = TestServer::start().await;
    for name in [
        "a",
        "Z",
        "0",
        "9lives",
        "a.b_c-d:e",
        "News.2026:EU_west-1",
        &"x".repeat(255),
    ] {
        let r = server.post_json("/topics", &json!({ "name": name })).await;
        assert_eq!(r.status, 201, "{name:?}: {}", r.text());
        assert_eq!(r.json()["name"], name);
        // Every valid name stands in a URL path as it is.
        assert_eq!(topic_details(&server, name).await["name"], name);
    }
}

#[tokio::test]
async fn create_rejects_invalid_names_with_invalid_topic() {
    let server = TestServer::start().await;
    for name in invalid_names() {
        server
            .post_json("/topics", &json!({ "name": name }))
            .await
            .assert_error(400, "invalid_topic");
    }
    assert_no_topics(&server).await;
}

#[tokio::test]
async fn create_rejects_malformed_json_with_bad_request() {
    let server = TestServer::start().await;
    for body in [
        "",
        "not json",
        "{\"name\":",
        "{\"name\": \"news\"",
        "{name: \"news\"}",
        "{\"name\":\"news\"}}",
    ] {
        post_raw(
            &server,
            "/topics",
            Some("application/json"),
            body.as_bytes(),
        )
        .await
        .assert_error(400, "bad_request");
    }
    // Invalid UTF-8 inside a JSON string.
    post_raw(
        &server,
        "/topics",
        Some("application/json"),
        b"{\"name\":\"\xff\"}",
    )
    .await
    .assert_error(400, "bad_request");
    assert_eq!(list_topics(&server).await, json!({"topics": []}));
}

#[tokio::test]
async fn create_rejects_a_missing_name_with_bad_request() {
    let server = TestServer::start().await;
    for body in [json!({}), json!({"nam": "news"}), json!({"topic": "news"})] {
        server
            .post_json("/topics", &body)
            .await
            .assert_error(400, "bad_request");
    }
}

#[tokio::test]
async fn create_rejects_a_name_of_the_wrong_type_with_bad_request() {
    let server = TestServer::start().await;
    for name in [
        json!(5),
        json!(null),
        json!(true),
        json!(["news"]),
        json!({"name": "news"}),
    ] {
        server
            .post_json("/topics", &json!({ "name": name }))
            .await
            .assert_error(400, "bad_request");
    }
}

#[tokio::test]
async fn create_rejects_a_body_that_is_not_an_object_with_bad_request() {
    let server = TestServer::start().await;
    for body in [
        json!(null),
        json!(42),
        json!("news"),
        json!([]),
        json!(["news"]),
    ] {
        let r = server.post_json("/topics", &body).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text());
        r.assert_error(400, "bad_request");
    }
    assert_no_topics(&server).await;
}

#[tokio::test]
async fn create_ignores_unknown_fields() {
    let server = TestServer::start().await;
    let r = server
        .post_json(
            "/topics",
            &json!({"name": "news", "extra": 1, "nested": {"deep": [null]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"name": "news", "subscriber_count": 0}));
}

#[tokio::test]
async fn create_rejects_a_content_type_other_than_json_with_415() {
    let server = TestServer::start().await;
    let body = br#"{"name":"news"}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data",
    ] {
        post_raw(&server, "/topics", Some(content_type), body)
            .await
            .assert_error(415, "unsupported_media_type");
    }
    assert_no_topics(&server).await;
}

#[tokio::test]
async fn create_reads_a_body_without_content_type_as_json() {
    let server = TestServer::start().await;
    let r = post_raw(&server, "/topics", None, br#"{"name":"news"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), json!({"name": "news", "subscriber_count": 0}));
    // And a bad body without Content-Type is a JSON error, not a media-type one.
    post_raw(&server, "/topics", None, b"news")
        .await
        .assert_error(400, "bad_request");
}

#[tokio::test]
async fn create_accepts_json_content_type_with_parameters_and_any_case() {
    let server = TestServer::start().await;
    for (i, content_type) in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({ "name": format!("t{i}") }).to_string();
        let r = post_raw(&server, "/topics", Some(content_type), body.as_bytes()).await;
        assert_eq!(r.status, 201, "{content_type}: {}", r.text());
    }
}

#[tokio::test]
async fn json_bodies_may_come_as_any_application_plus_json_type() {
    // docs/rest-api.md: a Content-Type other than application/json (or application/*+json) is 415.
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let accepted = [
        "application/merge-patch+json",
        "application/vnd.x+json",
        "application/problem+json; charset=utf-8",
        "Application/Vnd.Pubsub.Topic+JSON",
    ];
    for (i, content_type) in accepted.iter().enumerate() {
        let body = json!({ "name": format!("plus{i}") }).to_string();
        let r = post_raw(&server, "/topics", Some(content_type), body.as_bytes()).await;
        assert_eq!(r.status, 201, "{content_type}: {}", r.text());
        let body = json!({ "message": i }).to_string();
        let r = post_raw(
            &server,
            "/topics/news/messages",
            Some(content_type),
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "{content_type}: {}", r.text());
    }
    // Only `application/` types ending in `+json` are JSON.
    for content_type in [
        "text/vnd.x+json",
        "application/x-json",
        "application/jsonx",
        "application/json+xml",
        "application/vnd.x+json-seq",
    ] {
        post_raw(&server, "/topics", Some(content_type), br#"{"name":"no"}"#)
            .await
            .assert_error(415, "unsupported_media_type");
        post_raw(
            &server,
            "/topics/news/messages",
            Some(content_type),
            br#"{"message":"no"}"#,
        )
        .await
        .assert_error(415, "unsupported_media_type");
    }
    let details = topic_details(&server, "news").await;
    assert_eq!(
        details["messages_published"],
        accepted.len(),
        "only the +json publishes: {details}"
    );
    assert_eq!(server.get("/topics/no").await.status, 404);
}

// Body size limit

/// The REST body limit of a server run with `--max-message-bytes 100`: the message limit plus
/// the envelope.
const SMALL_BODY_LIMIT: usize = 100 + pubsub::config::ENVELOPE_BYTES;

async fn small_limit_server() -> TestServer {
    TestServer::with_args(&["--max-message-bytes", "100"]).await
}

/// `{"name":"news"}` padded with whitespace to exactly `len` bytes: valid JSON of any size.
fn padded_create_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"name":"news"}"#.to_vec();
    assert!(len >= body.len());
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn a_body_at_the_limit_is_accepted() {
    let server = small_limit_server().await;
    let r = post_raw(
        &server,
        "/topics",
        Some("application/json"),
        &padded_create_body(SMALL_BODY_LIMIT),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_payload_too_large() {
    let server = small_limit_server().await;
    post_raw(
        &server,
        "/topics",
        Some("application/json"),
        &padded_create_body(SMALL_BODY_LIMIT + 1),
    )
    .await
    .assert_error(413, "payload_too_large");
    server.create_topic("t").await;
    let mut big = br#"{"message":1}"#.to_vec();
    big.resize(SMALL_BODY_LIMIT + 1, b' ');
    post_raw(
        &server,
        "/topics/t/messages",
        Some("application/json"),
        &big,
    )
    .await
    .assert_error(413, "payload_too_large");
    assert_eq!(
        list_topics(&server).await["topics"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_chunked_body_is_read_like_any_other() {
    let server = small_limit_server().await;
    let chunked = [
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"),
    ];
    let r = server
        .request("POST", "/topics", &chunked, br#"{"name":"news"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .request(
            "POST",
            "/topics/news/messages",
            &chunked,
            br#"{"message":[1,2]}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        common::without_epoch(r.json()),
        json!({"topic": "news", "seq": 1})
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_payload_too_large() {
    let server = small_limit_server().await;
    let chunked = [
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"),
    ];
    server
        .request(
            "POST",
            "/topics",
            &chunked,
            &padded_create_body(SMALL_BODY_LIMIT + 1),
        )
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(list_topics(&server).await, json!({"topics": []}));
}

// DELETE /topics/{name}

#[tokio::test]
async fn delete_topic_returns_200_and_the_topic_is_gone() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    server.create_topic("other").await;
    let r = server.delete("/topics/news").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"name": "news", "deleted": true}));
    server
        .get("/topics/news")
        .await
        .assert_error(404, "topic_not_found");
    assert_eq!(
        list_topics(&server).await,
        json!({"topics": [{"name": "other", "subscriber_count": 0}]})
    );
    assert!(server.stats().await["topics"].get("news").is_none());
    // The name is free again, with a fresh life: seqs start over.
    server.create_topic("news").await;
    assert_eq!(publish_ok(&server, "news", json!(1)).await, 1);
}

/// Reading or deleting through `/topics/{name}...` answers 400 `invalid_topic` for a name that
/// breaks the rules, and 404 `topic_not_found` for a valid name no topic has.
#[tokio::test]
async fn topic_paths_reject_invalid_names_and_missing_topics() {
    let server = TestServer::start().await;
    for (method, suffix) in [("GET", ""), ("DELETE", ""), ("GET", "/messages")] {
        for name in invalid_path_names() {
            server
                .request(method, &format!("/topics/{name}{suffix}"), &[], b"")
                .await
                .assert_error(400, "invalid_topic");
        }
        server
            .request(method, &format!("/topics/news{suffix}"), &[], b"")
            .await
            .assert_error(404, "topic_not_found");
    }
}

#[tokio::test]
async fn delete_of_a_missing_topic_is_404() {
    let server = TestServer::start().await;
    server
        .delete("/topics/news")
        .await
        .assert_error(404, "topic_not_found");
    server.create_topic("news").await;
    assert_eq!(server.delete("/topics/news").await.status, 200);
    server
        .delete("/topics/news")
        .await
        .assert_error(404, "topic_not_found");
}

#[tokio::test]
async fn delete_tells_subscribers_and_unsubscribes_them() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    server.create_topic("other").await;
    let mut sub = server.ws().await;
    sub.subscribe("news").await;
    sub.subscribe("other").await;
    let mut other_sub = server.ws().await;
    other_sub.subscribe("news").await;
    wait_for_subscribers(&server, "news", 2).await;

    assert_eq!(server.delete("/topics/news").await.status, 200);
    assert_eq!(
        sub.recv().await,
        json!({"action": "topic_deleted", "topic": "news"})
    );
    assert_eq!(
        other_sub.recv().await,
        json!({"action": "topic_deleted", "topic": "news"})
    );

    // A topic of the same name is a new topic: the old subscribers are not on it.
    server.create_topic("news").await;
    assert_eq!(topic_details(&server, "news").await["subscriber_count"], 0);
    publish_ok(&server, "news", json!("after")).await;
    sub.assert_silent(Duration::from_millis(200)).await;
    // The connection stays, and its other subscription too.
    assert_eq!(topic_details(&server, "other").await["subscriber_count"], 1);
    publish_ok(&server, "other", json!("still here")).await;
    let m = sub.recv().await;
    assert_eq!(
        (m["action"].as_str(), m["topic"].as_str()),
        (Some("message"), Some("other"))
    );
    assert_eq!(
        sub.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
}

// GET /topics

#[tokio::test]
async fn list_topics_is_empty_on_a_fresh_server() {
    let server = TestServer::start().await;
    assert_eq!(list_topics(&server).await, json!({"topics": []}));
}

#[tokio::test]
async fn list_topics_is_sorted_by_name() {
    let server = TestServer::start().await;
    for name in ["b", "a.b", "C", "a", "10", "2", "a:z"] {
        server.create_topic(name).await;
    }
    let names: Vec<String> = list_topics(&server).await["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["10", "2", "C", "a", "a.b", "a:z", "b"]);
}

#[tokio::test]
async fn list_topics_counts_websocket_subscribers() {
    let server = TestServer::start().await;
    server.create_topic("a").await;
    server.create_topic("b").await;
    server.create_topic("c").await;
    let mut first = server.ws().await;
    first.subscribe("a").await;
    first.subscribe("a").await; // twice on one connection counts once
    first.subscribe("b").await;
    let mut second = server.ws().await;
    second.subscribe("a").await;
    let expected = json!({"topics": [
        {"name": "a", "subscriber_count": 2},
        {"name": "b", "subscriber_count": 1},
        {"name": "c", "subscriber_count": 0},
    ]});
    assert_eq!(list_topics(&server).await, expected);

    second
        .request(json!({"action": "unsubscribe", "topic": "a"}))
        .await;
    assert_eq!(
        list_topics(&server).await["topics"][0]["subscriber_count"],
        1
    );

    drop(first);
    wait_for_subscribers(&server, "a", 0).await;
    wait_for_subscribers(&server, "b", 0).await;
    let expected = json!({"topics": [
        {"name": "a", "subscriber_count": 0},
        {"name": "b", "subscriber_count": 0},
        {"name": "c", "subscriber_count": 0},
    ]});
    assert_eq!(list_topics(&server).await, expected);
}

// GET /topics/{name}

#[tokio::test]
async fn get_topic_of_a_fresh_topic() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let details = topic_details(&server, "news").await;
    assert_eq!(details["name"], "news");
    assert_eq!(details["subscriber_count"], 0);
    assert_eq!(details["messages_published"], 0);
    assert_eq!(details["messages_in_history"], 0);
    assert_eq!(details["last_seq"], 0);
    for field in [
        "name",
        "subscriber_count",
        "messages_published",
        "messages_in_history",
        "last_seq",
    ] {
        assert!(details.get(field).is_some(), "{field} in {details}");
    }
}

#[tokio::test]
async fn get_topic_counts_messages_with_history_bounded_by_history_size() {
    let server = TestServer::with_args(&["--history-size", "3"]).await;
    server.create_topic("news").await;
    for i in 1..=2 {
        publish_ok(&server, "news", json!(i)).await;
    }
    let details = topic_details(&server, "news").await;
    assert_eq!(
        (
            &details["messages_published"],
            &details["messages_in_history"],
            &details["last_seq"]
        ),
        (&json!(2), &json!(2), &json!(2))
    );
    for i in 3..=5 {
        publish_ok(&server, "news", json!(i)).await;
    }
    let details = topic_details(&server, "news").await;
    assert_eq!(details["messages_published"], 5);
    assert_eq!(details["messages_in_history"], 3);
    assert_eq!(details["last_seq"], 5);
}

#[tokio::test]
async fn get_topic_counts_subscribers() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let mut a = server.ws().await;
    a.subscribe("news").await;
    let mut b = server.ws().await;
    b.subscribe("news").await;
    assert_eq!(topic_details(&server, "news").await["subscriber_count"], 2);
    drop(b);
    wait_for_subscribers(&server, "news", 1).await;
    assert_eq!(topic_details(&server, "news").await["subscriber_count"], 1);
}

#[tokio::test]
async fn topic_names_in_paths_are_percent_decoded() {
    let server = TestServer::start().await;
    server.create_topic("news:eu").await;
    for path in [
        "/topics/news:eu",
        "/topics/news%3Aeu",
        "/topics/news%3aeu",
        "/topics/%6Eews%3Aeu",
    ] {
        assert_eq!(
            topic_details(&server, &path["/topics/".len()..]).await["name"],
            "news:eu",
            "{path}"
        );
    }
    let r = publish(&server, "news%3Aeu", json!(1)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        common::without_epoch(r.json()),
        json!({"topic": "news:eu", "seq": 1})
    );
    assert_eq!(history(&server, "news%3Aeu", "").await["topic"], "news:eu");
    let r = server.delete("/topics/news%3Aeu").await;
    assert_eq!(r.json(), json!({"name": "news:eu", "deleted": true}));
    // The length rule counts decoded characters: 255 of them in a 257-byte segment.
    let long = format!("a:{}", "x".repeat(253));
    server.create_topic(&long).await;
    let escaped = format!("a%3A{}", "x".repeat(253));
    assert_eq!(
        topic_details(&server, &escaped).await["name"],
        long.as_str()
    );
}

// POST /topics/{name}/messages

#[tokio::test]
async fn publish_returns_201_with_topic_and_seq() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    for seq in 1..=3 {
        let r = publish(&server, "news", json!({"n": seq})).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            common::without_epoch(r.json()),
            json!({"topic": "news", "seq": seq})
        );
    }
}

#[tokio::test]
async fn rest_publish_is_delivered_exactly_like_a_websocket_publish() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let mut sub = server.ws().await;
    sub.subscribe("news").await;
    let mut publisher = server.ws().await;
    let message = json!({"data": "Hello", "n": [1, 2.5, null]});

    assert_eq!(publisher.publish("news", message.clone()).await, 1);
    assert_eq!(
        publish_ok(&server, "news", message.clone()).await,
        2,
        "one seq counter for both"
    );
    assert_eq!(publisher.publish("news", message.clone()).await, 3);

    let mut frames = Vec::new();
    for seq in 1..=3u64 {
        let mut frame = sub.recv().await;
        assert_eq!(frame["seq"], seq, "{frame}");
        let at = frame["published_at"].as_str().expect("published_at");
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );
        let object = frame.as_object_mut().expect("frame object");
        object.remove("seq");
        object.remove("published_at");
        frames.push(frame);
    }
    assert_eq!(
        frames[0],
        json!({"action": "message", "topic": "news", "message": message})
    );
    assert_eq!(
        frames[1], frames[0],
        "the REST publish looks like the WebSocket ones"
    );
    assert_eq!(frames[2], frames[0]);
}

#[tokio::test]
async fn publish_accepts_any_json_value_null_included() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let mut sub = server.ws().await;
    sub.subscribe("news").await;
    let values = [
        json!(null),
        json!(0),
        json!(false),
        json!("text"),
        json!([1, {"a": null}]),
        json!({}),
    ];
    for value in &values {
        publish_ok(&server, "news", value.clone()).await;
    }
    for value in &values {
        let m = sub.recv().await;
        assert_eq!(m.get("message"), Some(value), "{m}");
    }
    let page = history(&server, "news", "").await;
    let held: Vec<&Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["message"])
        .collect();
    assert_eq!(held, values.iter().collect::<Vec<_>>());
    assert!(
        page["messages"][0].get("message").is_some(),
        "null is kept as a value: {page}"
    );
}

#[tokio::test]
async fn publish_without_message_is_bad_request() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    for body in [
        json!({}),
        json!({"msg": 1}),
        json!({"data": {"message": 1}}),
    ] {
        server
            .post_json("/topics/news/messages", &body)
            .await
            .assert_error(400, "bad_request");
    }
    for body in ["", "not json", "{\"message\":", "{\"message\": 1"] {
        post_raw(
            &server,
            "/topics/news/messages",
            Some("application/json"),
            body.as_bytes(),
        )
        .await
        .assert_error(400, "bad_request");
    }
    assert_eq!(
        topic_details(&server, "news").await["messages_published"],
        0
    );
}

#[tokio::test]
async fn publish_with_a_body_that_is_not_an_object_is_bad_request() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    for body in [
        json!(null),
        json!(1),
        json!("hello"),
        json!([]),
        json!([{"data": 1}]),
    ] {
        let r = server.post_json("/topics/news/messages", &body).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text());
        r.assert_error(400, "bad_request");
    }
    assert_eq!(
        topic_details(&server, "news").await["messages_published"],
        0
    );
}

#[tokio::test]
async fn publish_ignores_unknown_fields() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let r = server
        .post_json(
            "/topics/news/messages",
            &json!({"message": "hi", "topic": "elsewhere", "x": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        common::without_epoch(r.json()),
        json!({"topic": "news", "seq": 1})
    );
}

#[tokio::test]
async fn publish_to_a_missing_topic_is_404() {
    let server = TestServer::start().await;
    publish(&server, "news", json!(1))
        .await
        .assert_error(404, "topic_not_found");
    server
        .get("/topics/news")
        .await
        .assert_error(404, "topic_not_found");
}

#[tokio::test]
async fn publish_to_an_invalid_name_is_400_invalid_topic() {
    for args in [&[][..], &["--auto-create-topics"][..]] {
        let server = TestServer::with_args(args).await;
        for name in invalid_path_names() {
            publish(&server, &name, json!(1))
                .await
                .assert_error(400, "invalid_topic");
        }
        assert_eq!(
            list_topics(&server).await,
            json!({"topics": []}),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn publish_limits_the_message_json_text_to_max_message_bytes() {
    let server = small_limit_server().await;
    server.create_topic("news").await;
    // A JSON string of 98 characters is 100 bytes of JSON text with its quotes.
    let exactly_100 = json!("x".repeat(98));
    assert_eq!(exactly_100.to_string().len(), 100);
    assert_eq!(publish_ok(&server, "news", exactly_100).await, 1);
    let just_over = json!("x".repeat(99));
    publish(&server, "news", just_over)
        .await
        .assert_error(413, "message_too_large");
    let object_101 = json!({"k": "x".repeat(93)});
    assert_eq!(object_101.to_string().len(), 101);
    publish(&server, "news", object_101)
        .await
        .assert_error(413, "message_too_large");
    assert_eq!(
        topic_details(&server, "news").await["messages_published"],
        1,
        "nothing published by a failure"
    );
}

#[tokio::test]
async fn publish_rejects_a_content_type_other_than_json_with_415() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        post_raw(
            &server,
            "/topics/news/messages",
            Some(content_type),
            br#"{"message":1}"#,
        )
        .await
        .assert_error(415, "unsupported_media_type");
    }
    let r = post_raw(&server, "/topics/news/messages", None, br#"{"message":1}"#).await;
    assert_eq!(
        r.status,
        201,
        "a missing Content-Type is JSON: {}",
        r.text()
    );
    let r = post_raw(
        &server,
        "/topics/news/messages",
        Some("application/json; charset=utf-8"),
        br#"{"message":2}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        topic_details(&server, "news").await["messages_published"],
        2
    );
}

#[tokio::test]
async fn publish_creates_the_topic_when_topics_are_auto_created() {
    let server = TestServer::with_args(&["--auto-create-topics"]).await;
    let r = publish(&server, "fresh", json!({"first": true})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        common::without_epoch(r.json()),
        json!({"topic": "fresh", "seq": 1})
    );
    assert_eq!(
        list_topics(&server).await,
        json!({"topics": [{"name": "fresh", "subscriber_count": 0}]})
    );
    assert_eq!(
        history(&server, "fresh", "").await["messages"][0]["message"],
        json!({"first": true})
    );
    assert_eq!(
        publish_ok(&server, "fresh", json!(2)).await,
        2,
        "the second publish uses the same topic"
    );
}

// GET /topics/{name}/messages

/// A server with topic "news" holding messages {"n": 1} .. {"n": count}.
async fn server_with_messages(args: &[&str], count: u64) -> TestServer {
    let server = TestServer::with_args(args).await;
    server.create_topic("news").await;
    for n in 1..=count {
        assert_eq!(publish_ok(&server, "news", json!({ "n": n })).await, n);
    }
    server
}

#[tokio::test]
async fn history_returns_every_held_message_oldest_first() {
    let server = server_with_messages(&[], 5).await;
    let page = history(&server, "news", "").await;
    assert_eq!(
        object_keys(&page),
        BTreeSet::from(["topic", "messages", "last_seq"])
    );
    assert_eq!(page["topic"], "news");
    assert_eq!(page["last_seq"], 5);
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
    for (i, m) in page["messages"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            object_keys(m),
            BTreeSet::from(["seq", "message", "published_at"])
        );
        assert_eq!(m["message"], json!({"n": i + 1}));
        let at = m["published_at"].as_str().expect("published_at");
        assert!(
            at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );
    }
}

#[tokio::test]
async fn history_of_a_topic_without_messages_is_empty() {
    let server = server_with_messages(&[], 0).await;
    assert_eq!(
        history(&server, "news", "").await,
        json!({"topic": "news", "messages": [], "last_seq": 0})
    );
}

#[tokio::test]
async fn history_since_seq_returns_only_later_messages() {
    let server = server_with_messages(&[], 5).await;
    assert_eq!(
        seqs(&history(&server, "news", "?since_seq=0").await),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(&history(&server, "news", "?since_seq=2").await),
        [3, 4, 5]
    );
    assert_eq!(seqs(&history(&server, "news", "?since_seq=4").await), [5]);
    let page = history(&server, "news", "?since_seq=5").await;
    assert_eq!(seqs(&page), [] as [u64; 0]);
    assert_eq!(page["last_seq"], 5);
    let page = history(&server, "news", "?since_seq=1000").await;
    assert_eq!(seqs(&page), [] as [u64; 0]);
    assert_eq!(page["last_seq"], 5);
}

#[tokio::test]
async fn history_limit_takes_the_oldest_after_since_seq() {
    let server = server_with_messages(&[], 5).await;
    assert_eq!(seqs(&history(&server, "news", "?limit=2").await), [1, 2]);
    assert_eq!(
        seqs(&history(&server, "news", "?since_seq=2&limit=2").await),
        [3, 4]
    );
    assert_eq!(
        seqs(&history(&server, "news", "?limit=2&since_seq=3").await),
        [4, 5]
    );
    assert_eq!(
        seqs(&history(&server, "news", "?limit=5").await),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(&history(&server, "news", "?limit=1000").await),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(&history(&server, "news", "?limit=0").await),
        [] as [u64; 0]
    );
    assert_eq!(
        history(&server, "news", "?limit=1").await["last_seq"],
        5,
        "last_seq is the topic's"
    );
}

#[tokio::test]
async fn history_holds_at_most_history_size_and_evicts_the_oldest() {
    let server = server_with_messages(&["--history-size", "3"], 7).await;
    let page = history(&server, "news", "").await;
    assert_eq!(seqs(&page), [5, 6, 7], "default limit: the history size");
    assert_eq!(page["last_seq"], 7);
    assert_eq!(page["messages"][0]["message"], json!({"n": 5}));
    assert_eq!(
        seqs(&history(&server, "news", "?limit=100").await),
        [5, 6, 7],
        "limit capped"
    );
    assert_eq!(
        seqs(&history(&server, "news", "?since_seq=2").await),
        [5, 6, 7],
        "evicted ones are gone"
    );
    assert_eq!(
        seqs(&history(&server, "news", "?since_seq=5&limit=1").await),
        [6]
    );
}

#[tokio::test]
async fn history_size_zero_keeps_nothing() {
    let server = server_with_messages(&["--history-size", "0"], 3).await;
    assert_eq!(
        history(&server, "news", "").await,
        json!({"topic": "news", "messages": [], "last_seq": 3})
    );
    assert_eq!(
        seqs(&history(&server, "news", "?limit=10").await),
        [] as [u64; 0]
    );
    let details = topic_details(&server, "news").await;
    assert_eq!(details["messages_published"], 3);
    assert_eq!(details["messages_in_history"], 0);
}

#[tokio::test]
async fn history_rejects_bad_parameters_with_bad_request() {
    let server = server_with_messages(&[], 2).await;
    for query in [
        "?since_seq=abc",
        "?since_seq=-1",
        "?since_seq=1.5",
        "?since_seq=",
        "?since_seq=99999999999999999999999",
        "?limit=ten",
        "?limit=-3",
        "?limit=2e1",
        "?limit=",
        "?limit=18446744073709551616",
        "?since_seq=1&limit=x",
    ] {
        server
            .get(&format!("/topics/news/messages{query}"))
            .await
            .assert_error(400, "bad_request");
    }
}

#[tokio::test]
async fn history_accepts_the_largest_integer_parameters() {
    let server = server_with_messages(&[], 2).await;
    let max = u64::MAX;
    assert_eq!(
        seqs(&history(&server, "news", &format!("?limit={max}")).await),
        [1, 2]
    );
    assert_eq!(
        seqs(&history(&server, "news", &format!("?since_seq={max}")).await),
        [] as [u64; 0]
    );
}

#[tokio::test]
async fn history_ignores_unknown_parameters() {
    let server = server_with_messages(&[], 3).await;
    assert_eq!(seqs(&history(&server, "news", "?foo=bar").await), [1, 2, 3]);
    assert_eq!(
        seqs(&history(&server, "news", "?foo=bar&since_seq=1&x=-1").await),
        [2, 3]
    );
    assert_eq!(
        seqs(&history(&server, "news", "?sinceSeq=2&LIMIT=1").await),
        [1, 2, 3]
    );
}

// GET /health

#[tokio::test]
async fn health_reports_healthy_with_uptime() {
    let server = TestServer::start().await;
    let r = server.get("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(
        object_keys(&body),
        BTreeSet::from(["engine", "status", "uptime_seconds"])
    );
    assert_eq!(body["status"], "healthy");
    assert!(body["uptime_seconds"].is_u64(), "{body}");
}

// GET /stats

#[tokio::test]
async fn stats_of_a_fresh_server_has_every_field() {
    let server = TestServer::start().await;
    let r = server.get("/stats").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let mut stats = r.json();
    // The bytes history holds are known on the memory engine; on Redis, Redis holds them.
    if common::across_nodes() {
        assert!(stats.get("history_bytes").is_none(), "{stats}");
        stats["history_bytes"] = json!(0);
    }
    assert_eq!(
        object_keys(&stats),
        BTreeSet::from([
            "topics",
            "connections",
            "http_connections",
            "http_connections_refused",
            "tls",
            "tls_handshakes_failed",
            "subscriptions",
            "node_id",
            "engine",
            "nodes",
            "messages_published",
            "messages_delivered",
            "messages_dropped",
            "slow_consumers_disconnected",
            "dead_connections_closed",
            "history_bytes",
            "errors",
            "uptime_seconds",
        ])
    );
    assert_eq!(stats["topics"], json!({}));
    let (engine, node_count) = if common::across_nodes() {
        ("redis", 2)
    } else {
        ("memory", 1)
    };
    assert_eq!(stats["engine"], engine);
    assert_eq!(stats["tls"], false, "plain HTTP unless --tls-cert is given");
    let nodes = stats["nodes"].as_array().expect("nodes");
    assert_eq!(
        nodes.len(),
        node_count,
        "one node, or the two of the run across nodes"
    );
    assert!(nodes.iter().any(|n| n["id"] == stats["node_id"]));
    assert!(
        nodes[0]["last_seen"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    for counter in [
        "connections",
        "http_connections_refused",
        "tls_handshakes_failed",
        "subscriptions",
        "messages_published",
        "messages_delivered",
        "messages_dropped",
        "slow_consumers_disconnected",
        "dead_connections_closed",
        "history_bytes",
    ] {
        assert_eq!(stats[counter], 0, "{counter}");
    }
    assert_eq!(
        stats["http_connections"], 1,
        "this request's own connection"
    );
    let errors = stats["errors"].as_object().expect("errors is an object");
    assert_eq!(errors.len(), ErrorCode::ALL.len());
    for code in ErrorCode::ALL {
        assert_eq!(errors[code.as_str()], 0, "{}", code.as_str());
    }
    assert!(stats["uptime_seconds"].is_u64(), "{stats}");
}

#[tokio::test]
async fn stats_report_each_topic() {
    let server = TestServer::with_args(&["--history-size", "2"]).await;
    server.create_topic("news").await;
    server.create_topic("quiet").await;
    for i in 0..3 {
        publish_ok(&server, "news", json!(i)).await;
    }
    let mut sub = server.ws().await;
    sub.subscribe("news").await;
    let stats = server.stats().await;
    assert_eq!(
        stats["topics"],
        json!({
            "news": {"subscribers": 1, "messages_published": 3, "messages_in_history": 2},
            "quiet": {"subscribers": 0, "messages_published": 0, "messages_in_history": 0},
        })
    );
}

#[tokio::test]
async fn stats_connections_count_open_websockets() {
    let server = TestServer::start().await;
    let first = server.ws().await;
    let mut second = server.ws().await;
    let third = server.ws().await;
    server
        .wait_for_stats("3 connections", |s| s["connections"] == 3)
        .await;
    // Plain HTTP requests are not WebSocket connections.
    assert_eq!(server.stats().await["connections"], 3);

    drop(first);
    server
        .wait_for_stats("2 connections", |s| s["connections"] == 2)
        .await;
    second.ws.close(None).await.expect("close");
    server
        .wait_for_stats("1 connection", |s| s["connections"] == 1)
        .await;
    drop(third);
    server
        .wait_for_stats("no connections", |s| s["connections"] == 0)
        .await;
}

#[tokio::test]
async fn stats_messages_delivered_counts_message_frames_replays_included() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let mut a = server.ws().await;
    a.subscribe("news").await;
    let mut b = server.ws().await;
    b.subscribe("news").await;
    // Acks, pongs and errors are not message frames.
    assert_eq!(a.request(json!({"action": "ping"})).await["action"], "pong");
    assert_eq!(
        b.request(json!({"action": "subscribe", "topic": "nope"}))
            .await["action"],
        "error"
    );

    for i in 0..3 {
        publish_ok(&server, "news", json!(i)).await;
    }
    for _ in 0..3 {
        a.recv().await;
        b.recv().await;
    }
    server
        .wait_for_stats("6 live deliveries", |s| s["messages_delivered"] == 6)
        .await;

    let mut late = server.ws().await;
    let ack = late
        .request(json!({"action": "subscribe", "topic": "news", "replay_last": 2}))
        .await;
    assert_eq!(ack["replayed"], 2, "{ack}");
    for _ in 0..2 {
        assert_eq!(late.recv().await["action"], "message");
    }
    let stats = server
        .wait_for_stats("2 replays counted", |s| s["messages_delivered"] == 8)
        .await;
    assert_eq!(stats["messages_dropped"], 0);
    assert_eq!(stats["slow_consumers_disconnected"], 0);
    assert_eq!(stats["topics"]["news"]["subscribers"], 3);
}

// Routing: unknown paths, wrong methods, /ws without an upgrade

#[tokio::test]
async fn unknown_routes_are_json_404_not_found() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/topic"),
        ("GET", "/topics/news/extra"),
        ("GET", "/topics/news/messages/1"),
        ("GET", "/healthz"),
        ("GET", "/api-doc/other.json"),
        ("GET", "/docs/no-such-file.js"),
        ("POST", "/nope"),
        ("DELETE", "/nope"),
        ("PUT", "/topics/news/extra"),
    ] {
        let r = server.request(method, path, &[], b"").await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        r.assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn wrong_methods_on_known_paths_are_json_405_with_allow() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let cases: [(&str, &[&str], &[&str]); 11] = [
        ("/topics", &["PUT", "PATCH", "DELETE"], &["GET", "POST"]),
        (
            "/topics/news",
            &["POST", "PUT", "PATCH"],
            &["GET", "DELETE"],
        ),
        (
            "/topics/news/messages",
            &["PUT", "PATCH", "DELETE"],
            &["GET", "POST"],
        ),
        ("/health", &["POST", "DELETE"], &["GET"]),
        ("/stats", &["POST", "PUT"], &["GET"]),
        ("/ws", &["POST", "DELETE"], &["GET"]),
        ("/api-doc/openapi.json", &["POST"], &["GET"]),
        ("/api-doc/asyncapi.json", &["POST", "DELETE"], &["GET"]),
        ("/", &["POST", "PUT", "DELETE"], &["GET"]),
        ("/docs", &["POST"], &["GET"]),
        ("/docs/", &["DELETE"], &["GET"]),
    ];
    for (path, methods, allowed) in cases {
        for method in methods {
            let r = server.request(method, path, &[], b"").await;
            assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
            r.assert_error(405, "method_not_allowed");
            let allow: BTreeSet<&str> = r
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
                .split(',')
                .map(str::trim)
                .collect();
            assert_eq!(allow, allowed.iter().copied().collect(), "{method} {path}");
        }
    }
    assert_eq!(
        topic_details(&server, "news").await["messages_published"],
        0
    );
}

#[tokio::test]
async fn ws_without_upgrade_headers_is_426_upgrade_required() {
    let server = TestServer::start().await;
    let r = server.get("/ws").await;
    r.assert_error(426, "upgrade_required");
    assert_eq!(r.header("upgrade"), Some("websocket"));
    // Only one of the two upgrade headers is not enough either.
    let r = server
        .request("GET", "/ws", &[("Upgrade", "websocket")], b"")
        .await;
    r.assert_error(426, "upgrade_required");
}

/// A WebSocket upgrade of another protocol version is refused with the version we speak; one
/// without a key is malformed.
#[tokio::test]
async fn ws_handshake_needs_version_13_and_a_key() {
    let server = TestServer::start().await;
    let upgrade = [
        ("Connection", "keep-alive, Upgrade"),
        ("Upgrade", "WebSocket"),
    ];
    let key = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    for version in [None, Some("8")] {
        let mut headers = upgrade.to_vec();
        headers.push(key);
        headers.extend(version.map(|v| ("Sec-WebSocket-Version", v)));
        let r = server.request("GET", "/ws", &headers, b"").await;
        r.assert_error(426, "upgrade_required");
        assert_eq!(r.header("sec-websocket-version"), Some("13"));
    }
    let mut headers = upgrade.to_vec();
    headers.push(("Sec-WebSocket-Version", "13"));
    server
        .request("GET", "/ws", &headers, b"")
        .await
        .assert_error(400, "bad_request");
    // With everything in place, tokens in any case and order, the server switches protocols
    // and answers the key as RFC 6455 section 1.3 shows.
    headers.push(key);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut request = format!("GET /ws HTTP/1.1\r\nHost: {}\r\n", server.addr);
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
}

/// RFC 6455 4.2.1: the key must be base64 of 16 bytes; anything else is a malformed handshake,
/// answered with the JSON 400 and no switch of protocols.
#[tokio::test]
async fn ws_handshake_refuses_a_key_that_is_not_base64_of_16_bytes() {
    let server = TestServer::start().await;
    let bad_keys = [
        "",
        "not a key",
        "dGhlIHNhbXBsZSBub25jZQ",       // 16 bytes, padding missing
        "dGhlIHNhbXBsZSBub25jZQ===",    // one '=' too many
        "AAAAAAAAAAAAAAAAAAAA",         // 15 bytes
        "AAAAAAAAAAAAAAAAAAAAAAA=",     // 17 bytes
        "dGhlIHNhbXBsZSBub25jZ!==",     // not a base64 digit
        "dGhlIHNhbXBsZSBub25jZQ==dGhl", // more after the padding
    ];
    for key in bad_keys {
        let mut headers = common::UPGRADE_HEADERS.to_vec();
        headers.retain(|(name, _)| *name != "Sec-WebSocket-Key");
        headers.push(("Sec-WebSocket-Key", key));
        let r = server.request("GET", "/ws", &headers, b"").await;
        r.assert_error(400, "bad_request");
        assert!(
            r.text().contains("Sec-WebSocket-Key"),
            "{key:?}: {}",
            r.text()
        );
    }
    assert_eq!(server.stats().await["connections"], 0);
    // Every key a client library makes is base64 of 16 random bytes: accepted.
    server.ws().await;
}
