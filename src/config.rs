//! Command-line flags, each with an environment-variable fallback.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::broker::{BrokerConfig, SlowConsumerPolicy};
use crate::http::Limits;

/// Room for the envelope around a message in a WebSocket frame or REST body.
pub const ENVELOPE_BYTES: usize = 4096;

/// An in-memory publish/subscribe broker: topics over REST, streaming over WebSocket at /ws,
/// API docs at /docs.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pubsub",
    version,
    after_help = "Logging: set RUST_LOG (default: info), e.g. RUST_LOG=debug or \
                  RUST_LOG=pubsub=debug,warp=info.\nEvery flag can also be set through the \
                  environment variable shown with it."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PUBSUB_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PUBSUB_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Messages kept per topic for replay and resume; 0 disables history.
    #[arg(long, env = "PUBSUB_HISTORY_SIZE", default_value_t = 100)]
    pub history_size: usize,

    /// Largest message accepted, in bytes of its JSON text.
    #[arg(long, env = "PUBSUB_MAX_MESSAGE_BYTES", default_value_t = 65536, value_parser = positive)]
    pub max_message_bytes: usize,

    /// Largest WebSocket frame a client may send; a larger one closes the connection with 1009.
    /// Default: the message limit plus 4 KiB for the envelope.
    #[arg(long, env = "PUBSUB_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Each connection's outbound queue, in bytes. Must hold at least one largest message.
    #[arg(
        long,
        env = "PUBSUB_SUBSCRIBER_QUEUE_BYTES",
        default_value_t = 1_048_576
    )]
    pub subscriber_queue_bytes: usize,

    /// What to do with a subscriber whose queue is full.
    #[arg(long, env = "PUBSUB_SLOW_CONSUMER", value_enum, default_value_t = SlowConsumer::Disconnect)]
    pub slow_consumer: SlowConsumer,

    /// Create a topic on first subscribe or publish instead of answering topic_not_found.
    #[arg(long, env = "PUBSUB_AUTO_CREATE_TOPICS",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub auto_create_topics: bool,

    /// Seconds to let connections finish after SIGTERM or Ctrl-C before exiting.
    #[arg(long, env = "PUBSUB_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumer {
    /// Close it with 1008 "slow consumer"; it resumes with since_seq.
    Disconnect,
    /// Drop messages for it and send a `lagged` notice once it catches up.
    Drop,
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl Config {
    /// Checks the flags against each other.
    pub fn validate(&self) -> Result<(), String> {
        let frame = self.limits().max_frame_bytes;
        if frame < self.max_message_bytes {
            return Err(format!(
                "--max-frame-bytes ({frame}) must be at least --max-message-bytes ({})",
                self.max_message_bytes
            ));
        }
        let needed = self.max_message_bytes + ENVELOPE_BYTES;
        if self.subscriber_queue_bytes < needed {
            return Err(format!(
                "--subscriber-queue-bytes ({}) must hold one largest message \
                 (--max-message-bytes {} plus {ENVELOPE_BYTES} for the envelope): at least {needed}",
                self.subscriber_queue_bytes, self.max_message_bytes
            ));
        }
        Ok(())
    }

    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            history_size: self.history_size,
            max_message_bytes: self.max_message_bytes,
            queue_bytes: self.subscriber_queue_bytes,
            slow_consumer: match self.slow_consumer {
                SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect,
                SlowConsumer::Drop => SlowConsumerPolicy::Drop,
            },
            auto_create_topics: self.auto_create_topics,
        }
    }

    pub fn limits(&self) -> Limits {
        let envelope = self.max_message_bytes + ENVELOPE_BYTES;
        Limits {
            max_frame_bytes: self.max_frame_bytes.unwrap_or(envelope),
            max_body_bytes: envelope,
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }
}
