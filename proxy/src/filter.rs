//! Remove the tools a caller may not call from `tools/list` results.
//!
//! Only responses to the caller's own `tools/list` requests are rewritten
//! (matched by id); on a GET stream, where ids are unknown, any result that
//! carries a `tools` array is treated as a listing. Every other field
//! (`nextCursor`, `_meta`, unknown ones) and the field order are kept.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::Value;

/// Which responses to filter.
#[derive(Debug, Clone, Default)]
pub enum ListIds {
    /// Nothing to filter.
    #[default]
    None,
    /// Responses with one of these ids.
    Ids(Vec<Value>),
    /// Any response that carries `result.tools` (streams of unknown origin).
    Any,
}

impl ListIds {
    /// True when some response may need filtering.
    pub fn is_active(&self) -> bool {
        !matches!(self, ListIds::None)
    }

    fn wants(&self, id: Option<&Value>) -> bool {
        match self {
            ListIds::None => false,
            ListIds::Any => true,
            ListIds::Ids(ids) => id.is_some_and(|id| ids.contains(id)),
        }
    }
}

/// The outcome of filtering one JSON text.
#[derive(Debug, PartialEq)]
pub enum Filtered {
    /// Forward the original bytes.
    Unchanged,
    /// Forward these bytes instead.
    Rewritten(Vec<u8>),
    /// It may hold a tool list but cannot be read: forward [`unreadable_error`].
    Unreadable,
}

/// What replaces a response that may hold a tool list the gateway cannot read.
pub fn unreadable_error() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"the gateway could not check this response from the upstream MCP server"}}"#.to_vec()
}

/// Rewrites one JSON text (a message or a batch of messages).
///
/// Only the structure on the way to the tool names is parsed (message →
/// `result` → `tools` → each tool's `name`); everything else is carried
/// over as the upstream's own bytes. A duplicated key on that way is
/// refused as unreadable: a client keeping the other copy must never see
/// what the gateway did not check.
pub fn filter_message(text: &[u8], ids: &ListIds, allowed: &dyn Fn(&str) -> bool) -> Filtered {
    // Without the key spelled plainly or any escape, no tool list can be in there.
    if !ids.is_active() || (!contains(text, b"\"tools\"") && !text.contains(&b'\\')) {
        return Filtered::Unchanged;
    }
    let Ok(top) = serde_json::from_slice::<&RawValue>(text) else {
        return Filtered::Unreadable;
    };
    let outcome = if top.get().starts_with('[') {
        serde_json::from_str::<Vec<&RawValue>>(top.get())
            .map_err(|_| Unreadable)
            .and_then(|items| {
                let mut changed = false;
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match filter_object(item, ids, allowed)? {
                        Some(out) => {
                            changed = true;
                            parts.push(Cow::Owned(out));
                        }
                        None => parts.push(Cow::Borrowed(item.get())),
                    }
                }
                Ok(changed.then(|| join_array(&parts)))
            })
    } else {
        filter_object(top, ids, allowed)
    };
    match outcome {
        Ok(Some(out)) => Filtered::Rewritten(out.into_bytes()),
        Ok(None) => Filtered::Unchanged,
        Err(Unreadable) => Filtered::Unreadable,
    }
}

/// A response the gateway cannot check.
struct Unreadable;

/// An object's members in order, values as their original JSON text.
type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// The members of a JSON object (`None`: not an object); a duplicated key
/// is unreadable.
fn members(raw: &RawValue) -> Result<Option<Members<'_>>, Unreadable> {
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    let map: Members = serde_json::from_str::<MembersOf>(raw.get())
        .map_err(|_| Unreadable)?
        .0;
    for (i, (k, _)) in map.iter().enumerate() {
        if map[..i].iter().any(|(seen, _)| seen == k) {
            return Err(Unreadable);
        }
    }
    Ok(Some(map))
}

