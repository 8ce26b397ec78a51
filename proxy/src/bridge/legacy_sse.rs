//! Legacy HTTP+SSE upstreams (MCP 2024-11-05): per downstream session, the
//! bridge opens the server's event stream (GET `endpoint`), waits for the
//! `endpoint` event naming the URL to POST messages to, then POSTs each
//! message there and reads responses and notifications from the stream's
//! `message` events.
//!
//! The gateway's credential for the server is sent on the GET and on every
//! POST, and only to the server's own origin: an `endpoint` event naming
//! another scheme, host or port is refused.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catalog::{Endpoint, Upstream};
use http::{HeaderName, HeaderValue};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, BackendError, Connection};
use crate::server::AbortOnDrop;

/// Seconds an agent session may stay unused before its upstream stream is closed.
pub const IDLE_TIMEOUT_SECS: u64 = 300;
/// How long the server has to announce its message endpoint.
const ENDPOINT_WAIT: Duration = Duration::from_secs(10);
/// How long the server has to accept one POSTed message.
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages buffered each way per session.
const CHANNEL: usize = 64;
/// Largest event accepted from the server (16 MiB).
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// The legacy-SSE backend of one server.
pub struct LegacySse {
    name: Arc<str>,
    sse_url: String,
    origin: String,
    credential_header: Option<HeaderName>,
    client: reqwest::Client,
}

impl LegacySse {
    /// The backend for `up` (its endpoint is the event-stream URL).
    pub fn new(up: &Upstream) -> Result<LegacySse, String> {
        if up.tls_ca_pem.is_some() {
            return Err(format!(
                "{}: tls_ca is not supported for sse servers",
                up.name
            ));
        }
        let e = &up.endpoint;
        let origin = origin_of(e);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("{}: {e}", up.name))?;
        Ok(LegacySse {
            name: up.name.clone(),
            sse_url: format!("{origin}{}", e.path_and_query),
            origin,
            credential_header: up.credential.as_ref().map(|(n, _)| n.clone()),
            client,
        })
    }

    fn with_credential(
        &self,
        req: reqwest::RequestBuilder,
        credential: &Option<HeaderValue>,
    ) -> reqwest::RequestBuilder {
        match (&self.credential_header, credential) {
            (Some(name), Some(value)) => req.header(name.clone(), value.clone()),
            _ => req,
        }
    }

    /// Resolves the announced endpoint against the stream URL; refuses other origins.
    fn message_url(&self, announced: &str) -> Result<String, String> {
        let announced = announced.trim();
        let url = if announced.starts_with('/') {
            format!("{}{announced}", self.origin)
        } else if announced.starts_with("http://") || announced.starts_with("https://") {
            announced.to_string()
        } else {
            return Err(format!(
                "the server announced an unusable message endpoint {announced:?}"
            ));
        };
        let rest = url.strip_prefix(&self.origin).unwrap_or("");
        if !(rest.starts_with('/') || rest.starts_with('?')) {
            return Err(format!(
                "the server announced a message endpoint on another origin ({url}); refused"
            ));
        }
        Ok(url)
    }
}

fn origin_of(e: &Endpoint) -> String {
    format!("{}://{}", if e.tls { "https" } else { "http" }, e.authority)
}

