//! The audit trail as proxies and operators use it: a real control plane on
//! a loopback port chosen by the OS, real SQLite files in a temporary
//! directory, real HTTP.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog::audit::{ArgumentsMode, AuditRecord, ClientInfo, Decision, Outcome};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::time::{format_rfc3339, now_ms};
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::serve::{self, ControlPlaneHandle};
use toolgate_control_plane::store::SqliteStore;

const ADMIN: &str = "admin-token-for-tests";
const PROXY: &str = "proxy-token-for-tests";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

struct Cp {
    handle: ControlPlaneHandle,
    audit: Arc<AuditStore>,
    base: String,
}

/// A control plane over `root` (config, registry and audit databases).
async fn start_in(root: &Path, retention_days: u32) -> Cp {
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("teams.yaml"), "teams: [{name: eng}]\n").unwrap();
    let store = SqliteStore::open(&root.join("toolgate.db")).unwrap();
    let registry = Registry::open(&config, Box::new(store)).unwrap();
    let audit = Arc::new(AuditStore::open(&root.join("audit.db"), retention_days).unwrap());
    let keys = ApiKeys {
        admins: vec![("ops".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve::start(
        listener,
        registry,
        audit.clone(),
        keys,
        Duration::from_secs(5),
    )
    .unwrap();
    let base = format!("http://{}", handle.addr);
    Cp {
        handle,
        audit,
        base,
    }
}

/// A record with every field set; `n` varies principal, agent, tool, decision.
fn record(n: usize, ts_ms: i64) -> AuditRecord {
    let deny = n.is_multiple_of(5);
    AuditRecord {
        id: format!("{n:032x}"),
        ts_ms,
        gateway: format!("gw-{}", n % 2),
        principal: Some(["alice", "bob", "ci-bot"][n % 3].into()),
        principal_kind: Some(if n % 3 == 2 { "agent" } else { "user" }.into()),
        agent: Some(["claude", "cursor", "nightly"][n % 3].into()),
        client: Some(ClientInfo {
            name: "claude-code".into(),
            version: Some("1.0.3".into()),
        }),
        teams: vec!["eng".into(), "platform".into()],
        endpoint: format!("/mcp/{}", ["prod-data", "github"][n % 2]),
        server: Some(["prod-data", "github"][n % 2].into()),
        method: Some(
            if n % 7 == 6 {
                "tools/list"
            } else {
                "tools/call"
            }
            .into(),
        ),
        tool: Some(["search", "delete_table", "query"][n % 3].into()),
        request_id: Some(json!(n)),
        arguments: Some(json!({"q": format!("item {n}"), "limit": 10})),
        arguments_mode: ArgumentsMode::Redact,
        decision: if deny {
            Decision::Deny
        } else {
            Decision::Allow
        },
        reason: deny.then(|| "not granted".to_string()),
        outcome: match (deny, n % 4) {
            (true, _) => Outcome::Refused,
            (false, 1) => Outcome::ToolError,
            (false, 2) => Outcome::UpstreamError,
            _ => Outcome::Success,
        },
        http_status: if deny {
            200
        } else {
            200 + (n % 2) as u16 * 302
        },
        error_code: deny.then_some(-32001),
        latency_us: 1500 + n as u64,
        request_bytes: 120,
        response_bytes: 480,
        session_id: Some(format!("session-{}", n % 4)),
        trace_id: Some(format!("{:032x}", n * 7919)),
        response_excerpt: Some(format!("result {n}")),
    }
}

fn jsonl(records: &[AuditRecord]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

async fn ingest(cp: &Cp, token: Option<&str>, body: String) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/audit/records", cp.base))
        .header("content-type", "application/x-ndjson")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /v1/audit?<query>`: status, content type, next-cursor header, body.
async fn get_raw(
    cp: &Cp,
    token: Option<&str>,
    query: &str,
) -> (u16, String, Option<String>, String) {
    let mut req = reqwest::Client::new().get(format!("{}/v1/audit?{query}", cp.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (ctype, next) = (
        header("content-type").unwrap_or_default(),
        header("x-next-cursor"),
    );
    let status = resp.status().as_u16();
    (status, ctype, next, resp.text().await.unwrap())
}

async fn get(cp: &Cp, query: &str) -> Value {
    let (status, _, _, body) = get_raw(cp, Some(ADMIN), query).await;
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_with_every_field() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let sent = vec![record(1, now - 2000), record(2, now - 1000)];
    let (status, body) = ingest(&cp, Some(PROXY), jsonl(&sent)).await;
    assert_eq!((status, body), (200, json!({"received": 2, "inserted": 2})));

    let got = get(&cp, "").await;
    assert_eq!(got["next_cursor"], Value::Null);
    let records = got["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    // Newest first; every field as sent, plus `ts` (RFC 3339, UTC).
    for (got, sent) in records.iter().zip(sent.iter().rev()) {
        let mut got = got.clone();
        let ts = got.as_object_mut().unwrap().remove("ts").unwrap();
        assert_eq!(ts, format_rfc3339(sent.ts_ms));
        assert!(ts.as_str().unwrap().ends_with('Z'));
        assert_eq!(got, serde_json::to_value(sent).unwrap());
    }
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_twice_is_stored_once() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let batch: Vec<AuditRecord> = (0..10).map(|n| record(n, now - n as i64)).collect();
    assert_eq!(
        ingest(&cp, Some(PROXY), jsonl(&batch)).await,
        (200, json!({"received": 10, "inserted": 10}))
    );
    assert_eq!(
        ingest(&cp, Some(PROXY), jsonl(&batch)).await,
        (200, json!({"received": 10, "inserted": 0}))
    );
    // A retry overlapping the last batch; blank lines are ignored.
    let overlap: Vec<AuditRecord> = (5..15).map(|n| record(n, now - n as i64)).collect();
    let body = format!("\n{}\r\n\n", jsonl(&overlap));
    assert_eq!(
        ingest(&cp, Some(ADMIN), body).await,
        (200, json!({"received": 10, "inserted": 5}))
    );
    let all = get(&cp, "limit=100").await;
    let ids = ids(&all);
    assert_eq!(ids.len(), 15);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 15);
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_line_refuses_the_whole_batch() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let now = now_ms();
    let good = serde_json::to_string(&record(1, now)).unwrap();
    let mut bad = serde_json::to_value(record(2, now)).unwrap();
    bad["decision"] = json!("maybe");
    let body = format!(
        "{good}\n\n{bad}\n{}\n",
        serde_json::to_string(&record(3, now)).unwrap()
    );
    let (status, err) = ingest(&cp, Some(PROXY), body).await;
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("line 3: decision: unknown variant `maybe`"),
        "{message}"
    );
    assert_eq!(err["error"]["field"], "line 3: decision");

    for (body, hint) in [
        (format!("{good}\nnot json\n"), "line 2: expected ident"),
        (format!("{good} {good}\n"), "line 1: trailing characters"),
        (
            good.replace("\"gateway\":\"gw-1\",", ""),
            "line 1: missing field `gateway`",
        ),
        (
            good.replace(
                "\"client\":{\"name\":\"claude-code\"",
                "\"client\":{\"name\":7",
            ),
            "line 1: client.name: invalid type",
        ),
        (
            good.replacen(&format!("{:032x}", 1), "", 1),
            "line 1: id: must be 1 to 128",
        ),
    ] {
        let (status, err) = ingest(&cp, Some(PROXY), body).await;
        assert_eq!(status, 400, "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(hint), "{hint}: {message}");
        assert!(message.ends_with("nothing was stored"), "{message}");
    }
    assert_eq!(ids(&get(&cp, "").await), Vec::<String>::new());
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_token_may_ingest_but_not_query() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let body = jsonl(&[record(1, now_ms())]);
    assert_eq!(ingest(&cp, None, body.clone()).await.0, 401);
    assert_eq!(ingest(&cp, Some("wrong"), body.clone()).await.0, 401);
    assert_eq!(ingest(&cp, Some(PROXY), body).await.0, 200);

    let (status, _, _, body) = get_raw(&cp, Some(PROXY), "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin token"), "{body}");
    assert_eq!(get_raw(&cp, None, "").await.0, 401);
    assert_eq!(get_raw(&cp, Some("wrong"), "format=csv").await.0, 401);
    assert_eq!(ids(&get(&cp, "").await).len(), 1);
    cp.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let cp = start_in(root.path(), 90).await;
    let line = serde_json::to_string(&record(1, now_ms())).unwrap() + "\n";
    let body = line.repeat((33 << 20) / line.len());
    assert_eq!(ingest(&cp, Some(PROXY), body).await.0, 413);
    assert_eq!(ids(&get(&cp, "").await).len(), 0);
    cp.handle.stop().await;
}

#[path = "audit/queries.rs"]
mod queries;
