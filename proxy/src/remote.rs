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
        let local = match read_cache(&self.cache, &self.token) {
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

    /// Writes the document atomically with mode 0600, sealed under a key
    /// derived from the proxy token (it carries upstream secrets): a copy of
    /// the file alone reveals nothing.
    fn persist(&self, doc: &SnapshotDocument) {
        let sealed = seal_cache(&self.token, &serde_json::to_vec(doc).unwrap_or_default());
        if let Err(e) = write_private(&self.cache, &sealed) {
            tracing::warn!(error = %e, path = %self.cache.display(), "cannot cache the snapshot");
        }
    }
}

fn read_cache(path: &Path, token: &str) -> Result<SnapshotDocument, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let plain = open_cache(token, &bytes)?;
    serde_json::from_slice(&plain).map_err(|e| e.to_string())
}

/// Marks a sealed cache file (format version 1).
const CACHE_MAGIC: &[u8] = b"TGC1";

fn cache_cipher(token: &str) -> aes_gcm::Aes256Gcm {
    use aes_gcm::KeyInit;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"toolgate snapshot cache v1\0");
    h.update(token.as_bytes());
    aes_gcm::Aes256Gcm::new(&h.finalize())
}

/// `TGC1 ‖ nonce ‖ AES-256-GCM(document)`.
fn seal_cache(token: &str, plain: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, AeadCore, OsRng};
    let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cache_cipher(token)
        .encrypt(&nonce, plain)
        .expect("AES-GCM seals any message under 64 GiB");
    [CACHE_MAGIC, nonce.as_slice(), &sealed].concat()
}

fn open_cache(token: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    use aes_gcm::aead::Aead;
    let rest = bytes
        .strip_prefix(CACHE_MAGIC)
        .filter(|r| r.len() > 12)
        .ok_or("not a sealed snapshot cache")?;
    let (nonce, sealed) = rest.split_at(12);
    cache_cipher(token)
        .decrypt(aes_gcm::Nonce::from_slice(nonce), sealed)
        .map_err(|_| {
            "the cache does not open with this proxy token (written with another?)".to_string()
        })
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

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn the_cache_is_sealed_under_the_proxy_token() {
        let plain = br#"{"secrets":{"k":"s3cret"}}"#;
        let sealed = seal_cache("token-a", plain);
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(open_cache("token-a", &sealed).unwrap(), plain);
        assert!(open_cache("token-b", &sealed).is_err());
        assert!(open_cache("token-a", b"{}").is_err());
    }
}
