//! Per-user delegated OAuth for upstream servers
//! (`auth: {type: oauth-authorization-code, ...}`).
//!
//! Design:
//! - A user connects once: `GET /v1/connect/{server}` with their gateway
//!   token (a PAT or an identity provider's JWT, checked as a proxy would,
//!   and the server must be granted to them) creates a single-use `state`
//!   and a PKCE S256 verifier, kept in memory for [`FLOW_TTL`] (a control
//!   plane restart abandons flows in progress, never connections), and
//!   answers 302 to the authorization server (`toolgate connect SERVER`
//!   prints that URL to open). The redirect URI is
//!   `{public URL}/v1/connect/callback` ([`Delegated::set_public_url`];
//!   default the listen address).
//!   `GET /v1/connect/callback?code&state` takes the state (once), exchanges
//!   the code with the verifier at the token endpoint, stores the refresh
//!   token sealed (AES-256-GCM bound to `delegated:{server}:{principal}`, its
//!   own table in the store) and keeps the access token in memory only.
//! - The refresher ([`refresh::refresh_loop`]) refreshes each access token
//!   with a fifth of its lifetime (at least 30 s) left, storing a rotated
//!   refresh token; `invalid_grant` deletes the refresh token and marks the
//!   connection as needing reconnection. Failures are logged (never a
//!   token), counted in `toolgate_cp_credential_refresh_failures_total` and
//!   shown by `GET /v1/servers/{name}` and `/v1/servers/{name}/connections`.
//! - Proxies receive only unexpired access tokens by principal name
//!   (`SnapshotDocument::delegated`, with the connect URL), never for a
//!   disabled principal; they inject the caller's own token and refuse a
//!   caller without one (JSON-RPC error naming the connect URL).
//! - Disabling a principal deletes their delegated tokens (offboarding in
//!   one action; `disabled: true` in `config/` on the refresher's next pass)
//!   and the next snapshot stops shipping them. A 403 rather than 401 for
//!   an unconnected caller: their gateway token is valid, and a 401 would
//!   send MCP clients into the gateway's own sign-in.

pub mod flow;
pub mod refresh;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How long a started connection (state + PKCE verifier) stays valid.
pub const FLOW_TTL: Duration = Duration::from_secs(600);

/// Most connections in progress at once, and per user.
const MAX_PENDING: usize = 10_000;
const MAX_PENDING_PER_USER: usize = 20;

/// A connection started at `GET /v1/connect/{server}`, awaiting its callback.
#[derive(Debug)]
pub struct PendingFlow {
    /// Who connects.
    pub principal: String,
    /// To which server.
    pub server: String,
    /// The PKCE code verifier (RFC 7636).
    pub verifier: String,
    /// When the flow started.
    pub started: Instant,
}

/// One user's connection to one server (in memory; the refresh token is in
/// the store).
#[derive(Debug, Default)]
pub(crate) struct Connection {
    pub(crate) access_token: Option<String>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) lifetime: Duration,
    pub(crate) refreshed_unix: Option<u64>,
    pub(crate) last_error: Option<String>,
    pub(crate) failures: u64,
    pub(crate) retry_at: Option<Instant>,
    /// The authorization server refused the refresh token: the user must
    /// connect again.
    pub(crate) needs_reconnect: bool,
}

/// What an operator sees of one user's connection. Never a token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectionStatus {
    /// The user.
    pub principal: String,
    /// Seconds until the current access token expires (absent: none valid).
    pub token_expires_in_s: Option<u64>,
    /// When the access token was last obtained (Unix seconds).
    pub refreshed_at: Option<u64>,
    /// The last refresh failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// The user must connect again (refresh token refused).
    pub needs_reconnect: bool,
}

/// Delegated OAuth state of the control plane.
#[derive(Debug, Default)]
pub struct Delegated {
    pending: Mutex<HashMap<String, PendingFlow>>,
    /// By `(server, principal)`.
    connections: Mutex<BTreeMap<(String, String), Connection>>,
    public_url: OnceLock<String>,
    /// The published document compiled (to authenticate users as a proxy
    /// would), by version.
    compiled: Mutex<Option<(u64, Arc<catalog::Snapshot>)>>,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

impl Delegated {
    /// Sets the control plane's external base URL (first call wins), used
    /// for the OAuth redirect URI and the connect URL shown to users.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_string());
    }

