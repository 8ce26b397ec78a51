//! An audit record as one JSON line, written member by member: the text
//! serde's derive produces for [`AuditRecord`] (a test compares the two),
//! without escaping the same 26 member names again for every record.

use catalog::audit::{AuditRecord, Outcome};
use serde::Serialize;

/// Appends `rec` as JSON to `out` (no newline). On an error nothing is appended.
pub fn write(rec: &AuditRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let start = out.len();
    let written = members(rec, out);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn members(rec: &AuditRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
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
    m.member("id", id)?;
    m.member("ts_ms", ts_ms)?;
    m.member("gateway", gateway)?;
    m.member("principal", principal)?;
    m.member("principal_kind", principal_kind)?;
    m.member("agent", agent)?;
    m.member("client", client)?;
    m.member("teams", teams)?;
    m.member("endpoint", endpoint)?;
    m.member("server", server)?;
    m.member("method", method)?;
    m.member("tool", tool)?;
    m.member("request_id", request_id)?;
    m.member("arguments", arguments)?;
    m.name("arguments_mode");
    m.static_str(arguments_mode.as_str());
    m.name("decision");
    m.static_str(decision.as_str());
    m.member("reason", reason)?;
    m.name("outcome");
    m.static_str(Outcome::as_str(*outcome));
    m.member("http_status", http_status)?;
    m.member("error_code", error_code)?;
    m.member("latency_us", latency_us)?;
    m.member("request_bytes", request_bytes)?;
    m.member("response_bytes", response_bytes)?;
    m.member("session_id", session_id)?;
    m.member("trace_id", trace_id)?;
    m.member("response_excerpt", response_excerpt)?;
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

    /// An enum's name, which needs no escaping.
    fn static_str(&mut self, value: &'static str) {
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::audit::{ArgumentsMode, ClientInfo, Decision};
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

    fn line(rec: &AuditRecord) -> String {
        let mut out = b"before ".to_vec();
        write(rec, &mut out).unwrap();
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
