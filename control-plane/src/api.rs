//! The REST API (`/v1/...`) and the proxies' snapshot long-poll.
//!
//! Operators authenticate with an admin token, proxies with a proxy token
//! (`Authorization: Bearer`). Errors are JSON `{"error": {"message", "field"}}`;
//! bodies are parsed strictly, naming the offending field.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use catalog::model::{ApprovalStatus, PrincipalKind, Server, UpstreamAuth};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::discovery::{discover, review, Credential, PinnedTool, Review, ToolDefinition};
use crate::registry::{Registry, RegistryError};
use crate::store::{Mutation, Outcome, StoreError, StoredPrincipal};

/// Who may call the API: digests of the admin and proxy tokens.
#[derive(Clone)]
pub struct ApiKeys {
    /// `(name, sha256)` of admin tokens; the name is recorded as the actor.
    pub admins: Vec<(String, [u8; 32])>,
    /// sha256 of proxy tokens (snapshot access only).
    pub proxies: Vec<[u8; 32]>,
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    keys: Arc<ApiKeys>,
}

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The control plane's HTTP application.
pub fn app(registry: Arc<Registry>, keys: ApiKeys) -> Router {
    let state = AppState {
        registry,
        keys: Arc::new(keys),
    };
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/snapshot/version", get(snapshot_version))
        .route("/v1/servers", get(list_servers).post(register_server))
        .route("/v1/servers/{name}", get(show_server).put(update_server))
        .route("/v1/servers/{name}/discover", post(discover_tools))
        .route("/v1/servers/{name}/tools", get(tool_review))
        .route("/v1/servers/{name}/{action}", post(server_action))
        .route("/v1/teams", get(list_teams).post(create_team))
        .route("/v1/policies", get(list_policies).post(put_policy))
        .route(
            "/v1/principals",
            get(list_principals).post(create_principal),
        )
        .route("/v1/principals/{name}/disable", post(disable_principal))
        .route("/v1/principals/{name}/enable", post(enable_principal))
        .route(
            "/v1/principals/{name}/tokens",
            get(list_tokens).post(issue_token),
        )
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/secrets", get(list_secrets))
        .route("/v1/secrets/{name}", put(set_secret))
        .route("/v1/changes", get(list_changes))
        .with_state(state)
}

/// An API error: status, message and (for bad input) the field.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "field": self.field}});
        (self.status, Json(body)).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(StoreError::Rejected(errors)) | RegistryError::Config(errors) => {
                let field = errors.0.first().map(|e| e.path.clone());
                ApiError {
                    status: StatusCode::BAD_REQUEST,
                    message: errors.to_string(),
                    field,
                }
            }
            RegistryError::Store(StoreError::Conflict(m)) => ApiError::new(StatusCode::CONFLICT, m),
            RegistryError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal store error")
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn bearer_digest(headers: &HeaderMap) -> Option<[u8; 32]> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(catalog::token_digest(token.trim()))
}

/// The admin's name, or 401.
fn admin(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    let digest = bearer_digest(headers);
    state
        .keys
        .admins
        .iter()
        .find(|(_, d)| Some(*d) == digest)
        .map(|(name, _)| name.clone())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "an admin token is required"))
}

fn proxy_or_admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let digest = bearer_digest(headers);
    if digest.is_some_and(|d| state.keys.proxies.contains(&d)) {
        return Ok(());
    }
    admin(state, headers).map(|_| ())
}

/// Parses a JSON body strictly; errors name the field.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::field(
            if path == "." { "" } else { &path },
            e.into_inner().to_string(),
        )
    })
}

#[derive(Deserialize)]
struct SnapshotQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_wait")]
    wait: u64,
}

fn default_wait() -> u64 {
    30
}

/// Long-poll: returns the snapshot once its version is above `after`, or 304
/// after `wait` seconds (at most 60).
async fn snapshot(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Response> {
    proxy_or_admin(&s, &headers)?;
    let mut rx = s.registry.subscribe();
    let wait = Duration::from_secs(q.wait.min(60));
    let newer = tokio::time::timeout(wait, rx.wait_for(|p| p.version > q.after)).await;
    match newer {
        Ok(Ok(p)) => {
            let p = p.clone();
            Ok(([("content-type", "application/json")], p.body.clone()).into_response())
        }
        _ => Ok(StatusCode::NOT_MODIFIED.into_response()),
    }
}

async fn snapshot_version(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    proxy_or_admin(&s, &headers)?;
    Ok(Json(json!({"version": s.registry.current().version})))
}

fn server_view(source: &str, server: &Server) -> Value {
    json!({
        "name": server.name, "description": server.description, "owner": server.owner,
        "status": server.status, "endpoint": server.endpoint, "transport": server.transport,
        "auth": match &server.auth { catalog::model::UpstreamAuth::None => "none", catalog::model::UpstreamAuth::Bearer{..} => "bearer", catalog::model::UpstreamAuth::Header{..} => "header" },
        "tools": server.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "source": source,
    })
}

fn all_servers(s: &AppState) -> Vec<Value> {
    let current = s.registry.current();
    current
        .document
        .sources
        .iter()
        .flat_map(|(source, doc)| doc.servers.iter().map(move |sv| server_view(source, sv)))
        .collect()
}

async fn list_servers(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    Ok(Json(Value::Array(all_servers(&s))))
}

async fn show_server(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    all_servers(&s)
        .into_iter()
        .find(|v| v["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no server {name:?}")))
}

