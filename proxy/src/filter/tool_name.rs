//! A tool's `name`, read from the tool's text without serde: the text is
//! an item of a `tools` array that `serde_json` has already read as valid
//! JSON, so finding its top-level members only needs to follow strings and
//! brackets. Reading each tool's schema again through serde's generic
//! skipping cost about 24 instructions a byte, most of a tool list's filtering.
//!
//! Anything this reader does not find where valid JSON puts it makes the
//! list unreadable (fail closed), and a test compares it with serde's
//! reading of the same tools. (`json_scan` checks text no one has checked
//! yet; following it here instead cost 9 % more per list, for checks serde
//! already made.)

use std::borrow::Cow;

use super::{way, Unreadable, Way};
use crate::json_shape::{member_name, plain_run, skip_space};

/// The tool's `name` as a client reads it (escapes decoded); `None` when
/// it has none that is a string, or is not an object. A duplicated member,
/// or one a lenient client would read as `name` (`"Name"`), makes it
/// [`Unreadable`].
pub(super) fn tool_name(tool: &str) -> Result<Option<Cow<'_, str>>, Unreadable> {
    let text = tool.as_bytes();
    let mut at = skip_space(text, 0);
    if text.get(at) != Some(&b'{') {
        // Not an object: no name (serde read it as valid JSON already).
        return Ok(None);
    }
    at = skip_space(text, at + 1);
    let mut keys: Vec<Cow<str>> = Vec::new();
    let mut name = None;
    if text.get(at) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        let key_end = string_end(text, at)?;
        let key = member_name(&tool[at..key_end]).ok_or(Unreadable)?;
        at = skip_space(text, key_end);
        if text.get(at) != Some(&b':') {
            return Err(Unreadable);
        }
        let value_start = skip_space(text, at + 1);
        let value_end = value_end(text, value_start)?;
        match way(&key, &["name"]) {
            Way::Is(_) => name = Some(&tool[value_start..value_end]),
            Way::LookAlike => return Err(Unreadable),
            Way::Other => {}
        }
        if keys.contains(&key) {
            return Err(Unreadable);
        }
        keys.push(key);
        at = skip_space(text, value_end);
        match text.get(at) {
            Some(b',') => at = skip_space(text, at + 1),
            Some(b'}') => break,
            _ => return Err(Unreadable),
        }
    }
    Ok(name.and_then(|n| serde_json::from_str::<Cow<str>>(n).ok()))
}

