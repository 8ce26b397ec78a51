//! An audit record as one JSON line, written member by member: the text
//! serde's derive produces for [`AuditRecord`] (a test compares the two),
//! without escaping the same 26 member names again for every record, and
//! with strings escaped eight bytes at a time (serde_json looks at each
//! byte: most of a large argument's cost).

use catalog::audit::AuditRecord;
use serde::Serialize;
use serde_json::Value;

use super::arguments::Arguments;
use crate::json_shape::plain_run;

/// Appends `rec` as JSON to `out` (no newline); its arguments are
/// `copied` when given (`rec.arguments` is then not read). On an error
/// nothing is appended.
pub fn write(
    rec: &AuditRecord,
    copied: Option<&Arguments>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let start = out.len();
    let written = members(rec, copied, out);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn members(
    rec: &AuditRecord,
    copied: Option<&Arguments>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    // Every member named: a member added to `AuditRecord` fails to compile
    // here until it is written too.
    let AuditRecord {
        id,
        ts_ms,
        gateway,
        principal,
        principal_kind,
        agent,
        client,
        teams,
        endpoint,
        server,
        method,
        tool,
        request_id,
        arguments,
        arguments_mode,
        decision,
        reason,
        outcome,
        http_status,
        error_code,
        latency_us,
        request_bytes,
        response_bytes,
        session_id,
        trace_id,
        response_excerpt,
    } = rec;
    let mut m = Members { out, first: true };
    m.text("id", Some(id));
    m.member("ts_ms", ts_ms)?;
    m.text("gateway", Some(gateway));
    m.text("principal", principal.as_ref());
    m.text("principal_kind", principal_kind.as_ref());
    m.text("agent", agent.as_ref());
    m.member("client", client)?;
    m.member("teams", teams)?;
    m.text("endpoint", Some(endpoint));
    m.text("server", server.as_ref());
    m.text("method", method.as_ref());
    m.text("tool", tool.as_ref());
    m.json("request_id", request_id.as_ref())?;
    match copied {
        Some(copied) => {
            m.name("arguments");
            copied.write(m.out)?;
        }
        None => m.json("arguments", arguments.as_ref())?,
    }
    m.word("arguments_mode", arguments_mode.as_str());
    m.word("decision", decision.as_str());
    m.text("reason", reason.as_ref());
    m.word("outcome", outcome.as_str());
    m.member("http_status", http_status)?;
    m.member("error_code", error_code)?;
    m.member("latency_us", latency_us)?;
    m.member("request_bytes", request_bytes)?;
    m.member("response_bytes", response_bytes)?;
    m.text("session_id", session_id.as_ref());
    m.text("trace_id", trace_id.as_ref());
    m.text("response_excerpt", response_excerpt.as_ref());
    m.out.push(b'}');
    Ok(())
}

/// An object being written.
struct Members<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Members<'_> {
    /// `{"name":` or `,"name":` (names are plain ASCII: nothing to escape).
    fn name(&mut self, name: &'static str) {
        self.out
            .extend_from_slice(if self.first { b"{\"" } else { b",\"" });
        self.first = false;
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn member(&mut self, name: &'static str, value: &impl Serialize) -> serde_json::Result<()> {
        self.name(name);
        serde_json::to_writer(&mut *self.out, value)
    }

    /// A string member (`null` when absent).
    fn text(&mut self, name: &'static str, value: Option<&String>) {
        self.name(name);
        match value {
            Some(s) => escaped(self.out, s),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// A JSON member (`null` when absent).
    fn json(&mut self, name: &'static str, value: Option<&Value>) -> serde_json::Result<()> {
        self.name(name);
        match value {
            Some(v) => json(self.out, v),
            None => {
                self.out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }

    /// A member whose value is an enum's name, which needs no escaping.
    fn word(&mut self, name: &'static str, value: &'static str) {
        self.name(name);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }
}

/// `value` as compact JSON, as serde_json writes it (object members in the
/// map's own order), with strings through [`escaped`].
pub(super) fn json(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::String(s) => escaped(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (name, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                escaped(out, name);
                out.push(b':');
                json(out, item)?;
            }
            out.push(b'}');
        }
        // null, booleans and numbers: serde_json's own text.
        other => serde_json::to_writer(&mut *out, other)?,
    }
    Ok(())
}

/// `s` as a JSON string, escaped exactly as serde_json escapes it: `"`,
/// `\`, and control characters (short forms where JSON has them, else
/// `\u00xx`). Runs of eight bytes that need none are skipped at once.
fn escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    let mut at = 0;
    loop {
        at = plain_run(bytes, at);
        let Some(&b) = bytes.get(at) else {
            break;
        };
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => {
                at += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..at]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        at += 1;
        copied = at;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::audit::{ArgumentsMode, ClientInfo, Decision, Outcome};
    use serde_json::json;

    fn full() -> AuditRecord {
        AuditRecord {
            id: "00000000000000010000000000000002".into(),
            ts_ms: -5,
            gateway: "gw \"one\"\n".into(),
            principal: Some("al\u{e9}ce".into()),
            principal_kind: Some("user".into()),
            agent: Some("laptop\\tab\t".into()),
            client: Some(ClientInfo {
                name: "claude".into(),
                version: Some("1.0".into()),
            }),
            teams: vec!["eng".into(), "\u{1F600}".into()],
            endpoint: "/mcp/demo".into(),
            server: Some("demo".into()),
            method: Some("tools/call".into()),
            tool: Some("search_issues".into()),
            request_id: Some(json!("r-1")),
            arguments: Some(json!({"q": "x\u{0}y", "n": [1, 2.5, null, true], "o": {}})),
            arguments_mode: ArgumentsMode::Hash,
            decision: Decision::Deny,
            reason: Some("tool not allowed".into()),
            outcome: Outcome::ToolError,
            http_status: 403,
            error_code: Some(-32001),
            latency_us: u64::MAX,
            request_bytes: 126,
            response_bytes: 0,
            session_id: Some("s".into()),
            trace_id: Some("963b0c038c2b0415e832ca79a98b765c".into()),
            response_excerpt: Some("3 issues".into()),
        }
    }

    #[test]
    fn strings_and_values_are_escaped_as_serde_json_escapes_them() {
        // Every byte class at every offset around the eight-byte steps.
        let pieces = [
            "a",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            " ",
            "/",
            "\u{e9}",
            "\u{1F600}",
            "\u{2028}",
            "abcdefgh",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..4000 {
            let mut s = String::new();
            let len = (seed % 23) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let mut out = Vec::new();
            escaped(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
            let v = json!({"k": s, "n": [1, -2, 3.5, 1e300, null, false], s.clone(): {"": []}});
            let mut out = Vec::new();
            json(&mut out, &v).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    fn line(rec: &AuditRecord) -> String {
        let mut out = b"before ".to_vec();
        write(rec, None, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_same_text_as_serde_writes() {
        let mut rec = full();
        assert_eq!(
            line(&rec),
            format!("before {}", serde_json::to_string(&rec).unwrap())
        );
        let modes = [
            ArgumentsMode::Keep,
            ArgumentsMode::Redact,
            ArgumentsMode::Drop,
        ];
        let outcomes = [
            Outcome::Success,
            Outcome::Error,
            Outcome::Refused,
            Outcome::UpstreamError,
            Outcome::Unknown,
        ];
        for (mode, outcome) in modes.into_iter().zip(outcomes) {
            rec = AuditRecord {
                principal: None,
                principal_kind: None,
                agent: None,
                client: None,
                teams: Vec::new(),
                server: None,
                method: None,
                tool: None,
                request_id: None,
                arguments: None,
                arguments_mode: mode,
                decision: Decision::Allow,
                reason: None,
                outcome,
                error_code: None,
                session_id: None,
                trace_id: None,
                response_excerpt: None,
                ..full()
            };
            let text = line(&rec);
            assert_eq!(
                text,
                format!("before {}", serde_json::to_string(&rec).unwrap())
            );
            let back: AuditRecord = serde_json::from_str(&text["before ".len()..]).unwrap();
            assert_eq!(back, rec);
        }
    }
}
