//! Delegated OAuth refresh tokens at rest: sealed under the master key and
//! bound to their (server, principal), re-sealed on key rotation, never
//! stored without a key, deleted with the principal.

use std::path::Path;

use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::store::{SqliteStore, Store};

const REFRESH: &str = "rt-alice-refresh-token-0123456789";

fn key(hex_byte: &str) -> MasterKey {
    MasterKey::parse(&hex_byte.repeat(32)).unwrap()
}

fn on_disk(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[test]
fn refresh_tokens_are_sealed_bound_to_their_user_and_deleted_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("toolgate.db");
    let (store, _) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("a1"), vec![]))
        .unwrap();
    store
        .put_delegated("tracker", "alice", Some(REFRESH))
        .unwrap();
    store
        .put_delegated("tracker", "bob", Some("rt-bob-1"))
        .unwrap();
    assert_eq!(
        store.delegated().unwrap()[0],
        ("tracker".into(), "alice".into(), REFRESH.into())
    );
    drop(store);
    assert!(!on_disk(dir.path(), REFRESH), "sealed at rest");

    // A sealed value copied to another user does not open.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE delegated_tokens SET refresh_token = (SELECT refresh_token FROM delegated_tokens WHERE principal = 'alice') WHERE principal = 'bob'",
        [],
    )
    .unwrap();
    drop(conn);
    let (store, _) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("a1"), vec![]))
        .unwrap();
    let opened = store.delegated().unwrap();
    assert_eq!(opened.len(), 1, "bob's tampered row does not open");
    assert_eq!(opened[0].1, "alice");
    store
        .put_delegated("tracker", "bob", Some("rt-bob-2"))
        .unwrap();

    // Offboarding deletes every token of the principal.
    assert_eq!(store.delete_delegated("alice").unwrap(), 1);
    let left = store.delegated().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, "bob");
    drop(store);

    // Without a master key nothing is stored.
    let keyless = SqliteStore::open(&db).unwrap();
    let err = keyless
        .put_delegated("tracker", "carol", Some("rt-carol"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("master key"), "{err}");
}

#[test]
fn rotating_the_master_key_reseals_refresh_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("toolgate.db");
    let (store, _) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("a1"), vec![]))
        .unwrap();
    store
        .put_delegated("tracker", "alice", Some(REFRESH))
        .unwrap();
    drop(store);
    let (store, resealed) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("b2"), vec![key("a1")]))
        .unwrap();
    assert!(resealed >= 1);
    drop(store);
    // The old key is gone: the token still opens under the new one alone.
    let (store, _) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("b2"), vec![]))
        .unwrap();
    assert_eq!(store.delegated().unwrap()[0].2, REFRESH);
}
