//! The OAuth 2.0 authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636
//! S256) and the refresh grant (RFC 6749 §6), as the control plane's client.

use std::time::Duration;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::Engine;
use catalog::model::UpstreamAuth;
use sha2::{Digest, Sha256};

use crate::registry::Registry;

/// Lifetime assumed when the token response gives none.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A delegated server's OAuth client settings, with its secret resolved.
#[derive(Debug, Clone)]
pub struct Client {
    /// Server name.
    pub server: String,
    /// Authorization endpoint.
    pub authorization_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (`None`: public client), or why it cannot be read.
    pub client_secret: Option<Result<String, String>>,
    /// Scopes.
    pub scope: Option<String>,
    /// Revocation endpoint (RFC 7009).
    pub revocation_url: Option<String>,
}

/// The delegated server `server` as currently published, if it is one.
pub fn client(registry: &Registry, server: &str) -> Option<Client> {
    clients(registry).into_iter().find(|c| c.server == server)
}

/// Every server with delegated auth in the current snapshot.
pub fn clients(registry: &Registry) -> Vec<Client> {
    let current = registry.current();
    let mut out = Vec::new();
    for (_, doc) in &current.document.sources {
        for s in &doc.servers {
            if let UpstreamAuth::OauthAuthorizationCode {
                authorization_url,
                token_url,
                client_id,
                client_secret,
                scope,
                revocation_url,
            } = &s.auth
            {
                out.push(Client {
                    server: s.name.clone(),
                    authorization_url: authorization_url.clone(),
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.as_ref().map(|r| registry.resolve_secret(r)),
                    scope: scope.clone(),
                    revocation_url: revocation_url.clone(),
                });
            }
        }
    }
    out
}

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 code challenge of `verifier`: BASE64URL(SHA256(verifier)).
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The authorization request URL the user's browser is sent to.
pub fn authorize_url(
    c: &Client,
    redirect_uri: &str,
    state: &str,
    verifier: &str,
) -> Result<String, String> {
    let mut url =
        reqwest::Url::parse(&c.authorization_url).map_err(|e| format!("authorization_url: {e}"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &c.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", &challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(scope) = &c.scope {
            q.append_pair("scope", scope);
        }
    }
    Ok(url.into())
}

/// A successful token response.
#[derive(Debug)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// Its lifetime.
    pub lifetime: Duration,
    /// A (new) refresh token, when the server issued one.
    pub refresh_token: Option<String>,
}

/// Why a token request failed. Messages carry the endpoint's status and
/// OAuth error code, never a token or secret.
#[derive(Debug)]
pub enum TokenError {
    /// The grant was refused for good (`invalid_grant`): the user must
    /// connect again.
    InvalidGrant(String),
    /// Anything else (unreachable, 5xx, malformed): worth retrying.
    Other(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::InvalidGrant(m) | TokenError::Other(m) => f.write_str(m),
        }
    }
}

/// Exchanges an authorization code (with its PKCE verifier).
pub async fn exchange_code(
    http: &reqwest::Client,
    c: &Client,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, TokenError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("client_id", c.client_id.as_str()),
    ];
    token_request(http, c, &form).await
}

/// Refreshes with `refresh_token`.
pub async fn refresh(
    http: &reqwest::Client,
    c: &Client,
    refresh_token: &str,
) -> Result<Tokens, TokenError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", c.client_id.as_str()),
    ];
    token_request(http, c, &form).await
}

/// Revokes `refresh_token` at the revocation endpoint (RFC 7009), if the
/// server has one. Errors name the status, never the token.
pub async fn revoke(http: &reqwest::Client, c: &Client, refresh_token: &str) -> Result<(), String> {
    let Some(url) = &c.revocation_url else {
        return Ok(());
    };
    let form = [
        ("token", refresh_token),
        ("token_type_hint", "refresh_token"),
        ("client_id", c.client_id.as_str()),
    ];
    let mut req = http.post(url).form(&form);
    match &c.client_secret {
        None => {}
        Some(Ok(secret)) => req = req.basic_auth(&c.client_id, Some(secret)),
        Some(Err(m)) => return Err(format!("client secret: {m}")),
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("revocation endpoint unreachable: {}", e.without_url()))?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("revocation endpoint answered {s}")),
    }
}

async fn token_request(
    http: &reqwest::Client,
    c: &Client,
    form: &[(&str, &str)],
) -> Result<Tokens, TokenError> {
    let mut req = http.post(&c.token_url).form(form);
    match &c.client_secret {
        None => {}
        Some(Ok(secret)) => req = req.basic_auth(&c.client_id, Some(secret)),
        Some(Err(m)) => return Err(TokenError::Other(format!("client secret: {m}"))),
    }
    let resp = req.send().await.map_err(|e| {
        TokenError::Other(format!("token endpoint unreachable: {}", e.without_url()))
    })?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let code = body["error"].as_str().unwrap_or("no OAuth error code");
        let message = format!("token endpoint answered {status} ({code})");
        return Err(if code == "invalid_grant" {
            TokenError::InvalidGrant(message)
        } else {
            TokenError::Other(message)
        });
    }
    let access_token = body["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::Other("the token response has no access_token".into()))?;
    if let Some(kind) = body["token_type"].as_str() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Other(format!(
                "token_type {kind:?} is not Bearer"
            )));
        }
    }
    Ok(Tokens {
        access_token: access_token.to_string(),
        lifetime: body["expires_in"]
            .as_u64()
            .map_or(DEFAULT_LIFETIME, Duration::from_secs),
        refresh_token: body["refresh_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    })
}
