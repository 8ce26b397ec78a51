//! Upstream MCP sessions opened by the gateway for virtual servers' sessions.
//!
//! A virtual session reaches each member server through its own upstream
//! session, opened on the first `tools/call` routed there (`initialize`, then
//! `notifications/initialized`, with the server's credential) and kept per
//! replica by the virtual session's nonce. An upstream that forgets the
//! session (404: restarted) is re-initialised and the call sent again
//! (`resend.rs`); sessions idle for
//! [`IDLE_TIMEOUT`] and those of ended virtual sessions are closed with DELETE.

use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::model::Transport;
use catalog::Upstream;
use dashmap::DashMap;
use http::HeaderValue;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::bridge::{Bridges, BRIDGE_SECRET_HEADER};

/// An upstream session unused this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// One open upstream session.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The upstream's `Mcp-Session-Id` (`None`: a server without sessions).
    pub session: Option<String>,
    /// The protocol version the upstream agreed to.
    pub protocol: String,
}

struct Slot {
    opened: Mutex<Option<Opened>>,
    last_used: std::sync::Mutex<Instant>,
    /// Where and how to close it.
    url: String,
    headers: Headers,
}

/// Headers sent with every request to an upstream (its credential, and for
/// a bridged server the bridge's secret).
type Headers = Vec<(http::HeaderName, HeaderValue)>;

/// Upstream sessions by (virtual session nonce, server name).
pub struct UpstreamSessions {
    slots: DashMap<(String, Arc<str>), Arc<Slot>>,
    client: reqwest::Client,
    reaper: std::sync::Once,
    bridges: Arc<Bridges>,
}

impl UpstreamSessions {
    /// Sessions reaching stdio and legacy-SSE servers through `bridges`.
    pub fn new(bridges: Arc<Bridges>) -> Self {
        UpstreamSessions {
            bridges,
            slots: DashMap::new(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            reaper: std::sync::Once::new(),
        }
    }
}

/// Where requests to `up` go, and the headers they carry: its endpoint
/// with its credential, or for a bridged server (stdio, legacy SSE) its
/// bridge on loopback with the bridge secret too.
async fn target(
    bridges: &Arc<Bridges>,
    up: &Upstream,
    auth: Option<(http::HeaderName, HeaderValue)>,
) -> Result<(String, Headers), String> {
    let mut headers: Headers = auth.into_iter().collect();
    if up.transport == Transport::StreamableHttp {
        let scheme = if up.endpoint.tls { "https" } else { "http" };
        let url = format!(
            "{scheme}://{}{}",
            up.endpoint.authority, up.endpoint.path_and_query
        );
        return Ok((url, headers));
    }
    let addr = bridges.peer_addr(up).await?;
    let secret = HeaderValue::from_str(bridges.secret()).map_err(|e| e.to_string())?;
    headers.push((http::HeaderName::from_static(BRIDGE_SECRET_HEADER), secret));
    Ok((
        format!("http://{addr}{}", up.endpoint.path_and_query),
        headers,
    ))
}

impl UpstreamSessions {
    /// The upstream session of virtual session `nonce` on `up`, opened now if
    /// there is none. `auth`: the credential header to send.
    pub async fn ensure(
        self: &Arc<Self>,
        nonce: &str,
        up: &Upstream,
        auth: Option<(http::HeaderName, HeaderValue)>,
        protocol: &str,
    ) -> Result<Opened, String> {
        self.reaper.call_once(|| self.start_reaper());
        let (url, headers) = target(&self.bridges, up, auth).await?;
        let slot = self
            .slots
            .entry((nonce.to_string(), up.name.clone()))
            .or_insert_with(|| {
                Arc::new(Slot {
                    opened: Mutex::new(None),
                    last_used: std::sync::Mutex::new(Instant::now()),
                    url: url.clone(),
                    headers: headers.clone(),
                })
            })
            .clone();
        *slot.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut opened = slot.opened.lock().await;
        if let Some(o) = &*opened {
            return Ok(o.clone());
        }
        let fresh = self
            .initialize(&url, &headers, protocol)
            .await
            .map_err(|e| format!("cannot open a session on {}: {e}", up.name))?;
        *opened = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets the upstream session `stale` (the upstream answered 404), so
    /// the next [`ensure`](Self::ensure) opens a new one.
    pub async fn forget(&self, nonce: &str, server: &str, stale: Option<&str>) {
        let key = (nonce.to_string(), Arc::<str>::from(server));
        let Some(slot) = self.slots.get(&key).map(|s| s.clone()) else {
            return;
        };
        let mut opened = slot.opened.lock().await;
        if opened
            .as_ref()
            .is_some_and(|o| o.session.as_deref() == stale)
        {
            *opened = None;
        }
    }

    /// Closes every upstream session of virtual session `nonce`.
    pub fn close_all(self: &Arc<Self>, nonce: &str) {
        let keys: Vec<_> = self
            .slots
            .iter()
            .filter(|e| e.key().0 == nonce)
            .map(|e| e.key().clone())
            .collect();
        for key in keys {
            if let Some((_, slot)) = self.slots.remove(&key) {
                self.close_in_background(slot);
            }
        }
    }

    /// Closes sessions idle longer than `idle`; returns how many.
    pub fn reap(self: &Arc<Self>, idle: Duration) -> usize {
        let now = Instant::now();
        let stale: Vec<_> = self
            .slots
            .iter()
            .filter(|e| {
                now.duration_since(
                    *e.value()
                        .last_used
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()),
                ) > idle
            })
            .map(|e| e.key().clone())
            .collect();
        for key in &stale {
            if let Some((_, slot)) = self.slots.remove(key) {
                self.close_in_background(slot);
            }
        }
        stale.len()
    }

