//! Topic and message routes, each filter next to its handler and its OpenAPI description.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response, json, with_status};
use warp::{Filter, filters::BoxedFilter};

use super::authenticate::{Caller, authorize, caller};
use super::error::{ApiError, method_not_allowed};
use super::{AppState, PeerAddr, PublishRate, body, with_state};
use crate::auth::Need;
use crate::broker::TopicInfo;
use crate::protocol::{
    CreateTopicRequest, ErrorCode, ErrorResponse, History, HistoryMessage, MessageFrame,
    PublishRequest, Published, Topic, TopicDeleted, TopicDetails, TopicList,
};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let limits = state.limits;
    let caller = caller(state.auth.clone());
    let state = with_state(state);

    let collection = warp::path!("topics");
    let create = collection
        .and(warp::post())
        .and(caller.clone())
        .and(body::json(limits))
        .and(state.clone())
        .then(create_topic);
    let list = collection
        .and(warp::get())
        .and(caller.clone())
        .and(state.clone())
        .then(list_topics);
    let collection_other = collection.map(|| method_not_allowed("GET, POST"));

    let one = warp::path!("topics" / TopicParam).map(TopicParam::into_name);
    let get = one
        .and(warp::get())
        .and(caller.clone())
        .and(state.clone())
        .then(get_topic);
    let delete = one
        .and(warp::delete())
        .and(caller.clone())
        .and(state.clone())
        .then(delete_topic);
    let one_other = one.map(|_| method_not_allowed("GET, DELETE"));

    let messages = warp::path!("topics" / TopicParam / "messages").map(TopicParam::into_name);
    let publish = messages
        .and(warp::post())
        .and(caller.clone())
        .and(warp::ext::optional::<PeerAddr>())
        .and(body::json(limits))
        .and(state.clone())
        .then(publish_message);
    let read = messages
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(caller)
        .and(state)
        .then(list_messages);
    let messages_other = messages.map(|_| method_not_allowed("GET, POST"));

    create
        .or(list)
        .unify()
        .or(collection_other)
        .unify()
        .or(get)
        .unify()
        .or(delete)
        .unify()
        .or(one_other)
        .unify()
        .or(publish)
        .unify()
        .or(read)
        .unify()
        .or(messages_other)
        .unify()
        .boxed()
}

/// A topic name taken from a path segment, percent-decoded (clients may escape `:`). A segment
/// that does not decode to UTF-8 is kept as it is, and fails the name rules with `invalid_topic`.
struct TopicParam(String);

impl std::str::FromStr for TopicParam {
    type Err = std::convert::Infallible;

    fn from_str(segment: &str) -> Result<Self, Self::Err> {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8();
        Ok(TopicParam(
            decoded.map_or_else(|_| segment.to_owned(), |d| d.into_owned()),
        ))
    }
}

impl TopicParam {
    fn into_name(self) -> String {
        self.0
    }
}

fn topic_body(info: &TopicInfo) -> Topic {
    Topic {
        name: info.name.to_string(),
        subscriber_count: info.subscribers,
    }
}

/// Creates a topic.
///
/// The name is 1 to 128 characters of letters, digits, `.`, `_`, `-` and `:`. The topic starts
/// empty, at seq 0, with a new `epoch`; subscribers may join it over the WebSocket at once.
#[utoipa::path(
    post, path = "/topics", operation_id = "create_topic", tag = "topics",
    request_body = CreateTopicRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The topic was created", body = Topic),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `admin` right", body = ErrorResponse),
        (status = 400, description = "`invalid_topic` or `bad_request`", body = ErrorResponse),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorResponse),
        (status = 409, description = "`topic_exists`", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = ErrorResponse),
        (status = 503, description = "`engine_unavailable`: Redis did not answer; nothing was done", body = ErrorResponse),
        (status = 507, description = "`too_many_topics`: the server holds `--max-topics` already", body = ErrorResponse),
    )
)]
pub async fn create_topic(
    caller: Caller,
    body: Result<CreateTopicRequest, ApiError>,
    state: AppState,
) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Admin) {
        return e.into_response();
    }
    let result = match body {
        Ok(req) => state
            .broker
            .create_topic(&req.name)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(StatusCode::CREATED, result.map(|info| topic_body(&info)))
}

