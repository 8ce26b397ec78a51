//! Where a request goes upstream and what it carries there: the address,
//! and the request head pointed at the operator's endpoint with the
//! server's credential (never the caller's).

use std::net::SocketAddr;

use catalog::Upstream;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;

use super::Gateway;
use crate::admit::Route;
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
        req: &mut RequestHeader,
        route: &Route,
        trace: Option<&TraceContext>,
        virtual_link: Option<&UpstreamLink>,
    ) -> Result<()> {
        let up = route.upstream();
        // The operator's endpoint, exactly: an agent's query string could
        // override parameters (keys, tenants) the endpoint URL sets.
        req.set_uri(up.target.clone());
        strip_request(req);
        req.insert_header(http::header::HOST, up.host_header.clone())?;
        if let Some((name, value)) = &up.credential {
            req.insert_header(name.clone(), value.clone())?;
        }
        if up.transport != catalog::model::Transport::StreamableHttp {
            req.insert_header(crate::bridge::BRIDGE_SECRET_HEADER, self.bridges.secret())?;
        }
        // Delegated OAuth: the caller's own token (admission refused callers without one).
        if let Some(value) = route.delegated_credential().map_err(|r| {
            Error::explain(
                ErrorType::InternalError,
                format!("delegated credential: {r}"),
            )
        })? {
            req.insert_header(http::header::AUTHORIZATION, value.clone())?;
        }
        if let Some(sid) = &route.upstream_session {
            req.insert_header(MCP_SESSION_ID, sid.as_str())?;
        }
        if let Some(link) = virtual_link {
            // The version this upstream agreed to, not the agent's.
            req.insert_header(MCP_PROTOCOL_VERSION, link.protocol.as_str())?;
        }
        if let Some(trace) = trace {
            req.insert_header(TRACEPARENT, trace.header_value())?;
        }
        if let Some(len) = route.body_len {
            // The upstream reads exactly the bytes the gateway checked, as UTF-8 JSON.
            crate::http_headers::set_checked_body(req, len)?;
        }
        Ok(())
    }
}
