//! The registry: merges `config/` with the store's runtime state into one
//! versioned [`SnapshotDocument`], validates it, and publishes it to proxies.
//!
//! Every API mutation is applied in a store transaction that commits only if
//! the resulting catalog compiles, so nothing is half-applied; every config
//! edit is compiled before it is published, and an invalid one is refused
//! while the last good snapshot keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use catalog::model::{ConfigFile, Principal, TokenDecl, UpstreamAuth, GENERATED_SESSION_SECRET};
use catalog::{ConfigError, ConfigErrors, SnapshotDocument};
use tokio::sync::watch;

use crate::metrics::CpMetrics;
use crate::store::{Mutation, Outcome, RuntimeState, Store, StoreError};

/// A published snapshot: its version and its serialized document.
#[derive(Debug)]
pub struct Published {
    /// Snapshot version.
    pub version: u64,
    /// The JSON of the [`SnapshotDocument`] (contains secrets).
    pub body: Vec<u8>,
    /// The document itself, for read-only API views.
    pub document: SnapshotDocument,
}

/// The registry service state.
pub struct Registry {
    config_dir: PathBuf,
    store: Box<dyn Store>,
    published: watch::Sender<Arc<Published>>,
    /// Serializes builds so versions are published in order.
    build: std::sync::Mutex<()>,
    metrics: Arc<CpMetrics>,
    oauth: crate::oauth::OauthTokens,
    delegated: crate::delegated::Delegated,
}

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `config/` is invalid or unreadable.
    #[error("{0}")]
    Config(ConfigErrors),
}

impl Registry {
    /// Opens the registry over `config_dir` and `store`, publishing a first
    /// snapshot. Fails if `config/` plus the stored state is invalid.
    pub fn open(config_dir: &Path, store: Box<dyn Store>) -> Result<Arc<Registry>, RegistryError> {
        ensure_session_secret(store.as_ref())?;
        let state = store.state()?;
        let version = store.next_version()?;
        let document =
            build_document(config_dir, &state, version).map_err(RegistryError::Config)?;
        let metrics = Arc::new(CpMetrics::new());
        metrics.snapshot_published(document.version);
        let (published, _) = watch::channel(Arc::new(publishable(document)));
        let registry = Arc::new(Registry {
            config_dir: config_dir.to_path_buf(),
            store,
            published,
            build: std::sync::Mutex::new(()),
            metrics,
            oauth: crate::oauth::OauthTokens::default(),
            delegated: crate::delegated::Delegated::default(),
        });
        crate::jwks::spawn_refresh(&registry);
        Ok(registry)
    }

    /// The latest published snapshot.
    pub fn current(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.published.subscribe()
    }

    /// The control plane's metrics.
    pub fn metrics(&self) -> &Arc<CpMetrics> {
        &self.metrics
    }

    /// How many receivers wait on new snapshots (the proxies' long-polls).
    pub fn followers(&self) -> usize {
        self.published.receiver_count()
    }

    /// The operator's config directory.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The store, for read-only queries.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Applies a mutation if the resulting catalog is valid, then publishes.
    pub fn apply(&self, actor: &str, mutation: Mutation) -> Result<Outcome, RegistryError> {
        let _build = self.build.lock().unwrap_or_else(|e| e.into_inner());
        let built = std::cell::RefCell::new(None);
        let check = |state: &RuntimeState, version: u64| {
            let doc = self.build(state, version)?;
            *built.borrow_mut() = Some(doc);
            Ok(())
        };
        let (outcome, _) = self.store.apply(actor, &mutation, &check)?;
        if let Some(doc) = built.into_inner() {
            self.publish(doc);
        }
        Ok(outcome)
    }

    /// Re-reads `config/` and publishes it if valid; on error the last good
    /// snapshot keeps serving and the errors are returned.
    pub fn reload_config(&self) -> Result<u64, RegistryError> {
        let _build = self.build.lock().unwrap_or_else(|e| e.into_inner());
        let state = self.store.state()?;
        // Validate before spending a version number.
        self.build(&state, 0).map_err(RegistryError::Config)?;
        let version = self.store.next_version()?;
        let doc = self.build(&state, version).map_err(RegistryError::Config)?;
        self.publish(doc);
        Ok(version)
    }

    /// Publishes a new snapshot with the current upstream OAuth tokens.
    pub fn republish(&self) -> Result<u64, RegistryError> {
        self.reload_config()
    }

    /// The upstream OAuth tokens this control plane maintains.
    pub fn oauth(&self) -> &crate::oauth::OauthTokens {
        &self.oauth
    }

