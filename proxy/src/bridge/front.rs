//! The Streamable HTTP side of a bridge, as the gateway sees it: POST a
//! request → its response as `application/json`, or as
//! `text/event-stream` when the server sends notifications (progress, logs)
//! or requests before answering; notifications and responses → 202;
//! `initialize` opens a session and issues `Mcp-Session-Id`; DELETE ends
//! it; GET → 405 (no standalone stream). Sessions unused for the idle
//! timeout are ended. Requests without the gateway's secret get 403.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::session::Session;
use super::{random_hex, Backend, BackendError, BRIDGE_SECRET_HEADER};
use crate::secret::same_secret;

/// How long a new server (process start included) has to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(60);

type Inbox = Arc<tokio::sync::Mutex<mpsc::Receiver<Value>>>;

struct BridgeState {
    name: Arc<str>,
    backend: Arc<dyn Backend>,
    secret: Arc<str>,
    credential_header: Option<HeaderName>,
    idle: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

/// A bridge listening on loopback; dropping it ends its sessions.
pub struct RunningBridge {
    /// Where the gateway reaches it.
    pub addr: SocketAddr,
    cancel: CancellationToken,
    state: Arc<BridgeState>,
}

impl RunningBridge {
    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.state.sessions.lock().unwrap().len()
    }
}

impl Drop for RunningBridge {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.state.sessions.lock().unwrap().clear();
    }
}

/// Starts the bridge of server `name` on `127.0.0.1`, port 0.
pub async fn start(
    name: Arc<str>,
    backend: Arc<dyn Backend>,
    secret: Arc<str>,
    credential_header: Option<HeaderName>,
    idle: Duration,
) -> std::io::Result<RunningBridge> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(BridgeState {
        name,
        backend,
        secret,
        credential_header,
        idle,
        sessions: Default::default(),
    });
    let cancel = CancellationToken::new();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled_owned().await })
            .await;
    });
    tokio::spawn(reap_idle(Arc::downgrade(&state), cancel.clone()));
    Ok(RunningBridge {
        addr,
        cancel,
        state,
    })
}

/// Ends sessions unused for the idle timeout, and those whose server is gone.
async fn reap_idle(state: Weak<BridgeState>, cancel: CancellationToken) {
    let idle = match state.upgrade() {
        Some(s) => s.idle,
        None => return,
    };
    let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let Some(state) = state.upgrade() else { return };
        let mut sessions = state.sessions.lock().unwrap();
        let before = sessions.len();
        sessions.retain(|_, s| !s.is_closed() && !s.idle_for(idle));
        let ended = before - sessions.len();
        if ended > 0 {
            tracing::debug!(server = %state.name, ended, "bridge sessions ended (idle or server gone)");
        }
    }
}

async fn handle(
    State(state): State<Arc<BridgeState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authentic = headers
        .get(BRIDGE_SECRET_HEADER)
        .is_some_and(|v| same_secret(v.as_bytes(), state.secret.as_bytes()));
    if !authentic {
        return plain(
            StatusCode::FORBIDDEN,
            "only the toolgate gateway may call this bridge",
        );
    }
    match method {
        Method::POST => post(&state, &headers, &body).await,
        Method::DELETE => match session_id(&headers) {
            Some(sid) if state.sessions.lock().unwrap().remove(sid).is_some() => {
                plain(StatusCode::OK, "")
            }
            Some(_) => plain(StatusCode::NOT_FOUND, "no such session"),
            None => plain(StatusCode::BAD_REQUEST, "Mcp-Session-Id is required"),
        },
        _ => {
            let mut r = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "this server offers no event stream; POST messages",
            );
            r.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("POST, DELETE"),
            );
            r
        }
    }
}

