//! A virtual server's call that found its upstream session gone (the server
//! restarted and answered 404), sent again in a new upstream session so the
//! agent never sees the restart.
//!
//! The answer to the resent call is read whole (up to [`MAX_RESENT`]) and
//! replaces the 404: the call's progress notifications then arrive together
//! with its result instead of one by one. Restarts are rare; correctness,
//! not streaming, is what matters here.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::forward::upstream_auth;
use super::{UpstreamLink, UpstreamSessions};
use crate::admit::Route;

/// Largest answer read for a resent call (64 MiB).
pub const MAX_RESENT: usize = 64 * 1024 * 1024;

/// The upstream's answer to the resent call.
#[derive(Debug)]
pub struct Resent {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, when the upstream sent one.
    pub content_type: Option<String>,
    /// The whole body.
    pub body: Bytes,
}

/// Opens a new upstream session for the call's virtual session and sends
/// the call again in it.
pub async fn resend(
    pool: &Arc<UpstreamSessions>,
    route: &Route,
    link: &UpstreamLink,
) -> Result<Resent, String> {
    let up = route.upstream();
    let auth = upstream_auth(route).map_err(|r| r.to_string())?;
    let opened = pool
        .ensure(&link.nonce, up, auth.clone(), &link.agent_protocol)
        .await?;
    let resp = pool
        .send(up, auth.clone(), &opened, link.body.clone())
        .await?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    let mut chunks = resp.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| e.without_url().to_string())?;
        if body.len() + chunk.len() > MAX_RESENT {
            return Err("the resent call's answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Resent {
        status,
        content_type,
        body: Bytes::from(body),
    })
}
