//! Header rules at the gateway's edges: who is calling, from where, and
//! which headers never cross the gateway.

use catalog::Settings;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::error::Refusal;

/// `Mcp-Session-Id` (MCP Streamable HTTP): a name checked once, not parsed per use.
pub const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");
/// `Mcp-Protocol-Version` (MCP Streamable HTTP).
pub const MCP_PROTOCOL_VERSION: http::HeaderName =
    http::HeaderName::from_static("mcp-protocol-version");
/// `Mcp-Method` (the method, stated in a header for servers that route on headers).
pub const MCP_METHOD: http::HeaderName = http::HeaderName::from_static("mcp-method");
/// `Mcp-Name` (the tool, prompt or resource, stated in a header).
pub const MCP_NAME: http::HeaderName = http::HeaderName::from_static("mcp-name");
/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The SHA-256 digest of the `Authorization: Bearer` token, or why there is none.
pub fn bearer_digest(req: &RequestHeader) -> Result<[u8; 32], Refusal> {
    Ok(catalog::token_digest(bearer_token(req)?))
}

/// The `Authorization: Bearer` token text (exactly one such header), or why
/// there is none. Never log it.
pub fn bearer_token(req: &RequestHeader) -> Result<&str, Refusal> {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let presented = req.headers.contains_key(http::header::AUTHORIZATION);
        return Err(Refusal::unauthorized(presented));
    };
    let bytes = value.as_bytes();
    let token = (bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"bearer "))
        .then(|| bytes[7..].trim_ascii())
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::unauthorized(true))?;
    std::str::from_utf8(token).map_err(|_| Refusal::unauthorized(true))
}

/// DNS-rebinding protection: the `Host` an agent addressed must be one of
/// the gateway's names, and a browser `Origin` must be listed or be on one of
/// those names. Non-browser agents send no `Origin`.
pub fn check_host_and_origin(req: &RequestHeader, settings: &Settings) -> Result<(), Refusal> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !host_allowed(host, settings) {
        return Err(Refusal::HostNotAllowed(host.to_string()));
    }
    let Some(origin) = req.headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let on_allowed_host = origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && host_allowed(rest, settings)
    });
    if on_allowed_host || settings.allowed_origins.iter().any(|o| o == origin) {
        Ok(())
    } else {
        Err(Refusal::OriginNotAllowed(origin.to_string()))
    }
}

/// Is `authority` (`name[:port]`, `[v6][:port]`) one of the allowed host names?
fn host_allowed(authority: &str, settings: &Settings) -> bool {
    if settings.allowed_hosts.iter().any(|h| h == "*") {
        return true;
    }
    let name = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    !name.is_empty()
        && settings
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
}

/// A hop-by-hop header (RFC 9110 §7.6.1)? `name` in any case; most names
/// are ruled out by their length alone.
fn hop_by_hop(name: &[u8]) -> bool {
    let candidates: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        _ => return false,
    };
    candidates.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// A header that carries the agent's own credentials, or a browser origin
/// the gateway already checked (the gateway is the upstream's client), or a
/// client-asserted forwarding claim the gateway cannot vouch for: never
/// sent upstream.
fn caller_only(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "origin"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-real-ip"
    )
}

/// The header names `Connection` values list (lower case), besides the
/// usual `close` / `keep-alive`, which name no header present. Nothing is
/// allocated when they list only those. A value that is not visible ASCII
/// lists nothing (as `http` reads values as text).
fn connection_listed<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    let mut listed = Vec::new();
    let text = values
        .filter(|v| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .filter_map(|v| std::str::from_utf8(v).ok());
    for token in text.flat_map(|v| v.split(',')).map(str::trim) {
        let usual = token.is_empty()
            || token.eq_ignore_ascii_case("close")
            || token.eq_ignore_ascii_case("keep-alive");
        if !usual {
            listed.push(token.to_ascii_lowercase());
        }
    }
    listed
}

/// The headers present in `headers` that `drop` selects, or that a
/// `Connection` header lists (one pass over the names present; removing an
/// absent name would parse and hash it).
fn present(
    headers: &http::HeaderMap,
    drop: impl Fn(&str) -> bool,
) -> Vec<http::header::HeaderName> {
    let connection = headers.get_all(http::header::CONNECTION);
    let listed = connection_listed(connection.iter().map(HeaderValue::as_bytes));
    headers
        .keys()
        .filter(|name| drop(name.as_str()) || listed.iter().any(|l| l == name.as_str()))
        .cloned()
        .collect()
}

