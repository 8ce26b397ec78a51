//! An upstream's response head kept as the bytes it sent (see
//! `raw_fields.rs`): the gateway's rules edit it and the agent's head is
//! written from it.

use http::{HeaderName, HeaderValue, StatusCode};

use super::raw_fields::{Edits, InvalidField, RawFields};
use crate::fields::{EditFields, Fields, ResponseFields};

/// A response head: status, version, and its fields as read, minus those
/// removed, plus those set.
#[derive(Debug)]
pub struct RawResponse {
    status: StatusCode,
    http10: bool,
    read: RawFields,
    edits: Edits,
}

impl RawResponse {
    /// The head `head` (as read), its fields as httparse found them in it.
    pub(super) fn new(
        status: StatusCode,
        http10: bool,
        parsed: &[httparse::Header],
        head: &[u8],
    ) -> Result<RawResponse, InvalidField> {
        Ok(RawResponse {
            status,
            http10,
            read: RawFields::new(parsed, head)?,
            edits: Edits::default(),
        })
    }

    /// Did the upstream answer in HTTP/1.0?
    pub fn is_http10(&self) -> bool {
        self.http10
    }

    /// The head as the agent gets it: HTTP/1.1, the status with its
    /// canonical reason, the fields kept in their order, then those set.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = super::status_line(self.status);
        self.edits.write(&self.read, &mut out);
        out.extend_from_slice(b"\r\n");
        out
    }
}

impl Fields for RawResponse {
    fn values<'a>(&'a self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.edits.values(&self.read, name)
    }
}

impl EditFields for RawResponse {
    fn set_field(&mut self, name: HeaderName, value: HeaderValue) -> pingora_error::Result<()> {
        self.edits.set(&self.read, name, value);
        Ok(())
    }
    fn remove_field(&mut self, name: &HeaderName) {
        self.edits.remove(&self.read, name);
    }
    fn remove_where(&mut self, drop: impl FnMut(&[u8]) -> bool) {
        self.edits.remove_where(&self.read, drop);
    }
}

impl ResponseFields for RawResponse {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn set_status(&mut self, status: StatusCode) -> pingora_error::Result<()> {
        self.status = status;
        Ok(())
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
            "HTTP/1.1 200 OK\r\nserver: up\r\nx-odd: odd\r\nset-cookie: a\r\ncontent-type: application/json\r\nset-cookie: b\r\ncontent-length: 2\r\n\r\n",
            "names lower case; lines not written as `name: value` CRLF are written so"
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
            "HTTP/1.1 502 Bad Gateway\r\nserver: up\r\nx-odd: odd\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nset-cookie: c\r\n\r\n"
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
