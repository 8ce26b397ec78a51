//! Bodies around Pingora's 64 KiB replay buffer are checked in full before
//! anything is forwarded, and arrive upstream intact.

use serde_json::json;

use crate::common::*;

/// A `tools/call` body of exactly `total` bytes, the tool name at the very end.
fn body_of_size(tool: &str, total: usize) -> (String, usize) {
    let make = |pad: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{{"title":"big","body":"{}"}},"name":"{tool}"}}}}"#,
            "a".repeat(pad)
        )
    };
    let base = make(0).len();
    let pad = total - base;
    let body = make(pad);
    assert_eq!(body.len(), total);
    (body, pad)
}

#[tokio::test]
async fn bodies_at_and_around_64_kib_and_at_the_cap() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    let h = in_session(&sid);
    for total in [65535, 65536, 65537, 300_000, BODY_CAP] {
        let (body, pad) = body_of_size("create_issue", total);
        let r = post(&gw.url("demo"), Some(ALICE), body, &h).await;
        assert_eq!(r.status, 200, "{total}: {}", r.body);
        assert!(
            r.body.contains(&format!("(body: {pad} bytes)")),
            "{total}: {}",
            r.body
        );
    }
    let connections = upstream.connection_count();
    let requests = upstream.requests().len();
    for total in [65535, 65536, 65537, BODY_CAP] {
        let (body, _) = body_of_size("delete_issue", total);
        let r = post(&gw.url("demo"), Some(ALICE), body, &h).await;
        assert_eq!(r.json()["error"]["code"], -32602, "{total}");
    }
    let (body, _) = body_of_size("create_issue", BODY_CAP + 1);
    assert_eq!(
        post(&gw.url("demo"), Some(ALICE), body, &h).await.status,
        413
    );
    assert_eq!(
        upstream.requests().len(),
        requests,
        "denied large bodies reach nobody"
    );
    assert_eq!(upstream.connection_count(), connections);
    let _ = json!(null);
    gw.stop().await;
}
