//! Running a stdio MCP server: one child process speaking newline-delimited
//! JSON-RPC on stdin/stdout (MCP stdio transport), its stderr lines logged
//! under the server's name.
//!
//! [`Processes`] is the `per-session` backend: each connection is a process
//! of its own, at most `max_processes` at once, stopped (killed and reaped)
//! when the connection is dropped. Processes that die right after starting
//! make the next start wait (exponential backoff, capped), so a broken
//! command does not spin.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use catalog::StdioSpec;
use http::HeaderValue;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{Backend, BackendError, Connection};

/// Messages buffered each way per process.
const CHANNEL: usize = 64;
/// Longest line accepted from a server's stdout (16 MiB).
const MAX_LINE: usize = 16 * 1024 * 1024;
/// A process that exits sooner than this after starting counts as a crash.
const QUICK_EXIT: Duration = Duration::from_secs(2);
/// Longest wait before restarting a crashing server.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Environment variables passed through from the gateway; nothing else of
/// the gateway's environment (which may hold its own secrets) is.
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR"];

/// The processes of one stdio server.
pub struct Processes {
    name: Arc<str>,
    spec: Arc<StdioSpec>,
    slots: Arc<Semaphore>,
    crashes: Arc<Mutex<Crashes>>,
}

#[derive(Default)]
struct Crashes {
    consecutive: u32,
}

impl Crashes {
    fn delay(&self) -> Duration {
        match self.consecutive {
            0 => Duration::ZERO,
            n => (Duration::from_millis(100) * 2u32.saturating_pow(n.min(10) - 1)).min(MAX_BACKOFF),
        }
    }
}

impl Processes {
    /// The processes of server `name`, run as `spec` says.
    pub fn new(name: Arc<str>, spec: Arc<StdioSpec>) -> Processes {
        let slots = Arc::new(Semaphore::new(spec.max_processes));
        Processes {
            name,
            spec,
            slots,
            crashes: Default::default(),
        }
    }

    /// The server's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// How long an unused session (shared mode: an unused process) lives.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.spec.idle_timeout_secs)
    }

    /// Starts one process (waiting out the crash backoff first).
    pub async fn spawn(&self) -> Result<Connection, BackendError> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            BackendError::Busy(format!(
                "{}: all {} processes are in use (stdio.max_processes); try again later",
                self.name, self.spec.max_processes
            ))
        })?;
        let delay = self.crashes.lock().unwrap().delay();
        if !delay.is_zero() {
            tracing::info!(server = %self.name, delay_ms = delay.as_millis() as u64, "waiting before restarting a crashing server");
            tokio::time::sleep(delay).await;
        }
        let child = self.command().spawn().map_err(|e| {
            self.crashes.lock().unwrap().consecutive += 1;
            tracing::warn!(server = %self.name, command = %self.spec.command, error = %e, "cannot start the server");
            BackendError::Unavailable(format!("{}: cannot start {:?}: {e}", self.name, self.spec.command))
        })?;
        Ok(self.attach(child, slot))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.spec.command);
        cmd.args(&self.spec.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in PASSED_THROUGH {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn attach(&self, mut child: Child, slot: OwnedSemaphorePermit) -> Connection {
        let (to_server, outgoing) = mpsc::channel(CHANNEL);
        let (incoming, from_server) = mpsc::channel(CHANNEL);
        let name = self.name.clone();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, name.clone()));
        }
        let crashes = self.crashes.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let pid = child.id();
            tracing::debug!(server = %name, pid, "server process started");
            let ended_by_server = converse(&mut child, outgoing, incoming, &name).await;
            // Stop and reap it, whoever ended the conversation.
            let _ = child.start_kill();
            let status = child.wait().await;
            drop(slot);
            let mut crashes = crashes.lock().unwrap();
            if ended_by_server && started.elapsed() < QUICK_EXIT {
                crashes.consecutive += 1;
                tracing::warn!(server = %name, pid, status = ?status.ok(), "server process exited right after starting");
            } else {
                crashes.consecutive = 0;
                tracing::debug!(server = %name, pid, ended_by_server, "server process stopped");
            }
        });
        Connection {
            to_server,
            from_server,
        }
    }
}

#[async_trait]
impl Backend for Processes {
    async fn connect(&self, _credential: Option<HeaderValue>) -> Result<Connection, BackendError> {
        self.spawn().await
    }
}

/// Pumps messages until either side ends; true when the server ended it.
async fn converse(
    child: &mut Child,
    mut outgoing: mpsc::Receiver<Value>,
    incoming: mpsc::Sender<Value>,
    name: &str,
) -> bool {
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return true;
    };
    let mut lines = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        tokio::select! {
            msg = outgoing.recv() => {
                let Some(msg) = msg else { return false };
                let mut bytes = serde_json::to_vec(&msg).unwrap_or_default();
                bytes.push(b'\n');
                if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                    return true;
                }
            }
            read = read_line(&mut lines, &mut line) => {
                match read {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return true,
                }
                match serde_json::from_slice::<Value>(&line) {
                    Ok(msg) if msg.is_object() => {
                        if incoming.send(msg).await.is_err() {
                            return false;
                        }
                    }
                    _ => tracing::warn!(server = %name, bytes = line.len(), "the server wrote a line that is not a JSON-RPC message"),
                }
                line.clear();
            }
        }
    }
}

/// Reads one non-empty line into `buf` (without the newline); false at EOF.
async fn read_line(
    reader: &mut BufReader<tokio::process::ChildStdout>,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let n = (&mut *reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', buf)
            .await?;
        if n == 0 {
            return Ok(false);
        }
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::other("line too long"));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        if !buf.is_empty() {
            return Ok(true);
        }
    }
}

async fn log_stderr(stderr: tokio::process::ChildStderr, name: Arc<str>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(server = %name, stderr = %line, "server stderr");
    }
}
