//! Streamable HTTP as agents use it: sessions, SSE streams with progress,
//! GET and DELETE, the stateless 2026-07-28 headers, and awkward upstreams.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use serde_json::json;

use crate::bad_input::gzip;
use crate::common::*;

#[tokio::test]
async fn progress_streams_before_the_result() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    let body = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"long_report","arguments":{"steps":3},"_meta":{"progressToken":"p1"}}});
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        body.to_string(),
        &in_session(&sid),
    )
    .await;
    let msgs = r.messages();
    let progress: Vec<_> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{}", r.body);
    assert!(msgs.last().unwrap()["result"]
        .to_string()
        .contains("report done after 3 steps"));
    gw.stop().await;
}

#[tokio::test]
async fn get_stream_and_delete_pass_through_with_the_session() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    let sid = open_session(&url, ALICE).await;
    let get = session_request(reqwest::Method::GET, &url, ALICE, &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(get.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The stream stays open: no end within half a second.
    let mut stream = get.bytes_stream();
    let ended = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_err(), "the SSE stream closed early");
    drop(stream);
    // Resumption: Last-Event-ID reaches the upstream unchanged.
    let resumed = session_request(reqwest::Method::GET, &url, ALICE, &sid)
        .header("last-event-id", "0/0")
        .send()
        .await
        .unwrap();
    let _ = resumed.status();
    drop(resumed);
    let seen = upstream.requests();
    assert!(seen
        .iter()
        .any(|s| s.method == "GET" && s.headers.get("last-event-id").is_some_and(|v| v == "0/0")));
    let del = session_request(reqwest::Method::DELETE, &url, ALICE, &sid)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    let r = post(
        &url,
        Some(ALICE),
        call(5, "search_issues", json!({"query": "a"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(
        r.status, 404,
        "an ended session is the upstream's 404: {}",
        r.body
    );
    gw.stop().await;
}

#[tokio::test]
async fn stateless_2026_07_28_requests_and_their_headers_pass_through() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}});
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"query":"Login"},"_meta":meta}});
    let h = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "search_issues"),
        ("mcp-param-query", "Login"),
    ];
    let r = post(&gw.url("demo"), Some(ALICE), body.to_string(), &h).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 issue(s) match"), "{}", r.body);
    let seen = upstream.requests();
    let last = &seen.last().unwrap().headers;
    assert_eq!(last["mcp-method"], "tools/call");
    assert_eq!(last["mcp-name"], "search_issues");
    assert_eq!(last["mcp-param-query"], "Login");
    let discover =
        json!({"jsonrpc":"2.0","id":2,"method":"server/discover","params":{"_meta":meta}});
    let r = post(
        &gw.url("demo"),
        Some(BOB),
        discover.to_string(),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "server/discover"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.stop().await;
}

