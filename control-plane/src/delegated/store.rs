//! Users' delegated refresh tokens at rest: one row per (server, principal)
//! in the store's database, the value sealed with the store's keyring and
//! bound to [`sealed_name`] (a row copied to another user does not open).
//! Without a master key nothing is stored.

use rusqlite::{params, Connection};

use crate::crypto::Keyring;
use crate::store::StoreError;

/// Creates the table if needed (idempotent; independent of the numbered
/// migrations so it cannot collide with them).
pub fn ensure_table(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS delegated_tokens (
            server TEXT NOT NULL,
            principal TEXT NOT NULL,
            refresh_token TEXT NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            PRIMARY KEY (server, principal)
        )",
    )?;
    Ok(())
}

/// The name a refresh token is sealed under.
pub fn sealed_name(server: &str, principal: &str) -> String {
    format!("delegated:{server}:{principal}")
}

/// Stores (sealed) or, with `None`, deletes `(server, principal)`'s refresh token.
pub fn put(
    conn: &Connection,
    keyring: &Keyring,
    server: &str,
    principal: &str,
    refresh_token: Option<&str>,
) -> Result<(), StoreError> {
    match refresh_token {
        Some(token) => {
            let sealed = keyring.seal(&sealed_name(server, principal), token);
            conn.execute(
                "INSERT INTO delegated_tokens (server, principal, refresh_token) VALUES (?1, ?2, ?3)
                 ON CONFLICT (server, principal) DO UPDATE SET refresh_token = excluded.refresh_token,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
                params![server, principal, sealed],
            )?;
        }
        None => {
            conn.execute(
                "DELETE FROM delegated_tokens WHERE server = ?1 AND principal = ?2",
                params![server, principal],
            )?;
        }
    }
    Ok(())
}

/// Every stored refresh token, opened: `(server, principal, token)`. A row
/// that does not open (tampered, or sealed under a key no longer held) is
/// left out and logged by name: one bad row does not stop everyone's refresh.
pub fn all(
    conn: &Connection,
    keyring: &Keyring,
) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT server, principal, refresh_token FROM delegated_tokens ORDER BY server, principal")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(server, principal, stored)| {
            let name = sealed_name(&server, &principal);
            match keyring.open(&name, &stored) {
                Ok(Some(token)) => Some((server, principal, token)),
                Ok(None) => {
                    tracing::error!(name, "a delegated refresh token is not sealed: ignored");
                    None
                }
                Err(e) => {
                    tracing::error!(name, error = %e, "a delegated refresh token does not open: ignored");
                    None
                }
            }
        })
        .collect())
}

/// Deletes every refresh token of `principal`; returns how many there were.
pub fn delete_principal(conn: &Connection, principal: &str) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM delegated_tokens WHERE principal = ?1",
        params![principal],
    )?)
}

/// Re-seals every refresh token not sealed under the current key (after a
/// master key rotation); returns how many were.
pub fn reseal(conn: &Connection, keyring: &Keyring) -> Result<usize, StoreError> {
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT server, principal, refresh_token FROM delegated_tokens")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut resealed = 0;
    for (server, principal, stored) in rows {
        if keyring.is_current(&stored) {
            continue;
        }
        let name = sealed_name(&server, &principal);
        // One that does not open stays as it is ([`all`] leaves it out).
        let Ok(Some(token)) = keyring.open(&name, &stored) else {
            tracing::error!(
                name,
                "a delegated refresh token does not open: not re-sealed"
            );
            continue;
        };
        put(conn, keyring, &server, &principal, Some(&token))?;
        resealed += 1;
    }
    Ok(resealed)
}
