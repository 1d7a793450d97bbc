//! Swagger UI at /docs, rendered by a real headless Chromium: every operation of the OpenAPI
//! document shows up. Skips with a printed reason when Chromium is not installed, unless
//! PUBSUB_REQUIRE_TOOLS=1 (as in .ci/run), which makes a missing browser a failure.

mod common;

use std::process::Command;

use common::TestServer;
use utoipa::OpenApi;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_every_operation_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("PUBSUB_REQUIRE_TOOLS").is_err(),
            "PUBSUB_REQUIRE_TOOLS is set but Chromium is not installed"
        );
        println!("SKIPPED: Chromium is not installed (apt-get install chromium)");
        return;
    };
    let server = TestServer::start().await;
    let url = format!("http://{}/docs", server.addr);
    let profile = std::env::temp_dir().join(format!("pubsub-chromium-{}", std::process::id()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("120")
            .arg(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
    })
    .await
    .expect("browser task")
    .expect("run Chromium");
    let dom = String::from_utf8_lossy(&output.stdout);
    let doc = pubsub::http::docs::ApiDoc::openapi();
    let mut expected = Vec::new();
    for item in doc.paths.paths.values() {
        for op in [&item.get, &item.post, &item.delete].into_iter().flatten() {
            let tag = &op.tags.as_ref().expect("tagged")[0];
            let id = op.operation_id.as_ref().expect("operation id");
            expected.push(format!("id=\"operations-{tag}-{id}\""));
        }
    }
    assert_eq!(expected.len(), 9, "every REST operation is documented");
    for id in &expected {
        assert!(
            dom.contains(id.as_str()),
            "Swagger UI shows {id}; DOM was {} bytes",
            dom.len()
        );
    }
}
