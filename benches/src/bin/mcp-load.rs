//! A load generator that behaves like many MCP agents: each agent holds its
//! own keep-alive connection and MCP session and sends a mix of `tools/list`
//! and `tools/call` requests. Closed loop (default) measures saturation;
//! `--rate R` runs an open loop at R requests/s in total, with latency taken
//! from each request's scheduled send time (no coordinated omission).
//!
//!   mcp-load --url http://127.0.0.1:8080/mcp/mock --token T --agents 64 --duration 10
//!   mcp-load --url ... --rate 5000 --agents 64 --duration 10 --json

use std::time::{Duration, Instant};

use clap::Parser;
use toolgate_benches::mcp::agent::{Mix, Plan};
use toolgate_benches::mcp::conn::Target;
use toolgate_benches::mcp::{self, wire};

/// Simulated MCP agents against one Streamable HTTP endpoint.
#[derive(Debug, Parser)]
struct Args {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp/mock.
    #[arg(long)]
    url: String,
    /// Bearer token every agent presents.
    #[arg(long, env = "MCP_TOKEN", hide_env_values = true)]
    token: String,
    /// Simulated agents (one connection and one session each).
    #[arg(long, default_value_t = 16)]
    agents: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds before measuring (sessions are opened then).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop at this many requests/s in total; without it, closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Weights of the request kinds: list (tools/list), call (small
    /// tools/call, JSON), large (large arguments and result), sse (tools/call
    /// answered as an event stream).
    #[arg(long, default_value = "list=1,call=6,large=1,sse=2")]
    mix: String,
    /// Bytes of arguments in a `large` call.
    #[arg(long, default_value_t = 16 * 1024)]
    large_args: usize,
    /// Bytes of text the mock returns for a `large` call.
    #[arg(long, default_value_t = 64 * 1024)]
    large_result: usize,
    /// Requests per session before an agent opens a new one (0: one session per agent).
    #[arg(long, default_value_t = 0)]
    session_length: u64,
    /// Seconds before an unanswered request counts as a transport error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Runtime worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(args.duration > 0.0, "--duration must be positive");
    let mix = Mix::parse(&args.mix).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let target = Target::resolve(&args.url).await?;
        let start = Instant::now() + Duration::from_millis(20);
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let interval = args
            .rate
            .map(|r| Duration::from_secs_f64(args.agents as f64 / r.max(1e-3)));
        let plan = Plan {
            target,
            token: args.token.clone(),
            mix,
            large_arguments: wire::large_arguments(args.large_args, args.large_result),
            session_length: args.session_length,
            timeout: Duration::from_secs_f64(args.timeout),
            start,
            measure_from,
            end: measure_from + Duration::from_secs_f64(args.duration),
            interval,
            // Spread the agents' first requests over one interval.
            stagger: interval.map_or(Duration::ZERO, |i| i / args.agents as u32),
        };
        let report = mcp::run(plan, args.agents).await;
        let mode = match args.rate {
            Some(r) => format!("open loop at {r:.0} req/s"),
            None => "closed loop".to_string(),
        };
        if args.json {
            let mut j = report.json();
            j["mode"] = serde_json::json!(if args.rate.is_some() {
                "open"
            } else {
                "closed"
            });
            j["target_rps"] = serde_json::json!(args.rate);
            j["agents"] = serde_json::json!(args.agents);
            j["mix"] = serde_json::json!(args.mix);
            j["url"] = serde_json::json!(args.url);
            println!("{j}");
        } else {
            println!(
                "mcp-load: {mode}, {} agents, {}s (+{}s warm-up), mix {}, {}",
                args.agents, args.duration, args.warmup, args.mix, args.url
            );
            print!("{}", report.table());
        }
        anyhow::Ok(())
    })
}
