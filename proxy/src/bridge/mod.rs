//! Bridges: non-HTTP upstreams (stdio processes, legacy HTTP+SSE servers)
//! served to the gateway as ordinary Streamable HTTP upstreams.
//!
//! Design. For each such server the proxy runs a small Streamable HTTP
//! endpoint ([`front`]) on `127.0.0.1`, port 0, inside the proxy process; the
//! gateway's `upstream_peer` asks [`Bridges::peer_addr`] for its address and
//! proxies to it like any other upstream, so admission, RBAC, `tools/list`
//! filtering, audit, metrics and session sealing apply unchanged.
//!
//! - A bridge starts on first use, keyed by server name and a fingerprint of
//!   its spec (a config change starts a new one); bridges of servers gone
//!   from the snapshot are stopped by a sweeper.
//! - Each downstream MCP session gets a [`Connection`] from the server's
//!   [`Backend`]: a process of its own ([`stdio`], `per-session`), a share of
//!   one process with JSON-RPC ids remapped ([`shared`]), or its own upstream
//!   event stream ([`legacy_sse`]). [`session`] matches responses to requests.
//! - Only the gateway may call a bridge: it listens on loopback and requires
//!   [`BRIDGE_SECRET_HEADER`] carrying a random per-process secret that the
//!   gateway adds to every bridged request.

pub mod front;
pub mod legacy_sse;
pub mod session;
pub mod shared;
pub mod stdio;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use catalog::model::{StdioMode, Transport};
use catalog::{Snapshot, Upstream};
use http::HeaderValue;
use pingora_core::upstreams::peer::HttpPeer;
use serde_json::Value;
use tokio::sync::mpsc;

/// The header carrying the per-process secret from the gateway to its bridges.
pub const BRIDGE_SECRET_HEADER: &str = "x-toolgate-bridge";

/// How often bridges of removed or changed servers are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// One MCP conversation with a backend: JSON-RPC messages out and in.
/// Dropping it ends the conversation (a per-session process is stopped).
pub struct Connection {
    /// Messages to the server.
    pub to_server: mpsc::Sender<Value>,
    /// Messages from the server; ends when the server goes away.
    pub from_server: mpsc::Receiver<Value>,
}

/// Why a backend could not give a session its connection.
#[derive(Debug, Clone)]
pub enum BackendError {
    /// At capacity (`max_processes`): try again later (503).
    Busy(String),
    /// The server could not be started or reached (502).
    Unavailable(String),
}

impl BackendError {
    /// The operator-readable reason.
    pub fn message(&self) -> &str {
        match self {
            BackendError::Busy(m) | BackendError::Unavailable(m) => m,
        }
    }
}

/// Where the sessions of a bridged server get their connection.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A new connection for one downstream session; `credential` is the
    /// header value the gateway injected (sent only to the server's origin).
    async fn connect(&self, credential: Option<HeaderValue>) -> Result<Connection, BackendError>;
}

struct Running {
    fingerprint: [u8; 32],
    bridge: front::RunningBridge,
}

/// The running bridges of one gateway.
pub struct Bridges {
    secret: Arc<str>,
    snapshots: Arc<ArcSwap<Snapshot>>,
    running: tokio::sync::Mutex<HashMap<Arc<str>, Running>>,
    sweeper: OnceLock<crate::server::AbortOnDrop>,
}

impl Bridges {
    /// Bridges for the servers of the snapshots in `snapshots`.
    pub fn new(snapshots: Arc<ArcSwap<Snapshot>>) -> Arc<Bridges> {
        Arc::new(Bridges {
            secret: random_hex().into(),
            snapshots,
            running: Default::default(),
            sweeper: OnceLock::new(),
        })
    }

