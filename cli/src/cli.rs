//! The `toolgate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use toolgate_proxy::demo::{self, DemoOptions};
use toolgate_proxy::reload::{resolve_secret, ConfigDir};

/// toolgate: an MCP registry and gateway.
#[derive(Debug, Parser)]
#[command(name = "toolgate", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway on a config directory (hot-reloaded).
    Proxy {
        /// The catalog directory.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// Address agents connect to.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Also run the demo MCP server on 127.0.0.1:9300 (the example config's `demo`).
        #[arg(long)]
        demo: bool,
    },
    /// Run only the demo MCP server.
    DemoServer {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9300")]
        listen: SocketAddr,
        /// Require this bearer token, read from a file.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Validate config files offline.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Gateway tokens (PATs).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and compile a config directory; print every error with file and field.
    Check {
        /// The catalog directory.
        #[arg(default_value = "config")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new random token and the SHA-256 digest to put in config.
    New,
}

/// Parses arguments and runs the chosen command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command {
        Command::Proxy {
            config,
            listen,
            threads,
            demo,
        } => runtime(threads)?.block_on(run_proxy(config, listen, demo)),
        Command::DemoServer { listen, token_file } => runtime(Some(1))?.block_on(async move {
            let token = token_file
                .map(|p| {
                    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()?
                .map(|t| t.trim().to_string());
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(%listen, "demo MCP server at /mcp");
            let options = DemoOptions {
                token,
                json_response: true,
                sessions: true,
            };
            demo::serve(listener, options, CancellationToken::new()).await;
            Ok(())
        }),
        Command::Config {
            command: ConfigCommand::Check { dir },
        } => {
            let snapshot = ConfigDir::new(&dir).compile(1)?;
            println!(
                "{}: valid ({} routable servers, {} policy classes)",
                dir.display(),
                snapshot.upstream_count(),
                snapshot.class_count()
            );
            Ok(())
        }
        Command::Token {
            command: TokenCommand::New,
        } => {
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
                .context("reading /dev/urandom")?;
            let token = format!("tg_{}", hex::encode(bytes));
            println!("token:  {token}");
            println!("sha256: {}", hex::encode(catalog::token_digest(&token)));
            println!("Give the token to its owner once; put only the sha256 in config.");
            Ok(())
        }
    }
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

async fn run_proxy(config: PathBuf, listen: SocketAddr, demo: bool) -> anyhow::Result<()> {
    let dir = ConfigDir::new(&config);
    let (snapshot, since) = dir
        .compile_initial()
        .with_context(|| format!("config {} is invalid", config.display()))?;
    let store = Arc::new(ArcSwap::from_pointee(snapshot));
    tokio::spawn(
        dir.clone()
            .watch(store.clone(), Duration::from_millis(250), since),
    );
    if demo {
        let token = resolve_secret(&config, "file:secrets/demo-upstream-token").ok();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:9300")
            .await
            .context("demo server: binding 127.0.0.1:9300")?;
        let options = DemoOptions {
            token,
            json_response: false,
            sessions: true,
        };
        tokio::spawn(demo::serve(listener, options, CancellationToken::new()));
        tracing::info!("demo MCP server on 127.0.0.1:9300/mcp");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let handle = toolgate_proxy::server::start(listener, store)?;
    tracing::info!(addr = %handle.addr, "toolgate gateway: agents connect to http://{}/mcp/<server>", handle.addr);
    wait_for_stop_signal().await?;
    handle.stop().await;
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    Ok(())
}
