//! An upstream's response head kept as the bytes it sent: its fields are
//! ranges of those bytes, edits a short list, and the agent's head is
//! written from both. Building an `http::HeaderMap` for a head the gateway
//! mostly passes on (hashing each name, a value object each, dropping the
//! map) cost about 2.5k instructions per response.

use std::ops::Range;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::http_headers::ResponseFields;

/// A response head: status, version, and its fields as read, minus those
/// removed, plus those set.
#[derive(Debug)]
pub struct RawResponse {
    status: StatusCode,
    http10: bool,
    /// The head as read.
    head: Vec<u8>,
    /// Its fields, in order.
    fields: Vec<Field>,
    /// Fields the gateway set, after them.
    added: Vec<(HeaderName, HeaderValue)>,
}

/// One field of the head as read.
#[derive(Debug)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
    /// The head holds it as `name: value` CRLF, so its line is copied whole.
    as_written: bool,
    removed: bool,
}

/// A field whose name or value `http` would refuse.
#[derive(Debug)]
pub struct InvalidField;

impl RawResponse {
    /// The head `head` (as read), its fields as httparse found them in it.
    pub(super) fn new(
        status: StatusCode,
        http10: bool,
        parsed: &[httparse::Header],
        head: &[u8],
    ) -> Result<RawResponse, InvalidField> {
        let offset = |part: &[u8]| {
            (part.as_ptr() as usize)
                .checked_sub(head.as_ptr() as usize)
                .filter(|at| at + part.len() <= head.len())
                .map(|at| at..at + part.len())
                .ok_or(InvalidField)
        };
        // httparse checked each name is a token and each value holds only
        // what `http` allows in one (tab, visible ASCII, bytes above 0x7f).
        let mut fields = Vec::with_capacity(parsed.len());
        for f in parsed {
            let (name, value) = (offset(f.name.as_bytes())?, offset(f.value)?);
            let as_written = head.get(name.end..value.start) == Some(b": ")
                && head.get(value.end..value.end + 2) == Some(b"\r\n");
            fields.push(Field {
                name,
                value,
                as_written,
                removed: false,
            });
        }
        Ok(RawResponse {
            status,
            http10,
            head: head.to_vec(),
            fields,
            added: Vec::new(),
        })
    }

    /// Did the upstream answer in HTTP/1.0?
    pub fn is_http10(&self) -> bool {
        self.http10
    }

    /// The head as the agent gets it: HTTP/1.1, the status with its
    /// canonical reason, the fields kept in their order, then those set.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 64);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        // Consecutive lines kept as written are copied at once.
        let mut run = 0..0;
        for f in self.fields.iter().filter(|f| !f.removed) {
            if f.as_written && !run.is_empty() && run.end == f.name.start {
                run.end = f.value.end + 2;
                continue;
            }
            out.extend_from_slice(&self.head[run]);
            run = 0..0;
            if f.as_written {
                run = f.name.start..f.value.end + 2;
            } else {
                let (name, value) = (&self.head[f.name.clone()], &self.head[f.value.clone()]);
                line(&mut out, name, value);
            }
        }
        out.extend_from_slice(&self.head[run]);
        for (name, value) in &self.added {
            line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Is `f` named `wanted` (lower case)? Lengths first: most differ.
    fn named(&self, f: &Field, wanted: &[u8]) -> bool {
        f.name.len() == wanted.len() && self.head[f.name.clone()].eq_ignore_ascii_case(wanted)
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

impl ResponseFields for RawResponse {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn set_status(&mut self, status: StatusCode) -> pingora_error::Result<()> {
        self.status = status;
        Ok(())
    }

    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let wanted = name.as_str().as_bytes();
        let read = self
            .fields
            .iter()
            .filter(move |f| !f.removed && self.named(f, wanted))
            .map(|f| &self.head[f.value.clone()]);
        let set = self
            .added
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_bytes());
        read.chain(set)
    }

    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()> {
        self.remove_field(&name);
        self.added.push((name, value));
        Ok(())
    }

    fn remove_field(&mut self, name: &HeaderName) {
        let wanted = name.as_str().as_bytes();
        self.remove_where(|n| n.len() == wanted.len() && n.eq_ignore_ascii_case(wanted));
    }

    fn remove_where(&mut self, mut drop: impl FnMut(&[u8]) -> bool) {
        for f in &mut self.fields {
            if !f.removed && drop(&self.head[f.name.clone()]) {
                f.removed = true;
            }
        }
        self.added.retain(|(n, _)| !drop(n.as_str().as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::super::response_head;
    use super::*;

    fn head(text: &str) -> RawResponse {
        response_head(text.as_bytes()).unwrap().unwrap().0
    }

    fn wire(resp: &RawResponse) -> String {
        String::from_utf8(resp.to_wire()).unwrap()
    }

    #[test]
    fn a_head_passes_on_as_it_was_sent_with_its_edits() {
        let mut resp = head(
            "HTTP/1.1 200 Fine\r\nServer: up\r\nX-Odd:odd  \r\nSet-Cookie: a\nContent-Type: application/json\r\nset-cookie: b\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert_eq!(resp.status(), StatusCode::OK);
        let cookie = HeaderName::from_static("set-cookie");
        let cookies: Vec<&[u8]> = resp.values(&cookie).collect();
        assert_eq!(cookies, [&b"a"[..], b"b"]);
        assert_eq!(
            wire(&resp),
            "HTTP/1.1 200 OK\r\nServer: up\r\nX-Odd: odd\r\nSet-Cookie: a\r\nContent-Type: application/json\r\nset-cookie: b\r\nContent-Length: 2\r\n\r\n",
            "lines not written as `name: value` CRLF are written so"
        );
        resp.remove_field(&http::header::CONTENT_LENGTH);
        resp.set_field(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        )
        .unwrap();
        resp.set_field(cookie.clone(), HeaderValue::from_static("c"))
            .unwrap();
        resp.set_status(StatusCode::BAD_GATEWAY).unwrap();
        assert_eq!(resp.field(&cookie), Some(&b"c"[..]));
        assert_eq!(resp.field(&http::header::CONTENT_LENGTH), None);
        assert_eq!(
            wire(&resp),
            "HTTP/1.1 502 Bad Gateway\r\nServer: up\r\nX-Odd: odd\r\nContent-Type: application/json\r\ntransfer-encoding: chunked\r\nset-cookie: c\r\n\r\n"
        );
    }

    #[test]
    fn a_value_http_refuses_is_not_handled() {
        for bad in ["X-A: a\x7fb", "X-A: a\x01b"] {
            let text = format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\n");
            assert!(response_head(text.as_bytes()).is_err(), "{bad:?}");
        }
        let tab = head("HTTP/1.1 200 OK\r\nX-A: a\tb\r\n\r\n");
        assert_eq!(
            tab.field(&HeaderName::from_static("x-a")),
            Some(&b"a\tb"[..])
        );
    }
}
