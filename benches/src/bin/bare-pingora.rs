//! A bare Pingora pass-through (`ProxyHttp` that only picks the peer), served
//! by toolgate's own accept loop: the baseline `loadtest/run.sh` compares
//! toolgate against, so the ratio isolates the cost of MCP awareness.
//!
//!   bare-pingora LISTEN_ADDR UPSTREAM_ADDR UPSTREAM_PATH

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_proxy::{ProxyHttp, Session};

/// The allocator and runtime toolgate's `--threads 1` uses, so the ratio
/// measures proxy work alone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct PassThrough {
    upstream: SocketAddr,
    path: String,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        req.set_uri(self.path.parse().expect("a valid path"));
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare-pingora LISTEN_ADDR UPSTREAM_ADDR UPSTREAM_PATH";
    let listen: SocketAddr = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let upstream: SocketAddr = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let path = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let _handle =
            toolgate_proxy::server::serve(listener, PassThrough { upstream, path }, None)?;
        std::future::pending::<()>().await;
        Ok(())
    })
}
