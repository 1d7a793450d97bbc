//! Command-line flags, each with an environment-variable fallback.

mod auth;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::broker::{Broker, BrokerConfig, RedisConfig, RedisTarget, SlowConsumerPolicy};
use crate::http::{Limits, Liveness, Origin, Origins, PublishRate};
use crate::server::{Edge, Tls};
pub use auth::{AuthFlags, Secret};

/// Room for the envelope around a message in a WebSocket frame or REST body.
pub const ENVELOPE_BYTES: usize = 4096;

/// TCP connections allowed beyond the WebSocket limit by default: for REST clients, metrics
/// scrapes and handshakes in progress while every WebSocket place is taken. Each costs a file
/// descriptor and a few KiB, so 1024 more is small next to 10000 WebSockets.
pub const HTTP_CONNECTIONS_BEYOND_WEBSOCKETS: usize = 1024;

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

    /// Bytes of history one topic may hold: each message's frame plus 128 bytes of
    /// bookkeeping. Past it the topic's oldest messages go. Must hold one largest message.
    #[arg(long, env = "PUBSUB_HISTORY_BYTES_PER_TOPIC", default_value_t = 8 * 1024 * 1024,
          value_parser = positive)]
    pub history_bytes_per_topic: usize,

    /// Bytes of history all topics together may hold (memory engine). Past it the oldest
    /// messages go: first those of the topic being published to, down to its fair share, then
    /// those of the topics holding the most.
    #[arg(long, env = "PUBSUB_HISTORY_BYTES_TOTAL", default_value_t = 256 * 1024 * 1024,
          value_parser = positive)]
    pub history_bytes_total: usize,

    /// Largest message accepted, in bytes of its JSON text.
    #[arg(long, env = "PUBSUB_MAX_MESSAGE_BYTES", default_value_t = 65536, value_parser = positive)]
    pub max_message_bytes: usize,

    /// Largest WebSocket frame a client may send; a larger one closes the connection with 1009.
    /// Default: the message limit plus 4 KiB for the envelope.
    #[arg(long, env = "PUBSUB_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,

    /// Largest REST request body; a larger one is answered 413 payload_too_large.
    /// Default: the message limit plus 4 KiB for the envelope.
    #[arg(long, env = "PUBSUB_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Longest request_id accepted, in bytes; a longer one is a bad_request.
    #[arg(long, env = "PUBSUB_MAX_REQUEST_ID_BYTES", default_value_t = 128, value_parser = positive)]
    pub max_request_id_bytes: usize,

    /// Deepest nesting of arrays and objects in a frame or body, the envelope counting as one
    /// level; deeper is a bad_request. At most 128.
    #[arg(long, env = "PUBSUB_MAX_JSON_DEPTH", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(2..=128))]
    pub max_json_depth: u16,

    /// Most WebSocket connections open at once; more are refused with 503 too_many_connections.
    #[arg(long, env = "PUBSUB_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = positive)]
    pub max_connections: usize,

    /// Most TCP connections open at once, of every kind (WebSocket, HTTP/1, HTTP/2); more are
    /// closed as soon as they are accepted, and counted. Must be above --max-connections.
    /// Default: --max-connections plus 1024.
    #[arg(long, env = "PUBSUB_MAX_HTTP_CONNECTIONS", value_parser = positive)]
    pub max_http_connections: Option<usize>,

    /// Most topics one connection may subscribe to; more get a too_many_subscriptions error.
    #[arg(long, env = "PUBSUB_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 128,
          value_parser = positive)]
    pub max_subscriptions_per_connection: usize,

    /// Most topics at once; creating another is answered 507 too_many_topics.
    #[arg(long, env = "PUBSUB_MAX_TOPICS", default_value_t = 10_000, value_parser = positive)]
    pub max_topics: usize,

    /// Publishes per second each WebSocket connection may make (a token bucket); over it, a
    /// publish gets a rate_limited error and is not published. Unlimited when not set.
    #[arg(long, env = "PUBSUB_PUBLISH_RATE", value_parser = positive_f64)]
    pub publish_rate: Option<f64>,

    /// Publishes a connection may make in a burst under --publish-rate. Default: one second's
    /// worth (at least 1).
    #[arg(long, env = "PUBSUB_PUBLISH_BURST", value_parser = positive, requires = "publish_rate")]
    pub publish_burst: Option<usize>,

    /// REST publishes per second each client address may make (a token bucket; an IPv6 client
    /// counts by its /64); over it, 429 rate_limited with Retry-After, and nothing is
    /// published. Behind a proxy every client has the proxy's address. Unlimited when not set.
    #[arg(long, env = "PUBSUB_REST_PUBLISH_RATE", value_parser = positive_f64)]
    pub rest_publish_rate: Option<f64>,

    /// REST publishes a client address may make in a burst under --rest-publish-rate.
    /// Default: one second's worth (at least 1).
    #[arg(long, env = "PUBSUB_REST_PUBLISH_BURST", value_parser = positive,
          requires = "rest_publish_rate")]
    pub rest_publish_burst: Option<usize>,

    /// Seconds between the server's WebSocket pings (and HTTP/2 pings); 0 sends none.
    #[arg(long, env = "PUBSUB_PING_INTERVAL", default_value = "25", value_parser = seconds)]
    pub ping_interval: Duration,

    /// Seconds a client has to answer a ping (with a pong or any frame) before it is closed
    /// with 1008 "ping timeout" and its subscriptions freed (an HTTP/2 connection is dropped).
    #[arg(long, env = "PUBSUB_PING_TIMEOUT", default_value = "8", value_parser = positive_seconds)]
    pub ping_timeout: Duration,

    /// Seconds a client has to send a request's headers, and its body; a stalled one is
    /// dropped (headers) or answered 408 request_timeout (body). An HTTP/1 or HTTP/2
    /// connection with no request for this long is closed.
    #[arg(long, env = "PUBSUB_REQUEST_TIMEOUT", default_value = "30", value_parser = positive_seconds)]
    pub request_timeout: Duration,

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
    #[arg(long, env = "PUBSUB_SHUTDOWN_TIMEOUT", default_value = "30", value_parser = seconds)]
    pub shutdown_timeout: Duration,

    /// Where topics, seqs and history live: `memory` (this process, nothing else to run) or
    /// `redis` (Redis or a Redis Cluster: several nodes serve one API).
    #[arg(long, env = "PUBSUB_ENGINE", value_enum, default_value_t = EngineKind::Memory)]
    pub engine: EngineKind,

    /// With --engine redis: the Redis to use, `redis://[user:password@]host:port/db` or
    /// `rediss://...` for TLS.
    #[arg(
        long,
        env = "PUBSUB_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0",
        conflicts_with = "redis_cluster"
    )]
    pub redis_url: String,

    /// With --engine redis: seed URLs of a Redis Cluster instead of --redis-url (repeat the
    /// flag, or separate with commas).
    #[arg(long, env = "PUBSUB_REDIS_CLUSTER", value_delimiter = ',', num_args = 1..)]
    pub redis_cluster: Vec<String>,

    /// With --engine redis: the start of every key and channel, so deployments can share a
    /// Redis.
    #[arg(long, env = "PUBSUB_REDIS_PREFIX", default_value = "pubsub")]
    pub redis_prefix: String,

    /// With --engine redis: seconds any call to Redis may take; past it the operation answers
    /// 503 engine_unavailable and /health reports the node unavailable.
    #[arg(long, env = "PUBSUB_REDIS_TIMEOUT", default_value = "2", value_parser = positive_seconds)]
    pub redis_timeout: Duration,

    // --- Authentication (tokens and rights) ---
    #[command(flatten)]
    pub auth: AuthFlags,

    /// With tokens required: let anyone read /metrics (otherwise it needs an admin token).
    #[arg(long, env = "PUBSUB_PUBLIC_METRICS",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub public_metrics: bool,
    // --- end of authentication ---
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, env = "PUBSUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    // --- TLS and browser origins (see `server::tls` and `http::origin`) ---
    /// PEM file with the server's certificate (and any intermediates after it): serve HTTPS
    /// and WSS instead of HTTP and WS, HTTP/2 offered by ALPN. Needs --tls-key.
    #[arg(long, env = "PUBSUB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PUBSUB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// A web origin (`https://app.example.com`) whose pages may use this server besides its
    /// own; repeat the flag, or separate with commas. A WebSocket handshake or REST request
    /// from any other page gets 403 forbidden_origin; one without `Origin` (not from a browser)
    /// is served. Allowed origins get CORS answers.
    #[arg(long = "allowed-origin", env = "PUBSUB_ALLOWED_ORIGINS", value_delimiter = ',',
          value_parser = Origin::parse)]
    pub allowed_origins: Vec<Origin>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// Everything in this process: one node, nothing else to run.
    Memory,
    /// Redis or a Redis Cluster: any number of nodes, one API.
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        Ok(_) => Err("must be a number above 0".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds, fractions allowed ("0.5").
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let n: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(n).map_err(|_| "must be a number of seconds, 0 or more".to_owned())
}

