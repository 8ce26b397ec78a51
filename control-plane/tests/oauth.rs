//! Upstream OAuth 2.0 client credentials, end to end on loopback: a token
//! endpoint that really issues expiring tokens, an upstream that accepts only
//! unexpired tokens from it, the control plane fetching and refreshing them,
//! and a proxy injecting them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{json, Value};
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

const ADMIN: &str = "admin-token-for-oauth-tests";
const PROXY: &str = "proxy-token-for-oauth-tests";
const ALICE: &str = "tg_alice_oauth_test_token";
const CLIENT_SECRET: &str = "client-secret-value-xyz";
const LIFETIME_S: u64 = 2;

/// The authorization server: issues opaque tokens valid `LIFETIME_S` seconds.
#[derive(Clone, Default)]
struct Issuer {
    live: Arc<Mutex<HashMap<String, Instant>>>,
    issued: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

async fn token(
    State(iss): State<Issuer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("toolgate:{CLIENT_SECRET}"));
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if iss.down.load(Ordering::SeqCst) || basic != Some(expected.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(form.get("scope").map(String::as_str), Some("issues:read"));
    let n = iss.issued.fetch_add(1, Ordering::SeqCst);
    let access = format!("at-{n}-{}", std::process::id());
    iss.live.lock().unwrap().insert(
        access.clone(),
        Instant::now() + Duration::from_secs(LIFETIME_S),
    );
    Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": LIFETIME_S}))
        .into_response()
}

/// The upstream accepts only live tokens of the issuer.
async fn require_token(State(iss): State<Issuer>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| iss.live.lock().unwrap().get(t).copied())
        .is_some_and(|exp| exp > Instant::now());
    if !ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(req).await
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

async fn initialize(url: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn admin_get(cp: SocketAddr, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("http://{cp}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_tokens_are_fetched_refreshed_and_injected() {
    let issuer = Issuer::default();
    let token_url = serve(
        Router::new()
            .route("/token", post(token))
            .with_state(issuer.clone()),
    )
    .await;
    let upstream_app = demo::router(
        DemoOptions {
            token: None,
            json_response: true,
            sessions: true,
        },
        CancellationToken::new(),
    )
    .layer(axum::middleware::from_fn_with_state(
        issuer.clone(),
        require_token,
    ));
    let upstream = serve(upstream_app).await;

    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    write(&config, "client-secret", CLIENT_SECRET);
    write(&config, "teams.yaml", "teams: [{name: eng}]\n");
    write(&config, "servers.yaml", &format!(
        "servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://{upstream}/mcp\n    auth: {{type: oauth-client-credentials, token_url: 'http://{token_url}/token', client_id: toolgate, client_secret: 'file:client-secret', scope: 'issues:read'}}\n"));
    write(&config, "principals.yaml", &format!(
        "principals:\n  - {{name: alice, kind: user, teams: [eng], tokens: [{{name: laptop, sha256: {}}}]}}\n",
        hex::encode(catalog::token_digest(ALICE))));
    write(
        &config,
        "policies.yaml",
        "policies:\n  - {name: eng, subjects: {teams: [eng]}, allow: [{server: demo}]}\n",
    );

    let keyring = Keyring::new(MasterKey::parse(&"cd".repeat(32)).unwrap(), vec![]);
    let (store, _) = SqliteStore::open(&root.path().join("toolgate.db"))
        .unwrap()
        .with_keyring(keyring)
        .unwrap();
    let registry = Registry::open(&config, Box::new(store)).unwrap();
    let audit = Arc::new(AuditStore::open(&root.path().join("audit.db"), 90).unwrap());
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
    let url = format!("http://{}/mcp/demo", proxy.addr);

    // The control plane obtains a token; the proxy injects it.
    eventually("a call goes through with the fetched token", || async {
        initialize(&url).await == 200
    })
    .await;
    // Tokens live 2 s: calls keep working well past the first one's expiry.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(initialize(&url).await, 200, "a refreshed token is injected");
    }
    assert!(
        issuer.issued.load(Ordering::SeqCst) >= 2,
        "the token was refreshed"
    );
    let view = admin_get(cp_addr, "/v1/servers/demo").await;
    let view: Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["auth"], "oauth-client-credentials");
    assert!(view["credential"]["token_expires_in_s"].is_u64(), "{view}");
    assert!(view["credential"]["last_error"].is_null(), "{view}");

    // The authorization server refuses: visible on the server, in the
    // metrics and the log; once the last token expires, calls get a clear
    // 503 (never an unauthenticated request upstream).
    issuer.down.store(true, Ordering::SeqCst);
    eventually("calls are refused with 503", || async {
        initialize(&url).await == 503
    })
    .await;
    let view: Value = serde_json::from_str(&admin_get(cp_addr, "/v1/servers/demo").await).unwrap();
    let error = view["credential"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("invalid_client"), "{view}");
    assert!(view["credential"]["token_expires_in_s"].is_null(), "{view}");
    let metrics = reqwest::get(format!("http://{cp_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("toolgate_cp_credential_refresh_failures_total{server=\"demo\"}")
        ),
        "{metrics}"
    );
    for text in [view.to_string(), metrics] {
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains("at-"),
            "no secret or token shown"
        );
    }

    // Back up: calls resume with no operator action.
    issuer.down.store(false, Ordering::SeqCst);
    eventually("calls work again", || async {
        initialize(&url).await == 200
    })
    .await;
    follower.abort();
    proxy.stop().await;
    cp.stop().await;
}
