//! Readers shared by the gateway's one-pass JSON parsers (`jsonrpc.rs`,
//! `filter.rs`, the audit record): a value read one way when it is an
//! object or an array and checked and skipped otherwise, the case
//! folding lenient decoders apply to member names, and the pieces of the
//! plain scans that follow text serde checks or will check (white space,
//! member names, a string's plain run eight bytes at a time).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Reads a value through `R` when it is an object or an array (as `R`
/// chooses), and checks and skips any other JSON value (`None`): for a
/// member that should have one shape but may be anything.
pub(crate) struct ShapeOr<R>(pub R);

/// What [`ShapeOr`] makes of an object or an array; either is skipped
/// (`None`) unless the reader reads it.
pub(crate) trait ReadShape<'de>: Sized {
    /// What the value makes.
    type Out;
    /// Reads every member of an object.
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Self::Out>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    /// Reads every item of an array.
    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Self::Out>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de, R: ReadShape<'de>> de::DeserializeSeed<'de> for ShapeOr<R> {
    type Value = Option<R::Out>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: ReadShape<'de>> Visitor<'de> for ShapeOr<R> {
    type Value = Option<R::Out>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.array(seq)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Case folding as lenient decoders apply it: ASCII, plus the two non-ASCII
/// letters that fold onto ASCII (U+017F long s, U+212A Kelvin sign).
/// `target` is lower-case ASCII.
pub(crate) fn fold_eq(key: &str, target: &str) -> bool {
    if key.is_ascii() {
        // The common case: no letter folds across scripts, so lengths must match.
        return key.eq_ignore_ascii_case(target);
    }
    let mut k = key.chars().map(|c| match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    let mut t = target.chars();
    loop {
        match (k.next(), t.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The first byte from `at` that is not JSON white space.
pub(crate) fn skip_space(text: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = text.get(at) {
        at += 1;
    }
    at
}

/// A member name as written (quotes included, as a scan found it), or
/// any value serde or a scan checked, its escapes decoded as serde decodes
/// them: `"n\u0061me"` is `name`. `None`: not a JSON string (or one holding
/// a lone surrogate).
pub(crate) fn member_name(quoted: &str) -> Option<Cow<'_, str>> {
    if quoted.contains('\\') {
        return serde_json::from_str::<String>(quoted).ok().map(Cow::Owned);
    }
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    Some(Cow::Borrowed(inner))
}

/// Where the first byte from `at` that a JSON string must escape (a quote,
/// a backslash or a control byte) is: `text.len()` when there is none.
/// Eight bytes are tested at a time.
pub(crate) fn plain_run(text: &[u8], at: usize) -> usize {
    let rest = text.get(at..).unwrap_or_default();
    let mut words = rest.chunks_exact(8);
    let mut plain = at;
    for word in &mut words {
        let marks = escape_marks(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        if marks != 0 {
            // The lowest mark is always a real one (see `escape_marks`).
            return plain + (marks.trailing_zeros() / 8) as usize;
        }
        plain += 8;
    }
    for &b in words.remainder() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        plain += 1;
    }
    plain
}

/// The high bit of each byte of `word` (little-endian) that is below 0x20,
/// `"` or `\`, and possibly of bytes above a marked one (a borrow carries
/// upward): zero exactly when no byte is, and the lowest mark is exact.
fn escape_marks(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bits set where a byte is below `n` (n <= 0x80).
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w;
    (below(word, 0x20) | below(word ^ (ONES * 0x22), 1) | below(word ^ (ONES * 0x5c), 1)) & HIGH
}

/// Random JSON for the tests that compare a plain scan with serde's reading.
#[cfg(test)]
pub(crate) mod random_json {
    /// Bytes that make JSON text invalid, or valid in another way.
    const DAMAGE: &[u8] = b"{}[]\",:\\ 0123-+.eEtnu\x01\x7f";

    /// Deterministic random numbers: `next(n)` is below `n`.
    pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// `text` with one or two bytes deleted, replaced or inserted, as
    /// `next` picks; `None` when the result is not UTF-8.
    pub(crate) fn damaged(text: String, next: &mut impl FnMut(usize) -> usize) -> Option<String> {
        let damage = DAMAGE;
        let mut bytes = text.into_bytes();
        for _ in 0..1 + next(2) {
            let at = next(bytes.len() + 1);
            match next(3) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 if at < bytes.len() => bytes[at] = damage[next(damage.len())],
                _ => bytes.insert(at, damage[next(damage.len())]),
            }
        }
        String::from_utf8(bytes).ok()
    }

    /// Builds JSON texts from awkward pieces: member names from `keys` and
    /// scalars from `scalars` (both as written, escapes included), white
    /// space of several kinds, nesting up to four deep; mostly objects at
    /// the top. Deterministic (xorshift).
    pub(crate) struct RandomJson<'a> {
        seed: u64,
        keys: &'a [&'a str],
        scalars: &'a [&'a str],
        /// Members whose (decoded) name this picks get `replacement` as value.
        replace: &'a dyn Fn(&str) -> bool,
        replacement: &'a str,
    }

    impl<'a> RandomJson<'a> {
        pub(crate) fn new(seed: u64, keys: &'a [&'a str], scalars: &'a [&'a str]) -> Self {
            RandomJson {
                seed,
                keys,
                scalars,
                replace: &|_| false,
                replacement: "",
            }
        }

        /// Members whose decoded name `replace` picks get `replacement`.
        pub(crate) fn replacing(
            mut self,
            replace: &'a dyn Fn(&str) -> bool,
            replacement: &'a str,
        ) -> Self {
            self.replace = replace;
            self.replacement = replacement;
            self
        }

        fn next(&mut self, n: usize) -> usize {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            (self.seed % n as u64) as usize
        }

        /// One JSON text.
        pub(crate) fn text(&mut self) -> String {
            let mut out = String::new();
            self.value(0, &mut out);
            out
        }

        fn value(&mut self, depth: usize, out: &mut String) {
            const SPACE: [&str; 4] = [" ", "", "\n", "\t "];
            out.push_str(SPACE[self.next(SPACE.len())]);
            let kind = match depth {
                0 if self.next(10) > 0 => 3,
                0..=3 => self.next(4),
                _ => 0,
            };
            match kind {
                0 | 1 => out.push_str(self.scalars[self.next(self.scalars.len())]),
                2 => {
                    out.push('[');
                    for i in 0..self.next(3) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.value(depth + 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..self.next(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        let key = self.keys[self.next(self.keys.len())];
                        out.push('"');
                        out.push_str(key);
                        out.push_str("\" :");
                        let decoded: String = serde_json::from_str(&format!("\"{key}\""))
                            .expect("keys are JSON string contents");
                        if (self.replace)(&decoded) {
                            out.push_str(self.replacement);
                        } else {
                            self.value(depth + 1, out);
                        }
                    }
                    out.push('}');
                }
            }
            out.push_str(SPACE[self.next(SPACE.len())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plain_run;

    #[test]
    fn plain_run_stops_at_the_first_byte_to_escape() {
        for len in 0..20 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    // Bytes around the special one that a borrow could mark.
                    if at + 1 < len {
                        text[at + 1] = 0x80;
                    }
                    text[at] = special;
                    for start in 0..=at {
                        assert_eq!(plain_run(&text, start), at, "{text:?} from {start}");
                    }
                    assert_eq!(plain_run(&text, at + 1), len.max(at + 1), "{text:?}");
                }
                let plain: Vec<u8> = (0..len as u8).map(|i| 0x23 + i * 5).collect();
                assert!(plain.iter().all(|b| *b != b'"' && *b != b'\\'));
                assert_eq!(plain_run(&plain, 0), len);
                assert_eq!(plain_run(&plain, len + 3), len + 3);
            }
        }
    }
}
