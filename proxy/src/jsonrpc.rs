//! Parse a JSON-RPC request body once, exactly as a server will read it.
//!
//! The gateway must never check one tool name while the server runs another.
//! So the parser reads every member name of the envelope and of `params` in
//! one pass (escapes decoded, duplicates noticed), and refuses anything a
//! server could read differently:
//! - a significant key (`jsonrpc`, `id`, `method`, `params`, and `name` /
//!   `arguments` / `uri` inside `params`) given twice;
//! - a key that only case-folds to a significant key (`Method`, `NAME`,
//!   `paramſ`): some decoders (Go's `encoding/json`) match keys that way;
//! - invalid UTF-8, lone surrogates, trailing data (serde_json refuses them).
//!
//! A single message is read by a plain scan (`plain.rs`) when it can: the
//! same members kept by the same rules, several times cheaper. Anything
//! else, errors included, is read by serde (`by_serde.rs`).

use std::borrow::Cow;
use std::ops::Range;

use serde_json::Value;

use crate::json_shape::{fold_eq, member_name};

mod by_serde;
mod plain;

/// A parsed request body: one message or a batch.
#[derive(Debug, Clone)]
pub enum Body {
    /// A single JSON-RPC message.
    Single(Message),
    /// A JSON-RPC batch (2025-03-26); every element is checked.
    Batch(Vec<Message>),
}

impl Body {
    /// All messages, whether single or batched.
    pub fn messages(&self) -> &[Message] {
        match self {
            Body::Single(m) => std::slice::from_ref(m),
            Body::Batch(v) => v,
        }
    }
}

/// One JSON-RPC message as the gateway understands it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The request id; `None` for notifications and responses without one.
    pub id: Option<Value>,
    /// What the message is.
    pub kind: Kind,
    /// Where some of its members lie in the body it was parsed from.
    pub spans: Spans,
}

/// Where a message's `id` and `params.arguments` lie in the body it was
/// parsed from (byte ranges): the audit record reads them there rather
/// than parsing the body again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spans {
    /// The `id` member's value, whatever its type.
    pub id: Option<Range<usize>>,
    /// `params.arguments`.
    pub arguments: Option<Range<usize>>,
}

/// The kind of a client-to-server message.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A request or notification with its method and, where the method names
    /// one, the target (`tools/call` and `prompts/get`: `params.name`;
    /// `resources/read`: `params.uri`).
    Call {
        /// The method, escapes decoded.
        method: String,
        /// The named target, escapes decoded.
        target: Option<String>,
    },
    /// A response to a server-to-client request (sampling, elicitation, ...).
    Response,
}

