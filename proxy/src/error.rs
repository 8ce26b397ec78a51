//! Every way the gateway refuses a request, and the one place that turns a
//! refusal into an HTTP response with a JSON-RPC error body.

use serde_json::{json, Value};

use crate::jsonrpc::ParseError;

/// JSON-RPC: invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: invalid params (also: unknown tool).
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: a `Mcp-*` header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Gateway-defined: authentication or access refused.
pub const ACCESS_REFUSED: i64 = -32001;

/// Why the gateway answered a request itself instead of forwarding it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The path is not `/mcp/{server}`, or the server is unknown, not
    /// approved, or not granted to the caller (indistinguishable on purpose).
    #[error("no MCP server at this path")]
    NoSuchServer,
    /// No, unknown, or revoked bearer token.
    #[error("a valid gateway token is required (Authorization: Bearer <token>)")]
    Unauthorized {
        /// A token was presented (and was not valid).
        presented: bool,
        /// The URL of the OAuth protected-resource metadata (RFC 9728),
        /// when identity providers are configured.
        resource_metadata: Option<String>,
    },
    /// Not a refusal: the gateway answers this request itself with a JSON
    /// document (the OAuth protected-resource metadata).
    #[error("answered by the gateway (OAuth protected-resource metadata)")]
    Document(Vec<u8>),
    /// A browser `Origin` not on the allow list (DNS-rebinding protection).
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    /// More than one `Host` field: which host the request is for is
    /// ambiguous (RFC 9112 §3.2 asks for a 400).
    #[error("more than one Host header: a request names one host")]
    SeveralHosts,
    /// The `Host` is not one of the gateway's names (DNS-rebinding protection).
    #[error("host {0:?} is not one of this gateway's names (gateway.allowed_hosts)")]
    HostNotAllowed(String),
    /// An `Mcp-Session-Id` this caller was not given (or from another gateway key).
    #[error("unknown MCP session: initialize a new one")]
    UnknownSession,
    /// A request other than `initialize` without the session id it needs
    /// (a virtual server's session).
    #[error("this request needs the Mcp-Session-Id header from initialize")]
    SessionRequired,
    /// An HTTP method MCP does not use.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body above the configured cap.
    #[error("request body exceeds the {limit}-byte limit")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A content type or encoding the gateway cannot check.
    #[error("{0}")]
    Unsupported(String),
    /// Not JSON, or not a valid JSON-RPC request.
    #[error("{0:?}")]
    Parse(ParseError),
    /// An `Mcp-Method` / `Mcp-Name` header disagrees with the body.
    #[error("header mismatch: {detail}")]
    HeaderMismatch {
        /// The request id.
        id: Option<Value>,
        /// Which header and what the body says.
        detail: String,
    },
    /// The upstream could not be reached or failed before answering.
    #[error("the upstream MCP server is unavailable")]
    UpstreamUnavailable {
        /// The request id.
        id: Option<Value>,
        /// 502, or 504 on a timeout.
        status: u16,
    },
    /// The audit trail cannot keep a record of this call (spool full) and the
    /// server's policy is to fail closed.
    #[error("the gateway cannot record this tool call in the audit trail right now (audit spool full); try again later")]
    AuditUnavailable {
        /// The request id.
        id: Option<Value>,
    },
    /// One or more `tools/call`s the caller may not make: one error per
    /// request in the body, in order (a batch is refused as a whole).
    #[error("tool call denied")]
    Denied(Vec<DeniedCall>),
    /// A virtual server's call reached an upstream that no longer knows the
    /// gateway's session (it restarted), and sending it again in a new
    /// session failed too.
    #[error("{server} ended its session (restarted?) and could not be reached again: retry")]
    UpstreamRestarted {
        /// The request id.
        id: Option<Value>,
        /// The server.
        server: String,
    },
    /// The server acts for each user with their own OAuth token (delegated
    /// auth) and this caller has not connected their account (or their
    /// connection lapsed). 403, not 401: the gateway token is valid, and a
    /// 401 would send MCP clients into the gateway's own sign-in.
    #[error("{server} acts with your own account there, which is not connected: open {connect_url} (with your gateway token) to connect, then retry")]
    NotConnected {
        /// The request id.
        id: Option<Value>,
        /// The server.
        server: String,
        /// Where to connect.
        connect_url: String,
    },
}

/// One request of a refused body.
#[derive(Debug, Clone, PartialEq)]
pub struct DeniedCall {
    /// Request id (`None` for notifications, which get no reply).
    pub id: Option<Value>,
    /// The denied tool, or `None` for an element refused because its batch was.
    pub tool: Option<String>,
}

/// A ready HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Vec<u8>,
}

impl Refusal {
    /// A missing (`presented: false`) or invalid token.
    pub fn unauthorized(presented: bool) -> Refusal {
        Refusal::Unauthorized {
            presented,
            resource_metadata: None,
        }
    }

    /// Points a 401's challenge at the protected-resource metadata `url`
    /// (other refusals are returned unchanged).
    pub fn with_resource_metadata(self, url: &str) -> Refusal {
        match self {
            Refusal::Unauthorized { presented, .. } => Refusal::Unauthorized {
                presented,
                resource_metadata: Some(url.to_string()),
            },
            other => other,
        }
    }
}

fn rpc_error(id: Option<&Value>, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": {"code": code, "message": message}})
}