fn member<'a>(map: &Members<'a>, key: &str) -> Option<&'a RawValue> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// Filters one message: `Some(text)` when its tool list lost tools.
fn filter_object(
    raw: &RawValue,
    ids: &ListIds,
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, Unreadable> {
    let Some(msg) = members(raw)? else {
        return Ok(None);
    };
    if member(&msg, "method").is_some() {
        return Ok(None);
    }
    let id = match member(&msg, "id") {
        Some(raw) => Some(serde_json::from_str::<Value>(raw.get()).map_err(|_| Unreadable)?),
        None => None,
    };
    if !ids.wants(id.as_ref()) {
        return Ok(None);
    }
    let Some(result) = member(&msg, "result") else {
        return Ok(None);
    };
    let Some(result_members) = members(result)? else {
        return Ok(None);
    };
    let Some(tools) = member(&result_members, "tools") else {
        return Ok(None);
    };
    if !tools.get().starts_with('[') {
        return Ok(None);
    }
    let tools: Vec<&RawValue> = serde_json::from_str(tools.get()).map_err(|_| Unreadable)?;
    let mut kept = Vec::with_capacity(tools.len());
    for tool in &tools {
        // A tool without a readable name cannot be checked, so it is dropped.
        let name = members(tool)?
            .and_then(|m| member(&m, "name"))
            .and_then(|n| serde_json::from_str::<Cow<str>>(n.get()).ok());
        if name.is_some_and(|n| allowed(&n)) {
            kept.push(Cow::Borrowed(tool.get()));
        }
    }
    if kept.len() == tools.len() {
        return Ok(None);
    }
    let tools_text = join_array(&kept);
    let result_text = join_object(&result_members, "tools", &tools_text);
    Ok(Some(join_object(&msg, "result", &result_text)))
}

fn join_array(items: &[Cow<str>]) -> String {
    let mut out = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

/// The object `map` with member `key`'s value replaced by `value`.
fn join_object(map: &Members, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 64);
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).expect("a string serializes"));
        out.push(':');
        out.push_str(if k == key { value } else { v.get() });
    }
    out.push('}');
    out
}

/// Deserializes an object into its members in order, keys unescaped,
/// values left as raw JSON.
struct MembersOf<'a>(Members<'a>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for MembersOf<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = MembersOf<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = a.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = a.next_value()?;
                    out.push((key, value));
                }
                Ok(MembersOf(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaped_keys_and_unreadable_lists_are_not_passed_through() {
        let escaped =
            br#"{"jsonrpc":"2.0","id":1,"result":{"tool\u0073":[{"name":"delete_issue"}]}}"#;
        assert!(matches!(
            filter_message(escaped, &ListIds::Any, &allow_search),
            Filtered::Rewritten(_)
        ));
        let bom = b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}";
        assert_eq!(
            filter_message(bom, &ListIds::Any, &allow_search),
            Filtered::Unreadable
        );
        assert_eq!(
            filter_message(b"", &ListIds::Any, &allow_search),
            Filtered::Unchanged
        );
    }

    fn allow_search(name: &str) -> bool {
        name.starts_with("search")
    }

    #[test]
    fn keeps_other_fields_and_order() {
        let text = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_issues"},{"name":"delete_issue"}],"nextCursor":"c2","_meta":{"k":1}}}"#;
        let Filtered::Rewritten(out) =
            filter_message(text, &ListIds::Ids(vec![json!(3)]), &allow_search)
        else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_issues"}],"nextCursor":"c2","_meta":{"k":1}}}"#
        );
    }

    #[test]
    fn only_matching_ids_unless_any() {
        let text = br#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"delete_issue"}]}}"#;
        assert_eq!(
            filter_message(text, &ListIds::Ids(vec![json!(3)]), &allow_search),
            Filtered::Unchanged
        );
        assert!(matches!(
            filter_message(text, &ListIds::Any, &allow_search),
            Filtered::Rewritten(_)
        ));
        assert_eq!(
            filter_message(text, &ListIds::None, &allow_search),
            Filtered::Unchanged
        );
    }

    #[test]
    fn batches_and_nameless_tools() {
        let text = br#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_a"},{"title":"no name"}]}}]"#;
        let Filtered::Rewritten(out) =
            filter_message(text, &ListIds::Ids(vec![json!(1)]), &allow_search)
        else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["result"]["tools"], json!([{"name":"search_a"}]));
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;
    use serde_json::json;

    fn allow_search(name: &str) -> bool {
        name.starts_with("search")
    }

    #[test]
    fn duplicated_keys_on_the_way_to_names_are_unreadable() {
        for text in [
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"delete_x"}]}}"#.as_slice(),
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"delete_x"}]}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_a","name":"delete_x"}]}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tool\u0073":[{"name":"delete_x"}]}}"#,
        ] {
            assert_eq!(
                filter_message(text, &ListIds::Any, &allow_search),
                Filtered::Unreadable,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn escaped_names_are_checked_as_the_client_reads_them() {
        // "delete_x" spelled with an escape is still delete_x.
        let text = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_a"},{"name":"\u0064elete_x"},{"name":"search_\u0062"}]}}"#;
        let Filtered::Rewritten(out) = filter_message(text, &ListIds::Any, &allow_search) else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["result"]["tools"],
            json!([{"name": "search_a"}, {"name": "search_b"}])
        );
    }

    #[test]
    fn untouched_members_keep_their_bytes() {
        let text = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"search_a","inputSchema":{"type":"object","x":1.50}},{"name":"delete_b"}],"nextCursor":"c"}}"#;
        let Filtered::Rewritten(out) = filter_message(text, &ListIds::Any, &allow_search) else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"search_a","inputSchema":{"type":"object","x":1.50}}],"nextCursor":"c"}}"#
        );
    }
}
