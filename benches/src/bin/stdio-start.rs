//! stdio session start: time from an agent's `initialize` POST to its
//! response through the gateway when the server is a stdio process started
//! for that session (`mode: per-session`, so every round spawns a fresh
//! process). Each round then ends the session (DELETE), which stops the
//! process. Prints min/p50/p90/p99/max.
//!
//!   cargo build --release -p toolgate-proxy --bin toolgate-stdio-demo
//!   cargo run --release -p toolgate-benches --bin stdio-start -- [ROUNDS] [COMMAND [ARGS...]]
//!
//! COMMAND defaults to `target/release/toolgate-stdio-demo` (the rmcp demo
//! server over stdio); e.g. `node .../server-memory/dist/index.js` measures
//! a Node server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use toolgate_proxy::reload::ConfigDir;

const TOKEN: &str = "tg_bench_stdio_start";
const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"stdio-start","version":"1"}}}"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn config(dir: &std::path::Path, command: &[String]) -> std::io::Result<()> {
    let quoted: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    let servers = format!(
        "servers:\n  - name: bench\n    owner: eng\n    status: approved\n    transport: stdio\n    command: {}\n    args: [{}]\n    stdio: {{max_processes: 4}}\n",
        quoted[0],
        quoted[1..].join(", ")
    );
    std::fs::write(dir.join("teams.yaml"), "teams: [{name: eng}]\n")?;
    std::fs::write(dir.join("servers.yaml"), servers)?;
    std::fs::write(
        dir.join("principals.yaml"),
        format!(
            "principals:\n  - name: bench\n    kind: agent\n    teams: [eng]\n    tokens: [{{name: t, sha256: {}}}]\n",
            hex_digest(TOKEN)
        ),
    )?;
    std::fs::write(
        dir.join("policies.yaml"),
        "policies:\n  - name: all\n    subjects: {teams: [eng]}\n    allow: [{server: bench}]\n",
    )
}

fn hex_digest(token: &str) -> String {
    catalog::token_digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let rounds: usize = argv.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut command: Vec<String> = argv.collect();
    if command.is_empty() {
        command.push("target/release/toolgate-stdio-demo".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        config(dir.path(), &command)?;
        let (snapshot, _) = ConfigDir::new(dir.path()).compile_initial()?;
        let store = Arc::new(ArcSwap::from_pointee(snapshot));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gateway = toolgate_proxy::server::start(listener, store)?;
        let url = format!("http://{}/mcp/bench", gateway.addr);
        let client = reqwest::Client::new();
        let mut times = Vec::with_capacity(rounds);
        for round in 0..rounds + 5 {
            let start = Instant::now();
            let resp = client
                .post(&url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(INIT)
                .send()
                .await?;
            let sid = resp.headers().get("mcp-session-id").cloned();
            let status = resp.status();
            let body = resp.text().await?;
            let elapsed = start.elapsed();
            anyhow::ensure!(
                status == 200 && sid.is_some(),
                "initialize failed: {status} {body}"
            );
            if round >= 5 {
                times.push(elapsed); // the first rounds warm up the bridge and connections
            }
            client
                .delete(&url)
                .bearer_auth(TOKEN)
                .header("mcp-session-id", sid.unwrap())
                .send()
                .await?;
        }
        times.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        println!(
            "stdio session start ({} rounds, command {:?}): min {} p50 {} p90 {} p99 {} max {}",
            rounds,
            command.join(" "),
            ms(times[0]),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.9)),
            ms(percentile(&times, 0.99)),
            ms(times[times.len() - 1]),
        );
        gateway.stop().await;
        anyhow::Ok(())
    })
}
