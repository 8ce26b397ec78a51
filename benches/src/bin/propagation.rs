//! Propagation: time from an API change to every proxy enforcing it.
//! Starts a real control plane (SQLite in a temp dir) and a proxy following
//! it in-process, then repeats: issue a PAT (time until the proxy accepts it)
//! and revoke it (time until the proxy refuses it). Prints p50/p99.
//!
//!   cargo run --release -p toolgate-benches --bin propagation [ROUNDS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use toolgate_control_plane::api::ApiKeys;
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::store::SqliteStore;
use toolgate_proxy::remote::ControlPlane;

const ADMIN: &str = "admin";
const PROXY: &str = "proxy";
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Polls the gateway until its status for `token` satisfies `done`.
async fn until(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(u16) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let status = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(INIT)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if done(status) {
            return start.elapsed();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(rounds))
}

async fn run(rounds: usize) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let config = root.path().join("config");
    std::fs::create_dir_all(&config)?;
    // The upstream is never reached: a closed port answers 502, the gateway's 401 comes first.
    std::fs::write(
        config.join("catalog.yaml"),
        "teams: [{name: eng}]\nservers:\n  - {name: demo, owner: eng, status: approved, endpoint: 'http://127.0.0.1:9/mcp'}\nprincipals:\n  - {name: alice, kind: user, teams: [eng]}\npolicies:\n  - {name: eng, subjects: {teams: [eng]}, allow: [{server: demo}]}\n",
    )?;
    let registry = Registry::open(
        &config,
        Box::new(SqliteStore::open(&root.path().join("db"))?),
    )?;
    let keys = ApiKeys {
        admins: vec![("bench".into(), catalog::token_digest(ADMIN))],
        proxies: vec![catalog::token_digest(PROXY)],
    };
    let audit = AuditStore::open(&root.path().join("audit.db"), 90)?;
    let cp = toolgate_control_plane::serve::start(
        TcpListener::bind("127.0.0.1:0").await?,
        registry,
        Arc::new(audit),
        keys,
        Duration::from_secs(1),
    )?;
    let base = format!("http://{}", cp.addr);
    let remote = ControlPlane {
        url: base.clone(),
        token: PROXY.into(),
        cache: root.path().join("cache.json"),
    };
    let store = Arc::new(ArcSwap::from_pointee(remote.bootstrap().await?));
    tokio::spawn(remote.follow(store.clone()));
    let proxy = toolgate_proxy::server::start(TcpListener::bind("127.0.0.1:0").await?, store)?;
    let url = format!("http://{}/mcp/demo", proxy.addr);
    let client = reqwest::Client::new();

    let (mut issued, mut revoked) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let created: Value = client
            .post(format!("{base}/v1/principals/alice/tokens"))
            .bearer_auth(ADMIN)
            .json(&json!({"name": "bench"}))
            .send()
            .await?
            .json()
            .await?;
        let token = created["token"].as_str().unwrap_or_default().to_string();
        issued.push(until(&client, &url, &token, |s| s != 401).await);
        let id = created["id"].as_i64().unwrap_or_default();
        let start = Instant::now();
        client
            .delete(format!("{base}/v1/tokens/{id}"))
            .bearer_auth(ADMIN)
            .send()
            .await?;
        until(&client, &url, &token, |s| s == 401).await;
        revoked.push(start.elapsed());
    }
    issued.sort();
    revoked.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{rounds} rounds: API change -> enforced by the proxy");
    println!(
        "  PAT issued -> accepted:   p50 {:.2} ms  p99 {:.2} ms  (from the API's 201)",
        ms(percentile(&issued, 0.5)),
        ms(percentile(&issued, 0.99))
    );
    println!(
        "  PAT revoked -> refused:   p50 {:.2} ms  p99 {:.2} ms  (from sending DELETE)",
        ms(percentile(&revoked, 0.5)),
        ms(percentile(&revoked, 0.99))
    );
    Ok(())
}
