//! Tool discovery and pinning (issue 3, part 5).
//!
//! [`discover`] connects to a registered MCP server with the server's own
//! credential through the official `rmcp` Streamable HTTP client, runs
//! `initialize` and every page of `tools/list`, and closes the session.
//! Each tool comes back as a [`ToolDefinition`] whose
//! [`fingerprint`](ToolDefinition::fingerprint) covers what a reviewer
//! approves: name, title, description, input and output schema, annotations.
//!
//! Approving a server stores one [`PinnedTool`] per tool. A later discovery is
//! compared with those pins by [`review`]: only tools whose definition is
//! exactly the approved one are [offerable](Review::offerable); changed and
//! added tools are withheld until an operator approves them again ("rug pull"
//! protection).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams, Tool};
use rmcp::service::{ClientInitializeError, RoleClient, ServiceError};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpClient,
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::worker::WorkerQuitReason;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{Peer, ServiceExt};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most `tools/list` pages one discovery reads before it gives up.
pub const MAX_PAGES: usize = 100;

/// Most tools one server may offer; a discovery that sees more fails.
pub const MAX_TOOLS: usize = 10_000;

/// How long closing the MCP session may take after the tools were listed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest piece of server-controlled text (error details, tool names) kept
/// in a [`DiscoveryError`].
const MAX_DETAIL_CHARS: usize = 512;

/// The top-level fields of a tool that a reviewer approves; the fingerprint
/// covers exactly these.
const REVIEWED_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

/// How discovery authenticates to the MCP server: the server's own
/// credential, never an agent's.
///
/// `Debug` never shows the secret value.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credential.
    None,
    /// `Authorization: Bearer <token>`; the value is the token alone.
    Bearer(String),
    /// A named header such as `X-Api-Key: <value>`.
    Header {
        /// Header name (case-insensitive).
        name: String,
        /// Header value, sent as is.
        value: String,
    },
}

impl Credential {
    /// The secret value, if any, so errors can be scrubbed of it.
    fn secret(&self) -> Option<&str> {
        match self {
            Credential::None => None,
            Credential::Bearer(token) => Some(token),
            Credential::Header { value, .. } => Some(value),
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Bearer(_) => f.write_str("Bearer([redacted])"),
            Credential::Header { name, .. } => f
                .debug_struct("Header")
                .field("name", name)
                .field("value", &"[redacted]")
                .finish(),
        }
    }
}

/// Why a discovery or a tool definition was refused.
///
/// No variant ever carries the credential value: server-supplied text is
/// scrubbed of it and truncated. Endpoints are shown without user info,
/// query or fragment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The endpoint is not an `http://` or `https://` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint, redacted.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The credential cannot be sent as an HTTP header.
    #[error("invalid credential: {reason}")]
    InvalidCredential {
        /// What is wrong with it (never the value).
        reason: &'static str,
    },
    /// The server answered 401 or 403: the credential is missing, wrong,
    /// expired or lacks scope.
    #[error("{endpoint} refused the credential (HTTP {status}); check the server's credential")]
    Unauthorized {
        /// The endpoint, redacted.
        endpoint: String,
        /// 401 or 403.
        status: u16,
    },
    /// Connecting or the `initialize` handshake failed.
    #[error("could not open an MCP session with {endpoint}: {detail}")]
    Connect {
        /// The endpoint, redacted.
        endpoint: String,
        /// What the client reported, scrubbed and truncated.
        detail: String,
    },
    /// A `tools/list` request failed.
    #[error("tools/list failed on {endpoint}: {detail}")]
    ListTools {
        /// The endpoint, redacted.
        endpoint: String,
        /// What the client reported, scrubbed and truncated.
        detail: String,
    },
    /// The server kept sending `nextCursor` past [`MAX_PAGES`] pages.
    #[error("{endpoint} sent more than {limit} pages of tools")]
    TooManyPages {
        /// The endpoint, redacted.
        endpoint: String,
        /// The page limit.
        limit: usize,
    },
    /// The server offered more than [`MAX_TOOLS`] tools.
    #[error("{endpoint} offered more than {limit} tools")]
    TooManyTools {
        /// The endpoint, redacted.
        endpoint: String,
        /// The tool limit.
        limit: usize,
    },
    /// The server sent a cursor it had already sent (a pagination loop).
    #[error("{endpoint} repeated a tools/list cursor (pagination loop)")]
    CursorLoop {
        /// The endpoint, redacted.
        endpoint: String,
    },
    /// Two tools share one name, so no reviewer could tell which one runs.
    #[error("{endpoint} offered more than one tool named {name:?}")]
    DuplicateTool {
        /// The endpoint, redacted.
        endpoint: String,
        /// The duplicated name, truncated.
        name: String,
    },
    /// A tool definition is malformed.
    #[error("invalid tool definition: {reason}")]
    InvalidTool {
        /// What is wrong with it.
        reason: String,
    },
    /// The whole discovery took longer than allowed.
    #[error("discovery on {endpoint} timed out after {after:?}")]
    Timeout {
        /// The endpoint, redacted.
        endpoint: String,
        /// The time allowed.
        after: Duration,
    },
}

