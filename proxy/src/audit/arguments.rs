//! A call's arguments, written into its record straight from the request's
//! text: compact, with the value of every sensitive key replaced, without
//! first building them as a `serde_json::Value`, redacting that and writing
//! it out again. A large argument is scanned once, eight bytes at a time.
//!
//! What the copy does not take as it is goes the `Value` way instead
//! ([`redact::apply`], then [`line::json`]): the `hash` policy, nesting
//! deeper than [`MAX_DEPTH`], a number `Value` would not read, an escaped
//! UTF-16 surrogate, text that is not JSON. So a record's arguments read
//! the same whichever way they were written, and a record the control
//! plane could not parse is never written.
//!
//! Two differences in the text, on purpose: escapes stay as the agent
//! wrote them (`"\u00e9"`, not `"é"`), and a key given twice in one object
//! is kept twice (a `Value` keeps the last). A sensitive key is redacted
//! wherever it appears, and a reader that parses the record (the control
//! plane does) gets what the `Value` way would have written.

use catalog::audit::ArgumentsMode;
use serde_json::Value;

use super::line;
use super::redact::{self, sensitive, REDACTED};
use crate::json_scan::number_end;
use crate::json_shape::{member_name, plain_run, skip_space};

/// Deepest nesting the copy follows; deeper arguments go the `Value` way.
const MAX_DEPTH: usize = 64;

/// A record's arguments as the agent sent them (the JSON text of one
/// value), and the server's policy for them.
#[derive(Debug, Clone, Copy)]
pub struct Arguments<'a> {
    text: &'a str,
    mode: ArgumentsMode,
    /// Lower-case fragments of the keys to redact.
    keys: &'a [String],
}

impl<'a> Arguments<'a> {
    /// The arguments `text` (one JSON value), to be kept as `mode` says.
    pub fn new(text: &'a str, mode: ArgumentsMode, keys: &'a [String]) -> Self {
        Arguments { text, mode, keys }
    }

    /// Appends what the policy keeps of the arguments (`null`: nothing,
    /// or they are not JSON).
    pub fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let copied = match self.mode {
            ArgumentsMode::Keep => self.copy(out, None),
            ArgumentsMode::Redact => self.copy(out, Some(self.keys)),
            ArgumentsMode::Hash | ArgumentsMode::Drop => Err(Unusual),
        };
        if copied.is_ok() {
            return Ok(());
        }
        let kept = serde_json::from_str::<Value>(self.text)
            .ok()
            .and_then(|v| redact::apply(self.mode, v, self.keys));
        match kept {
            Some(v) => line::json(out, &v),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
}

impl Arguments<'_> {
    /// Copies the text to `out`, redacting the values of `keys`; on
    /// `Unusual` nothing is appended.
    fn copy(&self, out: &mut Vec<u8>, keys: Option<&[String]>) -> Result<(), Unusual> {
        let start = out.len();
        let copied = Copier {
            text: self.text.as_bytes(),
            at: 0,
            out: &mut *out,
            keys,
        }
        .whole();
        if copied.is_err() {
            out.truncate(start);
        }
        copied
    }
}

/// The copy met something it does not take as it is.
#[derive(Debug)]
struct Unusual;

/// A compact copy of one JSON value from `text` to `out`.
struct Copier<'t, 'o> {
    text: &'t [u8],
    at: usize,
    out: &'o mut Vec<u8>,
    /// Fragments of the keys whose values are redacted (`None`: keep all).
    keys: Option<&'t [String]>,
}

impl Copier<'_, '_> {
    /// The value and nothing after it but white space.
    fn whole(&mut self) -> Result<(), Unusual> {
        self.value(0)?;
        self.skip_space();
        if self.at == self.text.len() {
            Ok(())
        } else {
            Err(Unusual)
        }
    }

    fn peek(&self) -> Result<u8, Unusual> {
        self.text.get(self.at).copied().ok_or(Unusual)
    }

    /// Takes the byte `b`, copying it.
    fn take(&mut self, b: u8) {
        self.at += 1;
        self.out.push(b);
    }

