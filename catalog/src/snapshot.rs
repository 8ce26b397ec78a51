//! The immutable, compiled form of the catalog that the proxy reads per request.
//!
//! Every per-request question is a hash lookup or an index:
//! token digest → [`Caller`] (principal and policy class) → per-server [`Grant`]
//! → tool decision. Principals with the same set of policies share one class.

use std::collections::HashMap;

use crate::config_map::ConfigMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::endpoint::Endpoint;
use crate::model::PrincipalKind;
use crate::pattern::Pattern;

/// Index of a server in [`Snapshot`].
pub type ServerId = u32;
/// Index of a policy class in [`Snapshot`].
pub type ClassId = u32;

/// A compiled catalog. Built once per config change, then only read.
#[derive(Debug)]
pub struct Snapshot {
    /// Monotonic version, bumped on every successful compile.
    pub version: u64,
    /// Gateway-wide settings.
    pub settings: Settings,
    pub(crate) tokens: ConfigMap<[u8; 32], Caller>,
    pub(crate) principals: Vec<PrincipalInfo>,
    pub(crate) classes: crate::classes::ClassTable,
    pub(crate) server_index: ConfigMap<Box<str>, ServerId>,
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) identity: crate::identity::Identity,
    pub(crate) virtuals: Vec<crate::virtual_snapshot::VirtualEndpoint>,
    pub(crate) virtual_index: ConfigMap<Box<str>, crate::virtual_snapshot::VirtualId>,
}

/// Gateway-wide settings in force for this snapshot.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest accepted request body, after decompression.
    pub max_body_bytes: usize,
    /// The gateway's external base URL, when configured.
    pub public_url: Option<String>,
    /// OAuth scopes advertised in the protected-resource metadata.
    pub scopes_supported: Vec<String>,
    /// Host names (lower case, no port) the gateway answers to; `*` for any.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed besides those on an allowed host.
    pub allowed_origins: Vec<String>,
    /// What the audit trail records.
    pub audit: crate::model::AuditSettings,
    /// Key for sealing session ids (SHA-256 of the session secret), when
    /// one is configured or provided by the control plane.
    pub session_key: Option<[u8; 32]>,
}

/// Who is calling: the result of authenticating a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Index into the snapshot's principals.
    pub principal: u32,
    /// Index of the token within the principal's tokens.
    pub token: u32,
    /// The caller's policy class.
    pub class: ClassId,
}

/// What the snapshot knows of a principal.
#[derive(Debug)]
pub struct PrincipalInfo {
    /// Principal name.
    pub name: Arc<str>,
    /// User or agent.
    pub kind: PrincipalKind,
    /// Team names.
    pub teams: Vec<Arc<str>>,
    /// Token labels, by token index.
    pub token_names: Vec<Arc<str>>,
}

/// The grants of one policy class, indexed by [`ServerId`].
#[derive(Debug)]
pub(crate) struct PolicyClass {
    pub(crate) grants: Vec<Arc<Grant>>,
}

/// What a class may do on one server.
#[derive(Debug)]
pub enum Grant {
    /// No access at all: the server is invisible.
    None,
    /// Access to the server, and to the tools the rules allow.
    Tools(ToolRules),
}

/// Tool rules of one class on one server; deny wins, default deny.
#[derive(Debug)]
pub struct ToolRules {
    pub(crate) allow_all: bool,
    pub(crate) allow: Vec<Pattern>,
    pub(crate) deny: Vec<Pattern>,
    /// Decisions precomputed for the tools the catalog knows.
    pub(crate) known: HashMap<Box<str>, bool>,
}

impl ToolRules {
    /// Is `tool` allowed?
    pub fn allows(&self, tool: &str) -> bool {
        if self.allow_all {
            return true;
        }
        if let Some(&d) = self.known.get(tool) {
            return d;
        }
        self.allow.iter().any(|p| p.matches(tool)) && !self.deny.iter().any(|p| p.matches(tool))
    }
}

