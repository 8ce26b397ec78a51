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
    method: Option<Cow<'a, str>>,
    id: Option<&'a RawValue>,
    name: Option<Cow<'a, str>>,
    /// As written (the JSON text of one value): a record copies it (see
    /// [`super::arguments`]).
    arguments: Option<&'a str>,
    client_info: Option<&'a RawValue>,
}

/// The common shape, read in one pass: members of other types, or given
/// twice, make it fail and [`Members`] read the message instead.
#[derive(Deserialize)]
struct Plain<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<PlainParams<'a>>,
}

#[derive(Deserialize)]
struct PlainParams<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    arguments: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "clientInfo", deserialize_with = "present")]
    client_info: Option<&'a RawValue>,
}

/// A member that is there, whatever its value (`null` included): for
/// `deserialize_with`, where a plain `Option` would read `null` as absent.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A JSON string, borrowed from the body unless it holds escapes.
#[derive(Debug, Deserialize, PartialEq, Eq, Hash)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Any object's members; the last of a repeated one counts.
type Members<'a> = HashMap<Text<'a>, &'a RawValue>;

impl<'a> Message<'a> {
    /// The messages of a body: one, or each element of a batch. Not JSON: none.
    pub(super) fn all_in(body: &'a [u8]) -> Vec<Message<'a>> {
        if crate::jsonrpc::first_byte(body) == Some(b'[') {
            return serde_json::from_slice::<Vec<&RawValue>>(body)
                .map(|items| items.into_iter().map(Message::of).collect())
                .unwrap_or_default();
        }
        // The common shape is read straight from the body, in one pass.
        if let Ok(plain) = serde_json::from_slice::<Plain<'a>>(body) {
            return vec![plain.into()];
        }
        serde_json::from_slice::<&RawValue>(body)
            .map(|raw| vec![Message::from_members(raw)])
            .unwrap_or_default()
    }

    /// A message as admission read it from `body`: its members are taken
    /// from where admission found them, not looked for again. Admission
    /// refused duplicates and look-alikes, so there is one of each, and it
    /// is the one [`Message::all_in`] would read. `clientInfo` is not kept
    /// (it is read for `initialize`, whose body is parsed again).
    pub(super) fn admitted(m: &'a crate::jsonrpc::Message, body: &'a [u8]) -> Message<'a> {
        let text = |span: &Option<std::ops::Range<usize>>| {
            let bytes = body.get(span.clone()?)?;
            std::str::from_utf8(bytes).ok()
        };
        Message {
            method: m.method().map(Cow::Borrowed),
            id: text(&m.spans.id).and_then(|t| serde_json::from_str(t).ok()),
            // A record names only the tool of a `tools/call`.
            name: m.tool().map(Cow::Borrowed),
            arguments: text(&m.spans.arguments),
            client_info: None,
        }
    }

    /// A message of a batch.
    fn of(raw: &'a RawValue) -> Message<'a> {
        serde_json::from_str::<Plain<'a>>(raw.get())
            .map(Message::from)
            .unwrap_or_else(|_| Message::from_members(raw))
    }

    /// Any shape; one that is not an object has no members.
    fn from_members(raw: &'a RawValue) -> Message<'a> {
        let members: Members = serde_json::from_str(raw.get()).unwrap_or_default();
        let params: Members = members
            .get("params")
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        Message {
            method: members.get("method").and_then(|m| text(m)),
            id: members.get("id").copied(),
            name: params.get("name").and_then(|n| text(n)),
            arguments: params.get("arguments").map(|a| a.get()),
            client_info: params.get("clientInfo").copied(),
        }
    }

    /// `method`, when it is a string (escapes decoded).
    pub(super) fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// `id`, when present (`null` included).
    pub(super) fn id(&self) -> Option<Value> {
        value(self.id?)
    }

    /// `params.name`, when it is a string (escapes decoded).
    pub(super) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `params.arguments` as written, when present (taken: the record keeps them).
    pub(super) fn take_arguments(&mut self) -> Option<&'a str> {
        self.arguments.take()
    }

    /// `params.clientInfo`, when present.
    pub(super) fn client_info(&self) -> Option<Value> {
        value(self.client_info?)
    }
}

impl<'a> From<Plain<'a>> for Message<'a> {
    fn from(plain: Plain<'a>) -> Self {
        let (name, arguments, client_info) = plain
            .params
            .map_or((None, None, None), |p| (p.name, p.arguments, p.client_info));
        Message {
            method: plain.method,
            id: plain.id,
            name,
            arguments: arguments.map(RawValue::get),
            client_info,
        }
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
        let mut all = Message::all_in(body);
        assert_eq!(all.len(), 1);
        let m = &mut all[0];
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(m.name(), Some("search_issues"));
        assert_eq!(m.id(), Some(serde_json::json!(7)));
        assert_eq!(m.take_arguments(), Some(r#"{"q":"x"}"#));
        assert_eq!(m.take_arguments(), None);
    }

    #[test]
    fn admitted_messages_are_read_as_the_body_is() {
        let bodies: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"query":"login page","limit":10}}}"#,
            br#"{"jsonrpc":"2.0","id":"a\"b","\u006dethod":"tools\/call","params":{"arguments":[1,{"k":null}],"name":"x\u00e9","_meta":{}}}"#,
            b"{ \"jsonrpc\" : \"2.0\" ,\n \"id\" : null , \"method\" : \"tools/call\" ,\r\n \"params\" : { \"name\" : \"t\" , \"arguments\" : null } }",
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"c"}}"#,
            br#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","arguments":{"a":"b"}}}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///x"}}"#,
            br#"{"jsonrpc":"2.0","id":4,"result":{"content":[]}}"#,
            br#"{"jsonrpc":"2.0","id":5,"method":"ping","params":[1,2]}"#,
            br#"{"jsonrpc":"2.0","id":6.5e0,"method":"tools/call","params":{"name":"t","arguments":"\ud83d\ude00 text"},"extra":{"arguments":1}}"#,
            br#" [{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1}}},
                {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}} ,
                {"jsonrpc":"2.0","id":"z","method":"tools/call","params":{"name":"b","arguments":{"deep":{"y":[true,false,1.5e3]}}}}] "#,
        ];
        let mut with_arguments = 0;
        for body in bodies {
            let text = String::from_utf8_lossy(body);
            let parsed = crate::jsonrpc::parse(body).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            let mut admitted: Vec<Message> = parsed
                .messages()
                .iter()
                .map(|m| Message::admitted(m, body))
                .collect();
            let mut reread = Message::all_in(body);
            assert_eq!(admitted.len(), reread.len(), "{text}");
            for (a, r) in admitted.iter_mut().zip(reread.iter_mut()) {
                assert_eq!(a.method(), r.method(), "{text}");
                assert_eq!(a.id(), r.id(), "{text}");
                if a.method() == Some("tools/call") {
                    assert_eq!(a.name(), r.name(), "{text}");
                }
                let args = a.take_arguments();
                assert_eq!(args, r.take_arguments(), "{text}");
                with_arguments += usize::from(args.is_some());
            }
        }
        // Not vacuous: the arguments were found (a null one included).
        assert_eq!(with_arguments, 7);
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
        assert_eq!(all[2].method(), Some("b"));
        assert_eq!(all[2].id(), Some(Value::Null));
        assert_eq!(all[3].id(), None);
        assert!(Message::all_in(b"not json").is_empty());
        let mut notification = Message::all_in(br#"{"id":null,"method":"x","params":null}"#);
        assert_eq!(notification[0].id(), Some(Value::Null));
        assert_eq!(notification[0].take_arguments(), None);
    }
}
