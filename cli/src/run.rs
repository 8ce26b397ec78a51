//! Long-running commands: gateway, control plane, `up`, demo server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use toolgate_control_plane::api::{new_token, ApiKeys};
use toolgate_control_plane::audit::AuditStore;
use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::store::SqliteStore;
use toolgate_proxy::audit::{instance_name, AuditOptions, Auditor, Sink};
use toolgate_proxy::demo::{self, DemoOptions};
use toolgate_proxy::metrics::{start_metrics, ProxyMetrics};
use toolgate_proxy::reload::{resolve_secret, ConfigDir};
use toolgate_proxy::remote::ControlPlane;
use toolgate_proxy::server::GatewayOptions;

/// A Tokio runtime with `threads` workers (default: one per core). One
/// thread gets a current-thread runtime, as Pingora's own servers use: no
/// work-stealing queues or cross-thread wake-ups to pay for.
pub fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads <= 1 {
        return Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?);
    }
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

/// `toolgate config check DIR`.
pub fn config_check(dir: &Path) -> anyhow::Result<()> {
    let snapshot = ConfigDir::new(dir).compile(1)?;
    println!(
        "{}: valid ({} routable servers, {} policy classes)",
        dir.display(),
        snapshot.upstream_count(),
        snapshot.class_count()
    );
    Ok(())
}

/// Where the gateway keeps its audit trail.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Directory where audit records wait until delivered (created 0700).
    #[arg(long, default_value = "toolgate-audit-spool")]
    pub audit_spool: PathBuf,
    /// The spool's cap in bytes; when full, each server's
    /// `audit.when_spool_full` (reject or drop) applies.
    #[arg(long, default_value_t = toolgate_proxy::audit::DEFAULT_MAX_SPOOL_BYTES)]
    pub audit_spool_max_bytes: u64,
    /// Longest a record waits in memory before its batch is written to the
    /// spool and fsynced (milliseconds): a crash loses at most this much.
    /// Longer means fewer disk syncs.
    #[arg(long, default_value_t = toolgate_proxy::audit::DEFAULT_FLUSH_INTERVAL.as_millis() as u64)]
    pub audit_flush_ms: u64,
    /// In file mode, the JSON Lines file records are delivered to (with
    /// `--control-plane` they go to the control plane).
    #[arg(long, default_value = "toolgate-audit.jsonl")]
    pub audit_log: PathBuf,
    /// Keep no audit trail at all (benchmarks; not for production).
    #[arg(long)]
    pub no_audit: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (an internal address:
    /// agents never see this listener).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

/// `toolgate proxy`: file mode or following a control plane.
pub async fn proxy(
    config: PathBuf,
    control_plane: Option<String>,
    cache: PathBuf,
    listen: SocketAddr,
    demo: bool,
    audit: AuditArgs,
) -> anyhow::Result<()> {
    let (store, sink) = match control_plane {
        Some(url) => {
            let token = std::env::var("TOOLGATE_PROXY_TOKEN")
                .context("TOOLGATE_PROXY_TOKEN must hold the proxy token")?;
            let sink = Sink::ControlPlane {
                url: url.clone(),
                token: token.clone(),
            };
            (follow(ControlPlane { url, token, cache }).await?, sink)
        }
        None => {
            let dir = ConfigDir::new(&config);
            let (snapshot, since) = dir
                .compile_initial()
                .with_context(|| format!("config {} is invalid", config.display()))?;
            let store = Arc::new(ArcSwap::from_pointee(snapshot));
            tokio::spawn(dir.watch(store.clone(), Duration::from_millis(250), since));
            (store, Sink::File(audit.audit_log.clone()))
        }
    };
    if demo {
        start_demo(&config).await?;
    }
    let metrics_listen_arg = audit.metrics_listen;
    let audit = (!audit.no_audit).then(|| AuditOptions {
        spool_dir: audit.audit_spool,
        max_spool_bytes: audit.audit_spool_max_bytes,
        sink,
        gateway: instance_name(),
        flush_interval: Duration::from_millis(audit.audit_flush_ms.max(1)),
    });
    serve_gateway(listen, store, audit, metrics_listen_arg).await
}

async fn follow(remote: ControlPlane) -> anyhow::Result<Arc<ArcSwap<catalog::Snapshot>>> {
    let snapshot = remote.bootstrap().await?;
    let store = Arc::new(ArcSwap::from_pointee(snapshot));
    tokio::spawn(remote.follow(store.clone()));
    Ok(store)
}

async fn start_demo(config: &Path) -> anyhow::Result<()> {
    let token = resolve_secret(config, "file:secrets/demo-upstream-token").ok();
    let listener = TcpListener::bind("127.0.0.1:9300")
        .await
        .context("demo server: binding 127.0.0.1:9300")?;
    let options = DemoOptions {
        token,
        json_response: false,
        sessions: true,
    };
    tokio::spawn(demo::serve(listener, options, CancellationToken::new()));
    tracing::info!("demo MCP server on 127.0.0.1:9300/mcp");
    Ok(())
}

async fn serve_gateway(
    listen: SocketAddr,
    store: Arc<ArcSwap<catalog::Snapshot>>,
    audit: Option<AuditOptions>,
    metrics_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let (auditor, audit_tasks) = match audit {
        Some(audit) => {
            let spool = audit.spool_dir.clone();
            let (auditor, tasks) = Auditor::start(audit)
                .with_context(|| format!("opening the audit spool {}", spool.display()))?;
            (Some(auditor), Some(tasks))
        }
        None => {
            tracing::warn!("audit trail disabled (--no-audit): tool calls are not recorded");
            (None, None)
        }
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let metrics = Arc::new(ProxyMetrics::new());
    let _metrics_listener = match metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics listener {addr}"))?;
            let handle = start_metrics(listener, metrics.clone(), store.clone())?;
            tracing::info!(addr = %handle.addr, "Prometheus metrics at http://{}/metrics", handle.addr);
            Some(handle)
        }
        None => None,
    };
    let options = GatewayOptions {
        auditor,
        metrics: Some(metrics),
    };
    let handle = toolgate_proxy::server::start_with(listener, store, options)?;
    tracing::info!(addr = %handle.addr, "toolgate gateway: agents connect to http://{}/mcp/<server>", handle.addr);
    wait_for_stop_signal().await?;
    handle.stop().await;
    // Every record of a finished request is on disk before the process ends.
    if let Some(tasks) = audit_tasks {
        tasks.shutdown().await;
    }
    Ok(())
}

