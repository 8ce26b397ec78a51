//! The answers in the kept part of a response, as an audit record reads
//! them: each answer's id, its error, and of its result the `isError`
//! flag and the `content` text (for an excerpt).
//!
//! The usual answer, one JSON object, is read by a plain scan
//! (`json_scan`): serde's reading of a 100-byte answer cost about 4k
//! instructions, more than a quarter of building its record. The scan
//! gives up where it might not read the text exactly as serde does (a
//! batch, a repeated member, invalid UTF-8, a syntax error, a string or
//! number serde decodes and may refuse) and serde reads it then, so the
//! two never disagree on what an answer says. A test compares them on
//! random and damaged texts.

use std::marker::PhantomData;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::Value;

use super::message::present;
use super::tap::ResponseTap;
use crate::json_scan::{object_end, value_end};
use crate::json_shape::{member_name, skip_space, ReadShape, ShapeOr};

/// A JSON-RPC answer as the audit record reads it.
#[derive(Debug, PartialEq)]
pub(super) struct Answer<'a> {
    /// `id` (`null` reads as none).
    pub id: Option<Value>,
    /// What the record needs of `result`, when present.
    pub result: Option<ResultSummary<'a>>,
    /// `error`, when present.
    pub error: Option<Value>,
}

/// What a record needs of a result. A result that is not an object has
/// neither member.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ResultSummary<'a> {
    /// `isError`; none when it is given twice.
    pub is_error: Option<Value>,
    /// The text of the last `content`, when asked for.
    pub content: Option<&'a str>,
}

impl Answer<'_> {
    fn answers(&self) -> bool {
        self.result.is_some() || self.error.is_some()
    }
}

/// The answers in the kept part of a response (`kept`; `events`: the data
/// of each of its events, for an event stream); each result's `content`
/// text kept when `with_content`.
pub(super) fn read_answers<'a>(
    tap: &ResponseTap,
    kept: &'a [u8],
    events: &'a [String],
    with_content: bool,
) -> Vec<Answer<'a>> {
    match (tap.sse, tap.truncated) {
        (true, _) => events
            .iter()
            .flat_map(|d| answers_in(d.as_bytes(), with_content))
            .collect(),
        // A cut JSON body holds no whole answer.
        (false, true) => Vec::new(),
        (false, false) => answers_in(kept, with_content),
    }
}

/// The data of each event in the kept part of an event stream.
pub(super) fn event_data(kept: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(kept);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The answers in one JSON text (a message or a batch).
fn answers_in(json: &[u8], with_content: bool) -> Vec<Answer<'_>> {
    let found: Vec<Answer> = if crate::jsonrpc::first_byte(json) == Some(b'[') {
        // Elements that are not answers (or not objects) are skipped.
        let items: Vec<&RawValue> = serde_json::from_slice(json).unwrap_or_default();
        items
            .into_iter()
            .filter_map(|item| one(item.get().as_bytes(), with_content))
            .collect()
    } else {
        one(json, with_content).into_iter().collect()
    };
    found.into_iter().filter(Answer::answers).collect()
}

/// The one message `json` holds, if it is an object serde reads.
fn one(json: &[u8], with_content: bool) -> Option<Answer<'_>> {
    if let Some(answer) = plain(json, with_content) {
        return Some(answer);
    }
    if with_content {
        let read = serde_json::from_slice::<SerdeAnswer<&RawValue>>(json);
        read.ok().map(SerdeAnswer::into_answer)
    } else {
        let read = serde_json::from_slice::<SerdeAnswer<IgnoredAny>>(json);
        read.ok().map(SerdeAnswer::into_answer)
    }
}

