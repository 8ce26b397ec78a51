//! A response relayed from an upstream connection to the agent by the
//! gateway's own paths (`event_stream.rs`, `direct.rs`): the upstream's
//! head read, then its body passed on as it arrives, filtered and tapped
//! exactly as Pingora's body hook does ([`Gateway::filter_body`]).

use std::time::Duration;

use bytes::Bytes;
use pingora_core::protocols::Stream;
use pingora_error::{Error, ErrorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{Gateway, RequestCtx};
use crate::fields::ResponseFields;
use crate::http1::{self, ChunkedDecoder, Framing, RawResponse};
use crate::streams::CONNECTION;

/// Largest upstream response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Most bytes taken from the upstream per read (allocated only once data is there).
const READ: usize = 16 * 1024;

/// Why no response head came from the upstream.
#[derive(Debug)]
pub(super) enum HeadError {
    /// The connection ended (or was reset) before a single byte arrived.
    Closed,
    /// It failed after the first byte, or with another error.
    Io(std::io::Error),
    /// It did not answer in time.
    Timeout,
    /// Its head is malformed, too large, 1xx, or framed ambiguously.
    Malformed,
}

/// Reads the upstream's response head (waiting at most `limit`, if
/// given); the body bytes read with it are returned too.
pub(super) async fn read_response_head(
    upstream: &mut TcpStream,
    limit: Option<Duration>,
) -> Result<(RawResponse, Framing, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(4096);
    let read = async {
        // Anything at all came (an interim answer included): not a dead kept connection.
        let mut answered = false;
        loop {
            match upstream.read_buf(&mut buf).await {
                Ok(0) if !answered => return Err(HeadError::Closed),
                Ok(0) => return Err(HeadError::Malformed),
                Ok(_) => answered = true,
                Err(e) if !answered && closed_early(&e) => return Err(HeadError::Closed),
                Err(e) => return Err(HeadError::Io(e)),
            }
            loop {
                match http1::response_head(&buf) {
                    // An interim answer (103 Early Hints, 100 Continue): the real one follows.
                    Ok(Some((resp, len, _))) if resp.status().is_informational() => {
                        buf.drain(..len);
                    }
                    Ok(Some((resp, len, framing))) => return Ok((resp, framing, len)),
                    Ok(None) if buf.len() < MAX_HEAD => {
                        buf.reserve(4096);
                        break;
                    }
                    _ => return Err(HeadError::Malformed),
                }
            }
        }
    };
    let (resp, framing, len) = match limit {
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .map_err(|_| HeadError::Timeout)??,
        None => read.await?,
    };
    Ok((resp, framing, buf.split_off(len)))
}

/// A reset or broken pipe before any answer: what a kept-alive connection
/// the upstream had just closed looks like.
fn closed_early(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// How a response body travels from the upstream to the agent.
pub(super) struct Relay {
    /// The agent's response head, not yet written.
    pub head: Vec<u8>,
    /// How the upstream frames its body.
    pub framing: Framing,
    /// Body bytes read together with the upstream's head.
    pub pending: Vec<u8>,
    /// The agent gets the body chunked (else as the upstream framed it:
    /// by its `Content-Length`).
    pub chunked: bool,
}

/// What the agent may do while its response is relayed.
pub(super) enum AgentSide<'a> {
    /// Its close ends the response, which is then complete for it, and
    /// whatever it sends is ignored (an event stream: its connection ends
    /// with it).
    Stream,
    /// Its close cuts the response; what it sends (a pipelined request) is
    /// kept here for after the response.
    Request(&'a mut Vec<u8>),
}

/// Most bytes kept of what an agent sends while its request is answered;
/// past that its connection is no longer read until the response is done.
const MAX_PIPELINED: usize = 64 * 1024;

/// Resolves when the agent closes its connection (or it fails). What it
/// sends meanwhile is kept in `pipelined` (`None`: ignored).
pub(super) async fn agent_gone(agent: &mut Stream, mut pipelined: Option<&mut Vec<u8>>) {
    let mut probe = [0u8; 512];
    loop {
        if pipelined.as_ref().is_some_and(|p| p.len() >= MAX_PIPELINED) {
            return std::future::pending().await;
        }
        match agent.read(&mut probe).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(kept) = pipelined.as_mut() {
                    kept.extend_from_slice(&probe[..n]);
                }
            }
        }
    }
}

