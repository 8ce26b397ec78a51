//! A head's fields kept as ranges of the bytes read, and the gateway's
//! edits to them, written back out without building an `http::HeaderMap`
//! (hashing each name, a value object each, dropping the map: about 2.5k
//! instructions per head).

use std::ops::Range;

use http::{HeaderName, HeaderValue};

/// Most fields a head parsed here has (see `MAX_RESPONSE_FIELDS`).
pub(super) const MAX_RAW_FIELDS: usize = 256;

/// The fields of a head as read.
#[derive(Debug)]
pub(super) struct RawFields {
    /// The head as read.
    head: Vec<u8>,
    /// Its fields, in order.
    fields: Vec<Field>,
}

/// One field of the head as read.
#[derive(Debug)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
    /// The head holds it as `name: value` CRLF, so its line is copied whole.
    as_written: bool,
}

/// A field whose place in the head could not be found.
#[derive(Debug)]
pub struct InvalidField;

impl RawFields {
    /// The fields httparse found in `head` (at most [`MAX_RAW_FIELDS`]).
    pub(super) fn new(parsed: &[httparse::Header], head: &[u8]) -> Result<RawFields, InvalidField> {
        if parsed.len() > MAX_RAW_FIELDS {
            return Err(InvalidField);
        }
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
            });
        }
        Ok(RawFields {
            head: head.to_vec(),
            fields,
        })
    }

    /// The head's length.
    pub(super) fn head_len(&self) -> usize {
        self.head.len()
    }

    /// Is `f` named `wanted` (lower case)? Lengths first: most differ.
    fn named(&self, f: &Field, wanted: &[u8]) -> bool {
        f.name.len() == wanted.len() && self.head[f.name.clone()].eq_ignore_ascii_case(wanted)
    }

    /// Every value of `name` as read.
    pub(super) fn values<'a>(
        &'a self,
        name: &HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        Edits::NONE.values(self, name)
    }
}

/// Fields removed from a head as read, and fields set after them.
#[derive(Debug, Default)]
pub(super) struct Edits {
    /// Bit `i`: field `i` is removed.
    removed: [u64; MAX_RAW_FIELDS / 64],
    added: Vec<(HeaderName, HeaderValue)>,
}

impl Edits {
    /// No edits.
    const NONE: &Edits = &Edits {
        removed: [0; MAX_RAW_FIELDS / 64],
        added: Vec::new(),
    };

    fn removed(&self, i: usize) -> bool {
        self.removed[i / 64] & (1 << (i % 64)) != 0
    }

    /// Every value of `name` in `read` so edited.
    pub(super) fn values<'a>(
        &'a self,
        read: &'a RawFields,
        name: &HeaderName,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        // Owned: the values outlive the caller's name (a standard or static
        // name is copied, not counted).
        let (wanted, name) = (name.clone(), name.clone());
        let kept = read
            .fields
            .iter()
            .enumerate()
            .filter(move |(i, f)| !self.removed(*i) && read.named(f, wanted.as_str().as_bytes()))
            .map(|(_, f)| &read.head[f.value.clone()]);
        let set = self
            .added
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes());
        kept.chain(set)
    }

    /// Sets `name` to `value` alone.
    pub(super) fn set(&mut self, read: &RawFields, name: HeaderName, value: HeaderValue) {
        self.remove(read, &name);
        self.added.push((name, value));
    }

    /// Removes every `name` field.
    pub(super) fn remove(&mut self, read: &RawFields, name: &HeaderName) {
        let wanted = name.as_str().as_bytes();
        self.remove_where(read, |n| {
            n.len() == wanted.len() && n.eq_ignore_ascii_case(wanted)
        });
    }

    /// Removes every field whose name `drop` picks.
    pub(super) fn remove_where(&mut self, read: &RawFields, mut drop: impl FnMut(&[u8]) -> bool) {
        for (i, f) in read.fields.iter().enumerate() {
            if !self.removed(i) && drop(&read.head[f.name.clone()]) {
                self.removed[i / 64] |= 1 << (i % 64);
            }
        }
        self.added.retain(|(n, _)| !drop(n.as_str().as_bytes()));
    }

    /// Writes the fields of `read` so edited, each as `name: value` CRLF:
    /// those kept in their order, then those set.
    pub(super) fn write(&self, read: &RawFields, out: &mut Vec<u8>) {
        // Consecutive lines kept as written are copied at once.
        let mut run = 0..0;
        for (i, f) in read.fields.iter().enumerate() {
            if self.removed(i) {
                continue;
            }
            if f.as_written && !run.is_empty() && run.end == f.name.start {
                run.end = f.value.end + 2;
                continue;
            }
            out.extend_from_slice(&read.head[run]);
            run = 0..0;
            if f.as_written {
                run = f.name.start..f.value.end + 2;
            } else {
                line(out, &read.head[f.name.clone()], &read.head[f.value.clone()]);
            }
        }
        out.extend_from_slice(&read.head[run]);
        for (name, value) in &self.added {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
