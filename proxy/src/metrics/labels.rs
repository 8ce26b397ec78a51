//! Label values: every one comes from a fixed list or from the catalog, so
//! an agent cannot grow the number of series by sending odd requests.

use catalog::{Snapshot, Upstream};
use pingora_error::{Error, ErrorSource, ErrorType};

use crate::error::Refusal;
use crate::jsonrpc::{Body, Kind};

/// `server` label of requests whose path names no routable server.
pub const UNKNOWN_SERVER: &str = "unknown";
/// Label value for anything outside a fixed list or over a cap.
pub const OTHER: &str = "other";

/// The JSON-RPC methods that get a `method` label of their own.
const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

/// The `method` label of a JSON-RPC method: itself when it is one of the
/// MCP methods the gateway knows, else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER)
}

/// The `method` label of a request: `GET` / `DELETE` for streams and
/// session ends, `batch` for a JSON-RPC batch, `response` for a client's
/// reply to a server request, the JSON-RPC method of a single message, and
/// `other` for anything else (including a POST whose body was not parsed).
pub fn request_method(http: &http::Method, body: Option<&Body>) -> &'static str {
    match (http, body) {
        (&http::Method::GET, _) => "GET",
        (&http::Method::DELETE, _) => "DELETE",
        (_, Some(Body::Batch(_))) => "batch",
        (_, Some(Body::Single(m))) => match &m.kind {
            Kind::Call { method, .. } => method_label(method),
            Kind::Response => "response",
        },
        (_, None) => OTHER,
    }
}

/// How an agent request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Sent upstream and answered (whatever the upstream's status).
    #[default]
    Forwarded,
    /// No or bad token, unknown session, a server the caller may not use,
    /// disallowed host or origin, or access revoked mid-response.
    RefusedAuth,
    /// A `tools/call` the policy denies.
    RefusedPolicy,
    /// Malformed: bad JSON-RPC, header mismatch, too large, wrong method or
    /// content type.
    RefusedInvalid,
    /// Refused because the audit trail could not record the call (spool full).
    RefusedAudit,
    /// The upstream could not be reached or failed (see `toolgate_upstream_errors_total`).
    UpstreamError,
    /// The gateway itself failed.
    GatewayError,
    /// Answered by the gateway itself (the OAuth protected-resource metadata).
    Answered,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::RefusedAuth => "refused_auth",
            Outcome::RefusedPolicy => "refused_policy",
            Outcome::RefusedInvalid => "refused_invalid",
            Outcome::RefusedAudit => "refused_audit",
            Outcome::UpstreamError => "upstream_error",
            Outcome::GatewayError => "gateway_error",
            Outcome::Answered => "answered",
        }
    }

    /// The outcome of a request the gateway refused.
    pub fn of_refusal(refusal: &Refusal) -> Outcome {
        match refusal {
            Refusal::NoSuchServer
            | Refusal::Unauthorized { .. }
            | Refusal::OriginNotAllowed(_)
            | Refusal::HostNotAllowed(_)
            | Refusal::UnknownSession
            | Refusal::SessionRequired
            | Refusal::NotConnected { .. } => Outcome::RefusedAuth,
            Refusal::Denied(_) => Outcome::RefusedPolicy,
            Refusal::MethodNotAllowed
            | Refusal::TooLarge { .. }
            | Refusal::Unsupported(_)
            | Refusal::SeveralHosts
            | Refusal::Parse(_)
            | Refusal::HeaderMismatch { .. } => Outcome::RefusedInvalid,
            Refusal::AuditUnavailable { .. } => Outcome::RefusedAudit,
            Refusal::UpstreamUnavailable { .. } | Refusal::UpstreamRestarted { .. } => {
                Outcome::UpstreamError
            }
            Refusal::Document(_) => Outcome::Answered,
        }
    }
}

/// Why an upstream exchange failed (`kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Connection refused, no route, resolution failure.
    Connect,
    /// Connect, read or write timeout.
    Timeout,
    /// The upstream answered 5xx.
    Status5xx,
    /// The upstream refused the gateway's own credential (401, shown to the agent as 502).
    Auth,
    /// TLS handshake or certificate failure.
    Tls,
    /// Anything else (protocol errors, connection closed mid-response).
    Other,
}

