//! Config edits take effect without a restart; bad edits change nothing;
//! revocation reaches requests already in flight; swaps fail no request.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn policy_edit_takes_effect_and_invalid_edit_is_refused() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    let h = in_session(&sid);
    let del = call(1, "delete_issue", json!({"id": 0}));
    assert_eq!(
        post(&gw.url("demo"), Some(ALICE), del.clone(), &h)
            .await
            .json()["error"]["code"],
        -32602
    );

    gw.edit(
        "policies.yaml",
        &POLICIES.replace("    deny: [{server: demo, tools: [\"delete_*\"]}]\n", ""),
    )
    .await;
    let r = post(&gw.url("demo"), Some(ALICE), del.clone(), &h).await;
    assert!(r.body.contains("deleted #0"), "{}", r.body);

    let version = gw.store.load().version;
    write(
        gw.dir.path(),
        "policies.yaml",
        "policies:\n  - name: broken\n    subjects: {teams: [nobody]}\n",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gw.store.load().version,
        version,
        "an invalid edit is not applied"
    );
    let r = post(&gw.url("demo"), Some(ALICE), del, &h).await;
    assert!(
        r.body.contains("deleted #0"),
        "the last good snapshot keeps serving: {}",
        r.body
    );
    gw.stop().await;
}

#[tokio::test]
async fn revocation_applies_to_new_and_in_flight_requests() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    let body = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"long_report","arguments":{"steps":100},"_meta":{"progressToken":"p"}}});
    let resp = session_request(reqwest::Method::POST, &gw.url("demo"), ALICE, &sid)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        let mut resp = resp;
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.edit("principals.yaml", &principals_yaml(true)).await;
    let text = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("stream ended")
        .unwrap();
    assert!(text.contains("notifications/progress"), "{text}");
    assert!(
        !text.contains("report done"),
        "a revoked caller's stream must end: {text}"
    );
    let r = post(&gw.url("demo"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        post(&gw.url("demo"), Some(BOB), INIT, &[]).await.status,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn snapshot_swaps_under_load_fail_no_request() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = Arc::new(open_session(&gw.url("demo"), ALICE).await);
    let swapper = {
        let store = gw.store.clone();
        let dir = toolgate_proxy::reload::ConfigDir::new(gw.dir.path());
        tokio::spawn(async move {
            for _ in 0..100 {
                let next = dir.compile(store.load().version + 1).unwrap();
                store.store(Arc::new(next));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let url = gw.url("demo");
        let sid = sid.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..50u64 {
                let r = post(
                    &url,
                    Some(ALICE),
                    call(w * 1000 + i, "search_issues", json!({"query": "Login"})),
                    &in_session(&sid),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.body);
                assert!(r.body.contains("1 issue(s) match"), "{}", r.body);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    swapper.await.unwrap();
    assert!(gw.store.load().version > 50);
    gw.stop().await;
}

async fn open_get_stream(url: &str, token: &str, sid: &str) -> reqwest::Response {
    let r = session_request(reqwest::Method::GET, url, token, sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// Waits for the end of a stream; `None` if it is still open after `wait`.
async fn ends_within(mut r: reqwest::Response, wait: Duration) -> Option<()> {
    tokio::time::timeout(
        wait,
        async move { while let Ok(Some(_)) = r.chunk().await {} },
    )
    .await
    .ok()
}

#[tokio::test]
async fn revocation_ends_idle_streams_of_that_caller_only() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    let alice_sid = open_session(&url, ALICE).await;
    let bob_sid = open_session(&url, BOB).await;
    let alice_stream = open_get_stream(&url, ALICE, &alice_sid).await;
    let bob_stream = open_get_stream(&url, BOB, &bob_sid).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.edit("principals.yaml", &principals_yaml(true)).await;
    assert!(
        ends_within(alice_stream, Duration::from_secs(2))
            .await
            .is_some(),
        "the revoked caller's idle stream must end"
    );
    assert!(
        ends_within(bob_stream, Duration::from_millis(500))
            .await
            .is_none(),
        "other callers' streams stay open"
    );
    gw.stop().await;
}