#[async_trait]
impl Backend for LegacySse {
    async fn connect(&self, credential: Option<HeaderValue>) -> Result<Connection, BackendError> {
        let unavailable = |m: String| BackendError::Unavailable(format!("{}: {m}", self.name));
        let req = self
            .client
            .get(&self.sse_url)
            .header(http::header::ACCEPT, "text/event-stream");
        let resp = self
            .with_credential(req, &credential)
            .send()
            .await
            .map_err(|e| unavailable(format!("cannot open the event stream: {e}")))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!(
                "the event stream answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        let (incoming, from_server) = mpsc::channel(CHANNEL);
        let (announce, announced) = oneshot::channel();
        let reader = AbortOnDrop(tokio::spawn(read_events(
            resp,
            announce,
            incoming.clone(),
            self.name.clone(),
        )));
        let endpoint = tokio::time::timeout(ENDPOINT_WAIT, announced)
            .await
            .map_err(|_| unavailable("the server did not announce its message endpoint".into()))?
            .map_err(|_| unavailable("the event stream ended before the endpoint event".into()))?;
        let endpoint = self.message_url(&endpoint).map_err(unavailable)?;
        let (to_server, outgoing) = mpsc::channel(CHANNEL);
        let poster = Poster {
            incoming,
            client: self.client.clone(),
            url: endpoint,
            credential: self.credential_header.clone().zip(credential),
            name: self.name.clone(),
        };
        tokio::spawn(poster.run(outgoing, reader));
        Ok(Connection {
            to_server,
            from_server,
        })
    }
}

/// POSTs a session's messages to the announced endpoint, in order.
struct Poster {
    incoming: mpsc::Sender<Value>,
    client: reqwest::Client,
    url: String,
    credential: Option<(HeaderName, HeaderValue)>,
    name: Arc<str>,
}

impl Poster {
    /// Runs until the session ends; then the event stream is closed (`reader` dropped).
    async fn run(self, mut outgoing: mpsc::Receiver<Value>, reader: AbortOnDrop) {
        while let Some(msg) = outgoing.recv().await {
            if reader.0.is_finished() {
                break;
            }
            let mut req = self.client.post(&self.url).timeout(POST_TIMEOUT).json(&msg);
            if let Some((name, value)) = &self.credential {
                req = req.header(name.clone(), value.clone());
            }
            let failure = match req.send().await {
                Ok(r) if r.status().is_success() => continue,
                Ok(r) => format!(
                    "the server refused the message: HTTP {}",
                    r.status().as_u16()
                ),
                Err(e) => format!("cannot reach the server: {e}"),
            };
            tracing::warn!(server = %self.name, error = %failure, "legacy SSE message not delivered");
            if reader.0.is_finished() {
                break;
            }
            // A request gets its error from here; nothing else can answer it.
            if let (Some(id), Some(_)) = (msg.get("id"), msg.get("method")) {
                let error = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": format!("{}: {failure}", self.name)}});
                let _ = self.incoming.send(error).await;
            }
        }
        drop(reader);
    }
}

/// Reads the event stream: the first `endpoint` event is announced, then
/// `message` events are passed on as JSON-RPC messages.
async fn read_events(
    mut resp: reqwest::Response,
    announce: oneshot::Sender<String>,
    incoming: mpsc::Sender<Value>,
    name: Arc<str>,
) {
    let mut announce = Some(announce);
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend(chunk.iter().filter(|b| **b != b'\r'));
        while let Some(end) = find(&buf, b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let (event, data) = parse_event(&block);
            match event.as_str() {
                "endpoint" => {
                    if let Some(a) = announce.take() {
                        let _ = a.send(data);
                    }
                }
                "message" | "" => match serde_json::from_str::<Value>(&data) {
                    Ok(msg) if msg.is_object() => {
                        if incoming.send(msg).await.is_err() {
                            return;
                        }
                    }
                    _ => {
                        tracing::warn!(server = %name, "the server sent an event that is not a JSON-RPC message")
                    }
                },
                other => tracing::debug!(server = %name, event = other, "ignored event"),
            }
        }
        if buf.len() > MAX_EVENT {
            tracing::warn!(server = %name, "event too large; closing the stream");
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The event name and its data lines joined by newlines.
fn parse_event(block: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(block);
    let mut event = String::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (event, data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_into_name_and_data() {
        assert_eq!(
            parse_event(b"event: endpoint\ndata: /messages?s=1\n\n"),
            ("endpoint".into(), "/messages?s=1".into())
        );
        assert_eq!(
            parse_event(b"data: {\"a\":\ndata: 1}\n\n"),
            (String::new(), "{\"a\":\n1}".into())
        );
    }
}
