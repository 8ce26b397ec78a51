//! The usual request body, one JSON object, read without serde's generic
//! machinery: under a `tools/call` load serde's reading of a 100-byte
//! body was about 6k instructions, a tenth of the gateway's work on it.
//!
//! The reader checks the whole text against the JSON grammar and fills
//! the same [`Envelope`] serde fills, through the same methods, so the
//! member rules (duplicates, look-alikes, escapes decoded) are the ones
//! in `jsonrpc.rs`. It gives up (`None`) on what it does not read as
//! valid JSON (invalid UTF-8 anywhere, nesting deeper than `json_scan`
//! follows, a syntax error) and on a string or number `params`; serde
//! then reads the body and says what is wrong, so the plain reader may
//! leave more to serde, never accept more. A test compares the two
//! readings on random and damaged bodies.

use super::{key_of, note, Envelope, Key, ParamMembers, Params, ENVELOPE_KEYS, PARAMS, PARAM_KEYS};
use crate::json_scan::{object_end, value_end};
use crate::json_shape::{member_name, skip_space};

/// The members of the object `body` holds, or `None` when serde must read it.
pub(super) fn envelope(body: &[u8]) -> Option<Envelope<'_>> {
    let body = std::str::from_utf8(body).ok()?;
    let text = body.as_bytes();
    let mut envelope = Envelope::default();
    let start = skip_space(text, 0);
    let end = object_end(body, start, 1, |key, at| {
        match key_of(ENVELOPE_KEYS, &member_name(key)?) {
            Key::Significant(PARAMS) => {
                let (params, end) = params(body, at)?;
                envelope.keep_params(params);
                Some(end)
            }
            Key::Significant(i) => {
                let end = value_end(body, at, 2)?;
                envelope.keep(i, &body[at..end]);
                Some(end)
            }
            Key::LookAlike(why) => {
                note(&mut envelope.problem, why);
                value_end(body, at, 2)
            }
            Key::Other => value_end(body, at, 2),
        }
    })?;
    (skip_space(text, end) == text.len()).then_some(envelope)
}

/// `params` at `at`, and where it ends.
fn params(body: &str, at: usize) -> Option<(Params<'_>, usize)> {
    let text = body.as_bytes();
    match text.get(at)? {
        b'{' => {}
        // Serde reads a string or a number here as one (a lone surrogate
        // or `1e400` is an error then): left to it.
        b'"' | b'-' | b'0'..=b'9' => return None,
        _ => return Some((Params::NotObject, value_end(body, at, 2)?)),
    }
    let mut read = ParamMembers::default();
    let end = object_end(body, at, 2, |key, at| {
        match key_of(PARAM_KEYS, &member_name(key)?) {
            Key::Significant(i) => {
                let end = value_end(body, at, 3)?;
                read.keep(i, &body[at..end]);
                Some(end)
            }
            Key::LookAlike(why) => {
                note(&mut read.problem, why);
                value_end(body, at, 3)
            }
            Key::Other => value_end(body, at, 3),
        }
    })?;
    Some((Params::Object(read), end))
}

#[cfg(test)]
mod tests {
    use super::super::{by_serde, message_of, Body, Message, ParseError};
    use super::envelope;
    use crate::json_shape::random_json::{damaged, xorshift, RandomJson};

    /// The plain reading of `body`, when it reads it.
    fn plain(body: &str) -> Option<Result<Message, ParseError>> {
        envelope(body.as_bytes()).map(|e| message_of(&e, body.as_bytes()))
    }

    /// Serde's reading of `body`.
    fn by_serde(body: &str) -> Result<Message, ParseError> {
        by_serde::object(body.as_bytes()).map(|b| match b {
            Body::Single(m) => m,
            Body::Batch(_) => unreachable!("an object"),
        })
    }

    /// How `body` was read.
    #[derive(PartialEq, Eq, Hash, Debug)]
    enum Outcome {
        /// Both readings agree: a valid request, or a refused one.
        Agreed { valid: bool },
        /// The plain reader left it to serde, which found it is not JSON.
        NotJson,
        /// The plain reader left valid JSON to serde.
        LeftToSerde,
    }

