//! One send for a response's head and body.
//!
//! Pingora writes a response head, then its body, and flushes at the end of a
//! fixed-length body; its own listeners give the agent's socket a write buffer
//! so the two go out together. toolgate runs its own accept loop (see
//! `server.rs`), where the socket has no buffer: every proxied response cost
//! two `sendto` calls and two wake-ups of the agent.
//!
//! [`Coalesced`] holds back a response head that announces a
//! `Content-Length` and sends it with the first body bytes in one vectored
//! write (or alone at the next flush, e.g. for an empty body). Everything
//! else is written straight through, so an event stream's head (chunked, or
//! delimited by close) reaches the agent at once, as before: holding it until
//! the first event could leave an agent waiting for headers.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An agent connection whose fixed-length response heads wait for their body.
#[derive(Debug)]
pub struct Coalesced {
    inner: L4Stream,
    /// A held response head (empty: none).
    held: Vec<u8>,
    /// How much of `held` is already sent.
    sent: usize,
}

impl Coalesced {
    /// Wraps an accepted agent connection.
    pub fn new(inner: L4Stream) -> Self {
        Coalesced {
            inner,
            held: Vec::new(),
            sent: 0,
        }
    }

    /// Puts `bytes` back in front of the connection's next reads.
    pub fn rewind(&mut self, bytes: &[u8]) {
        self.inner.rewind(bytes);
    }

    /// Writes the rest of the held head together with `bufs`; returns how
    /// many bytes of `bufs` went out (once nothing is held, `bufs` are
    /// written as they are).
    fn poll_send_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let rest = self.held.len() - self.sent;
            if rest == 0 {
                self.held.clear();
                self.sent = 0;
                if bufs.iter().all(|b| b.is_empty()) {
                    return Poll::Ready(Ok(0));
                }
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
            let mut slices = Vec::with_capacity(1 + bufs.len());
            slices.push(IoSlice::new(&self.held[self.sent..]));
            slices.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            if n > rest {
                self.held.clear();
                self.sent = 0;
                return Poll::Ready(Ok(n - rest));
            }
            self.sent += n;
        }
    }
}

/// Is `buf` a whole HTTP/1 response head (not 1xx) that frames its body with
/// `Content-Length`? Pingora writes a head in one piece.
fn fixed_length_head(buf: &[u8]) -> bool {
    if buf.len() <= 12
        || !buf.starts_with(b"HTTP/1.")
        || buf[9] == b'1'
        || !buf.ends_with(b"\r\n\r\n")
    {
        return false;
    }
    let mut length = false;
    // Field lines only: the status line never starts with a field name.
    for line in buf.split(|b| *b == b'\n').skip(1) {
        if starts_with_ignore_case(line, b"content-length:") {
            length = true;
        } else if starts_with_ignore_case(line, b"transfer-encoding:") {
            return false;
        }
    }
    length
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

impl AsyncRead for Coalesced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalesced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            return this.poll_send_held(cx, &[IoSlice::new(buf)]);
        }
        if fixed_length_head(buf) {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            return this.poll_send_held(cx, bufs);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_send_held(cx, &[]))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_send_held(cx, &[]))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Coalesced {
    async fn shutdown(&mut self) {
        // Whatever is held goes out first (a write error ends the connection anyway).
        let _ = std::future::poll_fn(|cx| self.poll_send_held(cx, &[])).await;
        Shutdown::shutdown(&mut self.inner).await;
    }
}

impl UniqueID for Coalesced {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Coalesced {}

impl GetTimingDigest for Coalesced {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Coalesced {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Coalesced {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for Coalesced {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_fixed_length_heads_are_held() {
        let cl = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n";
        assert!(fixed_length_head(cl));
        let lower = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 5\r\n\r\n";
        assert!(fixed_length_head(lower));
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!fixed_length_head(chunked));
        let until_close = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        assert!(!fixed_length_head(until_close));
        let continue_ = b"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n";
        assert!(!fixed_length_head(continue_));
        assert!(!fixed_length_head(b"{\"jsonrpc\":\"2.0\"}"));
    }

    /// Head and body arrive whole, in order, and an event stream's head is
    /// readable before any body is written.
    #[tokio::test]
    async fn bytes_arrive_whole_and_stream_heads_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).await.unwrap();
            all
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = Coalesced::new(L4Stream::from(tcp));
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        s.write_all(head).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        s.flush().await.unwrap();
        let empty = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        s.write_all(empty).await.unwrap();
        s.flush().await.unwrap();
        let stream_head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        s.write_all(stream_head).await.unwrap();
        assert!(s.held.is_empty(), "an event stream's head is not held");
        tokio::io::AsyncWriteExt::shutdown(&mut s).await.unwrap();
        drop(s);
        let got = client.await.unwrap();
        let want = [&head[..], b"hello", empty, stream_head].concat();
        assert_eq!(got, want);
    }
}
