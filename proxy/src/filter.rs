//! Remove the tools a caller may not call from `tools/list` results.
//!
//! Only responses to the caller's own `tools/list` requests are rewritten
//! (matched by id); on a GET stream, where ids are unknown, any result that
//! carries a `tools` array is treated as a listing. Every other field
//! (`nextCursor`, `_meta`, unknown ones) and the field order are kept.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::json_shape::{fold_eq, ReadShape, ShapeOr};
use tool_name::tool_name;

mod tool_name;

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
/// over as the upstream's own bytes. A duplicated key on that way, or one a
/// lenient client would read as one of those names (`"Tools"`, `"ID"`), is
/// refused as unreadable: a client keeping the other copy must never see
/// what the gateway did not check.
///
/// A message is read in one pass, and each tool once more for its name:
/// a plain scan of text serde has already read (see `tool_name.rs`).
pub fn filter_message(text: &[u8], ids: &ListIds, allowed: &dyn Fn(&str) -> bool) -> Filtered {
    if !ids.is_active() || !may_hold_a_list(text) {
        return Filtered::Unchanged;
    }
    let batch = text.iter().find(|b| !b" \t\r\n".contains(b)) == Some(&b'[');
    let outcome = if batch {
        filter_batch(text, ids, allowed)
    } else {
        read_message(text).and_then(|m| m.map_or(Ok(None), |m| m.filtered(ids, allowed)))
    };
    match outcome {
        Ok(Some(out)) => Filtered::Rewritten(out.into_bytes()),
        Ok(None) => Filtered::Unchanged,
        Err(Unreadable) => Filtered::Unreadable,
    }
}

/// Could `text` name a tool list? Without `"tools"` spelled plainly (in
/// any ASCII case), an escape, or the long s that folds onto `s`, it cannot.
fn may_hold_a_list(text: &[u8]) -> bool {
    const LONG_S: &[u8] = "\u{17F}".as_bytes();
    text.contains(&b'\\')
        || text
            .windows(7)
            .any(|w| w[0] == b'"' && w[6] == b'"' && w[1..6].eq_ignore_ascii_case(b"tools"))
        || text.windows(2).any(|w| w == LONG_S)
}

/// A batch: each message filtered; `Some` when any lost tools.
fn filter_batch(
    text: &[u8],
    ids: &ListIds,
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, Unreadable> {
    let items: Vec<&RawValue> = serde_json::from_slice(text).map_err(|_| Unreadable)?;
    let mut changed = false;
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        let message = read_message(item.get().as_bytes())?;
        match message.map_or(Ok(None), |m| m.filtered(ids, allowed))? {
            Some(out) => {
                changed = true;
                parts.push(Cow::Owned(out));
            }
            None => parts.push(Cow::Borrowed(item.get())),
        }
    }
    Ok(changed.then(|| join_array(&parts)))
}

/// A response the gateway cannot check.
struct Unreadable;

/// An object's members in order, each value as its original JSON text, or
/// `None` for the one member read further (`result`, `tools`).
type Members<'a> = Vec<(Cow<'a, str>, Option<&'a RawValue>)>;

/// One message as far as the tool names: `None` when it is not an object.
fn read_message(text: &[u8]) -> Result<Option<Message<'_>>, Unreadable> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let message = ShapeOr(MessageMembers)
        .deserialize(&mut de)
        .map_err(|_| Unreadable)?;
    de.end().map_err(|_| Unreadable)?;
    Ok(message)
}

/// A message's members, read on the way to its tool names.
struct Message<'a> {
    members: Members<'a>,
    /// It has a `method`: a request or notification, not a result.
    has_method: bool,
    id: Option<&'a RawValue>,
    /// `result`, and its members if it is an object.
    result: Option<Option<ResultMembers<'a>>>,
    /// A duplicated member, or a look-alike of `method`, `id` or `result`.
    ambiguous: bool,
}

/// A `result` object's members.
struct ResultMembers<'a> {
    members: Members<'a>,
    /// `tools`, and its items if it is an array.
    tools: Option<Option<Vec<&'a RawValue>>>,
    /// A duplicated member, or a look-alike of `tools`.
    ambiguous: bool,
}

