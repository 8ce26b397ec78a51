//! The `toolgate` binary: gateway, control plane and operator CLI.
//! See `toolgate --help`.

mod audit;
mod connect;
mod ops;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: small per-request allocations (headers, JSON-RPC messages,
/// audit events freed on another thread) cost less than with glibc's malloc,
/// whose arenas contend when one thread frees what another allocated.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// toolgate: an MCP registry and gateway.
#[derive(Debug, Parser)]
#[command(name = "toolgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: control plane (embedded SQLite), gateway
    /// following it, and the demo MCP server. The quick start.
    Up {
        /// The catalog directory.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// Where the database, the snapshot cache and the generated tokens live.
        #[arg(long, default_value = ".toolgate")]
        data: PathBuf,
        /// Address agents connect to.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address of the control plane API.
        #[arg(long, default_value = "127.0.0.1:7070")]
        api: SocketAddr,
        /// Days audit records are kept (0: forever).
        #[arg(long, default_value_t = toolgate_control_plane::audit::DEFAULT_RETENTION_DAYS)]
        audit_retention_days: u32,
        /// Where the gateway serves Prometheus metrics (`/metrics`).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_listen: SocketAddr,
    },
    /// Run the gateway: on a config directory (hot-reloaded), or following a
    /// control plane (`--control-plane URL`, proxy token in TOOLGATE_PROXY_TOKEN).
    Proxy {
        /// The catalog directory (file mode).
        #[arg(long, default_value = "config", conflicts_with = "control_plane")]
        config: PathBuf,
        /// Follow this control plane instead of a config directory.
        #[arg(long)]
        control_plane: Option<String>,
        /// The last good snapshot from the control plane (mode 0600).
        #[arg(long, default_value = "toolgate-snapshot.json")]
        cache: PathBuf,
        /// Address agents connect to.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Also run the demo MCP server on 127.0.0.1:9300 (the example config's `demo`).
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        audit: run::AuditArgs,
    },
    /// Run the control plane (admin token in TOOLGATE_ADMIN_TOKEN, proxy
    /// token in TOOLGATE_PROXY_TOKEN).
    ControlPlane {
        /// The catalog directory.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// The SQLite database.
        #[arg(long, default_value = "toolgate.db")]
        db: PathBuf,
        /// API address.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// Days audit records are kept (0: forever); they live in `audit.db`
        /// beside the database.
        #[arg(long, default_value_t = toolgate_control_plane::audit::DEFAULT_RETENTION_DAYS)]
        audit_retention_days: u32,
        /// File holding the master key that seals secrets at rest (32 bytes,
        /// base64 or hex); TOOLGATE_MASTER_KEY takes precedence.
        #[arg(long)]
        master_key_file: Option<PathBuf>,
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
    /// Registered servers (control plane API: TOOLGATE_URL, TOOLGATE_ADMIN_TOKEN).
    Server {
        #[command(subcommand)]
        command: ops::ServerCommand,
    },
    /// Gateway tokens issued by the control plane.
    Pat {
        #[command(subcommand)]
        command: ops::PatCommand,
    },
    /// Users and agents (offboarding: `principal disable NAME`).
    Principal {
        #[command(subcommand)]
        command: ops::PrincipalCommand,
    },
    /// Secrets held by the control plane (write-only).
    Secret {
        #[command(subcommand)]
        command: ops::SecretCommand,
    },
    /// The audit trail kept by the control plane (TOOLGATE_URL, TOOLGATE_ADMIN_TOKEN).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Connect your own account to a server with delegated OAuth: prints
    /// the URL to open (TOOLGATE_URL, your gateway token in TOOLGATE_TOKEN).
    Connect {
        /// Server name.
        server: String,
        /// Disconnect instead (the control plane forgets your tokens).
        #[arg(long)]
        disconnect: bool,
    },
    /// A token and digest for config files (no control plane needed).
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Up {
            config,
            data,
            listen,
            api,
            audit_retention_days,
            metrics_listen,
        } => run::runtime(None)?.block_on(run::up(
            config,
            data,
            listen,
            api,
            audit_retention_days,
            metrics_listen,
        )),
        Command::Proxy {
            config,
            control_plane,
            cache,
            listen,
            threads,
            demo,
            audit,
        } => run::runtime(threads)?.block_on(run::proxy(
            config,
            control_plane,
            cache,
            listen,
            demo,
            audit,
        )),
        Command::ControlPlane {
            config,
            db,
            listen,
            audit_retention_days,
            master_key_file,
        } => run::runtime(None)?.block_on(run::control_plane(
            config,
            db,
            listen,
            audit_retention_days,
            master_key_file,
        )),
        Command::DemoServer { listen, token_file } => {
            run::runtime(Some(1))?.block_on(run::demo_server(listen, token_file))
        }
        Command::Config {
            command: ConfigCommand::Check { dir },
        } => run::config_check(&dir),
        Command::Server { command } => run::runtime(Some(1))?.block_on(ops::server(command)),
        Command::Pat { command } => run::runtime(Some(1))?.block_on(ops::pat(command)),
        Command::Secret { command } => run::runtime(Some(1))?.block_on(ops::secret(command)),
        Command::Principal { command } => run::runtime(Some(1))?.block_on(ops::principal(command)),
        Command::Audit { command } => run::runtime(Some(1))?.block_on(audit::run(command)),
        Command::Connect { server, disconnect } => {
            run::runtime(Some(1))?.block_on(connect::connect(server, disconnect))
        }
        Command::Token {
            command: TokenCommand::New,
        } => {
            let token = toolgate_control_plane::api::new_token().map_err(anyhow::Error::msg)?;
            println!("token:  {token}");
            println!("sha256: {}", hex::encode(catalog::token_digest(&token)));
            println!("Give the token to its owner once; put only the sha256 in config.");
            Ok(())
        }
    }
}