/// A routable upstream server, with everything the proxy needs ready-made.
#[derive(Debug)]
pub struct Upstream {
    /// Server id.
    pub id: ServerId,
    /// Server name.
    pub name: Arc<str>,
    /// Parsed endpoint (for a stdio server, a loopback placeholder: the
    /// proxy asks its bridge for the address).
    pub endpoint: Endpoint,
    /// How the gateway talks to the server: anything but Streamable HTTP
    /// goes through the proxy's bridge.
    pub transport: crate::model::Transport,
    /// What a stdio server runs.
    pub stdio: Option<Arc<crate::stdio_spec::StdioSpec>>,
    /// The socket address when the host is an IP literal.
    pub addr: Option<SocketAddr>,
    /// `Host` header value: the upstream's own authority.
    pub host_header: HeaderValue,
    /// The request target sent upstream: the endpoint's path and query,
    /// parsed once here.
    pub target: http::Uri,
    /// The credential header to inject, marked sensitive.
    pub credential: Option<(HeaderName, HeaderValue)>,
    /// PEM bundle of the CAs trusted for this upstream (else system roots).
    pub tls_ca_pem: Option<Arc<str>>,
    /// When set, the only tools offered (pinned and unchanged).
    pub offered: Option<std::collections::HashSet<Box<str>>>,
    /// Names of the tools the catalog knows for this server (declared in
    /// config or found by discovery), e.g. to bound metric labels.
    pub tools: std::collections::HashSet<Box<str>>,
    /// The server's audit policy.
    pub audit: crate::model::ServerAudit,
    /// The argument key fragments its audit records redact: the gateway's
    /// and the server's `redact_keys`, lower-cased, made once here.
    pub redact_fragments: Vec<String>,
    /// Why the credential cannot be injected right now (an OAuth token the
    /// control plane could not obtain): calls get 503 instead.
    pub credential_unavailable: Option<Arc<str>>,
    /// Per-user delegated OAuth: each caller's own token, injected by
    /// principal name; a caller without one is refused (never another's).
    pub delegated: Option<Arc<crate::delegated::DelegatedAuth>>,
}

impl Snapshot {
    /// Looks up a token by the SHA-256 digest of its text.
    pub fn authenticate(&self, digest: &[u8; 32]) -> Option<Caller> {
        self.tokens.get(digest).copied()
    }

    /// Principal details for a caller.
    pub fn principal(&self, caller: &Caller) -> &PrincipalInfo {
        &self.principals[caller.principal as usize]
    }

    /// A routable (approved) server by name.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.server_index
            .get(name)
            .map(|&id| &self.upstreams[id as usize])
    }

    /// A routable server by id.
    pub fn upstream_by_id(&self, id: ServerId) -> &Upstream {
        &self.upstreams[id as usize]
    }

    /// The class's grant on a server.
    pub fn grant(&self, class: ClassId, server: ServerId) -> &Grant {
        &self.classes.get(class).grants[server as usize]
    }

    /// May the class use the server at all (non-tool methods)?
    pub fn can_access(&self, class: ClassId, server: ServerId) -> bool {
        matches!(self.grant(class, server), Grant::Tools(_))
    }

    /// May the class call `tool` on the server? (Granted, and offered.)
    pub fn can_call(&self, class: ClassId, server: ServerId, tool: &str) -> bool {
        let offered = &self.upstreams[server as usize].offered;
        if offered.as_ref().is_some_and(|o| !o.contains(tool)) {
            return false;
        }
        match self.grant(class, server) {
            Grant::None => false,
            Grant::Tools(rules) => rules.allows(tool),
        }
    }

    /// Number of policy classes (principals with equal grants share one),
    /// including those built for JWT callers so far.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Number of routable servers.
    pub fn upstream_count(&self) -> usize {
        self.upstreams.len()
    }
}

/// SHA-256 of a token's text: the only form in which tokens are stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}