/// A request head about to go upstream, whose fields the gateway sets:
/// Pingora's (which keeps each name's case for the wire, and parses each
/// name again for it) or, on the gateway's own paths, plain `http` parts
/// (names lower case, set in the map as they are).
pub trait UpstreamHead {
    /// The head's fields.
    fn fields(&self) -> &http::HeaderMap;
    /// Sets `name` to `value` alone.
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()>;
    /// Removes every `name` field.
    fn remove_field(&mut self, name: &HeaderName);
    /// Sets the request target.
    fn set_target(&mut self, target: http::Uri);
}

impl UpstreamHead for RequestHeader {
    fn fields(&self) -> &http::HeaderMap {
        &self.headers
    }
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()> {
        self.insert_header(name, value)
    }
    fn remove_field(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn set_target(&mut self, target: http::Uri) {
        self.set_uri(target);
    }
}

impl UpstreamHead for http::request::Parts {
    fn fields(&self) -> &http::HeaderMap {
        &self.headers
    }
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()> {
        self.headers.insert(name, value);
        Ok(())
    }
    fn remove_field(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
    fn set_target(&mut self, target: http::Uri) {
        self.uri = target;
    }
}

/// Removes hop-by-hop headers and the caller's credentials from a request
/// about to go upstream.
pub fn strip_request(req: &mut impl UpstreamHead) {
    let drop = |n: &str| hop_by_hop(n.as_bytes()) || caller_only(n) || n == "expect";
    for name in present(req.fields(), drop) {
        req.remove_field(&name);
    }
}

/// Frames a request whose body the gateway checked: `len` bytes of UTF-8
/// JSON, not encoded. Headers that already say so exactly are left as they
/// are (rewriting a header costs more than comparing it).
pub fn set_checked_body(req: &mut impl UpstreamHead, len: usize) -> pingora_error::Result<()> {
    if req.fields().contains_key(http::header::CONTENT_ENCODING) {
        req.remove_field(&http::header::CONTENT_ENCODING);
    }
    if !has_only(
        req.fields(),
        &http::header::CONTENT_TYPE,
        b"application/json",
    ) {
        let json = HeaderValue::from_static("application/json");
        req.set_field(http::header::CONTENT_TYPE, json)?;
    }
    let len = HeaderValue::from(len);
    if !has_only(req.fields(), &http::header::CONTENT_LENGTH, len.as_bytes()) {
        req.set_field(http::header::CONTENT_LENGTH, len)?;
    }
    Ok(())
}

/// Does `name` occur exactly once, with exactly `value`?
pub(crate) fn has_only(
    headers: &http::HeaderMap,
    name: &http::header::HeaderName,
    value: &[u8],
) -> bool {
    let mut values = headers.get_all(name).iter();
    matches!((values.next(), values.next()), (Some(v), None) if v.as_bytes() == value)
}

/// A response head the gateway's rules edit: Pingora's, or on the
/// gateway's own paths the head as the upstream sent it
/// ([`crate::http1::RawResponse`]). Names are compared in any case.
pub trait ResponseFields {
    /// The status.
    fn status(&self) -> StatusCode;
    /// Sets the status.
    fn set_status(&mut self, status: StatusCode) -> pingora_error::Result<()>;
    /// Every value of `name`, in order.
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;
    /// Sets `name` to `value` alone.
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()>;
    /// Removes every `name` field.
    fn remove_field(&mut self, name: &HeaderName);
    /// Removes every field whose name `drop` picks.
    fn remove_where(&mut self, drop: impl FnMut(&[u8]) -> bool);

    /// The first value of `name`.
    fn field<'a>(&'a self, name: &'a HeaderName) -> Option<&'a [u8]> {
        self.values(name).next()
    }

