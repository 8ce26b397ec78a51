//! Header rules at the gateway's edges: who is calling, from where, and
//! which headers never cross the gateway.

use catalog::Settings;
use http::HeaderValue;

use crate::error::Refusal;
use crate::fields::{visible_ascii, AgentHead, Fields, ResponseFields, UpstreamHead};

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
pub fn bearer_digest(req: &impl Fields) -> Result<[u8; 32], Refusal> {
    Ok(catalog::token_digest(bearer_token(req)?))
}

/// The `Authorization: Bearer` token text (exactly one such header), or why
/// there is none. Never log it.
pub fn bearer_token(req: &impl Fields) -> Result<&str, Refusal> {
    let mut values = req.values(&http::header::AUTHORIZATION);
    let (Some(bytes), None) = (values.next(), values.next()) else {
        let presented = req.field(&http::header::AUTHORIZATION).is_some();
        return Err(Refusal::unauthorized(presented));
    };
    let token = (bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"bearer "))
        .then(|| bytes[7..].trim_ascii())
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::unauthorized(true))?;
    std::str::from_utf8(token).map_err(|_| Refusal::unauthorized(true))
}

/// DNS-rebinding protection: the `Host` an agent addressed must be one of
/// the gateway's names, and a browser `Origin` must be listed or be on one of
/// those names. Non-browser agents send no `Origin`.
pub fn check_host_and_origin(req: &impl AgentHead, settings: &Settings) -> Result<(), Refusal> {
    let mut hosts = req.values(&http::header::HOST);
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::SeveralHosts);
    }
    let host = first
        .and_then(visible_ascii)
        .or_else(|| req.authority())
        .unwrap_or("");
    if !host_allowed(host, settings) {
        return Err(Refusal::HostNotAllowed(host.to_string()));
    }
    let Some(origin) = req.field(&http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = visible_ascii(origin).unwrap_or("");
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

/// A hop-by-hop header (RFC 9110 §7.6.1)? `name` is lower case; most
/// names are ruled out by their length alone.
fn hop_by_hop(name: &[u8]) -> bool {
    let candidates: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        17 => &[b"transfer-encoding"],
        _ => return false,
    };
    candidates.contains(&name)
}

/// A header that carries the agent's own credentials, or a browser origin
/// the gateway already checked (the gateway is the upstream's client), or a
/// client-asserted forwarding, address or method claim the gateway cannot
/// vouch for: never sent upstream. `name` is lower case.
fn caller_only(name: &[u8]) -> bool {
    const CALLER_ONLY: [&[u8]; 12] = [
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"origin",
        b"forwarded",
        b"x-real-ip",
        b"x-client-ip",
        b"true-client-ip",
        b"x-original-url",
        b"x-rewrite-url",
        b"x-http-method-override",
        b"x-method-override",
    ];
    name.starts_with(b"x-forwarded-") || CALLER_ONLY.contains(&name)
}

/// The header names `Connection` values list (lower case), besides the
/// usual `close` / `keep-alive`, which name no header present. Nothing is
/// allocated when they list only those. A value that is not visible ASCII
/// lists nothing (as `http` reads values as text).
fn connection_listed<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    let mut listed = Vec::new();
    let text = values.filter_map(visible_ascii);
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

/// Removes hop-by-hop headers (and those its `Connection` header lists)
/// and the caller's credentials from a request about to go upstream, and
/// any name with an underscore, as nginx does by default: servers that
/// fold `_` into `-` (CGI, WSGI) would read `X_Api_Key` as the gateway's
/// own `X-Api-Key`, or `X_Forwarded_For` as a forwarding claim.
pub fn strip_request(req: &mut impl UpstreamHead) {
    let listed = connection_listed(req.values(&http::header::CONNECTION));
    req.remove_where(|name| {
        hop_by_hop(name)
            || caller_only(name)
            || name == b"expect"
            || name.contains(&b'_')
            || listed.iter().any(|l| name == l.as_bytes())
    });
}

/// The content codings a head's `Content-Encoding` fields list, lower
/// case, `identity` left out: none for a body as it is, one coding the
/// gateway may decode, or a list (`gzip, gzip`) it does not.
pub fn content_coding(head: &impl Fields) -> Option<String> {
    let codings: Vec<String> = head
        .values(&http::header::CONTENT_ENCODING)
        .map(|v| visible_ascii(v).unwrap_or("?"))
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    (!codings.is_empty()).then(|| codings.join(", "))
}

