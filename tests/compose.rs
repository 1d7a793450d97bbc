//! `compose.yaml`, checked without Docker (no Docker engine runs where it was written, so it is
//! never started here): read with PyYAML, its services, commands, ports and health checks are
//! compared with docs/scale-out.md, the Dockerfile and the flags (`pubsub --help`, and the flag parser
//! itself); and the nodes' health-check command runs against a live node (it must pass) and
//! against a node whose Redis is gone (it must fail).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use common::redis::{RedisServer, redis_missing};
use common::tools::{missing_tool, python_with, run, succeeds};
use common::{TestServer, WAIT};
use pubsub::config::{Config, EngineKind};

/// The host ports docs/scale-out.md gives the two nodes.
const NODE_PORTS: [u16; 2] = [8001, 8002];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `compose.yaml` as JSON, read by PyYAML; or why it cannot be read here.
async fn compose() -> Result<Value, String> {
    let python = python_with(&["yaml"])?;
    let mut command = python.python();
    command
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(repo("compose.yaml"));
    let run = run(command, Duration::from_secs(60)).await;
    assert!(
        run.success(),
        "PyYAML cannot read compose.yaml:\n{}",
        run.describe()
    );
    Ok(run.json())
}

/// A list of strings (a command, ports, volumes), or a failure naming `what`.
fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is a list, not {value}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{what}: {v} is not a string"))
                .to_owned()
        })
        .collect()
}

/// The port the image's server listens on inside its container (`PUBSUB_PORT` in the
/// Dockerfile, which also exposes it).
fn container_port() -> u16 {
    let dockerfile = read("Dockerfile");
    let port: u16 = dockerfile
        .split("PUBSUB_PORT=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("the Dockerfile sets PUBSUB_PORT");
    assert!(
        dockerfile.contains(&format!("EXPOSE {port}")),
        "{dockerfile}"
    );
    // The command of a service is the broker's flags: the image's entry point is the broker.
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/pubsub"]"#),
        "{dockerfile}"
    );
    port
}

