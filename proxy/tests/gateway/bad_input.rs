//! Every malformed request gets a clear error with its id, and reaches nobody.

use std::io::Write;

use serde_json::json;

use crate::common::*;

/// What is sent, with which headers; the expected status, JSON-RPC code and id.
type Case<'a> = (
    &'a str,
    String,
    &'a [(&'a str, &'a str)],
    u16,
    i64,
    serde_json::Value,
);

#[tokio::test]
async fn malformed_bodies_are_refused_with_the_request_id() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    let cases: Vec<Case> = vec![
        ("not json", "{\"jsonrpc\":".into(), &[], 400, -32700, json!(null)),
        ("duplicate name", r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_issues","name":"delete_issue"}}"#.into(), &[], 400, -32600, json!(5)),
        ("look-alike key", r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"search_issues","NAME":"delete_issue"}}"#.into(), &[], 400, -32600, json!("x")),
        ("no method", r#"{"jsonrpc":"2.0","id":6}"#.into(), &[], 400, -32600, json!(6)),
        ("Mcp-Name disagrees", call(8, "search_issues", json!({"query": "a"})), &[("mcp-method", "tools/call"), ("mcp-name", "delete_issue")], 400, -32020, json!(8)),
        ("Mcp-Method disagrees", call(9, "search_issues", json!({"query": "a"})), &[("mcp-method", "tools/list")], 400, -32020, json!(9)),
    ];
    for (what, body, headers, status, code, id) in cases {
        let r = post(&url, Some(ALICE), body, headers).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert_eq!(v["id"], id, "{what}: {v}");
    }
    assert_eq!(upstream.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_before_anything_is_forwarded() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let big = call(1, "search_issues", json!({"query": "x".repeat(BODY_CAP)}));
    let r = post(&gw.url("demo"), Some(ALICE), big.clone(), &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -32600);
    // Without a declared length (chunked), the cap still holds.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        reqwest::Body::wrap_stream(stream),
        &[],
    )
    .await;
    assert_eq!(r.status, 413);
    // A small gzip body that inflates past the cap.
    let bomb = gzip(&vec![b' '; BODY_CAP + 10]);
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        bomb,
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(upstream.connection_count(), 0);
    gw.stop().await;
}

/// `data` gzipped (also for `protocol.rs`).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn compressed_bodies_are_decoded_checked_and_forwarded_decoded() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    let h = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
        ("content-encoding", "gzip"),
    ];
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        gzip(call(2, "search_issues", json!({"query": "Login"})).as_bytes()),
        &h,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 issue(s) match"));
    let before = upstream.requests().len();
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        gzip(call(3, "delete_issue", json!({"id": 0})).as_bytes()),
        &h,
    )
    .await;
    assert_eq!(
        r.json()["error"]["code"],
        -32602,
        "a compressed denied call is still denied"
    );
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        "{}",
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(r.status, 415);
    let r = reqwest::Client::new()
        .post(gw.url("demo"))
        .bearer_auth(ALICE)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = reqwest::Client::new()
        .put(gw.url("demo"))
        .bearer_auth(ALICE)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        upstream.requests().len(),
        before,
        "refused requests reach nobody"
    );
    gw.stop().await;
}