fn api_keys(admin: &str, proxy: &str) -> ApiKeys {
    ApiKeys {
        admins: vec![("admin".to_string(), catalog::token_digest(admin))],
        proxies: vec![catalog::token_digest(proxy)],
    }
}

/// Starts the API on `listen`: the registry in `db`, the audit trail in
/// `audit.db` beside it (records kept `audit_retention_days` days, 0: forever).
async fn start_control_plane(
    config: &Path,
    db: &Path,
    listen: SocketAddr,
    keys: ApiKeys,
    audit_retention_days: u32,
    keyring: Keyring,
) -> anyhow::Result<SocketAddr> {
    let store = SqliteStore::open(db).with_context(|| format!("opening {}", db.display()))?;
    let (store, resealed) = store.with_keyring(keyring)?;
    if resealed > 0 {
        tracing::info!(
            resealed,
            "secrets sealed under the current master key (plain or under a previous key before)"
        );
    }
    let registry = Registry::open(config, Box::new(store))?;
    // Where users reach the API (delegated OAuth redirects and connect URLs);
    // default: the listen address.
    if let Ok(url) = std::env::var("TOOLGATE_CONTROL_PLANE_URL") {
        registry.delegated().set_public_url(&url);
    }
    let audit_db = db.with_file_name("audit.db");
    let audit = AuditStore::open(&audit_db, audit_retention_days)
        .with_context(|| format!("opening {}", audit_db.display()))?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let handle = toolgate_control_plane::serve::start(
        listener,
        registry,
        Arc::new(audit),
        keys,
        Duration::from_millis(250),
    )?;
    tracing::info!(addr = %handle.addr, "control plane API (OpenAPI at /openapi.json)");
    let addr = handle.addr;
    // Runs until the process stops.
    std::mem::forget(handle);
    Ok(addr)
}

/// `toolgate control-plane`.
pub async fn control_plane(
    config: PathBuf,
    db: PathBuf,
    listen: SocketAddr,
    audit_retention_days: u32,
    master_key_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let admin = std::env::var("TOOLGATE_ADMIN_TOKEN")
        .context("TOOLGATE_ADMIN_TOKEN must hold the admin token")?;
    let proxy = std::env::var("TOOLGATE_PROXY_TOKEN")
        .context("TOOLGATE_PROXY_TOKEN must hold the proxy token")?;
    let keyring = keyring(master_key_file.as_deref(), None)?;
    start_control_plane(
        &config,
        &db,
        listen,
        api_keys(&admin, &proxy),
        audit_retention_days,
        keyring,
    )
    .await?;
    wait_for_stop_signal().await
}

