//! Offboarding: disabling a user (API or config/) deletes their delegated
//! tokens, and the next snapshot stops carrying them. Connections survive a
//! control plane restart (only refresh tokens are kept, sealed).

use serde_json::Value;

use crate::fixture::*;

async fn shipped(cp_addr: std::net::SocketAddr) -> Value {
    let doc: Value = reqwest::Client::new()
        .get(format!("http://{cp_addr}/v1/snapshot"))
        .bearer_auth(PROXY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["delegated"]["tracker"]["tokens"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_deletes_their_delegated_tokens() {
    let plane = Plane::start().await;
    let (cp_addr, url) = (plane.cp, plane.url.clone());
    connect(cp_addr, ALICE, "alice").await;
    connect(cp_addr, BOB, "bob").await;
    eventually("alice's and bob's calls go through", || async {
        call(&url, ALICE).await.0 == 200 && call(&url, BOB).await.0 == 200
    })
    .await;

    // Carol is disabled while she is at the authorization server: her
    // connection does not complete.
    let callback = sign_in(&start(cp_addr, CAROL).await, "carol").await;
    admin(
        reqwest::Method::POST,
        cp_addr,
        "/v1/principals/carol/disable",
    )
    .await;
    assert_eq!(open(&callback).await.0, 403);
    let c = admin(
        reqwest::Method::GET,
        cp_addr,
        "/v1/servers/tracker/connections",
    )
    .await;
    assert!(
        c.as_array()
            .unwrap()
            .iter()
            .all(|c| c["principal"] != "carol"),
        "{c}"
    );

    // Offboarding: disabling bob deletes his delegated tokens; the next
    // snapshot no longer carries them, and re-enabling does not bring them back.
    let off = admin(reqwest::Method::POST, cp_addr, "/v1/principals/bob/disable").await;
    assert_eq!(off["delegated_tokens_deleted"], 1, "{off}");
    eventually("bob is refused", || async {
        call(&url, BOB).await.0 == 401
    })
    .await;
    let tokens = shipped(cp_addr).await;
    assert!(tokens.get("bob").is_none(), "{tokens}");
    // And revoked at the authorization server (RFC 7009).
    eventually("bob's refresh token is revoked", || async {
        plane
            .auth
            .revoked
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.starts_with("rt-bob-"))
    })
    .await;
    assert!(plane
        .auth
        .refresh
        .lock()
        .unwrap()
        .values()
        .all(|u| u != "bob"));
    assert!(tokens.get("alice").is_some());
    admin(reqwest::Method::POST, cp_addr, "/v1/principals/bob/enable").await;
    eventually("bob, enabled again, must connect anew", || async {
        call(&url, BOB).await.0 == 403
    })
    .await;
    assert_eq!(call(&url, ALICE).await.0, 200, "alice is unaffected");

    // Disabled in config/: the refresher deletes alice's tokens too.
    std::fs::write(
        plane.config().join("principals.yaml"),
        principals(&["alice"]),
    )
    .unwrap();
    eventually("alice is refused", || async {
        call(&url, ALICE).await.0 == 401
    })
    .await;
    eventually("alice's refresh token is gone", || async {
        let c = admin(
            reqwest::Method::GET,
            cp_addr,
            "/v1/servers/tracker/connections",
        )
        .await;
        c.as_array()
            .unwrap()
            .iter()
            .all(|c| c["principal"] != "alice")
    })
    .await;
    assert!(shipped(cp_addr).await.get("alice").is_none());
    std::fs::write(plane.config().join("principals.yaml"), principals(&[])).unwrap();
    eventually("alice, enabled again, must connect anew", || async {
        call(&url, ALICE).await.0 == 403
    })
    .await;
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_survive_a_control_plane_restart() {
    let mut plane = Plane::start().await;
    connect(plane.cp, ALICE, "alice").await;
    let url = plane.url.clone();
    eventually("alice's call goes through", || async {
        call(&url, ALICE).await.0 == 200
    })
    .await;
    // Access tokens lived in memory only: the new control plane refreshes
    // from the sealed refresh token, with no action from alice.
    plane.restart().await;
    let url = plane.url.clone();
    eventually("alice's call goes through again", || async {
        call(&url, ALICE).await.0 == 200
    })
    .await;
    assert_eq!(
        plane.seen.lock().unwrap().last().map(String::as_str),
        Some("alice")
    );
    assert_eq!(call(&url, BOB).await.0, 403, "bob never connected");

    // Alice disconnects herself: her token is no longer injected.
    let resp = reqwest::Client::new()
        .delete(&plane.connect_url)
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("alice must connect again", || async {
        call(&url, ALICE).await.0 == 403
    })
    .await;
    let c = admin(
        reqwest::Method::GET,
        plane.cp,
        "/v1/servers/tracker/connections",
    )
    .await;
    assert_eq!(
        c,
        serde_json::json!([]),
        "nothing left of alice's connection"
    );
    eventually("alice's refresh token is revoked", || async {
        plane
            .auth
            .revoked
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.starts_with("rt-alice-"))
    })
    .await;
    plane.stop().await;
}