/// Lists every topic, sorted by name.
///
/// Each with the number of WebSocket subscribers it has across every node.
#[utoipa::path(
    get, path = "/topics", operation_id = "list_topics", tag = "topics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every topic", body = TopicList),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `admin` right", body = ErrorResponse),
        (status = 503, description = "`engine_unavailable`", body = ErrorResponse),
    )
)]
pub async fn list_topics(caller: Caller, state: AppState) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Admin) {
        return e.into_response();
    }
    let result = state.broker.topics().await.map(|topics| TopicList {
        topics: topics.iter().map(topic_body).collect(),
    });
    respond(StatusCode::OK, result.map_err(ApiError::from))
}

/// Shows one topic.
///
/// Its subscriber count, its last seq, its `epoch`, and the seqs history holds.
#[utoipa::path(
    get, path = "/topics/{name}", operation_id = "get_topic", tag = "topics",
    params(("name" = String, Path, description = "Topic name", min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The topic", body = TopicDetails),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `subscribe` right covering this topic", body = ErrorResponse),
        (status = 400, description = "`invalid_topic`", body = ErrorResponse),
        (status = 404, description = "`topic_not_found`", body = ErrorResponse),
        (status = 503, description = "`engine_unavailable`", body = ErrorResponse),
    )
)]
pub async fn get_topic(name: String, caller: Caller, state: AppState) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Subscribe(&name)) {
        return e.into_response();
    }
    let result = state.broker.topic(&name).await.map(|info| TopicDetails {
        name: info.name.to_string(),
        subscriber_count: info.subscribers,
        messages_published: info.last_seq,
        messages_in_history: info.in_history,
        last_seq: info.last_seq,
        epoch: info.epoch.to_string(),
    });
    respond(StatusCode::OK, result.map_err(ApiError::from))
}

/// Deletes a topic. Its subscribers receive `topic_deleted` and are unsubscribed.
///
/// Its history goes with it. A topic created again later by the same name has a new `epoch`.
#[utoipa::path(
    delete, path = "/topics/{name}", operation_id = "delete_topic", tag = "topics",
    params(("name" = String, Path, description = "Topic name", min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The topic was deleted", body = TopicDeleted),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `admin` right", body = ErrorResponse),
        (status = 400, description = "`invalid_topic`", body = ErrorResponse),
        (status = 404, description = "`topic_not_found`", body = ErrorResponse),
        (status = 503, description = "`engine_unavailable`", body = ErrorResponse),
    )
)]
pub async fn delete_topic(name: String, caller: Caller, state: AppState) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Admin) {
        return e.into_response();
    }
    let result = state
        .broker
        .delete_topic(&name)
        .await
        .map(|()| TopicDeleted {
            name,
            deleted: true,
        });
    respond(StatusCode::OK, result.map_err(ApiError::from))
}

/// Publishes a message, delivered to subscribers exactly like a WebSocket publish.
///
/// The message is any JSON value up to `--max-message-bytes`; the answer gives the seq it was
/// given, which is also its place in history.
#[utoipa::path(
    post, path = "/topics/{name}/messages", operation_id = "publish_message", tag = "messages",
    params(("name" = String, Path, description = "Topic name", min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")),
    request_body = PublishRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Published", body = Published),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `publish` right covering this topic", body = ErrorResponse),
        (status = 400, description = "`invalid_topic` or `bad_request`", body = ErrorResponse),
        (status = 404, description = "`topic_not_found` (unless topics are auto-created)", body = ErrorResponse),
        (status = 408, description = "`request_timeout`: the body did not arrive in time", body = ErrorResponse),
        (status = 413, description = "`message_too_large` or `payload_too_large`", body = ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: this client address publishes faster than `--rest-publish-rate`; nothing was published", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until a publish from this address would be accepted"))),
        (status = 503, description = "`engine_unavailable`: Redis did not answer in time; the message may or may not have been published", body = ErrorResponse),
        (status = 507, description = "`too_many_topics` (when auto-creating the topic)", body = ErrorResponse),
    )
)]
pub async fn publish_message(
    name: String,
    caller: Caller,
    peer: Option<PeerAddr>,
    body: Result<PublishRequest, ApiError>,
    state: AppState,
) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Publish(&name)) {
        return e.into_response();
    }
    let req = match body {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    if let Some(budgets) = &state.rest_publishes
        && let Err(wait) = budgets.try_take(peer.map(|p| p.0.ip()), Instant::now())
    {
        return rate_limited(budgets.rate(), wait);
    }
    let result = state
        .broker
        .publish(&name, &req.message)
        .await
        .map_err(ApiError::from);
    respond(
        StatusCode::CREATED,
        result.map(|p| Published {
            topic: name,
            seq: p.seq,
            epoch: p.epoch.to_string(),
        }),
    )
}

