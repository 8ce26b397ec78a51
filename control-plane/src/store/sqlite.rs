//! The embedded [`Store`]: one SQLite file (WAL), versioned migrations,
//! secrets sealed with the [`Keyring`] before they are written.

use std::path::Path;
use std::sync::Mutex;

use catalog::model::{ApprovalStatus, PrincipalKind, Team};
use rusqlite::{params, Connection, Transaction};

use super::{
    Change, Mutation, Outcome, RuntimeState, Store, StoreError, StoredPrincipal, StoredToken,
};
use crate::crypto::Keyring;

/// Migrations, applied in order; `PRAGMA user_version` records the last one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_tools.sql"),
    include_str!("../../migrations/0003_teams_policies.sql"),
];

/// The embedded SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Seals secret values at rest; without one, secrets cannot be set or read.
    keyring: Option<Keyring>,
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        // The database holds secrets: create it readable by its owner only
        // (SQLite gives its -wal and -shm files the same mode).
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    StoreError::Corrupt(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        crate::delegated::store::ensure_table(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            keyring: None,
        })
    }

    /// Seals secrets under `keyring`. Values written by an older version
    /// (plain) or sealed under a previous key are re-sealed under the
    /// current key now, in one transaction; returns how many were.
    pub fn with_keyring(mut self, keyring: Keyring) -> Result<(SqliteStore, usize), StoreError> {
        let resealed = {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            let rows: Vec<(String, String)> = tx
                .prepare("SELECT name, value FROM secrets")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut resealed = 0;
            for (name, stored) in rows {
                if keyring.is_current(&stored) {
                    continue;
                }
                let plain = keyring
                    .open(&name, &stored)
                    .map_err(|e| StoreError::Sealed(e.to_string()))?
                    .unwrap_or(stored);
                tx.execute(
                    "UPDATE secrets SET value = ?2 WHERE name = ?1",
                    params![name, keyring.seal(&name, &plain)],
                )?;
                resealed += 1;
            }
            resealed += crate::delegated::store::reseal(&tx, &keyring)?;
            tx.commit()?;
            resealed
        };
        self.keyring = Some(keyring);
        Ok((self, resealed))
    }

    fn keyring(&self) -> Result<&Keyring, StoreError> {
        self.keyring.as_ref().ok_or_else(|| {
            StoreError::Sealed(
                "no master key is configured: secrets cannot be stored or read (TOOLGATE_MASTER_KEY or --master-key-file)".into(),
            )
        })
    }

    /// Secret values opened (the state holds them sealed).
    fn open_secrets(&self, state: &mut RuntimeState) -> Result<(), StoreError> {
        if state.secrets.is_empty() {
            return Ok(());
        }
        let keyring = self.keyring()?;
        for (name, value) in &mut state.secrets {
            if let Some(plain) = keyring
                .open(name, value)
                .map_err(|e| StoreError::Sealed(e.to_string()))?
            {
                *value = plain;
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-transaction rolls the transaction back; the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn put_delegated(
        &self,
        server: &str,
        principal: &str,
        refresh_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let keyring = self.keyring()?;
        crate::delegated::store::put(&self.lock(), keyring, server, principal, refresh_token)
    }

    fn delegated(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        // Without a master key none can have been stored.
        let Some(keyring) = self.keyring.as_ref() else {
            return Ok(Vec::new());
        };
        crate::delegated::store::all(&self.lock(), keyring)
    }

    fn delete_delegated(&self, principal: &str) -> Result<usize, StoreError> {
        crate::delegated::store::delete_principal(&self.lock(), principal)
    }

    fn state(&self) -> Result<RuntimeState, StoreError> {
        let mut state = read_state(&self.lock())?;
        self.open_secrets(&mut state)?;
        Ok(state)
    }

    fn apply(
        &self,
        actor: &str,
        mutation: &Mutation,
        check: &dyn Fn(&RuntimeState, u64) -> Result<(), catalog::ConfigErrors>,
    ) -> Result<(Outcome, u64), StoreError> {
        // Secret values are sealed before they touch the database.
        let sealed;
        let mutation = match mutation {
            Mutation::SetSecret { name, value } => {
                sealed = Mutation::SetSecret {
                    name: name.clone(),
                    value: self.keyring()?.seal(name, value),
                };
                &sealed
            }
            other => other,
        };
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let outcome = write(&tx, actor, mutation)?;
        let version = bump_version(&tx)?;
        let mut state = read_state(&tx)?;
        self.open_secrets(&mut state)?;
        check(&state, version).map_err(StoreError::Rejected)?;
        let (action, target, detail) = mutation.describe();
        tx.execute(
            &format!("INSERT INTO changes (at, actor, action, target, detail) VALUES ({NOW}, ?1, ?2, ?3, ?4)"),
            params![actor, action, target, detail],
        )?;
        tx.commit()?;
        Ok((outcome, version))
    }

    fn next_version(&self) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let v = bump_version(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    fn changes(&self, limit: usize) -> Result<Vec<Change>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, at, actor, action, target, detail FROM changes ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(Change {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn bump_version(tx: &Transaction) -> Result<u64, StoreError> {
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'snapshot_version'",
        [],
    )?;
    let v: i64 = tx.query_row(
        "SELECT value FROM meta WHERE key = 'snapshot_version'",
        [],
        |r| r.get(0),
    )?;
    Ok(v as u64)
}

fn status_text(s: ApprovalStatus) -> &'static str {
    match s {
        ApprovalStatus::Pending => "pending",
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Deprecated => "deprecated",
        ApprovalStatus::Blocked => "blocked",
    }
}

fn parse_status(s: &str) -> Result<ApprovalStatus, StoreError> {
    Ok(match s {
        "pending" => ApprovalStatus::Pending,
        "approved" => ApprovalStatus::Approved,
        "deprecated" => ApprovalStatus::Deprecated,
        "blocked" => ApprovalStatus::Blocked,
        other => return Err(StoreError::Corrupt(format!("status {other:?}"))),
    })
}

fn write(tx: &Transaction, actor: &str, m: &Mutation) -> Result<Outcome, StoreError> {
    match m {
        Mutation::CreatePrincipal(p) => {
            let kind = match p.kind {
                PrincipalKind::User => "user",
                PrincipalKind::Agent => "agent",
            };
            let teams =
                serde_json::to_string(&p.teams).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let n = tx.execute(
                &format!("INSERT OR IGNORE INTO principals (name, kind, teams, created_at) VALUES (?1, ?2, ?3, {NOW})"),
                params![p.name, kind, teams],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "principal {:?} already exists",
                    p.name
                )));
            }
        }
        Mutation::SetDisabled {
            name,
            disabled: true,
        } => {
            tx.execute(
                &format!("INSERT OR REPLACE INTO disabled_principals (name, disabled_at) VALUES (?1, {NOW})"),
                params![name],
            )?;
        }
        Mutation::SetDisabled {
            name,
            disabled: false,
        } => {
            tx.execute(
                "DELETE FROM disabled_principals WHERE name = ?1",
                params![name],
            )?;
        }
        Mutation::IssueToken {
            principal,
            name,
            sha256,
        } => {
            tx.execute(
                &format!("INSERT INTO tokens (principal, name, sha256, created_at) VALUES (?1, ?2, ?3, {NOW})"),
                params![principal, name, sha256],
            )?;
            return Ok(Outcome::TokenId(tx.last_insert_rowid()));
        }
        Mutation::RevokeToken { id } => {
            let n = tx.execute(
                &format!(
                    "UPDATE tokens SET revoked_at = {NOW} WHERE id = ?1 AND revoked_at IS NULL"
                ),
                params![id],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "no active token with id {id}"
                )));
            }
        }
        Mutation::CreateTeam(t) => {
            let n = tx.execute(
                &format!("INSERT OR IGNORE INTO teams (name, description, created_at) VALUES (?1, ?2, {NOW})"),
                params![t.name, t.description],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "team {:?} already exists",
                    t.name
                )));
            }
        }
        Mutation::PutPolicy(p) => {
            let json = serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                &format!("INSERT OR REPLACE INTO policies (name, definition, created_at) VALUES (?1, ?2, {NOW})"),
                params![p.name, json],
            )?;
        }
        Mutation::UpdateServer(s) => {
            let json = serde_json::to_string(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let n = tx.execute(
                "UPDATE servers SET definition = ?2 WHERE name = ?1",
                params![s.name, json],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "server {:?} was not registered through the API (edit config/ instead)",
                    s.name
                )));
            }
        }
        Mutation::RegisterServer(s) => {
            let json = serde_json::to_string(s).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let n = tx.execute(
                &format!("INSERT OR IGNORE INTO servers (name, definition, created_at) VALUES (?1, ?2, {NOW})"),
                params![s.name, json],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "server {:?} already exists",
                    s.name
                )));
            }
        }
        Mutation::RecordDiscovery { server, tools } => {
            tx.execute(
                "DELETE FROM discovered_tools WHERE server = ?1",
                params![server],
            )?;
            for (name, fingerprint, definition) in tools {
                tx.execute(
                    &format!("INSERT INTO discovered_tools (server, name, fingerprint, definition, discovered_at) VALUES (?1, ?2, ?3, ?4, {NOW})"),
                    params![server, name, fingerprint, definition],
                )?;
            }
        }
        Mutation::SetStatus { server, status } => {
            if *status == ApprovalStatus::Approved {
                // Approval pins the definitions discovered so far (if any).
                let discovered: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM discovered_tools WHERE server = ?1",
                    params![server],
                    |r| r.get(0),
                )?;
                if discovered > 0 {
                    tx.execute(
                        "DELETE FROM pinned_tools WHERE server = ?1",
                        params![server],
                    )?;
                    tx.execute(
                        &format!("INSERT INTO pinned_tools (server, name, fingerprint, pinned_by, pinned_at) SELECT server, name, fingerprint, ?2, {NOW} FROM discovered_tools WHERE server = ?1"),
                        params![server, actor],
                    )?;
                }
            }
            tx.execute(
                &format!("INSERT OR REPLACE INTO server_status (server, status, changed_by, changed_at) VALUES (?1, ?2, ?3, {NOW})"),
                params![server, status_text(*status), actor],
            )?;
        }
        Mutation::SetSecret { name, value } => {
            tx.execute(
                &format!("INSERT OR REPLACE INTO secrets (name, value, updated_at) VALUES (?1, ?2, {NOW})"),
                params![name, value],
            )?;
        }
    }
    Ok(Outcome::Done)
}

