//! Prompts and resources of a virtual server's members. The catalog does not
//! hold them, so the gateway lists them from each member server (in the
//! agent's upstream sessions) when asked, and keeps only what the virtual
//! server exposes: prompts under their exposed names, resources by URI.

use std::sync::Arc;

use bytes::Bytes;
use catalog::{ServerId, VirtualMember};
use serde_json::{json, Value};

use super::forward::upstream_auth;
use super::session_id::VirtualSession;
use super::upstream_sessions::{first_message, UpstreamSessions};
use crate::admit::VirtualCaller;

/// Most pages read from one server for one list.
const MAX_PAGES: usize = 20;

/// What is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `prompts/list` → `prompts`.
    Prompts,
    /// `resources/list` → `resources`.
    Resources,
    /// `resources/templates/list` → `resourceTemplates`.
    ResourceTemplates,
}

impl Listing {
    /// The JSON-RPC method.
    pub fn method(self) -> &'static str {
        match self {
            Listing::Prompts => "prompts/list",
            Listing::Resources => "resources/list",
            Listing::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The result field holding the items.
    pub fn field(self) -> &'static str {
        match self {
            Listing::Prompts => "prompts",
            Listing::Resources => "resources",
            Listing::ResourceTemplates => "resourceTemplates",
        }
    }
}

/// One exposed item and where it comes from.
#[derive(Debug, Clone)]
pub struct Item {
    /// As agents see it (a prompt under its exposed name).
    pub value: Value,
    /// The owning server.
    pub server: ServerId,
    /// A prompt's name on its server.
    pub original: Option<String>,
}

/// Everything the virtual server exposes of `listing`, in member order.
/// A member that cannot be listed is left out and logged.
pub async fn list(
    caller: &VirtualCaller,
    pool: &Arc<UpstreamSessions>,
    vs: &VirtualSession,
    listing: Listing,
) -> Vec<Item> {
    let mut out = Vec::new();
    for m in &caller.endpoint().members {
        let wanted = match listing {
            Listing::Prompts => !m.prompts.is_empty(),
            _ => !m.resources.is_empty(),
        };
        if !wanted {
            continue;
        }
        match list_member(caller, pool, vs, m, listing).await {
            Ok(items) => out.extend(items),
            Err(e) => {
                let server = &caller.snapshot.upstream_by_id(m.server).name;
                tracing::warn!(%server, method = listing.method(), error = %e, "virtual server member not listed");
            }
        }
    }
    out
}

/// The first member exposing resource `uri`.
pub fn resource_owner(caller: &VirtualCaller, uri: &str) -> Option<ServerId> {
    caller
        .endpoint()
        .members
        .iter()
        .find(|m| m.exposes_resource(uri))
        .map(|m| m.server)
}

async fn list_member(
    caller: &VirtualCaller,
    pool: &Arc<UpstreamSessions>,
    vs: &VirtualSession,
    m: &VirtualMember,
    listing: Listing,
) -> Result<Vec<Item>, String> {
    let route = caller.route_to(m.server);
    let up = route.upstream();
    let auth = upstream_auth(&route).map_err(|r| r.to_string())?;
    let opened = pool
        .ensure(&vs.nonce, up, auth.clone(), &vs.protocol)
        .await?;
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let req =
            json!({"jsonrpc": "2.0", "id": page, "method": listing.method(), "params": params});
        let resp = pool
            .send(up, auth.clone(), &opened, Bytes::from(req.to_string()))
            .await?;
        if !resp.status().is_success() {
            return Err(format!("answered HTTP {}", resp.status()));
        }
        let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
        let reply = first_message(&text).ok_or("no JSON-RPC answer")?;
        if let Some(e) = reply.get("error") {
            return Err(format!("refused: {e}"));
        }
        let result = &reply["result"];
        for value in result[listing.field()].as_array().into_iter().flatten() {
            if let Some(item) = expose(m, listing, value) {
                items.push(item);
            }
        }
        cursor = result["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    Ok(items)
}

fn expose(m: &VirtualMember, listing: Listing, value: &Value) -> Option<Item> {
    match listing {
        Listing::Prompts => {
            let original = value["name"].as_str()?;
            let exposed = m.exposed_prompt(original)?;
            let mut value = value.clone();
            value["name"] = Value::from(exposed);
            Some(Item {
                value,
                server: m.server,
                original: Some(original.to_string()),
            })
        }
        Listing::Resources => m.exposes_resource(value["uri"].as_str()?).then(|| Item {
            value: value.clone(),
            server: m.server,
            original: None,
        }),
        Listing::ResourceTemplates => {
            m.exposes_resource(value["uriTemplate"].as_str()?)
                .then(|| Item {
                    value: value.clone(),
                    server: m.server,
                    original: None,
                })
        }
    }
}
