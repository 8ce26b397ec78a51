//! Long-lived responses (SSE streams) and their callers, so that a revocation
//! or a lost grant ends streams that are idle, not only those still sending.
//!
//! Every connection runs under a [`CancellationToken`] (see `server.rs`).
//! When a response turns out to be an event stream, the request registers its
//! caller and that token here; on each snapshot change the registry re-checks
//! every entry and cancels the connections whose caller lost access.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use catalog::Snapshot;
use dashmap::DashMap;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    /// The cancellation token of the connection the current task serves.
    pub static CONNECTION: CancellationToken;
}

struct Entry {
    digest: [u8; 32],
    server: Arc<str>,
    cancel: CancellationToken,
}

/// Open event streams by caller.
#[derive(Default)]
pub struct StreamRegistry {
    next: AtomicU64,
    entries: DashMap<u64, Entry>,
    /// Woken on every new snapshot: streams the gateway serves itself move
    /// their route to it, so an idle stream does not keep an old snapshot.
    snapshot_changed: Notify,
}

/// Removes its stream from the registry when the request ends.
pub struct StreamGuard {
    registry: Arc<StreamRegistry>,
    id: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.registry.entries.remove(&self.id);
    }
}

impl StreamRegistry {
    /// Registers the current connection's stream for `digest` on `server`.
    /// `None` outside a connection task (nothing to cancel).
    pub fn register(self: &Arc<Self>, digest: [u8; 32], server: Arc<str>) -> Option<StreamGuard> {
        let cancel = CONNECTION.try_with(CancellationToken::clone).ok()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries.insert(
            id,
            Entry {
                digest,
                server,
                cancel,
            },
        );
        Some(StreamGuard {
            registry: self.clone(),
            id,
        })
    }

    /// Cancels every stream whose caller may no longer use its server.
    /// Returns how many were cancelled.
    pub fn sweep(&self, snapshot: &Snapshot) -> usize {
        let mut cancelled = 0;
        for e in self.entries.iter() {
            if !crate::admit::still_allowed(snapshot, &e.digest, &e.server) {
                e.cancel.cancel();
                cancelled += 1;
            }
        }
        cancelled
    }

    /// Tells the streams waiting in [`Self::snapshot_changes`] that a new snapshot is in.
    pub fn snapshot_changed(&self) {
        self.snapshot_changed.notify_waiters();
    }

    /// Resolves at the next [`Self::snapshot_changed`].
    pub fn snapshot_changes(&self) -> Notified<'_> {
        self.snapshot_changed.notified()
    }

    /// Number of open event streams.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no event stream is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