    /// Users' delegated OAuth connections ([`crate::delegated`]).
    pub fn delegated(&self) -> &crate::delegated::Delegated {
        &self.delegated
    }

    /// The value of a secret reference (`store:`, `env:`, `file:`).
    pub fn resolve_secret(&self, reference: &str) -> Result<String, String> {
        let state = self.store.state().map_err(|e| e.to_string())?;
        resolve(&self.config_dir, &state, reference)
    }

    fn build(&self, state: &RuntimeState, version: u64) -> Result<SnapshotDocument, ConfigErrors> {
        let mut doc = build_document(&self.config_dir, state, version)?;
        crate::delegated::ship(&self.delegated, &mut doc, state);
        if !doc.sources.iter().any(|(_, d)| {
            d.servers
                .iter()
                .any(|s| matches!(s.auth, UpstreamAuth::OauthClientCredentials { .. }))
        }) {
            return Ok(doc);
        }
        // Recompile with the tokens: a server without one gets a 503 at the proxy.
        for (server, token) in self.oauth.current() {
            doc.secrets
                .insert(catalog::model::oauth_token_ref(&server), token);
        }
        doc.compile()?;
        Ok(doc)
    }

    fn publish(&self, doc: SnapshotDocument) {
        self.metrics.snapshot_published(doc.version);
        self.published.send_replace(Arc::new(publishable(doc)));
    }
}

fn publishable(document: SnapshotDocument) -> Published {
    Published {
        version: document.version,
        body: serde_json::to_vec(&document).expect("a document serializes"),
        document,
    }
}

/// Source name of the runtime part of a document.
pub const STORE_SOURCE: &str = "store";

