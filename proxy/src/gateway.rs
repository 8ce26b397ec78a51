//! The Pingora `ProxyHttp` implementation. Each hook is a few lines that
//! delegate to plain functions (see `admit.rs`, `decide.rs`, `filter.rs`)
//! and to this module's parts: `admission` (admit, serve or refuse),
//! `upstream_request` (address and request head upstream), `response_hooks`,
//! `audit_hooks`, and `event_stream` (idle streams outside Pingora).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use catalog::Snapshot;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::admit::{self, Admitted, Rejected, Route};
use crate::audit::{Auditor, ResponseTap};
use crate::error::Refusal;
use crate::fields::{visible_ascii, AgentHead};
use crate::large_body;
use crate::metrics::{ProxyMetrics, RequestTally, ToolDecision};
use crate::sessions::SessionSeal;
use crate::sse::SseRewriter;
use crate::streams::{StreamGuard, StreamRegistry};
use crate::tls::CaCache;
use crate::trace::TraceContext;
use crate::virtual_server::{UpstreamLink, UpstreamSessions};

mod admission;
mod audit_hooks;
mod direct;
mod event_stream;
mod relay;
mod response_hooks;
mod upstream_request;

use admission::{log_refusal, respond};
pub(crate) use direct::Agent;

/// The toolgate data plane. Reads one [`Snapshot`] per request from `snapshots`.
/// Clones share everything (the accept loop keeps one for event streams).
#[derive(Clone)]
pub struct Gateway {
    snapshots: Arc<ArcSwap<Snapshot>>,
    streams: Arc<StreamRegistry>,
    private_cas: Arc<CaCache>,
    seal: SessionSeal,
    auditor: Option<Auditor>,
    metrics: Option<Arc<ProxyMetrics>>,
    virtual_sessions: Arc<UpstreamSessions>,
    /// Loopback Streamable HTTP fronts for stdio and legacy-SSE servers.
    bridges: Arc<crate::bridge::Bridges>,
    /// Kept-alive upstream connections of the direct path (`direct.rs`).
    upstream_pool: Arc<crate::upstream_pool::UpstreamPool>,
}

impl Gateway {
    /// A gateway serving whatever snapshot `snapshots` holds; open event
    /// streams are tracked in `streams`.
    pub fn new(
        snapshots: Arc<ArcSwap<Snapshot>>,
        streams: Arc<StreamRegistry>,
        seal: SessionSeal,
    ) -> Self {
        let bridges = crate::bridge::Bridges::new(snapshots.clone());
        Gateway {
            snapshots: snapshots.clone(),
            streams,
            private_cas: Arc::default(),
            seal,
            auditor: None,
            metrics: None,
            virtual_sessions: Arc::new(UpstreamSessions::new(bridges.clone())),
            bridges,
            upstream_pool: Arc::default(),
        }
    }

    /// Counts requests, tool calls and latencies in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<ProxyMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The kept-alive upstream connections of the direct path (swept by the server).
    pub(crate) fn upstream_pool(&self) -> Arc<crate::upstream_pool::UpstreamPool> {
        self.upstream_pool.clone()
    }

    /// Records every audited request through `auditor`.
    pub fn with_auditor(mut self, auditor: Auditor) -> Self {
        self.auditor = Some(auditor);
        self
    }
}

/// Per-request state.
pub struct RequestCtx {
    arrived: Instant,
    arrived_unix_ms: i64,
    trace: Option<TraceContext>,
    audit: AuditState,
    tally: RequestTally,
    /// Set once the request is admitted.
    pub(crate) route: Option<Route>,
    /// The checked body to send upstream instead of the bytes Pingora replays.
    pub(crate) forward_body: Option<Bytes>,
    response: ResponseMode,
    /// Keeps an event stream registered for revocation while it is open.
    stream: Option<StreamGuard>,
    /// The request's tracing span (trace id, session).
    span: tracing::Span,
    /// A virtual server's call: the upstream session it travels in.
    virtual_link: Option<UpstreamLink>,
}

/// What the audit record of a request needs beyond the route.
#[derive(Default)]
struct AuditState {
    /// The route of a refused request (admitted ones keep theirs in `route`).
    refused_route: Option<Route>,
    body: Option<Bytes>,
    refusal: Option<Refusal>,
    upstream_failed: bool,
    tap: ResponseTap,
    issued_session: Option<String>,
    /// No record from this request: a subrequest writes it, or it was
    /// counted as rejected or dropped.
    skip: bool,
}

