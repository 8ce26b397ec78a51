//! The control plane ships identity providers' signing keys in the snapshot
//! and refreshes them: a JWKS served on loopback, rotated, then picked up.

use std::sync::{Arc, Mutex};

use axum::routing::get;
use toolgate_control_plane::jwks;
use toolgate_control_plane::registry::Registry;
use toolgate_control_plane::store::SqliteStore;

const RSA_KEY: &str = r#"{"keys":[{"kty":"RSA","n":"6OA3YCvP27rugkMpZMUMKD3Z9VGy1rmFIqh3qcENk11tqWFKkLcLlNwOQA1zh1ojpRn5NQymvDKxwHD_aRSGoOtTbHogF_dzAoBwMszIWQldTCwXK8aLMpZWVJ-hFv_5zpAMfkpPzm7JZAmdvdYNu5ZHjrF5KyzhCDJuD8aP-0Q6hSWqI_gq77_J2QniFQuHAU8r9uPY-IZWqL_FQuNPAjxO-BbJJlXo_O_Xk3HsrbV8_e2zl5DEIDHTEs_-g8GwG3Vei-NgynEIftaiHTKNZivzs_4mcFNcqbT7Ey9mfMVbiy7hqyFZadY4ZfQW2fyvOPP-4gs-9OgBGAOlnorNtQ","e":"AQAB","kid":"a","alg":"RS256"}]}"#;
const EC_KEY: &str = r#"{"keys":[{"kty":"EC","x":"GP8F479aoD-3kIlFADEV48BIzJOy2rZI3oMccu7ZAP0","y":"YtRE_dvEpZZsGpOLeWYtFaersP72DYfwDFEeE7ehdN8","crv":"P-256","kid":"b","alg":"ES256"}]}"#;

/// An IdP that serves whatever key set `keys` holds at `/jwks`.
async fn serve_keys(keys: Arc<Mutex<&'static str>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        get(move || {
            let keys = keys.clone();
            async move { keys.lock().unwrap().to_string() }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://127.0.0.1:{}/jwks", addr.port())
}

fn write(dir: &std::path::Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

#[tokio::test]
async fn key_sets_travel_in_the_snapshot_and_rotations_are_published() {
    let keys = Arc::new(Mutex::new(RSA_KEY));
    let jwks_uri = serve_keys(keys.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "teams.yaml", "teams: [{name: eng}]\n");
    write(
        dir.path(),
        "idp.yaml",
        &format!("identity_providers:\n  - name: corp\n    issuer: https://idp.example.com\n    audience: https://toolgate.test\n    jwks_uri: {jwks_uri}\n    groups_to_teams: {{engineers: eng}}\n"),
    );
    let store = SqliteStore::open(&dir.path().join("toolgate.db")).unwrap();
    let registry = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || Registry::open(&path, Box::new(store))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));

    let source = format!("jwks:{jwks_uri}");
    let first = registry.current();
    assert_eq!(
        first.document.jwks.get(&source).map(String::as_str),
        Some(RSA_KEY)
    );
    // What a proxy does with it: compile, with the keys, and no IdP call.
    assert!(first.document.compile().unwrap().has_identity_providers());

    // Nothing changed: no new snapshot.
    assert!(!jwks::refresh(&registry).await);
    assert_eq!(registry.current().version, first.version);

    // The IdP rotates its keys: the next refresh publishes them.
    *keys.lock().unwrap() = EC_KEY;
    assert!(jwks::refresh(&registry).await);
    let second = registry.current();
    assert!(second.version > first.version);
    assert_eq!(
        second.document.jwks.get(&source).map(String::as_str),
        Some(EC_KEY)
    );
    second.document.compile().unwrap();
}

#[tokio::test]
async fn an_unreachable_idp_is_a_config_error_naming_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "teams.yaml", "teams: [{name: eng}]\n");
    write(
        dir.path(),
        "idp.yaml",
        "identity_providers:\n  - {name: corp, issuer: \"https://idp.example.com\", audience: x, jwks_uri: \"http://127.0.0.1:9/jwks\"}\n",
    );
    let store = SqliteStore::open(&dir.path().join("toolgate.db")).unwrap();
    let path = dir.path().to_path_buf();
    let err = tokio::task::spawn_blocking(move || Registry::open(&path, Box::new(store)))
        .await
        .unwrap()
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.starts_with("idp.yaml: identity_providers[0]: cannot fetch the signing keys (jwks:http://127.0.0.1:9/jwks): "),
        "{err}"
    );
}