/// A single answer object read without serde, or `None` when serde must
/// read the text.
fn plain(json: &[u8], with_content: bool) -> Option<Answer<'_>> {
    let body = std::str::from_utf8(json).ok()?;
    let text = body.as_bytes();
    let (mut id, mut error, mut result) = (None, None, None);
    let end = object_end(body, skip_space(text, 0), 1, |key, at| {
        let (slot, end) = match &*member_name(key)? {
            "id" => (&mut id, value_end(body, at, 2)?),
            "error" => (&mut error, value_end(body, at, 2)?),
            "result" => {
                if result.is_some() {
                    return None; // repeated: serde refuses the message
                }
                let (summary, end) = summary(body, at, with_content)?;
                result = Some(summary);
                return Some(end);
            }
            _ => return value_end(body, at, 2),
        };
        // Repeated: serde refuses the message.
        slot.replace(&body[at..end]).is_none().then_some(end)
    })?;
    if skip_space(text, end) != text.len() {
        return None;
    }
    Some(Answer {
        id: match id {
            None | Some("null") => None,
            Some(id) => Some(decoded(id)?),
        },
        result,
        error: match error {
            None => None,
            Some(error) => Some(decoded(error)?),
        },
    })
}

/// The result at `at` and where it ends.
fn summary(body: &str, at: usize, with_content: bool) -> Option<(ResultSummary<'_>, usize)> {
    if body.as_bytes().get(at)? != &b'{' {
        let end = value_end(body, at, 2)?;
        let value = &body[at..end];
        return match value.as_bytes()[0] {
            // Serde decodes a string or a number here (a lone surrogate or
            // `1e400` is an error): one with escapes, or a number, is left to it.
            b'"' if !value.contains('\\') => Some((ResultSummary::default(), end)),
            b'[' | b't' | b'f' | b'n' => Some((ResultSummary::default(), end)),
            _ => None,
        };
    }
    let mut summary = ResultSummary::default();
    let mut is_error_seen = 0;
    let end = object_end(body, at, 2, |key, at| {
        let end = value_end(body, at, 3)?;
        match &*member_name(key)? {
            "isError" => {
                is_error_seen += 1;
                summary.is_error = Some(decoded(&body[at..end])?);
            }
            "content" if with_content => summary.content = Some(&body[at..end]),
            _ => {}
        }
        Some(end)
    })?;
    if is_error_seen > 1 {
        // Ambiguous: read as no `isError` at all.
        summary.is_error = None;
    }
    Some((summary, end))
}

/// A value checked by the scan, decoded (`None`: serde refuses it).
fn decoded(json: &str) -> Option<Value> {
    match json {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        other => serde_json::from_str(other).ok(),
    }
}

/// An answer as serde reads it; `C` keeps a result's `content` text
/// (`&RawValue`) or skips it (`IgnoredAny`).
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "C: serde::Deserialize<'de>"))]
struct SerdeAnswer<C> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<SerdeSummary<C>>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
}

impl<'a, C: Content<'a>> SerdeAnswer<C> {
    fn into_answer(self) -> Answer<'a> {
        Answer {
            id: self.id,
            result: self.result.map(|r| ResultSummary {
                is_error: r.is_error,
                content: r.content.and_then(|c| c.text()),
            }),
            error: self.error,
        }
    }
}

/// How a result's `content` is read: as its text, or skipped.
trait Content<'de>: serde::Deserialize<'de> {
    /// The content's JSON text, if it was kept.
    fn text(&self) -> Option<&'de str>;
}

impl<'de> Content<'de> for &'de RawValue {
    fn text(&self) -> Option<&'de str> {
        Some(self.get())
    }
}

impl<'de> Content<'de> for IgnoredAny {
    fn text(&self) -> Option<&'de str> {
        None
    }
}

/// [`ResultSummary`] as serde reads it, in the one pass over the answer
/// (a large result is not scanned twice).
struct SerdeSummary<C> {
    is_error: Option<Value>,
    content: Option<C>,
}

impl<C> Default for SerdeSummary<C> {
    fn default() -> Self {
        SerdeSummary {
            is_error: None,
            content: None,
        }
    }
}

/// The members of a result the record reads (names escapes-decoded).
#[derive(serde::Deserialize)]
#[serde(field_identifier)]
enum ResultMember {
    #[serde(rename = "isError")]
    IsError,
    #[serde(rename = "content")]
    Content,
    #[serde(other)]
    Other,
}

