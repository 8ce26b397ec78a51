//! Event streams (`GET`, `Accept: text/event-stream`) served by the gateway's
//! lean stream path, on raw agent connections so connection reuse is exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::common::{Gateway, ALICE, UPSTREAM_SECRET};

const LIST: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"search_issues","inputSchema":{"type":"object"}},{"name":"delete_issue","inputSchema":{"type":"object"}}]}}"#;
const NOTE: &str = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"delete_issue"}}"#;

/// An upstream whose `GET` stream sends whatever the test pushes, and whose
/// `POST` answers a fixed result. Records each `GET`'s headers.
struct EventUpstream {
    addr: std::net::SocketAddr,
    gets: Arc<Mutex<Vec<HeaderMap>>>,
    /// The sending side of each `GET` stream opened so far.
    streams: mpsc::UnboundedReceiver<mpsc::UnboundedSender<String>>,
}

async fn event_upstream(get_status: u16) -> EventUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gets = Arc::new(Mutex::new(Vec::new()));
    let (opened, streams) = mpsc::unbounded_channel();
    let seen = gets.clone();
    let get = move |headers: HeaderMap| async move {
        seen.lock().unwrap().push(headers);
        if get_status != 200 {
            return Response::builder()
                .status(get_status)
                .body(Body::empty())
                .unwrap();
        }
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let _ = opened.send(tx);
        let events = tokio_stream_of(rx).map(Ok::<_, std::io::Error>);
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("mcp-session-id", "upstream-session-1")
            .body(Body::from_stream(events))
            .unwrap()
    };
    let post = || async {
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#,
            ))
            .unwrap()
    };
    let app = axum::Router::new().route("/mcp", axum::routing::get(get).post(post));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    EventUpstream {
        addr,
        gets,
        streams,
    }
}

fn tokio_stream_of(mut rx: mpsc::UnboundedReceiver<String>) -> impl futures::Stream<Item = String> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn get_head(gw: &Gateway, token: &str) -> String {
    format!(
        "GET /mcp/demo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: application/json, text/event-stream\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
        gw.addr
    )
}

/// Sends alice's stream request on `conn`; returns the sending side of the
/// upstream's stream it opened, and the response head the agent read.
async fn open_stream(
    conn: &mut TcpStream,
    gw: &Gateway,
    up: &mut EventUpstream,
) -> (mpsc::UnboundedSender<String>, String) {
    conn.write_all(get_head(gw, ALICE).as_bytes())
        .await
        .unwrap();
    let tx = tokio::time::timeout(Duration::from_secs(5), up.streams.recv())
        .await
        .expect("the GET reached the upstream")
        .unwrap();
    let mut got = Vec::new();
    assert!(read_until(conn, &mut got, "\r\n\r\n").await);
    (tx, String::from_utf8_lossy(&got).to_lowercase())
}