impl Message {
    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Call { method, .. } => Some(method),
            Kind::Response => None,
        }
    }

    /// The tool name of a `tools/call`.
    pub fn tool(&self) -> Option<&str> {
        match &self.kind {
            Kind::Call { method, target } if method == "tools/call" => target.as_deref(),
            _ => None,
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Not JSON at all (-32700).
    NotJson(String),
    /// JSON, but not a valid request (-32600); carries the id when one was readable.
    Invalid {
        /// The request id, when readable.
        id: Option<Value>,
        /// What is wrong.
        reason: String,
    },
}

impl ParseError {
    fn invalid(id: Option<Value>, reason: impl Into<String>) -> Self {
        ParseError::Invalid {
            id,
            reason: reason.into(),
        }
    }
}

const ENVELOPE_KEYS: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
const PARAM_KEYS: &[&str] = &["name", "arguments", "uri", "_meta"];

/// The first byte of a JSON text after its leading whitespace: `[` for a
/// batch, `{` for one message.
pub(crate) fn first_byte(json: &[u8]) -> Option<u8> {
    json.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .copied()
}

/// Parses a request body (already decompressed).
pub fn parse(body: &[u8]) -> Result<Body, ParseError> {
    match first_byte(body) {
        Some(b'[') => by_serde::batch(body),
        Some(b'{') => match plain::envelope(body) {
            Some(envelope) => message_of(&envelope, body).map(Body::Single),
            None => by_serde::object(body),
        },
        Some(_) => by_serde::not_an_object(body),
        None => Err(ParseError::NotJson("empty body".into())),
    }
}

/// Where each envelope member is kept in [`Envelope::members`].
const JSONRPC: usize = 0;
const ID: usize = 1;
const METHOD: usize = 2;
const PARAMS: usize = 3;
const RESULT: usize = 4;
const ERROR: usize = 5;
/// Where `name`, `arguments` and `uri` are kept in [`Params::members`].
const NAME: usize = 0;
const ARGUMENTS: usize = 1;
const URI: usize = 2;

/// A message's significant members (their values' text), read in one pass
/// over the object: every other member is checked for syntax and skipped.
/// Serde or the plain reader fills it, through the same methods.
#[derive(Default)]
struct Envelope<'a> {
    /// The members named by [`ENVELOPE_KEYS`] (`params` is in `params`).
    members: [Option<&'a str>; 6],
    /// `params`, read as it went by.
    params: Option<Params<'a>>,
    /// The first member named exactly `id`: errors carry it.
    first_id: Option<&'a str>,
    /// The first duplicate or look-alike of a member in [`ENVELOPE_KEYS`].
    problem: Option<String>,
}

impl<'a> Envelope<'a> {
    /// Keeps the member [`ENVELOPE_KEYS`]`[i]` (not `params`).
    fn keep(&mut self, i: usize, value: &'a str) {
        if i == ID {
            self.first_id.get_or_insert(value);
        }
        keep(
            &mut self.members[i],
            value,
            ENVELOPE_KEYS[i],
            &mut self.problem,
        );
    }

    /// Keeps `params` (a second one is a problem).
    fn keep_params(&mut self, params: Params<'a>) {
        if self.params.replace(params).is_some() {
            note(&mut self.problem, "duplicate member \"params\"".into());
        }
    }
}

/// `params`: its significant members if it is an object.
enum Params<'a> {
    /// An object: its significant members.
    Object(ParamMembers<'a>),
    /// An array, a string, a number, ...
    NotObject,
}

/// The significant members of a `params` object (their values' text).
#[derive(Default)]
struct ParamMembers<'a> {
    /// The members named by [`PARAM_KEYS`].
    members: [Option<&'a str>; 4],
    /// The first duplicate or look-alike of one of them.
    problem: Option<String>,
}

impl<'a> ParamMembers<'a> {
    /// Keeps the member [`PARAM_KEYS`]`[i]`.
    fn keep(&mut self, i: usize, value: &'a str) {
        keep(
            &mut self.members[i],
            value,
            PARAM_KEYS[i],
            &mut self.problem,
        );
    }
}

/// What a member's name is to the gateway.
enum Key {
    /// Exactly the significant key at this index.
    Significant(usize),
    /// Not significant, and not like any significant key.
    Other,
    /// Only case-folds to a significant key: refused.
    LookAlike(String),
}

/// Which of `keys` the (decoded) member name `key` is.
fn key_of(keys: &[&str], key: &str) -> Key {
    // Exact names first (the usual case), then look-alikes: the keys
    // are distinct in lower case, so no key is both.
    if let Some(i) = keys.iter().position(|want| key == *want) {
        return Key::Significant(i);
    }
    match keys.iter().find(|want| fold_eq(key, want)) {
        Some(want) => Key::LookAlike(format!("ambiguous member {key:?}: use exactly {want:?}")),
        None => Key::Other,
    }
}

/// Keeps `value` in `slot`; a second one is the object's problem (the
/// first problem found in document order is the one reported).
fn keep<'a>(slot: &mut Option<&'a str>, value: &'a str, key: &str, problem: &mut Option<String>) {
    if slot.replace(value).is_some() && problem.is_none() {
        *problem = Some(format!("duplicate member {key:?}"));
    }
}

fn note(problem: &mut Option<String>, what: String) {
    problem.get_or_insert(what);
}

