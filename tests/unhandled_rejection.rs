//! A rejection that no route handles is still answered with the JSON error, its message a
//! sentence written for clients and never the rejection's debug text. Built only with the
//! `fault-injection` feature (`cargo test --all-features`): no real request reaches that path
//! today, so the feature makes one on request.

mod common;

use common::TestServer;

const FAULT_REJECT: &str = "x-fault-injection-reject";

#[tokio::test]
async fn an_unhandled_rejection_gets_a_deliberate_message() {
    let server = TestServer::start().await;
    let r = server
        .request("GET", "/health", &[(FAULT_REJECT, "1")], b"")
        .await;
    r.assert_error(500, "internal");
    assert_eq!(
        r.json()["error"]["message"],
        "the server could not handle this request; the failure is logged"
    );
    let stats = server.stats().await;
    assert_eq!(stats["errors"]["internal"], 1, "{stats}");
    // Nothing else changed: the same request without the header is served.
    assert_eq!(server.get("/health").await.status, 200);
}
