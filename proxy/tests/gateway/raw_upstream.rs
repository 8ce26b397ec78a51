//! A scripted raw HTTP/1.1 upstream for the direct-path tests: what it
//! does with each request is exact (framing, reuse, misbehaviour).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted upstream does with the `n`th request (from 0) on a connection.
#[derive(Clone, Copy, PartialEq)]
pub enum Script {
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
pub struct RawUpstream {
    pub addr: std::net::SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub heads: Arc<Mutex<Vec<String>>>,
}

pub async fn raw_upstream(script: Script) -> RawUpstream {
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
pub async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
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

/// The padding of large answer `k`: 200 KB, different for each answer.
pub fn large_text(k: usize) -> String {
    (0..20_000).map(|i| format!(" {:09}", i * k)).collect()
}
