//! Virtual servers: MCP sessions the gateway terminates itself.
//!
//! At `/mcp/{virtual server}` the gateway answers `initialize`, `ping` and
//! `tools/list` from the snapshot (the caller's tool list is serialized once
//! per policy class), and turns each `tools/call` into a call of the owning
//! server under the tool's original name, in an upstream session opened for
//! the agent's session ([`upstream_sessions`]). That call then travels the
//! ordinary proxy path: the owner's credential, audit, metrics, streaming of
//! JSON or SSE results with their progress notifications.
//!
//! Session state lives in the sealed session id ([`session_id`]), so any
//! replica with the shared session key serves the session. A GET stream
//! ([`events`]) tells agents `notifications/tools/list_changed` when a new
//! snapshot changes their list. Prompts and resources of member servers are
//! listed from those servers when asked ([`members`]); `prompts/get` and
//! `resources/read` go to the member exposing them.

pub mod events;
mod forward;
pub mod members;
pub mod resend;
pub mod session_id;
pub mod upstream_sessions;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use catalog::Snapshot;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use serde_json::{json, Value};

use crate::admit::{Admitted, Rejected, VirtualCaller};
use crate::body::read_request_body;
use crate::decide::{check_headers, McpHeaders};
use crate::error::Refusal;
use crate::jsonrpc;
use crate::sessions::SessionSeal;
use crate::streams::StreamRegistry;
use session_id::VirtualSession;
pub use upstream_sessions::UpstreamSessions;

/// Protocol revisions a virtual server speaks, newest first.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What became of a request to a virtual server.
pub enum Outcome {
    /// The gateway answered it.
    Answered,
    /// A `tools/call` to forward to its owning server: the route, the
    /// rewritten body, and the upstream session it travels in.
    Forward(Box<Admitted>, UpstreamLink),
}

/// The upstream session a forwarded call uses.
#[derive(Debug, Clone)]
pub struct UpstreamLink {
    /// The virtual session's nonce (keys its upstream sessions).
    pub nonce: String,
    /// The protocol version agreed with the upstream.
    pub protocol: String,
    /// The protocol version agreed with the agent (asked of new upstream sessions).
    pub agent_protocol: String,
    /// The body sent upstream, kept to send again in a new session.
    pub body: Bytes,
}

/// Serves one request to a virtual server.
pub async fn handle(
    session: &mut Session,
    caller: VirtualCaller,
    seal: &SessionSeal,
    pool: &Arc<UpstreamSessions>,
    snapshots: &Arc<ArcSwap<Snapshot>>,
    streams: &Arc<StreamRegistry>,
) -> Result<Outcome, Rejected> {
    let seal = SessionSeal::for_settings(&caller.snapshot.settings, seal).into_owned();
    let reject = |r: Refusal| Rejected {
        error: r.into(),
        route: None,
        body: None,
    };
    let presented = session
        .req_header()
        .headers
        .get(&crate::http_headers::MCP_SESSION_ID)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let name = caller.endpoint().name.clone();
    let open = |presented: &str| {
        session_id::open(&seal, &caller.digest, presented, &name).ok_or(Refusal::UnknownSession)
    };
    match session.req_header().method {
        http::Method::GET => {
            open(
                presented
                    .as_deref()
                    .ok_or_else(|| reject(missing_session()))?,
            )
            .map_err(reject)?;
            events::serve(session, &caller, snapshots, streams)
                .await
                .map_err(io)?;
            Ok(Outcome::Answered)
        }
        http::Method::DELETE => {
            let vs = open(
                presented
                    .as_deref()
                    .ok_or_else(|| reject(missing_session()))?,
            )
            .map_err(reject)?;
            pool.close_all(&vs.nonce);
            write(session, 204, None, Vec::new()).await.map_err(io)?;
            Ok(Outcome::Answered)
        }
        http::Method::POST => {
            let max = caller.snapshot.settings.max_body_bytes;
            let body = read_request_body(session, max)
                .await
                .map_err(|e| Rejected {
                    error: e.into(),
                    route: None,
                    body: None,
                })?;
            let vs = match presented.as_deref() {
                Some(p) => Some(open(p).map_err(reject)?),
                None => None,
            };
            post(session, &caller, &seal, pool, vs, body).await
        }
        _ => Err(reject(Refusal::MethodNotAllowed)),
    }
}

fn missing_session() -> Refusal {
    Refusal::SessionRequired
}

fn io(e: Box<pingora_error::Error>) -> Rejected {
    Rejected {
        error: crate::admit::AdmitError::Io(e),
        route: None,
        body: None,
    }
}

