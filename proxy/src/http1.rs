//! The few HTTP/1.1 pieces the gateway's own paths (`gateway/event_stream.rs`,
//! `gateway/direct.rs`) handle themselves: recognising the agent request
//! heads they take, reading an upstream's response head, and de-chunking its
//! body. Anything unusual is left to Pingora, which serves every other request.

use pingora_http::ResponseHeader;
use std::mem::MaybeUninit;

mod chunked;
mod raw_fields;
mod raw_request;
mod raw_response;
pub use chunked::{push_chunk, BadChunk, ChunkedDecoder, LAST_CHUNK};
pub use raw_request::{RawRequest, UpstreamRequest};
pub use raw_response::RawResponse;

/// Most header fields in a request head this module parses (more: Pingora's).
const MAX_FIELDS: usize = 64;
/// Most header fields in an upstream response head.
const MAX_RESPONSE_FIELDS: usize = 256;

/// What the bytes read so far on a connection hold.
pub enum Head {
    /// Not yet a whole head: read more.
    Incomplete,
    /// A request the gateway's own paths do not take, or anything unusual:
    /// Pingora serves it.
    Other,
    /// A plain HTTP/1.1 `GET` asking for an event stream, with no body, of
    /// `len` bytes.
    EventStream {
        /// The request head.
        req: Box<RawRequest>,
        /// Its length on the wire.
        len: usize,
    },
    /// A plain HTTP/1.1 `POST` whose body is framed by one `Content-Length`.
    Post {
        /// The request head.
        req: Box<RawRequest>,
        /// Its length on the wire.
        len: usize,
        /// The body's length.
        body_len: usize,
        /// The agent asked for the connection to close after the response.
        close: bool,
    },
}

/// Recognises the request heads the gateway serves itself: an HTTP/1.1
/// `GET` for `text/event-stream` that carries no body, and an HTTP/1.1
/// `POST` with exactly one `Content-Length` (digits only) and no
/// `Transfer-Encoding`; neither may ask for an upgrade or `100-continue`.
/// Everything else is [`Head::Other`], for Pingora.
pub fn classify(buf: &[u8]) -> Head {
    let prefix = &buf[..buf.len().min(5)];
    let get = b"GET ".starts_with(&prefix[..prefix.len().min(4)]);
    if !get && !b"POST ".starts_with(prefix) {
        return Head::Other;
    }
    // Uninitialised slots: httparse fills only what the head holds.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Incomplete,
        Err(_) => return Head::Other,
    };
    let post = match (parsed.method, parsed.version) {
        (Some("GET"), Some(1)) => false,
        (Some("POST"), Some(1)) => true,
        _ => return Head::Other,
    };
    let mut wants_events = false;
    let mut body_len = None;
    let mut close = false;
    for f in parsed.headers.iter() {
        let name = f.name;
        if name.eq_ignore_ascii_case("content-length") {
            match (body_len, parse_length(f.value)) {
                (None, Some(n)) => body_len = Some(n),
                _ => return Head::Other,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Head::Other;
        } else if name.eq_ignore_ascii_case("accept") && contains(f.value, b"text/event-stream") {
            wants_events = true;
        } else if name.eq_ignore_ascii_case("connection") && contains(f.value, b"close") {
            close = true;
        }
    }
    let taken = if post {
        body_len.is_some()
    } else {
        wants_events && body_len.unwrap_or(0) == 0
    };
    let Some(path) = parsed.path.filter(|_| taken) else {
        return Head::Other;
    };
    let method = if post {
        http::Method::POST
    } else {
        http::Method::GET
    };
    let Ok(req) = RawRequest::new(method, path, parsed.headers, &buf[..len]) else {
        return Head::Other;
    };
    let req = Box::new(req);
    match body_len {
        Some(body_len) if post => Head::Post {
            req,
            len,
            body_len,
            close,
        },
        _ => Head::EventStream { req, len },
    }
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces, no list).
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 15 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Does `haystack` hold `needle` (lower case), ignoring ASCII case? Each
/// position is tried on its first byte before the rest is compared.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((first, rest)) = needle.split_first() else {
        return true;
    };
    haystack
        .windows(needle.len())
        .any(|w| w[0].to_ascii_lowercase() == *first && w[1..].eq_ignore_ascii_case(rest))
}

/// How an upstream frames the body that follows its response head.
#[derive(Debug, PartialEq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// Until the upstream closes.
    Close,
}

/// A response head the gateway's own paths do not handle: malformed, 1xx,
/// or framed in a way other than plain `chunked`, one `Content-Length`, or close.
#[derive(Debug, thiserror::Error)]
#[error("upstream response head not handled outside Pingora")]
pub struct UnhandledHead;

/// An upstream response head: the head, its length on the wire, and how
/// the body is framed. `Ok(None)`: incomplete. An interim (1xx) head is
/// returned too: its caller skips it and reads the next.
pub fn response_head(buf: &[u8]) -> Result<Option<(RawResponse, usize, Framing)>, UnhandledHead> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_RESPONSE_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(UnhandledHead),
    };
    let status = parsed.code.ok_or(UnhandledHead)?;
    if status == 101 || status < 100 {
        return Err(UnhandledHead);
    }
    let status = http::StatusCode::from_u16(status).map_err(|_| UnhandledHead)?;
    let mut framing = Framing::Close;
    for f in parsed.headers.iter() {
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only plain `chunked` is understood; anything else goes to Pingora.
            if !f.value.eq_ignore_ascii_case(b"chunked") || framing != Framing::Close {
                return Err(UnhandledHead);
            }
            framing = Framing::Chunked;
        } else if f.name.eq_ignore_ascii_case("content-length") {
            match (parse_length(f.value), &framing) {
                (Some(n), Framing::Close) => framing = Framing::Length(n as u64),
                _ => return Err(UnhandledHead),
            }
        }
    }
    let http10 = parsed.version == Some(0);
    let resp =
        RawResponse::new(status, http10, parsed.headers, &buf[..len]).map_err(|_| UnhandledHead)?;
    Ok(Some((resp, len, framing)))
}

