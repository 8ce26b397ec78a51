//! Keeps every connected user's access token fresh, and publishes the
//! tokens proxies inject.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flow::{self, Client, TokenError, Tokens};
use crate::registry::Registry;

/// How often connections are checked for tokens to refresh.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Wait after a failed refresh before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// An HTTP client for token endpoints.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Stores a successful token response for `(server, principal)`: the
/// refresh token sealed (a rotated one replaces the old), the access token
/// in memory. Errors name the store failure, never a token.
pub fn store_tokens(
    registry: &Registry,
    server: &str,
    principal: &str,
    tokens: Tokens,
) -> Result<(), String> {
    if let Some(refresh) = &tokens.refresh_token {
        registry
            .store()
            .put_delegated(server, principal, Some(refresh))
            .map_err(|e| e.to_string())?;
    }
    registry
        .delegated()
        .store_access(server, principal, tokens.access_token, tokens.lifetime);
    Ok(())
}

/// Revokes `rows` (`(server, principal, refresh token)`, already deleted
/// here) at their servers' revocation endpoints; failures are logged.
pub async fn revoke_all(registry: Arc<Registry>, rows: Vec<(String, String, String)>) {
    let http = http_client();
    for (server, principal, token) in rows {
        let Some(c) = flow::client(&registry, &server) else {
            continue;
        };
        match flow::revoke(&http, &c, &token).await {
            Ok(()) if c.revocation_url.is_some() => {
                tracing::info!(server, principal, "delegated refresh token revoked")
            }
            Ok(()) => {}
            Err(why) => {
                tracing::warn!(server, principal, reason = %why, "cannot revoke a delegated refresh token")
            }
        }
    }
}

/// Refreshes tokens for as long as the control plane runs.
pub async fn refresh_loop(registry: Arc<Registry>) {
    let http = http_client();
    let mut live = BTreeMap::new();
    // The first snapshot was built before the connect URL was known.
    let mut first = true;
    loop {
        let clients: HashMap<String, Client> = flow::clients(&registry)
            .into_iter()
            .map(|c| (c.server.clone(), c))
            .collect();
        if !clients.is_empty() {
            match registry.store().delegated() {
                Ok(rows) => {
                    let disabled = disabled_principals(&registry);
                    for (server, principal, refresh_token) in rows {
                        if disabled.contains(&principal) {
                            // Disabled in config/ (the API deletes at once),
                            // or disabled while connecting.
                            offboard(&registry, &principal);
                            let row = vec![(server, principal, refresh_token)];
                            revoke_all(registry.clone(), row).await;
                            continue;
                        }
                        if let Some(c) = clients.get(&server) {
                            if due(&registry, &server, &principal) {
                                refresh_one(&registry, &http, c, &principal, &refresh_token).await;
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read delegated OAuth connections"),
            }
        }
        // Publish when the set of live tokens changed (new, refreshed, expired).
        let now_live = registry.delegated().current();
        if now_live != live || (first && !clients.is_empty()) {
            first = false;
            live = now_live;
            if let Err(e) = registry.republish() {
                tracing::error!(error = %e, "cannot publish the refreshed delegated tokens");
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Is `refresh_token` still the one stored for `(server, principal)`?
fn still_stored(registry: &Registry, server: &str, principal: &str, refresh_token: &str) -> bool {
    registry.store().delegated().is_ok_and(|rows| {
        rows.iter()
            .any(|(s, p, t)| s == server && p == principal && t == refresh_token)
    })
}

/// Principals disabled in the published catalog or through the API.
pub(crate) fn disabled_principals(registry: &Registry) -> std::collections::HashSet<String> {
    let current = registry.current();
    let mut disabled: std::collections::HashSet<String> = current
        .document
        .sources
        .iter()
        .flat_map(|(_, f)| &f.principals)
        .filter(|p| p.disabled)
        .map(|p| p.name.clone())
        .collect();
    // Disabled through the API, including names only an IdP signs in.
    if let Ok(state) = registry.store().state() {
        disabled.extend(state.disabled);
    }
    disabled
}

/// Deletes every delegated token of a disabled principal.
fn offboard(registry: &Registry, principal: &str) {
    match registry.store().delete_delegated(principal) {
        Ok(n) => tracing::info!(
            principal,
            deleted = n,
            "disabled principal: delegated OAuth tokens deleted"
        ),
        Err(e) => {
            tracing::error!(principal, error = %e, "cannot delete a disabled principal's delegated tokens")
        }
    }
    registry.delegated().forget_principal(principal);
}

/// No access token, or less than a fifth of its lifetime (at least 30 s)
/// left; not waiting after a failure; not refused for good.
fn due(registry: &Registry, server: &str, principal: &str) -> bool {
    let now = Instant::now();
    let all = registry.delegated().connections();
    let Some(c) = all.get(&(server.to_string(), principal.to_string())) else {
        return true;
    };
    if c.needs_reconnect || c.retry_at.is_some_and(|r| r > now) {
        return false;
    }
    let margin = (c.lifetime / 5).max(Duration::from_secs(30));
    c.expires_at.is_none_or(|e| e <= now + margin)
}

async fn refresh_one(
    registry: &Registry,
    http: &reqwest::Client,
    c: &Client,
    principal: &str,
    refresh_token: &str,
) {
    let outcome = match flow::refresh(http, c, refresh_token).await {
        Ok(tokens) => store_tokens(registry, &c.server, principal, tokens)
            .map_err(|m| TokenError::Other(format!("cannot store the refreshed token: {m}"))),
        Err(e) => Err(e),
    };
    let why = match outcome {
        Ok(()) => {
            tracing::info!(server = %c.server, principal, "delegated OAuth token refreshed");
            return;
        }
        Err(e) => e,
    };
    registry.metrics().credential_refresh_failed(&c.server);
    let refused = matches!(why, TokenError::InvalidGrant(_));
    if refused && !still_stored(registry, &c.server, principal, refresh_token) {
        // The user reconnected meanwhile: the refused token was an old one.
        return;
    }
    if refused {
        // A dead refresh token: drop it; the user must connect again.
        if let Err(e) = registry.store().put_delegated(&c.server, principal, None) {
            tracing::error!(server = %c.server, principal, error = %e, "cannot delete a refused refresh token");
        }
    }
    let mut all = registry.delegated().connections();
    let conn = all
        .entry((c.server.clone(), principal.to_string()))
        .or_default();
    conn.failures += 1;
    conn.retry_at = Some(Instant::now() + RETRY_AFTER);
    conn.needs_reconnect = refused;
    conn.last_error = Some(if refused {
        format!("{why}: the refresh token was refused, the user must connect again")
    } else {
        why.to_string()
    });
    tracing::warn!(
        server = %c.server,
        principal,
        reason = %why,
        failures = conn.failures,
        needs_reconnect = refused,
        "delegated OAuth token refresh failed"
    );
}