    /// The value of [`BRIDGE_SECRET_HEADER`] the bridges accept.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The loopback address of `up`'s bridge, started on first use (and
    /// restarted when its spec changed).
    pub async fn peer_addr(self: &Arc<Self>, up: &Upstream) -> Result<SocketAddr, String> {
        self.sweeper
            .get_or_init(|| crate::server::AbortOnDrop(tokio::spawn(sweep(Arc::downgrade(self)))));
        let fingerprint = fingerprint(up);
        let mut running = self.running.lock().await;
        if let Some(r) = running.get(&up.name) {
            if r.fingerprint == fingerprint {
                return Ok(r.bridge.addr);
            }
        }
        let backend = backend_for(up)?;
        let credential_header = up.credential.as_ref().map(|(name, _)| name.clone());
        let bridge = front::start(
            up.name.clone(),
            backend,
            self.secret.clone(),
            credential_header,
            idle_timeout(up),
        )
        .await
        .map_err(|e| format!("{}: cannot start the bridge: {e}", up.name))?;
        tracing::info!(server = %up.name, addr = %bridge.addr, transport = ?up.transport, "bridge started");
        let addr = bridge.addr;
        // Replacing a stale bridge drops it: its sessions and processes end.
        running.insert(
            up.name.clone(),
            Running {
                fingerprint,
                bridge,
            },
        );
        Ok(addr)
    }

    /// Stops the bridges of servers no longer in `snapshot` (or changed).
    pub async fn retain(&self, snapshot: &Snapshot) {
        let mut running = self.running.lock().await;
        running.retain(|name, r| {
            let keep = snapshot
                .upstream(name)
                .is_some_and(|up| fingerprint(up) == r.fingerprint);
            if !keep {
                tracing::info!(server = %name, "bridge stopped: server removed or changed");
            }
            keep
        });
    }
}

/// The gateway's peer for a bridged server: its bridge on loopback, plain
/// HTTP. A bridge that cannot start answers 502 with the reason.
pub async fn peer(bridges: &Arc<Bridges>, up: &Upstream) -> pingora_error::Result<Box<HttpPeer>> {
    let addr = bridges.peer_addr(up).await.map_err(|m| {
        tracing::warn!(server = %up.name, error = %m, "bridge unavailable");
        pingora_error::Error::explain(pingora_error::ErrorType::HTTPStatus(502), m)
    })?;
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(Duration::from_secs(2));
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    Ok(Box::new(peer))
}

async fn sweep(bridges: Weak<Bridges>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(bridges) = bridges.upgrade() else {
            return;
        };
        let snapshot = bridges.snapshots.load_full();
        if snapshot.version != seen {
            seen = snapshot.version;
            bridges.retain(&snapshot).await;
        }
    }
}

fn idle_timeout(up: &Upstream) -> Duration {
    Duration::from_secs(
        up.stdio
            .as_ref()
            .map_or(legacy_sse::IDLE_TIMEOUT_SECS, |s| s.idle_timeout_secs),
    )
}

fn backend_for(up: &Upstream) -> Result<Arc<dyn Backend>, String> {
    match (up.transport, &up.stdio) {
        (Transport::Stdio, Some(spec)) => {
            let processes = stdio::Processes::new(up.name.clone(), spec.clone());
            Ok(match spec.mode {
                StdioMode::PerSession => Arc::new(processes),
                StdioMode::Shared => Arc::new(shared::SharedProcess::new(processes)),
            })
        }
        (Transport::Sse, _) => Ok(Arc::new(legacy_sse::LegacySse::new(up)?)),
        _ => Err(format!("{}: no bridge for this transport", up.name)),
    }
}

/// What makes a running bridge stale: the transport and everything that
/// shapes the process or the upstream URL.
fn fingerprint(up: &Upstream) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(format!("{:?}\0", up.transport));
    // Which header carries the credential (its value may rotate freely).
    let credential_header = up.credential.as_ref().map(|(name, _)| name.as_str());
    h.update(format!("{credential_header:?}\0"));
    match &up.stdio {
        Some(spec) => h.update(spec.fingerprint()),
        None => {
            let e = &up.endpoint;
            h.update(format!("{}\0{}\0{}", e.tls, e.authority, e.path_and_query));
        }
    }
    h.finalize().into()
}

/// 128 random bits as hex, from the OS-seeded hasher keys (no I/O).
pub(crate) fn random_hex() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one((n, 1u8));
    let b = state.hash_one((n, 2u8));
    format!("{a:016x}{b:016x}")
}