mod review;
mod tool;

pub use review::*;
pub use tool::*;

/// Lists every tool of the MCP server at `endpoint` (Streamable HTTP).
///
/// Runs `initialize`, then `tools/list` following `nextCursor` to the last
/// page, then closes the session. Fails past [`MAX_PAGES`] pages or
/// [`MAX_TOOLS`] tools, on a repeated cursor, on two tools with one name, or
/// when the whole exchange takes longer than `timeout` (closing the session
/// afterwards may take up to two more seconds).
pub async fn discover(
    endpoint: &str,
    credential: &Credential,
    timeout: Duration,
) -> Result<Vec<ToolDefinition>, DiscoveryError> {
    let config = transport_config(endpoint, credential)?;
    let transport = StreamableHttpClientTransport::from_config(config);
    let ctx = Context::new(endpoint, credential, causes_for(&transport));
    tracing::debug!(endpoint = %ctx.endpoint, "discovering tools");
    let session = async {
        let client = client_info()
            .serve(transport)
            .await
            .map_err(|e| ctx.init_error(&e))?;
        let listed = list_all_tools(client.peer(), &ctx).await;
        Ok::<_, DiscoveryError>((client, listed))
    };
    let (mut client, listed) =
        tokio::time::timeout(timeout, session)
            .await
            .map_err(|_| DiscoveryError::Timeout {
                endpoint: ctx.endpoint.clone(),
                after: timeout,
            })??;
    if !matches!(client.close_with_timeout(CLOSE_TIMEOUT).await, Ok(Some(_))) {
        tracing::warn!(endpoint = %ctx.endpoint, "MCP session did not close cleanly after discovery");
    }
    let tools = listed?;
    tracing::debug!(endpoint = %ctx.endpoint, tools = tools.len(), "discovered tools");
    Ok(tools)
}

/// How toolgate introduces itself in `initialize`.
fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("toolgate-discovery", env!("CARGO_PKG_VERSION")),
    )
}

/// What error mapping needs to know about the current discovery.
struct Context {
    /// The endpoint without user info, query or fragment.
    endpoint: String,
    /// Text that must never appear in an error: the credential value and
    /// the endpoint's user info, query and fragment.
    secrets: Vec<String>,
    causes: Causes,
}

impl Context {
    fn new(endpoint: &str, credential: &Credential, causes: Causes) -> Context {
        let mut secrets = endpoint_secrets(endpoint);
        secrets.extend(credential.secret().map(str::to_string));
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Context {
            endpoint: redact_endpoint(endpoint),
            secrets,
            causes,
        }
    }

    /// Server- or client-supplied text made safe for an error: secrets
    /// removed, the length capped.
    fn detail(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        truncate(&text)
    }

