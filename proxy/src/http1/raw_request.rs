//! An agent's request head kept as the bytes it sent (see
//! `raw_fields.rs`): admission reads it as it reads Pingora's, and the
//! request sent upstream ([`UpstreamRequest`]) is written from it with
//! the gateway's edits, which leave the agent's head as it was read (its
//! log line and audit record describe what the agent sent).

use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method};

use super::raw_fields::{Edits, InvalidField, RawFields};
use crate::fields::{AgentHead, EditFields, Fields, UpstreamHead};

/// A request head in origin form (`/path?query`), as read.
#[derive(Debug)]
pub struct RawRequest {
    method: Method,
    target: PathAndQuery,
    read: RawFields,
}

impl RawRequest {
    /// The head `head` (as read), its target and fields as httparse found
    /// them in it. Only an origin-form target is taken, checked as `http`
    /// checks one.
    pub(super) fn new(
        method: Method,
        target: &str,
        parsed: &[httparse::Header],
        head: &[u8],
    ) -> Result<RawRequest, InvalidField> {
        if !target.starts_with('/') {
            return Err(InvalidField);
        }
        let target = PathAndQuery::try_from(target).map_err(|_| InvalidField)?;
        Ok(RawRequest {
            method,
            target,
            read: RawFields::new(parsed, head)?,
        })
    }

    /// Any request head, for tests (the direct path takes what
    /// [`super::classify`] takes).
    #[cfg(test)]
    pub(crate) fn parse(head: &[u8]) -> Option<RawRequest> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut fields);
        parsed.parse(head).ok()?;
        let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
        RawRequest::new(method, parsed.path?, parsed.headers, head).ok()
    }

    /// The request as it will go upstream: these fields, not yet edited.
    pub fn upstream(&self) -> UpstreamRequest<'_> {
        UpstreamRequest {
            agent: self,
            edits: Edits::default(),
            target: None,
        }
    }

    /// The target as the agent sent it.
    pub fn target(&self) -> &str {
        self.target.as_str()
    }
}

impl Fields for RawRequest {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.read.values(name)
    }
}

impl AgentHead for RawRequest {
    fn method(&self) -> &Method {
        &self.method
    }
    fn path(&self) -> &str {
        self.target.path()
    }
    fn authority(&self) -> Option<&str> {
        None
    }
}

/// An agent's request pointed upstream: its fields edited, its target
/// replaced.
#[derive(Debug)]
pub struct UpstreamRequest<'a> {
    agent: &'a RawRequest,
    edits: Edits,
    target: Option<http::Uri>,
}

impl UpstreamRequest<'_> {
    /// The head as sent upstream (HTTP/1.1), then `body`.
    pub fn to_wire(&self, body: &[u8]) -> Vec<u8> {
        let target = match &self.target {
            Some(uri) => uri.path_and_query().map_or("/", PathAndQuery::as_str),
            None => self.agent.target(),
        };
        let mut out = Vec::with_capacity(self.agent.read.head_len() + 128 + body.len());
        out.extend_from_slice(self.agent.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        self.edits.write(&self.agent.read, &mut out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }
}

impl<'r> Fields for UpstreamRequest<'r> {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a, 'r> {
        self.edits.values(&self.agent.read, name)
    }
}

impl EditFields for UpstreamRequest<'_> {
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()> {
        self.edits.set(&self.agent.read, name, value);
        Ok(())
    }
    fn remove_field(&mut self, name: &HeaderName) {
        self.edits.remove(&self.agent.read, name);
    }
    fn remove_where(&mut self, drop: impl FnMut(&[u8]) -> bool) {
        self.edits.remove_where(&self.agent.read, drop);
    }
}

impl UpstreamHead for UpstreamRequest<'_> {
    fn set_target(&mut self, target: http::Uri) {
        self.target = Some(target);
    }
}
