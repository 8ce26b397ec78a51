//! The operator's `config/` directory: read, compile, and watch for edits.
//!
//! A valid edit becomes the new snapshot within one poll interval; an invalid
//! one is refused with the file and field in the log, and the last good
//! snapshot keeps serving.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use catalog::Snapshot;

/// A directory of `*.yaml` / `*.yml` catalog files.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    path: PathBuf,
}

/// Why a config directory did not compile.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file could not be read.
    #[error("{0}")]
    Io(String),
    /// The catalog is invalid (every error names its file and field).
    #[error("{0}")]
    Invalid(#[from] catalog::ConfigErrors),
}

impl ConfigDir {
    /// A config directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ConfigDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every YAML file, sorted by name: `(file name, contents)`.
    pub fn read_files(&self) -> Result<Vec<(String, String)>, LoadError> {
        catalog::fs::read_config_files(&self.path).map_err(LoadError::Io)
    }

    /// Loads, validates and compiles the directory as snapshot `version`.
    pub fn compile(&self, version: u64) -> Result<Snapshot, LoadError> {
        self.compile_files(&self.read_files()?, version)
    }

    /// Compiles the directory as the first snapshot and returns it with the
    /// files' fingerprint, to hand to [`ConfigDir::watch`].
    pub fn compile_initial(&self) -> Result<(Snapshot, Fingerprint), LoadError> {
        let files = self.read_files()?;
        Ok((self.compile_files(&files, 1)?, fingerprint(&files)))
    }

    fn compile_files(
        &self,
        files: &[(String, String)],
        version: u64,
    ) -> Result<Snapshot, LoadError> {
        let catalog = catalog::load(files)?;
        // Identity providers' keys are fetched on each compile (no periodic
        // refresh in file mode: a rotated key needs an edit to be picked up).
        let jwks = catalog::fetch::fetch_all_blocking(catalog::fetch::jwks_sources(&catalog));
        let resolve = |reference: &str| match jwks.get(reference) {
            Some(doc) => doc.clone(),
            None => resolve_secret(&self.path, reference),
        };
        Ok(catalog::compile(&catalog, version, &resolve)?)
    }

    /// Polls the directory every `interval`; swaps in each valid edit made
    /// after the files fingerprinted by `since` were read.
    pub async fn watch(
        self,
        store: Arc<ArcSwap<Snapshot>>,
        interval: Duration,
        since: Fingerprint,
    ) {
        let mut last = Some(since);
        loop {
            tokio::time::sleep(interval).await;
            let files = match self.read_files() {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "config directory unreadable; keeping the last good snapshot");
                    continue;
                }
            };
            let print = fingerprint(&files);
            if last == Some(print) {
                continue;
            }
            last = Some(print);
            let version = store.load().version + 1;
            match self.compile_files(&files, version) {
                Ok(snapshot) => {
                    store.store(Arc::new(snapshot));
                    tracing::info!(version, "config reloaded");
                }
                Err(e) => {
                    for line in e.to_string().lines() {
                        tracing::error!(
                            "config edit refused, keeping the last good snapshot: {line}"
                        );
                    }
                }
            }
        }
    }
}

/// Identifies the contents of a config directory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

fn fingerprint(files: &[(String, String)]) -> Fingerprint {
    let mut h = DefaultHasher::new();
    files.hash(&mut h);
    Fingerprint(h.finish())
}

/// Resolves `env:NAME` and `file:PATH` (relative to the config directory).
pub use catalog::fs::resolve_local_secret as resolve_secret;
