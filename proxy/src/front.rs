//! Each request on an agent connection is looked at before Pingora reads
//! it. The gateway serves two kinds itself: an event-stream `GET` (see
//! `gateway/event_stream.rs`) and a `POST` with a `Content-Length` to a
//! plain-HTTP Streamable HTTP server (see `gateway/direct.rs`). Everything
//! else, including any request those paths decline, is put back in front of
//! the connection's reads for Pingora to serve as usual.

use std::time::Duration;

use pingora_core::protocols::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::coalesce::Coalesced;
use crate::fields::AgentHead;
use crate::gateway::{Agent, Gateway};
use crate::http1::{self, Head};

/// How long a connection may wait for its next request, and for the rest
/// of a request's body (Pingora's keep-alive idle time for the gateway, see
/// `gateway.rs`).
const IDLE: Duration = Duration::from_secs(60);

/// Most bytes read while looking for a request's head.
const MAX_HEAD: usize = 32 * 1024;

/// What to do with a connection after its next request was looked at.
pub enum Next {
    /// Pingora serves the request (its bytes are put back).
    Pingora(Stream),
    /// The connection is finished: closed by the agent, idle too long, or
    /// its last request was served.
    Done,
}

/// Serves the connection's requests for as long as the gateway takes them
/// itself; hands the connection to Pingora at the first it does not.
pub async fn next_request(
    gateway: &Gateway,
    mut stream: Stream,
    shutdown: &watch::Receiver<bool>,
) -> Next {
    // Bytes read and not yet served (a pipelined request after a `POST`).
    let mut buf = Vec::new();
    loop {
        if *shutdown.borrow() {
            return Next::Done;
        }
        let Some(head) = read_head(&mut stream, &mut buf, shutdown).await else {
            // Closed, idle or shut down: whatever arrived is not a request to answer.
            return Next::Done;
        };
        match head {
            Head::EventStream { req, .. } => {
                // Kept only in case the stream is declined: no spare capacity.
                buf.shrink_to_fit();
                if Box::pin(gateway.serve_event_stream(&mut stream, req)).await {
                    return Next::Done;
                }
                return put_back(stream, &buf);
            }
            Head::Post {
                req,
                len,
                body_len,
                close,
            } if gateway.takes_post(&req, body_len) => {
                let end = len + body_len;
                // A body still to come is not waited for when its caller is
                // refused anyway. One that arrived with its head is admitted
                // by `serve_post` alone: the same checks, one run instead of two.
                let body_pending = buf.len() < end;
                if body_pending && gateway.refused_before_body(&mut stream, &req).await {
                    return Next::Done;
                }
                if !read_to(&mut stream, &mut buf, end).await {
                    tracing::info!(
                        path = req.path(),
                        "request body incomplete: connection closed"
                    );
                    return Next::Done;
                }
                let mut rest = buf.split_off(end);
                let body = bytes::Bytes::from(buf).slice(len..);
                let mut agent = Agent {
                    conn: &mut stream,
                    pipelined: &mut rest,
                    close,
                };
                // Boxed: an idle connection's task stays small (see `event_stream.rs`).
                let keep_alive = Box::pin(gateway.serve_post(&mut agent, req, body)).await;
                if !keep_alive {
                    return Next::Done;
                }
                buf = rest;
            }
            _ => return put_back(stream, &buf),
        }
    }
}

/// Reads until `buf` holds a whole request head (or anything Pingora
/// should see). `None`: the connection closed, idled out, or the gateway is
/// shutting down.
async fn read_head(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    shutdown: &watch::Receiver<bool>,
) -> Option<Head> {
    let mut shutdown = shutdown.clone();
    let head = async {
        loop {
            match http1::classify(buf) {
                Head::Incomplete if buf.len() < MAX_HEAD => {}
                Head::Incomplete => return Some(Head::Other),
                head => return Some(head),
            }
            buf.reserve(2048);
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    // Shutting down ends the wait (a dropped handle does not).
    let stopping = async {
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        head = tokio::time::timeout(IDLE, head) => head.ok().flatten(),
        _ = stopping => None,
    }
}

/// Reads until `buf` holds `end` bytes. False: the agent closed or stalled.
async fn read_to(stream: &mut Stream, buf: &mut Vec<u8>, end: usize) -> bool {
    let read = async {
        while buf.len() < end {
            // Grown as the body arrives, not to its declared length at once.
            buf.reserve((end - buf.len()).min(64 * 1024));
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        true
    };
    tokio::time::timeout(IDLE, read).await.unwrap_or(false)
}

/// Hands the connection to Pingora with `bytes` in front of its next read.
fn put_back(stream: Stream, bytes: &[u8]) -> Next {
    match stream.into_any().downcast::<Coalesced>() {
        Ok(mut coalesced) => {
            coalesced.rewind(bytes);
            Next::Pingora(coalesced)
        }
        Err(_) => {
            // Every agent connection is a `Coalesced` (server.rs): unreachable.
            tracing::error!("agent connection of an unexpected type: closed");
            Next::Done
        }
    }
}
