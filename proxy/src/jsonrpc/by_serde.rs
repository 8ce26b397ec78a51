//! serde's reading of a request body: batches, any single message the
//! plain scan (`plain.rs`) leaves, and the errors. It fills the same
//! [`Envelope`] through the same methods, so the member rules are the ones
//! in `jsonrpc.rs`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    key_of, message_of, note, Body, Envelope, Key, Message, ParamMembers, Params, ParseError,
    ENVELOPE_KEYS, PARAMS, PARAM_KEYS,
};
use crate::json_shape::{ReadShape, ShapeOr};

/// A batch: every element is checked.
pub(super) fn batch(body: &[u8]) -> Result<Body, ParseError> {
    let items: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| classify(&e, "a batch"))?;
    if items.is_empty() {
        return Err(ParseError::invalid(None, "empty batch"));
    }
    items
        .iter()
        .map(|raw| parse_message(raw.get(), body))
        .collect::<Result<Vec<_>, _>>()
        .map(Body::Batch)
}

/// A body that is neither an object nor a batch: JSON or not, refused.
pub(super) fn not_an_object(body: &[u8]) -> Result<Body, ParseError> {
    match serde_json::from_slice::<de::IgnoredAny>(body) {
        Ok(_) => Err(ParseError::invalid(None, "a request must be a JSON object")),
        Err(e) => Err(ParseError::NotJson(e.to_string())),
    }
}

/// One message read by serde: any body the plain reader leaves (unusual
/// syntax, errors). One pass: the members are read from the whole text, so
/// any syntax error (trailing data included) is -32700.
pub(super) fn object(body: &[u8]) -> Result<Body, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| classify(&e, ""))?;
    message_of(&envelope, body).map(Body::Single)
}

fn classify(e: &serde_json::Error, what: &str) -> ParseError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ParseError::NotJson(e.to_string()),
        Category::Data if what.is_empty() => ParseError::NotJson(e.to_string()),
        Category::Data => ParseError::invalid(None, format!("{what}: {e}")),
    }
}

/// Reads a member name (escapes decoded, borrowed where it has none) and
/// says which of `keys` it is.
struct KeyOf(&'static [&'static str]);

impl<'de> de::DeserializeSeed<'de> for KeyOf {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyOf {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(key_of(self.0, key))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Envelope::default();
                while let Some(key) = map.next_key_seed(KeyOf(ENVELOPE_KEYS))? {
                    match key {
                        Key::Significant(PARAMS) => {
                            let params = map
                                .next_value_seed(ShapeOr(ReadParams))?
                                .unwrap_or(Params::NotObject);
                            out.keep_params(params);
                        }
                        Key::Significant(i) => {
                            let value: &RawValue = map.next_value()?;
                            out.keep(i, value.get());
                        }
                        Key::LookAlike(why) => {
                            map.next_value::<de::IgnoredAny>()?;
                            note(&mut out.problem, why);
                        }
                        Key::Other => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// The significant members of a `params` object.
struct ReadParams;

impl<'de> ReadShape<'de> for ReadParams {
    type Out = Params<'de>;
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Params<'de>>, A::Error> {
        let mut read = ParamMembers::default();
        while let Some(key) = map.next_key_seed(KeyOf(PARAM_KEYS))? {
            match key {
                Key::Significant(i) => {
                    let value: &RawValue = map.next_value()?;
                    read.keep(i, value.get());
                }
                Key::LookAlike(why) => {
                    map.next_value::<de::IgnoredAny>()?;
                    note(&mut read.problem, why);
                }
                Key::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Some(Params::Object(read)))
    }
}

/// A message of a batch: `text`, a part of `body`.
fn parse_message(text: &str, body: &[u8]) -> Result<Message, ParseError> {
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|_| ParseError::invalid(None, "each message must be a JSON object"))?;
    message_of(&envelope, body)
}
