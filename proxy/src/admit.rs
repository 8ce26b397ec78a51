//! Admission: everything decided before a byte goes upstream.
//!
//! Order matters: route and origin, then the token (so strangers learn
//! nothing about servers), then the server grant, then, for POST, the body:
//! read in full (capped), parsed once, headers checked against it, decided.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use catalog::snapshot::PrincipalInfo;
use catalog::{Caller, ServerId, Snapshot, Upstream, VerifiedToken};
use pingora_proxy::Session;

use crate::body::{read_request_body, ReadError};
use crate::decide::{check_headers, decide, McpHeaders};
use crate::error::Refusal;
use crate::fields::{visible_ascii, AgentHead};
use crate::filter::ListIds;
use crate::http_headers::{bearer_token, check_host_and_origin};
use crate::jsonrpc;
use crate::resource_metadata;
use crate::sessions::SessionSeal;

mod connection_token;
mod virtual_caller;

use connection_token::connection_digest;
pub use connection_token::CONNECTION_TOKEN;
use virtual_caller::reauthorize_virtual;
pub use virtual_caller::{authorize_virtual, VirtualCaller};

/// An admitted request: who, to which server, and what to filter.
#[derive(Debug, Clone)]
pub struct Route {
    snapshot: Arc<Snapshot>,
    digest: [u8; 32],
    caller: Caller,
    /// A JWT caller: the verified token and who it signs in (`None`: a PAT).
    jwt: Option<(Arc<VerifiedToken>, Arc<PrincipalInfo>)>,
    server: ServerId,
    /// Length of the checked body to forward, for POST.
    pub body_len: Option<usize>,
    /// Which responses are `tools/list` results to filter.
    pub list_ids: ListIds,
    /// The id to answer with if the gateway itself must reply (single requests).
    pub reply_id: Option<serde_json::Value>,
    /// The upstream's own session id, unsealed from the caller's `Mcp-Session-Id`.
    pub upstream_session: Option<String>,
    /// The body holds at least one `tools/call`.
    pub calls_tools: bool,
    /// The `method` metric label of the request.
    pub method: &'static str,
    /// The tools the body calls (all allowed, once admitted).
    pub tools: Vec<String>,
    /// The virtual server the call came through (its session is the
    /// gateway's own: the upstream's session id is not passed back).
    pub via_virtual: Option<Arc<str>>,
    /// The body as admitted: its audit record is read from here.
    pub checked: Option<CheckedBody>,
}

/// A `POST` body that passed every check, and what the gateway read in
/// it: the audit record takes its messages from here instead of parsing
/// the body a second time.
#[derive(Debug, Clone)]
pub struct CheckedBody {
    /// The body (decoded), as parsed.
    pub bytes: Bytes,
    /// Its messages.
    pub parsed: jsonrpc::Body,
}

impl Route {
    /// The upstream as of the route's snapshot.
    pub fn upstream(&self) -> &Upstream {
        self.snapshot.upstream_by_id(self.server)
    }

    /// Server name, for logs.
    pub fn server_name(&self) -> &str {
        &self.upstream().name
    }

    /// The caller's token digest.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Principal name, for logs.
    pub fn principal_name(&self) -> &str {
        &self.principal().name
    }

    /// The caller's principal (for a JWT caller: the principal claim, its
    /// mapped teams, and the client as its one token name).
    pub fn principal(&self) -> &PrincipalInfo {
        match &self.jwt {
            Some((_, principal)) => principal,
            None => self.snapshot.principal(&self.caller),
        }
    }

    /// The label of the token the caller presented (the agent).
    pub fn agent_name(&self) -> &str {
        self.principal()
            .token_names
            .get(self.caller.token as usize)
            .map_or("", |n| n)
    }

    /// Gateway settings of the route's snapshot.
    pub fn settings(&self) -> &catalog::Settings {
        &self.snapshot.settings
    }

