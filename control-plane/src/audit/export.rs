//! Output formats: records as JSON (with an RFC 3339 `ts` beside `ts_ms`),
//! JSON Lines and CSV; groups as JSON Lines and CSV.

use serde_json::{Map, Value};

use super::query::{Column, Group, StoredRecord};
use super::time::format_rfc3339;

/// The CSV columns, in order. `client_name` / `client_version` come from
/// `client`; `teams`, `request_id` and `arguments` are compact JSON.
pub const CSV_COLUMNS: [&str; 28] = [
    "ts",
    "ts_ms",
    "id",
    "gateway",
    "principal",
    "principal_kind",
    "agent",
    "client_name",
    "client_version",
    "teams",
    "endpoint",
    "server",
    "method",
    "tool",
    "request_id",
    "arguments",
    "arguments_mode",
    "decision",
    "reason",
    "outcome",
    "http_status",
    "error_code",
    "latency_us",
    "request_bytes",
    "response_bytes",
    "session_id",
    "trace_id",
    "response_excerpt",
];

/// The stored record as JSON, with `ts` (RFC 3339, UTC) right after `ts_ms`.
pub fn record_value(stored: &StoredRecord) -> Value {
    let ts = Value::String(format_rfc3339(stored.ts_ms));
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&stored.json) else {
        tracing::error!(id = %stored.id, "audit record unreadable in the store");
        return serde_json::json!({"id": stored.id, "ts_ms": stored.ts_ms, "ts": ts, "unreadable": true});
    };
    let mut out = Map::with_capacity(fields.len() + 1);
    let mut ts = Some(ts);
    for (k, v) in fields {
        let after_ts_ms = k == "ts_ms";
        out.insert(k, v);
        if after_ts_ms {
            if let Some(ts) = ts.take() {
                out.insert("ts".to_string(), ts);
            }
        }
    }
    if let Some(ts) = ts {
        out.insert("ts".to_string(), ts);
    }
    Value::Object(out)
}

/// Appends `value` as one JSON line.
pub fn push_jsonl(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    // Serializing a Value or a plain struct into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.push(b'\n');
}

/// The CSV header row.
pub fn csv_header(out: &mut String) {
    out.push_str(&CSV_COLUMNS.join(","));
    out.push_str("\r\n");
}

/// Appends one record (from [`record_value`]) as a CSV row.
pub fn push_csv_record(out: &mut String, record: &Value) {
    for (i, column) in CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = match *column {
            "client_name" => &record["client"]["name"],
            "client_version" => &record["client"]["version"],
            c => &record[c],
        };
        let json_column = matches!(*column, "teams" | "request_id" | "arguments");
        push_cell(out, value, json_column);
    }
    out.push_str("\r\n");
}

/// The groups as CSV: `<group_by>,count,denied,errors`.
pub fn groups_csv(by: Column, groups: &[Group]) -> String {
    let mut out = format!("{},count,denied,errors\r\n", by.name());
    for g in groups {
        push_text(&mut out, g.key.as_deref().unwrap_or(""));
        out.push_str(&format!(",{},{},{}\r\n", g.count, g.denied, g.errors));
    }
    out
}

fn push_cell(out: &mut String, value: &Value, json: bool) {
    match value {
        Value::Null => {}
        Value::String(s) if !json => push_text(out, s),
        Value::Number(n) if !json => out.push_str(&n.to_string()),
        Value::Bool(b) if !json => out.push_str(if *b { "true" } else { "false" }),
        v => push_text(out, &v.to_string()),
    }
}

/// A text cell, quoted per RFC 4180 when it holds a comma, quote or line
/// break. Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first) is prefixed with `'`: agents choose much of what
/// is recorded, and an export must not execute in the auditor's spreadsheet.
fn push_text(out: &mut String, s: &str) {
    let guard = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guard || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guard {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ts_follows_ts_ms() {
        let stored = StoredRecord {
            ts_ms: 1_772_368_205_042,
            id: "a".into(),
            json: r#"{"id":"a","ts_ms":1772368205042,"gateway":"g"}"#.into(),
        };
        let v = record_value(&stored);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "ts_ms", "ts", "gateway"]);
        assert_eq!(v["ts"], "2026-03-01T12:30:05.042Z");
    }

    #[test]
    fn cells_are_quoted_and_guarded() {
        let mut out = String::new();
        push_text(&mut out, r#"say "hi", then"#);
        out.push(',');
        push_text(&mut out, "=HYPERLINK(1)");
        out.push(',');
        push_text(&mut out, "plain");
        out.push(',');
        push_cell(&mut out, &json!(-32601), false);
        out.push(',');
        push_cell(&mut out, &json!({"q": "a,b"}), true);
        assert_eq!(
            out,
            r#""say ""hi"", then","'=HYPERLINK(1)",plain,-32601,"{""q"":""a,b""}""#
        );
    }
}
