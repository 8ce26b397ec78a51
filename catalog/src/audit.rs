//! The audit record: one per `tools/call` (allowed or denied), per refused
//! request, and (when configured) per other MCP method. The proxy writes
//! records, the control plane stores them; this is the wire contract between
//! the two (`POST /v1/audit/records`, one JSON object per line).
//!
//! Records never carry a credential: arguments are redacted, hashed or
//! dropped per server before a record leaves the proxy's memory.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One audited request (a batch yields one record per message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique id (32 hex digits). Delivery is at-least-once; the store keeps
    /// one record per id.
    pub id: String,
    /// When the request arrived, Unix milliseconds (UTC).
    pub ts_ms: i64,
    /// The gateway instance that handled the request.
    pub gateway: String,
    /// The authenticated principal (user or service account), if any.
    #[serde(default)]
    pub principal: Option<String>,
    /// `user` or `agent`.
    #[serde(default)]
    pub principal_kind: Option<String>,
    /// The agent: the name of the token it presented.
    #[serde(default)]
    pub agent: Option<String>,
    /// The MCP client's `clientInfo` from `initialize`, when known.
    #[serde(default)]
    pub client: Option<ClientInfo>,
    /// The principal's teams.
    #[serde(default)]
    pub teams: Vec<String>,
    /// The gateway path the agent used, e.g. `/mcp/github`.
    pub endpoint: String,
    /// The upstream server, when the path named a routable one.
    #[serde(default)]
    pub server: Option<String>,
    /// The JSON-RPC method (`None` when the body was never read or parsed).
    #[serde(default)]
    pub method: Option<String>,
    /// The tool, for `tools/call`.
    #[serde(default)]
    pub tool: Option<String>,
    /// The JSON-RPC id of the request.
    #[serde(default)]
    pub request_id: Option<Value>,
    /// The arguments after the server's redaction policy (absent when dropped).
    #[serde(default)]
    pub arguments: Option<Value>,
    /// What the redaction policy did to the arguments.
    pub arguments_mode: ArgumentsMode,
    /// Allowed or denied by the gateway.
    pub decision: Decision,
    /// Why a request was denied (the gateway's refusal message).
    #[serde(default)]
    pub reason: Option<String>,
    /// What came back.
    pub outcome: Outcome,
    /// HTTP status returned to the agent (0: the agent went away).
    pub http_status: u16,
    /// JSON-RPC error code of the response, when it was an error.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Time from the request's arrival to the end of the response, microseconds.
    pub latency_us: u64,
    /// Request body size in bytes (decoded).
    pub request_bytes: u64,
    /// Response body size in bytes, as sent to the agent.
    pub response_bytes: u64,
    /// The MCP session id the agent used (the gateway's sealed form).
    #[serde(default)]
    pub session_id: Option<String>,
    /// W3C trace id (from the agent's `traceparent`, or the gateway's own).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The start of the tool result's text, when the server opts in.
    #[serde(default)]
    pub response_excerpt: Option<String>,
}

/// `clientInfo` from `initialize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client name.
    pub name: String,
    /// Client version.
    #[serde(default)]
    pub version: Option<String>,
}

/// The gateway's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forwarded upstream.
    Allow,
    /// Refused by the gateway; nothing reached the upstream.
    Deny,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A JSON-RPC result (for tools: `isError` false).
    Success,
    /// A JSON-RPC error response.
    Error,
    /// A tool result with `isError: true`.
    ToolError,
    /// The gateway refused the request.
    Refused,
    /// The upstream could not be reached or failed (HTTP 5xx from the gateway).
    UpstreamError,
    /// Accepted with no JSON-RPC response to read (notifications, streams,
    /// responses too large to inspect, agent gone).
    Unknown,
}

/// What happened to a request's arguments before they were recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentsMode {
    /// Kept as sent.
    Keep,
    /// Kept, with values under sensitive keys replaced by `"[REDACTED]"`.
    #[default]
    Redact,
    /// Replaced by `{"sha256": "<hex of the canonical JSON>"}`.
    Hash,
    /// Not recorded.
    Drop,
}

impl ArgumentsMode {
    /// The lowercase name used in records and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgumentsMode::Keep => "keep",
            ArgumentsMode::Redact => "redact",
            ArgumentsMode::Hash => "hash",
            ArgumentsMode::Drop => "drop",
        }
    }
}

impl Decision {
    /// The lowercase name used in queries and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

impl Outcome {
    /// The lowercase name used in queries and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::ToolError => "tool_error",
            Outcome::Refused => "refused",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Unknown => "unknown",
        }
    }
}
