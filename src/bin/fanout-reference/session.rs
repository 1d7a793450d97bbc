//! One WebSocket connection: a reader loop answering every frame in order, and a writer task
//! draining the connection's queue (replies and deliveries alike) in batches.

use std::sync::Arc;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::frames::{self, Action, Request};
use crate::hub::{Hub, Topic};

/// Frames written between two flushes at most.
const BATCH: usize = 1024;

pub async fn run(socket: TcpStream, hub: Arc<Hub>) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(64 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(socket, Some(config)).await else {
        return;
    };
    let (sink, mut stream) = ws.split();
    let (outbox, queue) = mpsc::channel(hub.queue());
    let writer = tokio::spawn(write(sink, queue));
    let id = hub.connection_id();
    let mut subscribed: Vec<Arc<Topic>> = Vec::new();
    while let Some(Ok(received)) = stream.next().await {
        let text = match received {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let reply = match Request::parse(text.as_str()) {
            None => frames::bad_request(None),
            Some(request) => match request.action() {
                Action::Publish(topic, message) => {
                    hub.publish(&topic, message).await;
                    frames::ack(request.request_id)
                }
                Action::Subscribe(topic) => {
                    let topic = hub.topic(&topic);
                    if !subscribed.iter().any(|t| Arc::ptr_eq(t, &topic)) {
                        topic.add(id, outbox.clone());
                        subscribed.push(topic);
                    }
                    frames::ack(request.request_id)
                }
                Action::Unsubscribe(topic) => {
                    if let Some(topic) = hub.find(&topic)
                        && let Some(i) = subscribed.iter().position(|t| Arc::ptr_eq(t, &topic))
                    {
                        subscribed.swap_remove(i).remove(id);
                    }
                    frames::ack(request.request_id)
                }
                Action::Ping => frames::pong(request.request_id),
                Action::Bad => frames::bad_request(request.request_id),
            },
        };
        // The reply queues behind this connection's deliveries; Err: the writer has stopped.
        if outbox.send(reply).await.is_err() {
            break;
        }
    }
    for topic in &subscribed {
        topic.remove(id);
    }
    // The writer ends once every sender (ours and the subscriber lists' copies) is gone.
    drop(outbox);
    let _ = writer.await;
}

async fn write(
    mut sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    mut queue: mpsc::Receiver<Message>,
) {
    while let Some(first) = queue.recv().await {
        if sink.feed(first).await.is_err() {
            return;
        }
        for _ in 0..BATCH {
            let Ok(next) = queue.try_recv() else { break };
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}