    /// The error for a failed connection or `initialize`.
    fn init_error(&self, error: &ClientInitializeError) -> DiscoveryError {
        let (root, doing): (&DynError, &str) = match error {
            ClientInitializeError::TransportError { error, context } => {
                (error.error.as_ref(), context.as_ref())
            }
            other => (other, "initialize"),
        };
        let chain = (self.causes)(root);
        self.auth_failure(&chain)
            .unwrap_or_else(|| DiscoveryError::Connect {
                endpoint: self.endpoint.clone(),
                detail: self.detail(&format!("{doing}: {}", explain(&chain))),
            })
    }

    /// The error for a failed `tools/list`.
    fn list_error(&self, error: &ServiceError) -> DiscoveryError {
        let root: &DynError = match error {
            ServiceError::TransportSend(e) => e.error.as_ref(),
            other => other,
        };
        let chain = (self.causes)(root);
        self.auth_failure(&chain)
            .unwrap_or_else(|| DiscoveryError::ListTools {
                endpoint: self.endpoint.clone(),
                detail: self.detail(&explain(&chain)),
            })
    }

    /// `Unauthorized` when the failure was an HTTP 401 or 403 from the server.
    fn auth_failure(&self, chain: &[&DynError]) -> Option<DiscoveryError> {
        let status = auth_status(chain)?;
        Some(DiscoveryError::Unauthorized {
            endpoint: self.endpoint.clone(),
            status,
        })
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// `endpoint` without user info, query or fragment, for messages and logs.
fn redact_endpoint(endpoint: &str) -> String {
    let end = endpoint.find(['?', '#']).unwrap_or(endpoint.len());
    let without_query = &endpoint[..end];
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return truncate(without_query);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    truncate(&format!("{scheme}://{host}{path}"))
}

/// The parts of `endpoint` that may hold secrets: user info (and its
/// password alone), query and fragment.
fn endpoint_secrets(endpoint: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some(at) = endpoint.find(['?', '#']) {
        secrets.extend(endpoint[at + 1..].split('#').map(str::to_string));
    }
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        secrets.push(userinfo.to_string());
        secrets.extend(userinfo.split_once(':').map(|(_, pw)| pw.to_string()));
    }
    secrets
}

/// The `rmcp` transport configuration for `endpoint` with `credential`.
fn transport_config(
    endpoint: &str,
    credential: &Credential,
) -> Result<StreamableHttpClientTransportConfig, DiscoveryError> {
    check_endpoint(endpoint)?;
    let config = StreamableHttpClientTransportConfig::with_uri(endpoint);
    Ok(match credential {
        Credential::None => config,
        Credential::Bearer(token) => {
            header_value(&format!("Bearer {token}"))?;
            config.auth_header(token.clone())
        }
        Credential::Header { name, value } => {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                DiscoveryError::InvalidCredential {
                    reason: "the header name is not a valid HTTP header name",
                }
            })?;
            config.custom_headers(HashMap::from([(name, header_value(value)?)]))
        }
    })
}

fn check_endpoint(endpoint: &str) -> Result<(), DiscoveryError> {
    let lower = endpoint.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with(['/', '?', '#']) => Ok(()),
        Some(_) => Err(DiscoveryError::InvalidEndpoint {
            endpoint: redact_endpoint(endpoint),
            reason: "no host",
        }),
        None => Err(DiscoveryError::InvalidEndpoint {
            endpoint: redact_endpoint(endpoint),
            reason: "only http:// and https:// endpoints are supported",
        }),
    }
}

