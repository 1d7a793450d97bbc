//! Start-up: configuration, logging, the broker, serving and graceful shutdown.

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use pubsub::broker::Broker;
use pubsub::config::Config;
use pubsub::server;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

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
    tracing::info!(
        "listening on http://{addr} (API docs at http://{addr}/docs, WebSocket at ws://{addr}/ws)"
    );

    let broker = Broker::new(config.broker_config());
    server::serve(
        listener,
        broker,
        config.limits(),
        server::shutdown_signal(),
        config.shutdown_timeout(),
    )
    .await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