/// Where `raw`, read from `body`, lies in it.
fn span_in(body: &[u8], raw: &str) -> Option<Range<usize>> {
    let text = raw.as_bytes();
    let start = (text.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start.checked_add(text.len())?;
    (end <= body.len()).then_some(start..end)
}

/// The message an object's members make (the object was read from `body`).
fn message_of(envelope: &Envelope, body: &[u8]) -> Result<Message, ParseError> {
    // The id first (leniently), so that later errors can carry it.
    let first_id = envelope
        .first_id
        .map(|raw| serde_json::from_str::<Value>(raw).unwrap_or(Value::Null));
    let id_valid = first_id
        .as_ref()
        .is_none_or(|v| v.is_string() || v.is_number() || v.is_null());
    let id = first_id.filter(|v| v.is_string() || v.is_number());
    if let Some(problem) = &envelope.problem {
        return Err(ParseError::invalid(id, problem.clone()));
    }
    let member = |at: usize| envelope.members[at];
    if member(JSONRPC) != Some("\"2.0\"") {
        return Err(ParseError::invalid(id, "\"jsonrpc\" must be \"2.0\""));
    }
    if !id_valid {
        return Err(ParseError::invalid(
            None,
            "\"id\" must be a string or a number",
        ));
    }
    let arguments = match &envelope.params {
        Some(Params::Object(read)) => read.members[ARGUMENTS],
        _ => None,
    };
    let spans = Spans {
        id: envelope.first_id.and_then(|raw| span_in(body, raw)),
        arguments: arguments.and_then(|raw| span_in(body, raw)),
    };
    let (method, result, error) = (member(METHOD), member(RESULT), member(ERROR));
    let Some(method) = method else {
        if result.is_some() || error.is_some() {
            return Ok(Message {
                id,
                kind: Kind::Response,
                spans,
            });
        }
        return Err(ParseError::invalid(id, "missing \"method\""));
    };
    let method = string_value(method)
        .ok_or_else(|| ParseError::invalid(id.clone(), "\"method\" must be a string"))?;
    if result.is_some() || error.is_some() {
        return Err(ParseError::invalid(
            id,
            "a message cannot be both a request and a response",
        ));
    }
    let target = match (method.as_str(), &envelope.params) {
        ("tools/call" | "prompts/get" | "resources/read", None) => {
            return Err(ParseError::invalid(
                id,
                format!("{method} needs \"params\""),
            ));
        }
        ("tools/call" | "prompts/get" | "resources/read", Some(params)) => {
            let slot = if method == "resources/read" {
                URI
            } else {
                NAME
            };
            Some(param_target(params, slot, &id)?)
        }
        _ => None,
    };
    Ok(Message {
        id,
        kind: Kind::Call { method, target },
        spans,
    })
}

fn param_target(params: &Params, slot: usize, id: &Option<Value>) -> Result<String, ParseError> {
    let Params::Object(ParamMembers { members, problem }) = params else {
        return Err(ParseError::invalid(
            id.clone(),
            "\"params\" must be an object",
        ));
    };
    if let Some(problem) = problem {
        return Err(ParseError::invalid(id.clone(), problem.clone()));
    }
    let key = PARAM_KEYS[slot];
    let raw = members[slot]
        .ok_or_else(|| ParseError::invalid(id.clone(), format!("missing \"params.{key}\"")))?;
    string_value(raw).ok_or_else(|| {
        ParseError::invalid(id.clone(), format!("\"params.{key}\" must be a string"))
    })
}

/// A member's value (valid JSON text) as a string, escapes decoded as
/// serde decodes them; `None` when it is not a string or holds a lone
/// surrogate.
fn string_value(raw: &str) -> Option<String> {
    member_name(raw).map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn single(text: &str) -> Message {
        match parse(text.as_bytes()).unwrap() {
            Body::Single(m) => m,
            b => panic!("not single: {b:?}"),
        }
    }

    fn invalid(text: &str) -> (Option<Value>, String) {
        match parse(text.as_bytes()) {
            Err(ParseError::Invalid { id, reason }) => (id, reason),
            other => panic!("{text}: expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn reads_tool_name_with_escapes_decoded() {
        let m = single(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools\/call","params":{"name":"delete\u005fissue","arguments":{"name":"x"}}}"#,
        );
        assert_eq!(m.id, Some(json!(7)));
        assert_eq!(m.tool(), Some("delete_issue"));
    }

    #[test]
    fn refuses_duplicate_and_lookalike_keys() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","NAME":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"x","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"paramſ":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#,
        ];
        for c in cases {
            let (id, reason) = invalid(c);
            assert_eq!(id, Some(json!(1)), "{c}: {reason}");
        }
    }

    #[test]
    fn distinguishes_not_json_from_invalid_requests() {
        assert!(matches!(
            parse(b"{\"jsonrpc\":"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse(b"{} trailing"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b"\xff"), Err(ParseError::NotJson(_))));
        // A lone surrogate cannot be a method or tool name: refused, with the id.
        assert_eq!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#).0,
            Some(json!(1))
        );
        assert_eq!(
            invalid(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\udc00"}}"#
            )
            .0,
            Some(json!(1))
        );
        assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
        assert_eq!(invalid("42").1, "a request must be a JSON object");
        assert_eq!(invalid("[]").1, "empty batch");
        assert_eq!(
            invalid(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call"}"#).0,
            Some(json!("a"))
        );
        assert_eq!(
            invalid(r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#).0,
            Some(json!(3))
        );
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":5}}"#)
                .1
                .contains("must be a string")
        );
    }

    #[test]
    fn reads_batches_notifications_and_responses() {
        let b = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"s1","result":{}}]"#).unwrap();
        let m = b.messages();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].method(), Some("tools/list"));
        assert_eq!(m[1].id, None);
        assert_eq!(m[2].kind, Kind::Response);
        assert_eq!(
            single(
                r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#
            )
            .kind,
            Kind::Call {
                method: "resources/read".into(),
                target: Some("file:///a".into())
            }
        );
    }

    #[test]
    fn params_are_checked_only_where_a_target_is_read() {
        let (id, reason) =
            invalid(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":["a"]}"#);
        assert_eq!(
            (id, reason.as_str()),
            (Some(json!(4)), "\"params\" must be an object")
        );
        // A look-alike inside params is refused even when it follows the name.
        let (_, reason) = invalid(
            r#"{"jsonrpc":"2.0","id":4,"params":{"name":"a","Name":"b"},"method":"tools/call"}"#,
        );
        assert!(reason.contains("ambiguous"), "{reason}");
        // Other methods do not read params: their shape is the server's business.
        let m = single(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"name":1,"name":2}}"#,
        );
        assert_eq!(m.method(), Some("tools/list"));
        // An id that is not a string, number or null is refused without it.
        assert_eq!(
            invalid(r#"{"jsonrpc":"2.0","id":[4],"method":"ping"}"#).0,
            None
        );
    }
}