/// The node services: every service built from the Dockerfile.
fn nodes(compose: &Value) -> Vec<(&String, &Value)> {
    compose["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(_, service)| !service["build"].is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_file_matches_the_readme_the_dockerfile_and_the_flags() {
    let compose = match compose().await {
        Ok(compose) => compose,
        Err(reason) => return missing_tool(&reason),
    };
    let services = compose["services"].as_object().expect("services");

    // Redis 7, appending every write to a file in a named volume, healthy once it answers PING.
    let redis = &services["redis"];
    let image = redis["image"].as_str().expect("Redis's image");
    assert!(
        image == "redis:7" || image.starts_with("redis:7."),
        "{image}"
    );
    let command = strings(&redis["command"], "redis command");
    assert_eq!(command[0], "redis-server", "{command:?}");
    assert!(
        command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "{command:?}"
    );
    let volumes = strings(&redis["volumes"], "redis volumes");
    let volume = volumes
        .iter()
        .find_map(|v| v.strip_suffix(":/data"))
        .expect("Redis keeps /data, where it writes, in a volume");
    assert!(
        compose["volumes"]
            .as_object()
            .is_some_and(|v| v.contains_key(volume)),
        "the volume {volume} is declared"
    );
    assert_eq!(
        strings(&redis["healthcheck"]["test"], "redis health check"),
        ["CMD", "redis-cli", "ping"]
    );

    let inside = container_port();
    let help = run(
        {
            let mut help = Command::new(env!("CARGO_BIN_EXE_pubsub"));
            help.arg("--help");
            help
        },
        Duration::from_secs(30),
    )
    .await;
    assert!(help.success(), "pubsub --help:\n{}", help.describe());
    let doc = "docs/scale-out.md";
    let readme = read(doc);
    let compose_section = readme
        .split("\n## Several nodes with Docker Compose\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{doc} has the section 'Several nodes with Docker Compose'"));
    let compose_section =
        &compose_section[..compose_section.find("\n#").unwrap_or(compose_section.len())];

    let nodes = nodes(&compose);
    assert_eq!(nodes.len(), 2, "two nodes");
    assert_eq!(services.len(), 3, "Redis and the two nodes");
    let mut host_ports = Vec::new();
    for (name, service) in nodes {
        assert_eq!(service["build"], ".", "{name} is built from the Dockerfile");
        let command = strings(&service["command"], &format!("{name} command"));
        // Every flag is one the broker documents, and the broker takes them as they are.
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            assert!(
                help.stdout.contains(&format!("{flag} ")),
                "{name}: `pubsub --help` does not list {flag}"
            );
        }
        let config = Config::try_parse_from(
            std::iter::once("pubsub").chain(command.iter().map(String::as_str)),
        )
        .unwrap_or_else(|e| panic!("{name}: the flags {command:?} do not parse: {e}"));
        config
            .validate()
            .unwrap_or_else(|e| panic!("{name}: {command:?}: {e}"));
        assert_eq!(config.engine, EngineKind::Redis, "{name}");
        assert_eq!(
            config.redis_url, "redis://redis:6379/0",
            "{name}: the Redis service"
        );
        assert_eq!(
            config.host.to_string(),
            "0.0.0.0",
            "{name} listens on every interface"
        );
        assert!(config.redis_cluster.is_empty(), "{name}");
        // The port it listens on: its --port, else the image's.
        let port = if command.iter().any(|a| a == "--port") {
            config.port
        } else {
            inside
        };
        let ports = strings(&service["ports"], &format!("{name} ports"));
        let [mapping] = ports.as_slice() else {
            panic!("{name} publishes one port: {ports:?}")
        };
        let (host, container) = mapping
            .split_once(':')
            .unwrap_or_else(|| panic!("{name}: {mapping} is HOST:CONTAINER"));
        assert_eq!(container.parse::<u16>(), Ok(port), "{name}: {mapping}");
        host_ports.push(host.parse::<u16>().expect("a host port"));
        assert_eq!(
            service["depends_on"]["redis"]["condition"], "service_healthy",
            "{name} starts once Redis answers"
        );
        // Healthy while GET /health answers 200 on the port it listens on; no `$`, which
        // Compose would take for a variable.
        let check = &service["healthcheck"];
        let test = strings(&check["test"], &format!("{name} health check"));
        assert_eq!(test[..3], ["CMD", "bash", "-c"], "{name}");
        let script = &test[3];
        assert!(
            script.contains(&format!("/dev/tcp/127.0.0.1/{port} "))
                && script.contains("GET /health ")
                && script.contains("' 200 '"),
            "{name}: {script}"
        );
        assert!(!script.contains('$'), "{name}: {script}");
        for key in ["interval", "timeout", "retries", "start_period"] {
            assert!(!check[key].is_null(), "{name}: health check without {key}");
        }
        // The page says what the file runs.
        let flags = command.join(" ");
        assert!(
            compose_section.contains(&format!("`{flags}`")),
            "{doc}'s Compose section does not show {name}'s flags `{flags}`"
        );
        assert!(
            compose_section.contains(&format!("http://localhost:{host}")),
            "{doc}'s Compose section does not give {name}'s address http://localhost:{host}"
        );
    }
    host_ports.sort_unstable();
    assert_eq!(host_ports, NODE_PORTS, "the ports of 'Run several nodes'");
    for needle in [
        image,
        "appendonly yes",
        volume,
        "docker compose up",
        "/health",
        "tests/compose.rs",
        "Not checked",
    ] {
        assert!(
            compose_section.contains(needle),
            "{doc}'s Compose section does not mention {needle}"
        );
    }
    for port in NODE_PORTS {
        assert!(
            readme.contains(&format!("--port {port}")),
            "'Run several nodes' starts a node on {port}"
        );
    }
}

/// Runs a node's health-check script against `port` in place of the container's.
async fn health_check(script: &str, inside: u16, port: u16) -> common::tools::Run {
    let script = script.replace(
        &format!("/dev/tcp/127.0.0.1/{inside} "),
        &format!("/dev/tcp/127.0.0.1/{port} "),
    );
    let mut bash = Command::new("bash");
    bash.args(["-c", &script]);
    run(bash, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_health_check_passes_on_a_live_node_and_fails_without_redis() {
    let compose = match compose().await {
        Ok(compose) => compose,
        Err(reason) => return missing_tool(&reason),
    };
    if !succeeds("bash", &["-c", "true"]) {
        return missing_tool("bash is not installed");
    }
    if redis_missing() {
        return;
    }
    let inside = container_port();
    let scripts: Vec<String> = nodes(&compose)
        .iter()
        .map(|(name, service)| {
            strings(&service["healthcheck"]["test"], name)
                .pop()
                .expect("a script")
        })
        .collect();
    assert_eq!(scripts.len(), 2);
    let mut redis = RedisServer::start();
    let node = TestServer::with_args(&[
        "--engine",
        "redis",
        "--redis-url",
        &redis.url(),
        "--redis-timeout",
        "1",
    ])
    .await;
    let port = node.addr.port();
    for script in &scripts {
        let check = health_check(script, inside, port).await;
        assert!(check.success(), "{script}\n{}", check.describe());
    }
    redis.kill();
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.get("/health").await.status != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/health stays 200 without Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for script in &scripts {
        let check = health_check(script, inside, port).await;
        assert!(
            check.status.is_some_and(|s| !s.success()),
            "the health check passes on a node without Redis: {script}\n{}",
            check.describe()
        );
    }
    node.shutdown().await;
}