    fn skip_space(&mut self) {
        self.at = skip_space(self.text, self.at);
    }

    /// A value inside `depth` containers.
    fn value(&mut self, depth: usize) -> Result<(), Unusual> {
        self.skip_space();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => {
                let s = self.string()?;
                self.out.extend_from_slice(&self.text[s]);
                Ok(())
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Unusual> {
        if depth > MAX_DEPTH {
            return Err(Unusual);
        }
        self.take(b'{');
        self.skip_space();
        if self.peek()? == b'}' {
            self.take(b'}');
            return Ok(());
        }
        loop {
            self.skip_space();
            if self.peek()? != b'"' {
                return Err(Unusual);
            }
            let key = self.string()?;
            self.out.extend_from_slice(&self.text[key.clone()]);
            self.skip_space();
            if self.peek()? != b':' {
                return Err(Unusual);
            }
            self.take(b':');
            if self.redacts(&self.text[key])? {
                // Read (it must be JSON too), then replaced.
                let mark = self.out.len();
                self.value(depth)?;
                self.out.truncate(mark);
                self.out.push(b'"');
                self.out.extend_from_slice(REDACTED.as_bytes());
                self.out.push(b'"');
            } else {
                self.value(depth)?;
            }
            self.skip_space();
            match self.peek()? {
                b',' => self.take(b','),
                b'}' => {
                    self.take(b'}');
                    return Ok(());
                }
                _ => return Err(Unusual),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Unusual> {
        if depth > MAX_DEPTH {
            return Err(Unusual);
        }
        self.take(b'[');
        self.skip_space();
        if self.peek()? == b']' {
            self.take(b']');
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.skip_space();
            match self.peek()? {
                b',' => self.take(b','),
                b']' => {
                    self.take(b']');
                    return Ok(());
                }
                _ => return Err(Unusual),
            }
        }
    }

    /// Is the value of the key `quoted` (as written, quotes and escapes
    /// included) redacted? Escapes are decoded first: `"pass\u0077ord"`
    /// is `password`.
    fn redacts(&self, quoted: &[u8]) -> Result<bool, Unusual> {
        let Some(keys) = self.keys else {
            return Ok(false);
        };
        let quoted = std::str::from_utf8(quoted).map_err(|_| Unusual)?;
        let key = member_name(quoted).ok_or(Unusual)?;
        Ok(sensitive(&key, keys))
    }

    /// The string starting here: its range in `text`, quotes included.
    fn string(&mut self) -> Result<std::ops::Range<usize>, Unusual> {
        let start = self.at;
        self.at += 1;
        loop {
            // Runs of eight bytes with no quote, backslash or control byte.
            self.at = plain_run(self.text, self.at);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Ok(start..self.at);
                }
                b'\\' => self.escape()?,
                0..=0x1f => return Err(Unusual),
                _ => self.at += 1,
            }
        }
    }

    /// One escape in a string. `\u` escapes of UTF-16 surrogates are left to
    /// the `Value` way, which refuses a lone one.
    fn escape(&mut self) -> Result<(), Unusual> {
        match self.text.get(self.at + 1).ok_or(Unusual)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.at += 2;
                Ok(())
            }
            b'u' => {
                let hex = self.text.get(self.at + 2..self.at + 6).ok_or(Unusual)?;
                let hex = std::str::from_utf8(hex).map_err(|_| Unusual)?;
                let unit = u16::from_str_radix(hex, 16).map_err(|_| Unusual)?;
                if hex.starts_with('+') || (0xd800..=0xdfff).contains(&unit) {
                    return Err(Unusual);
                }
                self.at += 6;
                Ok(())
            }
            _ => Err(Unusual),
        }
    }

    fn word(&mut self, word: &[u8]) -> Result<(), Unusual> {
        if !self.text[self.at..].starts_with(word) {
            return Err(Unusual);
        }
        self.at += word.len();
        self.out.extend_from_slice(word);
        Ok(())
    }

    /// A number as JSON writes one. One that is not a short integer must
    /// also be one `Value` reads (finite as an `f64`).
    fn number(&mut self) -> Result<(), Unusual> {
        let start = self.at;
        self.at = number_end(self.text, start).ok_or(Unusual)?;
        let number = &self.text[start..self.at];
        let integer = number.iter().all(|b| b.is_ascii_digit() || *b == b'-');
        let plain = integer && number.len() - usize::from(number[0] == b'-') <= 18;
        if !plain {
            let read = std::str::from_utf8(number)
                .ok()
                .and_then(|n| n.parse::<f64>().ok());
            if !read.is_some_and(f64::is_finite) {
                return Err(Unusual);
            }
        }
        self.out.extend_from_slice(number);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_shape::random_json::RandomJson;

    fn keys() -> Vec<String> {
        let mut keys = catalog::model::default_redact_keys();
        keys.push("ssn".into());
        keys
    }

    /// The arguments as written, and as the `Value` way writes them.
    fn both(text: &str, mode: ArgumentsMode) -> (String, String) {
        let keys = keys();
        let mut out = Vec::new();
        Arguments::new(text, mode, &keys).write(&mut out).unwrap();
        let kept = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| redact::apply(mode, v, &keys));
        let mut expected = Vec::new();
        match kept {
            Some(v) => line::json(&mut expected, &v).unwrap(),
            None => expected.extend_from_slice(b"null"),
        }
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap(),
        )
    }