    /// Closes idle sessions every minute while the pool exists.
    fn start_reaper(self: &Arc<Self>) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(pool) = pool.upgrade() else { return };
                let closed = pool.reap(IDLE_TIMEOUT);
                if closed > 0 {
                    tracing::info!(closed, "closed idle upstream sessions of virtual servers");
                }
            }
        });
    }

    /// Sends one JSON-RPC message to `up` inside the upstream session `opened`.
    pub async fn send(
        &self,
        up: &Upstream,
        auth: Option<(http::HeaderName, HeaderValue)>,
        opened: &Opened,
        body: bytes::Bytes,
    ) -> Result<reqwest::Response, String> {
        let (url, headers) = target(&self.bridges, up, auth).await?;
        let session = opened.session.as_deref();
        self.post(&url, &headers, session, Some(&opened.protocol), body)
            .await
    }

    /// Number of upstream sessions held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no upstream session is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn close_in_background(&self, slot: Arc<Slot>) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let opened = slot.opened.lock().await.take();
            let Some(Opened {
                session: Some(sid),
                protocol,
            }) = opened
            else {
                return;
            };
            let mut req = client
                .delete(&slot.url)
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", protocol);
            for (name, value) in &slot.headers {
                req = req.header(name, value);
            }
            // Best effort: the upstream expires sessions on its own too.
            let _ = req.send().await;
        });
    }

    async fn initialize(
        &self,
        url: &str,
        headers: &Headers,
        protocol: &str,
    ) -> Result<Opened, String> {
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": protocol,
                // No client capabilities: the upstream sends no sampling,
                // elicitation or roots requests the gateway could not route.
                "capabilities": {},
                "clientInfo": {"name": "toolgate", "version": env!("CARGO_PKG_VERSION")},
            }
        });
        let resp = self
            .post(url, headers, None, None, init.to_string())
            .await?;
        let status = resp.status();
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("initialize answered HTTP {status}"));
        }
        let reply = first_message(&text).ok_or("initialize got no JSON-RPC answer")?;
        if let Some(err) = reply.get("error") {
            return Err(format!("initialize refused: {err}"));
        }
        let agreed = reply["result"]["protocolVersion"]
            .as_str()
            .ok_or("initialize result has no protocolVersion")?
            .to_string();
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let resp = self
            .post(
                url,
                headers,
                session.as_deref(),
                Some(&agreed),
                done.to_string(),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(format!(
                "notifications/initialized answered HTTP {}",
                resp.status()
            ));
        }
        Ok(Opened {
            session,
            protocol: agreed,
        })
    }

    async fn post(
        &self,
        url: &str,
        headers: &Headers,
        session: Option<&str>,
        protocol: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Result<reqwest::Response, String> {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some(sid) = session {
            req = req.header("mcp-session-id", sid);
        }
        if let Some(p) = protocol {
            req = req.header("mcp-protocol-version", p);
        }
        // The error text names the URL at most, never a header.
        req.send().await.map_err(|e| e.without_url().to_string())
    }
}

/// The first JSON-RPC message of a JSON or SSE body.
pub(crate) fn first_message(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Some(v);
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find_map(|d| serde_json::from_str::<Value>(d).ok())
}
