//! Response rewriting: the upstream's session id sealed for the caller,
//! event streams registered for revocation, `tools/list` results filtered
//! for the caller (JSON or SSE), and a virtual server's call resent when its
//! upstream restarted.

use bytes::Bytes;
use http::HeaderValue;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;

use std::sync::Arc;

use super::relay::access_ended;
use super::{AuditState, Gateway, RequestCtx, ResponseMode, MAX_FILTERED_JSON};
use crate::admit::Route;
use crate::error::Refusal;
use crate::fields::{visible_ascii, ResponseFields};
use crate::filter::{self, Filtered, ListIds};
use crate::http_headers::{strip_response, MCP_SESSION_ID};
use crate::sessions::SessionSeal;
use crate::sse::SseRewriter;
use crate::streams::StreamGuard;
use crate::virtual_server::{self, UpstreamLink};

/// `Content-Type: application/json`.
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `Transfer-Encoding: chunked`.
const CHUNKED: HeaderValue = HeaderValue::from_static("chunked");

impl Gateway {
    /// The upstream's response head as the agent may see it: counted,
    /// hop-by-hop headers removed, a refusal of the gateway's credential
    /// turned into a 502. Returns its content type, in lower case.
    pub(super) fn receive_head(
        &self,
        resp: &mut impl ResponseFields,
        ctx: &mut RequestCtx,
    ) -> Result<Vec<u8>> {
        ctx.tally.upstream_responded(resp.status().as_u16());
        strip_response(resp);
        if resp.status() == http::StatusCode::UNAUTHORIZED {
            // The upstream refused the gateway's credential: the agent cannot fix that.
            tracing::warn!(server = %ctx.route.as_ref().map_or("?", |r| r.server_name()), "upstream refused the gateway credential");
            resp.set_status(http::StatusCode::BAD_GATEWAY)?;
            resp.remove_field(&http::header::WWW_AUTHENTICATE);
        }
        Ok(resp
            .field(&http::header::CONTENT_TYPE)
            .map(<[u8]>::to_ascii_lowercase)
            .unwrap_or_default())
    }

    /// How the body is passed on: tapped for the audit trail, an event
    /// stream registered for revocation, a `tools/list` result filtered
    /// (its headers fixed for that).
    pub(super) fn choose_response_mode(
        &self,
        resp: &mut impl ResponseFields,
        ctx: &mut RequestCtx,
        content_type: &[u8],
    ) -> Result<()> {
        let Some(route) = ctx.route.as_mut() else {
            return Ok(());
        };
        if self.auditor.is_some() {
            ctx.audit.tap.sse = content_type.starts_with(b"text/event-stream");
            ctx.audit.tap.active = route.calls_tools || route.settings().audit.all_methods;
        }
        if content_type.starts_with(b"text/event-stream") {
            // Re-check first: a sweep that ran before this registration must not be missed.
            route
                .refresh(&self.snapshots)
                .map_err(|r| access_ended(format!("access ended: {r}")))?;
            ctx.stream = self.register_stream(route);
        }
        if !route.list_ids.is_active() {
            return Ok(());
        }
        ctx.response = if content_type.starts_with(b"application/json") {
            ResponseMode::Json(Vec::new())
        } else if content_type.starts_with(b"text/event-stream") {
            ResponseMode::Sse(SseRewriter::default())
        } else if resp.status().is_success() && resp.status() != http::StatusCode::ACCEPTED {
            // A tool list in a form the gateway cannot check is not passed on.
            resp.set_status(http::StatusCode::BAD_GATEWAY)?;
            resp.set_field(http::header::CONTENT_TYPE, JSON)?;
            ResponseMode::Replace(filter::unreadable_error())
        } else {
            return Ok(());
        };
        // The body is rewritten: its length is known only at the end.
        resp.remove_field(&http::header::CONTENT_LENGTH);
        resp.set_field(http::header::TRANSFER_ENCODING, CHUNKED)?;
        Ok(())
    }

