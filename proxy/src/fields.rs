//! The fields of a head as the gateway's rules read and edit them.
//!
//! Pingora's heads implement these traits, and so do the gateway's own
//! on its direct paths ([`crate::http1::RawRequest`], the
//! [`crate::http1::UpstreamRequest`] made from it, and
//! [`crate::http1::RawResponse`]), which keep a head as the bytes read
//! instead of building an `http::HeaderMap`. So each rule (admission,
//! stripping, framing, sealing sessions) exists once for both paths.
//! Names are lower case, as `http` keeps them.

use http::{HeaderName, HeaderValue, Method, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};

/// Reading a head's fields.
pub trait Fields {
    /// Every value of `name`, in order.
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a, Self>;

    /// The first value of `name`.
    fn field<'a>(&'a self, name: &HeaderName) -> Option<&'a [u8]> {
        self.values(name).next()
    }

    /// The first value of `name` as text, if it is visible ASCII (as
    /// `http::HeaderValue::to_str` reads it).
    fn text<'a>(&'a self, name: &HeaderName) -> Option<&'a str> {
        self.field(name).and_then(visible_ascii)
    }

    /// Does `name` occur exactly once, with exactly `value`?
    fn has_only(&self, name: &HeaderName, value: &[u8]) -> bool {
        let mut values = self.values(name);
        matches!((values.next(), values.next()), (Some(v), None) if v == value)
    }
}

/// Editing a head's fields.
pub trait EditFields: Fields {
    /// Sets `name` to `value` alone.
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()>;
    /// Removes every `name` field.
    fn remove_field(&mut self, name: &HeaderName);
    /// Removes every field whose name (lower case) `drop` picks. It may be
    /// asked about a name more than once, and must answer the same.
    fn remove_where(&mut self, drop: impl FnMut(&[u8]) -> bool);
}

/// An agent's request head, as admission reads it.
pub trait AgentHead: Fields {
    /// The method.
    fn method(&self) -> &Method;
    /// The target's path.
    fn path(&self) -> &str;
    /// The target's authority, when the target is in absolute form.
    fn authority(&self) -> Option<&str>;
}

/// A request head about to go upstream.
pub trait UpstreamHead: EditFields {
    /// Sets the request target.
    fn set_target(&mut self, target: http::Uri);
}

/// A response head on its way to the agent.
pub trait ResponseFields: EditFields {
    /// The status.
    fn status(&self) -> StatusCode;
    /// Sets the status.
    fn set_status(&mut self, status: StatusCode) -> pingora_error::Result<()>;
}

/// `value` as text if it is visible ASCII or tabs, as `http` reads values.
pub fn visible_ascii(value: &[u8]) -> Option<&str> {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    visible.then(|| std::str::from_utf8(value).ok()).flatten()
}

/// [`Fields`] and [`EditFields`] for a Pingora head: its `http` map, edited
/// through Pingora (which also keeps each name's case for the wire).
macro_rules! pingora_fields {
    ($head:ty) => {
        impl Fields for $head {
            fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a> {
                self.headers.get_all(name).iter().map(HeaderValue::as_bytes)
            }
        }

        impl EditFields for $head {
            fn set_field(
                &mut self,
                name: HeaderName,
                value: HeaderValue,
            ) -> pingora_error::Result<()> {
                self.insert_header(name, value)
            }
            fn remove_field(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
            fn remove_where(&mut self, mut drop: impl FnMut(&[u8]) -> bool) {
                let picked: Vec<HeaderName> = self
                    .headers
                    .keys()
                    .filter(|n| drop(n.as_str().as_bytes()))
                    .cloned()
                    .collect();
                for name in picked {
                    self.remove_header(&name);
                }
            }
        }
    };
}

pingora_fields!(RequestHeader);
pingora_fields!(ResponseHeader);

impl AgentHead for RequestHeader {
    fn method(&self) -> &Method {
        &self.method
    }
    fn path(&self) -> &str {
        self.uri.path()
    }
    fn authority(&self) -> Option<&str> {
        self.uri.authority().map(|a| a.as_str())
    }
}

impl UpstreamHead for RequestHeader {
    fn set_target(&mut self, target: http::Uri) {
        self.set_uri(target);
    }
}

impl ResponseFields for ResponseHeader {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn set_status(&mut self, status: StatusCode) -> pingora_error::Result<()> {
        ResponseHeader::set_status(self, status)
    }
}
