//! Header rules at the gateway's edges: who is calling, from where, and
//! which headers never cross the gateway.

use catalog::Settings;
use http::{HeaderName, HeaderValue};
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

/// A hop-by-hop header (RFC 9110 §7.6.1)? `name` is lower case, as
/// `http::HeaderName`s are.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
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

/// The header names a `Connection` header lists (lower case), besides the
/// usual `close` / `keep-alive`, which name no header present. Nothing is
/// allocated when it lists only those.
fn connection_listed(headers: &http::HeaderMap) -> Vec<String> {
    let mut listed = Vec::new();
    let values = headers.get_all(http::header::CONNECTION);
    for token in values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
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
    let listed = connection_listed(headers);
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
    let drop = |n: &str| hop_by_hop(n) || caller_only(n) || n == "expect";
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

/// Removes hop-by-hop headers from an upstream response.
pub fn strip_response(resp: &mut ResponseHeader) {
    // Pingora frames the response itself: transfer-encoding stays for it.
    let drop = |n: &str| n != "transfer-encoding" && hop_by_hop(n);
    for name in present(&resp.headers, drop) {
        if name != http::header::TRANSFER_ENCODING {
            resp.remove_header(&name);
        }
    }
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
}
