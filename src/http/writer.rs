//! A connection's writer task: drains its outbox to the socket in batches, then closes.

use std::sync::Arc;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};

use super::upgrade::Socket;
use crate::broker::{Close, FrameKind, OutFrame, Outbox};

/// Writes batches until the outbox closes, then the close frame. A slow-consumer close
/// abandons a write the client is not reading; whatever happens, a close completes within its
/// `linger` and then the socket is dropped.
pub async fn write(mut sink: SplitSink<Socket, Message>, outbox: Arc<Outbox>) {
    let mut batch: Vec<OutFrame> = Vec::new();
    // Made once: a busy connection should not subscribe to the close watch for every batch.
    let aborting = outbox.aborting();
    tokio::pin!(aborting);
    let close = loop {
        batch.clear();
        if let Err(close) = outbox.next_batch(&mut batch).await {
            break close;
        }
        let written = tokio::select! {
            result = write_batch(&mut sink, &mut batch) => result,
            _ = &mut aborting => continue,
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
    let _ = tokio::time::timeout(close.linger, async {
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

/// Feeds every frame of the batch (shared bytes, no copy: each is moved out, its length stays
/// for the accounting) and flushes once.
async fn write_batch(
    sink: &mut SplitSink<Socket, Message>,
    batch: &mut [OutFrame],
) -> Result<(), WsError> {
    for frame in batch {
        let message = if frame.kind == FrameKind::Ping {
            Message::Ping(Default::default())
        } else {
            Message::Text(std::mem::take(&mut frame.frame))
        };
        sink.feed(message).await?;
    }
    sink.flush().await
}
