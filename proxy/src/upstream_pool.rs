//! Idle keep-alive connections to plain-HTTP upstreams, for the requests
//! the gateway sends itself (`gateway/direct.rs`). A connection is put back
//! only after a response that ended exactly where its framing said; one
//! taken out is checked first, so a connection the upstream closed while
//! idle is never used.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// How long a connection may sit idle before it is closed (as for
/// Pingora's upstream peers, see `gateway.rs`).
pub const IDLE_FOR: Duration = Duration::from_secs(60);

/// Most idle connections kept per upstream address.
const MAX_IDLE_PER_ADDR: usize = 256;

/// Idle upstream connections by address.
#[derive(Default)]
pub struct UpstreamPool {
    idle: Mutex<HashMap<SocketAddr, VecDeque<Idle>>>,
}

struct Idle {
    conn: TcpStream,
    since: Instant,
}

impl UpstreamPool {
    /// The most recently used idle connection to `addr` that is still open.
    pub fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(Idle { conn, since }) = list.pop_back() {
            if since.elapsed() < IDLE_FOR && still_open(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `addr` (closed instead when
    /// the address already has its fill of idle connections).
    pub fn put(&self, addr: SocketAddr, conn: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        // The oldest are at the front: those idle too long go first.
        while list.front().is_some_and(|i| i.since.elapsed() >= IDLE_FOR) {
            list.pop_front();
        }
        if list.len() < MAX_IDLE_PER_ADDR {
            list.push_back(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes the idle connections that are too old or that their upstream
    /// closed, and forgets addresses left without any (servers removed,
    /// DNS moved). Run every few seconds.
    pub fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(|i| i.since.elapsed() < IDLE_FOR && still_open(&i.conn));
            !list.is_empty()
        });
    }

    /// Number of idle connections held (all addresses).
    pub fn idle(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(VecDeque::len).sum()
    }
}

/// An idle connection has nothing to read: any byte (or the end of the
/// stream) means the upstream closed it or sent something unasked.
fn still_open(conn: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    #[tokio::test]
    async fn a_kept_connection_is_reused_unless_its_upstream_closed_or_spoke() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = UpstreamPool::default();
        assert!(pool.take(addr).is_none());

        let (open, _open_peer) = pair(&listener).await;
        let local = open.local_addr().unwrap();
        pool.put(addr, open);
        let reused = pool.take(addr).expect("an open idle connection is reused");
        assert_eq!(reused.local_addr().unwrap(), local);
        assert!(pool.take(addr).is_none(), "taken once");

        let (closed, closed_peer) = pair(&listener).await;
        pool.put(addr, closed);
        drop(closed_peer);
        let (spoke, mut spoke_peer) = pair(&listener).await;
        pool.put(addr, spoke);
        spoke_peer.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            pool.take(addr).is_none(),
            "closed or unasked bytes: not reused"
        );
        assert_eq!(pool.idle(), 0);
    }
}
