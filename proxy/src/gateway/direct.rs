//! An agent's `POST` served outside Pingora's proxy loop: the gateway's hot
//! path (`tools/call`, `tools/list` and every other JSON-RPC message).
//!
//! Pingora costs about 79k instructions per proxied request (boxed
//! futures, two header maps, task hand-offs, a separate send for the
//! request head and body), more than all of toolgate's own work. This path
//! reads the request, admits it, sends the head and the checked body
//! upstream in one write over a kept-alive connection, and relays the
//! response. Both heads stay the bytes read ([`RawRequest`],
//! [`RawResponse`]): no header maps are built.
//!
//! It takes only what it fully understands, before anything is decided: an
//! HTTP/1.1 `POST` framed by one `Content-Length` (see
//! [`crate::http1::classify`]) to a Streamable HTTP server over plain HTTP
//! whose credential is available. Everything else (virtual servers, TLS or
//! bridged upstreams, chunked or `Expect` requests) is served by Pingora.
//!
//! The decisions are the Pingora path's own functions, shared rather than
//! copied: admission ([`admit::admit_post`]: token, grant, session, body
//! checks, JSON-RPC parse, the tool decision), the audit capacity check,
//! the upstream request ([`Gateway::point_upstream`]), the response header
//! rules ([`Gateway::receive_head`], [`Gateway::seal_issued_session`],
//! [`Gateway::choose_response_mode`]), `tools/list` filtering, the refusal
//! and upstream-failure answers, and the log line, metrics and audit event
//! ([`Gateway::finish`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use catalog::model::Transport;
use http::HeaderValue;
use pingora_core::protocols::Stream;
use pingora_error::{Error, ErrorSource, ErrorType};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::admission::{log_refusal, refusal_head};
use super::relay::{agent_gone, read_response_head, write, AgentSide, HeadError, Relay};
use super::{failure_status, Gateway, RequestCtx, ResponseMode};
use crate::admit::{self, AdmitError, Admitted, Rejected, Route};
use crate::error::Refusal;
use crate::fields::{AgentHead, EditFields, Fields, ResponseFields};
use crate::http1::{self, Framing, RawRequest, RawResponse};
use crate::http_headers::content_coding;
use crate::metrics::ToolDecision;

/// How long connecting to the upstream may take (as for Pingora's peers),
/// and, on the event-stream path, sending it the request.
pub(super) const CONNECT: Duration = Duration::from_secs(5);

/// The agent's side of a request on the direct path.
pub(crate) struct Agent<'a> {
    /// Its connection.
    pub conn: &'a mut Stream,
    /// Bytes it sent after the request (pipelined), kept for the next one.
    pub pipelined: &'a mut Vec<u8>,
    /// It asked for the connection to close after the response.
    pub close: bool,
}

/// How a request ended: the status the agent got, why it failed (if it
/// did), and whether the agent's connection can take another request.
struct Ended {
    status: u16,
    error: Option<String>,
    keep_alive: bool,
}

impl Gateway {
    /// Does the direct path serve this `POST` (its body `body_len` bytes)?
    /// Only to a Streamable HTTP server over plain HTTP whose credential is
    /// available, and not above the body cap (Pingora refuses those).
    pub(crate) fn takes_post(&self, req: &RawRequest, body_len: usize) -> bool {
        let snapshot = self.snapshots.load();
        let Some(name) = admit::server_from_path(req.path()) else {
            return false;
        };
        if snapshot.virtual_server(name).is_some() {
            return false;
        }
        snapshot.upstream(name).is_some_and(|up| {
            plain_streamable_http(up)
                && up.credential_unavailable.is_none()
                && body_len <= snapshot.settings.max_body_bytes
        })
    }

    /// Refuses a `POST` from its head alone when its caller may not use the
    /// server (path, `Host`, `Origin`, token, grant): nothing of its body is
    /// read, and strangers learn nothing from how long the gateway waits.
    /// True: refused and answered (the connection closes).
    pub(crate) async fn refused_before_body(&self, agent: &mut Stream, req: &RawRequest) -> bool {
        let snapshot = self.snapshots.load_full();
        let Err(refusal) = admit::authorize_head(req, &snapshot) else {
            return false;
        };
        let mut ctx = Box::new(RequestCtx::new());
        ctx.begin(req);
        log_refusal(&ctx, req, &refusal);
        let ended = self.answer_refusal(agent, req, &refusal, &mut ctx).await;
        ctx.audit.refusal = Some(refusal);
        self.finish(req, ended.status, ended.error, &mut ctx);
        true
    }

