//! The operator-facing YAML schema: what a file under `config/` may contain.
//!
//! Every file holds any of the top-level sections below; the loader merges them.
//! Unknown fields are refused so a typo never silently changes meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One YAML file under `config/`, before merging.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Gateway-wide settings (at most one file may set them).
    #[serde(default)]
    pub gateway: Option<GatewaySettings>,
    /// Teams that own servers and receive grants.
    #[serde(default)]
    pub teams: Vec<Team>,
    /// Registered MCP servers.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Users and agents (service accounts) with their gateway tokens.
    #[serde(default)]
    pub principals: Vec<Principal>,
    /// Access policies: allow / deny by server and tool pattern.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// OpenID Connect providers whose JWTs sign people and agents in.
    #[serde(default)]
    pub identity_providers: Vec<IdentityProvider>,
    /// Curated endpoints exposing chosen tools of several servers.
    #[serde(default)]
    pub virtual_servers: Vec<VirtualServer>,
}

pub use crate::virtual_servers::{Naming, VirtualInclude, VirtualServer};

/// Gateway-wide settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Largest request body accepted (after decompression), in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The gateway's external base URL (e.g. `https://mcp.example.com`), for
    /// the absolute URLs of the OAuth protected-resource metadata. Default:
    /// `http://` and the request's `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// OAuth scopes advertised in the protected-resource metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Host names agents may address the gateway by (the `Host` header,
    /// port ignored): DNS-rebinding protection. `"*"` accepts any host.
    #[serde(default = "default_allowed_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call the gateway, besides those on an
    /// allowed host. Requests without an `Origin` header (non-browser agents)
    /// are always accepted.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// What the gateway records in the audit trail.
    #[serde(default)]
    pub audit: AuditSettings,
    /// A secret reference keying the sealed `Mcp-Session-Id`s: every replica
    /// must share it for a session to survive landing on another replica.
    /// Default: the control plane's generated key
    /// ([`GENERATED_SESSION_SECRET`]); a gateway on a config directory
    /// without one uses a random key per process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_secret: Option<String>,
}

/// The session secret the control plane generates and ships when
/// `gateway.session_secret` is not set.
pub const GENERATED_SESSION_SECRET: &str = "store:toolgate-session-key";

/// Gateway-wide audit settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Record every MCP method, not only `tools/call` and refused requests.
    #[serde(default)]
    pub all_methods: bool,
    /// Keys whose values are redacted from every server's arguments
    /// (case-insensitive; a key matches when it contains one of these).
    #[serde(default = "default_redact_keys")]
    pub redact_keys: Vec<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            all_methods: false,
            redact_keys: default_redact_keys(),
        }
    }
}

/// Argument keys redacted by default.
pub fn default_redact_keys() -> Vec<String> {
    [
        "password",
        "passwd",
        "secret",
        "token",
        "authorization",
        "api_key",
        "apikey",
        "credential",
        "cookie",
        "private_key",
    ]
    .map(String::from)
    .to_vec()
}

/// A server's audit policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAudit {
    /// What is recorded of the arguments: `keep`, `redact` (default),
    /// `hash` or `drop`.
    #[serde(default)]
    pub arguments: crate::audit::ArgumentsMode,
    /// More keys to redact for this server, besides the gateway's.
    #[serde(default)]
    pub redact_keys: Vec<String>,
    /// Characters of the tool result's text kept in the record (0: none).
    #[serde(default)]
    pub response_excerpt: usize,
    /// When the audit spool is full: `reject` new calls (fail closed,
    /// default) or `drop` their records and count them in a metric.
    #[serde(default)]
    pub when_spool_full: SpoolFull,
}

/// What a server's calls do when audit records cannot be kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpoolFull {
    /// Refuse new calls with a clear error.
    #[default]
    Reject,
    /// Serve them; count the lost records (`toolgate_audit_dropped_total`).
    Drop,
}

/// By default the gateway answers only to loopback names.
pub fn default_allowed_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "[::1]"]
        .map(String::from)
        .to_vec()
}

/// The default request body cap: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            public_url: None,
            scopes_supported: Vec::new(),
            allowed_hosts: default_allowed_hosts(),
            allowed_origins: Vec::new(),
            audit: AuditSettings::default(),
            session_secret: None,
        }
    }
}

/// A team: the unit that owns servers and receives grants.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Unique team name.
    pub name: String,
    /// Free text for operators.
    #[serde(default)]
    pub description: String,
}