async fn post(
    session: &mut Session,
    caller: &VirtualCaller,
    seal: &SessionSeal,
    pool: &Arc<UpstreamSessions>,
    vs: Option<VirtualSession>,
    body: Bytes,
) -> Result<Outcome, Rejected> {
    let reject = |r: Refusal, body: &Bytes| Rejected {
        error: r.into(),
        route: None,
        body: Some(body.clone()),
    };
    let parsed = jsonrpc::parse(&body).map_err(|e| reject(Refusal::Parse(e), &body))?;
    let headers = session.req_header();
    let mcp = McpHeaders::of(headers);
    check_headers(&parsed, &mcp).map_err(|r| reject(r, &body))?;
    let jsonrpc::Body::Single(msg) = &parsed else {
        return Err(reject(
            Refusal::Unsupported("JSON-RPC batches are not accepted by virtual servers".into()),
            &body,
        ));
    };
    let id = msg.id.clone();
    let Some(method) = msg.method() else {
        // A response to a server request: virtual servers send none.
        write(session, 202, None, Vec::new()).await.map_err(io)?;
        return Ok(Outcome::Answered);
    };
    if method == "server/discover" {
        // The stateless 2026-07-28 handshake: virtual servers keep sessions.
        // A 400 sends clients back to initialize.
        let message = "virtual servers speak MCP 2025-11-25 and earlier: initialize a session";
        let reply = error_reply(&id, crate::error::INVALID_PARAMS, message);
        write(session, 400, None, reply).await.map_err(io)?;
        return Ok(Outcome::Answered);
    }
    if method == "initialize" {
        let value: Value = serde_json::from_slice(&body).unwrap_or_default();
        let asked = value["params"]["protocolVersion"].as_str().unwrap_or("");
        let protocol = PROTOCOL_VERSIONS
            .iter()
            .find(|v| **v == asked)
            .unwrap_or(&PROTOCOL_VERSIONS[0]);
        let v = caller.endpoint();
        let (sid, _) = session_id::issue(seal, &caller.digest, &v.name, protocol);
        let mut capabilities = json!({"tools": {"listChanged": true}});
        if v.has_prompts() {
            capabilities["prompts"] = json!({});
        }
        if v.has_resources() {
            capabilities["resources"] = json!({});
        }
        let mut result = json!({
            "protocolVersion": protocol,
            "capabilities": capabilities,
            "serverInfo": {"name": &*v.name, "version": env!("CARGO_PKG_VERSION")},
        });
        if !v.description.is_empty() {
            result["instructions"] = Value::from(&*v.description);
        }
        let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
        write(session, 200, Some(&sid), reply.to_string().into_bytes())
            .await
            .map_err(io)?;
        return Ok(Outcome::Answered);
    }
    let Some(vs) = vs else {
        return Err(reject(missing_session(), &body));
    };
    if method.starts_with("notifications/") {
        write(session, 202, None, Vec::new()).await.map_err(io)?;
        return Ok(Outcome::Answered);
    }
    let reply = match method {
        "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}})
            .to_string()
            .into_bytes(),
        "tools/list" => {
            let value: Value = serde_json::from_slice(&body).unwrap_or_default();
            if value["params"].get("cursor").is_some_and(|c| !c.is_null()) {
                error_reply(&id, crate::error::INVALID_PARAMS, "invalid cursor")
            } else {
                let tools = caller.snapshot.virtual_tool_list(caller.class(), caller.id);
                let mut out = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"result":{{"tools":"#,
                    id_json(&id)
                )
                .into_bytes();
                out.extend_from_slice(&tools);
                out.extend_from_slice(b"}}");
                out
            }
        }
        "tools/call" => {
            let tool = msg.tool().unwrap_or("").to_string();
            return forward::call(caller, pool, &vs, body, id, &tool).await;
        }
        "prompts/list" | "resources/list" | "resources/templates/list" => {
            let listing = match method {
                "prompts/list" => members::Listing::Prompts,
                "resources/list" => members::Listing::Resources,
                _ => members::Listing::ResourceTemplates,
            };
            let items: Vec<Value> = members::list(caller, pool, &vs, listing)
                .await
                .into_iter()
                .map(|i| i.value)
                .collect();
            json!({"jsonrpc": "2.0", "id": id, "result": {listing.field(): items}})
                .to_string()
                .into_bytes()
        }
        "prompts/get" | "resources/read" => {
            let method = if method == "prompts/get" {
                "prompts/get"
            } else {
                "resources/read"
            };
            match forward::member_request(caller, pool, &vs, body, id.clone(), method).await? {
                Some(outcome) => return Ok(outcome),
                None => error_reply(
                    &id,
                    crate::error::INVALID_PARAMS,
                    "not available on this server",
                ),
            }
        }
        other => error_reply(&id, -32601, &format!("method not found: {other}")),
    };
    write(session, 200, None, reply).await.map_err(io)?;
    Ok(Outcome::Answered)
}

fn id_json(id: &Option<Value>) -> String {
    id.as_ref().map_or("null".to_string(), Value::to_string)
}

fn error_reply(id: &Option<Value>, code: i64, message: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        .to_string()
        .into_bytes()
}

/// Writes a whole JSON response (no body for 202 and 204).
async fn write(
    session: &mut Session,
    status: u16,
    session_id: Option<&str>,
    body: Vec<u8>,
) -> pingora_error::Result<()> {
    let mut header = ResponseHeader::build(status, Some(4))?;
    if !body.is_empty() {
        header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    if let Some(sid) = session_id {
        header.insert_header(crate::http_headers::MCP_SESSION_ID, sid)?;
    }
    session
        .write_response_header(Box::new(header), body.is_empty())
        .await?;
    if !body.is_empty() {
        session
            .write_response_body(Some(Bytes::from(body)), true)
            .await?;
    }
    Ok(())
}