/// Why a relayed response was cut.
pub(super) struct RelayError {
    /// What ended it, with the side to blame: the upstream's failures are
    /// upstream errors (counted), the agent's are downstream errors, and a
    /// caller whose access ended is a 403.
    pub error: Box<Error>,
    /// The agent already has the response head.
    pub head_written: bool,
}

/// The upstream failed mid-response (a read error, a malformed or short body).
fn upstream_failed(why: String) -> Box<Error> {
    Error::explain(ErrorType::ReadError, why).into_up()
}

/// The agent went away, or could not be written to.
fn agent_failed(etype: ErrorType, why: String) -> Box<Error> {
    Error::explain(etype, why).into_down()
}

/// The caller's access ended while its response was prepared or relayed.
pub(super) fn access_ended(why: String) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(403), why)
}

impl Gateway {
    /// Relays the upstream's body until it ends, the agent goes, or the
    /// caller loses access. `Ok(true)`: the body ended exactly where its
    /// framing said, so the upstream connection may carry another request.
    pub(super) async fn relay(
        &self,
        agent: &mut Stream,
        mut side: AgentSide<'_>,
        upstream: &mut TcpStream,
        relay: Relay,
        ctx: &mut RequestCtx,
    ) -> Result<bool, RelayError> {
        let mut head = Some(relay.head);
        let cut = |head: &Option<Vec<u8>>, error: Box<Error>| RelayError {
            error,
            head_written: head.is_none(),
        };
        let reusable = !matches!(relay.framing, Framing::Close);
        let mut body = Body::new(relay.framing);
        let mut pending = relay.pending;
        let mut upstream_closed = false;
        // Set up on the first wait only (most responses arrive with their head).
        let mut waits: Option<Waits<'_>> = None;
        loop {
            if pending.is_empty() && !upstream_closed && !body.is_done() {
                // Nothing at hand: the head goes now (an agent must not wait for headers).
                if let Some(h) = head.take() {
                    write(agent, &h).await.map_err(|e| RelayError {
                        error: agent_failed(ErrorType::WriteError, e.to_string()),
                        head_written: false,
                    })?;
                }
                let w = waits.get_or_insert_with(|| Waits::new(self));
                tokio::select! {
                    ready = upstream.readable() => {
                        ready.map_err(|e| cut(&head, upstream_failed(e.to_string())))?;
                        // Read into spare capacity: nothing to zero first.
                        let mut buf = Vec::with_capacity(READ);
                        match upstream.try_read_buf(&mut buf) {
                            Ok(0) => upstream_closed = true,
                            Ok(_) => pending = buf,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(cut(&head, upstream_failed(e.to_string()))),
                        }
                    }
                    // A revocation cancels the connection (see `streams.rs`):
                    // noticed here first, so the end is logged and audited.
                    _ = w.revoked.cancelled() => {
                        return Err(cut(&head, access_ended("access ended".into())));
                    }
                    // A new snapshot: the route moves to it (an idle stream must
                    // not keep an old snapshot alive), or the response ends if access did.
                    _ = &mut w.changed => {
                        w.changed = Box::pin(self.streams.snapshot_changes());
                        if let Some(route) = ctx.route.as_mut() {
                            route
                                .refresh(&self.snapshots)
                                .map_err(|r| cut(&head, access_ended(format!("access ended: {r}"))))?;
                        }
                        continue;
                    }
                    _ = agent_gone(agent, match &mut side {
                        AgentSide::Stream => None,
                        AgentSide::Request(kept) => Some(&mut **kept),
                    }) => match side {
                        AgentSide::Stream => return Ok(false),
                        AgentSide::Request(_) => {
                            let gone = agent_failed(ErrorType::ConnectionClosed, "closed".into());
                            return Err(cut(&head, gone));
                        }
                    },
                }
            }
            let (payload, complete) = body
                .take(std::mem::take(&mut pending))
                .map_err(|e| cut(&head, upstream_failed(e)))?;
            if upstream_closed && !complete {
                return Err(cut(&head, upstream_failed("body ended early".into())));
            }
            let mut chunk = Some(Bytes::from(payload));
            self.filter_body(&mut chunk, complete, ctx)
                .map_err(|e| cut(&head, e))?;
            let chunk = chunk.filter(|c| !c.is_empty());
            if let Some(chunk) = &chunk {
                ctx.audit.tap.push(chunk);
            }
            let out = match (head.take(), chunk) {
                // A later piece of a body passed on as it came: written as it is.
                (None, Some(chunk)) if !relay.chunked => chunk,
                (head, chunk) => {
                    // The head and the first piece go in one write.
                    let mut out = head.unwrap_or_default();
                    if let Some(chunk) = chunk {
                        if relay.chunked {
                            http1::push_chunk(&mut out, &chunk);
                        } else {
                            out.extend_from_slice(&chunk);
                        }
                    }
                    if complete && relay.chunked {
                        out.extend_from_slice(http1::LAST_CHUNK);
                    }
                    Bytes::from(out)
                }
            };
            if !out.is_empty() {
                write(agent, &out).await.map_err(|e| RelayError {
                    error: agent_failed(ErrorType::WriteError, e.to_string()),
                    head_written: true,
                })?;
            }
            if complete {
                return Ok(reusable && !body.overran());
            }
        }
    }
}

