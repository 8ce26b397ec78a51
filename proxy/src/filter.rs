//! Remove the tools a caller may not call from `tools/list` results.
//!
//! Only responses to the caller's own `tools/list` requests are rewritten
//! (matched by id); on a GET stream, where ids are unknown, any result that
//! carries a `tools` array is treated as a listing. Every other field
//! (`nextCursor`, `_meta`, unknown ones) and the field order are kept.

use serde_json::{Map, Value};

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
pub fn filter_message(text: &[u8], ids: &ListIds, allowed: &dyn Fn(&str) -> bool) -> Filtered {
    // Without the key spelled plainly or any escape, no tool list can be in there.
    if !ids.is_active() || (!contains(text, b"\"tools\"") && !text.contains(&b'\\')) {
        return Filtered::Unchanged;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(text) else {
        return Filtered::Unreadable;
    };
    let changed = match &mut value {
        Value::Array(items) => items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .fold(false, |acc, m| filter_object(m, ids, allowed) | acc),
        Value::Object(m) => filter_object(m, ids, allowed),
        _ => false,
    };
    if changed {
        Filtered::Rewritten(serde_json::to_vec(&value).expect("a Value serializes"))
    } else {
        Filtered::Unchanged
    }
}

fn filter_object(
    msg: &mut Map<String, Value>,
    ids: &ListIds,
    allowed: &dyn Fn(&str) -> bool,
) -> bool {
    if msg.contains_key("method") || !ids.wants(msg.get("id")) {
        return false;
    }
    let Some(Value::Array(tools)) = msg
        .get_mut("result")
        .and_then(Value::as_object_mut)
        .and_then(|r| r.get_mut("tools"))
    else {
        return false;
    };
    let before = tools.len();
    // A tool without a readable name cannot be checked, so it is dropped.
    tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(allowed));
    tools.len() != before
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
