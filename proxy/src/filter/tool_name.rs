//! A tool's `name`, read from the tool's text without serde: the text is
//! an item of a `tools` array that `serde_json` has already read as valid
//! JSON, and `json_scan` finds its top-level members. Reading each tool's
//! schema again through serde's generic skipping cost about 24
//! instructions a byte, most of a tool list's filtering.
//!
//! Anything this reader does not find where valid JSON puts it makes the
//! list unreadable (fail closed), and a test compares it with serde's
//! reading of the same tools.

use std::borrow::Cow;

use super::{way, Unreadable, Way};
use crate::json_scan::{object_end, value_end};
use crate::json_shape::{member_name, skip_space};

/// How deep a tool lies in a `tools/list` response (`result.tools[i]`).
const TOOL_DEPTH: usize = 4;

/// The tool's `name` as a client reads it (escapes decoded); `None` when
/// it has none that is a string, or is not an object. A duplicated member,
/// or one a lenient client would read as `name` (`"Name"`), makes it
/// [`Unreadable`].
pub(super) fn tool_name(tool: &str) -> Result<Option<Cow<'_, str>>, Unreadable> {
    let text = tool.as_bytes();
    let at = skip_space(text, 0);
    if text.get(at) != Some(&b'{') {
        // Not an object: no name (serde read it as valid JSON already).
        return Ok(None);
    }
    let mut keys: Vec<Cow<str>> = Vec::new();
    let mut name = None;
    object_end(tool, at, TOOL_DEPTH, |quoted, value_at| {
        let key = member_name(quoted)?;
        let end = value_end(tool, value_at, TOOL_DEPTH + 1)?;
        match way(&key, &["name"]) {
            Way::Is(_) => name = Some(&tool[value_at..end]),
            // Ambiguous: unreadable.
            Way::LookAlike => return None,
            Way::Other => {}
        }
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
        Some(end)
    })
    .ok_or(Unreadable)?;
    Ok(name.and_then(|n| serde_json::from_str::<Cow<str>>(n).ok()))
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
