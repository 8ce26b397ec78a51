//! Upstream OAuth 2.0 client credentials: the control plane obtains each
//! server's access token, refreshes it before it expires, and ships it in the
//! snapshot (`oauth:<server>`); proxies inject it. The client secret stays
//! here. A failed refresh is logged, counted
//! (`toolgate_cp_credential_refresh_failures_total`) and shown on the server
//! (`GET /v1/servers/{name}`); the last token keeps serving until it expires.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use catalog::model::UpstreamAuth;
use serde::Serialize;

use crate::registry::Registry;

/// How often servers are checked for tokens to fetch or refresh.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Wait after a failed fetch before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Lifetime assumed when the token response gives none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// One server's token state.
#[derive(Debug, Default)]
struct TokenState {
    access_token: Option<String>,
    expires_at: Option<Instant>,
    lifetime: Duration,
    refreshed_unix: Option<u64>,
    last_error: Option<String>,
    failures: u64,
    retry_at: Option<Instant>,
    /// The settings the token was obtained with (a change refetches).
    settings: String,
}

/// What an operator sees of a server's OAuth credential. Never the token.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CredentialStatus {
    /// Seconds until the current token expires (absent: no valid token).
    pub token_expires_in_s: Option<u64>,
    /// When the token was last obtained (Unix seconds).
    pub refreshed_at: Option<u64>,
    /// The last refresh failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
}

/// Access tokens by server.
#[derive(Debug, Default)]
pub struct OauthTokens {
    servers: Mutex<HashMap<String, TokenState>>,
}

impl OauthTokens {
    /// Unexpired tokens by server, for the snapshot document.
    pub fn current(&self) -> BTreeMap<String, String> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, t)| t.expires_at.is_some_and(|e| e > now))
            .filter_map(|(s, t)| Some((s.clone(), t.access_token.clone()?)))
            .collect()
    }

    /// The credential status of `server`, if it uses client credentials.
    pub fn status(&self, server: &str) -> Option<CredentialStatus> {
        let now = Instant::now();
        self.lock().get(server).map(|t| CredentialStatus {
            token_expires_in_s: t
                .expires_at
                .filter(|e| *e > now)
                .map(|e| (e - now).as_secs()),
            refreshed_at: t.refreshed_unix,
            last_error: t.last_error.clone(),
            consecutive_failures: t.failures,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenState>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A server that authenticates with client credentials.
struct Client {
    server: String,
    token_url: String,
    client_id: String,
    client_secret: Result<String, String>,
    scope: Option<String>,
    audience: Option<String>,
}

impl Client {
    /// What, when changed, invalidates the current token (no secret in it).
    fn settings(&self) -> String {
        format!(
            "{} {} {:?} {:?} {}",
            self.token_url,
            self.client_id,
            self.scope,
            self.audience,
            self.client_secret.as_ref().map_or(0, |s| s.len())
        )
    }
}

/// Fetches and refreshes tokens for as long as the control plane runs.
pub async fn refresh_loop(registry: Arc<Registry>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut live: Vec<String> = Vec::new();
    loop {
        let mut changed = false;
        for client in clients(&registry) {
            if due(registry.oauth(), &client) {
                changed |= refresh(&registry, &http, &client).await;
            }
        }
        // A token that expired unrefreshed leaves the snapshot: its server
        // answers 503 rather than sending a dead token upstream.
        let now_live: Vec<String> = registry.oauth().current().into_keys().collect();
        changed |= now_live != live;
        live = now_live;
        if changed {
            if let Err(e) = registry.republish() {
                tracing::error!(error = %e, "cannot publish the refreshed upstream tokens");
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

fn clients(registry: &Registry) -> Vec<Client> {
    let current = registry.current();
    let mut out = Vec::new();
    for (_, doc) in &current.document.sources {
        for server in &doc.servers {
            if let UpstreamAuth::OauthClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } = &server.auth
            {
                out.push(Client {
                    server: server.name.clone(),
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: registry.resolve_secret(client_secret),
                    scope: scope.clone(),
                    audience: audience.clone(),
                });
            }
        }
    }
    out
}

/// No token, settings changed, or less than a fifth of its lifetime (at
/// least 30 s) left; and not waiting after a failure.
fn due(tokens: &OauthTokens, client: &Client) -> bool {
    let now = Instant::now();
    let servers = tokens.lock();
    let Some(t) = servers.get(&client.server) else {
        return true;
    };
    if t.retry_at.is_some_and(|r| r > now) {
        return false;
    }
    let margin = (t.lifetime / 5).max(Duration::from_secs(30));
    t.settings != client.settings() || t.expires_at.is_none_or(|e| e <= now + margin)
}

/// One fetch; true when a new token was stored.
async fn refresh(registry: &Registry, http: &reqwest::Client, client: &Client) -> bool {
    let fetched = fetch(http, client).await;
    let mut servers = registry.oauth().lock();
    let t = servers.entry(client.server.clone()).or_default();
    match fetched {
        Ok((token, lifetime)) => {
            t.access_token = Some(token);
            t.expires_at = Some(Instant::now() + lifetime);
            t.lifetime = lifetime;
            t.refreshed_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs());
            t.last_error = None;
            t.failures = 0;
            t.retry_at = None;
            t.settings = client.settings();
            tracing::info!(server = %client.server, expires_in_s = lifetime.as_secs(), "upstream OAuth token refreshed");
            true
        }
        Err(why) => {
            t.failures += 1;
            t.retry_at = Some(Instant::now() + RETRY_AFTER);
            t.last_error = Some(why.clone());
            registry.metrics().credential_refresh_failed(&client.server);
            tracing::warn!(server = %client.server, reason = %why, failures = t.failures, "upstream OAuth token refresh failed");
            false
        }
    }
}

/// The token endpoint's answer: `(access_token, lifetime)`. Errors name the
/// endpoint's status and OAuth error code, never a secret or token.
async fn fetch(http: &reqwest::Client, c: &Client) -> Result<(String, Duration), String> {
    let secret = c
        .client_secret
        .as_ref()
        .map_err(|m| format!("client secret: {m}"))?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &c.scope {
        form.push(("scope", scope));
    }
    if let Some(audience) = &c.audience {
        form.push(("audience", audience));
    }
    let resp = http
        .post(&c.token_url)
        .basic_auth(&c.client_id, Some(secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("token endpoint unreachable: {}", e.without_url()))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let code = body["error"].as_str().unwrap_or("no OAuth error code");
        return Err(format!("token endpoint answered {status} ({code})"));
    }
    let token = body["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the token response has no access_token")?;
    if let Some(kind) = body["token_type"].as_str() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("token_type {kind:?} is not Bearer"));
        }
    }
    let lifetime = body["expires_in"]
        .as_u64()
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok((token.to_string(), lifetime))
}
