//! An agent's `GET` event stream, served outside Pingora's proxy loop.
//!
//! Most connections a gateway holds are idle event streams. Pingora keeps,
//! per proxied request, a 64 KiB upstream body buffer, its boxed request
//! future (13–16 KiB) and two 4 KiB head buffers: about 51 KiB per idle
//! stream. Here a stream holds its two sockets, its route and whatever
//! unfinished event it is waiting for; reads wait for readiness first, so
//! no buffer is held while nothing arrives.
//!
//! The decisions are the Pingora path's own functions: admission
//! ([`admit::admit_event_stream`]), the upstream request
//! ([`Gateway::point_upstream`]), the response header rules, `tools/list`
//! filtering of events ([`Gateway::filter_body`]), registration for
//! revocation, and the log line, metrics and audit event
//! ([`Gateway::finish`]). Whatever this path does not handle is declined
//! before the agent gets a byte, and Pingora serves the request as before:
//! refusals, virtual servers, TLS or bridged upstreams, a credential that is
//! unavailable, an upstream that cannot be reached or answers anything but
//! `2xx text/event-stream`.

use std::time::Duration;

use bytes::Bytes;
use catalog::model::Transport;
use pingora_core::protocols::Stream;
use pingora_http::RequestHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{Gateway, RequestCtx, ResponseMode};
use crate::admit::{self, Route};
use crate::http1::{self, ChunkedDecoder, Framing};
use crate::http_headers::strip_response;
use crate::sse::SseRewriter;
use crate::streams::CONNECTION;

/// How long connecting to the upstream may take (as for Pingora's peers).
const CONNECT: Duration = Duration::from_secs(5);
/// How long the upstream may take to answer with its response head.
const HEAD: Duration = Duration::from_secs(30);
/// Largest upstream response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Most bytes taken from the upstream per read (allocated only once data is there).
const READ: usize = 16 * 1024;

