//! The Pingora `ProxyHttp` implementation. Each hook is a few lines that
//! delegate to plain functions (see `admit.rs`, `decide.rs`, `filter.rs`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use catalog::Snapshot;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::admit::{self, Admitted, Route};
use crate::error::Refusal;
use crate::filter::{self, Filtered, ListIds};
use crate::http_headers::{strip_request, strip_response};
use crate::large_body;
use crate::sessions::SessionSeal;
use crate::sse::SseRewriter;
use crate::streams::{StreamGuard, StreamRegistry};
use crate::tls::CaCache;

/// The toolgate data plane. Reads one [`Snapshot`] per request from `snapshots`.
pub struct Gateway {
    snapshots: Arc<ArcSwap<Snapshot>>,
    streams: Arc<StreamRegistry>,
    private_cas: CaCache,
    seal: SessionSeal,
}

impl Gateway {
    /// A gateway serving whatever snapshot `snapshots` holds; open event
    /// streams are tracked in `streams`.
    pub fn new(
        snapshots: Arc<ArcSwap<Snapshot>>,
        streams: Arc<StreamRegistry>,
        seal: SessionSeal,
    ) -> Self {
        Gateway {
            snapshots,
            streams,
            private_cas: CaCache::default(),
            seal,
        }
    }
}

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    /// Set once the request is admitted.
    pub(crate) route: Option<Route>,
    /// The checked body to send upstream instead of the bytes Pingora replays.
    pub(crate) forward_body: Option<Bytes>,
    response: ResponseMode,
    /// Keeps an event stream registered for revocation while it is open.
    stream: Option<StreamGuard>,
}

#[derive(Default)]
enum ResponseMode {
    #[default]
    PassThrough,
    Json(Vec<u8>),
    Sse(SseRewriter),
    Replace(Vec<u8>),
}

/// Idle time allowed between requests on a keep-alive connection.
const KEEPALIVE_IDLE_SECS: u64 = 60;

