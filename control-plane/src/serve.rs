//! Running the control plane: the HTTP API plus the `config/` watcher, the
//! audit retention task and the upstream OAuth token refresher.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{app, ApiKeys};
use crate::audit::{retention_task, AuditStore, RETENTION_INTERVAL};
use crate::registry::Registry;

/// A running control plane.
pub struct ControlPlaneHandle {
    /// Where the API listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    retention: tokio::task::JoinHandle<()>,
    oauth: tokio::task::JoinHandle<()>,
    delegated: tokio::task::JoinHandle<()>,
}

impl ControlPlaneHandle {
    /// Stops serving (abruptly, as a crash would).
    pub async fn stop(self) {
        self.watcher.abort();
        self.retention.abort();
        self.oauth.abort();
        self.delegated.abort();
        self.task.abort();
        let _ = self.task.await;
        let _ = self.watcher.await;
    }
}

/// Serves the API on `listener`, watches `config/` every `poll`, and applies
/// the audit store's retention now and hourly.
pub fn start(
    listener: TcpListener,
    registry: Arc<Registry>,
    audit: Arc<AuditStore>,
    keys: ApiKeys,
    poll: Duration,
) -> std::io::Result<ControlPlaneHandle> {
    let addr = listener.local_addr()?;
    let router = app(registry.clone(), audit.clone(), keys);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "control plane API stopped");
        }
    });
    let oauth = tokio::spawn(crate::oauth::refresh_loop(registry.clone()));
    // Unless set (`--public-url`), users reach the API where it listens.
    registry
        .delegated()
        .set_public_url(&format!("http://{addr}"));
    let delegated = tokio::spawn(crate::delegated::refresh::refresh_loop(registry.clone()));
    let watcher = tokio::spawn(watch_config(registry, poll));
    let retention = tokio::spawn(retention_task(audit, RETENTION_INTERVAL));
    Ok(ControlPlaneHandle {
        addr,
        task,
        watcher,
        retention,
        oauth,
        delegated,
    })
}

/// Republishes when the YAML files change; logs refused edits (file and field).
async fn watch_config(registry: Arc<Registry>, poll: Duration) {
    let dir = registry.config_dir().to_path_buf();
    let mut last = catalog::fs::read_config_files(&dir).ok();
    loop {
        tokio::time::sleep(poll).await;
        let Ok(files) = catalog::fs::read_config_files(&dir) else {
            continue;
        };
        if last.as_ref() == Some(&files) {
            continue;
        }
        last = Some(files);
        match registry.reload_config() {
            Ok(version) => tracing::info!(version, "config reloaded"),
            Err(e) => {
                for line in e.to_string().lines() {
                    tracing::error!("config edit refused, keeping the last good snapshot: {line}");
                }
            }
        }
    }
}