/// What a response waits on besides the upstream: a revocation of the
/// connection, and a new snapshot.
struct Waits<'a> {
    revoked: CancellationToken,
    changed: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
}

impl<'a> Waits<'a> {
    fn new(gateway: &'a Gateway) -> Self {
        Waits {
            revoked: CONNECTION
                .try_with(CancellationToken::clone)
                .unwrap_or_default(),
            changed: Box::pin(gateway.streams.snapshot_changes()),
        }
    }
}

/// The upstream's body as its framing delivers it.
enum Body {
    Chunked(ChunkedDecoder),
    /// Bytes left; whether the upstream sent more than it announced.
    Length(u64, bool),
    Close,
}

impl Body {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Chunked => Body::Chunked(ChunkedDecoder::default()),
            Framing::Length(n) => Body::Length(n, false),
            Framing::Close => Body::Close,
        }
    }

    /// Complete before anything more is read (an empty body).
    fn is_done(&self) -> bool {
        matches!(self, Body::Length(0, _))
    }

    /// Bytes arrived after the announced end (the connection is not reusable).
    fn overran(&self) -> bool {
        match self {
            Body::Chunked(decoder) => decoder.overran(),
            Body::Length(_, overran) => *overran,
            Body::Close => false,
        }
    }

    /// The payload in `wire`, and whether the body is complete. An empty
    /// `wire` means the upstream closed: the end only of a close-delimited body.
    fn take(&mut self, wire: Vec<u8>) -> Result<(Vec<u8>, bool), String> {
        match self {
            Body::Chunked(decoder) => {
                let mut out = Vec::with_capacity(wire.len());
                let done = decoder.push(&wire, &mut out).map_err(|e| e.to_string())?;
                Ok((out, done))
            }
            Body::Length(left, overran) => {
                let n = wire.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                *overran |= wire.len() > n;
                let mut wire = wire;
                wire.truncate(n);
                Ok((wire, *left == 0))
            }
            Body::Close => {
                let closed = wire.is_empty();
                Ok((wire, closed))
            }
        }
    }
}

/// Writes `bytes` to the agent and flushes.
pub(super) async fn write(agent: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    agent.write_all(bytes).await?;
    agent.flush().await
}
