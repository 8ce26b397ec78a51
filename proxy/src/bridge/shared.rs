//! `mode: shared`: one process serves every session.
//!
//! Each session gets a virtual [`Connection`]; a multiplexer task gives
//! every request a fresh JSON-RPC id on the process and restores the
//! caller's id on the response, so answers reach the right session. The
//! first `initialize` is forwarded and its result kept; later sessions get
//! that result without the process seeing them, and only the first
//! `notifications/initialized` is forwarded. `*/list_changed`
//! notifications go to every session; other notifications are dropped
//! (they cannot be attributed safely), and the process's own requests are
//! answered with an error (except `ping`). When the process exits its
//! sessions end, and the next session starts a new one (with backoff); a
//! process without sessions for the idle timeout is stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use http::HeaderValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

use super::stdio::Processes;
use super::{Backend, BackendError, Connection};

/// Messages buffered per virtual connection.
const CHANNEL: usize = 64;

/// The shared-mode backend.
pub struct SharedProcess {
    processes: Processes,
    mux: Mutex<Option<mpsc::Sender<Join>>>,
}

/// A session joining the multiplexer.
struct Join {
    from_session: mpsc::Receiver<Value>,
    to_session: mpsc::Sender<Value>,
}

impl SharedProcess {
    /// One process of `processes` for all sessions.
    pub fn new(processes: Processes) -> SharedProcess {
        SharedProcess {
            processes,
            mux: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Backend for SharedProcess {
    async fn connect(&self, _credential: Option<HeaderValue>) -> Result<Connection, BackendError> {
        let mut mux = self.mux.lock().await;
        let (to_server, from_session) = mpsc::channel(CHANNEL);
        let (to_session, from_server) = mpsc::channel(CHANNEL);
        let mut join = Join {
            from_session,
            to_session,
        };
        // A process that just went idle and exited is replaced once.
        for _ in 0..2 {
            if mux.as_ref().is_none_or(|m| m.is_closed()) {
                let process = self.processes.spawn().await?;
                let (joins, rx) = mpsc::channel(CHANNEL);
                let name = self.processes.name().clone();
                tokio::spawn(multiplex(process, rx, name, self.processes.idle_timeout()));
                *mux = Some(joins);
            }
            match mux.as_ref().expect("started above").send(join).await {
                Ok(()) => {
                    return Ok(Connection {
                        to_server,
                        from_server,
                    })
                }
                Err(mpsc::error::SendError(back)) => join = back,
            }
        }
        Err(BackendError::Unavailable(
            "the shared server process exited while starting".into(),
        ))
    }
}

enum Event {
    Joined(Join),
    FromSession(u64, Option<Value>),
    FromProcess(Option<Value>),
}

#[derive(Default)]
struct State {
    sessions: HashMap<u64, mpsc::Sender<Value>>,
    /// Process-side id → (session, the caller's id).
    pending: HashMap<u64, (u64, Value)>,
    next_id: u64,
    initialize_result: Option<Value>,
    /// Sessions waiting for the first `initialize` (process id in flight).
    initialize_in_flight: Option<u64>,
    initialize_waiters: Vec<(u64, Value)>,
    initialized_sent: bool,
}

async fn multiplex(
    mut process: Connection,
    mut joins: mpsc::Receiver<Join>,
    name: Arc<str>,
    idle: Duration,
) {
    let (events_tx, mut events) = mpsc::channel::<(u64, Option<Value>)>(CHANNEL);
    let mut state = State::default();
    let mut session_no = 0u64;
    let mut unused_since = Instant::now();
    loop {
        let event = tokio::select! {
            j = joins.recv() => match j { Some(j) => Event::Joined(j), None => return },
            _ = tokio::time::sleep_until(unused_since + idle), if state.sessions.is_empty() => {
                tracing::debug!(server = %name, "the shared server process is idle; stopping it");
                return;
            }
            Some((no, msg)) = events.recv() => Event::FromSession(no, msg),
            msg = process.from_server.recv() => Event::FromProcess(msg),
        };
        match event {
            Event::Joined(Join {
                mut from_session,
                to_session,
            }) => {
                session_no += 1;
                let no = session_no;
                state.sessions.insert(no, to_session);
                let events_tx = events_tx.clone();
                tokio::spawn(async move {
                    while let Some(msg) = from_session.recv().await {
                        if events_tx.send((no, Some(msg))).await.is_err() {
                            return;
                        }
                    }
                    let _ = events_tx.send((no, None)).await;
                });
            }
            Event::FromSession(no, None) => {
                state.sessions.remove(&no);
                unused_since = tokio::time::Instant::now();
                state.pending.retain(|_, (s, _)| *s != no);
            }
            Event::FromSession(no, Some(msg)) => {
                if let Some(out) = state.session_message(no, msg).await {
                    if process.to_server.send(out).await.is_err() {
                        return;
                    }
                }
            }
            Event::FromProcess(None) => {
                tracing::warn!(server = %name, "the shared server process exited; its sessions end");
                return;
            }
            Event::FromProcess(Some(msg)) => {
                if let Some(reply) = state.process_message(msg, &name).await {
                    let _ = process.to_server.send(reply).await;
                }
            }
        }
    }
}

impl State {
    /// Rewrites a session's message for the process (None: answered here or dropped).
    async fn session_message(&mut self, no: u64, mut msg: Value) -> Option<Value> {
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.get("id").cloned();
        match (method.as_deref(), id) {
            (Some("initialize"), Some(id)) => {
                if let Some(result) = &self.initialize_result {
                    let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
                    self.send_to(no, reply).await;
                    return None;
                }
                self.initialize_waiters.push((no, id));
                if self.initialize_in_flight.is_some() {
                    return None;
                }
                let pid = self.fresh_id();
                self.initialize_in_flight = Some(pid);
                msg["id"] = json!(pid);
                Some(msg)
            }
            (Some(_), Some(id)) => {
                let pid = self.fresh_id();
                self.pending.insert(pid, (no, id));
                msg["id"] = json!(pid);
                Some(msg)
            }
            (Some("notifications/initialized"), None) => {
                (!std::mem::replace(&mut self.initialized_sent, true)).then_some(msg)
            }
            (Some("notifications/cancelled"), None) => {
                let theirs = msg.pointer("/params/requestId")?.clone();
                let pid = self
                    .pending
                    .iter()
                    .find(|(_, (s, id))| *s == no && *id == theirs)
                    .map(|(p, _)| *p)?;
                msg["params"]["requestId"] = json!(pid);
                Some(msg)
            }
            (Some(_), None) => Some(msg),
            // Responses to server requests: those were answered here already.
            (None, _) => None,
        }
    }

    /// Routes a process message (returns a reply for the process, if any).
    async fn process_message(&mut self, mut msg: Value, name: &str) -> Option<Value> {
        let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = msg.get("id").and_then(Value::as_u64);
        match (method, msg.get("id").cloned()) {
            (None, _) => {
                let pid = id?;
                if self.initialize_in_flight == Some(pid) {
                    self.initialize_in_flight = None;
                    if let Some(result) = msg.get("result") {
                        self.initialize_result = Some(result.clone());
                    }
                    for (no, their_id) in std::mem::take(&mut self.initialize_waiters) {
                        msg["id"] = their_id;
                        self.send_to(no, msg.clone()).await;
                    }
                    return None;
                }
                let (no, their_id) = self.pending.remove(&pid)?;
                msg["id"] = their_id;
                self.send_to(no, msg).await;
                None
            }
            (Some(m), None) if m.ends_with("/list_changed") => {
                for tx in self.sessions.values() {
                    let _ = tx.try_send(msg.clone());
                }
                None
            }
            (Some(m), None) => {
                tracing::debug!(server = %name, method = %m, "shared mode: notification not attributable to a session, dropped");
                None
            }
            (Some(m), Some(id)) if m == "ping" => {
                Some(json!({"jsonrpc": "2.0", "id": id, "result": {}}))
            }
            (Some(m), Some(id)) => Some(json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601,
                "message": format!("{m} is not available: the gateway shares this server between sessions"),
            }})),
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn send_to(&self, no: u64, msg: Value) {
        if let Some(tx) = self.sessions.get(&no) {
            let _ = tx.send(msg).await;
        }
    }
}
