//! A connection's writer task: drains its outbox to the socket in batches, then closes.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};

use super::upgrade::Socket;
use crate::broker::{Close, FrameKind, OutFrame, Outbox};

/// Writes batches until the outbox closes, then closes the socket. From the moment the
/// connection starts closing, everything left to write (queued frames, the close frame, the
/// answer to a client's close) gets the close's `linger` and no more; then the socket is
/// dropped, so a client that stopped reading cannot hold its place for ever.
///
/// Returns whether the close went out: when it did not, the client is not reading and nothing
/// is owed to it any more.
pub async fn write(mut sink: SplitSink<Socket, Message>, outbox: Arc<Outbox>) -> bool {
    let overdue = async {
        let close = outbox.closing().await;
        tokio::time::sleep(close.linger).await;
    };
    tokio::select! {
        () = write_then_close(&mut sink, &outbox) => true,
        () = overdue => {
            tracing::debug!("close not delivered within its linger; socket dropped");
            false
        }
    }
}

/// Takes the sink by reference: passed by value, it would take room in this future as well as
/// in the caller's, for the connection's whole life.
async fn write_then_close(sink: &mut SplitSink<Socket, Message>, outbox: &Outbox) {
    let close = drain(sink, outbox).await;
    if close.sends_frame() {
        let frame = CloseFrame {
            code: close.code.into(),
            reason: Utf8Bytes::from_static(close.reason),
        };
        // Refused if the client's close came first; flushing below then sends the answer.
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    if close != Close::LOST {
        // Flushes what is buffered, and the answer to a client's close if one is waiting.
        let _ = sink.close().await;
    }
}

/// Writes what the outbox holds, batch after batch, until it closes; returns how to close. A
/// close that discards the queue abandons the write in progress.
async fn drain(sink: &mut SplitSink<Socket, Message>, outbox: &Outbox) -> Close {
    let mut batch: VecDeque<OutFrame> = VecDeque::new();
    // Made once: a busy connection should not register for the close for every batch.
    let aborting = outbox.aborting();
    tokio::pin!(aborting);
    loop {
        batch.clear();
        if let Err(close) = outbox.next_batch(&mut batch).await {
            return close;
        }
        let written = tokio::select! {
            result = write_batch(sink, &mut batch) => result,
            _ = &mut aborting => continue,
        };
        let close = match written {
            Ok(()) => {
                outbox.written(&batch);
                continue;
            }
            // The reader took the client's close while this batch was going out: tungstenite
            // refuses data from then on and holds its answer for the next flush.
            Err(WsError::Protocol(ProtocolError::SendAfterClosing)) => Close::CLIENT_CLOSED,
            Err(_) => Close::LOST,
        };
        outbox.close(close);
        return close;
    }
}

/// Feeds every frame of the batch (shared bytes, no copy: each is moved out, its length stays
/// for the accounting) and flushes once.
async fn write_batch(
    sink: &mut SplitSink<Socket, Message>,
    batch: &mut VecDeque<OutFrame>,
) -> Result<(), WsError> {
    for frame in batch.iter_mut() {
        let message = if frame.kind == FrameKind::Ping {
            Message::Ping(Default::default())
        } else {
            Message::Text(std::mem::take(&mut frame.frame))
        };
        sink.feed(message).await?;
    }
    sink.flush().await
}