/// A registered MCP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Unique name; agents reach it at `/mcp/{name}`.
    pub name: String,
    /// Free text for operators and agents.
    #[serde(default)]
    pub description: String,
    /// The team that owns the server.
    pub owner: String,
    /// Only `approved` servers are routed.
    pub status: ApprovalStatus,
    /// Upstream endpoint, e.g. `http://10.0.0.5:8080/mcp` (for `transport:
    /// sse`, the legacy event-stream URL, e.g. `http://10.0.0.5:8080/sse`).
    /// Required unless `transport: stdio`.
    #[serde(default)]
    pub endpoint: String,
    /// How the gateway talks to the server.
    #[serde(default)]
    pub transport: Transport,
    /// `transport: stdio`: the program the gateway runs (looked up in `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `transport: stdio`: the program's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `transport: stdio`: environment variables, literal values. The
    /// process gets only these, `secret_env`, `PATH` and `HOME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `transport: stdio`: environment variables whose values are secret
    /// references (`env:NAME`, `file:PATH`, `store:NAME`), resolved when the
    /// catalog is compiled and never logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, String>,
    /// `transport: stdio`: how the gateway runs the processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioSettings>,
    /// The credential the gateway injects upstream.
    #[serde(default)]
    pub auth: UpstreamAuth,
    /// For `https` endpoints on a private PKI: `file:PATH` of a PEM bundle
    /// of the CAs to trust for this server instead of the system roots.
    #[serde(default)]
    pub tls_ca: Option<String>,
    /// Tools the operator declares up front (discovery adds more later).
    #[serde(default)]
    pub tools: Vec<ToolDecl>,
    /// When set, only these tools are offered to agents (set by the control
    /// plane from pinned, unchanged tool definitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_tools: Option<Vec<String>>,
    /// What the audit trail keeps of this server's calls.
    #[serde(default)]
    pub audit: ServerAudit,
}

/// Registry approval state of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Registered, awaiting review: not routed.
    Pending,
    /// Routed.
    Approved,
    /// Still listed, no longer routed.
    Deprecated,
    /// Never routed.
    Blocked,
}

/// Upstream transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// MCP Streamable HTTP (2025-03-26 and later, and stateless 2026-07-28).
    #[default]
    StreamableHttp,
    /// Legacy HTTP+SSE (2024-11-05): `endpoint` is the event-stream URL. The
    /// gateway serves it to agents as Streamable HTTP (one upstream event
    /// stream per agent session).
    Sse,
    /// A local process the gateway runs (`command`, `args`, `env`,
    /// `secret_env`, `stdio`), speaking newline-delimited JSON-RPC on its
    /// stdin and stdout; served to agents as Streamable HTTP.
    Stdio,
}

/// How the gateway runs a stdio server's processes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdioSettings {
    /// `per-session` (default): one process per agent session; `shared`:
    /// one process for all sessions.
    #[serde(default)]
    pub mode: StdioMode,
    /// Most processes (per-session mode: sessions) at once; more sessions
    /// are refused with 503 until one ends. Default 32.
    #[serde(default = "default_max_processes")]
    pub max_processes: usize,
    /// A session unused this long is ended and its process stopped.
    /// Default 300.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

impl Default for StdioSettings {
    fn default() -> Self {
        StdioSettings {
            mode: StdioMode::default(),
            max_processes: default_max_processes(),
            idle_timeout_secs: default_idle_timeout_secs(),
        }
    }
}

fn default_max_processes() -> usize {
    32
}

fn default_idle_timeout_secs() -> u64 {
    300
}

/// Whether agent sessions get their own stdio process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StdioMode {
    /// One process per agent session, stopped when the session ends.
    #[default]
    PerSession,
    /// One process shared by all sessions (JSON-RPC ids are remapped).
    Shared,
}

/// How the gateway authenticates to an upstream server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum UpstreamAuth {
    /// No credential.
    #[default]
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer {
        /// A secret reference (`env:NAME` or `file:PATH`).
        secret: String,
    },
    /// `<header>: <secret>`, e.g. `X-Api-Key`.
    Header {
        /// Header name.
        header: String,
        /// A secret reference (`env:NAME` or `file:PATH`).
        secret: String,
    },
    /// OAuth 2.0 client credentials (a service account): the control plane
    /// obtains an access token from `token_url`, refreshes it before it
    /// expires, and proxies inject `Authorization: Bearer <token>`. The
    /// client secret never leaves the control plane.
    OauthClientCredentials {
        /// The authorization server's token endpoint.
        token_url: String,
        /// The client id.
        client_id: String,
        /// A secret reference to the client secret (sent with HTTP Basic).
        client_secret: String,
        /// Space-separated scopes to request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The `audience` parameter some providers require.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
    /// Per-user delegated OAuth 2.0 (authorization code + PKCE S256): each
    /// user connects once at the control plane (`GET /v1/connect/{server}`),
    /// which keeps their refresh token sealed, refreshes their access token
    /// before it expires, and ships it to proxies; proxies inject the
    /// caller's own token. A caller who has not connected is refused with
    /// the URL to connect at; there is no fallback to another token.
    OauthAuthorizationCode {
        /// The authorization server's authorization endpoint.
        authorization_url: String,
        /// The authorization server's token endpoint.
        token_url: String,
        /// The client id registered for the control plane.
        client_id: String,
        /// A secret reference to the client secret (HTTP Basic at the token
        /// endpoint); absent for a public client (PKCE alone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<String>,
        /// Space-separated scopes to request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// The authorization server's revocation endpoint (RFC 7009): a
        /// user's refresh token is revoked there when they disconnect or are
        /// disabled (else it is only deleted here).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revocation_url: Option<String>,
    },
}

