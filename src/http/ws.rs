//! One WebSocket session: a reader loop that turns client frames into broker calls, and a
//! writer task that drains the connection's outbox to the socket in batches.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Error as WsError;
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};
use warp::{Filter, filters::BoxedFilter};

use super::error::{ApiError, method_not_allowed};
use super::{AppState, with_state};
use crate::broker::{BrokerError, Client, Close, OutFrame, Outbox};
use crate::protocol::{
    ClientFrame, Command, ErrorBody, ErrorCode, ServerFrame, close, encode_server_frame,
    parse_client_frame,
};

/// How long a closing connection may take to accept its close frame before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// tungstenite's write buffer (it flushes once this much is buffered).
const WRITE_BUFFER_BYTES: usize = 128 * 1024;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("ws")
        .and(
            warp::get()
                .and(warp::ws())
                .and(with_state(state))
                .map(upgrade)
                .or(warp::get().map(upgrade_required))
                .unify()
                .or(warp::any().map(|| method_not_allowed("GET")))
                .unify(),
        )
        .boxed()
}

fn upgrade(ws: Ws, state: AppState) -> Response {
    let limit = state.limits.max_frame_bytes;
    // tungstenite's own write buffer is unbounded by default: cap it at its flush threshold plus
    // room for the largest frame we send (a message plus its envelope).
    let write_cap = WRITE_BUFFER_BYTES + 2 * state.limits.max_body_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .max_write_buffer_size(write_cap)
        .on_upgrade(move |socket| serve(socket, state))
        .into_response()
}

fn upgrade_required() -> Response {
    let mut response = ApiError::new(
        ErrorCode::UpgradeRequired,
        "this endpoint speaks WebSocket: send a GET with 'Connection: Upgrade' and 'Upgrade: websocket'",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response
}

/// Runs one connection until the client leaves, the server shuts down or the policy closes it.
async fn serve(socket: WebSocket, state: AppState) {
    let mut client = state.broker.connect();
    let outbox = client.outbox().clone();
    tracing::debug!(client = client.id(), "connection opened");
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write(sink, outbox.clone()));
    loop {
        // Stop taking requests while replies are piling up unread.
        tokio::select! {
            _ = outbox.room() => {}
            _ = outbox.closing() => break,
        }
        let next = tokio::select! {
            next = stream.next() => next,
            _ = outbox.closing() => break,
        };
        match next {
            Some(Ok(message)) if message.is_text() => handle_text(&mut client, &message),
            Some(Ok(message)) if message.is_binary() => reply_error(
                &client,
                None,
                ErrorCode::BadRequest,
                "binary frames are not supported: send JSON text frames",
            ),
            Some(Ok(message)) if message.is_close() => break,
            Some(Ok(_)) => {} // ping and pong: tungstenite answers pings itself
            Some(Err(e)) => {
                outbox.close(close_for(&e));
                break;
            }
            None => break,
        }
    }
    // Free the subscriptions now; the writer may still need time to deliver the close frame.
    client.unsubscribe_all();
    outbox.close(Close::NORMAL);
    let _ = writer.await;
    tracing::debug!(client = client.id(), "connection closed");
}

/// The close frame for a read error: the protocol's own codes where it names one.
fn close_for(e: &warp::Error) -> Close {
    let cause = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
    match cause {
        Some(WsError::Capacity(_)) => Close {
            code: close::MESSAGE_TOO_BIG,
            reason: "frame too large",
            discard: false,
        },
        Some(WsError::Utf8(_)) => Close {
            code: close::INVALID_PAYLOAD,
            reason: "invalid UTF-8 in text frame",
            discard: false,
        },
        _ => Close::LOST,
    }
}

fn handle_text(client: &mut Client, message: &Message) {
    let text = message.to_str().unwrap_or_default();
    match parse_client_frame(text) {
        Ok(frame) => handle_frame(client, frame),
        Err(e) => reply_error(
            client,
            e.request_id.as_deref(),
            ErrorCode::BadRequest,
            &e.message,
        ),
    }
}

fn handle_frame(client: &mut Client, frame: ClientFrame<'_>) {
    let request_id = frame.request_id.as_deref();
    let result = match frame.command {
        Command::Subscribe { topic, replay } => client.subscribe(&topic, &replay, |s| {
            encode_server_frame(&ServerFrame::Subscribed {
                topic: s.topic,
                epoch: s.epoch,
                replayed: s.replayed,
                last_seq: s.last_seq,
                recovered: s.recovered,
                request_id,
            })
        }),
        Command::Unsubscribe { topic } => client.unsubscribe(&topic).map(|()| {
            reply(
                client,
                &ServerFrame::Unsubscribed {
                    topic: &topic,
                    request_id,
                },
            );
        }),
        Command::Publish { topic, message } => client.publish(&topic, message.get()).map(|seq| {
            reply(
                client,
                &ServerFrame::Published {
                    topic: &topic,
                    seq,
                    request_id,
                },
            );
        }),
        Command::Ping => {
            reply(client, &ServerFrame::Pong { request_id });
            Ok(())
        }
    };
    if let Err(e) = result {
        reply_broker_error(client, request_id, &e);
    }
}

fn reply(client: &Client, frame: &ServerFrame<'_>) {
    client.outbox().push(encode_server_frame(frame), false);
}

fn reply_broker_error(client: &Client, request_id: Option<&str>, e: &BrokerError) {
    reply_error(client, request_id, e.code(), &e.to_string());
}

fn reply_error(client: &Client, request_id: Option<&str>, code: ErrorCode, message: &str) {
    let error = ErrorBody {
        code,
        message: message.to_owned(),
    };
    reply(client, &ServerFrame::Error { error, request_id });
}

/// Writes batches until the outbox closes, then the close frame. A slow-consumer close
/// abandons a write the client is not reading; whatever happens, a close completes within
/// [`CLOSE_TIMEOUT`] and then the socket is dropped.
async fn write(mut sink: SplitSink<WebSocket, Message>, outbox: Arc<Outbox>) {
    let mut batch: Vec<OutFrame> = Vec::new();
    let close = loop {
        batch.clear();
        if let Err(close) = outbox.next_batch(&mut batch).await {
            break close;
        }
        let written = tokio::select! {
            result = write_batch(&mut sink, &batch) => result,
            _ = outbox.aborting() => continue,
        };
        if written.is_err() {
            outbox.close(Close::LOST);
            return;
        }
        outbox.written(&batch);
    };
    if close == Close::LOST {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if close != Close::NORMAL {
            let _ = sink
                .send(Message::close_with(close.code, close.reason))
                .await;
        }
        let _ = sink.close().await;
    })
    .await;
}

async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: &[OutFrame],
) -> Result<(), warp::Error> {
    for frame in batch {
        // warp's text messages own a String: this is one copy per subscriber of a shared frame.
        let text = String::from_utf8_lossy(&frame.bytes).into_owned();
        sink.feed(Message::text(text)).await?;
    }
    sink.flush().await
}
