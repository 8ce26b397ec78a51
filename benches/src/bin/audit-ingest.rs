//! Audit ingest throughput: a real control plane (registry and audit SQLite
//! files in a temp dir) in-process on loopback, and CLIENTS concurrent
//! clients POSTing `/v1/audit/records` batches of BATCH JSON Lines records,
//! as proxies do. Bodies are serialized before the clock starts; the time is
//! from the first request to the last answer. Prints records/s, then checks
//! that every record was stored exactly once.
//!
//!   cargo run --release -p toolgate-benches --bin audit-ingest [RECORDS [BATCH [CLIENTS]]]
//!
//! Defaults: 200000 records, batches of 500, 2 clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::audit::{ArgumentsMode, AuditRecord, ClientInfo, Decision, Outcome};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::{time::now_ms, AuditStore};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::store::SqliteStore;

const ADMIN: &str = "admin";
const PROXY: &str = "proxy";

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// A typical `tools/call` record (~750 bytes of JSON), varied across
/// principals, agents, servers and tools.
fn record(n: usize, now: i64) -> AuditRecord {
    let deny = n.is_multiple_of(10);
    AuditRecord {
        id: format!("{n:032x}"),
        ts_ms: now - (n % 86_400_000) as i64,
        gateway: format!("gw-{}", n % 3),
        principal: Some(format!("user-{:04}", n % 1000)),
        principal_kind: Some("user".into()),
        agent: Some(format!("agent-{}", n % 20)),
        client: Some(ClientInfo {
            name: "claude-code".into(),
            version: Some("2.1.0".into()),
        }),
        teams: vec![format!("team-{:02}", n % 50)],
        endpoint: format!("/mcp/server-{:02}", n % 40),
        server: Some(format!("server-{:02}", n % 40)),
        method: Some("tools/call".into()),
        tool: Some(format!("search_item_{:03}", n % 200)),
        request_id: Some(json!(n)),
        arguments: Some(json!({
            "query": format!("status:open assignee:user-{:04} label:bug", n % 1000),
            "limit": 50,
            "token": "[REDACTED]",
        })),
        arguments_mode: ArgumentsMode::Redact,
        decision: if deny {
            Decision::Deny
        } else {
            Decision::Allow
        },
        reason: deny.then(|| "tool not granted to this principal".to_string()),
        outcome: if deny {
            Outcome::Refused
        } else {
            Outcome::Success
        },
        http_status: 200,
        error_code: deny.then_some(-32001),
        latency_us: 800 + (n % 5000) as u64,
        request_bytes: 210,
        response_bytes: 4096,
        session_id: Some(format!("{:032x}", n / 50)),
        trace_id: Some(format!("{:032x}", n.wrapping_mul(2_654_435_761))),
        response_excerpt: None,
    }
}

fn main() -> anyhow::Result<()> {
    let (records, batch, clients) = (arg(1, 200_000), arg(2, 500), arg(3, 2));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(records, batch.max(1), clients.max(1)))
}

async fn run(records: usize, batch: usize, clients: usize) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let config = root.path().join("config");
    std::fs::create_dir_all(&config)?;
    std::fs::write(config.join("teams.yaml"), "teams: [{name: eng}]\n")?;
    let registry = Registry::open(
        &config,
        Box::new(SqliteStore::open(&root.path().join("toolgate.db"))?),
    )?;
    let audit = Arc::new(AuditStore::open(&root.path().join("audit.db"), 0)?);
    let keys = ApiKeys {
        admins: vec![("bench".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let cp = toolgate_control_plane::serve::start(
        TcpListener::bind("127.0.0.1:0").await?,
        registry,
        audit,
        keys,
        Duration::from_secs(5),
    )?;
    let url = format!("http://{}/v1/audit/records", cp.addr);

    let now = now_ms();
    let bodies: Vec<Vec<u8>> = (0..records)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|ns| {
            let mut body = Vec::new();
            for n in ns {
                serde_json::to_writer(&mut body, &record(*n, now))?;
                body.push(b'\n');
            }
            Ok(body)
        })
        .collect::<anyhow::Result<_>>()?;
    let bytes: usize = bodies.iter().map(Vec::len).sum();

    // Client i sends batches i, i + clients, ...
    let bodies = Arc::new(bodies);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (bodies, url) = (bodies.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            for body in bodies.iter().skip(i).step_by(clients) {
                let sent = Instant::now();
                let resp = client
                    .post(&url)
                    .bearer_auth(PROXY)
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(resp.status() == 200, "ingest: {}", resp.status());
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();

    let secs = elapsed.as_secs_f64();
    println!(
        "{records} records ({:.1} MB of JSON Lines) in batches of {batch} from {clients} clients: {secs:.2} s",
        bytes as f64 / 1e6
    );
    println!(
        "{:.0} records/s, {:.1} MB/s; batch latency p50 {:.1} ms, p99 {:.1} ms",
        records as f64 / secs,
        bytes as f64 / 1e6 / secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );

    let stored: Value = reqwest::Client::new()
        .get(format!("http://{}/v1/audit?group_by=decision", cp.addr))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .json()
        .await?;
    let count: u64 = stored["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["count"].as_u64()).sum())
        .unwrap_or(0);
    anyhow::ensure!(
        count == records as u64,
        "stored {count} records, sent {records}"
    );
    println!("stored: {count} (each exactly once)");
    cp.stop().await;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}