/// The reference under which the control plane ships a server's current
/// OAuth access token in the snapshot document.
pub fn oauth_token_ref(server: &str) -> String {
    format!("oauth:{server}")
}

/// A tool declared in the catalog.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDecl {
    /// Tool name exactly as the server exposes it.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Annotation hints (`readOnlyHint`, ...), from the approved definition.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, bool>,
    /// The tool's JSON Schema for its arguments (from discovery, or
    /// declared), served by virtual servers' `tools/list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
    /// The complete MCP `Tool` object as discovered, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<serde_json::Value>,
}

/// A user or an agent (service account).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Unique name.
    pub name: String,
    /// `user` or `agent`.
    pub kind: PrincipalKind,
    /// Teams the principal belongs to.
    #[serde(default)]
    pub teams: Vec<String>,
    /// A disabled principal authenticates nowhere.
    #[serde(default)]
    pub disabled: bool,
    /// Gateway tokens (PATs), by digest only.
    #[serde(default)]
    pub tokens: Vec<TokenDecl>,
    /// This principal also signs in with a JWT from the named identity
    /// provider (its name is the token's principal claim): policies naming
    /// it and its `teams` apply to those sign-ins, and `disabled` refuses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
}

/// Kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A service account or bot.
    Agent,
}

/// A personal access token, stored as the SHA-256 digest of the token text.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDecl {
    /// A label for the token (e.g. the agent or laptop it was issued for).
    pub name: String,
    /// Lower-case hex SHA-256 of the token text; never the token itself.
    pub sha256: String,
    /// A revoked token authenticates nowhere.
    #[serde(default)]
    pub revoked: bool,
}

/// An access policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// Who the policy applies to.
    pub subjects: Subjects,
    /// Grants.
    #[serde(default)]
    pub allow: Vec<Rule>,
    /// Prohibitions; a deny always wins over an allow.
    #[serde(default)]
    pub deny: Vec<Rule>,
}

/// The principals a policy applies to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subjects {
    /// Every member of these teams.
    #[serde(default)]
    pub teams: Vec<String>,
    /// These principals by name.
    #[serde(default)]
    pub principals: Vec<String>,
}

/// One allow or deny rule: a server pattern and tool patterns (`*` and `?` globs).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Server name or glob.
    pub server: String,
    /// Tool names or globs; all tools when omitted.
    #[serde(default = "all_tools")]
    pub tools: Vec<String>,
    /// Only tools whose annotations have these values, e.g.
    /// `{readOnlyHint: true}`. Annotations come from approved (pinned) tool
    /// definitions; a tool the catalog does not know has the MCP defaults
    /// (readOnlyHint false, destructiveHint true, idempotentHint false,
    /// openWorldHint true).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, bool>,
}

/// The MCP tool annotation hints and their defaults.
pub const HINT_DEFAULTS: [(&str, bool); 4] = [
    ("readOnlyHint", false),
    ("destructiveHint", true),
    ("idempotentHint", false),
    ("openWorldHint", true),
];

fn all_tools() -> Vec<String> {
    vec!["*".to_string()]
}

/// An OpenID Connect provider (IdP) whose signed JWTs the gateway accepts as
/// bearer tokens. Its groups map to teams: adding a person to a group in the
/// IdP grants that team's access with no other change.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// Unique name (shown as the agent when a token names no client).
    pub name: String,
    /// Issuer URL; a token's `iss` must equal it exactly.
    pub issuer: String,
    /// The gateway's resource identifier: a token's `aud` must contain it.
    pub audience: String,
    /// Where the IdP publishes its signing keys. Default: the `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The claim listing the caller's groups (a dotted path such as
    /// `realm_access.roles` reaches into objects).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The claim naming the caller, e.g. `sub`, `email`, `preferred_username`.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// `user` or `agent`: the kind of the principals this IdP signs in.
    #[serde(default = "default_idp_kind")]
    pub kind: PrincipalKind,
    /// IdP group name → toolgate team.
    #[serde(default)]
    pub groups_to_teams: BTreeMap<String, String>,
}

impl IdentityProvider {
    /// The reference its signing keys are fetched and shipped under:
    /// `jwks:{jwks_uri}`, or `oidc:{issuer}` (found by OpenID discovery).
    pub fn jwks_source(&self) -> String {
        match &self.jwks_uri {
            Some(uri) => format!("jwks:{uri}"),
            None => format!("oidc:{}", self.issuer),
        }
    }
}

fn default_groups_claim() -> String {
    "groups".to_string()
}

fn default_principal_claim() -> String {
    "sub".to_string()
}

fn default_idp_kind() -> PrincipalKind {
    PrincipalKind::User
}