/// Reads from `conn` until `want` appears in what was read (or 5 s pass).
async fn read_until(conn: &mut TcpStream, got: &mut Vec<u8>, want: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(got).contains(want) {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn a_stream_after_a_call_on_the_same_connection_is_filtered_and_ends_with_its_upstream() {
    let mut up = event_upstream(200).await;
    let gw = Gateway::start(up.addr).await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    // A tools/call first, on this keep-alive connection (served by Pingora).
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues","arguments":{"query":"a"}}}"#;
    let post = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ALICE}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{call}",
        gw.addr,
        call.len()
    );
    conn.write_all(post.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    assert!(
        read_until(&mut conn, &mut got, r#""text":"ok""#).await,
        "{}",
        String::from_utf8_lossy(&got)
    );

    // Then the event stream, on the same connection.
    let (tx, head) = open_stream(&mut conn, &gw, &mut up).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // The upstream's session id reaches the agent sealed (bound to alice).
    assert!(
        head.contains("mcp-session-id: upstream-session-1."),
        "{head}"
    );
    assert!(
        !head.contains("mcp-session-id: upstream-session-1\r"),
        "{head}"
    );
    // The stream is this connection's last response (the lean path's mark).
    assert!(head.contains("connection: close"), "{head}");

    // What reached the upstream: the gateway's credential, never the agent's token.
    let seen = up.gets.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen["authorization"], format!("Bearer {UPSTREAM_SECRET}"));
    assert!(!format!("{seen:?}").contains(ALICE));
    assert_eq!(seen["accept-encoding"], "identity");
    let traceparent = seen["traceparent"].to_str().unwrap();
    assert!(
        traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{traceparent}"
    );

    // A tool list on the stream is filtered for alice (delete_* denied);
    // other events pass unchanged, split however the upstream writes them.
    let event = format!("id: 1\ndata: {LIST}\n\n");
    let (a, b) = event.split_at(40);
    tx.send(a.to_string()).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    tx.send(b.to_string()).unwrap();
    tx.send(format!("data: {NOTE}\n\n")).unwrap();
    let mut body = Vec::new();
    assert!(
        read_until(&mut conn, &mut body, "notifications/message").await,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(read_until(&mut conn, &mut body, "\n\n\r\n").await);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("search_issues"), "{text}");
    assert!(!text.contains(r#""name":"delete_issue""#), "{text}");
    assert!(text.contains(r#""data":"delete_issue""#), "{text}");

    // The upstream ends the stream: the agent sees its end, then the connection closes.
    drop(tx);
    assert!(
        read_until(&mut conn, &mut body, "0\r\n\r\n").await,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    gw.stop().await;
}

#[tokio::test]
async fn an_agent_leaving_closes_the_upstream_stream() {
    let mut up = event_upstream(200).await;
    let gw = Gateway::start(up.addr).await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    let (tx, _) = open_stream(&mut conn, &gw, &mut up).await;
    drop(conn);
    // The gateway drops its upstream connection: the upstream's stream ends.
    tokio::time::timeout(Duration::from_secs(5), tx.closed())
        .await
        .expect("the upstream stream was not closed after the agent left");
    gw.stop().await;
}

#[tokio::test]
async fn refusals_and_other_answers_are_served_as_before() {
    let up = event_upstream(405).await;
    let gw = Gateway::start(up.addr).await;
    // An upstream without GET streams: its 405 reaches the agent.
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(get_head(&gw, ALICE).as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    assert!(read_until(&mut conn, &mut got, "\r\n\r\n").await);
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 405"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // A stranger's stream is refused with a challenge, and never reaches the upstream.
    let before = up.gets.lock().unwrap().len();
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(get_head(&gw, "tg_not_a_token").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    assert!(read_until(&mut conn, &mut got, "\r\n\r\n").await);
    let head = String::from_utf8_lossy(&got).to_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert_eq!(up.gets.lock().unwrap().len(), before);
    gw.stop().await;
}

#[tokio::test]
async fn an_idle_stream_lets_go_of_the_snapshot_it_opened_under() {
    let mut up = event_upstream(200).await;
    let gw = Gateway::start(up.addr).await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    let (tx, _) = open_stream(&mut conn, &gw, &mut up).await;
    let opened_under = gw.store.load_full();
    // A config change that leaves alice's access as it was.
    gw.edit(
        "teams.yaml",
        "teams: [{name: eng}, {name: support}, {name: finance}]\n",
    )
    .await;
    // Nothing arrives on the stream, yet its route moves to the new
    // snapshot: only this test still holds the old one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&opened_under) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        Arc::strong_count(&opened_under),
        1,
        "an idle stream keeps an old snapshot alive"
    );
    // The stream still flows.
    tx.send(format!("data: {NOTE}\n\n")).unwrap();
    let mut body = Vec::new();
    assert!(read_until(&mut conn, &mut body, "notifications/message").await);
    gw.stop().await;
}
