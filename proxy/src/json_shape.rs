//! Readers shared by the gateway's one-pass JSON parsers (`jsonrpc.rs`,
//! `filter.rs`, the audit record): a value read one way when it is an
//! object or an array and checked and skipped otherwise, the case
//! folding lenient decoders apply to member names, and a scan for the end
//! of a string's plain run, eight bytes at a time.

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

/// Where the run of eight-byte words from `at` in which no byte needs
/// escaping ends.
pub(crate) fn plain_run(text: &[u8], at: usize) -> usize {
    let mut plain = 0;
    for word in text.get(at..).unwrap_or_default().chunks_exact(8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if needs_escape(word) {
            break;
        }
        plain += 8;
    }
    at + plain
}

/// Does any of the eight bytes in `word` need escaping: below 0x20, `"` or `\`?
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bits set where a byte is below `n` (n <= 0x80): exact as a
    // yes/no for the whole word (a borrow can mark a byte above a hit).
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w;
    // One test of the three marks, without a branch for each.
    (below(word, 0x20) | below(word ^ (ONES * 0x22), 1) | below(word ^ (ONES * 0x5c), 1)) & HIGH
        != 0
}