fn header_value(value: &str) -> Result<HeaderValue, DiscoveryError> {
    let mut value =
        HeaderValue::from_str(value).map_err(|_| DiscoveryError::InvalidCredential {
            reason: "the value contains characters not allowed in an HTTP header",
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Reads every `tools/list` page.
async fn list_all_tools(
    peer: &Peer<RoleClient>,
    ctx: &Context,
) -> Result<Vec<ToolDefinition>, DiscoveryError> {
    let mut tools = Vec::new();
    let mut names = HashSet::new();
    let mut seen_cursors = HashSet::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor);
        let page = peer
            .list_tools(Some(params))
            .await
            .map_err(|e| ctx.list_error(&e))?;
        add_page(&mut tools, &mut names, page.tools, ctx)?;
        match page.next_cursor {
            None => return Ok(tools),
            Some(next) if !seen_cursors.insert(next.clone()) => {
                return Err(DiscoveryError::CursorLoop {
                    endpoint: ctx.endpoint.clone(),
                })
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(DiscoveryError::TooManyPages {
        endpoint: ctx.endpoint.clone(),
        limit: MAX_PAGES,
    })
}

/// Appends one page of tools, enforcing [`MAX_TOOLS`] and unique names.
fn add_page(
    tools: &mut Vec<ToolDefinition>,
    names: &mut HashSet<String>,
    page: Vec<Tool>,
    ctx: &Context,
) -> Result<(), DiscoveryError> {
    if tools.len().saturating_add(page.len()) > MAX_TOOLS {
        return Err(DiscoveryError::TooManyTools {
            endpoint: ctx.endpoint.clone(),
            limit: MAX_TOOLS,
        });
    }
    for tool in page {
        let raw = serde_json::to_value(&tool).map_err(|e| invalid(ctx.detail(&e.to_string())))?;
        let tool = ToolDefinition::from_raw(raw)?;
        if !names.insert(tool.name.clone()) {
            return Err(DiscoveryError::DuplicateTool {
                endpoint: ctx.endpoint.clone(),
                name: ctx.detail(&tool.name),
            });
        }
        tools.push(tool);
    }
    Ok(())
}

/// Any error, as error chains hold them.
type DynError = dyn std::error::Error + 'static;

/// An error and its causes, outermost first.
type Chain<'a> = Vec<&'a DynError>;

/// Unwraps a transport error into its [`Chain`].
type Causes = for<'a> fn(&'a DynError) -> Chain<'a>;

/// The [`Causes`] for the HTTP client inside `transport`.
fn causes_for<C: StreamableHttpClient>(_transport: &StreamableHttpClientTransport<C>) -> Causes {
    causes::<C::Error>
}

/// `error` and its causes, following into the HTTP client's own error `E`
/// so the root cause (refused connection, DNS, TLS) is named.
fn causes<'a, E: std::error::Error + Send + Sync + 'static>(error: &'a DynError) -> Chain<'a> {
    let mut chain = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        chain.push(e);
        current = next_cause::<E>(e);
    }
    chain
}

/// The cause of `error`, looking inside the transport's wrappers, which
/// hold their inner error without exposing it as a source.
fn next_cause<E: std::error::Error + Send + Sync + 'static>(error: &DynError) -> Option<&DynError> {
    if let Some(StreamableHttpError::<E>::Client(inner)) =
        error.downcast_ref::<StreamableHttpError<E>>()
    {
        return Some(inner);
    }
    if let Some(WorkerQuitReason::Fatal { error, .. }) =
        error.downcast_ref::<WorkerQuitReason<StreamableHttpError<E>>>()
    {
        return Some(error);
    }
    error.source()
}

/// The chain as one line, without repeating text an outer message holds.
fn explain(chain: &[&DynError]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// 401 or 403 if the chain holds an authentication failure: a challenge the
/// client recognised, or an unchallenged 401/403 it reported as an
/// unexpected response.
fn auth_status(chain: &[&DynError]) -> Option<u16> {
    chain.iter().find_map(|e| {
        if e.downcast_ref::<AuthRequiredError>().is_some() {
            return Some(401);
        }
        if e.downcast_ref::<InsufficientScopeError>().is_some() {
            return Some(403);
        }
        let text = e.to_string();
        [401, 403]
            .into_iter()
            .find(|status| text.contains(&format!("unexpected server response: HTTP {status} ")))
    })
}
