//! One keep-alive HTTP/1.1 connection to the target (hyper's low-level
//! client: no pool, no extra task hop), reopened after a failure. Each
//! simulated agent owns one, as a real MCP client holds its own connection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::wire::{ACCEPT_POST, SESSION_HEADER};

/// Where requests go: `http://host:port/path`, resolved once.
#[derive(Debug)]
pub struct Target {
    /// The resolved address.
    pub addr: SocketAddr,
    host: HeaderValue,
    path: String,
}

impl Target {
    /// Parses and resolves a plain `http://` URL.
    pub async fn resolve(url: &str) -> anyhow::Result<Arc<Target>> {
        let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "only http:// URLs: {url}");
        let authority = uri.authority().context("URL without host")?.clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await?
            .next()
            .with_context(|| format!("cannot resolve {}", authority.host()))?;
        Ok(Arc::new(Target {
            addr,
            host: HeaderValue::from_str(authority.as_str())?,
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        }))
    }
}

/// A complete answer to a POST.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header (empty when absent).
    pub content_type: HeaderValue,
    /// The `Mcp-Session-Id` header, if any.
    pub session: Option<String>,
    /// The whole body.
    pub body: Bytes,
}

/// A keep-alive connection to a [`Target`], opened on first use and
/// reopened after an error.
pub struct Conn {
    target: Arc<Target>,
    authorization: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection that presents `Authorization: Bearer <token>`.
    pub fn new(target: Arc<Target>, token: &str) -> anyhow::Result<Conn> {
        Ok(Conn {
            target,
            authorization: HeaderValue::from_str(&format!("Bearer {token}"))?,
            sender: None,
        })
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = tokio::net::TcpStream::connect(self.target.addr).await?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("just set");
        sender.ready().await?;
        Ok(sender)
    }

    fn request(&self, method: Method, session: Option<&str>) -> http::request::Builder {
        let mut req = Request::builder()
            .method(method)
            .uri(self.target.path.as_str())
            .header(HOST, self.target.host.clone())
            .header(AUTHORIZATION, self.authorization.clone());
        if let Some(s) = session {
            req = req.header(SESSION_HEADER, s);
        }
        req
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Response<Incoming>> {
        let result: anyhow::Result<Response<Incoming>> =
            async { Ok(self.sender().await?.send_request(req).await?) }.await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    /// POSTs a JSON-RPC body and reads the whole answer. A transport error
    /// closes the connection (the next call reconnects).
    pub async fn post(&mut self, session: Option<&str>, body: Bytes) -> anyhow::Result<Answer> {
        let req = self
            .request(Method::POST, session)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, ACCEPT_POST)
            .body(Full::new(body))?;
        let resp = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        Ok(Answer {
            status: parts.status.as_u16(),
            content_type: parts
                .headers
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("")),
            session: parts
                .headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body,
        })
    }

    /// Opens the session's GET event stream; the caller reads (or holds) the body.
    pub async fn open_stream(
        &mut self,
        session: Option<&str>,
    ) -> anyhow::Result<Response<Incoming>> {
        let req = self
            .request(Method::GET, session)
            .header(ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    /// Drops the connection (after a timeout mid-request); the next call reconnects.
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// True once the underlying connection has ended (or was never opened).
    pub fn is_closed(&self) -> bool {
        self.sender.as_ref().is_none_or(|s| s.is_closed())
    }
}
