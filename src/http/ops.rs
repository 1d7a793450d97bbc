//! Operational routes: health and statistics.

use warp::reply::{Reply, Response, json};
use warp::{Filter, filters::BoxedFilter};

use super::error::method_not_allowed;
use super::{AppState, with_state};
use crate::protocol::{ErrorCode, Health, Stats, TopicStats};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let get_only = || warp::any().map(|| method_not_allowed("GET"));
    let health = warp::path!("health").and(
        warp::get()
            .and(with_state(state.clone()))
            .map(health)
            .or(get_only())
            .unify(),
    );
    let stats = warp::path!("stats").and(
        warp::get()
            .and(with_state(state))
            .map(stats)
            .or(get_only())
            .unify(),
    );
    health.or(stats).unify().boxed()
}

/// Tells a load balancer the server is up.
#[utoipa::path(
    get, path = "/health", operation_id = "get_health", tag = "operations",
    responses((status = 200, description = "The server is healthy", body = Health))
)]
pub fn health(state: AppState) -> Response {
    json(&Health {
        status: "healthy".to_owned(),
        uptime_seconds: state.broker.uptime_seconds(),
    })
    .into_response()
}

/// Counters for every topic and for the server.
#[utoipa::path(
    get, path = "/stats", operation_id = "get_stats", tag = "operations",
    responses((status = 200, description = "The counters", body = Stats))
)]
pub fn stats(state: AppState) -> Response {
    let stats = state.broker.stats();
    json(&Stats {
        topics: stats
            .topics
            .iter()
            .map(|t| {
                let counts = TopicStats {
                    subscribers: t.subscribers,
                    messages_published: t.last_seq,
                    messages_in_history: t.in_history,
                };
                (t.name.to_string(), counts)
            })
            .collect(),
        connections: stats.connections,
        http_connections: state.connections.open(),
        http_connections_refused: state.connections.refused(),
        subscriptions: stats.subscriptions,
        messages_published: stats.counters.messages_published,
        messages_delivered: stats.counters.messages_delivered,
        messages_dropped: stats.counters.messages_dropped,
        slow_consumers_disconnected: stats.counters.slow_consumers_disconnected,
        dead_connections_closed: stats.counters.dead_connections_closed,
        errors: ErrorCode::ALL
            .iter()
            .map(|&code| (code.as_str().to_owned(), stats.counters.errors(code)))
            .collect(),
        uptime_seconds: stats.uptime_seconds,
    })
    .into_response()
}
