//! A strict JSON scanner: finds where a value ends, checking it against
//! the JSON grammar (RFC 8259) on the way, without decoding anything. The
//! plain request reader (`jsonrpc/plain.rs`) follows text with it; where
//! it says `None` the text is not JSON, or is nested deeper than
//! [`MAX_DEPTH`], and serde's reading decides.
//!
//! Strings are checked as serde checks a string it skips: no unescaped
//! control byte, only JSON's escapes, `\u` with four hex digits (a lone
//! surrogate passes: whether one is allowed depends on where the string
//! is decoded). UTF-8 is the caller's: the text is a `str`.

use crate::json_shape::{plain_run, skip_space};

/// Deeper nesting is not followed (serde's limit is 128).
pub(crate) const MAX_DEPTH: usize = 100;

/// Just past the object at `at` (its `{`), nested `depth` deep; `member`
/// gets each member's name as written (quotes included) and where its
/// value starts, and returns where the value ends.
pub(crate) fn object_end<'a>(
    body: &'a str,
    at: usize,
    depth: usize,
    mut member: impl FnMut(&'a str, usize) -> Option<usize>,
) -> Option<usize> {
    let text = body.as_bytes();
    if depth > MAX_DEPTH || text.get(at) != Some(&b'{') {
        return None;
    }
    let mut at = skip_space(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return Some(at + 1);
    }
    loop {
        let key_end = string_end(text, at)?;
        let key = &body[at..key_end];
        at = skip_space(text, key_end);
        if text.get(at) != Some(&b':') {
            return None;
        }
        at = member(key, skip_space(text, at + 1))?;
        at = skip_space(text, at);
        match text.get(at)? {
            b',' => at = skip_space(text, at + 1),
            b'}' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// Just past the array at `at` (its `[`), nested `depth` deep.
fn array_end(body: &str, at: usize, depth: usize) -> Option<usize> {
    let text = body.as_bytes();
    if depth > MAX_DEPTH {
        return None;
    }
    let mut at = skip_space(text, at + 1);
    if text.get(at) == Some(&b']') {
        return Some(at + 1);
    }
    loop {
        at = skip_space(text, value_end(body, at, depth + 1)?);
        match text.get(at)? {
            b',' => at = skip_space(text, at + 1),
            b']' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// Just past the value at `at`, an item or member of something nested
/// `depth - 1` deep. Names of its members are checked, not decoded.
pub(crate) fn value_end(body: &str, at: usize, depth: usize) -> Option<usize> {
    let text = body.as_bytes();
    match *text.get(at)? {
        b'"' => string_end(text, at),
        b'{' => object_end(body, at, depth, |_, at| value_end(body, at, depth + 1)),
        b'[' => array_end(body, at, depth),
        b't' => literal_end(text, at, b"true"),
        b'f' => literal_end(text, at, b"false"),
        b'n' => literal_end(text, at, b"null"),
        b'-' | b'0'..=b'9' => number_end(text, at),
        _ => None,
    }
}

/// Just past `literal` when it is at `at`.
fn literal_end(text: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    let end = at + literal.len();
    (text.get(at..end)? == literal).then_some(end)
}

/// Just past the number at `at`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
pub(crate) fn number_end(text: &[u8], mut at: usize) -> Option<usize> {
    if text.get(at) == Some(&b'-') {
        at += 1;
    }
    at = match text.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits_end(text, at),
        _ => return None,
    };
    if text.get(at) == Some(&b'.') {
        at = some_digits_end(text, at + 1)?;
    }
    if let Some(b'e' | b'E') = text.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = text.get(at) {
            at += 1;
        }
        at = some_digits_end(text, at)?;
    }
    Some(at)
}

fn digits_end(text: &[u8], mut at: usize) -> usize {
    while text.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// Like [`digits_end`], but at least one digit.
fn some_digits_end(text: &[u8], at: usize) -> Option<usize> {
    let end = digits_end(text, at);
    (end > at).then_some(end)
}

/// Just past the string at `at` (its opening quote): no control byte
/// unescaped, every escape one JSON has.
fn string_end(text: &[u8], at: usize) -> Option<usize> {
    if text.get(at) != Some(&b'"') {
        return None;
    }
    let mut at = at + 1;
    loop {
        at = plain_run(text, at);
        match text.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at = escape_end(text, at + 1)?,
            _ => return None,
        }
    }
}

/// Just past the escape whose letter is at `at`. A `\u` escape is four hex
/// digits; whether it is half of a surrogate pair matters only where the
/// string is decoded (names, method, target), and serde decodes those.
fn escape_end(text: &[u8], at: usize) -> Option<usize> {
    match text.get(at)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 1),
        b'u' => {
            let hex = text.get(at + 1..at + 5)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(at + 5)
        }
        _ => None,
    }
}