async fn post(state: &BridgeState, headers: &HeaderMap, body: &[u8]) -> Response {
    let msg: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32700,
                &format!("parse error: {e}"),
            )
        }
    };
    if !msg.is_object() {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "send one JSON-RPC message per POST (batches are not supported here)",
        );
    }
    let id = msg.get("id").cloned();
    let is_request = msg.get("method").is_some() && id.is_some();
    if msg.get("method").and_then(Value::as_str) == Some("initialize") {
        return initialize(state, headers, msg, id.unwrap_or(Value::Null)).await;
    }
    let Some(sid) = session_id(headers) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id.unwrap_or(Value::Null),
            -32600,
            "Mcp-Session-Id is required: initialize first",
        );
    };
    let session = state.sessions.lock().unwrap().get(sid).cloned();
    let Some(session) = session.filter(|s| !s.is_closed()) else {
        state.sessions.lock().unwrap().remove(sid);
        return rpc_error(
            StatusCode::NOT_FOUND,
            id.unwrap_or(Value::Null),
            -32001,
            "session not found (ended, idle or the server stopped): initialize again",
        );
    };
    session.touch();
    let reply = match (is_request, id) {
        (true, Some(id)) => match session.send_request(msg, &id).await {
            Ok(rx) => respond(rx, session.inbox(), id, &state.name).await,
            Err(_) => gone(&state.name, id),
        },
        _ if session.send(msg).await => plain(StatusCode::ACCEPTED, ""),
        _ => plain(StatusCode::NOT_FOUND, "session ended"),
    };
    session.touch();
    reply
}

async fn initialize(state: &BridgeState, headers: &HeaderMap, msg: Value, id: Value) -> Response {
    let credential = state
        .credential_header
        .as_ref()
        .and_then(|h| headers.get(h).cloned());
    let conn = match state.backend.connect(credential).await {
        Ok(c) => c,
        Err(e) => {
            let status = match e {
                BackendError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                BackendError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            };
            return rpc_error(status, id, -32603, e.message());
        }
    };
    let session = Session::start(conn, state.name.clone());
    let reply = match session.send_request(msg, &id).await {
        Ok(rx) => match tokio::time::timeout(INITIALIZE_TIMEOUT, rx).await {
            Ok(reply) => reply.ok(),
            Err(_) => {
                let message = format!(
                    "{}: the server did not answer initialize within {} s",
                    state.name,
                    INITIALIZE_TIMEOUT.as_secs()
                );
                return rpc_error(StatusCode::GATEWAY_TIMEOUT, id, -32603, &message);
            }
        },
        Err(_) => None,
    };
    let Some(reply) = reply else {
        return gone(&state.name, id);
    };
    let mut response = json_response(&reply);
    if reply.get("result").is_some() {
        let sid = random_hex();
        response
            .headers_mut()
            .insert("mcp-session-id", HeaderValue::from_str(&sid).expect("hex"));
        state.sessions.lock().unwrap().insert(sid, session);
    }
    response
}

/// The response to one request: JSON when it comes first, else an event
/// stream carrying what the server sent before it, then the response.
async fn respond(
    mut rx: oneshot::Receiver<Value>,
    inbox: Inbox,
    id: Value,
    name: &str,
) -> Response {
    let first = tokio::select! {
        r = &mut rx => return r.map_or_else(|_| gone(name, id), |m| json_response(&m)),
        m = next_unsolicited(&inbox) => m,
    };
    let Some(first) = first else {
        // The server is gone or the inbox closed: only the response can come.
        return rx
            .await
            .map_or_else(|_| gone(name, id), |m| json_response(&m));
    };
    let gone_msg = gone_message(name, id);
    let frames = futures::stream::unfold(
        Some((Some(first), rx, inbox, gone_msg)),
        |st| async move {
            let (first, mut rx, inbox, gone_msg) = st?;
            if let Some(m) = first {
                return Some((
                    Ok::<_, Infallible>(frame(&m)),
                    Some((None, rx, inbox, gone_msg)),
                ));
            }
            tokio::select! {
                r = &mut rx => Some((Ok(frame(&r.unwrap_or(gone_msg))), None)),
                Some(m) = next_unsolicited(&inbox) => Some((Ok(frame(&m)), Some((None, rx, inbox, gone_msg)))),
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(frames))
        .expect("valid response")
}

async fn next_unsolicited(inbox: &Inbox) -> Option<Value> {
    inbox.lock().await.recv().await
}

fn frame(msg: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {msg}\n\n"))
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
}

fn gone_message(name: &str, id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": format!("{name}: the server stopped before answering")}})
}

fn gone(name: &str, id: Value) -> Response {
    let mut r = json_response(&gone_message(name, id));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let mut r = json_response(
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    );
    *r.status_mut() = status;
    r
}

fn json_response(msg: &Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(msg.to_string()))
        .expect("valid response")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text))
        .expect("valid response")
}
