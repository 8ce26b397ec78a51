//! A fast mock MCP server (Streamable HTTP on `/mcp`, plain hyper, no MCP
//! SDK): cheap enough that a gateway in front of it is what gets measured.
//!
//! - `initialize` → result, with a fresh `Mcp-Session-Id` (stateless: the id
//!   carries its own check, so any later request can be verified).
//! - notifications and client responses → 202.
//! - `tools/list` → `tools` tools: `search_issues`, `stream_report`, then
//!   `get_item_NNN` / `delete_item_NNN` alternately.
//! - `tools/call` → a short text result, or `arguments.size` bytes of text;
//!   as `text/event-stream` (progress notifications, then the result) for
//!   `stream_report` or `arguments.stream: true`, else `application/json`.
//! - GET with `Accept: text/event-stream` → an event stream that sends one
//!   comment and then stays open and idle.
//! - DELETE → 200 (session ended).
//!
//! Every request but `initialize` needs a session id it issued (400 when
//! missing, 404 when not its own); with a token, every request needs
//! `Authorization: Bearer <token>` (401 otherwise).

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;

use super::wire::{PROTOCOL_VERSION, SESSION_HEADER, TOOL_SMALL, TOOL_STREAM};

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Tools in `tools/list` (at least the two named ones).
    pub tools: usize,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// Progress notifications before the result of a streamed call.
    pub progress: usize,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            tools: 20,
            token: None,
            progress: 2,
        }
    }
}

/// Largest text result served (`arguments.size` is clamped to it).
pub const MAX_RESULT_BYTES: usize = 4 << 20;

struct Mock {
    /// `{"tools":[...]}`, the `tools/list` result.
    tools_result: String,
    authorization: Option<HeaderValue>,
    progress: usize,
    salt: u64,
    next_session: AtomicU64,
    /// ASCII text results are cut from (no JSON escaping needed).
    filler: String,
}

type Body = BoxBody<Bytes, Infallible>;

/// Name of tool `i` in the mock's list.
pub fn tool_name(i: usize) -> String {
    match i {
        0 => TOOL_SMALL.to_string(),
        1 => TOOL_STREAM.to_string(),
        _ if i % 2 == 1 => format!("delete_item_{i:03}"),
        _ => format!("get_item_{i:03}"),
    }
}

fn tools_result(n: usize) -> String {
    let mut s = String::from(r#"{"tools":["#);
    for i in 0..n.max(2) {
        if i > 0 {
            s.push(',');
        }
        let name = tool_name(i);
        let _ = write!(
            s,
            r#"{{"name":"{name}","description":"Runs {name} against the tracker and returns matching records.","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string"}},"limit":{{"type":"integer"}},"size":{{"type":"integer"}}}}}},"annotations":{{"readOnlyHint":{}}}}}"#,
            !name.starts_with("delete")
        );
    }
    s.push_str("]}");
    s
}

/// splitmix64: a cheap keyed check for session ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Mock {
    fn new(options: &MockOptions) -> Mock {
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        Mock {
            tools_result: tools_result(options.tools),
            authorization: options.token.as_ref().map(|t| {
                HeaderValue::from_str(&format!("Bearer {t}")).expect("a header-safe token")
            }),
            progress: options.progress,
            salt,
            next_session: AtomicU64::new(1),
            filler: (0..MAX_RESULT_BYTES)
                .map(|i| (b'a' + (i % 26) as u8) as char)
                .collect(),
        }
    }

    fn new_session(&self) -> String {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        format!("{n:016x}{:016x}", mix(n ^ self.salt))
    }

    /// 400 without a session id, 404 for one this mock did not issue.
    fn check_session(&self, id: Option<&[u8]>) -> Result<(), StatusCode> {
        match id {
            None => Err(StatusCode::BAD_REQUEST),
            Some(id) if !self.known_session(id) => Err(StatusCode::NOT_FOUND),
            Some(_) => Ok(()),
        }
    }

    fn known_session(&self, id: &[u8]) -> bool {
        let parse = |h: &[u8]| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
        };
        id.len() == 32
            && matches!((parse(&id[..16]), parse(&id[16..])), (Some(n), Some(c)) if mix(n ^ self.salt) == c)
    }
}

#[derive(Deserialize)]
struct RpcRequest<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    arguments: Option<Arguments>,
    #[serde(default, borrow, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Arguments {
    #[serde(default)]
    size: Option<usize>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(default, borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    if !content_type.is_empty() {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    resp
}

fn status(code: StatusCode) -> Response<Body> {
    full(code, "", Bytes::new())
}

fn rpc_result(id: &RawValue, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#, id.get())
}

fn rpc_error(id: &RawValue, code: i32, message: &str) -> Response<Body> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":"{message}"}}}}"#,
        id.get()
    );
    full(StatusCode::OK, "application/json", body)
}

