//! OAuth 2.0 Protected Resource Metadata (RFC 9728), as the MCP
//! authorization spec uses it: an agent that gets a 401 follows the
//! challenge's `resource_metadata` URL to learn which authorization servers
//! (the configured identity providers) issue tokens for the gateway.
//!
//! Served at `/.well-known/oauth-protected-resource` (the gateway) and
//! `/.well-known/oauth-protected-resource/mcp/{server}` (one MCP server),
//! only when identity providers are configured.

use catalog::{Settings, Snapshot};
use serde_json::json;

use crate::admit::server_from_path;
use crate::error::Refusal;
use crate::fields::AgentHead;

/// The well-known path prefix.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The gateway's external base URL without a trailing slash:
/// `gateway.public_url`, else `http://` and the request's `Host` (which
/// admission has checked against `gateway.allowed_hosts`).
pub fn base_url(req: &impl AgentHead, settings: &Settings) -> String {
    if let Some(url) = &settings.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = req
        .text(&http::header::HOST)
        .or_else(|| req.authority())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Splits a base URL into its origin and its path prefix (often empty).
fn origin_and_prefix(base: &str) -> (&str, &str) {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].find('/') {
        Some(i) => base.split_at(after_scheme + i),
        None => (base, ""),
    }
}

/// The metadata URL for `/mcp/{server}` (RFC 9728 §3.1: the well-known
/// segment goes between the origin and the resource's path).
pub fn metadata_url(base: &str, server: &str) -> String {
    let (origin, prefix) = origin_and_prefix(base);
    format!("{origin}{WELL_KNOWN}{prefix}/mcp/{server}")
}

/// The answer to a request for `WELL_KNOWN{rest}`: the document, or 404
/// when no identity provider is configured or `rest` names no resource.
/// Any well-formed server name gets a document, so it reveals no catalog.
pub fn answer(req: &impl AgentHead, snapshot: &Snapshot, rest: &str) -> Refusal {
    if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        return Refusal::MethodNotAllowed;
    }
    if !snapshot.has_identity_providers() {
        return Refusal::NoSuchServer;
    }
    let base = base_url(req, &snapshot.settings);
    let (_, prefix) = origin_and_prefix(&base);
    let resource = match rest.strip_prefix(prefix) {
        _ if rest.is_empty() || rest == "/" => base.clone(),
        Some(path) => match server_from_path(path) {
            Some(server) => format!("{base}/mcp/{server}"),
            None => return Refusal::NoSuchServer,
        },
        None => return Refusal::NoSuchServer,
    };
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": snapshot.issuers().collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
    });
    let scopes = &snapshot.settings.scopes_supported;
    if !scopes.is_empty() {
        doc["scopes_supported"] = json!(scopes);
    }
    Refusal::Document(serde_json::to_vec(&doc).expect("JSON serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_segment_goes_after_the_origin() {
        assert_eq!(
            metadata_url("https://gw.example.com", "demo"),
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp/demo"
        );
        assert_eq!(
            metadata_url("https://example.com/gw", "demo"),
            "https://example.com/.well-known/oauth-protected-resource/gw/mcp/demo"
        );
    }
}
