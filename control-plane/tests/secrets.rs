//! Secrets at rest: sealed in the SQLite file under the master key, opened
//! only with it, re-sealed when the key is rotated.

use std::path::Path;

use toolgate_control_plane::crypto::{Keyring, MasterKey};
use toolgate_control_plane::store::{Mutation, SqliteStore, Store, StoreError};

const VALUE: &str = "jira-api-key-value-0123456789";

fn key(hex_byte: &str) -> MasterKey {
    MasterKey::parse(&hex_byte.repeat(32)).unwrap()
}

fn set(store: &SqliteStore, name: &str, value: &str) -> Result<(), StoreError> {
    let m = Mutation::SetSecret {
        name: name.into(),
        value: value.into(),
    };
    store.apply("admin", &m, &|_, _| Ok(())).map(|_| ())
}

fn file_contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

fn secret(store: &SqliteStore, name: &str) -> Option<String> {
    let state = store.state().unwrap();
    state
        .secrets
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

#[test]
fn secrets_are_sealed_on_disk_and_open_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("toolgate.db");
    let ring = Keyring::new(key("a1"), vec![]);
    let (store, _) = SqliteStore::open(&db).unwrap().with_keyring(ring).unwrap();
    set(&store, "jira", VALUE).unwrap();
    assert_eq!(secret(&store, "jira").as_deref(), Some(VALUE));
    drop(store);
    assert!(
        !file_contains(dir.path(), VALUE),
        "the value is sealed at rest"
    );

    // Without the key nothing is read or written, and the error says why.
    let keyless = SqliteStore::open(&db).unwrap();
    let err = keyless.state().unwrap_err().to_string();
    assert!(err.contains("master key"), "{err}");
    let err = set(&keyless, "other", "x").unwrap_err().to_string();
    assert!(err.contains("master key"), "{err}");

    // Another key does not open it.
    let wrong = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("b2"), vec![]));
    let err = wrong.err().expect("refused").to_string();
    assert!(
        err.contains("not configured") && !err.contains(VALUE),
        "{err}"
    );
}

#[test]
fn rotating_the_master_key_reseals_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("toolgate.db");
    let (store, _) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("a1"), vec![]))
        .unwrap();
    set(&store, "jira", VALUE).unwrap();
    set(&store, "github", "ghp_value").unwrap();
    drop(store);

    // New key current, old one previous: both secrets re-sealed at open.
    let rotating = Keyring::new(key("c3"), vec![key("a1")]);
    let (store, resealed) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(rotating)
        .unwrap();
    assert_eq!(resealed, 2);
    assert_eq!(secret(&store, "jira").as_deref(), Some(VALUE));
    drop(store);

    // The old key can now be retired.
    let (store, resealed) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("c3"), vec![]))
        .unwrap();
    assert_eq!(resealed, 0);
    assert_eq!(secret(&store, "github").as_deref(), Some("ghp_value"));
    assert!(!file_contains(dir.path(), VALUE));
}

#[test]
fn plain_values_from_an_older_version_are_sealed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("toolgate.db");
    drop(SqliteStore::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO secrets (name, value, updated_at) VALUES ('jira', ?1, 'then')",
        [VALUE],
    )
    .unwrap();
    drop(conn);
    let (store, resealed) = SqliteStore::open(&db)
        .unwrap()
        .with_keyring(Keyring::new(key("a1"), vec![]))
        .unwrap();
    assert_eq!(resealed, 1);
    assert_eq!(secret(&store, "jira").as_deref(), Some(VALUE));
    drop(store);
    // Checkpointed: no plain copy left in the database or its WAL.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    conn.execute_batch("VACUUM").unwrap();
    drop(conn);
    assert!(!file_contains(dir.path(), VALUE));
}
