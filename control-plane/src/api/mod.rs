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

mod audit;
mod connect;
mod identities;
mod servers;
mod virtual_servers;

use audit::*;
pub use identities::new_token;
use identities::*;
use servers::*;
use virtual_servers::*;

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
    audit: Arc<crate::audit::AuditStore>,
}

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// The control plane's HTTP application; audit records go to `audit`.
pub fn app(registry: Arc<Registry>, audit: Arc<crate::audit::AuditStore>, keys: ApiKeys) -> Router {
    let state = AppState {
        registry,
        keys: Arc::new(keys),
        audit,
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
        .route("/v1/servers/{name}/connections", get(connect::connections))
        .route("/v1/connect/callback", get(connect::finish_connect))
        .route(
            "/v1/connect/{server}",
            get(connect::start_connect).delete(connect::disconnect),
        )
        .route("/v1/servers/{name}/{action}", post(server_action))
        .route("/v1/virtual-servers", get(list_virtual_servers))
        .route("/v1/virtual-servers/{name}", get(show_virtual_server))
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
        .route(
            "/v1/audit/records",
            post(ingest_records).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
        .route("/v1/audit", get(query_audit))
        .route("/metrics", get(metrics))
        // After every route: counts each under its matched template.
        .layer(axum::middleware::from_fn_with_state(
            state.registry.metrics().clone(),
            crate::metrics::track,
        ))
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
            RegistryError::Store(StoreError::Sealed(m)) => {
                // Names a missing or wrong master key; never a secret value.
                tracing::error!(error = %m, "secrets unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("secrets: {m}"))
            }
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

/// Prometheus metrics; no token needed, nothing sensitive (see [`crate::metrics`]).
async fn metrics(State(s): State<AppState>) -> Response {
    crate::metrics::scrape(&s.registry)
}
