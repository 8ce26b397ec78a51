//! The registry as operators and proxies use it: a real control plane on
//! port 0 over a real SQLite file and config directory, real proxies
//! following it, a real rmcp upstream.

#[path = "../../proxy/tests/gateway/common.rs"]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pat_issue_and_revoke_through_the_proxy() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    approve_demo(&plane, UPSTREAM_SECRET).await;
    let (proxy, _store, follower) = plane.proxy("snapshot.json").await;
    let url = format!("http://{}/mcp/demo", proxy.addr);

    let (id, token) = issue(&plane, "alice").await;
    eventually("the new token works", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 200
    })
    .await;
    let listed = plane
        .api("GET", "/v1/principals/alice/tokens", None)
        .await
        .1;
    assert!(
        !listed.to_string().contains(&token),
        "the token text is never stored or listed"
    );
    assert_eq!(
        listed[0]["sha256"],
        hex::encode(catalog::token_digest(&token))
    );

    assert_eq!(
        plane
            .api("DELETE", &format!("/v1/tokens/{id}"), None)
            .await
            .0,
        200
    );
    eventually("the revoked token is refused", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 401
    })
    .await;
    follower.abort();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_and_secret_rotation_reach_the_proxy() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    // Approving needs the server's secret to exist: refused, nothing applied.
    let (status, body) = plane.api("POST", "/v1/servers/demo/approve", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store:demo-token"),
        "{body}"
    );
    approve_demo(&plane, "stale-secret").await;
    let (proxy, _store, follower) = plane.proxy("snapshot.json").await;
    let url = format!("http://{}/mcp/demo", proxy.addr);
    let (_, token) = issue(&plane, "alice").await;
    eventually("the token works", || async {
        post(&url, Some(&token), INIT, &[]).await.status != 401
    })
    .await;
    assert_eq!(
        post(&url, Some(&token), INIT, &[]).await.status,
        502,
        "the upstream refuses the stale secret"
    );

    assert_eq!(
        plane
            .api(
                "PUT",
                "/v1/secrets/demo-token",
                Some(json!({"value": UPSTREAM_SECRET}))
            )
            .await
            .0,
        204
    );
    eventually("the rotated secret is injected", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 200
    })
    .await;
    let last = upstream.requests().pop().unwrap();
    assert_eq!(
        last.headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    let secrets = plane.api("GET", "/v1/secrets", None).await.1;
    assert!(
        !secrets.to_string().contains(UPSTREAM_SECRET),
        "secrets are never read back: {secrets}"
    );
    // Sealed at rest: the value is in no file of the control plane's.
    for entry in std::fs::read_dir(plane.root.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && !path.ends_with("upstream-token") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(UPSTREAM_SECRET.len())
                    .any(|w| w == UPSTREAM_SECRET.as_bytes()),
                "{} holds the secret in plain text",
                path.display()
            );
        }
    }

    // Blocking takes the server away.
    assert_eq!(
        plane.api("POST", "/v1/servers/demo/block", None).await.0,
        200
    );
    eventually("the blocked server disappears", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 404
    })
    .await;
    follower.abort();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_survive_a_control_plane_outage_and_catch_up() {
    let upstream = Upstream::start(true).await;
    let mut plane = Plane::new(upstream.addr).await;
    approve_demo(&plane, UPSTREAM_SECRET).await;
    let (id, token) = issue(&plane, "alice").await;
    let (proxy, _store, follower) = plane.proxy("snapshot.json").await;
    let url = format!("http://{}/mcp/demo", proxy.addr);
    eventually("the token works", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 200
    })
    .await;

    let addr = plane.addr.to_string();
    plane.stop_cp().await;
    // The running proxy keeps enforcing its last snapshot...
    let r = post(
        &url,
        Some(&token),
        call(1, "search_issues", json!({"query": "Login"})),
        &[],
    )
    .await;
    assert_ne!(r.status, 401, "{}", r.body);
    assert_eq!(
        post(
            &url,
            Some(&token),
            call(2, "delete_issue", json!({"id": 0})),
            &[]
        )
        .await
        .json()["error"]["code"],
        -32602
    );
    // ...and a new proxy starts from the cached snapshot (mode 0600).
    let cache = plane.root.path().join("snapshot.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (second, _store2, follower2) = plane.proxy("snapshot.json").await;
    let url2 = format!("http://{}/mcp/demo", second.addr);
    assert_eq!(post(&url2, Some(&token), INIT, &[]).await.status, 200);

    // The control plane returns (same database, same address): both catch up.
    plane.start_cp(&addr).await;
    assert_eq!(
        plane
            .api("DELETE", &format!("/v1/tokens/{id}"), None)
            .await
            .0,
        200
    );
    eventually("proxy 1 applies the revocation", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 401
    })
    .await;
    eventually("proxy 2 applies the revocation", || async {
        post(&url2, Some(&token), INIT, &[]).await.status == 401
    })
    .await;
    follower.abort();
    follower2.abort();
    proxy.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_applied() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    let (status, _) = plane.api_as(None, "GET", "/v1/servers", None).await;
    assert_eq!(status, 401);
    let (status, _) = plane
        .api_as(
            Some(PROXY),
            "POST",
            "/v1/principals",
            Some(json!({"name": "x", "kind": "user"})),
        )
        .await;
    assert_eq!(status, 401, "a proxy token is not an admin token");

    let (status, body) = plane
        .api(
            "POST",
            "/v1/principals",
            Some(json!({"name": "bob", "kind": "robot"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("kind")),
        "{body}"
    );
    let (status, body) = plane
        .api(
            "POST",
            "/v1/principals",
            Some(json!({"name": "bob", "kind": "user", "teams": ["ghosts"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown team \"ghosts\""),
        "{body}"
    );
    let (status, body) = plane
        .api(
            "POST",
            "/v1/servers",
            Some(json!({"name": "s", "owner": "platform", "status": "approved"})),
        )
        .await;
    assert_eq!(
        (
            status,
            body["error"]["message"]
                .as_str()
                .map(|m| m.contains("endpoint"))
        ),
        (400, Some(true)),
        "{body}"
    );
    let (status, body) = plane.api("POST", "/v1/servers", Some(json!({"name": "s", "owner": "nobody", "status": "pending", "endpoint": "http://127.0.0.1:1/mcp"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store: servers[0].owner: unknown team"),
        "{body}"
    );

    let servers = plane.api("GET", "/v1/servers", None).await.1;
    assert_eq!(
        servers.as_array().unwrap().len(),
        1,
        "nothing half-applied: {servers}"
    );
    let principals = plane.api("GET", "/v1/principals", None).await.1;
    assert_eq!(principals.as_array().unwrap().len(), 1);
    let changes = plane.api("GET", "/v1/changes", None).await.1;
    let by_operators: Vec<_> = changes
        .as_array()
        .unwrap()
        .iter()
        // The control plane's own first-start setup: the session key.
        .filter(|c| c["actor"] != "toolgate")
        .collect();
    assert!(
        by_operators.is_empty(),
        "refused mutations are not recorded: {changes}"
    );

    // A valid mutation is recorded with its actor.
    let (status, _) = plane
        .api(
            "POST",
            "/v1/principals",
            Some(json!({"name": "bob", "kind": "agent", "teams": ["eng"]})),
        )
        .await;
    assert_eq!(status, 201);
    let changes = plane.api("GET", "/v1/changes", None).await.1;
    assert_eq!(changes[0]["actor"], "ops");
    assert_eq!(changes[0]["action"], "principal.create");
    let doc: Value = reqwest::get(plane.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/principals/{name}/tokens"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_are_published_and_invalid_ones_refused() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    let version = plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
        .as_u64()
        .unwrap();
    write(
        &plane.config(),
        "teams.yaml",
        "teams: [{name: eng}, {name: platform}, {name: support}]\n",
    );
    eventually("the edit is published", || async {
        plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
            .as_u64()
            .unwrap()
            > version
    })
    .await;
    let version = plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
        .as_u64()
        .unwrap();
    write(&plane.config(), "teams.yaml", "teams: [{name: eng}]\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
            .as_u64()
            .unwrap(),
        version,
        "an invalid edit is not published"
    );
    assert_eq!(
        plane
            .api("GET", "/v1/teams", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_policies_and_registered_servers_are_managed_through_the_api() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    let (status, body) = plane
        .api(
            "POST",
            "/v1/teams",
            Some(json!({"name": "data", "description": "Data team"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        plane
            .api("POST", "/v1/teams", Some(json!({"name": "data"})))
            .await
            .0,
        409
    );
    let policy = json!({"name": "data-search", "subjects": {"teams": ["data"]}, "allow": [{"server": "demo", "tools": ["search_*"]}]});
    assert_eq!(plane.api("POST", "/v1/policies", Some(policy)).await.0, 200);
    let bad =
        json!({"name": "p2", "subjects": {"teams": ["nobody"]}, "allow": [{"server": "demo"}]});
    let (status, body) = plane.api("POST", "/v1/policies", Some(bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store: policies[1].subjects.teams[0]: unknown team"),
        "{body}"
    );
    let teams = plane.api("GET", "/v1/teams", None).await.1;
    assert!(teams
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "data"));
    let policies = plane.api("GET", "/v1/policies", None).await.1;
    assert_eq!(policies.as_array().unwrap().len(), 2, "{policies}");

    let server = json!({"name": "tickets", "owner": "data", "status": "pending", "endpoint": "http://127.0.0.1:1/mcp"});
    assert_eq!(plane.api("POST", "/v1/servers", Some(server)).await.0, 201);
    let moved = json!({"name": "tickets", "owner": "data", "status": "pending", "endpoint": "http://127.0.0.1:2/mcp"});
    assert_eq!(
        plane
            .api("PUT", "/v1/servers/tickets", Some(moved.clone()))
            .await
            .0,
        200
    );
    assert_eq!(
        plane.api("GET", "/v1/servers/tickets", None).await.1["endpoint"],
        "http://127.0.0.1:2/mcp"
    );
    let (status, body) = plane.api("PUT", "/v1/servers/other", Some(moved)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("name"))
    );
    let config_server = json!({"name": "demo", "owner": "platform", "status": "pending", "endpoint": "http://127.0.0.1:3/mcp"});
    assert_eq!(
        plane
            .api("PUT", "/v1/servers/demo", Some(config_server))
            .await
            .0,
        409,
        "config/ servers are edited in config/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_proxy_continues_on_another() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    approve_demo(&plane, UPSTREAM_SECRET).await;
    let (a, _sa, fa) = plane.proxy("a.json").await;
    let (b, _sb, fb) = plane.proxy("b.json").await;
    let (_, token) = issue(&plane, "alice").await;
    let url_a = format!("http://{}/mcp/demo", a.addr);
    let url_b = format!("http://{}/mcp/demo", b.addr);
    eventually("both proxies know the token", || async {
        post(&url_a, Some(&token), INIT, &[]).await.status == 200
            && post(&url_b, Some(&token), INIT, &[]).await.status == 200
    })
    .await;

    // Opened on A, used on B: both replicas share the control plane's key.
    let sid = common::open_session(&url_a, &token).await;
    let r = post(
        &url_b,
        Some(&token),
        call(1, "search_issues", json!({"query": "x"})),
        &common::in_session(&sid),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("issue(s) match"), "{}", r.body);
    // Still bound to its caller on every replica.
    let (_, other) = issue(&plane, "alice").await;
    eventually("the second token works", || async {
        post(&url_b, Some(&other), INIT, &[]).await.status == 200
    })
    .await;
    let stolen = post(
        &url_b,
        Some(&other),
        call(2, "search_issues", json!({"query": "x"})),
        &common::in_session(&sid),
    )
    .await;
    assert_eq!(stolen.status, 404, "{}", stolen.body);
    fa.abort();
    fb.abort();
    a.stop().await;
    b.stop().await;
}