impl UpstreamErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Status5xx => "status_5xx",
            UpstreamErrorKind::Auth => "auth",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Other => "other",
        }
    }

    /// The kind of a proxy error, or `None` when the upstream is not to
    /// blame (the agent went away, or the gateway ended the exchange).
    pub fn of_error(e: &Error) -> Option<UpstreamErrorKind> {
        use ErrorType::*;
        let kind = match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                UpstreamErrorKind::Timeout
            }
            ConnectRefused | ConnectNoRoute | ConnectError | SocketError | BindError
            | ConnectProxyFailure => UpstreamErrorKind::Connect,
            TLSWantX509Lookup | TLSHandshakeFailure | InvalidCert | HandshakeError => {
                UpstreamErrorKind::Tls
            }
            _ if e.esource() == &ErrorSource::Upstream => UpstreamErrorKind::Other,
            _ => return None,
        };
        Some(kind)
    }

    /// The kind of an upstream response status that is a failure, if it is one.
    pub fn of_status(status: u16) -> Option<UpstreamErrorKind> {
        match status {
            401 => Some(UpstreamErrorKind::Auth),
            500..=599 => Some(UpstreamErrorKind::Status5xx),
            _ => None,
        }
    }
}

/// Whether a `tools/call` was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolDecision {
    /// Allowed by policy and forwarded.
    Allowed,
    /// Denied by policy (or withheld pending review); never reached the upstream.
    Denied,
}

impl ToolDecision {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolDecision::Allowed => "allowed",
            ToolDecision::Denied => "denied",
        }
    }
}

/// The routable server an agent path names, if any.
pub fn upstream_for_path<'s>(snapshot: &'s Snapshot, path: &str) -> Option<&'s Upstream> {
    crate::admit::server_from_path(path).and_then(|name| snapshot.upstream(name))
}

/// The `tool` label: a name the catalog knows for the server (declared,
/// discovered or offered) labels itself; anything else is `other`. Agents
/// choose tool names freely, so only the catalog may add label values.
pub(crate) fn tool_label<'t>(upstream: Option<&Upstream>, tool: &'t str) -> &'t str {
    match upstream {
        Some(up)
            if up.tools.contains(tool) || up.offered.as_ref().is_some_and(|o| o.contains(tool)) =>
        {
            tool
        }
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(
            method_label("notifications/initialized"),
            "notifications/initialized"
        );
        assert_eq!(method_label("tools/call2"), OTHER);
        assert_eq!(method_label("x".repeat(10_000).as_str()), OTHER);
        assert_eq!(request_method(&http::Method::GET, None), "GET");
        assert_eq!(request_method(&http::Method::POST, None), OTHER);
        let batch =
            crate::jsonrpc::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert_eq!(request_method(&http::Method::POST, Some(&batch)), "batch");
        let one = crate::jsonrpc::parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(request_method(&http::Method::POST, Some(&one)), "ping");
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            Outcome::of_refusal(&Refusal::NoSuchServer),
            Outcome::RefusedAuth
        );
        assert_eq!(
            Outcome::of_refusal(&Refusal::Denied(vec![])),
            Outcome::RefusedPolicy
        );
        assert_eq!(
            Outcome::of_refusal(&Refusal::TooLarge { limit: 1 }),
            Outcome::RefusedInvalid
        );
    }

    #[test]
    fn upstream_errors() {
        let e = Error::new(ErrorType::ConnectRefused);
        assert_eq!(
            UpstreamErrorKind::of_error(&e),
            Some(UpstreamErrorKind::Connect)
        );
        let e = Error::new(ErrorType::ReadTimedout);
        assert_eq!(
            UpstreamErrorKind::of_error(&e),
            Some(UpstreamErrorKind::Timeout)
        );
        let e = Error::new(ErrorType::InvalidCert);
        assert_eq!(
            UpstreamErrorKind::of_error(&e),
            Some(UpstreamErrorKind::Tls)
        );
        let e = Error::new_down(ErrorType::WriteError);
        assert_eq!(UpstreamErrorKind::of_error(&e), None);
        let e = Error::new_up(ErrorType::H1Error);
        assert_eq!(
            UpstreamErrorKind::of_error(&e),
            Some(UpstreamErrorKind::Other)
        );
        assert_eq!(
            UpstreamErrorKind::of_status(503),
            Some(UpstreamErrorKind::Status5xx)
        );
        assert_eq!(UpstreamErrorKind::of_status(404), None);
    }
}
