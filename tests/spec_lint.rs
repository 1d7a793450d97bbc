//! The committed API documents pass the linters people run on them: Redocly CLI's recommended
//! rules on `openapi/openapi.json` (`redocly.yaml`), and Spectral's `oas` and `asyncapi`
//! rulesets on both documents (`.spectral.yaml`). Every problem fails the test, warnings
//! included, and all of them are listed. Both tools are npm packages pinned in
//! `tests/browser/package.json`, fetched like the browser tests' (tests/common/tools.rs).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::tools::{browser_dir, missing_tool, node_missing, run};

const REDOCLY: &str = "@redocly/cli";
const SPECTRAL: &str = "@stoplight/spectral-cli";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The npm-installed command `name`, run from the repository's root.
fn tool(name: &str) -> Command {
    let mut command = Command::new(browser_dir().join("node_modules/.bin").join(name));
    command
        .current_dir(root())
        // Redocly CLI would otherwise report usage to its makers and look for updates.
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true");
    command
}

/// The first JSON value at the start of `text` (Spectral prints a sentence after it).
fn leading_json(text: &str) -> Value {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON report in:\n{text}"))
}

#[tokio::test]
async fn redocly_recommended_rules_find_nothing_in_the_openapi_document() {
    if let Some(reason) = node_missing(&[REDOCLY]) {
        return missing_tool(&reason);
    }
    let mut command = tool("redocly");
    command.args([
        "lint",
        "openapi/openapi.json",
        "--config",
        "redocly.yaml",
        "--format=json",
    ]);
    let report = run(command, Duration::from_secs(120)).await;
    let json = leading_json(&report.stdout);
    let problems: Vec<String> = json["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("a problem list: {}", report.describe()))
        .iter()
        .map(|p| {
            format!(
                "{} {} at {}: {}",
                p["severity"].as_str().unwrap_or("?"),
                p["ruleId"].as_str().unwrap_or("?"),
                p["location"][0]["pointer"].as_str().unwrap_or("?"),
                p["message"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        problems.is_empty() && report.success(),
        "Redocly found {} problems in openapi/openapi.json:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        report.stderr
    );
    assert_eq!(json["totals"]["ignored"], 0, "nothing is ignored");
}

#[tokio::test]
async fn spectral_oas_and_asyncapi_rulesets_find_nothing_in_either_document() {
    if let Some(reason) = node_missing(&[SPECTRAL]) {
        return missing_tool(&reason);
    }
    let mut command = tool("spectral");
    command.args([
        "lint",
        "--ruleset",
        ".spectral.yaml",
        "--format",
        "json",
        // Hints and information count too: the exit status reflects every finding.
        "--fail-severity",
        "hint",
        "openapi/openapi.json",
        "openapi/asyncapi.json",
    ]);
    let report = run(command, Duration::from_secs(120)).await;
    let findings = leading_json(&report.stdout);
    let findings: Vec<String> = findings
        .as_array()
        .unwrap_or_else(|| panic!("a list of findings: {}", report.describe()))
        .iter()
        .map(|f| {
            let severity = match f["severity"].as_u64() {
                Some(0) => "error",
                Some(1) => "warning",
                Some(2) => "information",
                _ => "hint",
            };
            format!(
                "{severity} {} in {} at {}: {}",
                f["code"].as_str().unwrap_or("?"),
                f["source"].as_str().unwrap_or("?"),
                f["path"],
                f["message"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        findings.is_empty() && report.success(),
        "Spectral found {} problems:\n{}\n{}",
        findings.len(),
        findings.join("\n"),
        report.describe()
    );
}