fn positive_seconds(s: &str) -> Result<Duration, String> {
    match seconds(s)? {
        Duration::ZERO => Err("must be above 0".to_owned()),
        d => Ok(d),
    }
}

impl Config {
    /// Checks the flags against each other.
    pub fn validate(&self) -> Result<(), String> {
        let limits = self.limits();
        for (flag, value) in [
            ("--max-frame-bytes", limits.max_frame_bytes),
            ("--max-body-bytes", limits.max_body_bytes),
        ] {
            if value < self.max_message_bytes {
                return Err(format!(
                    "{flag} ({value}) must be at least --max-message-bytes ({})",
                    self.max_message_bytes
                ));
            }
        }
        if limits.max_http_connections <= self.max_connections {
            return Err(format!(
                "--max-http-connections ({}) must be more than --max-connections ({}): every \
                 WebSocket is one of those connections, and refusing one more needs another",
                limits.max_http_connections, self.max_connections
            ));
        }
        let needed = self.max_message_bytes + ENVELOPE_BYTES;
        if self.history_bytes_per_topic < needed {
            return Err(format!(
                "--history-bytes-per-topic ({}) must hold one largest message \
                 (--max-message-bytes {} plus {ENVELOPE_BYTES} for the envelope): at least {needed}",
                self.history_bytes_per_topic, self.max_message_bytes
            ));
        }
        if self.history_bytes_total < self.history_bytes_per_topic {
            return Err(format!(
                "--history-bytes-total ({}) must be at least --history-bytes-per-topic ({})",
                self.history_bytes_total, self.history_bytes_per_topic
            ));
        }
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
            history_bytes_per_topic: self.history_bytes_per_topic,
            history_bytes_total: self.history_bytes_total,
            max_message_bytes: self.max_message_bytes,
            queue_bytes: self.subscriber_queue_bytes,
            slow_consumer: match self.slow_consumer {
                SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect,
                SlowConsumer::Drop => SlowConsumerPolicy::Drop,
            },
            auto_create_topics: self.auto_create_topics,
            max_topics: self.max_topics,
            max_connections: self.max_connections,
            max_subscriptions_per_connection: self.max_subscriptions_per_connection,
        }
    }

    /// Where the Redis engine keeps its data; `None` on the memory engine.
    pub fn redis_config(&self) -> Option<RedisConfig> {
        if self.engine != EngineKind::Redis {
            return None;
        }
        let target = if self.redis_cluster.is_empty() {
            RedisTarget::Single(self.redis_url.clone())
        } else {
            RedisTarget::Cluster(self.redis_cluster.clone())
        };
        Some(RedisConfig {
            target,
            prefix: self.redis_prefix.clone(),
            timeout: self.redis_timeout,
        })
    }

    /// The broker these flags describe: on the memory engine at once, on Redis once connected
    /// (a wrong URL or an unreachable Redis is an error with a one-line reason).
    pub async fn broker(&self) -> Result<Broker, String> {
        match self.redis_config() {
            None => Ok(Broker::new(self.broker_config())),
            Some(redis) => Broker::with_redis(self.broker_config(), redis).await,
        }
    }

    /// Tokens and rights: required when a key is configured, else open.
    pub fn auth(&self) -> Result<crate::auth::Auth, String> {
        self.auth.auth(self.public_metrics)
    }

    /// TLS (the certificate and key read and checked now) and the allowed origins. Errors are
    /// one line naming the flag.
    pub fn edge(&self) -> Result<Edge, String> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Tls::from_pem_files(cert, key, self.request_timeout)?),
            (Some(_), None) => return Err("--tls-cert needs --tls-key (its private key)".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert (its certificate)".into()),
        };
        Ok(Edge {
            tls,
            origins: Origins::new(self.allowed_origins.clone()),
        })
    }

    pub fn limits(&self) -> Limits {
        let envelope = self.max_message_bytes + ENVELOPE_BYTES;
        Limits {
            max_frame_bytes: self.max_frame_bytes.unwrap_or(envelope),
            max_body_bytes: self.max_body_bytes.unwrap_or(envelope),
            max_request_id_bytes: self.max_request_id_bytes,
            max_json_depth: usize::from(self.max_json_depth),
            publish_rate: self
                .publish_rate
                .map(|per_second| PublishRate::new(per_second, self.publish_burst)),
            rest_publish_rate: self
                .rest_publish_rate
                .map(|per_second| PublishRate::new(per_second, self.rest_publish_burst)),
            liveness: (!self.ping_interval.is_zero()).then_some(Liveness {
                ping_interval: self.ping_interval,
                ping_timeout: self.ping_timeout,
            }),
            request_timeout: self.request_timeout,
            max_http_connections: self.max_http_connections.unwrap_or(
                self.max_connections
                    .saturating_add(HTTP_CONNECTIONS_BEYOND_WEBSOCKETS),
            ),
        }
    }
}
