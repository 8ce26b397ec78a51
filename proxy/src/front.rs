//! Each request on an agent connection is looked at before Pingora reads
//! it: an event-stream `GET` is served by the gateway's lean stream path
//! (see `gateway/event_stream.rs`); everything else, including any stream
//! that path declines, is put back in front of the connection's reads for
//! Pingora to serve as usual.

use std::time::Duration;

use pingora_core::protocols::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::coalesce::Coalesced;
use crate::gateway::Gateway;
use crate::http1::{self, Head};

/// How long a connection may wait for its next request (Pingora's
/// keep-alive idle time for the gateway, see `gateway.rs`).
const IDLE: Duration = Duration::from_secs(60);

/// Most bytes read while looking for an event-stream request's head.
const MAX_HEAD: usize = 32 * 1024;

/// What to do with a connection after its next request was looked at.
pub enum Next {
    /// Pingora serves the request (its bytes are put back).
    Pingora(Stream),
    /// The connection is finished: closed by the agent, idle too long, or
    /// its event stream was served.
    Done,
}

/// Reads the connection's next request head far enough to tell an event
/// stream from anything else, and serves the stream when the gateway can.
pub async fn next_request(
    gateway: &Gateway,
    mut stream: Stream,
    shutdown: &watch::Receiver<bool>,
) -> Next {
    if *shutdown.borrow() {
        return Next::Done;
    }
    let mut shutdown = shutdown.clone();
    let mut buf = Vec::new();
    let head = async {
        loop {
            buf.reserve(2048);
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            match http1::event_stream_request(&buf) {
                Head::Incomplete if buf.len() < MAX_HEAD => continue,
                Head::EventStream { req, .. } => return Some(Some(req)),
                _ => return Some(None),
            }
        }
    };
    // Shutting down ends the wait (a dropped handle does not).
    let stopping = async {
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let head = tokio::select! {
        head = tokio::time::timeout(IDLE, head) => head.ok().flatten(),
        _ = stopping => None,
    };
    match head {
        // Closed, idle or shut down: whatever arrived is not a request to answer.
        None => Next::Done,
        Some(None) => put_back(stream, &buf),
        Some(Some(req)) => {
            // Kept only in case the stream is declined: no spare capacity.
            buf.shrink_to_fit();
            if Box::pin(gateway.serve_event_stream(&mut stream, req)).await {
                Next::Done
            } else {
                put_back(stream, &buf)
            }
        }
    }
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
