//! Users who sign in with an identity provider (JWT, no PAT) connect and
//! get their own token injected by their principal claim; removed from the
//! IdP group, they lose the server at the proxy and at the connect API.

use axum::routing::get;
use axum::Router;
use base64::Engine;
use serde_json::json;

use crate::fixture::*;
use crate::peers::serve_app;

const ISSUER: &str = "https://idp.delegated.test";
const AUDIENCE: &str = "https://toolgate.delegated.test";

/// A signing key and its JWKS.
fn key() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().expect("P-256 key");
    let raw = key.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    }]});
    (key, jwks.to_string())
}

fn jwt(key: &rcgen::KeyPair, sub: &str, groups: &[&str]) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": groups,
        "iat": now, "exp": now + 600,
    });
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_users_connect_and_get_their_own_token() {
    let (signing, jwks) = key();
    let idp = serve_app(Router::new().route("/jwks", get(move || async move { jwks }))).await;
    let plane = Plane::start_with(&[(
        "idp.yaml",
        format!("identity_providers:\n  - name: corp\n    issuer: {ISSUER}\n    audience: {AUDIENCE}\n    jwks_uri: http://{idp}/jwks\n    groups_to_teams: {{engineering: eng}}\n"),
    )])
    .await;
    let (cp, url) = (plane.cp, plane.url.clone());
    let dana = jwt(&signing, "dana", &["engineering"]);

    let (status, body) = call(&url, &dana).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["data"]["connect_url"],
        plane.connect_url.as_str()
    );

    connect(cp, &dana, "dana").await;
    eventually("dana's call goes through", || async {
        call(&url, &dana).await.0 == 200
    })
    .await;
    connect(cp, ALICE, "alice").await;
    eventually("alice's call goes through", || async {
        call(&url, ALICE).await.0 == 200
    })
    .await;
    plane.seen.lock().unwrap().clear();
    assert_eq!(call(&url, &dana).await.0, 200);
    assert_eq!(call(&url, ALICE).await.0, 200);
    assert_eq!(*plane.seen.lock().unwrap(), vec!["dana", "alice"]);

    // Out of the IdP group: no grant, at the proxy and at the connect API.
    let removed = jwt(&signing, "dana", &[]);
    assert_eq!(call(&url, &removed).await.0, 404);
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&plane.connect_url)
        .bearer_auth(&removed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // A JWT from elsewhere is refused.
    let (other, _) = key();
    let forged = jwt(&other, "alice", &["engineering"]);
    let resp = reqwest::Client::new()
        .get(&plane.connect_url)
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    plane.stop().await;
}
