//! Reading a request body in full, size-capped, before anything goes upstream.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use pingora_proxy::Session;

use crate::error::Refusal;
use crate::fields::{visible_ascii, Fields};

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The agent's request is refused (size, encoding, content type).
    Refused(Refusal),
    /// The connection failed while reading.
    Io(Box<pingora_error::Error>),
}

impl From<Refusal> for ReadError {
    fn from(r: Refusal) -> Self {
        ReadError::Refused(r)
    }
}

/// Reads the whole request body (at most `limit` bytes after decoding) and
/// returns it decoded. Refuses early on a declared length above the cap.
pub async fn read_request_body(session: &mut Session, limit: usize) -> Result<Bytes, ReadError> {
    let header = session.req_header();
    check_declared(header, limit)?;
    if header
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(ReadError::Io)?;
    }

    // Pingora replays an early-read body from its retry buffer (up to 64 KiB).
    session.as_downstream_mut().enable_retry_buffering();
    let mut buf = BytesMut::new();
    while let Some(chunk) = session
        .as_downstream_mut()
        .read_request_body()
        .await
        .map_err(ReadError::Io)?
    {
        if buf.len() + chunk.len() > limit {
            return Err(Refusal::TooLarge { limit }.into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(decode(session.req_header(), buf.freeze(), limit)?)
}

/// A body read in full by the gateway's direct path (see
/// `gateway/direct.rs`), checked and decoded as [`read_request_body`] does.
pub fn take_request_body(header: &impl Fields, raw: Bytes, limit: usize) -> Result<Bytes, Refusal> {
    check_declared(header, limit)?;
    if raw.len() > limit {
        return Err(Refusal::TooLarge { limit });
    }
    decode(header, raw, limit)
}

/// What the head says of the body: its content type, and a length within the cap.
fn check_declared(header: &impl Fields, limit: usize) -> Result<(), Refusal> {
    if let Some(ct) = header.field(&http::header::CONTENT_TYPE) {
        check_content_type(ct)?;
    }
    let declared = header
        .text(&http::header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::TooLarge { limit });
    }
    Ok(())
}

/// The body decoded as its `Content-Encoding` says (gzip, deflate or none).
fn decode(header: &impl Fields, raw: Bytes, limit: usize) -> Result<Bytes, Refusal> {
    let encoding = header
        .field(&http::header::CONTENT_ENCODING)
        .map(|v| visible_ascii(v).unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => Ok(raw),
        Some("gzip" | "x-gzip") => inflate(flate2::read::GzDecoder::new(&raw[..]), limit),
        Some("deflate") => inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit),
        Some(other) => Err(Refusal::Unsupported(format!(
            "content encoding {other:?} is not supported; use gzip, deflate or none"
        ))),
    }
}

/// Only `application/json`, optionally `; charset=utf-8`: a server that
/// honours another charset (UTF-7, UTF-16) would read other text than the
/// gateway checked.
fn check_content_type(value: &[u8]) -> Result<(), Refusal> {
    // The usual value, without a lower-case copy of it.
    if value.eq_ignore_ascii_case(b"application/json") {
        return Ok(());
    }
    let text = std::str::from_utf8(value)
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut parts = text.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    let params_ok = parts.all(|p| {
        let p: String = p.chars().filter(|c| !c.is_whitespace()).collect();
        p.is_empty() || p == "charset=utf-8" || p == "charset=\"utf-8\""
    });
    if media == "application/json" && params_ok {
        Ok(())
    } else {
        Err(Refusal::Unsupported(format!(
            "content type {text:?} is not application/json (UTF-8)"
        )))
    }
}

fn inflate(reader: impl Read, limit: usize) -> Result<Bytes, Refusal> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refusal::Unsupported(format!("the compressed body cannot be decoded: {e}")))?;
    if out.len() > limit {
        return Err(Refusal::TooLarge { limit });
    }
    Ok(out.into())
}
