//! Where a request goes upstream and what it carries there: the address,
//! and the request head pointed at the operator's endpoint with the
//! server's credential (never the caller's).

use std::net::SocketAddr;

use catalog::Upstream;
use pingora_error::{Error, ErrorType, Result};

use super::Gateway;
use crate::admit::Route;
use crate::bridge::BRIDGE_SECRET_HEADER;
use crate::fields::UpstreamHead;
use crate::http_headers::{strip_request, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, TRACEPARENT};
use crate::trace::TraceContext;
use crate::virtual_server::UpstreamLink;

/// The address of a Streamable HTTP upstream: the catalog's, or its host resolved now.
pub(super) async fn upstream_addr(up: &Upstream) -> Result<SocketAddr> {
    if let Some(addr) = up.addr {
        return Ok(addr);
    }
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
        })
}

impl Gateway {
    /// Points a request at the route's upstream: the operator's endpoint and
    /// Host, the server's credential (or the caller's delegated one), the
    /// upstream session, the trace context; the caller's token and
    /// hop-by-hop headers removed.
    pub(super) fn point_upstream(
        &self,
        req: &mut impl UpstreamHead,
        route: &Route,
        trace: Option<&TraceContext>,
        virtual_link: Option<&UpstreamLink>,
    ) -> Result<()> {
        let up = route.upstream();
        // The operator's endpoint, exactly: an agent's query string could
        // override parameters (keys, tenants) the endpoint URL sets.
        req.set_target(up.target.clone());
        strip_request(req);
        req.set_field(http::header::HOST, up.host_header.clone())?;
        if let Some((name, value)) = &up.credential {
            req.set_field(name.clone(), value.clone())?;
        }
        if up.transport != catalog::model::Transport::StreamableHttp {
            let secret = field_value(self.bridges.secret())?;
            req.set_field(http::HeaderName::from_static(BRIDGE_SECRET_HEADER), secret)?;
        }
        // Delegated OAuth: the caller's own token (admission refused callers without one).
        if let Some(value) = route.delegated_credential().map_err(|r| {
            Error::explain(
                ErrorType::InternalError,
                format!("delegated credential: {r}"),
            )
        })? {
            req.set_field(http::header::AUTHORIZATION, value.clone())?;
        }
        if let Some(sid) = &route.upstream_session {
            req.set_field(MCP_SESSION_ID, field_value(sid.as_str())?)?;
        }
        if let Some(link) = virtual_link {
            // The version this upstream agreed to, not the agent's.
            req.set_field(MCP_PROTOCOL_VERSION, field_value(link.protocol.as_str())?)?;
        }
        if let Some(trace) = trace {
            req.set_field(TRACEPARENT, field_value(trace.header_value())?)?;
        }
        if let Some(len) = route.body_len {
            // The upstream reads exactly the bytes the gateway checked, as UTF-8 JSON.
            crate::http_headers::set_checked_body(req, len)?;
        }
        Ok(())
    }
}

/// A header value from text the gateway holds (a session id, a secret):
/// refused as Pingora's `insert_header` refuses one it cannot send.
fn field_value<T>(text: T) -> Result<http::HeaderValue>
where
    http::HeaderValue: TryFrom<T>,
{
    http::HeaderValue::try_from(text)
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid value while insert"))
}
