//! The snapshot as the control plane ships it to proxies.
//!
//! A proxy receives the merged catalog sources and the secret values their
//! references resolve to, and compiles them itself with the same code the
//! control plane used to validate them: a document that compiled there
//! compiles here. The document carries secrets: it travels only over the
//! authenticated proxy channel and is stored on disk with mode 0600.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigErrors;
use crate::model::ConfigFile;
use crate::snapshot::Snapshot;

/// A versioned, self-contained catalog: everything a proxy needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotDocument {
    /// Snapshot version (monotonic).
    pub version: u64,
    /// Catalog sources by name (config file names, `store`).
    pub sources: Vec<(String, ConfigFile)>,
    /// Secret values by reference (`env:X`, `file:Y`, `store:Z`).
    pub secrets: BTreeMap<String, String>,
    /// Identity providers' signing keys (JWKS documents) by source
    /// ([`IdentityProvider::jwks_source`](crate::model::IdentityProvider::jwks_source)),
    /// fetched and refreshed by the control plane: proxies never call the IdP.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jwks: BTreeMap<String, String>,
    /// Per-user delegated OAuth access tokens by server
    /// ([`crate::delegated`]); refresh tokens never travel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delegated: BTreeMap<String, crate::delegated::DelegatedTokens>,
}

impl SnapshotDocument {
    /// Validates and compiles the document into a [`Snapshot`].
    pub fn compile(&self) -> Result<Snapshot, ConfigErrors> {
        let catalog = crate::assemble(self.sources.clone())?;
        let resolve = |reference: &str| -> Result<String, String> {
            self.secrets
                .get(reference)
                .or_else(|| self.jwks.get(reference))
                .cloned()
                .ok_or_else(|| "not provided by the control plane".to_string())
        };
        let disabled: std::collections::HashSet<String> = catalog
            .principals
            .iter()
            .filter(|l| l.item.disabled)
            .map(|l| l.item.name.clone())
            .collect();
        let mut snapshot = crate::compile(&catalog, self.version, &resolve)?;
        for up in &mut snapshot.upstreams {
            if up.delegated.is_some() {
                up.delegated = Some(std::sync::Arc::new(crate::delegated::DelegatedAuth::build(
                    self.delegated.get(&*up.name),
                    "",
                    &|p| disabled.contains(p),
                )));
            }
        }
        Ok(snapshot)
    }
}