    /// Does `name` occur exactly once, with exactly `value`?
    fn has_only(&self, name: &HeaderName, value: &[u8]) -> bool {
        let mut values = self.values(name);
        matches!((values.next(), values.next()), (Some(v), None) if v == value)
    }
}

impl ResponseFields for ResponseHeader {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn set_status(&mut self, status: StatusCode) -> pingora_error::Result<()> {
        ResponseHeader::set_status(self, status)
    }
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(name).iter().map(HeaderValue::as_bytes)
    }
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()> {
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

/// Removes hop-by-hop headers from an upstream response, and those its
/// `Connection` header lists; `Transfer-Encoding` stays (the body's framing
/// is decided, and the field set, by whoever relays it).
pub fn strip_response(resp: &mut impl ResponseFields) {
    let listed = connection_listed(resp.values(&http::header::CONNECTION));
    resp.remove_where(|name| {
        !name.eq_ignore_ascii_case(b"transfer-encoding")
            && (hop_by_hop(name)
                || listed
                    .iter()
                    .any(|l| name.eq_ignore_ascii_case(l.as_bytes())))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &http::HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn a_request_upstream_keeps_no_credential_and_no_hop_by_hop_header() {
        let mut req = RequestHeader::build("POST", b"/mcp/demo", None).unwrap();
        for (name, value) in [
            ("Authorization", "Bearer tg_secret"),
            ("Cookie", "sid=1"),
            ("Origin", "https://app.example"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Connection", "keep-alive, X-Hop"),
            ("Connection", "Close"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Expect", "100-continue"),
            ("X-Hop", "listed by Connection"),
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", "s1"),
            ("X-Other", "kept"),
        ] {
            req.append_header(name, value).unwrap();
        }
        strip_request(&mut req);
        assert_eq!(
            names(&req.headers),
            ["content-type", "mcp-session-id", "x-other"]
        );
    }

    /// The fields of `head` after the upstream rules: stripped, framed as
    /// a checked body of 2 bytes, pointed at another target.
    fn upstream_fields(mut head: impl UpstreamHead) -> Vec<(String, Vec<u8>)> {
        strip_request(&mut head);
        set_checked_body(&mut head, 2).unwrap();
        head.set_target(http::Uri::from_static("/mcp"));
        head.set_field(http::header::HOST, HeaderValue::from_static("up:8080"))
            .unwrap();
        let mut fields: Vec<(String, Vec<u8>)> = head
            .fields()
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        fields.sort();
        fields
    }

    #[test]
    fn both_kinds_of_upstream_head_get_the_same_fields() {
        let mut cased = RequestHeader::build("POST", b"/mcp/demo", None).unwrap();
        let mut plain = RequestHeader::build_no_case("POST", b"/mcp/demo", None).unwrap();
        for (name, value) in [
            ("Host", "gateway"),
            ("Authorization", "Bearer tg_secret"),
            ("Connection", "X-Hop"),
            ("X-Hop", "listed"),
            ("Content-Encoding", "gzip"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "9"),
            ("Content-Length", "9"),
            ("X-Other", "kept"),
        ] {
            cased.append_header(name, value).unwrap();
            plain.append_header(name, value).unwrap();
        }
        let from_cased = upstream_fields(cased);
        let from_parts = upstream_fields(http::request::Parts::from(plain));
        assert_eq!(from_cased, from_parts);
        let expected: Vec<(String, Vec<u8>)> = [
            ("content-length", "2"),
            ("content-type", "application/json"),
            ("host", "up:8080"),
            ("x-other", "kept"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(from_parts, expected);
    }

    #[test]
    fn a_response_loses_its_hop_by_hop_headers_but_keeps_its_framing() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("Connection", "close, X-Upstream-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Upstream-Hop", "listed"),
            ("Close", "a header named like the token"),
            ("Content-Type", "text/event-stream"),
        ] {
            resp.append_header(name, value).unwrap();
        }
        strip_response(&mut resp);
        assert_eq!(
            names(&resp.headers),
            ["close", "content-type", "transfer-encoding"]
        );
    }

    #[test]
    fn both_kinds_of_response_head_lose_the_same_fields() {
        let fields = [
            ("Connection", "keep-alive, X-Upstream-Hop"),
            ("connection", "Upgrade"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-T"),
            ("Upgrade", "h2c"),
            ("Transfer-Encoding", "chunked"),
            ("x-upstream-hop", "listed"),
            ("Server", "up"),
            ("Mcp-Session-Id", "s1"),
            ("Content-Type", "text/event-stream"),
        ];
        let mut pingora = ResponseHeader::build(200, None).unwrap();
        let mut text = "HTTP/1.1 200 OK\r\n".to_string();
        for (name, value) in fields {
            pingora.append_header(name, value).unwrap();
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let (mut raw, _, _) = crate::http1::response_head(text.as_bytes())
            .unwrap()
            .unwrap();
        strip_response(&mut pingora);
        strip_response(&mut raw);
        let expected = [
            ("server", "up"),
            ("mcp-session-id", "s1"),
            ("content-type", "text/event-stream"),
            ("transfer-encoding", "chunked"),
        ];
        for (name, value) in expected {
            let name = HeaderName::from_static(name);
            let kept: Vec<&[u8]> = pingora.values(&name).collect();
            assert_eq!(kept, [value.as_bytes()], "{name}");
            let kept: Vec<&[u8]> = raw.values(&name).collect();
            assert_eq!(kept, [value.as_bytes()], "{name}");
        }
        assert_eq!(pingora.headers.len(), expected.len());
        let wire = String::from_utf8(raw.to_wire()).unwrap();
        assert_eq!(
            wire,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: up\r\nMcp-Session-Id: s1\r\nContent-Type: text/event-stream\r\n\r\n"
        );
    }
}
