//! Start-up: configuration, logging, the broker, serving and graceful shutdown.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use pubsub::config::{Config, LogFormat};
use pubsub::server;

fn main() -> ExitCode {
    // `pubsub sub|pub|topics|history ...` are client commands; anything else starts the server.
    if let Some(code) = pubsub::cli::run_if_command() {
        return code;
    }
    serve()
}

#[tokio::main]
async fn serve() -> ExitCode {
    let config = parse_config();
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    init_logging(config.log_format);
    let auth = match config.auth() {
        Ok(auth) => auth,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // rediss:// connections use rustls; one process-wide crypto provider (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let edge = match config.edge() {
        Ok(edge) => edge,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if edge.tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    // A panic anywhere (a connection's task, say) is contained by its task; log it like
    // everything else so it shows up in the structured logs.
    std::panic::set_hook(Box::new(|panic| tracing::error!(%panic, "panic")));
    raise_open_file_limit(config.limits().max_http_connections);

    let listener = match TcpListener::bind((config.host, config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("cannot listen on {}:{}: {e}", config.host, config.port);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!("cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (http, ws) = scheme;
    tracing::info!(
        "listening on {http}://{addr} (API docs at {http}://{addr}/docs, WebSocket at \
         {ws}://{addr}/ws)"
    );

    let broker = match config.broker().await {
        Ok(broker) => broker,
        Err(e) => {
            tracing::error!("cannot start the {:?} engine: {e}", config.engine);
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        engine = broker.engine_name(),
        node = broker.node_id(),
        "engine ready"
    );
    match auth.is_on() {
        true => tracing::info!("tokens required on /ws and the REST API (see --auth-*)"),
        false => tracing::warn!(
            "no --auth-hmac-secret, --auth-hmac-secret-file or --auth-public-key: anyone who \
             reaches this port may publish, subscribe and delete topics"
        ),
    }
    server::serve(
        listener,
        broker,
        config.limits(),
        auth,
        edge,
        server::shutdown_signal(),
        config.shutdown_timeout,
    )
    .await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The server's flags; its `--help` also points at the client commands.
fn parse_config() -> Config {
    let command = Config::command();
    let note = match command.get_after_help() {
        Some(help) => format!("{help}\n\n{}", pubsub::cli::SERVER_HELP_NOTE),
        None => pubsub::cli::SERVER_HELP_NOTE.to_owned(),
    };
    let matches = command.after_help(note).get_matches();
    Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// Each connection is a file descriptor. Raise the soft limit on open files to the hard limit
/// (as far as the system lets an unprivileged process) and say how many connections fit.
fn raise_open_file_limit(max_http_connections: usize) {
    /// Descriptors kept for the listener, logs and the runtime.
    const RESERVED: u64 = 64;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!("cannot read or raise the open-file limit: {e}");
            return;
        }
    };
    let capacity = limit.saturating_sub(RESERVED);
    tracing::info!(
        open_file_limit = limit,
        max_http_connections,
        "room for about {capacity} connections"
    );
    if capacity < max_http_connections as u64 {
        tracing::warn!(
            "--max-http-connections ({max_http_connections}) exceeds what the open-file limit \
             ({limit}) allows; raise the hard limit (ulimit -Hn, or LimitNOFILE= in systemd)"
        );
    }
}
