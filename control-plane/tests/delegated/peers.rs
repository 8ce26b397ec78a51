//! The protocol peers: an authorization server that really issues codes
//! (checking the PKCE verifier and redirect URI), expiring access tokens and
//! rotating refresh tokens; an upstream that accepts only its live tokens
//! and records whose arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// The client secret the authorization server expects.
pub const CLIENT_SECRET: &str = "client-secret-delegated-xyz";
/// Access token lifetime.
pub const LIFETIME_S: u64 = 3;

/// An issued authorization code: (user, S256 challenge, redirect_uri).
type Grant = (String, String, String);

/// The authorization server's state.
#[derive(Clone, Default)]
pub struct AuthServer {
    /// code → (user, S256 challenge, redirect_uri).
    pub codes: Arc<Mutex<HashMap<String, Grant>>>,
    /// access token → (user, expiry).
    pub access: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// live refresh token → user (rotated: each use retires it).
    pub refresh: Arc<Mutex<HashMap<String, String>>>,
    /// Every refresh token ever issued (to look for them at rest).
    pub issued_refresh: Arc<Mutex<Vec<String>>>,
    pub counter: Arc<AtomicUsize>,
    pub refreshes: Arc<AtomicUsize>,
    /// Refuse refreshing this user's tokens (`invalid_grant`).
    pub refuse_refresh: Arc<Mutex<Option<String>>>,
    /// Refresh tokens revoked (RFC 7009) by the client.
    pub revoked: Arc<Mutex<Vec<String>>>,
}

impl AuthServer {
    fn issue(&self, user: &str) -> Value {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let (at, rt) = (format!("at-{user}-{n}"), format!("rt-{user}-{n}"));
        let expiry = Instant::now() + Duration::from_secs(LIFETIME_S);
        self.access
            .lock()
            .unwrap()
            .insert(at.clone(), (user.into(), expiry));
        self.refresh.lock().unwrap().insert(rt.clone(), user.into());
        self.issued_refresh.lock().unwrap().push(rt.clone());
        json!({"access_token": at, "token_type": "Bearer", "expires_in": LIFETIME_S, "refresh_token": rt})
    }
}

/// The user signs in (`login`, standing in for the login form) and is sent back with a code.
pub async fn authorize(
    State(a): State<AuthServer>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "toolgate");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["scope"], "tickets");
    let code = format!("code-{}", a.counter.fetch_add(1, Ordering::SeqCst));
    a.codes.lock().unwrap().insert(
        code.clone(),
        (
            q["login"].clone(),
            q["code_challenge"].clone(),
            q["redirect_uri"].clone(),
        ),
    );
    let back = format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]);
    (StatusCode::FOUND, [(header::LOCATION, back)]).into_response()
}

/// RFC 7009: the client revokes a refresh token (authenticated).
pub async fn revoke(
    State(a): State<AuthServer>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("toolgate:{CLIENT_SECRET}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Basic {basic}"))
    {
        return oauth_error("invalid_client");
    }
    a.refresh.lock().unwrap().remove(&f["token"]);
    a.revoked.lock().unwrap().push(f["token"].clone());
    StatusCode::OK.into_response()
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

pub async fn token(
    State(a): State<AuthServer>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("toolgate:{CLIENT_SECRET}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Basic {basic}"))
    {
        return oauth_error("invalid_client");
    }
    match f["grant_type"].as_str() {
        "authorization_code" => {
            let Some((user, challenge, redirect)) = a.codes.lock().unwrap().remove(&f["code"])
            else {
                return oauth_error("invalid_grant");
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            if computed != challenge || f["redirect_uri"] != redirect {
                return oauth_error("invalid_grant");
            }
            Json(a.issue(&user)).into_response()
        }
        "refresh_token" => {
            let Some(user) = a.refresh.lock().unwrap().remove(&f["refresh_token"]) else {
                return oauth_error("invalid_grant");
            };
            if a.refuse_refresh.lock().unwrap().as_deref() == Some(user.as_str()) {
                return oauth_error("invalid_grant");
            }
            a.refreshes.fetch_add(1, Ordering::SeqCst);
            Json(a.issue(&user)).into_response()
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

/// Accepts only live access tokens, and records whose arrived.
pub async fn require_token(
    State((a, seen)): State<(AuthServer, Arc<Mutex<Vec<String>>>)>,
    req: Request,
    next: Next,
) -> Response {
    let user = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| a.access.lock().unwrap().get(t).cloned())
        .filter(|(_, exp)| *exp > Instant::now())
        .map(|(user, _)| user);
    seen.lock()
        .unwrap()
        .push(user.clone().unwrap_or_else(|| "(none)".into()));
    match user {
        Some(_) => next.run(req).await,
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

pub async fn serve_app(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