    /// May the caller call `tool` on this server (current snapshot)?
    pub fn can_call(&self, tool: &str) -> bool {
        self.snapshot.can_call(self.caller.class, self.server, tool)
    }

    /// For a server with delegated (per-user) OAuth: the caller's own
    /// `Authorization` value. `Ok(None)`: the server does not use delegated
    /// auth. A caller who has not connected is refused with the URL to
    /// connect at: there is no fallback to another user's token or to none.
    pub fn delegated_credential(&self) -> Result<Option<&http::HeaderValue>, Refusal> {
        let up = self.upstream();
        let Some(delegated) = &up.delegated else {
            return Ok(None);
        };
        match delegated.token_for(self.principal_name()) {
            Some(value) => Ok(Some(value)),
            None => Err(Refusal::NotConnected {
                id: self.reply_id.clone(),
                server: up.name.to_string(),
                connect_url: if delegated.connect_url.is_empty() {
                    format!("the control plane's /v1/connect/{}", up.name)
                } else {
                    delegated.connect_url.to_string()
                },
            }),
        }
    }

    /// Re-checks the caller against the newest snapshot when it changed, so a
    /// revocation or grant removal reaches requests already in the door.
    pub fn refresh(&mut self, store: &ArcSwap<Snapshot>) -> Result<(), Refusal> {
        if store.load().version == self.snapshot.version {
            return Ok(());
        }
        let snapshot = store.load_full();
        let name: Arc<str> = self.upstream().name.clone();
        let token = self.jwt.as_ref().map(|(t, _)| t.clone());
        let fresh = match &self.via_virtual {
            None => authorize(&snapshot, self.digest, token, &name)?,
            Some(v) => reauthorize_virtual(&snapshot, self.digest, token, v, self)?,
        };
        self.snapshot = fresh.snapshot;
        self.caller = fresh.caller;
        self.jwt = fresh.jwt;
        self.server = fresh.server;
        Ok(())
    }
}

/// A request allowed to proceed, with its checked body (POST only).
pub struct Admitted {
    /// Who and where.
    pub route: Route,
    /// The body to forward, decoded.
    pub body: Option<Bytes>,
}

/// Why admission stopped.
pub enum AdmitError {
    /// Refused with a response.
    Refused(Refusal),
    /// The agent's connection failed.
    Io(Box<pingora_error::Error>),
}

impl From<Refusal> for AdmitError {
    fn from(r: Refusal) -> Self {
        AdmitError::Refused(r)
    }
}

impl From<ReadError> for AdmitError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Refused(r) => AdmitError::Refused(r),
            ReadError::Io(e) => AdmitError::Io(e),
        }
    }
}

/// The server named by an agent path: `/mcp/{server}` (one optional trailing slash).
pub fn server_from_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/mcp/")?;
    let name = name.strip_suffix('/').unwrap_or(name);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != "..";
    ok.then_some(name)
}

/// The policy class of the token's holder under `snapshot`: a PAT's, or a
/// remembered JWT's while it is valid. `None`: the token no longer signs in.
pub fn current_class(snapshot: &Snapshot, digest: &[u8; 32]) -> Option<catalog::ClassId> {
    match snapshot.authenticate(digest) {
        Some(caller) => Some(caller.class),
        None => crate::jwt::remembered_caller(snapshot, digest).map(|jwt| jwt.caller.class),
    }
}

/// May the token's holder still use `server` (or virtual server) under `snapshot`?
pub fn still_allowed(snapshot: &Snapshot, digest: &[u8; 32], server: &str) -> bool {
    let Some(class) = current_class(snapshot, digest) else {
        return false;
    };
    snapshot
        .upstream(server)
        .is_some_and(|u| snapshot.can_access(class, u.id))
        || snapshot
            .virtual_server(server)
            .is_some_and(|v| snapshot.can_access_virtual(class, v.id))
}

