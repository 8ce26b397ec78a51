//! Fixtures: a real rmcp upstream that records what reaches it, and a real
//! gateway on an OS-assigned port over a temporary config directory.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use catalog::Snapshot;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use toolgate_proxy::demo::{self, DemoOptions};
use toolgate_proxy::reload::ConfigDir;
use toolgate_proxy::server::{self, ProxyHandle};

pub const ALICE: &str = "tg_test_alice_token";
pub const BOB: &str = "tg_test_bob_token";
pub const UPSTREAM_SECRET: &str = "upstream-secret-v1";
pub const BODY_CAP: usize = 1024 * 1024;

/// What one upstream request looked like.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub headers: http::HeaderMap,
}

/// A demo MCP server (rmcp) that counts connections and records requests.
pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    cancel: CancellationToken,
}

impl Upstream {
    pub async fn start(json_response: bool) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, json_response)
    }

    /// A fresh server on `addr` (e.g. a restart), if the port is free again.
    pub async fn start_on(addr: SocketAddr, json_response: bool) -> Option<Upstream> {
        let listener = TcpListener::bind(addr).await.ok()?;
        Some(Self::serve(listener, json_response))
    }

    fn serve(listener: TcpListener, json_response: bool) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let options = DemoOptions {
            token: Some(UPSTREAM_SECRET.to_string()),
            json_response,
            sessions: true,
        };
        let app = demo::router(options, cancel.clone())
            .layer(axum::middleware::from_fn_with_state(seen.clone(), record));
        let counting = Counting {
            inner: listener,
            count: connections.clone(),
        };
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(counting, app)
                .with_graceful_shutdown(async move { stop.cancelled_owned().await })
                .await;
        });
        Upstream {
            addr,
            connections,
            seen,
            cancel,
        }
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn record(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request, next: Next) -> Response {
    seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        headers: req.headers().clone(),
    });
    next.run(req).await
}

struct Counting {
    inner: TcpListener,
    count: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Counting {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            if let Ok(conn) = self.inner.accept().await {
                self.count.fetch_add(1, Ordering::SeqCst);
                return conn;
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

pub fn digest_hex(token: &str) -> String {
    hex::encode(catalog::token_digest(token))
}

pub fn principals_yaml(alice_revoked: bool) -> String {
    format!(
        "principals:\n  - name: alice\n    kind: user\n    teams: [eng]\n    tokens: [{{name: laptop, sha256: {}, revoked: {alice_revoked}}}]\n  - name: bob\n    kind: agent\n    teams: [support]\n    tokens: [{{name: bot, sha256: {}}}]\n",
        digest_hex(ALICE),
        digest_hex(BOB)
    )
}

pub const POLICIES: &str = r#"
policies:
  - name: eng
    subjects: {teams: [eng]}
    allow: [{server: demo}]
    deny: [{server: demo, tools: ["delete_*"]}]
  - name: support
    subjects: {teams: [support]}
    allow: [{server: demo, tools: ["search_*"]}]
"#;

/// A gateway over a temporary `config/`, watched every 50 ms.
pub struct Gateway {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub store: Arc<ArcSwap<Snapshot>>,
    handle: Option<ProxyHandle>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub async fn start(upstream: SocketAddr) -> Gateway {
        Self::start_with(upstream, server::GatewayOptions::default()).await
    }

    pub async fn start_with(upstream: SocketAddr, options: server::GatewayOptions) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(p, "gateway.yaml", &format!("gateway:\n  max_body_bytes: {BODY_CAP}\n  allowed_origins: [\"http://localhost:6274\"]\n"));
        write(p, "teams.yaml", "teams: [{name: eng}, {name: support}]\n");
        write(
            p,
            "servers.yaml",
            &format!("servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://{upstream}/mcp\n    auth: {{type: bearer, secret: file:upstream-token}}\n    tools: [{{name: search_issues}}, {{name: create_issue}}, {{name: delete_issue}}, {{name: long_report}}]\n"),
        );
        write(p, "upstream-token", UPSTREAM_SECRET);
        write(p, "principals.yaml", &principals_yaml(false));
        write(p, "policies.yaml", POLICIES);
        let config = ConfigDir::new(p);
        let (snapshot, since) = config.compile_initial().unwrap();
        let store = Arc::new(ArcSwap::from_pointee(snapshot));
        let watcher = tokio::spawn(config.watch(store.clone(), Duration::from_millis(50), since));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = server::start_with(listener, store.clone(), options).unwrap();
        Gateway {
            addr: handle.addr,
            dir,
            store,
            handle: Some(handle),
            watcher,
        }
    }

    pub fn url(&self, server: &str) -> String {
        format!("http://{}/mcp/{server}", self.addr)
    }

    /// Rewrites a config file and waits until the gateway has swapped in a new snapshot.
    pub async fn edit(&self, file: &str, text: &str) {
        let before = self.store.load().version;
        write(self.dir.path(), file, text);
        for _ in 0..100 {
            if self.store.load().version != before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("config edit of {file} was not applied within a second");
    }

    pub async fn stop(mut self) {
        self.watcher.abort();
        if let Some(h) = self.handle.take() {
            h.stop().await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

pub fn write(dir: &Path, file: &str, text: &str) {
    // Write then rename, as editors and config management do.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// A raw HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The JSON-RPC messages of a JSON or SSE reply.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        if self
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        {
            self.body
                .split("\n\n")
                .flat_map(|ev| {
                    let data: Vec<&str> = ev
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|d| d.trim_start())
                        .collect();
                    let data = data.join("\n");
                    serde_json::from_str(&data).ok()
                })
                .collect()
        } else {
            vec![self.json()]
        }
    }
}

/// POSTs `body` with MCP's required headers plus `extra`.
pub async fn post(
    url: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("gateway answers");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// The headers of a request inside MCP session `sid` (2025-06-18).
pub fn in_session(sid: &str) -> [(&'static str, &str); 2] {
    [
        ("mcp-session-id", sid),
        ("mcp-protocol-version", "2025-06-18"),
    ]
}

/// A request inside MCP session `sid` as an SDK client sends it; POST bodies
/// are JSON. For exchanges the test reads as a stream.
pub fn session_request(
    method: reqwest::Method,
    url: &str,
    token: &str,
    sid: &str,
) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .request(method.clone(), url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream");
    for (name, value) in in_session(sid) {
        req = req.header(name, value);
    }
    if method == reqwest::Method::POST {
        req = req.header("content-type", "application/json");
    }
    req
}

pub const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// Initializes a session over raw HTTP; returns its id.
pub async fn open_session(url: &str, token: &str) -> String {
    let r = post(url, Some(token), INIT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r
        .headers
        .get("mcp-session-id")
        .expect("session id")
        .to_str()
        .unwrap()
        .to_string();
    let r = post(
        url,
        Some(token),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &in_session(&sid),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    sid
}

pub fn call(id: u64, tool: &str, args: serde_json::Value) -> String {
    serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}).to_string()
}
