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

/// Rewrites one JSON text (a message or a batch of messages). Returns `None`
/// when nothing needed to change, so the original bytes can be forwarded as is.
/// Text that is not JSON is left alone: the caller's client will reject it.
pub fn filter_message(
    text: &[u8],
    ids: &ListIds,
    allowed: &dyn Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    if !ids.is_active() || !contains(text, b"\"tools\"") {
        return None;
    }
    let mut value: Value = serde_json::from_slice(text).ok()?;
    let changed = match &mut value {
        Value::Array(items) => items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .fold(false, |acc, m| filter_object(m, ids, allowed) | acc),
        Value::Object(m) => filter_object(m, ids, allowed),
        _ => false,
    };
    changed.then(|| serde_json::to_vec(&value).expect("a Value serializes"))
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

    fn allow_search(name: &str) -> bool {
        name.starts_with("search")
    }

    #[test]
    fn keeps_other_fields_and_order() {
        let text = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_issues"},{"name":"delete_issue"}],"nextCursor":"c2","_meta":{"k":1}}}"#;
        let out = filter_message(text, &ListIds::Ids(vec![json!(3)]), &allow_search).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_issues"}],"nextCursor":"c2","_meta":{"k":1}}}"#
        );
    }

    #[test]
    fn only_matching_ids_unless_any() {
        let text = br#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"delete_issue"}]}}"#;
        assert!(filter_message(text, &ListIds::Ids(vec![json!(3)]), &allow_search).is_none());
        assert!(filter_message(text, &ListIds::Any, &allow_search).is_some());
        assert!(filter_message(text, &ListIds::None, &allow_search).is_none());
    }

    #[test]
    fn batches_and_nameless_tools() {
        let text = br#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_a"},{"title":"no name"}]}}]"#;
        let out = filter_message(text, &ListIds::Ids(vec![json!(1)]), &allow_search).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["result"]["tools"], json!([{"name":"search_a"}]));
    }
}