impl RequestCtx {
    /// Its trace context (from the agent's `traceparent`, or new) and one
    /// span per request: its trace id (the request id in logs and the audit
    /// trail) and the agent's session.
    fn begin(&mut self, req: &impl AgentHead) {
        let traceparent = req.field(&crate::http_headers::TRACEPARENT);
        let trace = TraceContext::from_header(traceparent);
        self.span = tracing::info_span!(
            "request",
            trace_id = %trace.trace_id(),
            session = tracing::field::Empty
        );
        if let Some(sid) = req.field(&crate::http_headers::MCP_SESSION_ID) {
            self.span
                .record("session", visible_ascii(sid).unwrap_or("?"));
        }
        self.trace = Some(trace);
    }

    fn new() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        RequestCtx {
            arrived: Instant::now(),
            arrived_unix_ms: unix_ms,
            trace: None,
            audit: AuditState::default(),
            tally: RequestTally::default(),
            route: None,
            forward_body: None,
            response: ResponseMode::default(),
            stream: None,
            virtual_link: None,
            span: tracing::Span::none(),
        }
    }
}

#[derive(Default)]
enum ResponseMode {
    #[default]
    PassThrough,
    /// A JSON body read whole, then filtered.
    Json(Vec<u8>),
    /// A JSON body compressed with gzip (`true`) or deflate, decoded when
    /// whole (the direct path; Pingora decompresses on its own).
    CompressedJson(Vec<u8>, bool),
    Sse(SseRewriter),
    Replace(Vec<u8>),
}

impl ResponseMode {
    /// The upstream's body is read and rewritten (a tool list to filter).
    fn rewrites(&self) -> bool {
        matches!(
            self,
            ResponseMode::Json(_) | ResponseMode::CompressedJson(..) | ResponseMode::Sse(_)
        )
    }
}

/// Idle time allowed between requests on a keep-alive connection.
const KEEPALIVE_IDLE_SECS: u64 = 60;