fn read_state(conn: &Connection) -> Result<RuntimeState, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let mut state = RuntimeState::default();
    let mut stmt = conn.prepare("SELECT name, kind, teams FROM principals ORDER BY name")?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })? {
        let (name, kind, teams) = row?;
        let kind = if kind == "user" {
            PrincipalKind::User
        } else {
            PrincipalKind::Agent
        };
        let teams = serde_json::from_str(&teams).map_err(corrupt)?;
        state.principals.push(StoredPrincipal { name, kind, teams });
    }
    let mut stmt = conn.prepare("SELECT name FROM disabled_principals ORDER BY name")?;
    state.disabled = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT id, principal, name, sha256, created_at, revoked_at FROM tokens ORDER BY id",
    )?;
    state.tokens = stmt
        .query_map([], |r| {
            Ok(StoredToken {
                id: r.get(0)?,
                principal: r.get(1)?,
                name: r.get(2)?,
                sha256: r.get(3)?,
                created_at: r.get(4)?,
                revoked_at: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT name, description FROM teams ORDER BY name")?;
    state.teams = stmt
        .query_map([], |r| {
            Ok(Team {
                name: r.get(0)?,
                description: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT definition FROM policies ORDER BY name")?;
    for def in stmt.query_map([], |r| r.get::<_, String>(0))? {
        state
            .policies
            .push(serde_json::from_str(&def?).map_err(corrupt)?);
    }
    let mut stmt = conn.prepare("SELECT definition FROM servers ORDER BY name")?;
    for def in stmt.query_map([], |r| r.get::<_, String>(0))? {
        state
            .servers
            .push(serde_json::from_str(&def?).map_err(corrupt)?);
    }
    let mut stmt = conn.prepare("SELECT server, status FROM server_status ORDER BY server")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (server, status) = row?;
        state.statuses.push((server, parse_status(&status)?));
    }
    let mut stmt = conn.prepare(
        "SELECT server, name, fingerprint, definition FROM discovered_tools ORDER BY server, name",
    )?;
    state.discovered = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt =
        conn.prepare("SELECT server, name, fingerprint FROM pinned_tools ORDER BY server, name")?;
    state.pinned = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT name, value FROM secrets ORDER BY name")?;
    state.secrets = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(state)
}