fn sse_event(out: &mut String, data: &str) {
    out.push_str("event: message\ndata: ");
    out.push_str(data);
    out.push_str("\n\n");
}

impl Mock {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() != "/mcp" {
            return status(StatusCode::NOT_FOUND);
        }
        if let Some(expected) = &self.authorization {
            if req.headers().get(AUTHORIZATION) != Some(expected) {
                return status(StatusCode::UNAUTHORIZED);
            }
        }
        let session = self.check_session(req.headers().get(SESSION_HEADER).map(|v| v.as_bytes()));
        match *req.method() {
            Method::POST => {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return status(StatusCode::BAD_REQUEST),
                };
                self.post(&body, session).await
            }
            Method::GET => {
                let wants_sse = req
                    .headers()
                    .get(ACCEPT)
                    .is_some_and(|v| v.as_bytes().windows(17).any(|w| w == b"text/event-stream"));
                if !wants_sse {
                    return status(StatusCode::METHOD_NOT_ALLOWED);
                }
                match session {
                    Ok(()) => idle_stream(),
                    Err(code) => status(code),
                }
            }
            Method::DELETE => status(session.err().unwrap_or(StatusCode::OK)),
            _ => status(StatusCode::METHOD_NOT_ALLOWED),
        }
    }

    async fn post(&self, body: &[u8], session: Result<(), StatusCode>) -> Response<Body> {
        let Ok(msg) = serde_json::from_slice::<RpcRequest>(body) else {
            return status(StatusCode::BAD_REQUEST);
        };
        let (Some(id), Some(method)) = (msg.id, msg.method.as_deref()) else {
            // A notification or a client's response: accepted, nothing to say.
            return status(session.err().unwrap_or(StatusCode::ACCEPTED));
        };
        if method == "initialize" {
            let result = format!(
                r#"{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{"tools":{{"listChanged":false}}}},"serverInfo":{{"name":"mock-mcp","version":"1"}}}}"#
            );
            let mut resp = full(StatusCode::OK, "application/json", rpc_result(id, &result));
            let sid = HeaderValue::from_str(&self.new_session()).expect("hex");
            resp.headers_mut().insert(SESSION_HEADER, sid);
            return resp;
        }
        if let Err(code) = session {
            return status(code);
        }
        match method {
            "tools/list" => full(
                StatusCode::OK,
                "application/json",
                rpc_result(id, &self.tools_result),
            ),
            "tools/call" => self.call(id, msg.params),
            "ping" => full(StatusCode::OK, "application/json", rpc_result(id, "{}")),
            _ => rpc_error(id, -32601, "method not found"),
        }
    }

    fn call(&self, id: &RawValue, params: Option<Params>) -> Response<Body> {
        let Some(params) = params else {
            return rpc_error(id, -32602, "missing params");
        };
        let name = params.name.as_deref().unwrap_or("");
        if !(name == TOOL_SMALL || name == TOOL_STREAM || name.starts_with("get_item_")) {
            return rpc_error(id, -32602, "unknown tool");
        }
        let args = params.arguments.unwrap_or(Arguments {
            size: None,
            stream: None,
        });
        let text = match args.size {
            Some(n) => &self.filler[..n.min(MAX_RESULT_BYTES)],
            None => "3 issues match: #12 login fails, #31 slow search, #40 typo",
        };
        let result = rpc_result(
            id,
            &format!(r#"{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}"#),
        );
        if !(name == TOOL_STREAM || args.stream == Some(true)) {
            return full(StatusCode::OK, "application/json", result);
        }
        let mut out = String::with_capacity(result.len() + 200 * self.progress + 32);
        if let Some(token) = params.meta.and_then(|m| m.progress_token) {
            for i in 1..=self.progress {
                sse_event(
                    &mut out,
                    &format!(
                        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{},"progress":{i},"total":{}}}}}"#,
                        token.get(),
                        self.progress + 1
                    ),
                );
            }
        }
        sse_event(&mut out, &result);
        full(StatusCode::OK, "text/event-stream", out)
    }
}

/// An event stream that sends one comment, then nothing, until the client leaves.
fn idle_stream() -> Response<Body> {
    let first = futures::stream::iter(std::iter::once(Ok::<_, Infallible>(Frame::data(
        Bytes::from_static(b": stream open\n\n"),
    ))));
    let stream = first.chain(futures::stream::pending());
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, options: MockOptions) -> std::io::Result<()> {
    let mock = Arc::new(Mock::new(&options));
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, typically: wait for some to close.
                eprintln!("mock-mcp: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let mock = mock.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let mock = mock.clone();
                async move { Ok::<_, Infallible>(mock.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
