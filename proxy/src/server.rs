//! Serving the gateway: our own accept loop driving Pingora's HTTP proxy.
//!
//! Pingora's `Server` owns the process (signals, daemonizing, fixed listen
//! addresses). toolgate instead feeds accepted TCP streams to
//! `HttpProxy::process_new`, which Pingora supports for custom loops: tests get
//! OS-assigned ports and a clean shutdown, and `main` controls the runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use catalog::Snapshot;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::{HttpProxy, ProxyHttp};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admit::CONNECTION_TOKEN;
use crate::audit::Auditor;
use crate::coalesce::Coalesced;
use crate::front::{next_request, Next};
use crate::gateway::Gateway;
use crate::metrics::ProxyMetrics;
use crate::sessions::SessionSeal;
use crate::sessions::SESSION_TAG;
use crate::streams::{StreamRegistry, CONNECTION};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A running gateway listener.
pub struct ProxyHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// Stops accepting and signals open connections to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        let _ = self.task.await;
    }
}

/// What a gateway reports to, besides its log.
#[derive(Clone, Default)]
pub struct GatewayOptions {
    /// The audit trail (none: no records, as in most tests and benchmarks).
    pub auditor: Option<Auditor>,
    /// Prometheus metrics (served by [`crate::metrics::start_metrics`]).
    pub metrics: Option<Arc<ProxyMetrics>>,
}

/// Starts serving the gateway on `listener` with snapshots from `snapshots`.
pub fn start(
    listener: TcpListener,
    snapshots: Arc<ArcSwap<Snapshot>>,
) -> std::io::Result<ProxyHandle> {
    start_with(listener, snapshots, GatewayOptions::default())
}

/// [`start`], with an audit trail and other options.
pub fn start_with(
    listener: TcpListener,
    snapshots: Arc<ArcSwap<Snapshot>>,
    options: GatewayOptions,
) -> std::io::Result<ProxyHandle> {
    let streams = Arc::new(StreamRegistry::default());
    let seal = SessionSeal::random()?;
    let mut gateway = Gateway::new(snapshots.clone(), streams.clone(), seal);
    if let Some(metrics) = options.metrics {
        metrics.track_streams(&streams);
        if let Some(auditor) = &options.auditor {
            metrics.track_audit(auditor.clone());
        }
        gateway = gateway.with_metrics(metrics);
    }
    if let Some(auditor) = options.auditor {
        gateway = gateway.with_auditor(auditor);
    }
    let pool = gateway.upstream_pool();
    let sweeper = AbortOnDrop(tokio::spawn(sweep_on_change(snapshots, streams, pool)));
    let front = Arc::new(gateway.clone());
    serve_with_front(listener, gateway, Some(sweeper), Some(front))
}

/// Serves any Pingora `ProxyHttp` app with toolgate's accept loop (the
/// gateway, or a bare pass-through for benchmarks). `companion` is a task
/// that lives as long as the listener.
pub fn serve<SV>(
    listener: TcpListener,
    app: SV,
    companion: Option<AbortOnDrop>,
) -> std::io::Result<ProxyHandle>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    serve_with_front(listener, app, companion, None)
}

/// [`serve`], with event-stream requests offered to `front` first (see `front.rs`).
fn serve_with_front<SV>(
    listener: TcpListener,
    app: SV,
    companion: Option<AbortOnDrop>,
    front: Option<Arc<Gateway>>,
) -> std::io::Result<ProxyHandle>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let addr = listener.local_addr()?;
    let mut proxy = HttpProxy::new(app, Arc::new(ServerConf::default()));
    proxy.handle_init_modules();
    let (shutdown, watch) = watch::channel(false);
    let accept = accept_loop(listener, Arc::new(proxy), front, watch);
    let task = tokio::spawn(async move {
        // Aborting this task (stop) drops the companion, which ends it too.
        let _companion = companion;
        accept.await;
    });
    Ok(ProxyHandle {
        addr,
        shutdown,
        task,
    })
}

/// A task aborted when this handle is dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Re-checks open event streams whenever a new snapshot is swapped in.
/// Also closes idle upstream connections gone stale, every few seconds.
async fn sweep_on_change(
    snapshots: Arc<ArcSwap<Snapshot>>,
    streams: Arc<StreamRegistry>,
    pool: Arc<crate::upstream_pool::UpstreamPool>,
) {
    let mut seen = snapshots.load().version;
    let mut since_sweep = Duration::ZERO;
    loop {
        tokio::time::sleep(SWEEP_POLL).await;
        since_sweep += SWEEP_POLL;
        let current = snapshots.load_full();
        // Also every few seconds: a JWT expires without any snapshot change.
        if current.version != seen || since_sweep >= EXPIRY_SWEEP {
            pool.sweep();
            if current.version != seen {
                streams.snapshot_changed();
            }
            seen = current.version;
            since_sweep = Duration::ZERO;
            let ended = streams.sweep(&current);
            if ended > 0 {
                tracing::info!(
                    ended,
                    version = seen,
                    "ended event streams of callers who lost access"
                );
            }
        }
    }
}

/// How often the stream sweeper looks for a new snapshot.
const SWEEP_POLL: Duration = Duration::from_millis(100);
/// Open streams are re-checked at least this often, so a stream opened with
/// a JWT ends within this long of the token's expiry.
pub const EXPIRY_SWEEP: Duration = Duration::from_secs(5);

/// How long a kept-alive agent connection may wait for its next request.
const KEEPALIVE_IDLE_SECS: u64 = 60;

/// Most agent connections served at once.
pub const MAX_CONNECTIONS: usize = 20_000;

async fn accept_loop<SV>(
    listener: TcpListener,
    proxy: Arc<HttpProxy<SV>>,
    front: Option<Arc<Gateway>>,
    shutdown: watch::Receiver<bool>,
) where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, stop accepting until a connection ends (the kernel backlog holds the rest).
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let proxy = proxy.clone();
        let front = front.clone();
        let shutdown = shutdown.clone();
        let cancel = CancellationToken::new();
        let token = std::cell::RefCell::new(None);
        let task = CONNECTION.scope(cancel.clone(), async move {
            let _slot = slot;
            let serve = async {
                // Fixed-length responses leave in one send (see `coalesce`).
                let mut stream: Stream = Box::new(Coalesced::new(L4Stream::from(tcp)));
                let mut settings = None;
                // HTTP/1.1, one request at a time (Pingora's own loop, with a
                // look at each request first when there is a front).
                loop {
                    if let Some(gateway) = &front {
                        stream = match next_request(gateway, stream, &shutdown).await {
                            Next::Pingora(stream) => stream,
                            Next::Done => return,
                        };
                    }
                    let mut session = ServerSession::new_http1(stream);
                    match settings.take() {
                        Some(kept) => HttpPersistentSettings::apply_to_session(kept, &mut session),
                        None if *shutdown.borrow() => session.set_keepalive(None),
                        None => session.set_keepalive(Some(KEEPALIVE_IDLE_SECS)),
                    }
                    match proxy.process_new_http(session, &shutdown).await {
                        Some(reused) => (stream, settings) = reused.consume(),
                        None => return,
                    }
                }
            };
            // Cancelling drops the connection: how a revoked caller's stream
            // ends (`serve` first: a stream served by the gateway itself
            // notices and records its end).
            tokio::select! {
                biased;
                _ = serve => {}
                _ = cancel.cancelled() => {}
            }
        });
        let task = SESSION_TAG.scope(std::cell::RefCell::new(None), task);
        tokio::spawn(CONNECTION_TOKEN.scope(token, task));
    }
}