async fn register_server(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = admin(&s, &headers)?;
    let server: Server = parse_body(&body)?;
    let name = server.name.clone();
    s.registry
        .apply(&actor, Mutation::RegisterServer(Box::new(server)))?;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))).into_response())
}

async fn update_server(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    let server: Server = parse_body(&body)?;
    if server.name != name {
        return Err(ApiError::field(
            "name",
            format!("must be {name:?}, the server being updated"),
        ));
    }
    s.registry
        .apply(&actor, Mutation::UpdateServer(Box::new(server)))?;
    Ok(Json(json!({"name": name})))
}

async fn create_team(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = admin(&s, &headers)?;
    let team: catalog::model::Team = parse_body(&body)?;
    let name = team.name.clone();
    s.registry.apply(&actor, Mutation::CreateTeam(team))?;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))).into_response())
}

/// Creates or replaces a policy (API-managed; config/ policies are edited there).
async fn put_policy(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    let policy: catalog::model::Policy = parse_body(&body)?;
    let name = policy.name.clone();
    s.registry
        .apply(&actor, Mutation::PutPolicy(Box::new(policy)))?;
    Ok(Json(json!({"name": name})))
}

async fn server_action(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    let status = match action.as_str() {
        "approve" => ApprovalStatus::Approved,
        "deprecate" => ApprovalStatus::Deprecated,
        "block" => ApprovalStatus::Blocked,
        "pending" => ApprovalStatus::Pending,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: use approve, deprecate, block or pending"),
            ))
        }
    };
    if !all_servers(&s).iter().any(|v| v["name"] == name.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no server {name:?}"),
        ));
    }
    s.registry.apply(
        &actor,
        Mutation::SetStatus {
            server: name.clone(),
            status,
        },
    )?;
    Ok(Json(json!({"name": name, "status": status})))
}

/// The server's definition and its credential, from the current document.
fn server_and_credential(s: &AppState, name: &str) -> ApiResult<(Server, Credential)> {
    let current = s.registry.current();
    let server = current
        .document
        .sources
        .iter()
        .flat_map(|(_, d)| d.servers.iter())
        .find(|sv| sv.name == name)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no server {name:?}")))?;
    let secret = |reference: &str| {
        current
            .document
            .secrets
            .get(reference)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!("the credential {reference} of {name:?} is not available"),
                )
            })
    };
    let credential = match &server.auth {
        UpstreamAuth::None => Credential::None,
        UpstreamAuth::Bearer { secret: r } => Credential::Bearer(secret(r)?),
        UpstreamAuth::Header { header, secret: r } => Credential::Header {
            name: header.clone(),
            value: secret(r)?,
        },
    };
    Ok((server, credential))
}

fn review_of(s: &AppState, name: &str) -> ApiResult<Review> {
    let state = s.registry.store().state().map_err(RegistryError::from)?;
    let pins: Vec<PinnedTool> = state
        .pinned
        .iter()
        .filter(|(sv, _, _)| sv == name)
        .map(|(_, n, fp)| PinnedTool {
            name: n.clone(),
            fingerprint: fp.clone(),
        })
        .collect();
    let discovered: Vec<ToolDefinition> = state
        .discovered
        .iter()
        .filter(|(sv, _, _, _)| sv == name)
        .filter_map(|(_, _, _, def)| serde_json::from_str::<Value>(def).ok())
        .filter_map(|raw| ToolDefinition::from_raw(raw).ok())
        .collect();
    Ok(review(&pins, &discovered))
}

/// Connects to the server with its credential, lists its tools and stores
/// them; returns the review against the pinned definitions.
async fn discover_tools(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    let (server, credential) = server_and_credential(&s, &name)?;
    let tools = discover(&server.endpoint, &credential, Duration::from_secs(20))
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let rows = tools
        .iter()
        .map(|t| (t.name().to_string(), t.fingerprint(), t.raw().to_string()))
        .collect();
    s.registry.apply(
        &actor,
        Mutation::RecordDiscovery {
            server: name.clone(),
            tools: rows,
        },
    )?;
    let review = review_of(&s, &name)?;
    Ok(Json(
        json!({"server": name, "needs_review": review.needs_review(), "offerable": review.offerable(), "tools": review.tools}),
    ))
}

async fn tool_review(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let review = review_of(&s, &name)?;
    Ok(Json(
        json!({"server": name, "needs_review": review.needs_review(), "offerable": review.offerable(), "tools": review.tools}),
    ))
}