    /// Reads `body` both ways: where the plain reader reads it, it reads
    /// what serde reads.
    fn compare(body: &str) -> Outcome {
        let serde = by_serde(body);
        match plain(body) {
            Some(plain) => {
                assert_eq!(plain, serde, "{body}");
                Outcome::Agreed {
                    valid: serde.is_ok(),
                }
            }
            None if matches!(serde, Err(ParseError::NotJson(_))) => Outcome::NotJson,
            None => Outcome::LeftToSerde,
        }
    }

    #[test]
    fn reads_requests_as_serde_does() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"q":"x","n":[1,2.5e-3,true,null]}}}"#,
            " {\n\t\"jsonrpc\" : \"2.0\" , \"id\" : \"a\\\"b\" , \"method\" : \"tools\\/call\" , \"params\" : { \"name\" : \"n\\u0061me\" } } \r\n",
            r#"{"jsonrpc":"2.0","id":-0,"method":"tools/call","params":{"name":"a","arguments":{"s":"\u00e9\ud800"}}}"#,
            r#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","NAME":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"param\u017f":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"params":[],"params":{"name":"b"},"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\udc00"}}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            r#"{"x":{"\ud800":1}}"#,
            r#"{}"#,
        ];
        for body in cases {
            assert!(
                matches!(compare(body), Outcome::Agreed { .. }),
                "{body}: left to serde"
            );
        }
        // Not JSON: left to serde, which says why.
        for body in [
            r#"{"jsonrpc":"2.0","id":01,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"pi\x"}"#,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\tng\"}",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} {}"#,
            r#"{"jsonrpc":"2.0","id":tru,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":[1,]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":{"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\u12g4"}"#,
            r#"{"\ud800":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":1e400}"#,
        ] {
            assert_eq!(compare(body), Outcome::NotJson, "{body}");
        }
        // Serde reads a scalar `params` as a value: left to it.
        let scalar = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":1}"#;
        assert_eq!(compare(scalar), Outcome::LeftToSerde);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}1{}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        assert!(plain(&deep).is_none());
        assert!(by_serde(&deep).is_ok());
        assert!(envelope(b"{\"jsonrpc\":\"2.0\",\"x\":\"\xff\"}").is_none());
    }

    /// Random bodies, and each with a few bytes changed, read both ways.
    #[test]
    fn random_and_damaged_bodies_are_read_as_serde_reads_them() {
        const KEYS: &[&str] = &[
            "jsonrpc",
            "id",
            "method",
            "params",
            "name",
            "arguments",
            "uri",
            "x",
            "Name",
            "ID",
            "n\\u0061me",
            "param\u{17F}",
            "a\\\"b",
            "",
        ];
        const SCALARS: &[&str] = &[
            "\"2.0\"",
            "\"tools/call\"",
            "\"resources/read\"",
            "\"ping\"",
            "\"search\"",
            "1",
            "-0.5e+10",
            "0",
            "1e400",
            "true",
            "null",
            "\"\\u00e9\\n\"",
            "\"\u{e9}\u{1F600}\"",
        ];
        let mut random = RandomJson::new(0x5851_f42d_4c95_7f2d, KEYS, SCALARS);
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut outcomes = std::collections::HashMap::new();
        let mut count = |outcome| *outcomes.entry(outcome).or_insert(0) += 1;
        for round in 0..6000 {
            let body = if round % 2 == 0 {
                random.text()
            } else {
                // A likely request, its arguments random.
                let order = [
                    "\"jsonrpc\":\"2.0\"",
                    "\"id\":3",
                    "\"method\":\"tools/call\"",
                ];
                let first = next(3);
                format!(
                    "{{{},\"params\":{{\"name\":\"search\",\"arguments\":{}}},{},{}}}",
                    order[first],
                    random.text(),
                    order[(first + 1) % 3],
                    order[(first + 2) % 3]
                )
            };
            count(compare(&body));
            if let Some(text) = damaged(body, &mut next) {
                count(compare(&text));
            }
        }
        // Not vacuous: valid requests, refused ones and texts that are not
        // JSON were all met, and valid JSON was rarely left to serde (only
        // a scalar `params` is).
        let seen = |outcome| outcomes.get(&outcome).copied().unwrap_or(0);
        let valid = seen(Outcome::Agreed { valid: true });
        let refused = seen(Outcome::Agreed { valid: false });
        let left = seen(Outcome::LeftToSerde);
        assert!(
            valid > 1000 && refused > 1000 && seen(Outcome::NotJson) > 2000 && left < refused / 10,
            "{outcomes:?}"
        );
    }
}
