//! toolgate's control plane: the registry service.
//!
//! - [`crypto`]: secrets sealed at rest (AES-256-GCM under the master key);
//! - [`store`]: runtime state in embedded SQLite behind the [`store::Store`] interface;
//! - [`registry`]: `config/` + runtime state → one validated, versioned
//!   snapshot document, published to proxies;
//! - [`api`]: the REST API and the proxies' snapshot long-poll;
//! - [`serve`]: running it (API + `config/` watcher);
//! - [`discovery`]: listing a server's tools and reviewing them against pins;
//! - [`audit`]: the audit trail proxies send (own SQLite file), queried by operators.

pub mod api;
pub mod audit;
pub mod crypto;
pub mod delegated;
pub mod discovery;
pub mod jwks;
pub mod metrics;
pub mod oauth;
pub mod registry;
pub mod serve;
pub mod store;
