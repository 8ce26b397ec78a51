//! One downstream MCP session over a [`Connection`]: requests are matched
//! to their responses by JSON-RPC id; everything else the server sends
//! (notifications, its own requests) waits in an inbox for the next POST
//! that is waiting on the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::Connection;
use crate::server::AbortOnDrop;

/// Unsolicited messages kept per session before the oldest are refused.
const INBOX: usize = 256;

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A live session. Dropping it drops the connection (and a per-session
/// process with it).
pub struct Session {
    to_server: mpsc::Sender<Value>,
    waiters: Waiters,
    inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<Value>>>,
    last_used: Mutex<Instant>,
    alive: Arc<AtomicBool>,
    _router: AbortOnDrop,
}

/// The key a JSON-RPC id is matched by.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

impl Session {
    /// A session over `conn`, routing what the server sends.
    pub fn start(conn: Connection, name: Arc<str>) -> Arc<Session> {
        let waiters: Waiters = Default::default();
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
        let alive = Arc::new(AtomicBool::new(true));
        let router = tokio::spawn(route(
            conn.from_server,
            waiters.clone(),
            inbox_tx,
            name,
            alive.clone(),
        ));
        Arc::new(Session {
            to_server: conn.to_server,
            waiters,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox_rx)),
            last_used: Mutex::new(Instant::now()),
            alive,
            _router: AbortOnDrop(router),
        })
    }

    /// Marks the session used now.
    pub fn touch(&self) {
        *self.last_used.lock().unwrap() = Instant::now();
    }

    /// Idle: unused for `idle` with no request waiting on the server, or
    /// for twice `idle` whatever waits (a caller that gave up).
    pub fn idle_for(&self, idle: std::time::Duration) -> bool {
        let unused = self.last_used.lock().unwrap().elapsed();
        unused >= idle * 2 || (unused >= idle && self.waiters.lock().unwrap().is_empty())
    }

    /// Has the server gone away?
    pub fn is_closed(&self) -> bool {
        !self.alive.load(Ordering::SeqCst) || self.to_server.is_closed()
    }

    /// Sends a request; the receiver gets its response (or is dropped when
    /// the server goes away).
    pub async fn send_request(
        &self,
        msg: Value,
        id: &Value,
    ) -> Result<oneshot::Receiver<Value>, Value> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id_key(id), tx);
        if self.to_server.send(msg).await.is_err() || self.is_closed() {
            self.waiters.lock().unwrap().remove(&id_key(id));
            return Err(Value::Null);
        }
        Ok(rx)
    }

    /// Sends a notification or a response to a server request.
    pub async fn send(&self, msg: Value) -> bool {
        self.to_server.send(msg).await.is_ok()
    }

    /// The inbox of unsolicited server messages, shared by waiting POSTs.
    pub fn inbox(&self) -> Arc<tokio::sync::Mutex<mpsc::Receiver<Value>>> {
        self.inbox.clone()
    }
}

async fn route(
    mut from_server: mpsc::Receiver<Value>,
    waiters: Waiters,
    inbox: mpsc::Sender<Value>,
    name: Arc<str>,
    alive: Arc<AtomicBool>,
) {
    while let Some(msg) = from_server.recv().await {
        let is_response = msg.get("method").is_none();
        if is_response {
            if let Some(id) = msg.get("id") {
                let waiter = waiters.lock().unwrap().remove(&id_key(id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(msg);
                    continue;
                }
            }
            tracing::debug!(server = %name, "a response nobody waits for was dropped");
            continue;
        }
        if inbox.try_send(msg).is_err() {
            tracing::warn!(server = %name, "session inbox full: a server message was dropped");
        }
    }
    // The server is gone: waiting requests see their sender dropped.
    alive.store(false, Ordering::SeqCst);
    waiters.lock().unwrap().clear();
}