    /// The control plane's external base URL, if known.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.get().map(String::as_str)
    }

    /// Where users connect their account to `server`.
    pub fn connect_url(&self, server: &str) -> String {
        format!("{}/v1/connect/{server}", self.public_url().unwrap_or(""))
    }

    /// The OAuth redirect URI registered for the control plane.
    pub fn redirect_uri(&self) -> String {
        format!("{}/v1/connect/callback", self.public_url().unwrap_or(""))
    }

    /// `published` compiled, once per version.
    pub fn snapshot(
        &self,
        published: &crate::registry::Published,
    ) -> Result<Arc<catalog::Snapshot>, String> {
        let mut compiled = lock(&self.compiled);
        if let Some((version, snapshot)) = compiled.as_ref() {
            if *version == published.version {
                return Ok(snapshot.clone());
            }
        }
        let snapshot = Arc::new(published.document.compile().map_err(|e| e.to_string())?);
        *compiled = Some((published.version, snapshot.clone()));
        Ok(snapshot)
    }

    /// Remembers a started flow under its `state`; false when too many are
    /// in progress (a user cannot make the control plane hold unbounded state).
    pub fn start(&self, state: String, flow: PendingFlow) -> bool {
        let mut pending = lock(&self.pending);
        pending.retain(|_, f| f.started.elapsed() < FLOW_TTL);
        let mine = pending
            .values()
            .filter(|f| f.principal == flow.principal)
            .count();
        if pending.len() >= MAX_PENDING || mine >= MAX_PENDING_PER_USER {
            return false;
        }
        pending.insert(state, flow);
        true
    }

    /// Takes the flow of `state`: single use, and only within [`FLOW_TTL`].
    pub fn take(&self, state: &str) -> Option<PendingFlow> {
        lock(&self.pending)
            .remove(state)
            .filter(|f| f.started.elapsed() < FLOW_TTL)
    }

    /// Records a fresh access token for `(server, principal)`.
    pub(crate) fn store_access(
        &self,
        server: &str,
        principal: &str,
        token: String,
        lifetime: Duration,
    ) {
        let mut all = self.connections();
        let c = all
            .entry((server.to_string(), principal.to_string()))
            .or_default();
        *c = Connection {
            access_token: Some(token),
            expires_at: Some(Instant::now() + lifetime),
            lifetime,
            refreshed_unix: unix_now(),
            ..Connection::default()
        };
    }

    /// Forgets `(server, principal)`'s access token and status.
    pub fn forget(&self, server: &str, principal: &str) {
        self.connections()
            .remove(&(server.to_string(), principal.to_string()));
    }

    /// Forgets every connection of `principal`.
    pub fn forget_principal(&self, principal: &str) {
        self.connections().retain(|(_, p), _| p != principal);
    }

    /// Unexpired access tokens by server, then principal.
    pub fn current(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let now = Instant::now();
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ((server, principal), c) in self.connections().iter() {
            if let (Some(token), true) = (&c.access_token, c.expires_at.is_some_and(|e| e > now)) {
                out.entry(server.clone())
                    .or_default()
                    .insert(principal.clone(), token.clone());
            }
        }
        out
    }

    /// The connections to `server` as an operator sees them.
    pub fn statuses(&self, server: &str) -> Vec<ConnectionStatus> {
        let now = Instant::now();
        self.connections()
            .iter()
            .filter(|((s, _), _)| s == server)
            .map(|((_, principal), c)| ConnectionStatus {
                principal: principal.clone(),
                token_expires_in_s: c
                    .expires_at
                    .filter(|e| *e > now)
                    .map(|e| (e - now).as_secs()),
                refreshed_at: c.refreshed_unix,
                last_error: c.last_error.clone(),
                consecutive_failures: c.failures,
                needs_reconnect: c.needs_reconnect,
            })
            .collect()
    }

    pub(crate) fn connections(&self) -> MutexGuard<'_, BTreeMap<(String, String), Connection>> {
        lock(&self.connections)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Puts the unexpired access tokens of every delegated server into `doc`
/// (never a disabled principal's), with the URL to connect at.
pub(crate) fn ship(
    d: &Delegated,
    doc: &mut catalog::SnapshotDocument,
    state: &crate::store::RuntimeState,
) {
    let disabled = |name: &str| {
        state.disabled.iter().any(|n| n == name)
            || doc
                .sources
                .iter()
                .flat_map(|(_, f)| &f.principals)
                .any(|p| p.name == name && p.disabled)
    };
    let mut current = d.current();
    let mut shipped = BTreeMap::new();
    for (_, file) in &doc.sources {
        for s in &file.servers {
            if !matches!(
                s.auth,
                catalog::model::UpstreamAuth::OauthAuthorizationCode { .. }
            ) {
                continue;
            }
            let tokens = current
                .remove(&s.name)
                .unwrap_or_default()
                .into_iter()
                .filter(|(p, _)| !disabled(p))
                .collect();
            shipped.insert(
                s.name.clone(),
                catalog::delegated::DelegatedTokens {
                    connect_url: d.connect_url(&s.name),
                    tokens,
                },
            );
        }
    }
    doc.delegated = shipped;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(principal: &str) -> PendingFlow {
        PendingFlow {
            principal: principal.into(),
            server: "tracker".into(),
            verifier: flow::random_token(),
            started: Instant::now(),
        }
    }

    #[test]
    fn a_state_is_taken_once() {
        let d = Delegated::default();
        assert!(d.start("s1".into(), flow("alice")));
        assert!(d.take("forged").is_none());
        assert_eq!(d.take("s1").map(|f| f.principal), Some("alice".into()));
        assert!(d.take("s1").is_none(), "single use");
    }

    #[test]
    fn a_user_cannot_pile_up_flows() {
        let d = Delegated::default();
        for i in 0..MAX_PENDING_PER_USER {
            assert!(d.start(format!("a{i}"), flow("alice")));
        }
        assert!(!d.start("one-more".into(), flow("alice")));
        assert!(d.start("b".into(), flow("bob")), "others are not affected");
    }

    #[test]
    fn pkce_challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            flow::challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = flow::random_token();
        assert_eq!(v.len(), 43, "43 characters: the shortest verifier allowed");
        assert_ne!(v, flow::random_token());
    }
}
