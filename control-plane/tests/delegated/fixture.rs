//! One control plane, one proxy following it, the peers, and the users
//! alice, bob and carol (all in team eng, granted `tracker`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::header;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve::{self, ControlPlaneHandle};
use toolgate_control_plane::store::SqliteStore;
use toolgate_proxy::demo::{self, DemoOptions};
use toolgate_proxy::remote::ControlPlane;
use toolgate_proxy::server::{self, ProxyHandle};

use crate::peers::{authorize, require_token, revoke, serve_app, token, AuthServer, CLIENT_SECRET};

pub const ADMIN: &str = "admin-token-for-delegated-tests";
pub const PROXY: &str = "proxy-token-for-delegated-tests";
pub const ALICE: &str = "tg_alice_delegated_test_token";
pub const BOB: &str = "tg_bob_delegated_test_token";
pub const CAROL: &str = "tg_carol_delegated_test_token";

/// Everything running for one test.
pub struct Plane {
    /// The authorization server.
    pub auth: AuthServer,
    /// Whose token reached the upstream, per request (`(none)`: no live token).
    pub seen: Arc<Mutex<Vec<String>>>,
    /// The control plane's API.
    pub cp: SocketAddr,
    /// The proxy's route to `tracker`.
    pub url: String,
    /// Where users connect.
    pub connect_url: String,
    root: tempfile::TempDir,
    running: Option<Running>,
}

/// A control plane on the test's data and config, and a proxy following it.
struct Running {
    handle: ControlPlaneHandle,
    proxy: ProxyHandle,
    follower: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(root: &std::path::Path) -> Running {
        let keyring = Keyring::new(MasterKey::parse(&"ef".repeat(32)).unwrap(), vec![]);
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let (store, _) = SqliteStore::open(&data.join("toolgate.db"))
            .unwrap()
            .with_keyring(keyring)
            .unwrap();
        let config = root.join("config");
        // Opening fetches identity providers' keys with a blocking client.
        let registry =
            tokio::task::spawn_blocking(move || Registry::open(&config, Box::new(store)))
                .await
                .unwrap()
                .unwrap();
        let audit = Arc::new(AuditStore::open(&data.join("audit.db"), 90).unwrap());
        let keys = ApiKeys {
            admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
            proxies: vec![catalog::token_digest(PROXY)],
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle =
            serve::start(listener, registry, audit, keys, Duration::from_millis(100)).unwrap();
        let remote = ControlPlane {
            url: format!("http://{}", handle.addr),
            token: PROXY.into(),
            cache: root.join("snapshot.json"),
        };
        let snapshots = Arc::new(ArcSwap::from_pointee(remote.bootstrap().await.unwrap()));
        let follower = tokio::spawn(remote.follow(snapshots.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = server::start(listener, snapshots).unwrap();
        Running {
            handle,
            proxy,
            follower,
        }
    }

    async fn stop(self) {
        self.follower.abort();
        self.proxy.stop().await;
        self.handle.stop().await;
    }
}

/// `principals.yaml` with alice, bob and carol; `disabled` ones disabled.
pub fn principals(disabled: &[&str]) -> String {
    let principal = |name: &str, pat: &str| {
        format!(
            "  - {{name: {name}, kind: user, teams: [eng], disabled: {}, tokens: [{{name: laptop, sha256: {}}}]}}\n",
            disabled.contains(&name),
            hex::encode(catalog::token_digest(pat))
        )
    };
    format!(
        "principals:\n{}{}{}",
        principal("alice", ALICE),
        principal("bob", BOB),
        principal("carol", CAROL)
    )
}

impl Plane {
    pub async fn start() -> Plane {
        Plane::start_with(&[]).await
    }

    /// Starts with extra config files (`(name, YAML)`).
    pub async fn start_with(extra: &[(&str, String)]) -> Plane {
        let auth = AuthServer::default();
        let as_addr = serve_app(
            Router::new()
                .route("/authorize", get(authorize))
                .route("/token", post(token))
                .route("/revoke", post(revoke))
                .with_state(auth.clone()),
        )
        .await;
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let options = DemoOptions {
            token: None,
            json_response: true,
            sessions: true,
        };
        let upstream = serve_app(demo::router(options, CancellationToken::new()).layer(
            axum::middleware::from_fn_with_state((auth.clone(), seen.clone()), require_token),
        ))
        .await;

        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let write = |name: &str, text: String| std::fs::write(config.join(name), text).unwrap();
        write("client-secret", CLIENT_SECRET.into());
        write("teams.yaml", "teams: [{name: eng}]\n".into());
        write("servers.yaml", format!(
            "servers:\n  - name: tracker\n    owner: eng\n    status: approved\n    endpoint: http://{upstream}/mcp\n    auth: {{type: oauth-authorization-code, authorization_url: 'http://{as_addr}/authorize', token_url: 'http://{as_addr}/token', client_id: toolgate, client_secret: 'file:client-secret', scope: tickets, revocation_url: 'http://{as_addr}/revoke'}}\n"));
        write("principals.yaml", principals(&[]));
        for (name, text) in extra {
            write(name, text.clone());
        }
        write(
            "policies.yaml",
            "policies:\n  - {name: eng, subjects: {teams: [eng]}, allow: [{server: tracker}]}\n"
                .into(),
        );

        let running = Running::start(root.path()).await;
        let plane = Plane {
            auth,
            seen,
            cp: running.handle.addr,
            url: format!("http://{}/mcp/tracker", running.proxy.addr),
            connect_url: format!("http://{}/v1/connect/tracker", running.handle.addr),
            root,
            running: Some(running),
        };
        // The first snapshot was published before the control plane knew its URL.
        eventually("the proxy has the connect URL", || async {
            call(&plane.url, ALICE).await.1["error"]["data"]["connect_url"]
                == plane.connect_url.as_str()
        })
        .await;
        plane
    }

    /// The control plane's data directory (database files).
    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The config directory.
    pub fn config(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// Stops the control plane and the proxy, and starts new ones on the
    /// same database and config (new addresses).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        let running = Running::start(self.root.path()).await;
        self.cp = running.handle.addr;
        self.url = format!("http://{}/mcp/tracker", running.proxy.addr);
        self.connect_url = format!("http://{}/v1/connect/tracker", running.handle.addr);
        self.running = Some(running);
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An MCP `initialize` through the proxy as `pat`: status and body.
pub async fn call(url: &str, pat: &str) -> (u16, Value) {
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

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

/// Starts a connection as `pat`: the authorization URL the user opens.
pub async fn start(cp: SocketAddr, pat: &str) -> String {
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
pub async fn sign_in(authorize_url: &str, login: &str) -> String {
    let resp = no_redirects()
        .get(format!("{authorize_url}&login={login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    location(&resp)
}

pub async fn open(url: &str) -> (u16, String) {
    let resp = no_redirects().get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The whole flow: connect `pat`'s principal as `login`.
pub async fn connect(cp: SocketAddr, pat: &str, login: &str) {
    let callback = sign_in(&start(cp, pat).await, login).await;
    let (status, page) = open(&callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("connected"), "{page}");
}

pub async fn admin(method: reqwest::Method, cp: SocketAddr, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .request(method, format!("http://{cp}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap_or_default()
}

pub async fn eventually<F: std::future::Future<Output = bool>>(
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
pub fn files_text(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
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

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
