//! What the audit trail keeps of a response: its size, and its last bytes
//! (enough to read the JSON-RPC result of a call). Chunks are shared
//! (`Bytes` clones), never copied on the request path.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;

/// The tail of a response kept for reading its outcome (256 KiB).
pub const TAP_BYTES: usize = 256 * 1024;

/// The kept part of one response.
#[derive(Debug, Default)]
pub struct ResponseTap {
    /// Whether the response is worth keeping (a call whose outcome is audited).
    pub active: bool,
    /// The response is an event stream.
    pub sse: bool,
    chunks: VecDeque<Bytes>,
    kept: usize,
    /// Bytes sent to the agent.
    pub total: u64,
    /// Earlier bytes were let go: the kept part starts mid-response.
    pub truncated: bool,
}

impl ResponseTap {
    /// Counts a chunk sent to the agent, and keeps it when active.
    pub fn push(&mut self, chunk: &Bytes) {
        self.total += chunk.len() as u64;
        if !self.active || chunk.is_empty() {
            return;
        }
        self.chunks.push_back(chunk.clone());
        self.kept += chunk.len();
        while self.kept > TAP_BYTES && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.kept -= old.len();
                self.truncated = true;
            }
        }
    }

    /// The kept bytes, joined (borrowed when they are one chunk).
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        if let (Some(one), 1) = (self.chunks.front(), self.chunks.len()) {
            return Cow::Borrowed(one);
        }
        let mut out = Vec::with_capacity(self.kept);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_counts_everything() {
        let mut tap = ResponseTap {
            active: true,
            ..Default::default()
        };
        let chunk = Bytes::from(vec![b'a'; 100 * 1024]);
        for _ in 0..5 {
            tap.push(&chunk);
        }
        tap.push(&Bytes::from_static(b"end"));
        assert_eq!(tap.total, 500 * 1024 + 3);
        assert!(tap.truncated);
        let kept = tap.bytes();
        assert!(kept.len() <= TAP_BYTES + 100 * 1024);
        assert!(kept.ends_with(b"end"));
        assert!(matches!(kept, Cow::Owned(_)));

        let mut one = ResponseTap {
            active: true,
            ..Default::default()
        };
        one.push(&Bytes::from_static(b"{}"));
        assert!(matches!(one.bytes(), Cow::Borrowed(b"{}")));

        let mut idle = ResponseTap::default();
        idle.push(&chunk);
        assert_eq!(idle.total, 100 * 1024);
        assert!(idle.bytes().is_empty());
    }
}
