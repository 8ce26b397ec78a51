//! The control plane's `/metrics`: a real control plane on port 0, a few
//! API calls, then a scrape read back from the Prometheus text format.

#[path = "../../proxy/tests/metrics/prom_text.rs"]
mod prom_text;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prom_text::Exposition;
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve::{self, ControlPlaneHandle};
use toolgate_control_plane::store::SqliteStore;

const ADMIN: &str = "admin-token-for-metrics-tests";
const PROXY: &str = "proxy-token-for-metrics-tests";

fn write_config(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        ("teams.yaml", "teams: [{name: eng}]\n"),
        // Nothing listens on port 9 (discard): discovery fails at once.
        (
            "servers.yaml",
            "servers:\n  - name: demo\n    owner: eng\n    status: pending\n    endpoint: http://127.0.0.1:9/mcp\n",
        ),
        ("principals.yaml", "principals:\n  - {name: alice, kind: user, teams: [eng]}\n"),
        (
            "policies.yaml",
            "policies:\n  - name: eng\n    subjects: {teams: [eng]}\n    allow: [{server: demo}]\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

struct Cp {
    _root: tempfile::TempDir,
    registry: Arc<Registry>,
    handle: ControlPlaneHandle,
}

impl Cp {
    async fn start() -> Cp {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("config");
        write_config(&config);
        let store = SqliteStore::open(&root.path().join("toolgate.db")).unwrap();
        let registry = Registry::open(&config, Box::new(store)).unwrap();
        let audit = AuditStore::open(&root.path().join("audit.db"), 90).unwrap();
        let keys = ApiKeys {
            admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
            proxies: vec![catalog::token_digest(PROXY)],
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve::start(
            listener,
            registry.clone(),
            Arc::new(audit),
            keys,
            Duration::from_secs(3600),
        )
        .unwrap();
        Cp {
            _root: root,
            registry,
            handle,
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> u16 {
        let mut req = reqwest::Client::new().request(
            method.parse().unwrap(),
            format!("http://{}{path}", self.handle.addr),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn scrape(&self) -> (Exposition, String) {
        let resp = reqwest::get(format!("http://{}/metrics", self.handle.addr))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = resp.text().await.unwrap();
        (Exposition::parse(&text), text)
    }
}

fn requests(m: &Exposition, route: &str, status: &str) -> Option<f64> {
    m.value(
        "toolgate_cp_api_requests_total",
        &[("route", route), ("status", status)],
    )
}

#[tokio::test]
async fn api_requests_counted_by_route_template() {
    let cp = Cp::start().await;
    let first = cp.registry.current().version;
    assert_eq!(cp.call("GET", "/v1/servers", Some(ADMIN)).await, 200);
    assert_eq!(cp.call("GET", "/v1/servers", None).await, 401);
    assert_eq!(cp.call("GET", "/v1/servers/demo", Some(ADMIN)).await, 200);
    assert_eq!(cp.call("GET", "/v1/servers/nosuch", Some(ADMIN)).await, 404);
    assert_eq!(cp.call("GET", "/no/such/route", Some(ADMIN)).await, 404);
    assert_eq!(
        cp.call("POST", "/v1/servers/demo/approve", Some(ADMIN))
            .await,
        200
    );
    assert_eq!(
        cp.call("POST", "/v1/servers/demo/discover", Some(ADMIN))
            .await,
        502
    );
    cp.registry.metrics().audit_ingested(3);
    cp.registry.metrics().audit_duplicates(1);

    let (m, text) = cp.scrape().await;
    assert_eq!(requests(&m, "/v1/servers", "200"), Some(1.0));
    assert_eq!(requests(&m, "/v1/servers", "401"), Some(1.0));
    assert_eq!(requests(&m, "/v1/servers/{name}", "200"), Some(1.0));
    assert_eq!(requests(&m, "/v1/servers/{name}", "404"), Some(1.0));
    assert_eq!(
        requests(&m, "/v1/servers/{name}/{action}", "200"),
        Some(1.0)
    );
    assert_eq!(
        requests(&m, "/v1/servers/{name}/discover", "502"),
        Some(1.0)
    );
    assert_eq!(requests(&m, "unmatched", "404"), Some(1.0));
    let route = [("route", "/v1/servers/{name}")];
    assert_eq!(
        m.value("toolgate_cp_api_request_duration_seconds_count", &route),
        Some(2.0)
    );
    // Raw paths and tokens never show.
    for raw in [
        "/v1/servers/demo",
        "/v1/servers/nosuch",
        "/no/such/route",
        ADMIN,
    ] {
        assert!(!text.contains(raw), "{raw} in /metrics");
    }

    // The approval published a snapshot.
    let now = cp.registry.current().version;
    assert!(now > first);
    assert_eq!(
        m.value("toolgate_cp_snapshot_version", &[]),
        Some(now as f64)
    );
    assert_eq!(
        m.value("toolgate_cp_snapshot_publishes_total", &[]),
        Some(2.0)
    );
    let demo = [("server", "demo")];
    assert_eq!(
        m.value("toolgate_cp_discovery_failures_total", &demo),
        Some(1.0)
    );
    assert_eq!(
        m.value("toolgate_cp_audit_records_ingested_total", &[]),
        Some(3.0)
    );
    assert_eq!(
        m.value("toolgate_cp_audit_records_duplicate_total", &[]),
        Some(1.0)
    );
    for (name, kind) in [
        ("toolgate_cp_api_requests_total", "counter"),
        ("toolgate_cp_api_request_duration_seconds", "histogram"),
        ("toolgate_cp_snapshot_followers", "gauge"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }

    // Documented with the rest of the API.
    let doc: serde_json::Value = reqwest::get(format!("http://{}/openapi.json", cp.handle.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/metrics"]["get"]["security"],
        serde_json::json!([])
    );

    // The scrape itself is counted under its route.
    let (m, _) = cp.scrape().await;
    assert_eq!(requests(&m, "/metrics", "200"), Some(1.0));
    cp.handle.stop().await;
}

#[tokio::test]
async fn waiting_proxies_are_followers() {
    let cp = Cp::start().await;
    let (m, _) = cp.scrape().await;
    assert_eq!(m.value("toolgate_cp_snapshot_followers", &[]), Some(0.0));
    let version = cp.registry.current().version;
    let url = format!(
        "http://{}/v1/snapshot?after={version}&wait=30",
        cp.handle.addr
    );
    let poll = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(PROXY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let mut followers = 0.0;
    for _ in 0..100 {
        let (m, _) = cp.scrape().await;
        followers = m.value("toolgate_cp_snapshot_followers", &[]).unwrap();
        if followers == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(followers, 1.0);
    // A publish answers the waiting proxy.
    assert_eq!(
        cp.call("POST", "/v1/servers/demo/approve", Some(ADMIN))
            .await,
        200
    );
    assert_eq!(poll.await.unwrap(), 200);
    let (m, _) = cp.scrape().await;
    assert_eq!(m.value("toolgate_cp_snapshot_followers", &[]), Some(0.0));
    cp.handle.stop().await;
}
