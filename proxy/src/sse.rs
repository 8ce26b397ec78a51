//! Incremental rewriting of `text/event-stream` bodies.
//!
//! Response body filters are synchronous and see arbitrary chunks, so this
//! keeps only the unfinished tail of the stream: every complete event is
//! emitted at once (unchanged bytes when the rewrite does not touch it), and an
//! event split across chunks waits for its end. Nothing else is buffered.

/// Rewrites events of an SSE stream as their ends arrive.
#[derive(Debug, Default)]
pub struct SseRewriter {
    pending: Vec<u8>,
    /// Where in `pending` the search for the event's end resumes: the lines
    /// before it are known complete and non-empty, so each byte is scanned
    /// once however the event is chunked.
    scanned: usize,
}

/// Largest unfinished event kept while waiting for its end (16 MiB).
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// An event larger than 16 MiB (`MAX_EVENT_BYTES`).
#[derive(Debug, thiserror::Error)]
#[error("an SSE event exceeds {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseRewriter {
    /// Feeds a chunk; returns the bytes to send on now. `rewrite` gets each
    /// complete event's joined `data` and returns a replacement, or `None`.
    pub fn push(
        &mut self,
        chunk: &[u8],
        rewrite: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, EventTooLarge> {
        // A chunk without a line break extends the current line and ends
        // nothing (unless a held-back '\r' now stands alone): no rescan.
        let held_cr = self.pending.last() == Some(&b'\r');
        let no_break = !chunk.iter().any(|&b| b == b'\n' || b == b'\r');
        self.pending.extend_from_slice(chunk);
        if no_break && !held_cr {
            if self.pending.len() > MAX_EVENT_BYTES {
                return Err(EventTooLarge);
            }
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(self.pending.len());
        let mut start = 0;
        let mut from = self.scanned;
        loop {
            match event_end(&self.pending[start..], from) {
                Ok(end) => {
                    let event = &self.pending[start..start + end];
                    match rewrite_event(event, rewrite) {
                        Some(new) => out.extend_from_slice(&new),
                        None => out.extend_from_slice(event),
                    }
                    start += end;
                    from = 0;
                }
                Err(resume) => {
                    self.scanned = resume;
                    break;
                }
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(out)
    }

    /// At end of stream: whatever unfinished event is left, unchanged.
    pub fn finish(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.pending)
    }
}

/// Splits a buffer into lines, each with its terminator (`\r\n`, `\n` or `\r`).
/// A trailing `\r` ends an empty line (the event is complete either way), but
/// is held back after text: its `\n` may be in the next chunk.
fn lines(buf: &[u8], from: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = from;
    std::iter::from_fn(move || {
        let rest = &buf[pos..];
        let i = rest.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let term = match (rest[i], rest.get(i + 1)) {
            (b'\r', Some(b'\n')) => 2,
            (b'\r', None) if i > 0 => return None,
            _ => 1,
        };
        let line = (pos, pos + i);
        pos += i + term;
        Some((line.1 - line.0, pos))
    })
}

/// Length of the first complete event (through its blank line), scanning
/// from line start `from`; else `Err` with where the next scan may resume.
fn event_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut resume = from;
    for (len, next) in lines(buf, from) {
        if len == 0 {
            return Ok(next);
        }
        resume = next;
    }
    Err(resume)
}

fn rewrite_event(
    event: &[u8],
    rewrite: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut data: Vec<u8> = Vec::new();
    let mut others: Vec<&[u8]> = Vec::new();
    let mut has_data = false;
    let mut start = 0;
    for (len, next) in lines(event, 0) {
        let line = &event[start..start + len];
        start = next;
        if len == 0 {
            break;
        }
        if let Some(value) = line.strip_prefix(b"data") {
            if value.is_empty() || value[0] == b':' {
                let value = value.strip_prefix(b":").unwrap_or(value);
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
                continue;
            }
        }
        others.push(line);
    }
    if !has_data {
        return None;
    }
    let new_data = rewrite(&data)?;
    let mut out = Vec::with_capacity(event.len());
    for line in others {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    for line in new_data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(data: &[u8]) -> Option<Vec<u8>> {
        (data.starts_with(b"x")).then(|| data.to_ascii_uppercase())
    }

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut r = SseRewriter::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(r.push(c, &mut upper).unwrap());
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn rewrites_across_every_split_point() {
        let stream: &[u8] = b"id: 1\nevent: message\ndata: xab\n\n: comment\n\nid: 2\r\ndata: keep\r\n\r\nretry: 5\rdata: xcd\rdata: ef\r\r";
        let want: &[u8] = b"id: 1\nevent: message\ndata: XAB\n\n: comment\n\nid: 2\r\ndata: keep\r\n\r\nretry: 5\ndata: XCD\ndata: EF\n\n";
        assert_eq!(run(&[stream]), want);
        for split in 0..stream.len() {
            assert_eq!(
                run(&[&stream[..split], &stream[split..]]),
                want,
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes), want);
    }

    #[test]
    fn a_large_event_in_small_chunks_is_rewritten_once() {
        let data = "x".repeat(200_000);
        let stream = format!("data: {data}\r\ndata: y\r\n\r\n");
        let mut r = SseRewriter::default();
        let mut out = Vec::new();
        let mut calls = 0;
        let mut count = |d: &[u8]| {
            calls += 1;
            upper(d)
        };
        for c in stream.as_bytes().chunks(97) {
            out.extend(r.push(c, &mut count).unwrap());
        }
        assert_eq!(calls, 1);
        assert_eq!(
            out,
            format!("data: {}\ndata: Y\n\n", data.to_uppercase()).into_bytes()
        );
    }

    #[test]
    fn emits_complete_events_at_once_and_holds_the_tail() {
        let mut r = SseRewriter::default();
        let out = r.push(b"data: keep\n\ndata: xpartial", &mut upper).unwrap();
        assert_eq!(out, b"data: keep\n\n");
        let out = r.push(b"\n\n", &mut upper).unwrap();
        assert_eq!(out, b"data: XPARTIAL\n\n");
    }
}