/// A response head as sent on the wire.
pub fn response_bytes(resp: &ResponseHeader) -> Vec<u8> {
    let mut out = status_line(resp.status);
    resp.header_to_h1_wire(&mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// `HTTP/1.1`, `status` and its canonical reason: the start of a response
/// head the gateway writes.
fn status_line(status: http::StatusCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{AgentHead, EditFields, Fields, ResponseFields, UpstreamHead};

    #[test]
    fn only_plain_event_stream_gets_are_taken() {
        let ok = b"GET /mcp/a HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\r\n";
        assert!(matches!(classify(ok), Head::EventStream { len, .. } if len == ok.len()));
        let listed = b"GET /mcp/a HTTP/1.1\r\nAccept: application/json, Text/Event-Stream\r\n\r\n";
        assert!(matches!(classify(listed), Head::EventStream { .. }));
        assert!(matches!(classify(&ok[..20]), Head::Incomplete));
        assert!(matches!(classify(b"GE"), Head::Incomplete));
        for other in [
            &b"POST /mcp/a HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n"[..],
            b"GET /mcp/a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /mcp/a HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n",
            b"GET /mcp/a HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /mcp/a HTTP/1.1\r\nAccept: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /mcp/a HTTP/1.1\r\nAccept: text/event-stream\r\nUpgrade: websocket\r\n\r\n",
            b"GET /mcp/a HTTP/1.1\r\nAccept: text/event-stream\r\nExpect: 100-continue\r\n\r\n",
        ] {
            assert!(
                matches!(classify(other), Head::Other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn only_posts_framed_by_one_plain_length_are_taken() {
        let ok = b"POST /mcp/a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
        assert!(matches!(
            classify(ok),
            Head::Post { len, body_len: 3, close: false, .. } if len == ok.len() - 3
        ));
        let closing = b"POST /mcp/a HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(classify(closing), Head::Post { close: true, .. }));
        let listed = b"POST /mcp/a HTTP/1.1\r\nConnection: TE, CLOSE\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(classify(listed), Head::Post { close: true, .. }));
        let almost = b"POST /mcp/a HTTP/1.1\r\nConnection: clos\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(classify(almost), Head::Post { close: false, .. }));
        assert!(matches!(classify(b"POS"), Head::Incomplete));
        assert!(matches!(classify(&ok[..25]), Head::Incomplete));
        for other in [
            // No length, two lengths, a signed or listed length, chunked, both.
            &b"POST /mcp/a HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"POST /mcp/a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nContent-Length: 3\r\nUpgrade: h2c\r\n\r\n",
            b"POST /mcp/a HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
            b"PUT /mcp/a HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            b"POST /mcp/a HTTP/1.1\r\nContent-Length : 3\r\n\r\n",
        ] {
            assert!(
                matches!(classify(other), Head::Other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn a_request_goes_upstream_as_sent_with_the_gateways_edits() {
        let wire = b"POST /mcp/a?x=1 HTTP/1.1\r\nHOST: gw\r\nX-Tag: one\r\nMcp-Session-Id: s-1\r\n\
            x-tag: two\r\nAuthorization: Bearer tg_x\r\nContent-Length: 2\r\n\r\n{}";
        let Head::Post { req, .. } = classify(wire) else {
            panic!("not taken");
        };
        assert_eq!((req.method(), req.path()), (&http::Method::POST, "/mcp/a"));
        let tags: Vec<&[u8]> = req
            .values(&http::HeaderName::from_static("x-tag"))
            .collect();
        assert_eq!(tags, [&b"one"[..], b"two"]);
        let mut up = req.upstream();
        up.set_target(http::Uri::from_static("http://up:8080/mcp?key=k"));
        up.remove_field(&http::header::AUTHORIZATION);
        up.set_field(
            http::header::HOST,
            http::HeaderValue::from_static("up:8080"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(up.to_wire(b"{}")).unwrap(),
            "POST /mcp?key=k HTTP/1.1\r\nx-tag: one\r\nmcp-session-id: s-1\r\nx-tag: two\r\n\
             content-length: 2\r\nhost: up:8080\r\n\r\n{}"
        );
        // The agent's head is as it was read.
        assert_eq!(req.text(&http::header::AUTHORIZATION), Some("Bearer tg_x"));
        assert_eq!(req.text(&http::header::HOST), Some("gw"));
        // A target in absolute form, or one `http` refuses, goes to Pingora.
        for other in [
            &b"POST http://gw/mcp/a HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
            b"POST /mcp/a\x7f HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(matches!(classify(other), Head::Other));
        }
    }

    #[test]
    fn response_heads_say_how_their_body_is_framed() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
        let (resp, len, framing) = response_head(head).unwrap().unwrap();
        assert_eq!(
            (resp.status().as_u16(), len, framing),
            (200, head.len() - 3, Framing::Chunked)
        );
        let (_, _, framing) = response_head(b"HTTP/1.1 405 No\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(framing, Framing::Length(0));
        assert!(response_head(b"HTTP/1.1 200 OK\r\nContent-")
            .unwrap()
            .is_none());
        let early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
        let mut two = early.to_vec();
        two.extend_from_slice(b"HTTP/1.1 200");
        let (interim, len, _) = response_head(&two).unwrap().unwrap();
        assert!(interim.status().is_informational());
        assert_eq!(len, early.len());
        for bad in [
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                response_head(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