/// Token → caller → server grant, all from one snapshot. `jwt`: the
/// caller signed in with this verified JWT (else `digest` is a PAT's).
fn authorize(
    snapshot: &Arc<Snapshot>,
    digest: [u8; 32],
    jwt: Option<Arc<VerifiedToken>>,
    server: &str,
) -> Result<Route, Refusal> {
    let (caller, jwt) = identify(snapshot, digest, jwt)?;
    let upstream = snapshot
        .upstream(server)
        .filter(|u| snapshot.can_access(caller.class, u.id))
        .ok_or(Refusal::NoSuchServer)?;
    Ok(Route {
        snapshot: snapshot.clone(),
        digest,
        caller,
        jwt,
        server: upstream.id,
        body_len: None,
        list_ids: ListIds::None,
        reply_id: None,
        upstream_session: None,
        calls_tools: false,
        method: "other",
        tools: Vec::new(),
        via_virtual: None,
        checked: None,
    })
}

/// The caller of a PAT (`jwt: None`) or a verified JWT.
#[allow(clippy::type_complexity)]
fn identify(
    snapshot: &Snapshot,
    digest: [u8; 32],
    jwt: Option<Arc<VerifiedToken>>,
) -> Result<(Caller, Option<(Arc<VerifiedToken>, Arc<PrincipalInfo>)>), Refusal> {
    Ok(match jwt {
        None => (
            snapshot
                .authenticate(&digest)
                .ok_or(Refusal::unauthorized(true))?,
            None,
        ),
        Some(token) => {
            let signed_in = snapshot.jwt_caller(&token).map_err(jwt_refused)?;
            (signed_in.caller, Some((token, signed_in.principal)))
        }
    })
}

/// A refused request, with what was learned before the refusal (for the audit trail).
pub struct Rejected {
    /// Why.
    pub error: AdmitError,
    /// The caller and server, when the token and grant were checked.
    pub route: Option<Route>,
    /// The body, when it was read.
    pub body: Option<Bytes>,
}

/// Admits or refuses a request. Reads and checks the whole body of a POST.
pub async fn admit(
    session: &mut Session,
    store: &ArcSwap<Snapshot>,
    seal: &SessionSeal,
) -> Result<Admitted, Rejected> {
    let snapshot = store.load_full();
    let mut route = authorize_request(session.req_header(), &snapshot).map_err(|r| Rejected {
        error: r.into(),
        route: None,
        body: None,
    })?;
    let mut body = None;
    let checked = check_request(session, store, seal, &mut route, &mut body).await;
    conclude(route, body, checked)
}

/// Admits or refuses a `POST` whose body the gateway's direct path read
/// itself (`raw`, as sent), exactly as [`admit`] decides.
// A refusal is as ordinary an outcome as an admission, and both carry the route.
#[allow(clippy::result_large_err)]
pub fn admit_post(
    req: &impl AgentHead,
    raw: Bytes,
    store: &ArcSwap<Snapshot>,
    seal: &SessionSeal,
) -> Result<Admitted, Rejected> {
    let snapshot = store.load_full();
    let mut route = authorize_request(req, &snapshot).map_err(|r| Rejected {
        error: r.into(),
        route: None,
        body: None,
    })?;
    let mut body = None;
    let checked = (|| {
        check_head(req, seal, &mut route)?;
        let max = route.snapshot.settings.max_body_bytes;
        let decoded = crate::body::take_request_body(req, raw, max)?;
        body = Some(decoded.clone());
        check_post(req, &decoded, store, &mut route)
    })()
    .map_err(AdmitError::from);
    conclude(route, body, checked)
}

