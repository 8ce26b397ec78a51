//! A fast mock MCP server for load tests (see `toolgate_benches::mcp::mock`
//! for what it answers).
//!
//!   mock-mcp --listen 127.0.0.1:9400 [--token T] [--tools 20] [--progress 2] [--threads 1]

use std::net::SocketAddr;

use clap::Parser;
use toolgate_benches::mcp::mock::{serve, MockOptions};

/// A fast mock MCP server (Streamable HTTP on /mcp).
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9400")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` (also read from MOCK_MCP_TOKEN).
    #[arg(long, env = "MOCK_MCP_TOKEN")]
    token: Option<String>,
    /// Tools in `tools/list`.
    #[arg(long, default_value_t = 20)]
    tools: usize,
    /// Progress notifications before a streamed result.
    #[arg(long, default_value_t = 2)]
    progress: usize,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        eprintln!(
            "mock-mcp listening on http://{}/mcp",
            listener.local_addr()?
        );
        let options = MockOptions {
            tools: args.tools,
            token: args.token,
            progress: args.progress,
        };
        serve(listener, options).await?;
        Ok(())
    })
}
