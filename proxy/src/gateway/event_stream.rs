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
//! filtering of events ([`Gateway::filter_body`], in `relay.rs`), registration for
//! revocation, and the log line, metrics and audit event
//! ([`Gateway::finish`]). Whatever this path does not handle is declined
//! before the agent gets a byte, and Pingora serves the request as before:
//! refusals, virtual servers, TLS or bridged upstreams, a credential that is
//! unavailable, an upstream that cannot be reached or answers anything but
//! `2xx text/event-stream`.

use std::time::Duration;

use http::HeaderValue;
use pingora_core::protocols::Stream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::direct::CONNECT;
use super::relay::{read_response_head, AgentSide, Relay};
use super::{Gateway, RequestCtx, ResponseMode};
use crate::admit::{self, Route};
use crate::fields::{AgentHead, EditFields, Fields, ResponseFields};
use crate::http1::RawRequest;
use crate::http_headers::{content_coding, strip_response};
use crate::sse::SseRewriter;

/// How long the upstream may take to answer with its response head.
const HEAD: Duration = Duration::from_secs(30);

impl Gateway {
    /// Serves `req`, an event-stream `GET`, on `agent`. False: declined,
    /// nothing was written to the agent, and Pingora should serve it.
    ///
    /// An open stream holds only what its end needs: the request's method,
    /// path and session (not its whole header), the route, the two sockets.
    pub(crate) async fn serve_event_stream(
        &self,
        agent: &mut Stream,
        req: Box<RawRequest>,
    ) -> bool {
        let Some(mut route) = self.admit_stream(&req) else {
            return false;
        };
        let mut ctx = Box::new(RequestCtx::new());
        ctx.begin(&*req);
        ctx.tally.admitted(route.upstream(), route.method);
        ctx.tally.upstream_started();
        let Some(mut upstream) = self.open_upstream(&req, &route, &ctx).await else {
            return false;
        };
        let Ok((mut resp, framing, rest)) = read_response_head(&mut upstream, Some(HEAD)).await
        else {
            return false;
        };
        let is_events = resp
            .field(&http::header::CONTENT_TYPE)
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(b"text/event-stream"));
        // An encoded stream could not be filtered here: Pingora's path decodes it first.
        let encoded = content_coding(&resp).is_some();
        // Re-check first: a sweep that ran before the registration below must not be missed.
        if !resp.status().is_success()
            || !is_events
            || encoded
            || route.refresh(&self.snapshots).is_err()
        {
            return false;
        }
        // Committed: from here on the agent is answered on this path.
        let status = resp.status().as_u16();
        ctx.tally.upstream_responded(status);
        strip_response(&mut resp);
        let framed = (|| {
            self.seal_issued_session(&mut resp, &route, &mut ctx.audit)?;
            resp.remove_field(&http::header::CONTENT_LENGTH);
            let chunked = HeaderValue::from_static("chunked");
            resp.set_field(http::header::TRANSFER_ENCODING, chunked)?;
            // The connection ends with the stream (it is this path's only request).
            resp.set_field(http::header::CONNECTION, HeaderValue::from_static("close"))
        })();
        if self.auditor.is_some() {
            ctx.audit.tap.sse = true;
            ctx.audit.tap.active = route.calls_tools || route.settings().audit.all_methods;
        }
        ctx.stream = self.register_stream(&route);
        ctx.response = ResponseMode::Sse(SseRewriter::default());
        ctx.route = Some(route);
        let head = resp.to_wire();
        drop(resp);
        let whole = req;
        let req = super::summary(&*whole);
        drop(whole);
        let relay = Relay {
            head,
            framing,
            pending: rest,
            chunked: true,
        };
        let error = match framed {
            Err(e) => Some(e.to_string()),
            Ok(_) => self
                .relay(agent, AgentSide::Stream, &mut upstream, relay, &mut ctx)
                .await
                .err()
                .map(|cut| cut.error.to_string()),
        };
        self.finish(&req, status, error, &mut ctx);
        true
    }

    /// Admission as for Pingora, for the streams this path serves: to a
    /// Streamable HTTP server over plain HTTP whose credential is available.
    fn admit_stream(&self, req: &RawRequest) -> Option<Route> {
        let snapshot = self.snapshots.load_full();
        let up = admit::server_from_path(req.path()).and_then(|n| snapshot.upstream(n))?;
        if !super::direct::plain_streamable_http(up) || up.credential_unavailable.is_some() {
            return None;
        }
        admit::admit_event_stream(req, &snapshot, &self.seal).ok()
    }

    /// Connects to the upstream and sends it the stream's request.
    async fn open_upstream(
        &self,
        req: &RawRequest,
        route: &Route,
        ctx: &RequestCtx,
    ) -> Option<TcpStream> {
        let up = route.upstream();
        let addr = super::upstream_request::upstream_addr(up).await.ok()?;
        let mut upstream = super::direct::connect(addr).await.ok()?;
        let mut forward = req.upstream();
        self.point_upstream(&mut forward, route, ctx.trace.as_ref(), None)
            .ok()?;
        // Events are filtered: they must arrive readable.
        let identity = http::HeaderValue::from_static("identity");
        forward
            .set_field(http::header::ACCEPT_ENCODING, identity)
            .ok()?;
        let head = forward.to_wire(b"");
        tokio::time::timeout(CONNECT, upstream.write_all(&head))
            .await
            .ok()?
            .ok()?;
        Some(upstream)
    }
}
