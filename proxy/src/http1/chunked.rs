//! Chunked transfer coding (RFC 9112 §7.1) for the gateway's own paths:
//! framing the bodies it rewrites, and decoding an upstream's chunked body
//! as its bytes arrive.

/// Appends `data` to `out` as one chunk of a chunked body (an empty
/// `data`: nothing, which would end the body).
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// A chunked body decoded as its bytes arrive, in any split.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
    /// Bytes arrived after the body's end.
    overran: bool,
}

#[derive(Debug, Default, PartialEq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CR after a chunk's data.
    DataEnd,
    /// The LF after that CR.
    DataEndLf,
    /// Trailer lines after the last chunk.
    Trailer,
    /// The body is complete.
    Done,
}

/// A chunked body that does not follow RFC 9112.
#[derive(Debug, thiserror::Error)]
#[error("malformed chunked body from the upstream")]
pub struct BadChunk;

impl ChunkedDecoder {
    /// Appends the payload in `input` to `out`. Returns true once the body is complete.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, BadChunk> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.take_line(input)?;
                        return Ok(false);
                    };
                    self.take_line(&input[..end])?;
                    input = &input[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    // Lines end in CRLF: a bare LF is refused.
                    let line = line.strip_suffix(b"\r").ok_or(BadChunk)?;
                    self.state = match self.state {
                        ChunkState::Size => match chunk_size(line)? {
                            0 => ChunkState::Trailer,
                            n => ChunkState::Data(n),
                        },
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailer,
                    };
                }
                ChunkState::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = match left - n as u64 {
                        0 => ChunkState::DataEnd,
                        left => ChunkState::Data(left),
                    };
                }
                ChunkState::DataEnd => {
                    match input[0] {
                        b'\r' => self.state = ChunkState::DataEndLf,
                        _ => return Err(BadChunk),
                    }
                    input = &input[1..];
                }
                ChunkState::DataEndLf => {
                    match input[0] {
                        b'\n' => self.state = ChunkState::Size,
                        _ => return Err(BadChunk),
                    }
                    input = &input[1..];
                }
                ChunkState::Done => {
                    self.overran = true;
                    return Ok(true);
                }
            }
        }
        Ok(self.state == ChunkState::Done)
    }

    /// Bytes arrived after the body's end (its connection is not reusable).
    pub fn overran(&self) -> bool {
        self.overran
    }

    fn take_line(&mut self, part: &[u8]) -> Result<(), BadChunk> {
        if self.line.len() + part.len() > MAX_LINE {
            return Err(BadChunk);
        }
        self.line.extend_from_slice(part);
        Ok(())
    }
}

/// The size in a chunk-size line (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, BadChunk> {
    // 1*HEXDIG, then optional whitespace before any extension (RFC 9112 §7.1).
    let hex = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(b"")
        .trim_ascii_end();
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(BadChunk);
    }
    let hex = std::str::from_utf8(hex).map_err(|_| BadChunk)?;
    u64::from_str_radix(hex, 16).map_err(|_| BadChunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(wire: &[u8], at: usize) -> (Vec<u8>, bool) {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut done = false;
        for part in wire.chunks(at.max(1)) {
            done = d.push(part, &mut out).unwrap();
        }
        (out, done)
    }

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        for at in 1..wire.len() {
            let (out, done) = decode_split(wire, at);
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "split {at}");
            assert!(done, "split {at}");
        }
        let (out, done) = decode_split(b"3\r\nabc\r\n", 2);
        assert_eq!((out.as_slice(), done), (&b"abc"[..], false));
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"3\r\nabcX",
            b"\r\n",
            b"fffffffffffffffff\r\n",
            // Signs, leading spaces, bare LF, a CR run after the data.
            b"+3\r\nabc\r\n",
            b" 3\r\nabc\r\n",
            b"3\nabc\r\n",
            b"3\r\nabc\r\r\n",
        ] {
            let mut out = Vec::new();
            assert!(ChunkedDecoder::default().push(bad, &mut out).is_err());
        }
    }
}
