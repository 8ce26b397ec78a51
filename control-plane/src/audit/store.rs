//! The audit database: its own SQLite file (0600, WAL, versioned
//! migrations), one writer connection and a few pooled read connections, so
//! queries and exports never wait for ingest and ingest never waits for the
//! registry.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use catalog::audit::AuditRecord;
use rusqlite::{params, Connection, OpenFlags};

use super::AuditError;

/// Migrations of the audit database, applied in order; `PRAGMA user_version`
/// records the last one.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/audit/0001_audit.sql")];

/// Read connections kept open between queries (more are opened on demand).
const READERS_KEPT: usize = 4;

/// Rows deleted per retention transaction, so ingest is never held up long.
const PURGE_CHUNK: i64 = 10_000;

const MS_PER_DAY: i64 = 86_400_000;

/// The audit trail's store. Every method blocks: call it from
/// `tokio::task::spawn_blocking` in async code.
pub struct AuditStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    retention_days: u32,
}

impl AuditStore {
    /// Opens (creating it mode 0600 if needed) the audit database at `path`
    /// and migrates it. Records older than `retention_days` days are deleted
    /// by [`AuditStore::apply_retention`]; 0 keeps everything.
    pub fn open(path: &Path, retention_days: u32) -> Result<AuditStore, AuditError> {
        if !path.exists() {
            // Arguments may be sensitive even after redaction: owner only
            // (SQLite gives its -wal and -shm files the same mode).
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| AuditError::Open(format!("cannot create {}: {e}", path.display())))?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A batch is acknowledged to the proxy, which then forgets it: the
        // commit must survive a power loss, not only a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Each batch dirties a page per distinct principal, agent, tool, ...
        // in every index: keep the hot index pages cached (64 MiB) and
        // checkpoint every ~80 MB of WAL rather than every 4 MB, so a page is
        // copied back once for many commits (1.8x the ingest rate; see
        // benches/README.md).
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "wal_autocheckpoint", 20_000)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(AuditStore {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            retention_days,
        })
    }

    /// The configured retention in days (0: records are kept forever).
    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// Stores `records` in one transaction, skipping ids already stored
    /// (delivery is at-least-once). Returns how many were new.
    pub fn insert(&self, records: &[AuditRecord]) -> Result<usize, AuditError> {
        let rows = records
            .iter()
            .map(|r| serde_json::to_string(r).map(|json| (r, json)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError::Corrupt(e.to_string()))?;
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO audit_records (id, ts_ms, principal, agent, server, tool, \
                 method, decision, outcome, session_id, trace_id, gateway, record) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for (r, json) in &rows {
                inserted += stmt.execute(params![
                    r.id,
                    r.ts_ms,
                    r.principal,
                    r.agent,
                    r.server,
                    r.tool,
                    r.method,
                    r.decision.as_str(),
                    r.outcome.as_str(),
                    r.session_id,
                    r.trace_id,
                    r.gateway,
                    json,
                ])?;
            }
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// Deletes the records older than `cutoff_ms` (Unix milliseconds), a
    /// chunk per transaction. Returns how many were deleted.
    pub fn purge_before(&self, cutoff_ms: i64) -> Result<usize, AuditError> {
        let mut total = 0;
        loop {
            let n = lock(&self.writer).execute(
                "DELETE FROM audit_records WHERE rowid IN \
                 (SELECT rowid FROM audit_records WHERE ts_ms < ?1 LIMIT ?2)",
                params![cutoff_ms, PURGE_CHUNK],
            )?;
            total += n;
            if (n as i64) < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Applies the retention period at `now_ms`: deletes what is older than
    /// `retention_days` days. Returns how many records were deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, AuditError> {
        if self.retention_days == 0 {
            return Ok(0);
        }
        self.purge_before(now_ms.saturating_sub(i64::from(self.retention_days) * MS_PER_DAY))
    }

    /// Runs `f` on a read connection from the pool (opening one if none is
    /// free); the connection goes back to the pool afterwards.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let result = f(&conn);
        let mut pool = lock(&self.readers);
        if pool.len() < READERS_KEPT {
            pool.push(conn);
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic mid-transaction rolls the transaction back; the connection stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn migrate(conn: &mut Connection) -> Result<(), AuditError> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if done > MIGRATIONS.len() {
        return Err(AuditError::Open(format!(
            "the audit database is at schema version {done}, newer than this build ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