/// 429 for a publish over its address's budget, with `Retry-After` in whole seconds (at least 1).
fn rate_limited(rate: PublishRate, wait: Duration) -> Response {
    let message = format!(
        "publishing faster than {} per second (bursts of {}) from this address; nothing was \
         published",
        rate.per_second, rate.burst
    );
    let mut response = ApiError::new(ErrorCode::RateLimited, message).into_response();
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// Reads history: the messages held with seq above `since_seq`, oldest first.
///
/// At most `limit` of them; `first_seq` tells whether history still reaches back to
/// `since_seq` or older messages are gone.
#[utoipa::path(
    get, path = "/topics/{name}/messages", operation_id = "list_messages", tag = "messages",
    params(
        ("name" = String, Path, description = "Topic name", min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$"),
        ("since_seq" = Option<u64>, Query, format = "uint64", minimum = 0, maximum = 18446744073709551615_u64, description = "Only messages with a greater seq (default 0)"),
        ("limit" = Option<u64>, Query, format = "uint64", minimum = 0, maximum = 18446744073709551615_u64, description = "At most this many (default and maximum: the history size)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The messages", body = History),
        (status = 401, description = "`unauthorized`: tokens are required and none valid came", body = ErrorResponse,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"pubsub\"`"))),
        (status = 403, description = "`forbidden`: the token has no `subscribe` right covering this topic", body = ErrorResponse),
        (status = 400, description = "`invalid_topic`, or `bad_request` for a bad parameter", body = ErrorResponse),
        (status = 404, description = "`topic_not_found`", body = ErrorResponse),
        (status = 503, description = "`engine_unavailable`", body = ErrorResponse),
    )
)]
pub async fn list_messages(
    name: String,
    query: String,
    caller: Caller,
    state: AppState,
) -> Response {
    if let Err(e) = authorize(&state.auth, &caller, Need::Subscribe(&name)) {
        return e.into_response();
    }
    respond(StatusCode::OK, read_history(name, &query, &state).await)
}

async fn read_history(name: String, query: &str, state: &AppState) -> Result<History, ApiError> {
    let history_size = state.broker.config().history_size;
    let q = HistoryQuery::parse(query)?;
    let limit = q
        .limit
        .map_or(history_size, |l| l.min(history_size as u64) as usize);
    let page = state
        .broker
        .history(&name, q.since_seq.unwrap_or(0), limit)
        .await?;
    let messages = page
        .messages
        .iter()
        .map(history_message)
        .collect::<Result<_, _>>()?;
    Ok(History {
        topic: name,
        messages,
        last_seq: page.last_seq,
    })
}

fn history_message(p: &Arc<MessageFrame>) -> Result<HistoryMessage, ApiError> {
    let message = RawValue::from_string(p.message().to_owned())
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(HistoryMessage {
        seq: p.seq,
        message,
        published_at: p.published_at().to_owned(),
    })
}

/// `since_seq` and `limit`, each a non-negative integer; other parameters are ignored.
#[derive(Debug, Default, PartialEq)]
struct HistoryQuery {
    since_seq: Option<u64>,
    limit: Option<u64>,
}

impl HistoryQuery {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        let mut q = HistoryQuery::default();
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "since_seq" => &mut q.since_seq,
                "limit" => &mut q.limit,
                _ => continue,
            };
            *slot = Some(value.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter '{key}' must be a non-negative integer, not '{value}'"
                ))
            })?);
        }
        Ok(q)
    }
}

/// Answers `value` as JSON with `status`, or the error as its JSON body.
fn respond<T: serde::Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(value) => with_status(json(&value), status).into_response(),
        Err(e) => e.into_response(),
    }
}