impl Gateway {
    /// Serves `req`, an event-stream `GET`, on `agent`. False: declined,
    /// nothing was written to the agent, and Pingora should serve it.
    ///
    /// An open stream holds only what its end needs: the request's method,
    /// path and session (not its whole header), the route, the two sockets.
    pub(crate) async fn serve_event_stream(
        &self,
        agent: &mut Stream,
        req: Box<RequestHeader>,
    ) -> bool {
        let Some(mut route) = self.admit_stream(&req) else {
            return false;
        };
        let mut ctx = Box::new(RequestCtx::new());
        ctx.begin(&req);
        ctx.tally.admitted(route.upstream(), route.method);
        ctx.tally.upstream_started();
        let Some(mut upstream) = self.open_upstream(&req, &route, &ctx).await else {
            return false;
        };
        let Some((mut resp, framing, rest)) = read_response_head(&mut upstream).await else {
            return false;
        };
        let is_events = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| {
                v.as_bytes()
                    .to_ascii_lowercase()
                    .starts_with(b"text/event-stream")
            });
        // Re-check first: a sweep that ran before the registration below must not be missed.
        if !resp.status.is_success() || !is_events || route.refresh(&self.snapshots).is_err() {
            return false;
        }
        // Committed: from here on the agent is answered on this path.
        let status = resp.status.as_u16();
        ctx.tally.upstream_responded(status);
        strip_response(&mut resp);
        let framed = (|| {
            self.seal_issued_session(&mut resp, &route, &mut ctx.audit)?;
            resp.remove_header(&http::header::CONTENT_LENGTH);
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            // The connection ends with the stream (it is this path's only request).
            resp.insert_header(http::header::CONNECTION, "close")
        })();
        if self.auditor.is_some() {
            ctx.audit.tap.sse = true;
            ctx.audit.tap.active = route.calls_tools || route.settings().audit.all_methods;
        }
        ctx.stream = self.register_stream(&route);
        ctx.response = ResponseMode::Sse(SseRewriter::default());
        ctx.route = Some(route);
        let head = http1::response_bytes(&resp);
        drop(resp);
        let whole = req;
        let req = summary(&whole);
        drop(whole);
        let error = match framed {
            Err(e) => Some(e.to_string()),
            Ok(_) => match write(agent, &head).await {
                Err(e) => Some(format!("agent: {e}")),
                Ok(()) => self
                    .pump(agent, &mut upstream, framing, rest, &mut ctx)
                    .await
                    .err(),
            },
        };
        self.finish(&req, status, error, &mut ctx);
        true
    }

    /// Admission as for Pingora, for the streams this path serves: to a
    /// Streamable HTTP server over plain HTTP whose credential is available.
    fn admit_stream(&self, req: &RequestHeader) -> Option<Route> {
        let snapshot = self.snapshots.load_full();
        let up = admit::server_from_path(req.uri.path()).and_then(|n| snapshot.upstream(n))?;
        if up.transport != Transport::StreamableHttp
            || up.endpoint.tls
            || up.credential_unavailable.is_some()
        {
            return None;
        }
        admit::admit_event_stream(req, &snapshot, &self.seal).ok()
    }

    /// Connects to the upstream and sends it the stream's request.
    async fn open_upstream(
        &self,
        req: &RequestHeader,
        route: &Route,
        ctx: &RequestCtx,
    ) -> Option<TcpStream> {
        let up = route.upstream();
        let addr = super::upstream_request::upstream_addr(up).await.ok()?;
        let mut upstream = tokio::time::timeout(CONNECT, TcpStream::connect(addr))
            .await
            .ok()?
            .ok()?;
        let _ = upstream.set_nodelay(true);
        let mut forward = req.clone();
        self.point_upstream(&mut forward, route, ctx.trace.as_ref(), None)
            .ok()?;
        // Events are filtered: they must arrive readable.
        forward
            .insert_header(http::header::ACCEPT_ENCODING, "identity")
            .ok()?;
        let head = http1::request_bytes(&forward);
        tokio::time::timeout(CONNECT, upstream.write_all(&head))
            .await
            .ok()?
            .ok()?;
        Some(upstream)
    }

    /// Relays events until the upstream ends the stream, the agent goes, or
    /// the caller loses access. `Err`: why the stream was cut.
    async fn pump(
        &self,
        agent: &mut Stream,
        upstream: &mut TcpStream,
        framing: Framing,
        mut pending: Vec<u8>,
        ctx: &mut RequestCtx,
    ) -> Result<(), String> {
        let mut body = Body::new(framing);
        // An empty body is complete before anything is read.
        let mut upstream_closed = matches!(body, Body::Length(0));
        let mut probe = [0u8; 64];
        // A revocation cancels the connection (see `streams.rs`): noticed
        // here first, so the stream's log line and audit event are written.
        let revoked = CONNECTION
            .try_with(CancellationToken::clone)
            .unwrap_or_default();
        // A new snapshot: the route moves to it (an idle stream must not keep
        // an old snapshot alive), or the stream ends if access did.
        let changed = self.streams.snapshot_changes();
        tokio::pin!(changed);
        loop {
            if pending.is_empty() && !upstream_closed {
                tokio::select! {
                    ready = upstream.readable() => {
                        ready.map_err(|e| format!("upstream: {e}"))?;
                        let mut buf = vec![0; READ];
                        match upstream.try_read(&mut buf) {
                            Ok(0) => upstream_closed = true,
                            Ok(n) => {
                                buf.truncate(n);
                                pending = buf;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(format!("upstream: {e}")),
                        }
                    }
                    _ = revoked.cancelled() => return Err("access ended".into()),
                    _ = &mut changed => {
                        changed.set(self.streams.snapshot_changes());
                        if let Some(route) = ctx.route.as_mut() {
                            route
                                .refresh(&self.snapshots)
                                .map_err(|r| format!("access ended: {r}"))?;
                        }
                        continue;
                    }
                    // Anything the agent sends now is ignored; its close ends the stream.
                    read = agent.read(&mut probe) => match read {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(_) => continue,
                    },
                }
            }
            let (payload, complete) = body.take(std::mem::take(&mut pending))?;
            if upstream_closed && !complete {
                return Err("upstream: stream ended before its end".into());
            }
            let mut chunk = Some(Bytes::from(payload));
            self.filter_body(&mut chunk, complete, ctx)
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            if let Some(chunk) = chunk.filter(|c| !c.is_empty()) {
                ctx.audit.tap.push(&chunk);
                out = http1::chunk(&chunk);
            }
            if complete {
                out.extend_from_slice(http1::LAST_CHUNK);
            }
            if !out.is_empty() {
                write(agent, &out)
                    .await
                    .map_err(|e| format!("agent: {e}"))?;
            }
            if complete {
                return Ok(());
            }
        }
    }
}

/// The upstream's body as its framing delivers it.
enum Body {
    Chunked(ChunkedDecoder),
    Length(u64),
    Close,
}

impl Body {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Chunked => Body::Chunked(ChunkedDecoder::default()),
            Framing::Length(n) => Body::Length(n),
            Framing::Close => Body::Close,
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
            Body::Length(left) => {
                let n = wire.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
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

/// What a stream's log line and audit event need of its request: method,
/// path, and the agent's session.
fn summary(req: &RequestHeader) -> RequestHeader {
    let path = req.uri.path().as_bytes();
    let Ok(mut slim) = RequestHeader::build_no_case(req.method.clone(), path, Some(1)) else {
        return req.clone();
    };
    if let Some(sid) = req.headers.get("mcp-session-id") {
        let _ = slim.insert_header("mcp-session-id", sid.clone());
    }
    slim
}

/// Reads the upstream's response head; the bytes after it are returned too.
async fn read_response_head(
    upstream: &mut TcpStream,
) -> Option<(pingora_http::ResponseHeader, Framing, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + HEAD;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let read = tokio::time::timeout_at(deadline, upstream.read_buf(&mut buf)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            return None;
        }
        match http1::response_head(&buf) {
            Ok(Some((resp, len, framing))) => return Some((resp, framing, buf.split_off(len))),
            Ok(None) if buf.len() < MAX_HEAD => buf.reserve(4096),
            _ => return None,
        }
    }
}

async fn write(agent: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    agent.write_all(bytes).await?;
    agent.flush().await
}