impl<'a> Message<'a> {
    /// The message with its tool list filtered: `Some` when it lost tools.
    fn filtered(
        self,
        ids: &ListIds,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Result<Option<String>, Unreadable> {
        if self.ambiguous {
            return Err(Unreadable);
        }
        if self.has_method {
            return Ok(None);
        }
        let id = match self.id {
            Some(raw) => Some(serde_json::from_str::<Value>(raw.get()).map_err(|_| Unreadable)?),
            None => None,
        };
        if !ids.wants(id.as_ref()) {
            return Ok(None);
        }
        let Some(Some(result)) = self.result else {
            return Ok(None);
        };
        if result.ambiguous {
            return Err(Unreadable);
        }
        let Some(Some(tools)) = &result.tools else {
            return Ok(None);
        };
        let mut kept = Vec::with_capacity(tools.len());
        for tool in tools {
            // A tool without a readable name cannot be checked, so it is dropped.
            if tool_name(tool.get())?.is_some_and(|n| allowed(&n)) {
                kept.push(Cow::Borrowed(tool.get()));
            }
        }
        if kept.len() == tools.len() {
            return Ok(None);
        }
        let tools_text = join_array(&kept);
        let result_text = join_object(&result.members, &tools_text);
        Ok(Some(join_object(&self.members, &result_text)))
    }
}

/// Where a member name is on the way to the tool names.
enum Way {
    /// Exactly the name at this index.
    Is(usize),
    /// Not it, but a lenient client would read it as one of them.
    LookAlike,
    /// Neither.
    Other,
}

fn way(key: &str, names: &[&str]) -> Way {
    if let Some(i) = names.iter().position(|n| key == *n) {
        Way::Is(i)
    } else if names.iter().any(|n| fold_eq(key, n)) {
        Way::LookAlike
    } else {
        Way::Other
    }
}

fn has_duplicates<T>(members: &[(Cow<str>, T)]) -> bool {
    members
        .iter()
        .enumerate()
        .any(|(i, (k, _))| members[..i].iter().any(|(seen, _)| seen == k))
}

/// An object's members in order: each value kept as its text, except those
/// named in `names`, which `named` reads (`None` in the list). Also whether
/// a member is duplicated or a look-alike of one of `names`.
fn read_members<'de, A: MapAccess<'de>>(
    map: &mut A,
    names: &[&str],
    mut named: impl FnMut(usize, &mut A) -> Result<Option<&'de RawValue>, A::Error>,
) -> Result<(Members<'de>, bool), A::Error> {
    let mut members = Vec::new();
    let mut ambiguous = false;
    while let Some(key) = map.next_key_seed(Text)? {
        let value = match way(&key, names) {
            Way::Is(i) => named(i, map)?,
            Way::LookAlike => {
                ambiguous = true;
                Some(map.next_value()?)
            }
            Way::Other => Some(map.next_value()?),
        };
        members.push((key, value));
    }
    let ambiguous = ambiguous || has_duplicates(&members);
    Ok((members, ambiguous))
}

struct MessageMembers;

impl<'de> ReadShape<'de> for MessageMembers {
    type Out = Message<'de>;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Message<'de>>, A::Error> {
        const METHOD: usize = 0;
        const ID: usize = 1;
        let (mut has_method, mut id, mut result) = (false, None, None);
        let (members, ambiguous) =
            read_members(&mut map, &["method", "id", "result"], |i, map| {
                Ok(match i {
                    METHOD => {
                        has_method = true;
                        Some(map.next_value()?)
                    }
                    ID => {
                        let value: &RawValue = map.next_value()?;
                        id.get_or_insert(value);
                        Some(value)
                    }
                    _ => {
                        result = Some(map.next_value_seed(ShapeOr(ResultOf))?);
                        None
                    }
                })
            })?;
        Ok(Some(Message {
            members,
            has_method,
            id,
            result,
            ambiguous,
        }))
    }
}

struct ResultOf;

impl<'de> ReadShape<'de> for ResultOf {
    type Out = ResultMembers<'de>;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<ResultMembers<'de>>, A::Error> {
        let mut tools = None;
        let (members, ambiguous) = read_members(&mut map, &["tools"], |_, map| {
            tools = Some(map.next_value_seed(ShapeOr(ItemsOf))?);
            Ok(None)
        })?;
        Ok(Some(ResultMembers {
            members,
            tools,
            ambiguous,
        }))
    }
}

/// A member name, borrowed from the text unless it had escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// An array's items as their JSON text; `None` for any other value.
struct ItemsOf;

impl<'de> ReadShape<'de> for ItemsOf {
    type Out = Vec<&'de RawValue>;
    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Self::Out>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
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

/// The object of `members` with the value of the one read further
/// (`None`) replaced by `value`.
fn join_object(members: &Members, value: &str) -> String {
    let mut out = String::with_capacity(
        value.len()
            + members
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, |v| v.get().len()) + 4)
                .sum::<usize>()
            + 2,
    );
    out.push('{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).expect("a string serializes"));
        out.push(':');
        out.push_str(v.map_or(value, |v| v.get()));
    }
    out.push('}');
    out
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
    fn look_alikes_on_the_way_to_names_are_unreadable() {
        // A client that matches member names without regard to case (Go's
        // encoding/json does, folding the long s and Kelvin sign too) would
        // read each of these as the member the gateway did not check.
        for text in [
            br#"{"jsonrpc":"2.0","id":1,"Result":{"tools":[{"name":"delete_x"}]}}"#.as_slice(),
            br#"{"jsonrpc":"2.0","id":1,"result":{"TOOLS":[{"name":"delete_x"}]}}"#,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tool\u{17F}\":[{\"name\":\"delete_x\"}]}}".as_bytes(),
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_a","Name":"delete_x"}]}}"#,
            br#"{"jsonrpc":"2.0","id":2,"ID":1,"result":{"tools":[{"name":"delete_x"}]}}"#,
        ] {
            assert_eq!(
                filter_message(text, &ListIds::Ids(vec![json!(1)]), &allow_search),
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