    /// Written compactly, and read back as the `Value` way wrote them.
    fn same_as_value(text: &str, mode: ArgumentsMode) -> String {
        let (written, expected) = both(text, mode);
        let read: Value =
            serde_json::from_str(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
        let wanted: Value = serde_json::from_str(&expected).unwrap();
        assert_eq!(read, wanted, "{text}");
        assert!(!written.contains(['\n', '\r']), "{written}");
        written
    }

    #[test]
    fn copies_compactly_and_redacts_at_any_depth() {
        let text = r#" { "query" : "open bugs",
            "Password":"hunter2", "nested": {"api_key": {"deep": ["k"]},
            "list": [ {"GitHub_Token": "t", "n": 1 } , 2.5e3, -0.5, true, null ] },
            "customer_ssn": 123 , "empty": {}, "none": [] } "#;
        let written = same_as_value(text, ArgumentsMode::Redact);
        assert_eq!(
            written,
            r#"{"query":"open bugs","Password":"[REDACTED]","nested":{"api_key":"[REDACTED]","list":[{"GitHub_Token":"[REDACTED]","n":1},2.5e3,-0.5,true,null]},"customer_ssn":"[REDACTED]","empty":{},"none":[]}"#
        );
        let kept = same_as_value(text, ArgumentsMode::Keep);
        assert!(kept.contains(r#""Password":"hunter2""#), "{kept}");
        for text in ["1", "\"a\"", "null", "[]", "-12", "0.0", "-0"] {
            assert_eq!(same_as_value(text, ArgumentsMode::Redact), text);
        }
        // Kept as written; read back, the same number.
        let big = r#"{"big":123456789012345678901234567890,"small":1e-400}"#;
        assert_eq!(same_as_value(big, ArgumentsMode::Keep), big);
    }

    #[test]
    fn escaped_and_unusual_key_names_are_redacted() {
        for text in [
            r#"{"pass\u0077ord":"hunter2"}"#,
            r#"{"PASS\u0057ORD":"hunter2"}"#,
            r#"{"to\u212Aen":"hunter2"}"#,
            "{\"to\u{212A}en\":\"hunter2\"}",
            r#"{"a":{"b":[{"X_API_KEY":"hunter2"}]}}"#,
            r#"{"secret\"":"hunter2"}"#,
        ] {
            let written = same_as_value(text, ArgumentsMode::Redact);
            assert!(!written.contains("hunter2"), "{text}: {written}");
            assert!(written.contains(REDACTED), "{text}: {written}");
        }
    }

    #[test]
    fn a_key_given_twice_is_redacted_both_times() {
        let text = r#"{"token":"one","q":1,"token":"two","q":2}"#;
        let (written, _) = both(text, ArgumentsMode::Redact);
        assert_eq!(
            written,
            r#"{"token":"[REDACTED]","q":1,"token":"[REDACTED]","q":2}"#
        );
        same_as_value(text, ArgumentsMode::Redact);
    }

    #[test]
    fn strings_keep_their_escapes_and_long_runs_are_copied() {
        let long = "abcdefgh".repeat(300);
        let text = format!(r#"{{"q":"{long}\"\\\/\b\f\n\r\t\u00e9é😀","r":"{long}"}}"#);
        let written = same_as_value(&text, ArgumentsMode::Redact);
        assert_eq!(written, text);
    }

    #[test]
    fn what_the_copy_does_not_take_goes_the_value_way() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let hashed = both(r#"{"a":1}"#, ArgumentsMode::Hash);
        assert!(hashed.0.starts_with(r#"{"sha256":""#), "{}", hashed.0);
        assert_eq!(hashed.0, hashed.1);
        for text in [deep.as_str(), r#"{"a":"\ud83d\ude00"}"#] {
            let (written, expected) = both(text, ArgumentsMode::Redact);
            assert_eq!(written, expected, "{text}");
        }
        // Nothing the control plane could not read: the `Value` way writes null.
        for text in [
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            "{\"a\":\"x\ty\"}",
            r#"{"a":"\x"}"#,
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"[1 2]"#,
            r#"{"a":1} x"#,
            "",
        ] {
            assert_eq!(
                both(text, ArgumentsMode::Redact),
                ("null".into(), "null".into()),
                "{text}"
            );
        }
    }

    /// Random arguments from awkward pieces: read back, they equal what the
    /// `Value` way writes, and no value of a sensitive key survives.
    #[test]
    fn random_arguments_read_back_as_the_value_way_writes_them() {
        // Keys: sensitive ones (escaped, in other cases), plain ones, repeats.
        const KEYS: &[&str] = &[
            "q",
            "password",
            "PassWord",
            "pass\\u0077ord",
            "my_api_key",
            "\\u0074oken",
            "to\u{212A}en",
            "nested",
            "limit",
            "\\\"",
            "q",
            "",
        ];
        // Numbers past an f64's precision are left out: the copy keeps their
        // digits, and serde_json can read those one rounding away from the
        // text the `Value` way writes (the copy is the closer).
        const SCALARS: &[&str] = &[
            "1",
            "-0",
            "2.5e-3",
            "1E2",
            "true",
            "false",
            "null",
            "\"s\"",
            "\"a\\\"b\"",
            "\"}]\"",
            "\"\\\\\"",
            "\"\\u00e9\"",
            "\"\u{e9}\u{1F600}\"",
            "\"\\ud83d\\ude00\"",
        ];
        let keys = keys();
        let secret = |key: &str| sensitive(key, &keys);
        // A secret's value: a marker that must not be in the output.
        let mut random = RandomJson::new(0x2545_f491_4f6c_dd1d, KEYS, SCALARS)
            .replacing(&secret, "\"SECRET-VALUE\"");
        let (mut redacted, mut copied) = (0, 0);
        for _ in 0..3000 {
            let text = random.text();
            let (written, expected) = both(&text, ArgumentsMode::Redact);
            let read: Value =
                serde_json::from_str(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
            let wanted: Value = serde_json::from_str(&expected).unwrap();
            assert_eq!(read, wanted, "{text}");
            assert!(!written.contains("SECRET"), "{text} -> {written}");
            assert!(!written.contains(['\n', '\r']), "{written}");
            redacted += usize::from(text.contains("SECRET"));
            copied += usize::from(written != expected);
        }
        // Not vacuous: secrets were met, and the copy (not only the
        // `Value` way) wrote many of them.
        assert!(
            redacted > 500 && copied > 500,
            "{redacted} redacted, {copied} copied"
        );
    }
}
