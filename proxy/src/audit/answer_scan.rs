//! What a record's outcome needs of one answer (`id`, `error`, and the
//! result's `isError`), found by a validating scan instead of serde's
//! generic skipping: a 64 KiB result's `content` is checked eight bytes at
//! a time rather than token by token.
//!
//! The scan accepts only strict JSON in valid UTF-8, no deeper than
//! [`MAX_DEPTH`], without escaped UTF-16 surrogates, and only a single
//! message whose `id`, `result` and `error` each appear at most once. On
//! anything else it gives up (`None`) and the caller reads the text with
//! serde, as before. Where it does answer, serde would have read the same
//! members (a test compares the two on random answers).

use serde_json::Value;

use crate::json_shape::plain_run;

/// Deepest nesting the scan follows.
const MAX_DEPTH: usize = 64;

/// One answer's members as the outcome reads them.
#[derive(Debug, PartialEq)]
pub(super) struct Scanned {
    /// `id`, unless absent or `null`.
    pub id: Option<Value>,
    /// `result` was there; `isError` when it is an object holding it once.
    pub result: Option<Option<Value>>,
    /// `error`, when present (`null` included).
    pub error: Option<Value>,
}

/// Scans one JSON message (not a batch). `None`: read it with serde.
pub(super) fn scan(json: &[u8]) -> Option<Scanned> {
    let text = std::str::from_utf8(json).ok()?;
    let mut s = Scan {
        text: text.as_bytes(),
        at: 0,
    };
    s.skip_space();
    if s.peek()? != b'{' {
        return None;
    }
    let mut out = Scanned {
        id: None,
        result: None,
        error: None,
    };
    let mut seen = [false; 3];
    s.members(1, |s, key| {
        let slot = match key {
            "id" => 0,
            "result" => 1,
            "error" => 2,
            _ => return s.value(1),
        };
        // serde refuses a known member given twice.
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match slot {
            0 => out.id = s.parsed(1)?,
            1 => out.result = Some(s.result(1)?),
            _ => out.error = Some(s.parsed(1)?.unwrap_or(Value::Null)),
        }
        Some(())
    })?;
    s.skip_space();
    (s.at == text.len()).then_some(out)
}

/// A strict reading of JSON text, checking and skipping values.
struct Scan<'t> {
    text: &'t [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The members of the object starting here, itself inside `depth`
    /// containers: `each` gets each decoded name and reads its value.
    fn members(
        &mut self,
        depth: usize,
        mut each: impl FnMut(&mut Self, &str) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            let key = self.string()?;
            let quoted = std::str::from_utf8(&self.text[key]).ok()?;
            let name: std::borrow::Cow<str> = if quoted.contains('\\') {
                serde_json::from_str::<String>(quoted).ok()?.into()
            } else {
                quoted[1..quoted.len() - 1].into()
            };
            self.skip_space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_space();
            each(self, &name)?;
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value starting here (inside `depth` containers) as serde reads
    /// it: `Some(None)` is `null`. `None`: not one serde reads.
    fn parsed(&mut self, depth: usize) -> Option<Option<Value>> {
        self.skip_space();
        let start = self.at;
        self.value(depth)?;
        let text = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        let value: Value = serde_json::from_str(text).ok()?;
        Some((!value.is_null()).then_some(value))
    }

    /// A result's `isError`, read in the same pass: none unless the result
    /// is an object holding it exactly once.
    fn result(&mut self, depth: usize) -> Option<Option<Value>> {
        self.skip_space();
        match self.peek()? {
            b'{' => {}
            // Items are skipped; a scalar is read (serde refuses `1e400`).
            b'[' => return self.value(depth).map(|()| None),
            _ => return self.parsed(depth).map(|_| None),
        }
        let (mut found, mut count) = (None, 0);
        self.members(depth + 1, |s, key| {
            if key != "isError" {
                return s.value(depth + 1);
            }
            count += 1;
            // `null` is a value here, as a `Value` reads it.
            found = Some(s.parsed(depth + 1)?.unwrap_or(Value::Null));
            Some(())
        })?;
        Some(if count == 1 { found } else { None })
    }

    /// Checks and skips the value starting here.
    fn value(&mut self, depth: usize) -> Option<()> {
        self.skip_space();
        match self.peek()? {
            b'{' => self.members(depth + 1, |s, _| s.value(depth + 1)),
            b'[' => self.items(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn items(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.skip_space();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The string starting here: its range, quotes included.
    fn string(&mut self) -> Option<std::ops::Range<usize>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at;
        self.at += 1;
        loop {
            self.at = plain_run(self.text, self.at);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(start..self.at);
                }
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
    }

    /// One escape; `\u` escapes of surrogates are left to serde.
    fn escape(&mut self) -> Option<()> {
        match self.text.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.text.get(self.at + 2..self.at + 6)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let unit = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if (0xd800..=0xdfff).contains(&unit) {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.text[self.at..].starts_with(word).then(|| {
            self.at += word.len();
        })
    }

    /// A number as strict JSON writes one (its value is not needed).
    fn number(&mut self) -> Option<()> {
        let digits = |s: &mut Self| {
            let from = s.at;
            while s.peek().is_some_and(|b| b.is_ascii_digit()) {
                s.at += 1;
            }
            s.at - from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.text[self.at - whole] == b'0') {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }
}