    /// Serves a `POST` whose body (`raw`, as sent) was read in full.
    /// Returns whether the agent's connection can take its next request.
    pub(crate) async fn serve_post(
        &self,
        agent: &mut Agent<'_>,
        req: Box<RawRequest>,
        raw: Bytes,
    ) -> bool {
        let mut ctx = Box::new(RequestCtx::new());
        ctx.begin(&*req);
        let ended = match admit::admit_post(&*req, raw, &self.snapshots, &self.seal) {
            Ok(Admitted { route, body }) => {
                let body = body.unwrap_or_default();
                self.forward(agent, &req, route, body, &mut ctx).await
            }
            Err(Rejected {
                error: AdmitError::Refused(refusal),
                route,
                body,
            }) => {
                log_refusal(&ctx, &*req, &refusal);
                let ended = self
                    .answer_refusal(agent.conn, &*req, &refusal, &mut ctx)
                    .await;
                ctx.audit.refused_route = route;
                ctx.audit.body = body;
                ctx.audit.refusal = Some(refusal);
                ended
            }
            // The body is read already: there is no agent I/O in admission.
            Err(Rejected {
                error: AdmitError::Io(e),
                ..
            }) => Ended {
                status: 0,
                error: Some(e.to_string()),
                keep_alive: false,
            },
        };
        self.finish(&*req, ended.status, ended.error, &mut ctx);
        ended.keep_alive
    }

    /// An admitted request: sent upstream, its response relayed.
    async fn forward(
        &self,
        agent: &mut Agent<'_>,
        req: &RawRequest,
        route: Route,
        body: Bytes,
        ctx: &mut RequestCtx,
    ) -> Ended {
        ctx.tally.admitted(route.upstream(), route.method);
        if let Some(refusal) = self.audit_capacity(&route, ctx) {
            return self.answer_refusal(agent.conn, req, &refusal, ctx).await;
        }
        if let Some(m) = &self.metrics {
            for tool in &route.tools {
                m.tool_call(Some(route.upstream()), tool, ToolDecision::Allowed);
            }
        }
        ctx.audit.body = Some(body.clone());
        let wire = self.upstream_request(req, &route, &body, ctx);
        let up = route.upstream();
        let unusable = if let Some(why) = &up.credential_unavailable {
            // Never call the upstream without its credential.
            tracing::warn!(server = %up.name, reason = %why, "upstream credential unavailable");
            Some(why.to_string())
        } else if !plain_streamable_http(up) {
            // A reload changed the server while its request was read.
            Some(format!("{} changed its endpoint; retry", up.name))
        } else {
            None
        };
        let addr = match unusable {
            None => super::upstream_request::upstream_addr(up).await,
            Some(why) => Err(Error::explain(ErrorType::HTTPStatus(503), why)),
        };
        ctx.route = Some(route);
        ctx.tally.upstream_started();
        let (wire, addr) = match (wire, addr) {
            (Ok(wire), Ok(addr)) => (wire, addr),
            (Err(e), _) | (_, Err(e)) => return self.answer_failure(agent.conn, &e, ctx).await,
        };
        // An agent that goes while the upstream works ends the exchange (as on Pingora's path).
        let exchanged = tokio::select! {
            exchanged = self.exchange(addr, &wire) => exchanged,
            _ = agent_gone(agent.conn, Some(agent.pipelined)) => Err(Error::explain(
                ErrorType::ConnectionClosed,
                "the agent closed its connection before the answer",
            )
            .into_down()),
        };
        let (upstream, resp, framing, rest) = match exchanged {
            Ok(exchanged) => exchanged,
            Err(e) => return self.answer_failure(agent.conn, &e, ctx).await,
        };
        drop(wire);
        self.respond(agent, upstream, addr, resp, framing, rest, ctx)
            .await
    }

    /// The agent's request head pointed upstream (see
    /// [`Gateway::point_upstream`]) followed by the checked body: one write.
    fn upstream_request(
        &self,
        req: &RawRequest,
        route: &Route,
        body: &[u8],
        ctx: &RequestCtx,
    ) -> pingora_error::Result<Vec<u8>> {
        let mut forward = req.upstream();
        self.point_upstream(&mut forward, route, ctx.trace.as_ref(), None)?;
        if route.list_ids.is_active() {
            // Responses the gateway rewrites must arrive readable (set
            // after the head is stripped: a `Connection` header may name it).
            let identity = HeaderValue::from_static("identity");
            forward.set_field(http::header::ACCEPT_ENCODING, identity)?;
        }
        Ok(forward.to_wire(body))
    }

