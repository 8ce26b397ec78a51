//! `POST`s served by the gateway's direct path (`gateway/direct.rs`), with a
//! raw agent and a scripted raw upstream, so that connection reuse, framing
//! and the upstream's misbehaviour are exact.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use toolgate_proxy::metrics::ProxyMetrics;
use toolgate_proxy::server::GatewayOptions;

use crate::common::{post, Gateway, ALICE, UPSTREAM_SECRET};
use crate::raw_upstream::{large_text, raw_upstream, read_request, RawUpstream, Script};

fn call_request(gw: &Gateway, id: u64, extra: &str) -> String {
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"search_issues","arguments":{{"query":"q"}}}}}}"#
    );
    format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{call}",
        gw.addr,
        call.len()
    )
}

/// Sends `tools/call` number `id` on `agent` and reads its answer, which
/// must carry that id: the head and body.
async fn call(agent: &mut TcpStream, buf: &mut Vec<u8>, gw: &Gateway, id: u64) -> (String, String) {
    agent
        .write_all(call_request(gw, id, "").as_bytes())
        .await
        .unwrap();
    let (head, body) = read_response(agent, buf).await;
    assert!(body.contains(&format!(r#""id":{id}"#)), "{head}: {body}");
    (head, body)
}

/// Reads one response (head and `Content-Length` body) from the agent's side.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(5), read_request(conn, buf))
        .await
        .expect("a response in time")
        .map(|(head, body)| (head, String::from_utf8(body).unwrap()))
        .expect("a whole response")
}

#[tokio::test]
async fn calls_on_one_agent_connection_share_one_upstream_connection() {
    let up = raw_upstream(Script::Answer).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for id in 1..=3 {
        let (head, body) = call(&mut agent, &mut buf, &gw, id).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(body.contains(&format!("answer {id}")), "{body}");
    }
    // Two requests in one write (pipelined): answered in order.
    let two = call_request(&gw, 4, "") + &call_request(&gw, 5, "");
    agent.write_all(two.as_bytes()).await.unwrap();
    for id in 4..=5 {
        let (_, body) = read_response(&mut agent, &mut buf).await;
        assert!(body.contains(&format!(r#""id":{id}"#)), "{body}");
    }
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "one kept-alive upstream connection"
    );
    for head in up.heads.lock().unwrap().iter() {
        assert!(
            head.contains(&format!("authorization: bearer {UPSTREAM_SECRET}")),
            "{head}"
        );
        assert!(
            !head.contains(ALICE),
            "the agent's token never goes upstream: {head}"
        );
        assert!(head.starts_with("post /mcp http/1.1"), "{head}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_kept_connection_the_upstream_drops_is_retried_on_a_new_one() {
    let up = raw_upstream(Script::AnswerOnceThenDrop).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for id in 1..=2 {
        let (head, body) = call(&mut agent, &mut buf, &gw, id).await;
        assert!(head.starts_with("http/1.1 200"), "{head}: {body}");
    }
    // The second call met the dropped connection, then went on a new one.
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(up.heads.lock().unwrap().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn a_request_naming_two_hosts_is_refused() {
    let up = raw_upstream(Script::Answer).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let second = call_request(&gw, 1, "Host: evil.example\r\n");
    agent.write_all(second.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut agent, &mut Vec::new()).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(body.contains("more than one Host header"), "{body}");
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        0,
        "nothing went upstream"
    );
    gw.stop().await;
}

#[tokio::test]
async fn bytes_after_an_upstream_response_never_answer_the_next_request() {
    let up = raw_upstream(Script::AnswerWithExtra).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for id in 1..=2 {
        let (_, body) = call(&mut agent, &mut buf, &gw, id).await;
        assert!(!body.contains("smuggled"), "{body}");
    }
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        2,
        "a connection that sent more than it announced is not reused"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_agent_asking_to_close_gets_its_answer_and_the_close() {
    let up = raw_upstream(Script::Answer).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    agent
        .write_all(call_request(&gw, 9, "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_response(&mut agent, &mut buf).await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(body.contains(r#""id":9"#), "{body}");
    let mut rest = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), agent.read(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_denied_call_is_answered_with_its_id_and_never_reaches_the_upstream() {
    let up = raw_upstream(Script::Answer).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let call = r#"{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"delete_issue","arguments":{}}}"#;
    let req = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{call}",
        gw.addr,
        call.len()
    );
    agent.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (head, body) = read_response(&mut agent, &mut buf).await;
    // Refused in JSON-RPC (the HTTP exchange itself succeeded).
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], 31, "{body}");
    assert!(v["error"]["message"].is_string(), "{body}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        0,
        "no connection, no bytes"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stranger_is_refused_before_sending_its_body() {
    let up = raw_upstream(Script::Answer).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    // A head announcing a body that never comes, without a token.
    let head = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        gw.addr
    );
    agent.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (head, _) = read_response(&mut agent, &mut buf).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert_eq!(up.connections.load(Ordering::SeqCst), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_stranger_whose_body_came_with_its_head_gets_the_same_refusal() {
    let up = raw_upstream(Script::Answer).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    // Head and body in one write: admitted (or not) by one run of the checks.
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}"#;
    let request = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAuthorization: Bearer tg_not_a_known_token\r\nContent-Length: {}\r\n\r\n{body}",
        gw.addr,
        body.len()
    );
    agent.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let (head, _) = read_response(&mut agent, &mut buf).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(up.connections.load(Ordering::SeqCst), 0);
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_cannot_unframe_its_answer_with_a_connection_header() {
    let up = raw_upstream(Script::AnswerNamingLength).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for id in 1..=2 {
        let (head, _) = call(&mut agent, &mut buf, &gw, id).await;
        assert!(
            head.contains("content-length:"),
            "framed for the agent: {head}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_204_tool_list_answer_carries_no_body() {
    let up = raw_upstream(Script::NoContent).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let req = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{list}",
        gw.addr,
        list.len()
    );
    let mut buf = Vec::new();
    for _ in 0..2 {
        agent.write_all(req.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut agent, &mut buf).await;
        assert!(head.starts_with("http/1.1 204"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert_eq!(body, "");
    }
    // Nothing else follows the two answers on the connection.
    let mut more = [0u8; 16];
    let extra = tokio::time::timeout(Duration::from_millis(300), agent.read(&mut more)).await;
    assert!(extra.is_err(), "no stray bytes after a 204");
    gw.stop().await;
}

#[tokio::test]
async fn an_agent_that_leaves_mid_call_releases_the_upstream_connection() {
    let up = raw_upstream(Script::Hang).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    agent
        .write_all(call_request(&gw, 1, "").as_bytes())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while up.heads.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(agent);
    loop {
        if up
            .heads
            .lock()
            .unwrap()
            .iter()
            .any(|h| h == "closed by the gateway")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway closed the upstream connection after the agent left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.stop().await;
}

/// `toolgate_upstream_errors_total` for `demo` and `kind`, as rendered.
fn upstream_errors(metrics: &ProxyMetrics, kind: &str) -> Option<String> {
    metrics.render().lines().find_map(|l| {
        let counted = l.starts_with("toolgate_upstream_errors_total{")
            && l.contains(&format!("kind=\"{kind}\""))
            && l.contains("server=\"demo\"");
        counted.then(|| l.rsplit(' ').next().unwrap_or("").to_string())
    })
}

async fn gateway_with_metrics(up: &RawUpstream) -> (Gateway, Arc<ProxyMetrics>) {
    let metrics = Arc::new(ProxyMetrics::new());
    let options = GatewayOptions {
        metrics: Some(metrics.clone()),
        ..Default::default()
    };
    (Gateway::start_with(up.addr, options).await, metrics)
}

/// Waits (up to 5 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_body_the_upstream_cuts_short_is_counted_as_its_error() {
    let up = raw_upstream(Script::CutShort).await;
    let (gw, metrics) = gateway_with_metrics(&up).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    agent
        .write_all(call_request(&gw, 1, "").as_bytes())
        .await
        .unwrap();
    // The head and what came of the body, then the connection closes.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), agent.read_to_end(&mut got))
        .await
        .expect("the gateway closes the cut response")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("answer 1"), "{got}");
    eventually("the cut body is counted", || {
        upstream_errors(&metrics, "other").as_deref() == Some("1")
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn an_agent_leaving_mid_body_is_not_the_upstreams_error() {
    let up = raw_upstream(Script::StallMidBody).await;
    let (gw, metrics) = gateway_with_metrics(&up).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    agent
        .write_all(call_request(&gw, 1, "").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 16];
    agent.read_exact(&mut head).await.unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    drop(agent);
    let closed = || {
        up.heads
            .lock()
            .unwrap()
            .iter()
            .any(|h| h == "closed by the gateway")
    };
    eventually("the gateway closed the upstream connection", closed).await;
    // The request is finished (its line logged and counted) before the
    // upstream connection is dropped.
    let requests = metrics.render();
    assert!(requests.contains("toolgate_requests_total{"), "{requests}");
    assert_eq!(upstream_errors(&metrics, "other"), None, "{requests}");
    gw.stop().await;
}

#[tokio::test]
async fn a_large_answer_arriving_in_pieces_is_relayed_byte_for_byte() {
    let up = raw_upstream(Script::LargeInPieces).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for id in 1..=2u64 {
        let (head, body) = call(&mut agent, &mut buf, &gw, id).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let expected = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"answer {id}{}"}}]}}}}"#,
            large_text(id as usize)
        );
        assert_eq!(body.len(), expected.len());
        assert!(
            body == expected,
            "answer {id} differs from what the upstream sent"
        );
    }
    // Both answers came over the one upstream connection, kept between them.
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_tool_list_a_lenient_client_would_misread_is_replaced_by_an_error() {
    let up = raw_upstream(Script::LookAlikeList).await;
    let gw = Gateway::start(up.addr).await;
    // A client matching names without regard to case would take "Tools"
    // (and its delete_x) for the list: the gateway passes on neither.
    for id in [1, 2] {
        let list = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
        let reply = post(&gw.url("demo"), Some(ALICE), list, &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(!reply.body.contains("delete_x"), "{}", reply.body);
        let messages = reply.messages();
        assert_eq!(messages.len(), 1, "{}", reply.body);
        assert_eq!(messages[0]["error"]["code"], -32603, "{}", reply.body);
        assert!(messages[0].get("result").is_none(), "{}", reply.body);
    }
}

#[tokio::test]
async fn interim_answers_are_skipped_and_the_final_one_relayed() {
    let up = raw_upstream(Script::EarlyHints).await;
    let gw = Gateway::start(up.addr).await;
    let mut agent = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    for id in 1..=2 {
        let (head, _) = call(&mut agent, &mut buf, &gw, id).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    gw.stop().await;
}
