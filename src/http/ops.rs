//! Operational routes: health and statistics.

use std::time::Duration;

use time::OffsetDateTime;
use warp::http::StatusCode;
use warp::reply::{Reply, Response, json, with_status};
use warp::{Filter, filters::BoxedFilter};

use super::authenticate::{Caller, authorize, caller};
use super::error::{ApiError, method_not_allowed};
use super::{AppState, with_state};
use crate::auth::Need;
use crate::protocol::{
    ErrorCode, ErrorResponse, Health, NodeStats, Stats, TopicStats, format_timestamp,
};

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
            .and(caller(state.auth.clone()))
            .and(with_state(state))
            .then(stats)
            .or(get_only())
            .unify(),
    );
    health.or(stats).unify().boxed()
}

/// Tells a load balancer whether this node can serve.
///
/// 503 with the reason while its engine (Redis) does not answer, so traffic goes to another
/// node.
#[utoipa::path(
    get, path = "/health", operation_id = "get_health", tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The node is healthy", body = Health),
        (status = 503, description = "The node's engine is unavailable; `reason` says why", body = Health),
    )
)]
pub fn health(state: AppState) -> Response {
    let reason = state.broker.unavailable();
    let status = if reason.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        status: if reason.is_some() {
            "unavailable"
        } else {
            "healthy"
        }
        .to_owned(),
        engine: state.broker.engine_name().to_owned(),
        reason,
        uptime_seconds: state.broker.uptime_seconds(),
    };
    with_status(json(&body), status).into_response()
}

/// Counters for every topic and for the server.
///
/// Topics, subscriptions and nodes cover every live node; connections, message counters and
/// errors are this node's alone.
#[utoipa::path(
    get, path = "/stats", operation_id = "get_stats", tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The counters", body = Stats),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `admin` right", body = ErrorResponse),
        (status = 503, description = "`engine_unavailable`", body = ErrorResponse),
    )
)]
pub async fn stats(caller: Caller, state: AppState) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Admin) {
        return e.into_response();
    }
    let stats = match state.broker.stats().await {
        Ok(stats) => stats,
        Err(e) => return ApiError::from(e).into_response(),
    };
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
        tls: state.connections.tls(),
        tls_handshakes_failed: state.connections.tls_handshakes_failed(),
        subscriptions: stats.subscriptions,
        node_id: stats.node_id,
        engine: state.broker.engine_name().to_owned(),
        nodes: stats
            .nodes
            .into_iter()
            .map(|n| NodeStats {
                id: n.id,
                connections: n.connections,
                subscriptions: n.subscriptions,
                last_seen: format_timestamp(
                    OffsetDateTime::UNIX_EPOCH + Duration::from_millis(n.last_seen_ms),
                ),
            })
            .collect(),
        messages_published: stats.counters.messages_published,
        messages_delivered: stats.counters.messages_delivered,
        messages_dropped: stats.counters.messages_dropped,
        slow_consumers_disconnected: stats.counters.slow_consumers_disconnected,
        dead_connections_closed: stats.counters.dead_connections_closed,
        history_bytes: stats.history_bytes,
        errors: ErrorCode::ALL
            .iter()
            .map(|&code| (code.as_str().to_owned(), stats.counters.errors(code)))
            .collect(),
        uptime_seconds: stats.uptime_seconds,
    })
    .into_response()
}
