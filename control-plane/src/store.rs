//! Runtime state of the registry, behind one small interface ([`Store`]).
//!
//! `config/` stays the operator's source of truth for the declarative
//! catalog; the store holds what changes at run time: tokens, approvals,
//! API-registered principals and servers, secrets, and the change log. The
//! SQLite implementation is embedded (WAL, versioned migrations); another
//! implementation (PostgreSQL) can serve several control-plane replicas.

use catalog::model::{ApprovalStatus, Policy, PrincipalKind, Server, Team};
use serde::Serialize;

mod sqlite;
pub use sqlite::SqliteStore;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("store: {0}")]
    Db(#[from] rusqlite::Error),
    /// The change would leave an invalid catalog; nothing was applied.
    #[error("{0}")]
    Rejected(catalog::ConfigErrors),
    /// The request names something that does not exist or already exists.
    #[error("{0}")]
    Conflict(String),
    /// Stored data could not be read back.
    #[error("store: corrupt data: {0}")]
    Corrupt(String),
    /// Secrets cannot be sealed or opened (no or wrong master key).
    #[error("secrets: {0}")]
    Sealed(String),
}

/// A principal created through the API.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPrincipal {
    /// Name.
    pub name: String,
    /// User or agent.
    pub kind: PrincipalKind,
    /// Teams.
    pub teams: Vec<String>,
}

/// A gateway token issued through the API (digest only).
#[derive(Debug, Clone, Serialize)]
pub struct StoredToken {
    /// Token id (for revocation).
    pub id: i64,
    /// Owner.
    pub principal: String,
    /// Label.
    pub name: String,
    /// Hex SHA-256 of the token text.
    pub sha256: String,
    /// When issued.
    pub created_at: String,
    /// When revoked, if revoked.
    pub revoked_at: Option<String>,
}

/// Everything at run time that shapes the next snapshot.
#[derive(Debug, Clone, Default)]
pub struct RuntimeState {
    /// API-created principals.
    pub principals: Vec<StoredPrincipal>,
    /// Disabled principal names (from config/ or the API).
    pub disabled: Vec<String>,
    /// All tokens, revoked ones included.
    pub tokens: Vec<StoredToken>,
    /// API-created teams.
    pub teams: Vec<Team>,
    /// API-created policies.
    pub policies: Vec<Policy>,
    /// API-registered servers.
    pub servers: Vec<Server>,
    /// Approval decisions by server name.
    pub statuses: Vec<(String, ApprovalStatus)>,
    /// Secret values by name.
    pub secrets: Vec<(String, String)>,
    /// Latest discovered tools by server: `(server, name, fingerprint, definition JSON)`.
    pub discovered: Vec<(String, String, String, String)>,
    /// Pinned (approved) tools: `(server, name, fingerprint)`.
    pub pinned: Vec<(String, String, String)>,
}

/// One recorded mutation.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Sequence number.
    pub id: i64,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Who (the admin credential's name).
    pub actor: String,
    /// What kind of change.
    pub action: String,
    /// What it applied to.
    pub target: String,
    /// Details (never secret values).
    pub detail: String,
}

/// A change to runtime state.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Create a principal.
    CreatePrincipal(StoredPrincipal),
    /// Disable or re-enable a principal (offboarding).
    SetDisabled {
        /// Principal name.
        name: String,
        /// Disabled?
        disabled: bool,
    },
    /// Issue a token (its digest).
    IssueToken {
        /// Owner.
        principal: String,
        /// Label.
        name: String,
        /// Hex SHA-256 of the token.
        sha256: String,
    },
    /// Revoke a token by id.
    RevokeToken {
        /// Token id.
        id: i64,
    },
    /// Create a team.
    CreateTeam(Team),
    /// Create or replace a policy.
    PutPolicy(Box<Policy>),
    /// Register a server.
    RegisterServer(Box<Server>),
    /// Replace the definition of an API-registered server.
    UpdateServer(Box<Server>),
    /// Approve, deprecate, block or reset a server.
    SetStatus {
        /// Server name.
        server: String,
        /// New status.
        status: ApprovalStatus,
    },
    /// Replace a server's discovered tools: `(name, fingerprint, definition JSON)`.
    RecordDiscovery {
        /// Server name.
        server: String,
        /// The tools found.
        tools: Vec<(String, String, String)>,
    },
    /// Set or rotate a secret.
    SetSecret {
        /// Secret name (referenced as `store:NAME`).
        name: String,
        /// The value (never logged or returned).
        value: String,
    },
}