/// Largest JSON response buffered for `tools/list` filtering (64 MiB).
const MAX_FILTERED_JSON: usize = 64 * 1024 * 1024;

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    fn allow_spawning_subrequest(&self, session: &Session, _ctx: &RequestCtx) -> bool {
        session.subrequest_ctx.is_none()
    }

    /// Authenticate, read and parse the body, decide. Refusals are answered
    /// here and nothing reaches the upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.begin(session.req_header());
        let (route, body) = match large_body::take_checked_route(session) {
            // A subrequest carrying a body its parent already checked.
            Some((route, body)) => {
                ctx.audit.body = Some(body);
                (route, None)
            }
            None => match self.admit(session, ctx).await {
                Ok(None) => return Ok(true),
                Ok(Some(Admitted { route, body })) => (route, body),
                Err(Rejected {
                    error: admit::AdmitError::Refused(refusal),
                    route,
                    body,
                }) => {
                    log_refusal(ctx, session.req_header(), &refusal);
                    self.refuse(session, ctx, &refusal).await?;
                    ctx.audit.refused_route = route;
                    ctx.audit.body = body;
                    ctx.audit.refusal = Some(refusal);
                    return Ok(true);
                }
                Err(Rejected {
                    error: admit::AdmitError::Io(e),
                    ..
                }) => return Err(e),
            },
        };
        ctx.tally.admitted(route.upstream(), route.method);
        if let Some(refusal) = self.audit_capacity(&route, ctx) {
            self.refuse(session, ctx, &refusal).await?;
            return Ok(true);
        }
        if let Some(m) = &self.metrics {
            for tool in &route.tools {
                m.tool_call(Some(route.upstream()), tool, ToolDecision::Allowed);
            }
        }
        // An idle keep-alive connection is closed after this many seconds.
        session.set_keepalive(Some(KEEPALIVE_IDLE_SECS));
        if route.list_ids.is_active() {
            // Responses we must rewrite are read decoded, whatever the upstream sends.
            session
                .req_header_mut()
                .insert_header(http::header::ACCEPT_ENCODING, "identity")?;
            session.upstream_compression.adjust_decompression(true);
        }
        if let Some(body) = body {
            if session.as_downstream().retry_buffer_truncated() {
                // Pingora replays at most 64 KiB: send the checked body
                // ourselves. The subrequest writes the audit record.
                ctx.audit.skip = true;
                ctx.tally.delegated();
                large_body::forward(session, route, body, &self.streams).await?;
                return Ok(true);
            }
            ctx.audit.body = Some(body.clone());
            ctx.forward_body = Some(body);
        }
        ctx.route = Some(route);
        Ok(false)
    }

    /// Replace the replayed body with the checked (and decoded) one.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.forward_body.is_some() {
            *body = if end_of_stream {
                ctx.forward_body.take()
            } else {
                Some(Bytes::new())
            };
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        ctx.tally.upstream_started();
        let up = route.upstream();
        if let Some(why) = &up.credential_unavailable {
            // Never call the upstream without its credential.
            tracing::warn!(server = %up.name, reason = %why, "upstream credential unavailable");
            return Error::e_explain(ErrorType::HTTPStatus(503), why.to_string());
        }
        if up.transport != catalog::model::Transport::StreamableHttp {
            return crate::bridge::peer(&self.bridges, up).await;
        }
        let addr = upstream_request::upstream_addr(up).await?;
        let mut peer = HttpPeer::new(addr, up.endpoint.tls, up.endpoint.host.clone());
        if let (true, Some(pem)) = (up.endpoint.tls, &up.tls_ca_pem) {
            let ca = self.private_cas.get(pem).map_err(|m| {
                Error::explain(ErrorType::InvalidCert, format!("{}: tls_ca: {m}", up.name))
            })?;
            peer.options.ca = Some(ca);
        }
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    /// Point the request at the upstream, inject its credential, drop the caller's.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        self.point_upstream(req, route, ctx.trace.as_ref(), ctx.virtual_link.as_ref())
    }

    /// Choose how the response body is rewritten, and fix the headers for it.
    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let content_type = self.receive_head(resp, ctx)?;
        let Some(route) = ctx.route.as_mut() else {
            return Ok(());
        };
        if let Some(link) = &ctx.virtual_link {
            // The agent's session is the gateway's own (virtual server).
            resp.remove_header(&crate::http_headers::MCP_SESSION_ID);
            if resp.status == http::StatusCode::NOT_FOUND && route.upstream_session.is_some() {
                let link = link.clone();
                return self.reopen_virtual_session(resp, ctx, &link).await;
            }
        } else {
            self.seal_issued_session(resp, route, &mut ctx.audit)?;
        }
        self.choose_response_mode(resp, ctx, &content_type)
    }

    /// Filter `tools/list` results; end the response if the caller lost access.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        self.filter_body(body, end_of_stream, ctx)?;
        if let Some(chunk) = body {
            ctx.audit.tap.push(chunk);
        }
        Ok(None)
    }

    /// Upstream failures become a JSON-RPC error carrying the request id.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        ctx.audit.upstream_failed = true;
        ctx.tally.failed(e);
        let status = failure_status(e);
        if status > 0 && session.response_written().is_none() {
            let id = ctx.route.as_ref().and_then(|r| r.reply_id.clone());
            if let Ok(n) = respond(session, &Refusal::UpstreamUnavailable { id, status }).await {
                ctx.audit.tap.total = n as u64;
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.finish(session.req_header(), status, e.map(|e| e.to_string()), ctx);
    }
}

/// What a request's log line and audit event need of it once its header
/// went upstream: method, path, and the agent's session.
fn summary(req: &impl AgentHead) -> RequestHeader {
    let (mut slim, ()) = http::Request::new(()).into_parts();
    slim.method = req.method().clone();
    // The path was checked when the head was read.
    slim.uri = http::Uri::try_from(req.path()).unwrap_or_default();
    if let Some(sid) = req.field(&crate::http_headers::MCP_SESSION_ID) {
        if let Ok(sid) = http::HeaderValue::from_bytes(sid) {
            slim.headers
                .insert(crate::http_headers::MCP_SESSION_ID, sid);
        }
    }
    RequestHeader::from(slim)
}

/// The status the agent gets when a request fails after admission (0: the
/// agent is gone).
fn failure_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => 0, // the agent is gone
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

impl Gateway {
    /// The end of every request: its log line, its metrics, its audit event.
    fn finish(
        &self,
        req: &impl AgentHead,
        status: u16,
        error: Option<String>,
        ctx: &mut RequestCtx,
    ) {
        let route = ctx.route.as_ref();
        let span = ctx.span.clone();
        let _in_span = span.enter();
        tracing::info!(
            method = %req.method(),
            path = req.path(),
            status,
            server = route.map(|r| r.server_name()),
            principal = route.map(|r| r.principal_name()),
            error,
            "request"
        );
        if let Some(m) = &self.metrics {
            m.record(&ctx.tally);
        }
        self.audit(req, status, ctx);
    }
}