    /// Sends `wire` on a kept-alive connection to `addr`, or a new one, and
    /// reads the response head. A kept connection the upstream closed just
    /// before the request arrived (no answer at all) is given up and the
    /// request sent once more on a new connection, as Pingora does.
    async fn exchange(
        &self,
        addr: SocketAddr,
        wire: &[u8],
    ) -> pingora_error::Result<(TcpStream, RawResponse, Framing, Vec<u8>)> {
        if let Some(mut kept) = self.upstream_pool.take(addr) {
            if kept.write_all(wire).await.is_ok() {
                match read_response_head(&mut kept, None).await {
                    Ok((resp, framing, rest)) => return Ok((kept, resp, framing, rest)),
                    Err(HeadError::Closed) => {}
                    Err(e) => return Err(head_error(e)),
                }
            }
        }
        let mut fresh = connect(addr).await?;
        fresh.write_all(wire).await.map_err(|e| {
            Error::because(ErrorType::WriteError, "sending the request", e).into_up()
        })?;
        let (resp, framing, rest) = read_response_head(&mut fresh, None)
            .await
            .map_err(head_error)?;
        Ok((fresh, resp, framing, rest))
    }

    /// The upstream's response, its head rewritten by the gateway's rules,
    /// relayed to the agent; the upstream connection kept when it can
    /// carry another request.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        agent: &mut Agent<'_>,
        mut upstream: TcpStream,
        addr: SocketAddr,
        mut resp: RawResponse,
        framing: Framing,
        rest: Vec<u8>,
        ctx: &mut RequestCtx,
    ) -> Ended {
        let framing = match resp.status().as_u16() {
            // No body, whatever the head says (RFC 9112 §6.3).
            204 | 304 => Framing::Length(0),
            _ => framing,
        };
        let upstream_keeps = !resp.is_http10()
            && !resp
                .values(&http::header::CONNECTION)
                .any(|v| contains_token(v, b"close"));
        let coding = content_coding(&resp);
        let prepared = (|| {
            let content_type = self.receive_head(&mut resp, ctx)?;
            if let Some(route) = &ctx.route {
                self.seal_issued_session(&mut resp, route, &mut ctx.audit)?;
            }
            self.choose_response_mode(&mut resp, ctx, &content_type)?;
            if let Some(coding) = coding.filter(|_| ctx.response.rewrites()) {
                // A tool list is filtered decoded (as Pingora decompresses it)
                // and passed on as it was rewritten.
                resp.remove_field(&http::header::CONTENT_ENCODING);
                ctx.response = match (&ctx.response, coding.as_str()) {
                    (ResponseMode::Json(_), "gzip" | "x-gzip") => {
                        ResponseMode::CompressedJson(Vec::new(), true)
                    }
                    (ResponseMode::Json(_), "deflate") => {
                        ResponseMode::CompressedJson(Vec::new(), false)
                    }
                    _ => {
                        // A tool list the gateway cannot read is not passed on.
                        resp.set_status(http::StatusCode::BAD_GATEWAY)?;
                        let json = HeaderValue::from_static("application/json");
                        resp.set_field(http::header::CONTENT_TYPE, json)?;
                        ResponseMode::Replace(crate::filter::unreadable_error())
                    }
                };
            }
            // A 204 or 304 has no body, whatever the rules chose (a body
            // would be read as the next response).
            let no_body = matches!(resp.status().as_u16(), 204 | 304);
            if no_body {
                ctx.response = ResponseMode::PassThrough;
            }
            let rewritten = !matches!(ctx.response, ResponseMode::PassThrough);
            let chunked = !no_body && (rewritten || !matches!(framing, Framing::Length(_)));
            resp.remove_field(&http::header::TRANSFER_ENCODING);
            if chunked {
                resp.remove_field(&http::header::CONTENT_LENGTH);
                let chunked = HeaderValue::from_static("chunked");
                resp.set_field(http::header::TRANSFER_ENCODING, chunked)?;
            } else if let (false, Framing::Length(n)) = (no_body, &framing) {
                // The agent's framing is stated by the gateway: an upstream's
                // `Connection` header may have named its `Content-Length`.
                let n = HeaderValue::from(*n);
                if !resp.has_only(&http::header::CONTENT_LENGTH, n.as_bytes()) {
                    resp.set_field(http::header::CONTENT_LENGTH, n)?;
                }
            }
            if agent.close {
                let close = HeaderValue::from_static("close");
                resp.set_field(http::header::CONNECTION, close)?;
            }
            Ok::<_, Box<Error>>(chunked)
        })();
        let chunked = match prepared {
            Ok(chunked) => chunked,
            Err(e) => return self.answer_failure(agent.conn, &e, ctx).await,
        };
        let status = resp.status().as_u16();
        let relay = Relay {
            head: resp.to_wire(),
            framing,
            pending: rest,
            chunked,
        };
        drop(resp);
        let side = AgentSide::Request(&mut *agent.pipelined);
        match self
            .relay(agent.conn, side, &mut upstream, relay, ctx)
            .await
        {
            Ok(reusable) => {
                if reusable && upstream_keeps {
                    self.upstream_pool.put(addr, upstream);
                }
                Ended {
                    status,
                    error: None,
                    keep_alive: !agent.close,
                }
            }
            Err(cut) if cut.head_written => {
                // Too late for an error answer: counted, and the connection closes.
                ctx.tally.failed(&cut.error);
                ctx.audit.upstream_failed |= cut.error.esource() == &ErrorSource::Upstream;
                Ended {
                    status,
                    error: Some(cut.error.to_string()),
                    keep_alive: false,
                }
            }
            Err(cut) => self.answer_failure(agent.conn, &cut.error, ctx).await,
        }
    }

    /// Answers a refusal (counted, its size kept for the audit record); the
    /// connection closes after it, as on the Pingora path.
    async fn answer_refusal(
        &self,
        agent: &mut Stream,
        req: &impl AgentHead,
        refusal: &Refusal,
        ctx: &mut RequestCtx,
    ) -> Ended {
        self.count_refusal(req, ctx, refusal);
        self.answer(agent, refusal, ctx).await
    }

    /// Answers a failure to reach the upstream or to pass its response on,
    /// as Pingora's `fail_to_proxy` hook does: a JSON-RPC error carrying the
    /// request id.
    async fn answer_failure(&self, agent: &mut Stream, e: &Error, ctx: &mut RequestCtx) -> Ended {
        ctx.audit.upstream_failed = true;
        ctx.tally.failed(e);
        let status = failure_status(e);
        let mut ended = Ended {
            status: 0,
            error: Some(e.to_string()),
            keep_alive: false,
        };
        if status > 0 {
            let id = ctx.route.as_ref().and_then(|r| r.reply_id.clone());
            let written = self
                .answer(agent, &Refusal::UpstreamUnavailable { id, status }, ctx)
                .await;
            ended.status = written.status;
        }
        ended
    }

    /// Writes `refusal` as the whole response, closing the connection.
    async fn answer(&self, agent: &mut Stream, refusal: &Refusal, ctx: &mut RequestCtx) -> Ended {
        let r = refusal.to_response();
        let head = refusal_head(&r).and_then(|mut header| {
            header.insert_header(http::header::CONNECTION, "close")?;
            Ok(http1::response_bytes(&header))
        });
        let mut wire = match head {
            Ok(head) => head,
            Err(e) => {
                return Ended {
                    status: 0,
                    error: Some(e.to_string()),
                    keep_alive: false,
                }
            }
        };
        wire.extend_from_slice(&r.body);
        let error = write(agent, &wire)
            .await
            .err()
            .map(|e| format!("agent: {e}"));
        ctx.audit.tap.total = r.body.len() as u64;
        Ended {
            status: r.status,
            error,
            keep_alive: false,
        }
    }
}