impl Mutation {
    fn describe(&self) -> (&'static str, String, String) {
        match self {
            Mutation::CreatePrincipal(p) => (
                "principal.create",
                p.name.clone(),
                format!("kind={:?} teams={:?}", p.kind, p.teams),
            ),
            Mutation::SetDisabled { name, disabled } => (
                "principal.disable",
                name.clone(),
                format!("disabled={disabled}"),
            ),
            Mutation::IssueToken {
                principal, name, ..
            } => ("token.issue", principal.clone(), format!("name={name}")),
            Mutation::RevokeToken { id } => ("token.revoke", id.to_string(), String::new()),
            Mutation::RegisterServer(s) => (
                "server.register",
                s.name.clone(),
                format!("endpoint={}", s.endpoint),
            ),
            Mutation::UpdateServer(s) => (
                "server.update",
                s.name.clone(),
                format!("endpoint={}", s.endpoint),
            ),
            Mutation::CreateTeam(t) => ("team.create", t.name.clone(), String::new()),
            Mutation::PutPolicy(p) => ("policy.put", p.name.clone(), String::new()),
            Mutation::SetStatus { server, status } => (
                "server.status",
                server.clone(),
                format!("status={status:?}"),
            ),
            Mutation::SetSecret { name, .. } => ("secret.set", name.clone(), String::new()),
            Mutation::RecordDiscovery { server, tools } => (
                "server.discover",
                server.clone(),
                format!("{} tools", tools.len()),
            ),
        }
    }
}

/// What a mutation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report.
    Done,
    /// The id of an issued token.
    TokenId(i64),
}

/// The interface the registry needs from a store.
pub trait Store: Send + Sync {
    /// The current runtime state.
    fn state(&self) -> Result<RuntimeState, StoreError>;
    /// Applies `mutation` atomically if `check` accepts the resulting state,
    /// records it in the change log, and bumps the snapshot version. Nothing
    /// is applied when anything fails.
    fn apply(
        &self,
        actor: &str,
        mutation: &Mutation,
        check: &dyn Fn(&RuntimeState, u64) -> Result<(), catalog::ConfigErrors>,
    ) -> Result<(Outcome, u64), StoreError>;
    /// Bumps and returns the snapshot version (config edits).
    fn next_version(&self) -> Result<u64, StoreError>;
    /// The latest changes, newest first.
    fn changes(&self, limit: usize) -> Result<Vec<Change>, StoreError>;
    /// Stores (sealed) or, with `None`, deletes a user's delegated OAuth
    /// refresh token ([`crate::delegated`]).
    fn put_delegated(
        &self,
        _server: &str,
        _principal: &str,
        _refresh_token: Option<&str>,
    ) -> Result<(), StoreError> {
        Err(StoreError::Sealed(
            "this store keeps no delegated tokens".into(),
        ))
    }
    /// Every delegated refresh token: `(server, principal, token)`.
    fn delegated(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(Vec::new())
    }
    /// Deletes every delegated refresh token of `principal` (offboarding).
    fn delete_delegated(&self, _principal: &str) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// Looks up whether a token row exists by id (used to report 404 vs 409).
pub fn token_exists(state: &RuntimeState, id: i64) -> bool {
    state.tokens.iter().any(|t| t.id == id)
}