/// The caller's own delegated credential is checked last, so its refusal
/// carries the request id: nothing reaches the upstream.
#[allow(clippy::result_large_err)]
fn conclude(
    route: Route,
    body: Option<Bytes>,
    checked: Result<(), AdmitError>,
) -> Result<Admitted, Rejected> {
    let checked = checked.and_then(|()| {
        route
            .delegated_credential()
            .map(|_| ())
            .map_err(AdmitError::from)
    });
    match checked {
        Ok(()) => Ok(Admitted { route, body }),
        Err(error) => Err(Rejected {
            error,
            route: Some(route),
            body,
        }),
    }
}

/// Whether a request's head alone lets its caller use the server it names
/// (path, `Host` and `Origin`, token, grant): what [`admit`] checks first.
pub fn authorize_head(req: &impl AgentHead, snapshot: &Arc<Snapshot>) -> Result<(), Refusal> {
    authorize_request(req, snapshot).map(|_| ())
}

/// Path, `Host` and `Origin`, token, grant. The OAuth protected-resource
/// metadata is answered here too (as a [`Refusal::Document`]).
fn authorize_request(req: &impl AgentHead, snapshot: &Arc<Snapshot>) -> Result<Route, Refusal> {
    if let Some(rest) = req.path().strip_prefix(resource_metadata::WELL_KNOWN) {
        check_host_and_origin(req, &snapshot.settings)?;
        return Err(resource_metadata::answer(req, snapshot, rest));
    }
    let server = server_from_path(req.path()).ok_or(Refusal::NoSuchServer)?;
    let (digest, jwt) = bearer_caller(req, snapshot, server)?;
    authorize(snapshot, digest, jwt, server).map_err(|r| challenge(req, snapshot, server, r))
}

/// A 401 names the protected-resource metadata when identity providers are configured.
fn challenge(req: &impl AgentHead, snapshot: &Snapshot, server: &str, r: Refusal) -> Refusal {
    if snapshot.has_identity_providers() {
        let base = resource_metadata::base_url(req, &snapshot.settings);
        r.with_resource_metadata(&resource_metadata::metadata_url(&base, server))
    } else {
        r
    }
}

/// `Host` and `Origin`, then the bearer token: its digest, and for a JWT
/// the verified token.
fn bearer_caller(
    req: &impl AgentHead,
    snapshot: &Arc<Snapshot>,
    server: &str,
) -> Result<([u8; 32], Option<Arc<VerifiedToken>>), Refusal> {
    check_host_and_origin(req, &snapshot.settings)?;
    let token = bearer_token(req).map_err(|r| challenge(req, snapshot, server, r))?;
    let digest = connection_digest(token);
    // A JWT signs in with an identity provider; anything else is a PAT
    // (a known PAT is one lookup: checked before the token's shape).
    let jwt = if snapshot.authenticate(&digest).is_none() && catalog::looks_like_jwt(token) {
        let verified = crate::jwt::verify(snapshot, token, &digest)
            .map_err(jwt_refused)
            .map_err(|r| challenge(req, snapshot, server, r))?;
        Some(verified)
    } else {
        None
    };
    Ok((digest, jwt))
}

/// A JWT that does not sign in: logged with the reason (never the token).
fn jwt_refused(e: catalog::JwtError) -> Refusal {
    tracing::info!(reason = %e, "bearer JWT refused");
    Refusal::unauthorized(true)
}

/// Admits an agent's `GET` event stream from its request head alone (no
/// body to read): token, grant, session, and the caller's own delegated
/// credential, exactly as [`admit`] decides for a `GET`.
pub fn admit_event_stream(
    req: &impl AgentHead,
    snapshot: &Arc<Snapshot>,
    seal: &SessionSeal,
) -> Result<Route, Refusal> {
    let mut route = authorize_request(req, snapshot)?;
    open_session(req, seal, &mut route)?;
    as_event_stream(&mut route);
    route.delegated_credential()?;
    Ok(route)
}

