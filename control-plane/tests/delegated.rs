//! Per-user delegated OAuth, end to end on loopback: an authorization server
//! that really issues codes (checking the PKCE verifier), expiring access
//! tokens and rotating refresh tokens; an upstream that accepts only live
//! tokens and records whose arrived; the control plane running the connect
//! flow and refreshing; a proxy injecting each caller's own token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve;
use toolgate_control_plane::store::SqliteStore;
use toolgate_proxy::demo::{self, DemoOptions};
use toolgate_proxy::remote::ControlPlane;
use toolgate_proxy::server;

const ADMIN: &str = "admin-token-for-delegated-tests";
const PROXY: &str = "proxy-token-for-delegated-tests";
const ALICE: &str = "tg_alice_delegated_test_token";
const BOB: &str = "tg_bob_delegated_test_token";
const CAROL: &str = "tg_carol_delegated_test_token";
const CLIENT_SECRET: &str = "client-secret-delegated-xyz";
const LIFETIME_S: u64 = 3;

/// An issued authorization code: (user, S256 challenge, redirect_uri).
type Grant = (String, String, String);

/// The authorization server's state.
#[derive(Clone, Default)]
struct AuthServer {
    /// code → (user, S256 challenge, redirect_uri).
    codes: Arc<Mutex<HashMap<String, Grant>>>,
    /// access token → (user, expiry).
    access: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// live refresh token → user (rotated: each use retires it).
    refresh: Arc<Mutex<HashMap<String, String>>>,
    /// Every refresh token ever issued (to look for them at rest).
    issued_refresh: Arc<Mutex<Vec<String>>>,
    counter: Arc<AtomicUsize>,
    refreshes: Arc<AtomicUsize>,
    /// Refuse refreshing this user's tokens (`invalid_grant`).
    refuse_refresh: Arc<Mutex<Option<String>>>,
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
async fn authorize(
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

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

async fn token(
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
async fn require_token(
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

async fn serve_app(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An MCP `initialize` through the proxy as `pat`: status and body.
async fn call(url: &str, pat: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(pat)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

/// Starts a connection as `pat`: the authorization URL the user opens.
async fn start(cp: SocketAddr, pat: &str) -> String {
    let resp = no_redirects()
        .get(format!("http://{cp}/v1/connect/tracker"))
        .bearer_auth(pat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    location(&resp)
}

/// The user signs in at the authorization server as `login`: the callback URL it sends them to.
async fn sign_in(authorize_url: &str, login: &str) -> String {
    let resp = no_redirects()
        .get(format!("{authorize_url}&login={login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    location(&resp)
}

async fn open(url: &str) -> (u16, String) {
    let resp = no_redirects().get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The whole flow: connect `pat`'s principal as `login`.
async fn connect(cp: SocketAddr, pat: &str, login: &str) {
    let callback = sign_in(&start(cp, pat).await, login).await;
    let (status, page) = open(&callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("connected"), "{page}");
}

async fn admin(method: reqwest::Method, cp: SocketAddr, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .request(method, format!("http://{cp}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap_or_default()
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Every byte the control plane keeps on disk.
fn files_text(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_text(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_connect_their_own_accounts_and_each_call_carries_the_callers_token() {
    let auth = AuthServer::default();
    let as_addr = serve_app(
        Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(auth.clone()),
    )
    .await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let upstream = serve_app(
        demo::router(
            DemoOptions {
                token: None,
                json_response: true,
                sessions: true,
            },
            CancellationToken::new(),
        )
        .layer(axum::middleware::from_fn_with_state(
            (auth.clone(), seen.clone()),
            require_token,
        )),
    )
    .await;

    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let write = |name: &str, text: String| std::fs::write(config.join(name), text).unwrap();
    write("client-secret", CLIENT_SECRET.into());
    write("teams.yaml", "teams: [{name: eng}]\n".into());
    write("servers.yaml", format!(
        "servers:\n  - name: tracker\n    owner: eng\n    status: approved\n    endpoint: http://{upstream}/mcp\n    auth: {{type: oauth-authorization-code, authorization_url: 'http://{as_addr}/authorize', token_url: 'http://{as_addr}/token', client_id: toolgate, client_secret: 'file:client-secret', scope: tickets}}\n"));
    let principal = |name: &str, pat: &str| {
        format!("  - {{name: {name}, kind: user, teams: [eng], tokens: [{{name: laptop, sha256: {}}}]}}\n", hex::encode(catalog::token_digest(pat)))
    };
    write(
        "principals.yaml",
        format!(
            "principals:\n{}{}{}",
            principal("alice", ALICE),
            principal("bob", BOB),
            principal("carol", CAROL)
        ),
    );
    write(
        "policies.yaml",
        "policies:\n  - {name: eng, subjects: {teams: [eng]}, allow: [{server: tracker}]}\n".into(),
    );

    let keyring = Keyring::new(MasterKey::parse(&"ef".repeat(32)).unwrap(), vec![]);
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (store, _) = SqliteStore::open(&data.join("toolgate.db"))
        .unwrap()
        .with_keyring(keyring)
        .unwrap();
    let registry = Registry::open(&config, Box::new(store)).unwrap();
    let audit = Arc::new(AuditStore::open(&data.join("audit.db"), 90).unwrap());
    let keys = ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let cp = serve::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        registry,
        audit,
        keys,
        Duration::from_millis(100),
    )
    .unwrap();
    let cp_addr = cp.addr;
    let remote = ControlPlane {
        url: format!("http://{cp_addr}"),
        token: PROXY.into(),
        cache: root.path().join("snapshot.json"),
    };
    let snapshots = Arc::new(ArcSwap::from_pointee(remote.bootstrap().await.unwrap()));
    let follower = tokio::spawn(remote.follow(snapshots.clone()));
    let proxy = server::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), snapshots).unwrap();
    let url = format!("http://{}/mcp/tracker", proxy.addr);
    let connect_url = format!("http://{cp_addr}/v1/connect/tracker");

    // Not connected: a JSON-RPC error with the request id naming where to
    // connect, and nothing reaches the upstream.
    eventually("the proxy has the connect URL", || async {
        call(&url, ALICE).await.1["error"]["data"]["connect_url"] == connect_url.as_str()
    })
    .await;
    let (status, body) = call(&url, ALICE).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&connect_url),
        "{body}"
    );
    assert_eq!(body["error"]["data"]["connect_url"], connect_url.as_str());
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );

    // Starting requires the user's own gateway token.
    let (status, _) = open(&connect_url).await;
    assert_eq!(status, 401);

    // A forged or replayed state is refused; a code bound to another
    // attempt's PKCE challenge is refused by the authorization server.
    let (status, _) = open(&format!(
        "http://{cp_addr}/v1/connect/callback?code=x&state=forged"
    ))
    .await;
    assert_eq!(status, 400);
    let first = start(cp_addr, ALICE).await;
    let second = start(cp_addr, ALICE).await;
    let state_of = |u: &str| {
        reqwest::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .to_string()
    };
    let code_of = |u: &str| {
        reqwest::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .to_string()
    };
    let back = sign_in(&second, "alice").await;
    let crossed = format!(
        "http://{cp_addr}/v1/connect/callback?code={}&state={}",
        code_of(&back),
        state_of(&first)
    );
    let (status, page) = open(&crossed).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    let (status, _) = open(&crossed).await;
    assert_eq!(status, 400, "a state is single-use");
    let (status, _) = open(&back).await;
    assert_eq!(status, 502, "an authorization code is single-use too");

    connect(cp_addr, ALICE, "alice").await;

    // Bob connects too; each call carries its caller's own token.
    connect(cp_addr, BOB, "bob").await;
    eventually("alice's and bob's calls go through", || async {
        call(&url, ALICE).await.0 == 200 && call(&url, BOB).await.0 == 200
    })
    .await;
    seen.lock().unwrap().clear();
    assert_eq!(call(&url, ALICE).await.0, 200);
    assert_eq!(call(&url, BOB).await.0, 200);
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["alice".to_string(), "bob".to_string()]
    );
    let (status, body) = call(&url, CAROL).await;
    assert_eq!(
        status, 403,
        "carol never connected: no fallback to another's token"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "{body}");

    // Tokens live 3 s: they are refreshed (rotating refresh tokens) and calls keep working.
    let before = auth.refreshes.load(Ordering::SeqCst);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            call(&url, ALICE).await.0,
            200,
            "alice's refreshed token is injected"
        );
        assert_eq!(
            call(&url, BOB).await.0,
            200,
            "bob's refreshed token is injected"
        );
    }
    assert!(
        auth.refreshes.load(Ordering::SeqCst) >= before + 2,
        "tokens were refreshed"
    );
    assert!(seen.lock().unwrap().iter().all(|u| u != "(none)"));

    // Refresh tokens are sealed at rest; views show no token.
    let issued = auth.issued_refresh.lock().unwrap().clone();
    for (file, bytes) in files_text(&data) {
        for rt in &issued {
            assert!(
                !contains(&bytes, rt),
                "{file} holds refresh token {rt} in plain text"
            );
        }
    }
    let view = admin(reqwest::Method::GET, cp_addr, "/v1/servers/tracker").await;
    assert_eq!(view["auth"], "oauth-authorization-code");
    assert_eq!(view["delegated"]["connected_users"], 2, "{view}");
    let connections = admin(
        reqwest::Method::GET,
        cp_addr,
        "/v1/servers/tracker/connections",
    )
    .await;
    assert_eq!(connections.as_array().unwrap().len(), 2, "{connections}");
    for text in [view.to_string(), connections.to_string()] {
        assert!(
            !text.contains("at-") && !text.contains("rt-") && !text.contains(CLIENT_SECRET),
            "{text}"
        );
    }

    // The authorization server refuses to refresh: visible (status, metric),
    // and once the token expires the user is told to reconnect.
    *auth.refuse_refresh.lock().unwrap() = Some("alice".into());
    eventually("alice must reconnect", || async {
        let c = admin(
            reqwest::Method::GET,
            cp_addr,
            "/v1/servers/tracker/connections",
        )
        .await;
        c.as_array()
            .unwrap()
            .iter()
            .any(|c| c["principal"] == "alice" && c["needs_reconnect"] == true)
    })
    .await;
    let c = admin(
        reqwest::Method::GET,
        cp_addr,
        "/v1/servers/tracker/connections",
    )
    .await;
    let alice = c
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["principal"] == "alice")
        .unwrap()
        .clone();
    assert!(
        alice["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{alice}"
    );
    let metrics = reqwest::get(format!("http://{cp_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("toolgate_cp_credential_refresh_failures_total{server=\"tracker\"}")),
        "{metrics}"
    );
    assert!(!metrics.contains("at-") && !metrics.contains("rt-"));
    eventually("alice is refused with the connect URL", || async {
        let (status, body) = call(&url, ALICE).await;
        status == 403 && body["error"]["data"]["connect_url"] == connect_url.as_str()
    })
    .await;
    *auth.refuse_refresh.lock().unwrap() = None;
    connect(cp_addr, ALICE, "alice").await;
    eventually("alice's reconnected account works", || async {
        call(&url, ALICE).await.0 == 200
    })
    .await;

    // Offboarding: disabling bob deletes his delegated tokens; the next
    // snapshot no longer carries them, and re-enabling does not bring them back.
    let off = admin(reqwest::Method::POST, cp_addr, "/v1/principals/bob/disable").await;
    assert_eq!(off["delegated_tokens_deleted"], 1, "{off}");
    eventually("bob is refused", || async {
        call(&url, BOB).await.0 == 401
    })
    .await;
    let doc: Value = reqwest::Client::new()
        .get(format!("http://{cp_addr}/v1/snapshot"))
        .bearer_auth(PROXY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["delegated"]["tracker"]["tokens"].get("bob").is_none(),
        "{}",
        doc["delegated"]
    );
    assert!(doc["delegated"]["tracker"]["tokens"].get("alice").is_some());
    admin(reqwest::Method::POST, cp_addr, "/v1/principals/bob/enable").await;
    eventually("bob, enabled again, must connect anew", || async {
        call(&url, BOB).await.0 == 403
    })
    .await;
    assert_eq!(call(&url, ALICE).await.0, 200, "alice is unaffected");

    follower.abort();
    proxy.stop().await;
    cp.stop().await;
}
