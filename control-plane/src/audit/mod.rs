//! The audit trail: records sent by proxies (`POST /v1/audit/records`),
//! stored in their own SQLite file, queried and exported by operators
//! (`GET /v1/audit`).
//!
//! - [`store`]: the [`AuditStore`] (0600 file, WAL, migrations, idempotent
//!   batch insert, retention);
//! - [`ingest`]: a proxy's JSON Lines batch, all or nothing;
//! - [`params`]: the query's parameters; [`query`]: filters, pages, groups;
//! - [`export`]: JSON, JSON Lines and CSV output; [`time`]: RFC 3339 and
//!   relative times.

use std::sync::Arc;
use std::time::Duration;

pub mod export;
pub mod ingest;
pub mod params;
pub mod query;
pub mod store;
pub mod time;

pub use store::AuditStore;

/// How long records are kept unless configured otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// How often [`retention_task`] deletes expired records.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Audit store failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error("audit store: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database file could not be created or is not usable.
    #[error("audit store: {0}")]
    Open(String),
    /// A record could not be encoded.
    #[error("audit store: cannot encode a record: {0}")]
    Corrupt(String),
}

/// Applies the store's retention now and then every `every`, until aborted.
pub async fn retention_task(store: Arc<AuditStore>, every: Duration) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.apply_retention(time::now_ms())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                deleted = n,
                retention_days = store.retention_days(),
                "audit records past retention deleted"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "audit retention failed"),
            Err(e) => tracing::error!(error = %e, "audit retention task failed"),
        }
        tokio::time::sleep(every).await;
    }
}