/// The upstream session named by the caller's `Mcp-Session-Id`: only the
/// caller the session was opened for may use it.
fn open_session(
    req: &impl AgentHead,
    seal: &SessionSeal,
    route: &mut Route,
) -> Result<(), Refusal> {
    if let Some(presented) = req.field(&crate::http_headers::MCP_SESSION_ID) {
        let presented = visible_ascii(presented).unwrap_or("");
        let upstream = SessionSeal::for_settings(&route.snapshot.settings, seal)
            .open(&route.digest, presented)
            .ok_or(Refusal::UnknownSession)?;
        route.upstream_session = Some(upstream.to_string());
    }
    Ok(())
}

/// A `GET` stream may replay earlier responses: any tool list on it is filtered.
fn as_event_stream(route: &mut Route) {
    route.list_ids = ListIds::Any;
    route.method = "GET";
}

/// Session, method, and for POST the body: read, parsed, headers checked, decided.
async fn check_request(
    session: &mut Session,
    store: &ArcSwap<Snapshot>,
    seal: &SessionSeal,
    route: &mut Route,
    body_seen: &mut Option<Bytes>,
) -> Result<(), AdmitError> {
    if check_head(session.req_header(), seal, route)? {
        let max = route.snapshot.settings.max_body_bytes;
        let body = read_request_body(session, max).await?;
        *body_seen = Some(body.clone());
        check_post(session.req_header(), &body, store, route)?;
    }
    Ok(())
}

/// Session and method. True: a `POST`, whose body is to be checked.
fn check_head(
    req: &impl AgentHead,
    seal: &SessionSeal,
    route: &mut Route,
) -> Result<bool, Refusal> {
    open_session(req, seal, route)?;
    let has_body = req.field(&http::header::TRANSFER_ENCODING).is_some()
        || req
            .field(&http::header::CONTENT_LENGTH)
            .is_some_and(|v| v != b"0");
    if has_body && matches!(*req.method(), http::Method::GET | http::Method::DELETE) {
        // A body here would reach the upstream unchecked.
        return Err(Refusal::Unsupported(format!(
            "{} requests carry no body",
            req.method()
        )));
    }
    match *req.method() {
        http::Method::GET => {
            as_event_stream(route);
            Ok(false)
        }
        http::Method::DELETE => {
            route.method = "DELETE";
            Ok(false)
        }
        http::Method::POST => Ok(true),
        _ => Err(Refusal::MethodNotAllowed),
    }
}

/// A `POST`'s decoded body: parsed once, headers checked against it, decided.
fn check_post(
    req: &impl AgentHead,
    body: &Bytes,
    store: &ArcSwap<Snapshot>,
    route: &mut Route,
) -> Result<(), Refusal> {
    route.refresh(store)?;
    let parsed = jsonrpc::parse(body).map_err(Refusal::Parse)?;
    let mcp = McpHeaders::of(req);
    check_headers(&parsed, &mcp)?;
    route.calls_tools = parsed
        .messages()
        .iter()
        .any(|m| m.method() == Some("tools/call"));
    route.method = crate::metrics::request_method(&http::Method::POST, Some(&parsed));
    if route.calls_tools {
        route.tools = parsed
            .messages()
            .iter()
            .filter_map(|m| m.tool().map(str::to_string))
            .collect();
    }
    route.list_ids = decide(&parsed, &route.snapshot, route.caller.class, route.server)?;
    route.body_len = Some(body.len());
    if let jsonrpc::Body::Single(m) = &parsed {
        route.reply_id = m.id.clone();
    }
    route.checked = Some(CheckedBody {
        bytes: body.clone(),
        parsed,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::server_from_path;

    #[test]
    fn paths() {
        assert_eq!(server_from_path("/mcp/github"), Some("github"));
        assert_eq!(server_from_path("/mcp/github/"), Some("github"));
        for bad in [
            "/mcp/",
            "/mcp",
            "/mcp/a/b",
            "/mcp/..",
            "/other/github",
            "/mcp/a%2fb",
        ] {
            assert_eq!(server_from_path(bad), None, "{bad}");
        }
    }
}
