//! Servers: registry view, registration, approval, tool discovery and review.

use super::*;
pub(super) fn server_view(source: &str, server: &Server) -> Value {
    json!({
        "name": server.name, "description": server.description, "owner": server.owner,
        "status": server.status, "endpoint": server.endpoint, "transport": server.transport,
        "auth": match &server.auth {
            UpstreamAuth::None => "none",
            UpstreamAuth::Bearer { .. } => "bearer",
            UpstreamAuth::Header { .. } => "header",
            UpstreamAuth::OauthClientCredentials { .. } => "oauth-client-credentials",
            UpstreamAuth::OauthAuthorizationCode { .. } => "oauth-authorization-code",
        },
        "tools": server.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "source": source,
    })
}

pub(super) fn all_servers(s: &AppState) -> Vec<Value> {
    let current = s.registry.current();
    current
        .document
        .sources
        .iter()
        .flat_map(|(source, doc)| doc.servers.iter().map(move |sv| server_view(source, sv)))
        .collect()
}

pub(super) async fn list_servers(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    Ok(Json(Value::Array(all_servers(&s))))
}

pub(super) async fn show_server(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let mut view = all_servers(&s)
        .into_iter()
        .find(|v| v["name"] == name.as_str())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no server {name:?}")))?;
    // An OAuth credential's health: expiry and the last refresh error, never the token.
    if let Some(status) = s.registry.oauth().status(&name) {
        view["credential"] = json!(status);
    }
    // Delegated OAuth: how many users are connected and failing, never a token.
    if view["auth"] == "oauth-authorization-code" {
        view["delegated"] = super::connect::summary(&s, &name);
    }
    Ok(Json(view))
}

pub(super) async fn register_server(
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

pub(super) async fn update_server(
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

pub(super) async fn create_team(
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
pub(super) async fn put_policy(
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

pub(super) async fn server_action(
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
pub(super) fn server_and_credential(s: &AppState, name: &str) -> ApiResult<(Server, Credential)> {
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
        UpstreamAuth::OauthClientCredentials { .. } => {
            Credential::Bearer(secret(&catalog::model::oauth_token_ref(name))?)
        }
        UpstreamAuth::OauthAuthorizationCode { .. } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{name:?} acts with each user's own OAuth token: the registry has no credential of its own to discover its tools with"),
            ))
        }
    };
    Ok((server, credential))
}

pub(super) fn review_of(s: &AppState, name: &str) -> ApiResult<Review> {
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
pub(super) async fn discover_tools(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let actor = admin(&s, &headers)?;
    let (server, credential) = server_and_credential(&s, &name)?;
    if server.transport != catalog::model::Transport::StreamableHttp {
        // Discovery speaks Streamable HTTP only: declare these servers' tools in config.
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name:?} is not a streamable-http server: tool discovery is not available for it, declare its tools in config"),
        ));
    }
    let tools = discover(&server.endpoint, &credential, Duration::from_secs(20))
        .await
        .map_err(|e| {
            s.registry.metrics().discovery_failed(&name);
            ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
        })?;
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
    Ok(Json(review_json(&name, &review)))
}

pub(super) async fn tool_review(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    let review = review_of(&s, &name)?;
    Ok(Json(review_json(&name, &review)))
}

/// The review as the API shows it.
fn review_json(server: &str, review: &Review) -> Value {
    json!({"server": server, "needs_review": review.needs_review(), "offerable": review.offerable(), "tools": review.tools})
}