/// Builds and validates the document for `config_dir` + `state`.
pub fn build_document(
    config_dir: &Path,
    state: &RuntimeState,
    version: u64,
) -> Result<SnapshotDocument, ConfigErrors> {
    let files = catalog::fs::read_config_files(config_dir).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            &config_dir.display().to_string(),
            "",
            e,
        )])
    })?;
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in &files {
        match catalog::parse_file(name, text) {
            Ok(doc) => sources.push((name.clone(), doc)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let runtime = ConfigFile {
        principals: state
            .principals
            .iter()
            .map(|p| Principal {
                name: p.name.clone(),
                kind: p.kind,
                teams: p.teams.clone(),
                disabled: false,
                tokens: Vec::new(),
                identity_provider: None,
            })
            .collect(),
        servers: state.servers.clone(),
        teams: state.teams.clone(),
        policies: state.policies.clone(),
        ..ConfigFile::default()
    };
    sources.push((STORE_SOURCE.to_string(), runtime));
    overlay(&mut sources, state);

    let mut secrets = BTreeMap::new();
    for (file, doc) in &sources {
        for (i, server) in doc.servers.iter().enumerate() {
            let mut refs: Vec<&str> = server.tls_ca.iter().map(String::as_str).collect();
            match &server.auth {
                UpstreamAuth::None => {}
                UpstreamAuth::Bearer { secret } | UpstreamAuth::Header { secret, .. } => {
                    refs.push(secret)
                }
                // The client secret stays here; proxies get the token.
                UpstreamAuth::OauthClientCredentials { .. } => {}
                UpstreamAuth::OauthAuthorizationCode { .. } => {}
            }
            for reference in refs {
                match resolve(config_dir, state, reference) {
                    Ok(value) => {
                        secrets.insert(reference.to_string(), value);
                    }
                    // Only servers that will route need their secrets.
                    Err(m) if server_routes(server, state) => errors.push(ConfigError::new(
                        file,
                        format!("servers[{i}]"),
                        format!("cannot read {reference}: {m}"),
                    )),
                    Err(_) => {}
                }
            }
        }
    }
    // The key sealing session ids, shared by every proxy of this plane.
    let explicit = sources
        .iter()
        .find_map(|(file, doc)| Some((file, doc.gateway.as_ref()?.session_secret.as_ref()?)));
    match explicit {
        Some((file, reference)) => match resolve(config_dir, state, reference) {
            Ok(value) => {
                secrets.insert(reference.clone(), value);
            }
            Err(m) => errors.push(ConfigError::new(
                file,
                "gateway.session_secret",
                format!("cannot read {reference}: {m}"),
            )),
        },
        None => {
            if let Ok(value) = resolve(config_dir, state, GENERATED_SESSION_SECRET) {
                secrets.insert(GENERATED_SESSION_SECRET.to_string(), value);
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    // Identity providers' signing keys travel with the snapshot.
    let jwks = crate::jwks::key_sets(&sources, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let document = SnapshotDocument {
        version,
        sources,
        secrets,
        jwks,
        delegated: Default::default(),
    };
    document.compile()?;
    Ok(document)
}

/// Creates the session-sealing secret on first start (sealed at rest like
/// every secret). Without a master key the store refuses secrets: proxies
/// then seal sessions with keys of their own (sessions stay per replica).
fn ensure_session_secret(store: &dyn Store) -> Result<(), StoreError> {
    let name = GENERATED_SESSION_SECRET.trim_start_matches("store:");
    let exists = match store.state() {
        Ok(state) => state.secrets.iter().any(|(n, _)| n == name),
        Err(StoreError::Sealed(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if exists {
        return Ok(());
    }
    let value = crate::crypto::MasterKey::generate();
    let set = Mutation::SetSecret {
        name: name.to_string(),
        value,
    };
    match store.apply("toolgate", &set, &|_, _| Ok(())) {
        Ok(_) => Ok(()),
        Err(StoreError::Sealed(m)) => {
            tracing::warn!(reason = %m, "no shared session key: MCP sessions will not move between proxy replicas");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn server_routes(server: &catalog::model::Server, state: &RuntimeState) -> bool {
    let status = state
        .statuses
        .iter()
        .find(|(n, _)| *n == server.name)
        .map_or(server.status, |(_, s)| *s);
    status == catalog::model::ApprovalStatus::Approved
}

fn resolve(config_dir: &Path, state: &RuntimeState, reference: &str) -> Result<String, String> {
    match reference.strip_prefix("store:") {
        Some(name) => state
            .secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no secret {name:?} has been set (PUT /v1/secrets/{name})")),
        None => catalog::fs::resolve_local_secret(config_dir, reference),
    }
}

/// For a server with pinned tools: those whose latest discovery matches the
/// pin. A changed or added tool is withheld until approved again.
fn offered_tools(state: &RuntimeState, server: &str) -> Option<Vec<String>> {
    let pins: Vec<_> = state
        .pinned
        .iter()
        .filter(|(s, _, _)| s == server)
        .collect();
    if pins.is_empty() {
        return None;
    }
    let discovered: Vec<_> = state
        .discovered
        .iter()
        .filter(|(s, _, _, _)| s == server)
        .collect();
    Some(
        pins.iter()
            .filter(|(_, name, fp)| {
                discovered.is_empty()
                    || discovered
                        .iter()
                        .any(|(_, n, dfp, _)| n == name && dfp == fp)
            })
            .map(|(_, name, _)| name.clone())
            .collect(),
    )
}

/// Declares the server's discovered tools with their annotation hints, so
/// policies can select tools by annotation.
fn merge_discovered(server: &mut catalog::model::Server, state: &RuntimeState) {
    for (_, name, _, definition) in state.discovered.iter().filter(|(s, ..)| *s == server.name) {
        let raw: serde_json::Value = serde_json::from_str(definition).unwrap_or_default();
        let annotations = raw["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| k.ends_with("Hint"))
                    .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
                    .collect()
            })
            .unwrap_or_default();
        let decl = catalog::model::ToolDecl {
            name: name.clone(),
            description: raw["description"].as_str().unwrap_or_default().to_string(),
            annotations,
            input_schema: raw.get("inputSchema").cloned(),
            definition: Some(raw),
        };
        match server.tools.iter_mut().find(|t| t.name == *name) {
            Some(existing) => *existing = decl,
            None => server.tools.push(decl),
        }
    }
}

/// Applies approvals, offboarding and API-issued tokens to every source.
fn overlay(sources: &mut [(String, ConfigFile)], state: &RuntimeState) {
    for (_, doc) in sources.iter_mut() {
        for server in &mut doc.servers {
            if let Some((_, status)) = state.statuses.iter().find(|(n, _)| *n == server.name) {
                server.status = *status;
            }
            if let Some(offered) = offered_tools(state, &server.name) {
                server.offered_tools = Some(offered);
            }
            merge_discovered(server, state);
        }
        for principal in &mut doc.principals {
            if state.disabled.contains(&principal.name) {
                principal.disabled = true;
            }
            for token in state
                .tokens
                .iter()
                .filter(|t| t.principal == principal.name)
            {
                principal.tokens.push(TokenDecl {
                    name: format!("{} (#{})", token.name, token.id),
                    sha256: token.sha256.clone(),
                    revoked: token.revoked_at.is_some(),
                });
            }
        }
    }
}
