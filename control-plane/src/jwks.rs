//! Identity providers' signing keys for the proxies: the control plane
//! fetches each provider's JWKS (from `jwks_uri`, or found by OpenID
//! discovery), ships it in the snapshot document, and refreshes it every
//! [`REFRESH_INTERVAL`], publishing a new snapshot when a key set changed
//! (key rotation). Proxies never call the IdP.
//!
//! The last good document of each source is kept in memory: an IdP that is
//! down at refresh time leaves the keys it published last in force.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use catalog::model::ConfigFile;
use catalog::ConfigError;

use crate::registry::Registry;

/// How often every key set is fetched again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// Last good JWKS document by source (`jwks:URL` / `oidc:ISSUER`).
static KEY_SETS: LazyLock<Mutex<BTreeMap<String, String>>> = LazyLock::new(Default::default);

fn cache() -> std::sync::MutexGuard<'static, BTreeMap<String, String>> {
    KEY_SETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key sets of every identity provider in `sources`, for the snapshot
/// document: from memory, or fetched now the first time a source is seen
/// (an unreachable one is an error naming the file and provider).
pub(crate) fn key_sets(
    sources: &[(String, ConfigFile)],
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, String> {
    let mut wanted = Vec::new();
    for (file, doc) in sources {
        for (i, idp) in doc.identity_providers.iter().enumerate() {
            wanted.push((file.as_str(), i, idp.jwks_source()));
        }
    }
    let missing: Vec<String> = {
        let cached = cache();
        wanted
            .iter()
            .map(|(_, _, s)| s.clone())
            .filter(|s| !cached.contains_key(s))
            .collect()
    };
    let fetched = catalog::fetch::fetch_all_blocking(missing);
    let mut cached = cache();
    let mut failed = BTreeMap::new();
    for (source, result) in fetched {
        match result {
            Ok(doc) => {
                cached.insert(source, doc);
            }
            Err(e) => {
                failed.insert(source, e);
            }
        }
    }
    let mut sets = BTreeMap::new();
    for (file, i, source) in wanted {
        match (cached.get(&source), failed.get(&source)) {
            (Some(doc), _) => {
                sets.insert(source, doc.clone());
            }
            (None, e) => errors.push(ConfigError::new(
                file,
                format!("identity_providers[{i}]"),
                format!(
                    "cannot fetch the signing keys ({source}): {}",
                    e.map_or("not fetched", String::as_str)
                ),
            )),
        }
    }
    sets
}

/// Fetches every key set in use again; publishes a new snapshot when one
/// changed. Returns whether one did. A failed fetch keeps the last good set.
pub async fn refresh(registry: &Arc<Registry>) -> bool {
    let sources: Vec<String> = cache().keys().cloned().collect();
    let client = catalog::fetch::client();
    let mut changed = false;
    for source in sources {
        match catalog::fetch::fetch_jwks(&client, &source).await {
            Ok(doc) => {
                let mut cached = cache();
                if cached.get(&source) != Some(&doc) {
                    cached.insert(source.clone(), doc);
                    changed = true;
                    tracing::info!(%source, "identity provider keys changed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh identity provider keys; keeping the last good ones")
            }
        }
    }
    if !changed {
        return false;
    }
    let registry = registry.clone();
    match tokio::task::spawn_blocking(move || registry.reload_config()).await {
        Ok(Ok(version)) => {
            tracing::info!(version, "snapshot published with the new keys");
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "new identity provider keys not published");
            false
        }
        Err(_) => false,
    }
}

/// Refreshes the key sets every [`REFRESH_INTERVAL`] while `registry`
/// lives (only when called inside a Tokio runtime).
pub fn spawn_refresh(registry: &Arc<Registry>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Registry> = Arc::downgrade(registry);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(REFRESH_INTERVAL).await;
            let Some(registry) = weak.upgrade() else {
                return;
            };
            if !cache().is_empty() {
                refresh(&registry).await;
            }
        }
    });
}