async fn list_teams(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let current = s.registry.current();
    let teams: Vec<Value> = current
        .document
        .sources
        .iter()
        .flat_map(|(_, d)| d.teams.iter())
        .map(|t| json!({"name": t.name, "description": t.description}))
        .collect();
    Ok(Json(Value::Array(teams)))
}

async fn list_policies(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let current = s.registry.current();
    let policies: Vec<Value> = current
        .document
        .sources
        .iter()
        .flat_map(|(_, d)| d.policies.iter())
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    Ok(Json(Value::Array(policies)))
}

async fn list_principals(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let current = s.registry.current();
    let principals: Vec<Value> = current
        .document
        .sources
        .iter()
        .flat_map(|(source, d)| d.principals.iter().map(move |p| json!({"name": p.name, "kind": p.kind, "teams": p.teams, "disabled": p.disabled, "tokens": p.tokens.iter().filter(|t| !t.revoked).count(), "source": source})))
        .collect();
    Ok(Json(Value::Array(principals)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPrincipal {
    name: String,
    kind: PrincipalKind,
    #[serde(default)]
    teams: Vec<String>,
}

async fn create_principal(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = admin(&s, &headers)?;
    let p: NewPrincipal = parse_body(&body)?;
    s.registry.apply(
        &actor,
        Mutation::CreatePrincipal(StoredPrincipal {
            name: p.name.clone(),
            kind: p.kind,
            teams: p.teams,
        }),
    )?;
    Ok((StatusCode::CREATED, Json(json!({"name": p.name}))).into_response())
}

fn known_principal(s: &AppState, name: &str) -> ApiResult<()> {
    let current = s.registry.current();
    if current
        .document
        .sources
        .iter()
        .any(|(_, d)| d.principals.iter().any(|p| p.name == name))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no principal {name:?}"),
        ))
    }
}

async fn disable_principal(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    known_principal(&s, &name)?;
    s.registry.apply(
        &actor,
        Mutation::SetDisabled {
            name: name.clone(),
            disabled: true,
        },
    )?;
    Ok(Json(json!({"name": name, "disabled": true})))
}

async fn enable_principal(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    known_principal(&s, &name)?;
    s.registry.apply(
        &actor,
        Mutation::SetDisabled {
            name: name.clone(),
            disabled: false,
        },
    )?;
    Ok(Json(json!({"name": name, "disabled": false})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

/// Issues a token: its text is in this response only; the store keeps its digest.
async fn issue_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(principal): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = admin(&s, &headers)?;
    let req: NewToken = parse_body(&body)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    known_principal(&s, &principal)?;
    let token = new_token().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let sha256 = hex::encode(catalog::token_digest(&token));
    let outcome = s.registry.apply(
        &actor,
        Mutation::IssueToken {
            principal: principal.clone(),
            name: req.name,
            sha256: sha256.clone(),
        },
    )?;
    let id = match outcome {
        Outcome::TokenId(id) => id,
        Outcome::Done => 0,
    };
    Ok((StatusCode::CREATED, Json(json!({"id": id, "principal": principal, "token": token, "sha256": sha256, "note": "shown once: only the digest is stored"}))).into_response())
}

/// A new random gateway token: `tg_` + 64 hex characters.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(format!("tg_{}", hex::encode(bytes)))
}

async fn list_tokens(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(principal): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let state = s.registry.store().state().map_err(RegistryError::from)?;
    let tokens: Vec<_> = state
        .tokens
        .into_iter()
        .filter(|t| t.principal == principal)
        .collect();
    Ok(Json(serde_json::to_value(tokens).unwrap_or(Value::Null)))
}

async fn revoke_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::field("id", "must be a token id (an integer)"))?;
    let state = s.registry.store().state().map_err(RegistryError::from)?;
    if !crate::store::token_exists(&state, id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token with id {id}"),
        ));
    }
    s.registry.apply(&actor, Mutation::RevokeToken { id })?;
    Ok(Json(json!({"id": id, "revoked": true})))
}

async fn list_secrets(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let state = s.registry.store().state().map_err(RegistryError::from)?;
    // Names only: secrets are write-only.
    let names: Vec<Value> = state
        .secrets
        .iter()
        .map(|(n, _)| json!({"name": n, "reference": format!("store:{n}")}))
        .collect();
    Ok(Json(Value::Array(names)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

async fn set_secret(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let actor = admin(&s, &headers)?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ApiError::field(
            "name",
            "secret names use letters, digits, '-', '_' and '.'",
        ));
    }
    let v: SecretValue = parse_body(&body)?;
    if v.value.is_empty() {
        return Err(ApiError::field("value", "must not be empty"));
    }
    s.registry.apply(
        &actor,
        Mutation::SetSecret {
            name,
            value: v.value,
        },
    )?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ChangesQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn list_changes(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let changes = s
        .registry
        .store()
        .changes(q.limit.min(1000))
        .map_err(RegistryError::from)?;
    Ok(Json(serde_json::to_value(changes).unwrap_or(Value::Null)))
}
