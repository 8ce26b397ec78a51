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
use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::HttpProxy;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::gateway::Gateway;

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

/// Starts serving the gateway on `listener` with snapshots from `snapshots`.
pub fn start(
    listener: TcpListener,
    snapshots: Arc<ArcSwap<Snapshot>>,
) -> std::io::Result<ProxyHandle> {
    let addr = listener.local_addr()?;
    let conf = Arc::new(ServerConf::default());
    let mut proxy = HttpProxy::new(Gateway::new(snapshots), conf);
    proxy.handle_init_modules();
    let proxy = Arc::new(proxy);
    let (shutdown, watch) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, proxy, watch));
    Ok(ProxyHandle {
        addr,
        shutdown,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    proxy: Arc<HttpProxy<Gateway>>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
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
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stream: Stream = Box::new(L4Stream::from(tcp));
            // Keep-alive: Pingora hands the stream back after each request.
            while let Some(reused) = proxy.process_new(stream, &shutdown).await {
                stream = reused;
            }
        });
    }
}
