//! One WebSocket session: a reader loop that turns client frames into broker calls, and a
//! writer task that drains the connection's outbox to the socket in batches.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{WebSocketConfig, frame::Utf8Bytes};
use warp::reply::Response;
use warp::{Filter, filters::BoxedFilter};

use super::error::{ApiError, method_not_allowed};
use super::upgrade::{Handshake, Socket, handshake, refuse};
use super::{AppState, Limits, with_state};
use crate::broker::{BrokerError, Client, Close, OutFrame, Outbox};
use crate::protocol::{
    ClientFrame, Command, ErrorBody, ErrorCode, ServerFrame, close, encode_server_frame,
    parse_client_frame,
};

/// How long a closing connection may take to accept its close frame before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Each connection starts with a read buffer this small; it grows only for larger frames.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// tungstenite collects a batch of frames up to this size before writing them to the socket.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("ws")
        .and(
            warp::get()
                .and(handshake())
                .and(with_state(state))
                .map(upgrade)
                .or(warp::any().map(|| method_not_allowed("GET")))
                .unify(),
        )
        .boxed()
}

fn upgrade(handshake: Result<Handshake, ApiError>, state: AppState) -> Response {
    match handshake {
        Ok(handshake) => handshake.accept(socket_config(state.limits), move |socket| {
            serve(socket, state)
        }),
        Err(refusal) => refuse(refusal),
    }
}

/// Frame limits from the configuration, and small buffers: an idle connection costs little.
fn socket_config(limits: Limits) -> WebSocketConfig {
    // The write buffer may grow past its flush threshold by the largest frame the server sends
    // (a message and its envelope) before a write must wait.
    let write_cap = WRITE_BUFFER_BYTES + 2 * limits.max_body_bytes;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(write_cap)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// Runs one connection until the client leaves, the server shuts down or the policy closes it.
async fn serve(socket: Socket, state: AppState) {
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
            Some(Ok(Message::Text(text))) => handle_text(&mut client, &text),
            Some(Ok(Message::Binary(_))) => reply_error(
                &client,
                None,
                ErrorCode::BadRequest,
                "binary frames are not supported: send JSON text frames",
            ),
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {} // ping and pong: tungstenite answers pings itself
            Some(Err(e)) => {
                outbox.close(close_for(&e));
                break;
            }
        }
    }
    // Free the subscriptions now; the writer may still need time to deliver the close frame.
    client.unsubscribe_all();
    outbox.close(Close::NORMAL);
    let _ = writer.await;
    tracing::debug!(client = client.id(), "connection closed");
}

/// The close frame for a read error: the protocol's own codes where it names one.
fn close_for(e: &WsError) -> Close {
    match e {
        WsError::Capacity(_) => Close {
            code: close::MESSAGE_TOO_BIG,
            reason: "frame too large",
            discard: false,
        },
        WsError::Utf8(_) => Close {
            code: close::INVALID_PAYLOAD,
            reason: "invalid UTF-8 in text frame",
            discard: false,
        },
        _ => Close::LOST,
    }
}

fn handle_text(client: &mut Client, text: &str) {
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
async fn write(mut sink: SplitSink<Socket, Message>, outbox: Arc<Outbox>) {
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
            let frame = CloseFrame {
                code: close.code.into(),
                reason: Utf8Bytes::from_static(close.reason),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    })
    .await;
}

/// Feeds every frame of the batch (shared bytes, no copy) and flushes once.
async fn write_batch(
    sink: &mut SplitSink<Socket, Message>,
    batch: &[OutFrame],
) -> Result<(), WsError> {
    for frame in batch {
        sink.feed(Message::Text(frame.frame.clone())).await?;
    }
    sink.flush().await
}