/// Frames a request whose body the gateway checked: `len` bytes of UTF-8
/// JSON, not encoded. Headers that already say so exactly are left as they
/// are (rewriting a header costs more than comparing it).
pub fn set_checked_body(req: &mut impl UpstreamHead, len: usize) -> pingora_error::Result<()> {
    if req.field(&http::header::CONTENT_ENCODING).is_some() {
        req.remove_field(&http::header::CONTENT_ENCODING);
    }
    if !req.has_only(&http::header::CONTENT_TYPE, b"application/json") {
        let json = HeaderValue::from_static("application/json");
        req.set_field(http::header::CONTENT_TYPE, json)?;
    }
    let len = HeaderValue::from(len);
    if !req.has_only(&http::header::CONTENT_LENGTH, len.as_bytes()) {
        req.set_field(http::header::CONTENT_LENGTH, len)?;
    }
    Ok(())
}

/// Removes hop-by-hop headers from an upstream response, and those its
/// `Connection` header lists; `Transfer-Encoding` stays (the body's framing
/// is decided, and the field set, by whoever relays it).
pub fn strip_response(resp: &mut impl ResponseFields) {
    let listed = connection_listed(resp.values(&http::header::CONNECTION));
    resp.remove_where(|name| {
        name != b"transfer-encoding"
            && (hop_by_hop(name) || listed.iter().any(|l| name == l.as_bytes()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::{RequestHeader, ResponseHeader};

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
            ("X-Forwarded-Port", "443"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X_Api_Key", "read as X-Api-Key by servers folding `_`"),
        ] {
            req.append_header(name, value).unwrap();
        }
        strip_request(&mut req);
        assert_eq!(
            names(&req.headers),
            ["content-type", "mcp-session-id", "x-other"]
        );
    }

    #[test]
    fn every_content_encoding_field_counts() {
        let coding = |fields: &[&str]| {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            for value in fields {
                resp.append_header("content-encoding", *value).unwrap();
            }
            content_coding(&resp)
        };
        assert_eq!(coding(&[]), None);
        assert_eq!(coding(&["Identity"]), None);
        assert_eq!(coding(&["identity", "GZIP"]).as_deref(), Some("gzip"));
        assert_eq!(coding(&["gzip, gzip"]).as_deref(), Some("gzip, gzip"));
        assert_eq!(coding(&["br", "identity"]).as_deref(), Some("br"));
    }

    /// The fields of `head` after the upstream rules (stripped, framed as
    /// a checked body of 2 bytes, pointed at another target), of those
    /// `names` (lower case).
    fn upstream_fields(head: &mut impl UpstreamHead, names: &[&str]) -> Vec<(String, Vec<u8>)> {
        strip_request(head);
        set_checked_body(head, 2).unwrap();
        head.set_target(http::Uri::from_static("/mcp"));
        head.set_field(http::header::HOST, HeaderValue::from_static("up:8080"))
            .unwrap();
        let mut fields = Vec::new();
        for name in names {
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            for value in head.values(&name) {
                fields.push((name.to_string(), value.to_vec()));
            }
        }
        fields
    }

    #[test]
    fn both_kinds_of_upstream_head_get_the_same_fields() {
        let sent = [
            ("Host", "gateway"),
            ("Authorization", "Bearer tg_secret"),
            ("Connection", "X-Hop"),
            ("X-Hop", "listed"),
            ("Content-Encoding", "gzip"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "9"),
            ("Content-Length", "9"),
            ("X-Other", "kept"),
        ];
        let mut pingora = RequestHeader::build("POST", b"/mcp/demo", None).unwrap();
        let mut wire = "POST /mcp/demo HTTP/1.1\r\n".to_string();
        for (name, value) in sent {
            pingora.append_header(name, value).unwrap();
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        wire.push_str("\r\n");
        let raw = crate::http1::RawRequest::parse(wire.as_bytes()).unwrap();
        let mut names: Vec<String> = sent.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.dedup();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let from_pingora = upstream_fields(&mut pingora, &names);
        let mut upstream = raw.upstream();
        let from_raw = upstream_fields(&mut upstream, &names);
        assert_eq!(from_pingora, from_raw);
        let expected: Vec<(String, Vec<u8>)> = [
            ("host", "up:8080"),
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("x-other", "kept"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(from_raw, expected);
        assert_eq!(
            String::from_utf8(upstream.to_wire(b"{}")).unwrap(),
            "POST /mcp HTTP/1.1\r\nx-other: kept\r\ncontent-type: application/json\r\n\
             content-length: 2\r\nhost: up:8080\r\n\r\n{}"
        );
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
            let name = http::HeaderName::from_static(name);
            let kept: Vec<&[u8]> = pingora.values(&name).collect();
            assert_eq!(kept, [value.as_bytes()], "{name}");
            let kept: Vec<&[u8]> = raw.values(&name).collect();
            assert_eq!(kept, [value.as_bytes()], "{name}");
        }
        assert_eq!(pingora.headers.len(), expected.len());
        let wire = String::from_utf8(raw.to_wire()).unwrap();
        assert_eq!(
            wire,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nserver: up\r\nmcp-session-id: s1\r\ncontent-type: text/event-stream\r\n\r\n"
        );
    }
}
