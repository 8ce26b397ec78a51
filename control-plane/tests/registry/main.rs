//! The registry as operators and proxies use it: a real control plane on
//! port 0 over a real SQLite file and config directory, real proxies
//! following it, a real rmcp upstream.

#[path = "../../../proxy/tests/gateway/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use common::{call, post, write, Upstream, INIT, UPSTREAM_SECRET};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve::{self, ControlPlaneHandle};
use toolgate_control_plane::store::SqliteStore;
use toolgate_proxy::remote::ControlPlane;
use toolgate_proxy::server::{self, ProxyHandle};

const ADMIN: &str = "admin-token-for-tests";
const PROXY: &str = "proxy-token-for-tests";

fn keys() -> ApiKeys {
    ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    }
}

fn write_config(dir: &Path, upstream: std::net::SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    write(
        dir,
        "teams.yaml",
        "teams: [{name: eng}, {name: platform}]\n",
    );
    write(
        dir,
        "servers.yaml",
        &format!("servers:\n  - name: demo\n    owner: platform\n    status: pending\n    endpoint: http://{upstream}/mcp\n    auth: {{type: bearer, secret: store:demo-token}}\n"),
    );
    write(
        dir,
        "principals.yaml",
        "principals:\n  - {name: alice, kind: user, teams: [eng]}\n",
    );
    write(
        dir,
        "policies.yaml",
        "policies:\n  - name: eng\n    subjects: {teams: [eng]}\n    allow: [{server: '*', tools: ['search_*']}]\n",
    );
}

/// A control plane on its own runtime, so stopping it kills every task and
/// connection at once, as a crash would.
fn test_keyring() -> Keyring {
    Keyring::new(MasterKey::parse(&"ab".repeat(32)).unwrap(), vec![])
}

struct RunningCp {
    runtime: tokio::runtime::Runtime,
    _handle: ControlPlaneHandle,
}

struct Plane {
    root: tempfile::TempDir,
    cp: Option<RunningCp>,
    addr: std::net::SocketAddr,
}

impl Plane {
    fn config(&self) -> PathBuf {
        self.root.path().join("config")
    }

    async fn start_cp(&mut self, addr: &str) {
        let store = SqliteStore::open(&self.root.path().join("toolgate.db"))
            .unwrap()
            .with_keyring(test_keyring())
            .unwrap()
            .0;
        let registry = Registry::open(&self.config(), Box::new(store)).unwrap();
        let audit = AuditStore::open(&self.root.path().join("audit.db"), 90).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = addr.to_string();
        let handle = runtime.block_on_in_place(async move {
            let listener = TcpListener::bind(addr).await.unwrap();
            serve::start(
                listener,
                registry,
                Arc::new(audit),
                keys(),
                Duration::from_millis(50),
            )
            .unwrap()
        });
        self.addr = handle.addr;
        self.cp = Some(RunningCp {
            runtime,
            _handle: handle,
        });
    }

    async fn new(upstream: std::net::SocketAddr) -> Plane {
        let root = tempfile::tempdir().unwrap();
        write_config(&root.path().join("config"), upstream);
        // The secret must exist before `demo` can be approved; seed it through the store.
        let mut plane = Plane {
            root,
            cp: None,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        plane.start_cp("127.0.0.1:0").await;
        plane
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Revokes token `id` through the API (200 expected).
    async fn revoke_token(&self, id: i64) {
        let path = format!("/v1/tokens/{id}");
        assert_eq!(self.api("DELETE", &path, None).await.0, 200);
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(Some(ADMIN), method, path, body).await
    }

    async fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn stop_cp(&mut self) {
        if let Some(cp) = self.cp.take() {
            cp.runtime.shutdown_background();
        }
    }

    async fn proxy(
        &self,
        cache: &str,
    ) -> (
        ProxyHandle,
        Arc<ArcSwap<catalog::Snapshot>>,
        tokio::task::JoinHandle<()>,
    ) {
        let remote = ControlPlane {
            url: format!("http://{}", self.addr),
            token: PROXY.into(),
            cache: self.root.path().join(cache),
        };
        let snapshot = remote.bootstrap().await.unwrap();
        let store = Arc::new(ArcSwap::from_pointee(snapshot));
        let follower = tokio::spawn(remote.follow(store.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        (
            server::start(listener, store.clone()).unwrap(),
            store,
            follower,
        )
    }
}

trait BlockOnInPlace {
    fn block_on_in_place<F: std::future::Future>(&self, f: F) -> F::Output;
}

impl BlockOnInPlace for tokio::runtime::Runtime {
    /// Runs `f` on this runtime from inside another runtime's test task.
    fn block_on_in_place<F: std::future::Future>(&self, f: F) -> F::Output {
        let _guard = self.enter();
        tokio::task::block_in_place(|| self.block_on(f))
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Some(cp) = self.cp.take() {
            cp.runtime.shutdown_background();
        }
    }
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 2 s");
}

async fn approve_demo(plane: &Plane, secret: &str) {
    assert_eq!(
        plane
            .api(
                "PUT",
                "/v1/secrets/demo-token",
                Some(json!({"value": secret}))
            )
            .await
            .0,
        204
    );
    let (status, body) = plane.api("POST", "/v1/servers/demo/approve", None).await;
    assert_eq!(status, 200, "{body}");
}

async fn issue(plane: &Plane, principal: &str) -> (i64, String) {
    let (status, body) = plane
        .api(
            "POST",
            &format!("/v1/principals/{principal}/tokens"),
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_i64().unwrap(),
        body["token"].as_str().unwrap().to_string(),
    )
}

mod access;
mod api;
mod resilience;
