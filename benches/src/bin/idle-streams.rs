//! Opens N idle MCP event streams (GET with `Accept: text/event-stream`, one
//! connection each) through a gateway, and reports the resident memory of
//! the processes given with `--pid` before and after: memory per idle stream.
//!
//!   idle-streams --url http://127.0.0.1:8080/mcp/mock --token T --streams 10000 \
//!       --pid toolgate=1234 [--pid mock=1235] [--session-per-stream] [--hold 30]
//!
//! Each process needs a file descriptor per stream (the gateway two: agent and
//! upstream side): raise `ulimit -n` first.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use toolgate_benches::mcp::conn::{Conn, Target};
use toolgate_benches::mcp::wire;

/// Idle MCP event streams, and what they cost in memory.
#[derive(Debug, Parser)]
struct Args {
    /// The MCP endpoint.
    #[arg(long)]
    url: String,
    /// Bearer token.
    #[arg(long, env = "MCP_TOKEN", hide_env_values = true)]
    token: String,
    /// Streams to open.
    #[arg(long, default_value_t = 500)]
    streams: usize,
    /// Process whose VmRSS is reported, as NAME=PID or PID (repeatable).
    #[arg(long = "pid")]
    pids: Vec<String>,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Seconds to wait before each memory reading.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Seconds to keep the streams open after the reading.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Open a session (initialize) per stream instead of sharing one.
    #[arg(long)]
    session_per_stream: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// VmRSS of `pid` in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))?;
    Ok(kb * 1024)
}

fn parse_pid(spec: &str) -> anyhow::Result<(String, u32)> {
    match spec.split_once('=') {
        Some((name, pid)) => Ok((name.to_string(), pid.parse()?)),
        None => Ok((format!("pid {spec}"), spec.parse()?)),
    }
}

async fn new_session(conn: &mut Conn) -> anyhow::Result<String> {
    let answer = conn.post(None, wire::initialize(1).into()).await?;
    wire::check_response(answer.status, answer.content_type.as_bytes(), &answer.body)
        .map_err(|f| anyhow::anyhow!("initialize failed: {f:?} (HTTP {})", answer.status))?;
    let session = answer
        .session
        .ok_or_else(|| anyhow::anyhow!("no Mcp-Session-Id"))?;
    let note = conn.post(Some(&session), wire::INITIALIZED.into()).await?;
    anyhow::ensure!(note.status / 100 == 2, "initialized: HTTP {}", note.status);
    Ok(session)
}

/// One open stream: its connection and the body being held.
struct Open {
    conn: Conn,
    _body: Incoming,
}

async fn open(
    target: std::sync::Arc<Target>,
    token: String,
    shared: Option<String>,
) -> anyhow::Result<Open> {
    let mut conn = Conn::new(target, &token)?;
    let session = match shared {
        Some(s) => s,
        None => new_session(&mut conn).await?,
    };
    let resp = conn.open_stream(Some(&session)).await?;
    anyhow::ensure!(resp.status() == 200, "GET stream: HTTP {}", resp.status());
    let sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    anyhow::ensure!(sse, "GET stream: not text/event-stream");
    let mut body = resp.into_body();
    // The mock opens every stream with a comment: proof the stream flows end to end.
    match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
        Ok(Some(Ok(_))) => Ok(Open { conn, _body: body }),
        Ok(_) => anyhow::bail!("stream ended before its first event"),
        Err(_) => anyhow::bail!("no first event within 10 s"),
    }
}

fn readings(pids: &[(String, u32)]) -> anyhow::Result<Vec<u64>> {
    pids.iter().map(|(_, p)| rss(*p)).collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pids: Vec<(String, u32)> = args
        .pids
        .iter()
        .map(|p| parse_pid(p))
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let target = Target::resolve(&args.url).await?;
        let settle = Duration::from_secs_f64(args.settle);
        let mut first = Conn::new(target.clone(), &args.token)?;
        let shared = new_session(&mut first).await?;
        tokio::time::sleep(settle).await;
        let before = readings(&pids)?;

        let started = std::time::Instant::now();
        let shared = (!args.session_per_stream).then_some(shared);
        let results: Vec<anyhow::Result<Open>> = futures::stream::iter(0..args.streams)
            .map(|_| open(target.clone(), args.token.clone(), shared.clone()))
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let open_secs = started.elapsed().as_secs_f64();
        let mut failures: BTreeMap<String, usize> = BTreeMap::new();
        let mut streams = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(o) => streams.push(o),
                Err(e) => *failures.entry(format!("{e:#}")).or_default() += 1,
            }
        }
        tokio::time::sleep(settle).await;
        let after = readings(&pids)?;
        let closed = streams.iter().filter(|o| o.conn.is_closed()).count();
        let n = streams.len().max(1) as f64;

        let processes: Vec<serde_json::Value> = pids
            .iter()
            .zip(before.iter().zip(&after))
            .map(|((name, pid), (b, a))| {
                serde_json::json!({
                    "name": name, "pid": pid, "rss_before": b, "rss_after": a,
                    "bytes_per_stream": (*a as f64 - *b as f64) / n,
                })
            })
            .collect();
        if args.json {
            let j = serde_json::json!({
                "requested": args.streams, "open": streams.len() - closed, "closed": closed,
                "failed": failures.values().sum::<usize>(), "failures": failures,
                "open_seconds": open_secs, "session_per_stream": args.session_per_stream,
                "processes": processes,
            });
            println!("{j}");
        } else {
            println!(
                "idle-streams: {} of {} streams open ({} closed since, {} failed) in {open_secs:.1}s, {}",
                streams.len() - closed,
                args.streams,
                closed,
                failures.values().sum::<usize>(),
                if args.session_per_stream { "one session each" } else { "one shared session" }
            );
            for (why, count) in &failures {
                println!("  failed x{count}: {why}");
            }
            for p in &processes {
                println!(
                    "  {:<10} VmRSS {:>8.1} MiB -> {:>8.1} MiB: {:>6.2} KiB per stream",
                    p["name"].as_str().unwrap_or(""),
                    p["rss_before"].as_f64().unwrap_or(0.0) / 1048576.0,
                    p["rss_after"].as_f64().unwrap_or(0.0) / 1048576.0,
                    p["bytes_per_stream"].as_f64().unwrap_or(0.0) / 1024.0
                );
            }
        }
        if args.hold > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
            let closed = streams.iter().filter(|o| o.conn.is_closed()).count();
            eprintln!("after holding {}s: {closed} streams closed", args.hold);
        }
        anyhow::Ok(())
    })
}
