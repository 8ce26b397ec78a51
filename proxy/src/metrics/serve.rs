//! The `/metrics` listener: a small axum app on an operator-only address,
//! separate from the agent-facing port.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use catalog::Snapshot;
use tokio::net::TcpListener;

use super::ProxyMetrics;

/// How often the snapshot version is checked, to date its age.
const SNAPSHOT_CHECK: Duration = Duration::from_millis(250);

#[derive(Clone)]
struct Scrape {
    metrics: Arc<ProxyMetrics>,
    snapshots: Arc<ArcSwap<Snapshot>>,
}

/// `GET /metrics` (Prometheus text format); every other path is 404.
pub fn router(metrics: Arc<ProxyMetrics>, snapshots: Arc<ArcSwap<Snapshot>>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape { metrics, snapshots })
}

async fn scrape(State(s): State<Scrape>) -> impl IntoResponse {
    s.metrics.observe_snapshot(s.snapshots.load().version);
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(),
    )
}

/// Serves `/metrics` on `listener` until the task is dropped or the
/// listener fails; meanwhile notes each new snapshot version within 250 ms,
/// for `toolgate_snapshot_age_seconds`.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<ProxyMetrics>,
    snapshots: Arc<ArcSwap<Snapshot>>,
) -> std::io::Result<()> {
    let app = router(metrics.clone(), snapshots.clone());
    let watch = async {
        loop {
            metrics.observe_snapshot(snapshots.load().version);
            tokio::time::sleep(SNAPSHOT_CHECK).await;
        }
    };
    tokio::select! {
        served = axum::serve(listener, app).into_future() => served,
        _ = watch => Ok(()),
    }
}

/// A running `/metrics` listener.
pub struct MetricsHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsHandle {
    /// Stops serving.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Spawns [`serve_metrics`] on `listener`.
pub fn start_metrics(
    listener: TcpListener,
    metrics: Arc<ProxyMetrics>,
    snapshots: Arc<ArcSwap<Snapshot>>,
) -> std::io::Result<MetricsHandle> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = serve_metrics(listener, metrics, snapshots).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(MetricsHandle { addr, task })
}
