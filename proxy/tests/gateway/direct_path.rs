//! `POST`s served by the gateway's direct path (`gateway/direct.rs`), with a
//! raw agent and a scripted raw upstream, so that connection reuse, framing
//! and the upstream's misbehaviour are exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use toolgate_proxy::metrics::ProxyMetrics;
use toolgate_proxy::server::GatewayOptions;

use crate::common::{post, Gateway, ALICE, UPSTREAM_SECRET};

/// What the scripted upstream does with the `n`th request (from 0) on a connection.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// Answer every request.
    Answer,
    /// Answer the first request, then close on the next without answering
    /// (an idle timeout racing the gateway's reuse).
    AnswerOnceThenDrop,
    /// Answer, followed by the bytes of a second, unasked response.
    AnswerWithExtra,
    /// Answer with a `Connection` header naming `Content-Length`.
    AnswerNamingLength,
    /// Answer `204 No Content` labelled as JSON.
    NoContent,
    /// An interim `103 Early Hints` head before each answer.
    EarlyHints,
    /// Never answer; note when the gateway closes the connection.
    Hang,
    /// Announce a longer body than is sent, then close.
    CutShort,
    /// Send the head and part of the body, then wait; note when the gateway
    /// closes the connection.
    StallMidBody,
    /// Answer with a 200 KB result, sent in pieces with pauses between.
    LargeInPieces,
    /// Answer with a tool list that has a look-alike `"Tools"` member:
    /// as JSON to odd ids, as an event stream to even ones.
    LookAlikeList,
}

/// A raw HTTP/1.1 upstream: answers each `tools/call` with the running
/// count of requests answered, and records each request head.
struct RawUpstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn raw_upstream(script: Script) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let (count, seen) = (connections.clone(), heads.clone());
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_raw(conn, script, seen.clone(), answered.clone()));
        }
    });
    RawUpstream {
        addr,
        connections,
        heads,
    }
}

async fn serve_raw(
    mut conn: TcpStream,
    script: Script,
    heads: Arc<Mutex<Vec<String>>>,
    answered: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    for n in 0.. {
        let Some((head, body)) = read_request(&mut conn, &mut buf).await else {
            return;
        };
        heads.lock().unwrap().push(head);
        if n > 0 && script == Script::AnswerOnceThenDrop {
            return;
        }
        if script == Script::Hang {
            let mut rest = [0u8; 64];
            while matches!(conn.read(&mut rest).await, Ok(n) if n > 0) {}
            heads.lock().unwrap().push("closed by the gateway".into());
            return;
        }
        if script == Script::NoContent {
            let out = "HTTP/1.1 204 No Content\r\ncontent-type: application/json\r\n\r\n";
            if conn.write_all(out.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"].clone();
        if script == Script::LookAlikeList {
            let list = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"search_a"}}],"Tools":[{{"name":"delete_x"}}]}}}}"#
            );
            let (content_type, body) = match id.as_u64() {
                Some(n) if n % 2 == 0 => (
                    "text/event-stream",
                    format!("event: message\ndata: {list}\n\n"),
                ),
                _ => ("application/json", list),
            };
            let out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if conn.write_all(out.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let k = answered.fetch_add(1, Ordering::SeqCst) + 1;
        let padding = match script {
            Script::LargeInPieces => large_text(k),
            _ => String::new(),
        };
        let reply = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"answer {k}{padding}"}}]}}}}"#
        );
        if script == Script::EarlyHints {
            let hints = "HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n";
            if conn.write_all(hints.as_bytes()).await.is_err() {
                return;
            }
        }
        let named = if script == Script::AnswerNamingLength {
            "connection: content-length\r\n"
        } else {
            ""
        };
        let announced = match script {
            Script::CutShort | Script::StallMidBody => reply.len() + 50,
            _ => reply.len(),
        };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{named}content-length: {announced}\r\n\r\n{reply}"
        );
        if script == Script::AnswerWithExtra {
            let smuggled = r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"smuggled"}]}}"#;
            out.push_str(&format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ));
        }
        if script == Script::LargeInPieces {
            // Head and a little of the body, then the rest in three pieces.
            let pieces = [200, out.len() / 3, 2 * out.len() / 3, out.len()];
            let mut from = 0;
            for to in pieces {
                if conn.write_all(&out.as_bytes()[from..to]).await.is_err() {
                    return;
                }
                from = to;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            continue;
        }
        if conn.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        match script {
            Script::CutShort => return,
            Script::StallMidBody => {
                let mut rest = [0u8; 64];
                while matches!(conn.read(&mut rest).await, Ok(n) if n > 0) {}
                heads.lock().unwrap().push("closed by the gateway".into());
                return;
            }
            _ => {}
        }
    }
}

/// Reads one request (head and `Content-Length` body) from `conn`.
async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Some((head, body));
            }
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

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

/// The padding of large answer `k`: 200 KB, different for each answer.
fn large_text(k: usize) -> String {
    (0..20_000).map(|i| format!(" {:09}", i * k)).collect()
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