/// Largest JSON response buffered for `tools/list` filtering (64 MiB).
const MAX_FILTERED_JSON: usize = 64 * 1024 * 1024;

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    fn allow_spawning_subrequest(&self, session: &Session, _ctx: &RequestCtx) -> bool {
        session.subrequest_ctx.is_none()
    }

    /// Authenticate, read and parse the body, decide. Refusals are answered
    /// here and nothing reaches the upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let (route, body) = match large_body::take_checked_route(session) {
            // A subrequest carrying a body its parent already checked.
            Some(route) => (route, None),
            None => match admit::admit(session, &self.snapshots, &self.seal).await {
                Ok(Admitted { route, body }) => (route, body),
                Err(admit::AdmitError::Refused(refusal)) => {
                    // Denials name the tools; nothing here carries a token or secret.
                    tracing::info!(
                        path = session.req_header().uri.path(),
                        refusal = %refusal,
                        tools = ?denied_tools(&refusal),
                        "request refused"
                    );
                    respond(session, &refusal).await?;
                    return Ok(true);
                }
                Err(admit::AdmitError::Io(e)) => return Err(e),
            },
        };
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
                // Pingora replays at most 64 KiB: send the checked body ourselves.
                large_body::forward(session, route, body, &self.streams).await?;
                return Ok(true);
            }
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
        let up = route.upstream();
        let addr = match up.addr {
            Some(addr) => addr,
            None => {
                let target = (up.endpoint.host.as_str(), up.endpoint.port);
                tokio::net::lookup_host(target)
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        Error::explain(
                            ErrorType::ConnectNoRoute,
                            format!("cannot resolve {}", up.endpoint.host),
                        )
                    })?
            }
        };
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
        let up = route.upstream();
        // The operator's endpoint, exactly: an agent's query string could
        // override parameters (keys, tenants) the endpoint URL sets.
        let uri = up.endpoint.path_and_query.parse();
        req.set_uri(uri.map_err(|_| Error::new(ErrorType::InternalError))?);
        strip_request(req);
        req.insert_header(http::header::HOST, up.host_header.clone())?;
        if let Some((name, value)) = &up.credential {
            req.insert_header(name.clone(), value.clone())?;
        }
        if let Some(sid) = &route.upstream_session {
            req.insert_header("mcp-session-id", sid.as_str())?;
        }
        if let Some(len) = route.body_len {
            // The upstream reads exactly the bytes the gateway checked, as UTF-8 JSON.
            req.remove_header(&http::header::CONTENT_ENCODING);
            req.insert_header(http::header::CONTENT_TYPE, "application/json")?;
            req.insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
        }
        Ok(())
    }

    /// Choose how the response body is rewritten, and fix the headers for it.
    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        strip_response(resp);
        if resp.status == http::StatusCode::UNAUTHORIZED {
            // The upstream refused the gateway's credential: the agent cannot fix that.
            tracing::warn!(server = %ctx.route.as_ref().map_or("?", |r| r.server_name()), "upstream refused the gateway credential");
            resp.set_status(http::StatusCode::BAD_GATEWAY)?;
            resp.remove_header(&http::header::WWW_AUTHENTICATE);
        }
        let content_type = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes().to_ascii_lowercase())
            .unwrap_or_default();
        let Some(route) = ctx.route.as_mut() else {
            return Ok(());
        };
        if let Some(sid) = resp.headers.get("mcp-session-id") {
            let sealed = self.seal.seal(&route.digest(), sid.to_str().unwrap_or(""));
            resp.insert_header("mcp-session-id", sealed)?;
        }
        if content_type.starts_with(b"text/event-stream") {
            // Re-check first: a sweep that ran before this registration must not be missed.
            route.refresh(&self.snapshots).map_err(|r| {
                Error::explain(ErrorType::HTTPStatus(403), format!("access ended: {r}"))
            })?;
            let server: Arc<str> = route.upstream().name.clone();
            ctx.stream = self.streams.register(route.digest(), server);
        }
        if !route.list_ids.is_active() {
            return Ok(());
        }
        ctx.response = if content_type.starts_with(b"application/json") {
            ResponseMode::Json(Vec::new())
        } else if content_type.starts_with(b"text/event-stream") {
            ResponseMode::Sse(SseRewriter::default())
        } else if resp.status.is_success() && resp.status != http::StatusCode::ACCEPTED {
            // A tool list in a form the gateway cannot check is not passed on.
            resp.set_status(http::StatusCode::BAD_GATEWAY)?;
            resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
            ResponseMode::Replace(filter::unreadable_error())
        } else {
            return Ok(());
        };
        // The body is rewritten: its length is known only at the end.
        resp.remove_header(&http::header::CONTENT_LENGTH);
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        Ok(())
    }

    /// Filter `tools/list` results; end the response if the caller lost access.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        let Some(route) = ctx.route.as_mut() else {
            return Ok(None);
        };
        route.refresh(&self.snapshots).map_err(|r| {
            Error::explain(
                ErrorType::HTTPStatus(403),
                format!("access ended mid-response: {r}"),
            )
        })?;
        let allowed = |tool: &str| route.can_call(tool);
        match &mut ctx.response {
            ResponseMode::PassThrough => {}
            ResponseMode::Replace(replacement) => {
                *body = end_of_stream.then(|| Bytes::from(std::mem::take(replacement)));
            }
            ResponseMode::Json(buf) => {
                if let Some(chunk) = body.take() {
                    buf.extend_from_slice(&chunk);
                }
                if buf.len() > MAX_FILTERED_JSON {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "tools/list response too large to filter",
                    );
                }
                if end_of_stream {
                    let whole = std::mem::take(buf);
                    let out = match filter::filter_message(&whole, &route.list_ids, &allowed) {
                        Filtered::Unchanged => whole,
                        Filtered::Rewritten(out) => out,
                        Filtered::Unreadable => filter::unreadable_error(),
                    };
                    *body = Some(Bytes::from(out));
                }
            }
            ResponseMode::Sse(rewriter) => {
                let chunk = body.take().unwrap_or_default();
                let ids: &ListIds = &route.list_ids;
                let mut out = rewriter
                    .push(
                        &chunk,
                        &mut |data| match filter::filter_message(data, ids, &allowed) {
                            Filtered::Unchanged => None,
                            Filtered::Rewritten(out) => Some(out),
                            Filtered::Unreadable => Some(filter::unreadable_error()),
                        },
                    )
                    .map_err(|e| Error::explain(ErrorType::InternalError, e.to_string()))?;
                if end_of_stream {
                    out.extend(rewriter.finish());
                }
                *body = Some(Bytes::from(out));
            }
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
        let status = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => 0, // the agent is gone
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if status > 0 && session.response_written().is_none() {
            let id = ctx.route.as_ref().and_then(|r| r.reply_id.clone());
            let _ = respond(session, &Refusal::UpstreamUnavailable { id, status }).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route.as_ref();
        tracing::info!(
            method = %session.req_header().method,
            path = session.req_header().uri.path(),
            status,
            server = route.map(|r| r.server_name()),
            principal = route.map(|r| r.principal_name()),
            error = e.map(|e| e.to_string()),
            "request"
        );
    }
}

fn denied_tools(refusal: &Refusal) -> Vec<&str> {
    match refusal {
        Refusal::Denied(calls) => calls.iter().filter_map(|c| c.tool.as_deref()).collect(),
        _ => Vec::new(),
    }
}

/// Writes a refusal as the whole response.
pub(crate) async fn respond(session: &mut Session, refusal: &Refusal) -> Result<()> {
    let r = refusal.to_response();
    let mut header = ResponseHeader::build(r.status, Some(4))?;
    if !r.body.is_empty() {
        header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
    for (name, value) in r.headers {
        header.insert_header(name, value)?;
    }
    session.set_keepalive(None);
    session
        .write_response_header(Box::new(header), r.body.is_empty())
        .await?;
    if !r.body.is_empty() {
        session
            .write_response_body(Some(Bytes::from(r.body)), true)
            .await?;
    }
    Ok(())
}
