//! A head's fields kept as ranges of the bytes read (names lower-cased),
//! and the gateway's edits to them, written back out without building an
//! `http::HeaderMap` (hashing each name, a value object each, dropping the
//! map: about 2.5k instructions per head).

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
        // Names are compared often and in any case: lower-cased once here
        // (their case means nothing; the wire gets them lower case, as
        // `http` writes them).
        let mut head = head.to_vec();
        for f in &fields {
            head[f.name.clone()].make_ascii_lowercase();
        }
        Ok(RawFields { head, fields })
    }

    /// The head's length.
    pub(super) fn head_len(&self) -> usize {
        self.head.len()
    }

    /// Every value of `name` as read.
    pub(super) fn values<'a>(&'a self, name: &HeaderName) -> Values<'a> {
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
    pub(super) fn values<'a>(&'a self, read: &'a RawFields, name: &HeaderName) -> Values<'a> {
        Values {
            read,
            edits: self,
            // Owned: the values outlive the caller's name (a standard or
            // static name is copied, not counted).
            name: name.clone(),
            next: 0,
            next_added: 0,
        }
    }

    /// Sets `name` to `value` alone.
    pub(super) fn set(&mut self, read: &RawFields, name: HeaderName, value: HeaderValue) {
        self.remove(read, &name);
        self.added.push((name, value));
    }

    /// Removes every `name` field.
    pub(super) fn remove(&mut self, read: &RawFields, name: &HeaderName) {
        let wanted = name.as_str().as_bytes();
        self.remove_where(read, |n| n == wanted);
    }

    /// Removes every field whose name (lower case) `drop` picks.
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

/// The values of one name in a head as read and edited: the fields kept,
/// then those set.
pub(super) struct Values<'a> {
    read: &'a RawFields,
    edits: &'a Edits,
    name: HeaderName,
    next: usize,
    next_added: usize,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let wanted = self.name.as_str().as_bytes();
        let head = &self.read.head;
        for (i, f) in self.read.fields.iter().enumerate().skip(self.next) {
            // Lengths first: most names differ in length.
            if f.name.end - f.name.start == wanted.len()
                && !self.edits.removed(i)
                && head.get(f.name.clone()) == Some(wanted)
            {
                self.next = i + 1;
                return head.get(f.value.clone());
            }
        }
        self.next = self.read.fields.len();
        while let Some((name, value)) = self.edits.added.get(self.next_added) {
            self.next_added += 1;
            if *name == self.name {
                return Some(value.as_bytes());
            }
        }
        None
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