impl Refusal {
    /// The response the agent gets. Messages never contain secrets and never
    /// reveal whether a denied tool exists.
    pub fn to_response(&self) -> ErrorResponse {
        let mut headers = Vec::new();
        let message = self.to_string();
        let (status, body) = match self {
            Refusal::NoSuchServer => (404, rpc_error(None, ACCESS_REFUSED, &message)),
            Refusal::Unauthorized {
                presented,
                resource_metadata,
            } => {
                let mut challenge = r#"Bearer realm="toolgate""#.to_string();
                if *presented {
                    challenge.push_str(r#", error="invalid_token""#);
                }
                if let Some(url) = resource_metadata {
                    challenge.push_str(&format!(r#", resource_metadata="{url}""#));
                }
                headers.push(("www-authenticate", challenge));
                (401, rpc_error(None, ACCESS_REFUSED, &message))
            }
            Refusal::Document(body) => {
                headers.push(("cache-control", "max-age=300".to_string()));
                return ErrorResponse {
                    status: 200,
                    headers,
                    body: body.clone(),
                };
            }
            Refusal::OriginNotAllowed(_) => (403, rpc_error(None, ACCESS_REFUSED, &message)),
            Refusal::HostNotAllowed(_) => (421, rpc_error(None, ACCESS_REFUSED, &message)),
            Refusal::SeveralHosts => (400, rpc_error(None, INVALID_REQUEST, &message)),
            Refusal::UnknownSession => (404, rpc_error(None, INVALID_REQUEST, &message)),
            Refusal::SessionRequired => (400, rpc_error(None, INVALID_REQUEST, &message)),
            Refusal::MethodNotAllowed => {
                headers.push(("allow", "GET, POST, DELETE".to_string()));
                (405, rpc_error(None, INVALID_REQUEST, &message))
            }
            Refusal::TooLarge { .. } => (413, rpc_error(None, INVALID_REQUEST, &message)),
            Refusal::Unsupported(_) => (415, rpc_error(None, INVALID_REQUEST, &message)),
            Refusal::Parse(ParseError::NotJson(detail)) => (
                400,
                rpc_error(None, PARSE_ERROR, &format!("parse error: {detail}")),
            ),
            Refusal::Parse(ParseError::Invalid { id, reason }) => (
                400,
                rpc_error(
                    id.as_ref(),
                    INVALID_REQUEST,
                    &format!("invalid request: {reason}"),
                ),
            ),
            Refusal::HeaderMismatch { id, .. } => {
                (400, rpc_error(id.as_ref(), HEADER_MISMATCH, &message))
            }
            Refusal::UpstreamRestarted { id, .. } => {
                (502, rpc_error(id.as_ref(), INTERNAL_ERROR, &message))
            }
            Refusal::UpstreamUnavailable { id, status } => {
                (*status, rpc_error(id.as_ref(), INTERNAL_ERROR, &message))
            }
            Refusal::AuditUnavailable { id } => {
                headers.push(("retry-after", "30".to_string()));
                (503, rpc_error(id.as_ref(), INTERNAL_ERROR, &message))
            }
            Refusal::NotConnected {
                id, connect_url, ..
            } => {
                let mut body = rpc_error(id.as_ref(), ACCESS_REFUSED, &message);
                body["error"]["data"] = json!({ "connect_url": connect_url });
                (403, body)
            }
            Refusal::Denied(calls) => {
                let replies: Vec<Value> = calls
                    .iter()
                    .filter(|c| c.id.is_some())
                    .map(|c| match &c.tool {
                        Some(tool) => rpc_error(
                            c.id.as_ref(),
                            INVALID_PARAMS,
                            &format!("tool not available: {tool}"),
                        ),
                        None => rpc_error(
                            c.id.as_ref(),
                            INVALID_REQUEST,
                            "not executed: the batch contains a tool call that is not available",
                        ),
                    })
                    .collect();
                let body = if calls.len() == 1 {
                    replies.into_iter().next().unwrap_or(Value::Null)
                } else {
                    Value::Array(replies)
                };
                (200, body)
            }
        };
        if status == 200 && body.is_null() {
            // A denied notification gets no JSON-RPC reply.
            return ErrorResponse {
                status: 202,
                headers,
                body: Vec::new(),
            };
        }
        ErrorResponse {
            status,
            headers,
            body: serde_json::to_vec(&body).expect("JSON serializes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_calls_carry_ids_and_do_not_say_whether_the_tool_exists() {
        let r = Refusal::Denied(vec![DeniedCall {
            id: Some(json!(9)),
            tool: Some("delete_issue".into()),
        }])
        .to_response();
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], json!(9));
        assert_eq!(v["error"]["message"], "tool not available: delete_issue");
    }

    #[test]
    fn not_connected_is_a_403_naming_where_to_connect_without_a_challenge() {
        let url = "https://cp.example.com/v1/connect/tracker";
        let r = Refusal::NotConnected {
            id: Some(json!("a")),
            server: "tracker".into(),
            connect_url: url.into(),
        }
        .to_response();
        assert_eq!(r.status, 403);
        // No WWW-Authenticate: the gateway token is fine, no sign-in helps.
        assert!(r.headers.is_empty());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], json!("a"));
        assert_eq!(v["error"]["code"], ACCESS_REFUSED);
        assert_eq!(v["error"]["data"]["connect_url"], url);
        assert!(v["error"]["message"].as_str().unwrap().contains(url));
    }

    #[test]
    fn unauthorized_has_a_bearer_challenge() {
        let r = Refusal::unauthorized(true).to_response();
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| *n == "www-authenticate" && v.starts_with("Bearer")));
    }

    #[test]
    fn the_challenge_points_at_the_resource_metadata() {
        let url = "https://gw.example.com/.well-known/oauth-protected-resource/mcp/demo";
        let r = Refusal::unauthorized(true)
            .with_resource_metadata(url)
            .to_response();
        let (_, v) = r
            .headers
            .iter()
            .find(|(n, _)| *n == "www-authenticate")
            .unwrap();
        assert_eq!(
            v,
            &format!(
                r#"Bearer realm="toolgate", error="invalid_token", resource_metadata="{url}""#
            )
        );
    }
}
