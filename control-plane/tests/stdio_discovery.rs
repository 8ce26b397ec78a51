//! Tool discovery speaks Streamable HTTP only: asking it for a stdio or
//! legacy-SSE server gets a clear refusal, never a connection attempt.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::store::SqliteStore;

const ADMIN: &str = "admin-token-for-stdio-discovery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_of_a_stdio_or_sse_server_is_refused_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("catalog.yaml"),
        "teams: [{name: eng}]\nservers:\n  - {name: files, owner: eng, status: pending, transport: stdio, command: mcp-files}\n  - {name: old, owner: eng, status: pending, transport: sse, endpoint: 'http://127.0.0.1:9/sse'}\n",
    )
    .unwrap();
    let store = SqliteStore::open(&root.path().join("toolgate.db")).unwrap();
    let registry = Registry::open(&config, Box::new(store)).unwrap();
    let keys = ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![],
    };
    let audit = AuditStore::open(&root.path().join("audit.db"), 90).unwrap();
    let cp = toolgate_control_plane::serve::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        registry,
        Arc::new(audit),
        keys,
        Duration::from_millis(50),
    )
    .unwrap();
    for server in ["files", "old"] {
        let resp = reqwest::Client::new()
            .post(format!("http://{}/v1/servers/{server}/discover", cp.addr))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        let body: Value = resp.json().await.unwrap();
        let text = body.to_string();
        assert!(
            text.contains("not a streamable-http server")
                && text.contains("declare its tools in config"),
            "{text}"
        );
    }
}
