//! MCP Streamable HTTP messages as the load generator sends them, and the
//! check of what comes back (status, JSON or SSE body, JSON-RPC error).

use serde::de::IgnoredAny;
use serde::Deserialize;

/// The MCP protocol version both sides speak.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// The session header (HTTP header names are case-insensitive).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// What the client accepts on every POST, as the MCP spec requires.
pub const ACCEPT_POST: &str = "application/json, text/event-stream";

/// The tool the mock answers with a short JSON result.
pub const TOOL_SMALL: &str = "search_issues";

/// The tool the mock answers as an SSE stream (progress, then the result).
pub const TOOL_STREAM: &str = "stream_report";

/// `initialize` with request id `id`.
pub fn initialize(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"mcp-load","version":"1"}}}}}}"#
    )
}

/// The notification a client sends once `initialize` succeeded.
pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// `tools/list` with request id `id`.
pub fn tools_list(id: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{}}}}"#)
}

/// `tools/call` of `tool` with `arguments` (a JSON object) and, when
/// `progress` is set, a progress token (the mock then sends progress
/// notifications on an SSE response).
pub fn tools_call(id: u64, tool: &str, arguments: &str, progress: bool) -> String {
    let meta = if progress {
        format!(r#","_meta":{{"progressToken":"p{id}"}}"#)
    } else {
        String::new()
    };
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}{meta}}}}}"#
    )
}

/// Arguments of a small call: a short query.
pub fn small_arguments() -> String {
    r#"{"query":"status:open label:bug","limit":10}"#.to_string()
}

/// Arguments of about `arg_bytes` bytes (one long string) asking the mock
/// for a result of `result_bytes` bytes.
pub fn large_arguments(arg_bytes: usize, result_bytes: usize) -> String {
    let filler: String = (0..arg_bytes)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    format!(r#"{{"query":"{filler}","size":{result_bytes}}}"#)
}

/// Why a response does not count as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A status outside 2xx.
    Status,
    /// A JSON-RPC error object.
    JsonRpc,
    /// No complete JSON-RPC response for the request in the body.
    Malformed,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

fn check_message(data: &[u8]) -> Option<Result<(), Failure>> {
    let reply: Reply = serde_json::from_slice(data).ok()?;
    reply.id.as_ref()?; // a notification or request from the server
    Some(match (reply.result, reply.error) {
        (_, Some(_)) => Err(Failure::JsonRpc),
        (Some(_), None) => Ok(()),
        (None, None) => Err(Failure::Malformed),
    })
}

/// Checks the answer to a request (not a notification): 2xx, and a JSON-RPC
/// response without `error`, either as the JSON body or as an event of an
/// SSE body (progress notifications before it are skipped).
pub fn check_response(status: u16, content_type: &[u8], body: &[u8]) -> Result<(), Failure> {
    if !(200..300).contains(&status) {
        return Err(Failure::Status);
    }
    if content_type.starts_with(b"text/event-stream") {
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(data) = line.strip_prefix(b"data:") {
                if let Some(outcome) = check_message(data) {
                    return outcome;
                }
            }
        }
        Err(Failure::Malformed)
    } else {
        check_message(body).unwrap_or(Err(Failure::Malformed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json() {
        for body in [
            initialize(1),
            INITIALIZED.to_string(),
            tools_list(2),
            tools_call(3, TOOL_SMALL, &small_arguments(), false),
            tools_call(4, TOOL_STREAM, &large_arguments(100, 5000), true),
        ] {
            serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
    }

    #[test]
    fn responses_are_checked() {
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#;
        assert_eq!(check_response(200, b"application/json", ok), Ok(()));
        assert_eq!(
            check_response(500, b"application/json", ok),
            Err(Failure::Status)
        );
        assert_eq!(
            check_response(200, b"application/json", err),
            Err(Failure::JsonRpc)
        );
        assert_eq!(
            check_response(200, b"application/json", b"{"),
            Err(Failure::Malformed)
        );
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        assert_eq!(check_response(200, b"text/event-stream", sse), Ok(()));
        assert_eq!(
            check_response(200, b"text/event-stream", &sse[..60]),
            Err(Failure::Malformed)
        );
    }
}
