//! W3C Trace Context (`traceparent`): every upstream request carries one, so
//! a call can be followed from the agent through the gateway to the server.
//! The agent's trace id is kept when it sent a valid header; otherwise the
//! gateway starts a trace. The parent id is always the gateway's own span.

use std::cell::Cell;
use std::hash::BuildHasher;

/// The trace context of one request: the `traceparent` value sent
/// upstream, `00-<trace id>-<span id>-<flags>`, kept as text (one value per
/// request, not three strings).
#[derive(Debug, Clone)]
pub struct TraceContext {
    header: [u8; HEADER_LEN],
}

/// `00-` 32 hex `-` 16 hex `-` 2 hex.
const HEADER_LEN: usize = 55;
const TRACE_ID: std::ops::Range<usize> = 3..35;
const SPAN_ID: std::ops::Range<usize> = 36..52;
const FLAGS: std::ops::Range<usize> = 53..55;

impl TraceContext {
    /// Continues the agent's trace from its `traceparent`, or starts one.
    /// The span id is always the gateway's own.
    pub fn from_header(traceparent: Option<&[u8]>) -> Self {
        let mut header = *b"00-00000000000000000000000000000000-0000000000000000-01";
        match traceparent.and_then(parse) {
            Some((trace_id, flags)) => {
                header[TRACE_ID].copy_from_slice(trace_id.as_bytes());
                header[FLAGS].copy_from_slice(flags.as_bytes());
            }
            None => {
                hex_into(nonzero_random(), &mut header[3..19]);
                hex_into(nonzero_random(), &mut header[19..35]);
            }
        }
        hex_into(nonzero_random(), &mut header[SPAN_ID]);
        TraceContext { header }
    }

    /// The trace id: 32 lower-case hex digits.
    pub fn trace_id(&self) -> &str {
        self.text(TRACE_ID)
    }

    /// The gateway's span id (16 hex digits), sent upstream as the parent.
    pub fn span_id(&self) -> &str {
        self.text(SPAN_ID)
    }

    /// The `traceparent` header value to send upstream.
    pub fn header_value(&self) -> &str {
        self.text(0..HEADER_LEN)
    }

    fn text(&self, part: std::ops::Range<usize>) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.header[part]).unwrap_or_default()
    }
}

/// Writes `word` as 16 lower-case hex digits into `out`.
fn hex_into(word: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, digit) in out.iter_mut().take(16).enumerate() {
        *digit = DIGITS[(word >> (60 - 4 * i)) as usize & 0xf];
    }
}

/// Lower-case hex of `words`, 16 digits each (no `format!`: this runs per request).
pub(crate) fn hex16(words: &[u64]) -> String {
    let mut out = vec![0u8; 16 * words.len()];
    for (word, digits) in words.iter().zip(out.chunks_exact_mut(16)) {
        hex_into(*word, digits);
    }
    // Only ASCII digits were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>` (and later versions' leading fields);
/// all-zero ids are invalid.
fn parse(raw: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then_some((trace_id, flags))
}

/// A fast, non-cryptographic random number (ids for tracing, not secrets).
fn nonzero_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(0u64) | 1);
    }
    STATE.with(|s| {
        // splitmix64
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_match_format() {
        for w in [1u64, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(hex16(&[w, 7]), format!("{w:016x}{:016x}", 7));
        }
    }

    #[test]
    fn keeps_a_valid_trace_and_replaces_the_parent() {
        let incoming = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::from_header(Some(incoming));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(t.span_id(), "00f067aa0ba902b7");
        assert_eq!(t.span_id().len(), 16);
        let header = t.header_value();
        assert!(header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(header.ends_with("-01"));
        assert_eq!(header.len(), 55);
    }

    #[test]
    fn starts_a_trace_when_the_header_is_missing_or_invalid() {
        for bad in [
            None,
            Some(&b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..]),
            Some(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            Some(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
            Some(b"garbage"),
        ] {
            let t = TraceContext::from_header(bad);
            assert_eq!(t.trace_id().len(), 32);
            assert_ne!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(t.trace_id().bytes().any(|b| b != b'0'));
            assert!(t.header_value().ends_with("-01"));
        }
        let a = TraceContext::from_header(None);
        let b = TraceContext::from_header(None);
        assert_ne!(a.trace_id(), b.trace_id());
    }
}
