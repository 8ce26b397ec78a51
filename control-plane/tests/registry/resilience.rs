//! Proxies through a control-plane outage, and a session moving between proxies.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_survive_a_control_plane_outage_and_catch_up() {
    let upstream = Upstream::start(true).await;
    let mut plane = Plane::new(upstream.addr).await;
    approve_demo(&plane, UPSTREAM_SECRET).await;
    let (id, token) = issue(&plane, "alice").await;
    let (proxy, _store, follower) = plane.proxy("snapshot.json").await;
    let url = format!("http://{}/mcp/demo", proxy.addr);
    eventually("the token works", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 200
    })
    .await;

    let addr = plane.addr.to_string();
    plane.stop_cp().await;
    // The running proxy keeps enforcing its last snapshot...
    let r = post(
        &url,
        Some(&token),
        call(1, "search_issues", json!({"query": "Login"})),
        &[],
    )
    .await;
    assert_ne!(r.status, 401, "{}", r.body);
    assert_eq!(
        post(
            &url,
            Some(&token),
            call(2, "delete_issue", json!({"id": 0})),
            &[]
        )
        .await
        .json()["error"]["code"],
        -32602
    );
    // ...and a new proxy starts from the cached snapshot (mode 0600).
    let cache = plane.root.path().join("snapshot.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (second, _store2, follower2) = plane.proxy("snapshot.json").await;
    let url2 = format!("http://{}/mcp/demo", second.addr);
    assert_eq!(post(&url2, Some(&token), INIT, &[]).await.status, 200);

    // The control plane returns (same database, same address): both catch up.
    plane.start_cp(&addr).await;
    plane.revoke_token(id).await;
    eventually("proxy 1 applies the revocation", || async {
        post(&url, Some(&token), INIT, &[]).await.status == 401
    })
    .await;
    eventually("proxy 2 applies the revocation", || async {
        post(&url2, Some(&token), INIT, &[]).await.status == 401
    })
    .await;
    follower.abort();
    follower2.abort();
    proxy.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_proxy_continues_on_another() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    approve_demo(&plane, UPSTREAM_SECRET).await;
    let (a, _sa, fa) = plane.proxy("a.json").await;
    let (b, _sb, fb) = plane.proxy("b.json").await;
    let (_, token) = issue(&plane, "alice").await;
    let url_a = format!("http://{}/mcp/demo", a.addr);
    let url_b = format!("http://{}/mcp/demo", b.addr);
    eventually("both proxies know the token", || async {
        post(&url_a, Some(&token), INIT, &[]).await.status == 200
            && post(&url_b, Some(&token), INIT, &[]).await.status == 200
    })
    .await;

    // Opened on A, used on B: both replicas share the control plane's key.
    let sid = common::open_session(&url_a, &token).await;
    let r = post(
        &url_b,
        Some(&token),
        call(1, "search_issues", json!({"query": "x"})),
        &common::in_session(&sid),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("issue(s) match"), "{}", r.body);
    // Still bound to its caller on every replica.
    let (_, other) = issue(&plane, "alice").await;
    eventually("the second token works", || async {
        post(&url_b, Some(&other), INIT, &[]).await.status == 200
    })
    .await;
    let stolen = post(
        &url_b,
        Some(&other),
        call(2, "search_issues", json!({"query": "x"})),
        &common::in_session(&sid),
    )
    .await;
    assert_eq!(stolen.status, 404, "{}", stolen.body);
    fa.abort();
    fb.abort();
    a.stop().await;
    b.stop().await;
}
