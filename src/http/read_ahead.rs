//! A socket whose read buffer exists only while there is something to read.
//!
//! tungstenite keeps a read buffer of its configured size for a connection's whole life, and
//! reads from the socket at most that much at a time. A large buffer costs every idle
//! connection its size; a small one costs a busy connection a system call per few frames.
//! [`ReadAhead`] takes both: tungstenite gets a small buffer, and each read from the socket
//! goes into a large buffer on the stack instead. What did not fit the caller's buffer is kept
//! on the heap until it has been taken, then freed, so an idle connection holds none of it.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

/// The most one read from the socket takes.
const READ_BYTES: usize = 16 * 1024;

/// Reads ahead of a small caller buffer (see the module's documentation); writes pass through.
#[derive(Debug)]
pub struct ReadAhead<T> {
    io: T,
    /// Read from the socket, not yet taken by the caller; empty (and unallocated) when idle.
    spill: Bytes,
}

impl<T> ReadAhead<T> {
    pub fn new(io: T) -> Self {
        ReadAhead {
            io,
            spill: Bytes::new(),
        }
    }

    /// Bytes read from the socket and held for the caller.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.spill.len()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.spill.is_empty() {
            let n = this.spill.len().min(buf.remaining());
            buf.put_slice(&this.spill[..n]);
            this.spill.advance(n);
            if this.spill.is_empty() {
                this.spill = Bytes::new(); // frees it
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_BYTES {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_BYTES];
        let mut ahead = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut this.io).poll_read(cx, &mut ahead))?;
        let read = ahead.filled();
        let n = read.len().min(buf.remaining());
        buf.put_slice(&read[..n]);
        if n < read.len() {
            this.spill = Bytes::copy_from_slice(&read[n..]);
        }
        Poll::Ready(Ok(()))
    }
}

super::forward_write::forward_async_write!(ReadAhead, io);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_take_one_socket_read_in_order_and_hold_nothing_once_taken() {
        let (mut peer, io) = tokio::io::duplex(64 * 1024);
        let sent: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        peer.write_all(&sent).await.unwrap();
        drop(peer);
        let mut reader = ReadAhead::new(io);
        let mut got = Vec::new();
        let mut small = [0u8; 100];
        let n = reader.read(&mut small).await.unwrap();
        assert_eq!(n, 100);
        got.extend_from_slice(&small[..n]);
        assert_eq!(reader.held(), READ_BYTES - 100, "one read of READ_BYTES");
        loop {
            let n = reader.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, sent);
        assert_eq!(reader.held(), 0);
    }

    #[tokio::test]
    async fn a_large_caller_buffer_is_read_into_directly() {
        let (mut peer, io) = tokio::io::duplex(64 * 1024);
        peer.write_all(&[7u8; 30_000]).await.unwrap();
        let mut reader = ReadAhead::new(io);
        let mut large = vec![0u8; 2 * READ_BYTES];
        let n = reader.read(&mut large).await.unwrap();
        assert_eq!(n, 30_000);
        assert_eq!(reader.held(), 0);
        reader.write_all(b"back").await.unwrap();
        let mut echo = [0u8; 4];
        peer.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"back");
    }
}