    /// The upstream's session id, sealed for the caller (so only they can
    /// present it), in place of the upstream's own.
    pub(super) fn seal_issued_session(
        &self,
        resp: &mut impl ResponseFields,
        route: &Route,
        audit: &mut AuditState,
    ) -> Result<()> {
        let Some(sid) = resp.field(&MCP_SESSION_ID) else {
            return Ok(());
        };
        let sid = visible_ascii(sid);
        let seal = SessionSeal::for_settings(route.settings(), &self.seal);
        let sealed = seal.seal(&route.digest(), sid.unwrap_or(""));
        if self.auditor.is_some() {
            audit.issued_session = Some(sealed.clone());
        }
        if let (Some(m), None) = (&self.metrics, &route.upstream_session) {
            m.session_initialized(route.upstream());
        }
        let sealed = HeaderValue::try_from(sealed)
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "sealed session id", e))?;
        resp.set_field(MCP_SESSION_ID, sealed)?;
        Ok(())
    }

    /// Registers an event stream, so a revocation ends it even while idle.
    pub(super) fn register_stream(&self, route: &Route) -> Option<StreamGuard> {
        let server: Arc<str> = match &route.via_virtual {
            Some(v) => v.clone(),
            None => route.upstream().name.clone(),
        };
        self.streams.register(route.digest(), server)
    }

    /// Filters `tools/list` results; ends the response if the caller lost access.
    pub(super) fn filter_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(route) = ctx.route.as_mut() else {
            return Ok(());
        };
        route
            .refresh(&self.snapshots)
            .map_err(|r| access_ended(format!("access ended mid-response: {r}")))?;
        let allowed = |tool: &str| route.can_call(tool);
        match &mut ctx.response {
            ResponseMode::PassThrough => {}
            ResponseMode::Replace(replacement) => {
                *body = end_of_stream.then(|| Bytes::from(std::mem::take(replacement)));
            }
            ResponseMode::Json(buf) | ResponseMode::CompressedJson(buf, _) => {
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
                    let whole = match &ctx.response {
                        ResponseMode::CompressedJson(_, gzip) => inflate(&whole, *gzip),
                        _ => Some(whole),
                    };
                    let out = match whole
                        .map(|w| (filter::filter_message(&w, &route.list_ids, &allowed), w))
                    {
                        Some((Filtered::Unchanged, whole)) => whole,
                        Some((Filtered::Rewritten(out), _)) => out,
                        Some((Filtered::Unreadable, _)) | None => {
                            unreadable_list(route.server_name())
                        }
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
                            Filtered::Unreadable => Some(unreadable_list(route.server_name())),
                        },
                    )
                    .map_err(|e| Error::explain(ErrorType::InternalError, e.to_string()))?;
                if end_of_stream {
                    out.extend(rewriter.finish());
                }
                *body = Some(Bytes::from(out));
            }
        }
        Ok(())
    }

    /// A virtual server's call met an upstream that forgot its session (it
    /// restarted): the call is sent again in a new session and its answer
    /// replaces the 404; if that fails too, the agent gets a retryable error.
    pub(super) async fn reopen_virtual_session(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
        link: &UpstreamLink,
    ) -> Result<()> {
        let Some(route) = ctx.route.as_ref() else {
            return Ok(());
        };
        let server = route.upstream().name.clone();
        let pool = &self.virtual_sessions;
        pool.forget(&link.nonce, &server, route.upstream_session.as_deref())
            .await;
        resp.remove_header(&http::header::CONTENT_LENGTH);
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        match virtual_server::resend::resend(pool, route, link).await {
            Ok(resent) => {
                tracing::info!(%server, "upstream of a virtual server restarted: call sent again in a new session");
                resp.set_status(resent.status)?;
                let content_type = resent.content_type.as_deref().unwrap_or("application/json");
                resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
                if self.auditor.is_some() {
                    ctx.audit.tap.sse = content_type.starts_with("text/event-stream");
                    ctx.audit.tap.active = true;
                }
                ctx.response = ResponseMode::Replace(resent.body.to_vec());
            }
            Err(e) => {
                tracing::warn!(%server, error = %e, "upstream of a virtual server restarted and cannot be reached again");
                resp.set_status(http::StatusCode::BAD_GATEWAY)?;
                resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
                let refusal = Refusal::UpstreamRestarted {
                    id: route.reply_id.clone(),
                    server: server.to_string(),
                };
                ctx.response = ResponseMode::Replace(refusal.to_response().body);
            }
        }
        Ok(())
    }
}

/// A gzip (`gzip: true`) or deflate body decoded, if it is one and not
/// larger than the gateway filters.
fn inflate(data: &[u8], gzip: bool) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let limit = MAX_FILTERED_JSON as u64 + 1;
    let read = if gzip {
        flate2::read::GzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)
    };
    (read.is_ok() && out.len() <= MAX_FILTERED_JSON).then_some(out)
}

/// The error that replaces a tool list the gateway could not check, logged
/// for the operator (the server's name only, never the body).
fn unreadable_list(server: &str) -> Vec<u8> {
    tracing::warn!(
        server,
        "tools/list answer not checkable (not JSON, or a member duplicated or spelled like one the gateway reads): replaced by an error"
    );
    filter::unreadable_error()
}