/// The master key that seals secrets at rest: `TOOLGATE_MASTER_KEY`, else
/// the key file given, else (for `up`) a key generated into `generated`
/// on first use. Keys being rotated out go in
/// `TOOLGATE_PREVIOUS_MASTER_KEYS` (comma-separated) until the store has
/// re-sealed everything under the new one (it does so when it opens).
fn keyring(file: Option<&Path>, generated: Option<&Path>) -> anyhow::Result<Keyring> {
    let text = match (std::env::var("TOOLGATE_MASTER_KEY"), file, generated) {
        (Ok(key), _, _) => key,
        (Err(_), Some(file), _) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the master key file {}", file.display()))?,
        (Err(_), None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(key) => key,
            Err(_) => {
                let key = MasterKey::generate();
                write_private(path, &key)?;
                tracing::info!(file = %path.display(), "generated a master key for secrets at rest; back it up: the secrets cannot be read without it");
                key
            }
        },
        (Err(_), None, None) => anyhow::bail!(
            "secrets are encrypted at rest: set TOOLGATE_MASTER_KEY (32 bytes as base64 or hex, e.g. `openssl rand -base64 32`) or pass --master-key-file"
        ),
    };
    let current = MasterKey::parse(&text).context("the master key")?;
    let previous = std::env::var("TOOLGATE_PREVIOUS_MASTER_KEYS")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(MasterKey::parse)
        .collect::<Result<Vec<_>, _>>()
        .context("TOOLGATE_PREVIOUS_MASTER_KEYS")?;
    tracing::info!(
        key_id = current.id(),
        previous = previous.len(),
        "master key loaded"
    );
    Ok(Keyring::new(current, previous))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok(())
}

/// A token kept in `path` (mode 0600), created on first use.
fn token_file(path: &Path) -> anyhow::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        return Ok(t.trim().to_string());
    }
    let token = new_token().map_err(anyhow::Error::msg)?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, token.as_bytes())?;
    Ok(token)
}

/// `toolgate up`: control plane + gateway + demo server in one process.
pub async fn up(
    config: PathBuf,
    data: PathBuf,
    listen: SocketAddr,
    api: SocketAddr,
    audit_retention_days: u32,
    metrics_listen: SocketAddr,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let admin = match std::env::var("TOOLGATE_ADMIN_TOKEN") {
        Ok(t) => t,
        Err(_) => token_file(&data.join("admin-token"))?,
    };
    let proxy = token_file(&data.join("proxy-token"))?;
    start_demo(&config).await?;
    let keyring = keyring(None, Some(&data.join("master-key")))?;
    let api = start_control_plane(
        &config,
        &data.join("toolgate.db"),
        api,
        api_keys(&admin, &proxy),
        audit_retention_days,
        keyring,
    )
    .await?;
    let url = format!("http://{api}");
    let audit = AuditOptions {
        spool_dir: data.join("audit-spool"),
        max_spool_bytes: toolgate_proxy::audit::DEFAULT_MAX_SPOOL_BYTES,
        sink: Sink::ControlPlane {
            url: url.clone(),
            token: proxy.clone(),
        },
        gateway: instance_name(),
        flush_interval: toolgate_proxy::audit::DEFAULT_FLUSH_INTERVAL,
    };
    let store = follow(ControlPlane {
        url,
        token: proxy,
        cache: data.join("snapshot.json"),
    })
    .await?;
    tracing::info!(
        "operator CLI: export TOOLGATE_URL=http://{api} TOOLGATE_ADMIN_TOKEN=$(cat {})",
        data.join("admin-token").display()
    );
    serve_gateway(listen, store, Some(audit), Some(metrics_listen)).await
}

/// `toolgate demo-server`.
pub async fn demo_server(listen: SocketAddr, token_file: Option<PathBuf>) -> anyhow::Result<()> {
    let token = token_file
        .map(|p| std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display())))
        .transpose()?
        .map(|t| t.trim().to_string());
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(%listen, "demo MCP server at /mcp");
    let options = DemoOptions {
        token,
        json_response: true,
        sessions: true,
    };
    demo::serve(listener, options, CancellationToken::new()).await;
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
