//! `toolgate audit query` against a real control plane on a loopback port.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use catalog::audit::{ArgumentsMode, AuditRecord, Decision, Outcome};
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::{time::now_ms, AuditStore};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve::{self, ControlPlaneHandle};
use toolgate_control_plane::store::SqliteStore;

const ADMIN: &str = "admin-token-for-cli-tests";
const PROXY: &str = "proxy-token-for-cli-tests";

async fn control_plane(root: &Path) -> ControlPlaneHandle {
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("teams.yaml"), "teams: [{name: eng}]\n").unwrap();
    let registry = Registry::open(
        &config,
        Box::new(SqliteStore::open(&root.join("toolgate.db")).unwrap()),
    )
    .unwrap();
    let audit = AuditStore::open(&root.join("audit.db"), 90).unwrap();
    let keys = ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve::start(
        listener,
        registry,
        Arc::new(audit),
        keys,
        Duration::from_secs(5),
    )
    .unwrap()
}

fn record(n: usize, agent: &str, server: &str, decision: Decision, age_ms: i64) -> AuditRecord {
    AuditRecord {
        id: format!("{n:032x}"),
        ts_ms: now_ms() - age_ms,
        gateway: "gw".into(),
        principal: Some("alice".into()),
        principal_kind: Some("user".into()),
        agent: Some(agent.into()),
        client: None,
        teams: vec![],
        endpoint: format!("/mcp/{server}"),
        server: Some(server.into()),
        method: Some("tools/call".into()),
        tool: Some("query".into()),
        request_id: Some(n.into()),
        arguments: Some(serde_json::json!({"sql": "select 1, \"x\""})),
        arguments_mode: ArgumentsMode::Keep,
        decision,
        reason: None,
        outcome: match decision {
            Decision::Deny => Outcome::Refused,
            Decision::Allow => Outcome::Success,
        },
        http_status: 200,
        error_code: None,
        latency_us: 1500,
        request_bytes: 10,
        response_bytes: 20,
        session_id: None,
        trace_id: None,
        response_excerpt: None,
    }
}

fn toolgate(base: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .env("TOOLGATE_URL", base)
        .env("TOOLGATE_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "error")
        .output()
        .expect("toolgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_query_groups_lists_and_exports() {
    let root = tempfile::tempdir().unwrap();
    let cp = control_plane(root.path()).await;
    let base = format!("http://{}", cp.addr);
    let day = 86_400_000;
    let records = [
        record(1, "claude", "prod-data", Decision::Allow, 1000),
        record(2, "claude", "prod-data", Decision::Deny, 2000),
        record(3, "claude", "prod-data", Decision::Allow, 3000),
        record(4, "cursor", "prod-data", Decision::Deny, 4000),
        record(5, "cursor", "github", Decision::Allow, 5000),
        record(6, "nightly", "prod-data", Decision::Allow, 40 * day),
    ];
    let body: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/audit/records"))
        .bearer_auth(PROXY)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let run = |args: &'static [&'static str]| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || toolgate(&base, args))
    };
    // The issue's example.
    let (ok, out, err) = run(&[
        "audit",
        "query",
        "--server",
        "prod-data",
        "--since",
        "30d",
        "--group-by",
        "agent",
    ])
    .await
    .unwrap();
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "AGENT   COUNT  DENIED  ERRORS",
            "claude      3       1       0",
            "cursor      1       1       0",
        ],
        "{out}"
    );

    let (ok, out, err) = run(&["audit", "query", "--server", "prod-data", "--limit", "2"])
        .await
        .unwrap();
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("TIME ") && lines[0].ends_with("OUTCOME  LATENCY"),
        "{out}"
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells[1..],
        [
            "alice",
            "claude",
            "prod-data",
            "query",
            "allow",
            "success",
            "1.5ms"
        ],
        "{out}"
    );
    assert!(cells[0].ends_with('Z'), "{out}");
    assert!(err.contains("more records: add --cursor "), "{err}");

    let (ok, out, err) = run(&["audit", "query", "--decision", "deny", "--format", "csv"])
        .await
        .unwrap();
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("ts,ts_ms,id,"), "{out}");
    assert!(
        lines[1].contains(r#","{""sql"":""select 1, \""x\""""}","#),
        "{out}"
    );

    let (ok, out, _) = run(&["audit", "query", "--format", "jsonl", "--agent", "cursor"])
        .await
        .unwrap();
    assert!(ok);
    assert_eq!(out.lines().count(), 2, "{out}");

    let (ok, _, err) = run(&["audit", "query", "--since", "yesterday"])
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("400") && err.contains("30d"), "{err}");
    cp.stop().await;
}
