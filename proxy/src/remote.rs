//! Following the control plane: the proxy long-polls
//! `GET /v1/snapshot?after=<version>`, compiles each new document itself,
//! swaps it in, and keeps the last good one on disk (mode 0600) so it can
//! start and keep enforcing while the control plane is away.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use catalog::{Snapshot, SnapshotDocument};

/// Where and how to reach the control plane.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// Base URL, e.g. `http://127.0.0.1:7070`.
    pub url: String,
    /// The proxy token.
    pub token: String,
    /// The last good snapshot document on disk.
    pub cache: PathBuf,
}

/// Why no snapshot could be had at start.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Neither the control plane nor the cache gave a valid snapshot.
    #[error("no snapshot: control plane: {remote}; cache {cache}: {local}")]
    NoSnapshot {
        /// Why the control plane failed.
        remote: String,
        /// The cache path.
        cache: String,
        /// Why the cache failed.
        local: String,
    },
}

enum Fetch {
    New(Box<SnapshotDocument>),
    NotModified,
}

impl ControlPlane {
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("a reqwest client builds")
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        after: u64,
        wait: u64,
    ) -> Result<Fetch, String> {
        let url = format!(
            "{}/v1/snapshot?after={after}&wait={wait}",
            self.url.trim_end_matches('/')
        );
        let resp = client
            .get(&url)
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(wait + 10))
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        match resp.status().as_u16() {
            200 => {
                let body = resp.bytes().await.map_err(|e| e.to_string())?;
                let doc: SnapshotDocument = serde_json::from_slice(&body)
                    .map_err(|e| format!("invalid snapshot document: {e}"))?;
                Ok(Fetch::New(Box::new(doc)))
            }
            304 => Ok(Fetch::NotModified),
            status => Err(format!("{url}: HTTP {status}")),
        }
    }

    /// The first snapshot: from the control plane if it answers, else from the cache.
    pub async fn bootstrap(&self) -> Result<Snapshot, RemoteError> {
        let remote = match self.fetch(&Self::client(), 0, 0).await {
            Ok(Fetch::New(doc)) => match doc.compile() {
                Ok(snapshot) => {
                    self.persist(&doc);
                    return Ok(snapshot);
                }
                Err(e) => e.to_string(),
            },
            Ok(Fetch::NotModified) => "no snapshot published".to_string(),
            Err(e) => e,
        };
        tracing::warn!(error = %remote, cache = %self.cache.display(), "control plane unavailable; starting from the cached snapshot");
        let local = match read_cache(&self.cache) {
            Ok(doc) => match doc.compile() {
                Ok(snapshot) => return Ok(snapshot),
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        Err(RemoteError::NoSnapshot {
            remote,
            cache: self.cache.display().to_string(),
            local,
        })
    }

    /// Follows the control plane forever, swapping in each valid new snapshot.
    pub async fn follow(self, store: Arc<ArcSwap<Snapshot>>) {
        let client = Self::client();
        let mut outage = false;
        loop {
            let after = store.load().version;
            match self.fetch(&client, after, 30).await {
                Ok(Fetch::New(doc)) => {
                    outage = false;
                    match doc.compile() {
                        Ok(snapshot) => {
                            self.persist(&doc);
                            store.store(Arc::new(snapshot));
                            tracing::info!(version = doc.version, "snapshot applied");
                        }
                        Err(e) => {
                            tracing::error!(version = doc.version, error = %e, "snapshot refused; keeping the last good one");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                Ok(Fetch::NotModified) => outage = false,
                Err(e) => {
                    if !outage {
                        tracing::warn!(error = %e, "control plane unreachable; enforcing the last good snapshot");
                        outage = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Writes the document atomically with mode 0600 (it carries secrets).
    fn persist(&self, doc: &SnapshotDocument) {
        if let Err(e) = write_private(&self.cache, &serde_json::to_vec(doc).unwrap_or_default()) {
            tracing::warn!(error = %e, path = %self.cache.display(), "cannot cache the snapshot");
        }
    }
}

fn read_cache(path: &Path) -> Result<SnapshotDocument, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
