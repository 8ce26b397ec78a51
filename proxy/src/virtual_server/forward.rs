//! Calls a virtual server passes on: `tools/call` under the tool's original
//! name, `prompts/get` and `resources/read` to the member exposing them; each
//! in the agent's upstream session on that server.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::session_id::VirtualSession;
use super::{members, Outcome, UpstreamLink, UpstreamSessions};
use crate::admit::{Admitted, Rejected, Route, VirtualCaller};
use crate::error::{DeniedCall, Refusal};

/// Routes a `tools/call` to the owning server under the tool's own name.
pub(super) async fn call(
    caller: &VirtualCaller,
    pool: &Arc<UpstreamSessions>,
    vs: &VirtualSession,
    body: Bytes,
    id: Option<Value>,
    exposed: &str,
) -> Result<Outcome, Rejected> {
    let snapshot = &caller.snapshot;
    let denied = |route: Option<Route>, body: Bytes| Rejected {
        error: Refusal::Denied(vec![DeniedCall {
            id: id.clone(),
            tool: Some(exposed.to_string()),
        }])
        .into(),
        route,
        body: Some(body),
    };
    let Some(tool) = snapshot.virtual_tool(caller.class(), caller.id, exposed) else {
        // Unknown and not granted look the same; a known tool's denial is
        // recorded against its server.
        let route = caller.endpoint().tool(exposed).map(|t| {
            let mut r = caller.route_to(t.server);
            r.reply_id = id.clone();
            r.calls_tools = true;
            r.method = "tools/call";
            r.tools = vec![t.original.to_string()];
            r
        });
        return Err(denied(route, body));
    };
    let mut route = caller.route_to(tool.server);
    route.reply_id = id.clone();
    route.calls_tools = true;
    route.method = "tools/call";
    route.tools = vec![tool.original.to_string()];
    // The body the server reads: the agent's, with the original tool name.
    let mut value: Value = serde_json::from_slice(&body).unwrap_or_default();
    value["params"]["name"] = Value::from(&*tool.original);
    forward(caller, pool, vs, route, Bytes::from(value.to_string())).await
}

/// Sends `body` to the route's server in the agent's upstream session there
/// (opened now if needed), on the ordinary proxy path.
async fn forward(
    caller: &VirtualCaller,
    pool: &Arc<UpstreamSessions>,
    vs: &VirtualSession,
    mut route: Route,
    body: Bytes,
) -> Result<Outcome, Rejected> {
    let id = route.reply_id.clone();
    route.body_len = Some(body.len());
    let failed = |r: Refusal, route: Route| Rejected {
        error: r.into(),
        route: Some(route),
        body: Some(body.clone()),
    };
    let auth = match upstream_auth(&route) {
        Ok(auth) => auth,
        Err(r) => return Err(failed(r, route)),
    };
    let up = route.upstream();
    if let Some(why) = &up.credential_unavailable {
        tracing::warn!(server = %up.name, reason = %why, "upstream credential unavailable");
        let r = Refusal::UpstreamUnavailable { id, status: 503 };
        return Err(failed(r, route));
    }
    match pool.ensure(&vs.nonce, up, auth, &vs.protocol).await {
        Ok(opened) => {
            route.upstream_session = opened.session;
            let link = UpstreamLink {
                nonce: vs.nonce.clone(),
                protocol: opened.protocol,
                agent_protocol: vs.protocol.clone(),
                body: body.clone(),
            };
            let admitted = Admitted {
                route,
                body: Some(body),
            };
            Ok(Outcome::Forward(Box::new(admitted), link))
        }
        Err(e) => {
            tracing::warn!(virtual_server = %caller.endpoint().name, error = %e, "virtual server call failed");
            Err(failed(
                Refusal::UpstreamUnavailable { id, status: 502 },
                route,
            ))
        }
    }
}

/// `prompts/get` and `resources/read`: forwarded to the member that exposes
/// the prompt (under its original name) or the resource.
pub(super) async fn member_request(
    caller: &VirtualCaller,
    pool: &Arc<UpstreamSessions>,
    vs: &VirtualSession,
    body: Bytes,
    id: Option<Value>,
    method: &'static str,
) -> Result<Option<Outcome>, Rejected> {
    let mut value: Value = serde_json::from_slice(&body).unwrap_or_default();
    let owner = if method == "prompts/get" {
        let name = value["params"]["name"].as_str().unwrap_or("").to_string();
        let items = members::list(caller, pool, vs, members::Listing::Prompts).await;
        let Some(item) = items.into_iter().find(|i| i.value["name"] == *name) else {
            return Ok(None);
        };
        value["params"]["name"] = Value::from(item.original.unwrap_or_default());
        item.server
    } else {
        let uri = value["params"]["uri"].as_str().unwrap_or("");
        match members::resource_owner(caller, uri) {
            Some(server) => server,
            None => return Ok(None),
        }
    };
    let mut route = caller.route_to(owner);
    route.reply_id = id;
    route.method = method;
    forward(caller, pool, vs, route, Bytes::from(value.to_string()))
        .await
        .map(Some)
}

/// The credential header the owning server gets for this caller.
pub(crate) fn upstream_auth(
    route: &Route,
) -> Result<Option<(http::HeaderName, http::HeaderValue)>, Refusal> {
    if let Some(value) = route.delegated_credential()? {
        return Ok(Some((http::header::AUTHORIZATION, value.clone())));
    }
    Ok(route.upstream().credential.clone())
}