/// Just past the string that starts at `at` (its opening quote).
fn string_end(text: &[u8], at: usize) -> Result<usize, Unreadable> {
    if text.get(at) != Some(&b'"') {
        return Err(Unreadable);
    }
    let mut at = at + 1;
    loop {
        at = plain_run(text, at);
        match text.get(at).ok_or(Unreadable)? {
            b'"' => return Ok(at + 1),
            // The escaped byte is skipped with it (`\"`, `\\`, `\u`...).
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// Just past the value that starts at `at`.
fn value_end(text: &[u8], at: usize) -> Result<usize, Unreadable> {
    match text.get(at).ok_or(Unreadable)? {
        b'"' => string_end(text, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = at;
            loop {
                match text.get(at).ok_or(Unreadable)? {
                    b'"' => {
                        at = string_end(text, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1).ok_or(Unreadable)?;
                        if depth == 0 {
                            return Ok(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        // A number, `true`, `false` or `null`.
        _ => {
            let mut end = at;
            while text
                .get(end)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                end += 1;
            }
            if end == at {
                return Err(Unreadable);
            }
            Ok(end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_shape::random_json::RandomJson;
    use crate::json_shape::{ReadShape, ShapeOr};
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess};
    use serde_json::value::RawValue;

    /// The reading this module replaces: serde, member by member.
    fn by_serde(tool: &str) -> Result<Option<String>, ()> {
        struct ToolName;
        impl<'de> ReadShape<'de> for ToolName {
            type Out = Result<Option<&'de RawValue>, ()>;
            fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Self::Out>, A::Error> {
                let mut keys: Vec<Cow<str>> = Vec::new();
                let mut name = None;
                let mut ambiguous = false;
                while let Some(key) = map.next_key::<Cow<str>>()? {
                    match way(&key, &["name"]) {
                        Way::Is(_) => name = Some(map.next_value()?),
                        Way::LookAlike => {
                            ambiguous = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        Way::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    ambiguous |= keys.contains(&key);
                    keys.push(key);
                }
                Ok(Some(if ambiguous { Err(()) } else { Ok(name) }))
            }
        }
        let mut de = serde_json::Deserializer::from_str(tool);
        match ShapeOr(ToolName).deserialize(&mut de) {
            Ok(Some(Ok(name))) => {
                Ok(name.and_then(|n| serde_json::from_str::<String>(n.get()).ok()))
            }
            Ok(None) => Ok(None),
            _ => Err(()),
        }
    }

    fn compare(tool: &str) -> Result<Option<String>, ()> {
        // Only what serde read as valid JSON reaches this reader.
        let raw: &RawValue = serde_json::from_str(tool).unwrap_or_else(|e| panic!("{tool}: {e}"));
        let ours = tool_name(raw.get())
            .map(|n| n.map(Cow::into_owned))
            .map_err(|_| ());
        assert_eq!(ours, by_serde(raw.get()), "{tool}");
        ours
    }

    #[test]
    fn reads_names_as_serde_does() {
        let tools = [
            r#"{"name":"search_issues","description":"Finds \"open\" {issues} [fast]","inputSchema":{"type":"object","properties":{"q":{"type":"string","enum":["a}","b]","c\\"]}}},"annotations":{"readOnlyHint":true}}"#,
            r#" { "description" : "x" , "name" : "late" } "#,
            r#"{"n\u0061me":"escaped_key"}"#,
            r#"{"name":"escaped_\u0076alue\n"}"#,
            r#"{"Name":"look_alike"}"#,
            r#"{"nam\u0045":"escaped_look_alike"}"#,
            "{\"\u{17F}name\":1,\"name\":\"x\"}",
            "{\"name\":\"kelvin_\u{212A}\",\"\u{212A}ind\":\"other\"}",
            r#"{"name":"a","name":"b"}"#,
            r#"{"x":1,"x":2,"name":"dup_other"}"#,
            r#"{"name":5}"#,
            r#"{"name":null,"n":[1,2,{"name":"inner"}]}"#,
            r#"{"name":"\ud83d\ude00"}"#,
            r#"{"name":"\ud800"}"#,
            r#"{}"#,
            r#"[{"name":"in_array"}]"#,
            r#""name""#,
            r#"12.5e3"#,
            r#"{"a":-1.5e-3,"b":true,"c":false,"d":null,"name":"after_scalars"}"#,
            r#"{"a":"\\","name":"after_backslash"}"#,
            r#"{"a":"\\\"}","name":"after_escaped_quote"}"#,
            r#"{"deep":[[[[{"x":[{}]}]]]],"name":"deep"}"#,
        ];
        let names: Vec<_> = tools.iter().map(|t| compare(t)).collect();
        // Not vacuous: names found, refusals made.
        assert_eq!(names[0], Ok(Some("search_issues".into())));
        assert_eq!(names[2], Ok(Some("escaped_key".into())));
        assert_eq!(names[4], Err(()));
        assert_eq!(names[8], Err(()));
        assert_eq!(names[15], Ok(None));
    }

    /// Random tools from a small grammar of awkward pieces, read both ways.
    #[test]
    fn random_tools_are_read_as_serde_reads_them() {
        const KEYS: &[&str] = &[
            "name",
            "name",
            "name",
            "Name",
            "NAME",
            "n\\u0061me",
            "nam\\u0065",
            "description",
            "inputSchema",
            "x",
            "\\\"",
            "na\\u006De",
            "\u{17F}",
            "k\u{212A}",
            "",
        ];
        const SCALARS: &[&str] = &[
            "1",
            "-0.5e10",
            "true",
            "false",
            "null",
            "\"s\"",
            "\"a\\\"b\"",
            "\"}]\"",
            "\"\\\\\"",
            "\"\\u00e9\"",
            "\"t\\u0061\"",
            "\"\u{e9}\u{1F600}\"",
        ];
        let mut random = RandomJson::new(0x9e37_79b9_7f4a_7c15, KEYS, SCALARS);
        let (mut named, mut refused) = (0, 0);
        for _ in 0..5000 {
            match compare(&random.text()) {
                Ok(Some(_)) => named += 1,
                Err(()) => refused += 1,
                Ok(None) => {}
            }
        }
        // Not vacuous: both outcomes were met often.
        assert!(
            named > 300 && refused > 300,
            "{named} named, {refused} refused"
        );
    }
}