/// An upstream that answers every POST with `reply`, written in small pieces.
async fn raw_upstream(reply: fn() -> Response) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new().route("/mcp", axum::routing::post(move || async move { reply() }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_issues","inputSchema":{"type":"object"}},{"name":"delete_issue","inputSchema":{"type":"object"}}],"nextCursor":"page-2"}}"#;

fn sse_in_tiny_chunks() -> Response {
    let text = format!("id: 1\nevent: message\ndata: {LIST}\n\n: keep-alive\n\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"level\":\"info\",\"data\":\"delete_issue\"}}}}\n\n");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(7)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = futures::stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        c
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A JSON answer of `body`, its `Content-Encoding` fields `codings`.
fn json_reply(body: Vec<u8>, codings: &[&str]) -> Response {
    let mut reply = Response::builder().header("content-type", "application/json");
    for coding in codings {
        reply = reply.header("content-encoding", *coding);
    }
    reply.body(Body::from(body)).unwrap()
}

fn gzipped_json() -> Response {
    json_reply(gzip(LIST.as_bytes()), &["gzip"])
}

/// [`LIST`] gzipped, its coding stated as `identity` and then `gzip`, in
/// two fields.
fn gzipped_json_coding_in_two_fields() -> Response {
    json_reply(gzip(LIST.as_bytes()), &["identity", "gzip"])
}

/// [`LIST`] gzipped twice.
fn gzipped_twice() -> Response {
    json_reply(gzip(&gzip(LIST.as_bytes())), &["gzip, gzip"])
}

async fn list_through(reply: fn() -> Response) -> Reply {
    let addr = raw_upstream(reply).await;
    let gw = Gateway::start(addr).await;
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        &[],
    )
    .await;
    gw.stop().await;
    r
}

#[tokio::test]
async fn sse_tool_lists_split_across_chunks_are_filtered() {
    let r = list_through(sse_in_tiny_chunks).await;
    let msgs = r.messages();
    assert_eq!(msgs.len(), 2, "{}", r.body);
    assert_eq!(
        msgs[0]["result"]["tools"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    assert_eq!(msgs[0]["result"]["tools"][0]["name"], "search_issues");
    assert_eq!(msgs[0]["result"]["nextCursor"], "page-2");
    assert!(
        r.body.contains("id: 1\n"),
        "event fields are kept: {}",
        r.body
    );
    assert_eq!(
        msgs[1]["params"]["data"], "delete_issue",
        "other messages pass untouched"
    );
}

#[tokio::test]
async fn compressed_json_tool_lists_are_filtered() {
    let r = list_through(gzipped_json).await;
    let v = r.json();
    assert_eq!(
        v["result"]["tools"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    assert_eq!(v["result"]["nextCursor"], "page-2");
    let len: usize = r
        .headers
        .get("content-length")
        .map_or(r.body.len(), |v| v.to_str().unwrap().parse().unwrap());
    assert_eq!(
        len,
        r.body.len(),
        "Content-Length matches the rewritten body"
    );
}

#[tokio::test]
async fn every_content_encoding_field_of_a_tool_list_is_read() {
    // The coding in the second field: the list is still decoded and filtered.
    let r = list_through(gzipped_json_coding_in_two_fields).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tools = r.json()["result"]["tools"].clone();
    assert_eq!(tools.as_array().map(Vec::len), Some(1), "{}", r.body);
    assert_eq!(tools[0]["name"], "search_issues");
    // Two codings: not decoded here, so not passed on.
    let r = list_through(gzipped_twice).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(!r.body.contains("delete_issue"), "{}", r.body);
}

#[tokio::test]
async fn an_encoded_event_stream_is_not_passed_on_unfiltered() {
    // An upstream that ignores `Accept-Encoding: identity` on its stream.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = || async {
        let text = format!("id: 1\nevent: message\ndata: {LIST}\n\n");
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("content-encoding", "gzip")
            .body(Body::from(gzip(text.as_bytes())))
            .unwrap()
    };
    let app = axum::Router::new().route("/mcp", axum::routing::get(stream));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let gw = Gateway::start(addr).await;
    let resp = reqwest::Client::new()
        .get(gw.url("demo"))
        .bearer_auth(ALICE)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let encoded = resp
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity");
    let raw = resp.bytes().await.unwrap_or_default();
    let mut text = String::new();
    if encoded {
        let _ =
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut text);
    } else {
        text = String::from_utf8_lossy(&raw).into_owned();
    }
    assert!(!text.contains("delete_issue"), "{text}");
    gw.stop().await;
}

/// Reads an SSE response in the background, exposing what arrived so far.
fn read_in_background(
    mut resp: reqwest::Response,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    tokio::task::JoinHandle<()>,
) {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    let task = tokio::spawn(async move {
        while let Ok(Some(chunk)) = resp.chunk().await {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    (text, task)
}

async fn wait_for(text: &std::sync::Mutex<String>, needle: &str) -> String {
    for _ in 0..500 {
        let t = text.lock().unwrap().clone();
        if t.contains(needle) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw {needle:?} in {}", text.lock().unwrap());
}

#[tokio::test]
async fn server_to_client_sampling_and_the_reply_pass_through() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    let init = INIT.replace(r#""capabilities":{}"#, r#""capabilities":{"sampling":{}}"#);
    let r = post(&url, Some(ALICE), init, &[]).await;
    let sid = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let h = in_session(&sid);
    assert_eq!(
        post(
            &url,
            Some(ALICE),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            &h
        )
        .await
        .status,
        202
    );

    let resp = session_request(reqwest::Method::POST, &url, ALICE, &sid)
        .body(call(9, "summarize", json!({"text": "a long story"})))
        .send()
        .await
        .unwrap();
    let (text, reader) = read_in_background(resp);
    let so_far = wait_for(&text, "sampling/createMessage").await;
    let request: serde_json::Value = so_far
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .find(|m: &serde_json::Value| m["method"] == "sampling/createMessage")
        .unwrap();
    let reply = json!({"jsonrpc":"2.0","id":request["id"],"result":{"role":"assistant","content":{"type":"text","text":"Paris, briefly"},"model":"agent-model","stopReason":"endTurn"}});
    let r = post(&url, Some(ALICE), reply.to_string(), &h).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let done = wait_for(&text, "summary from the agent's model").await;
    assert!(done.contains("Paris, briefly"), "{done}");
    reader.abort();
    gw.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_is_a_json_rpc_error_with_the_id() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw = Gateway::start(closed).await;
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        call(12, "search_issues", json!({"query": "a"})),
        &[],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["id"], 12);
    assert_eq!(r.json()["error"]["code"], -32603);
    gw.stop().await;
}
