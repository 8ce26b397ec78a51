//! What an audit record reads of a request's JSON-RPC messages: method, id,
//! tool name, arguments and `clientInfo`, and nothing else. Members are
//! found without building the whole message as a `Value`; escaped member
//! names are decoded (`"\u006dethod"` is `method`, as a server reads it),
//! and for a member given twice the last one counts, as `serde_json::Value` would.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// One message of a request body, as the audit trail reads it.
#[derive(Debug, Default)]
pub(super) struct Message<'a> {
    members: Members<'a>,
    params: Members<'a>,
}

/// A JSON string, borrowed from the body unless it holds escapes.
#[derive(Debug, Deserialize, PartialEq, Eq, Hash)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

type Members<'a> = HashMap<Text<'a>, &'a RawValue>;

impl<'a> Message<'a> {
    /// The messages of a body: one, or each object of a batch. Not JSON: none.
    pub(super) fn all_in(body: &'a [u8]) -> Vec<Message<'a>> {
        let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if !batch {
            return serde_json::from_slice::<&RawValue>(body)
                .map(|raw| vec![Message::of(raw)])
                .unwrap_or_default();
        }
        serde_json::from_slice::<Vec<&RawValue>>(body)
            .map(|items| items.into_iter().map(Message::of).collect())
            .unwrap_or_default()
    }

    /// A message; one that is not an object has no members.
    fn of(raw: &'a RawValue) -> Message<'a> {
        let members: Members = serde_json::from_str(raw.get()).unwrap_or_default();
        let params = members
            .get("params")
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        Message { members, params }
    }

    /// `method`, when it is a string (escapes decoded).
    pub(super) fn method(&self) -> Option<Cow<'a, str>> {
        text(self.members.get("method")?)
    }

    /// `id`, when present (`null` included).
    pub(super) fn id(&self) -> Option<Value> {
        value(self.members.get("id")?)
    }

    /// `params.name`, when it is a string (escapes decoded).
    pub(super) fn name(&self) -> Option<Cow<'a, str>> {
        text(self.params.get("name")?)
    }

    /// `params.arguments`, when present.
    pub(super) fn arguments(&self) -> Option<Value> {
        value(self.params.get("arguments")?)
    }

    /// `params.clientInfo`, when present.
    pub(super) fn client_info(&self) -> Option<Value> {
        value(self.params.get("clientInfo")?)
    }
}

fn text<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    serde_json::from_str::<Text<'a>>(raw.get())
        .ok()
        .map(|t| t.0)
}

fn value(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_as_a_server_would() {
        let body = br#"{"jsonrpc":"2.0","id":7,"\u006dethod":"tools/call",
            "params":{"name":"search_\u0069ssues","arguments":{"q":"x"}},"params2":1}"#;
        let all = Message::all_in(body);
        assert_eq!(all.len(), 1);
        let m = &all[0];
        assert_eq!(m.method().as_deref(), Some("tools/call"));
        assert_eq!(m.name().as_deref(), Some("search_issues"));
        assert_eq!(m.id(), Some(serde_json::json!(7)));
        assert_eq!(m.arguments(), Some(serde_json::json!({"q": "x"})));
    }

    #[test]
    fn odd_shapes_are_read_leniently() {
        let body =
            br#"[{"method":5,"params":[1]},"text",{"id":null,"method":"a","method":"b"}, 3]"#;
        let all = Message::all_in(body);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].method(), None);
        assert_eq!(all[0].name(), None);
        assert_eq!(all[1].method(), None);
        // The last of a repeated member counts, and a null id is an id.
        assert_eq!(all[2].method().as_deref(), Some("b"));
        assert_eq!(all[2].id(), Some(Value::Null));
        assert_eq!(all[3].id(), None);
        assert!(Message::all_in(b"not json").is_empty());
    }
}