impl<'de, C: serde::Deserialize<'de>> serde::Deserialize<'de> for SerdeSummary<C> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::DeserializeSeed;
        ShapeOr(SummaryMembers(PhantomData))
            .deserialize(d)
            .map(Option::unwrap_or_default)
    }
}

/// What [`SerdeSummary`] reads of a result object.
struct SummaryMembers<C>(PhantomData<C>);

impl<'de, C: serde::Deserialize<'de>> ReadShape<'de> for SummaryMembers<C> {
    type Out = SerdeSummary<C>;
    fn object<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Option<SerdeSummary<C>>, A::Error> {
        let mut out = SerdeSummary::default();
        let mut is_error_seen = 0;
        while let Some(key) = map.next_key::<ResultMember>()? {
            match key {
                ResultMember::IsError => {
                    is_error_seen += 1;
                    out.is_error = Some(map.next_value()?);
                }
                ResultMember::Content => out.content = Some(map.next_value()?),
                ResultMember::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if is_error_seen > 1 {
            // Ambiguous: read as no `isError` at all.
            out.is_error = None;
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_shape::random_json::{damaged, xorshift, RandomJson};

    fn outcome_of(result: &str) -> (Option<Value>, Option<String>) {
        let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
        let found = answers_in(answer.as_bytes(), true);
        assert_eq!(found.len(), 1, "{answer}");
        let summary = found[0].result.as_ref().expect("a result");
        // Read without its content (no excerpt asked for): the same outcome.
        let skipped = answers_in(answer.as_bytes(), false);
        let without = skipped[0].result.as_ref().expect("a result");
        assert_eq!(without.is_error, summary.is_error, "{answer}");
        assert_eq!(without.content, None);
        (
            summary.is_error.clone(),
            summary.content.map(str::to_string),
        )
    }

    #[test]
    fn answers_are_read_from_each_event_of_a_stream() {
        let kept = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{\"content\":[],\"isError\":true}}\n\n";
        let events = event_data(kept);
        assert_eq!(events.len(), 2, "{events:?}");
        let answers: Vec<Answer> = events
            .iter()
            .flat_map(|d| answers_in(d.as_bytes(), true))
            .collect();
        assert_eq!(answers.len(), 1, "a notification is no answer");
        assert_eq!(answers[0].id, Some(Value::from(1)));
        let result = answers[0].result.as_ref().expect("a result");
        assert_eq!(result.is_error, Some(Value::Bool(true)));
        assert_eq!(result.content, Some("[]"));
    }

    #[test]
    fn a_result_is_read_for_its_outcome_in_one_pass() {
        let (is_error, content) =
            outcome_of(r#"{"content":[{"type":"text","text":"hi"}],"isError":true}"#);
        assert_eq!(is_error, Some(Value::Bool(true)));
        assert_eq!(content.as_deref(), Some(r#"[{"type":"text","text":"hi"}]"#));
        // Escaped member names are the names they decode to.
        assert_eq!(
            outcome_of(r#"{"is\u0045rror":true}"#).0,
            Some(Value::Bool(true))
        );
        // Given twice, `isError` is ambiguous: not read.
        assert_eq!(outcome_of(r#"{"isError":true,"isError":false}"#).0, None);
        // A result that is not an object is still an answer, with neither.
        for other in ["null", "[true]", "5", "\"x\"", "false"] {
            assert_eq!(outcome_of(other), (None, None), "{other}");
        }
        // An error answer has no result.
        let error = answers_in(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601}}"#,
            false,
        );
        assert!(error[0].result.is_none() && error[0].error.is_some());
    }

    #[test]
    fn what_serde_refuses_is_no_answer() {
        for text in [
            // A repeated member, a lone surrogate or an out-of-range number
            // where serde decodes, a name serde cannot decode.
            r#"{"id":1,"id":2,"result":{}}"#,
            r#"{"id":1,"result":{},"result":{}}"#,
            r#"{"id":"\ud800","result":{}}"#,
            r#"{"id":1e400,"result":{}}"#,
            r#"{"id":1,"result":{"isError":1e400}}"#,
            r#"{"id":1,"result":"\udc00"}"#,
            r#"{"\ud800":1,"id":1,"result":{}}"#,
            // Not JSON.
            r#"{"id":01,"result":{}}"#,
            r#"{"id":1,"result":{},}"#,
            r#"{"id":1,"result":{}} x"#,
        ] {
            assert!(plain(text.as_bytes(), true).is_none(), "{text}");
            assert_eq!(answers_in(text.as_bytes(), true), Vec::new(), "{text}");
        }
        // Skipped values are only checked: a lone surrogate there is read.
        let skipped = r#"{"id":1,"x":"\ud800","result":{"content":["\udc00"]}}"#;
        assert_eq!(answers_in(skipped.as_bytes(), true).len(), 1);
        assert!(plain(skipped.as_bytes(), true).is_some());
    }

    /// How one text was read, for the differential test's tally.
    #[derive(Debug, PartialEq, Eq, Hash)]
    enum Reading {
        /// Both read it (an answer or not).
        Agreed { answers: bool },
        /// Serde refused it; the scan gave up too.
        Refused,
        /// The scan gave up; serde read it.
        LeftToSerde,
    }

    fn compare(text: &str) -> Reading {
        let by_serde = |with_content| {
            let read = if with_content {
                serde_json::from_str::<SerdeAnswer<&RawValue>>(text).map(SerdeAnswer::into_answer)
            } else {
                serde_json::from_str::<SerdeAnswer<IgnoredAny>>(text).map(SerdeAnswer::into_answer)
            };
            read.ok()
        };
        for with_content in [true, false] {
            let serde = by_serde(with_content);
            match plain(text.as_bytes(), with_content) {
                Some(answer) => assert_eq!(Some(&answer), serde.as_ref(), "{text}"),
                None if serde.is_some() => return Reading::LeftToSerde,
                None => return Reading::Refused,
            }
        }
        Reading::Agreed {
            answers: by_serde(true).is_some_and(|a| a.answers()),
        }
    }

    #[test]
    fn the_scan_reads_answers_as_serde_does() {
        const KEYS: &[&str] = &[
            "id",
            "result",
            "error",
            "isError",
            "content",
            "jsonrpc",
            "is\\u0045rror",
            "\\u0069d",
            "Result",
            "x",
            "",
        ];
        const SCALARS: &[&str] = &[
            "\"2.0\"",
            "1",
            "-0.5e+10",
            "1e400",
            "true",
            "false",
            "null",
            "\"\\u00e9\\n\"",
            "\"\\ud800\"",
            "\"\u{e9}\u{1F600}\"",
        ];
        let mut random = RandomJson::new(0x9e37_79b9_7f4a_7c15, KEYS, SCALARS);
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut readings = std::collections::HashMap::new();
        let mut count = |reading| *readings.entry(reading).or_insert(0) += 1;
        for round in 0..6000 {
            let text = if round % 2 == 0 {
                random.text()
            } else {
                // A likely answer, its result random.
                let id = ["1", "\"a\"", "null", "7.5"][next(4)];
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":{},\"isError\":{}}}}}",
                    random.text(),
                    SCALARS[next(SCALARS.len())]
                )
            };
            count(compare(&text));
            if let Some(text) = damaged(text, &mut next) {
                count(compare(&text));
            }
        }
        // Not vacuous: answers, other objects and refused texts were all
        // met, and what serde reads was rarely left to it.
        let seen = |reading| readings.get(&reading).copied().unwrap_or(0);
        let answers = seen(Reading::Agreed { answers: true });
        let others = seen(Reading::Agreed { answers: false });
        let left = seen(Reading::LeftToSerde);
        assert!(
            answers > 1000 && others > 500 && seen(Reading::Refused) > 2000 && left < answers / 5,
            "{readings:?}"
        );
    }
}
