//! `GET /metrics`: the broker's counters in the Prometheus text exposition format.
//!
//! Nothing is counted twice: a collector reads the broker's own counters (the ones `/stats`
//! shows) at scrape time, and prometheus-client writes the format.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text::{CONTENT_TYPE, encode};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};
use warp::{Filter, filters::BoxedFilter};

use super::authenticate::{authorize_admin_unless, caller};
use super::connections::Connections;
use super::error::{ApiError, method_not_allowed};
use crate::auth::Auth;
use crate::broker::{Broker, LATENCY_BOUNDS_NANOS};
use crate::protocol::{ErrorCode, ErrorResponse};

pub fn routes(
    broker: Broker,
    connections: Arc<Connections>,
    auth: Auth,
) -> BoxedFilter<(Response,)> {
    let mut registry = Registry::with_prefix("pubsub");
    registry.register_collector(Box::new(BrokerCollector(broker, connections)));
    let registry = Arc::new(registry);
    let open = auth.metrics_public();
    warp::path!("metrics")
        .and(
            warp::get()
                .and(caller(auth.clone()))
                .map(
                    move |caller| match authorize_admin_unless(&auth, &caller, open) {
                        Ok(()) => metrics(&registry),
                        Err(e) => e.into_response(),
                    },
                )
                .or(warp::any().map(|| method_not_allowed("GET")))
                .unify(),
        )
        .boxed()
}

/// Prometheus metrics.
///
/// Connections, subscriptions, topics, message counters, errors by code and the publish latency
/// histogram, in the Prometheus text format; every figure is this node's.
#[utoipa::path(
    get, path = "/metrics", operation_id = "get_metrics", tag = "operations",
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "The metrics, in the Prometheus text exposition format (version 0.0.4)",
            body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8",
            example = "# HELP pubsub_connections Open WebSocket connections.\n# TYPE pubsub_connections gauge\npubsub_connections 3\n"
        ),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came (not with `--public-metrics`)", body = ErrorResponse),
        (status = 403, description = "`forbidden`: the token is not an admin's (not with `--public-metrics`)", body = ErrorResponse),
    )
)]
pub fn metrics(registry: &Registry) -> Response {
    let mut text = String::new();
    if let Err(e) = encode(&mut text, registry) {
        return ApiError::new(ErrorCode::Internal, format!("cannot encode metrics: {e}"))
            .into_response();
    }
    let mut response = Response::new(text.into());
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Reads the broker, and the server's count of TCP connections, at every scrape.
struct BrokerCollector(Broker, Arc<Connections>);

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerCollector")
    }
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.local_stats();
        let c = &stats.counters;
        let node = [("node", self.0.node_id()), ("engine", self.0.engine_name())];
        ConstGauge::new(1).encode(
            encoder
                .encode_descriptor(
                    "node",
                    "This node's id and engine; every other figure is this node's alone.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_family(&node)?,
        )?;
        let mut gauges = vec![
            (
                "connections",
                "Open WebSocket connections.",
                stats.connections,
            ),
            (
                "subscriptions",
                "Subscriptions of this node's connections.",
                stats.subscriptions,
            ),
            (
                "http_connections",
                "Open TCP connections of every kind: WebSocket, HTTP/1 and HTTP/2.",
                self.1.open(),
            ),
        ];
        if let Some(topics) = stats.topics {
            gauges.push(("topics", "Topics that exist.", topics));
        }
        if let Some(bytes) = stats.history_bytes {
            gauges.push((
                "history_bytes",
                "Bytes every topic's history holds (frames plus 128 bytes each).",
                bytes,
            ));
        }
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let counters = [
            (
                "messages_published",
                "Messages published (REST and WebSocket).",
                c.messages_published,
            ),
            (
                "messages_delivered",
                "Message frames written to subscribers, replays included.",
                c.messages_delivered,
            ),
            (
                "messages_dropped",
                "Messages dropped for slow subscribers (policy drop).",
                c.messages_dropped,
            ),
            (
                "slow_consumers_disconnected",
                "Connections closed as slow consumers (policy disconnect).",
                c.slow_consumers_disconnected,
            ),
            (
                "dead_connections_closed",
                "Connections closed for not answering pings.",
                c.dead_connections_closed,
            ),
            (
                "http_connections_refused",
                "Connections closed on arrival because --max-http-connections were open.",
                self.1.refused(),
            ),
            (
                "tls_handshakes_failed",
                "Connections closed because their TLS handshake failed or took too long.",
                self.1.tls_handshakes_failed(),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }

        let mut errors = encoder.encode_descriptor(
            "errors",
            "Errors answered over REST and WebSocket, by code.",
            None,
            MetricType::Counter,
        )?;
        for code in ErrorCode::ALL {
            let labels = [("code", code.as_str())];
            ConstCounter::new(c.errors(code)).encode(errors.encode_family(&labels)?)?;
        }

        let latency = &c.publish_latency;
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_NANOS
            .iter()
            .map(|&nanos| nanos as f64 / 1e9)
            .zip(latency.buckets)
            .collect();
        encoder
            .encode_descriptor(
                "publish_latency",
                "Time from a publish reaching the broker to its message being queued for every subscriber.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                latency.sum_nanos as f64 / 1e9,
                latency.count(),
                &buckets,
                None,
            )
    }
}
