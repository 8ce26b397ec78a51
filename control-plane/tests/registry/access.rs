//! Tokens, approvals and secret rotation, as a proxy sees them.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pat_issue_and_revoke_through_the_proxy() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    approve_demo(&plane, UPSTREAM_SECRET).await;
    let (proxy, _store, follower) = plane.proxy("snapshot.json").await;
    let url = format!("http://{}/mcp/demo", proxy.addr);

    let (id, token) = issue(&plane, "alice").await;
    eventually("the new token works", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 200
    })
    .await;
    let listed = plane
        .api("GET", "/v1/principals/alice/tokens", None)
        .await
        .1;
    assert!(
        !listed.to_string().contains(&token),
        "the token text is never stored or listed"
    );
    assert_eq!(
        listed[0]["sha256"],
        hex::encode(catalog::token_digest(&token))
    );

    plane.revoke_token(id).await;
    eventually("the revoked token is refused", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 401
    })
    .await;
    follower.abort();
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_and_secret_rotation_reach_the_proxy() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    // Approving needs the server's secret to exist: refused, nothing applied.
    let (status, body) = plane.api("POST", "/v1/servers/demo/approve", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store:demo-token"),
        "{body}"
    );
    approve_demo(&plane, "stale-secret").await;
    let (proxy, _store, follower) = plane.proxy("snapshot.json").await;
    let url = format!("http://{}/mcp/demo", proxy.addr);
    let (_, token) = issue(&plane, "alice").await;
    eventually("the token works", || async {
        post(&url, Some(&token), INIT, &[]).await.status != 401
    })
    .await;
    assert_eq!(
        post(&url, Some(&token), INIT, &[]).await.status,
        502,
        "the upstream refuses the stale secret"
    );

    assert_eq!(
        plane
            .api(
                "PUT",
                "/v1/secrets/demo-token",
                Some(json!({"value": UPSTREAM_SECRET}))
            )
            .await
            .0,
        204
    );
    eventually("the rotated secret is injected", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 200
    })
    .await;
    let last = upstream.requests().pop().unwrap();
    assert_eq!(
        last.headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    let secrets = plane.api("GET", "/v1/secrets", None).await.1;
    assert!(
        !secrets.to_string().contains(UPSTREAM_SECRET),
        "secrets are never read back: {secrets}"
    );
    // Sealed at rest: the value is in no file of the control plane's.
    for entry in std::fs::read_dir(plane.root.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && !path.ends_with("upstream-token") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(UPSTREAM_SECRET.len())
                    .any(|w| w == UPSTREAM_SECRET.as_bytes()),
                "{} holds the secret in plain text",
                path.display()
            );
        }
    }

    // Blocking takes the server away.
    assert_eq!(
        plane.api("POST", "/v1/servers/demo/block", None).await.0,
        200
    );
    eventually("the blocked server disappears", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 404
    })
    .await;
    follower.abort();
    proxy.stop().await;
}