/// A new connection to an upstream, within [`CONNECT`], without Nagle's
/// delay; failures as Pingora's connector reports them.
pub(super) async fn connect(addr: SocketAddr) -> pingora_error::Result<TcpStream> {
    let conn = match tokio::time::timeout(CONNECT, TcpStream::connect(addr)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            let etype = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                _ => ErrorType::ConnectError,
            };
            return Err(Error::because(etype, format!("connecting to {addr}"), e).into_up());
        }
        Err(_) => {
            let why = format!("connecting to {addr}");
            return Err(Error::explain(ErrorType::ConnectTimedout, why).into_up());
        }
    };
    let _ = conn.set_nodelay(true);
    Ok(conn)
}

/// A Streamable HTTP server over plain HTTP: what the gateway's own paths
/// (this one and `event_stream.rs`) connect to; TLS and bridged servers are
/// Pingora's.
pub(super) fn plain_streamable_http(up: &catalog::Upstream) -> bool {
    up.transport == Transport::StreamableHttp && !up.endpoint.tls
}

/// A response head that did not come, as the error Pingora would report.
fn head_error(e: HeadError) -> Box<Error> {
    let (etype, why) = match e {
        HeadError::Closed => (
            ErrorType::ConnectionClosed,
            "the upstream closed the connection".to_string(),
        ),
        HeadError::Io(e) => (ErrorType::ReadError, format!("reading the response: {e}")),
        HeadError::Timeout => (ErrorType::ReadTimedout, "no response in time".to_string()),
        HeadError::Malformed => (
            ErrorType::InvalidHTTPHeader,
            "malformed response head".to_string(),
        ),
    };
    Error::explain(etype, why).into_up()
}

/// Does a comma-separated header value list `token`?
fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
