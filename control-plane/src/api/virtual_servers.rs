//! Virtual servers: the registry's view of each curated endpoint, with the
//! tools it exposes resolved against the current catalog.

use super::*;

/// `GET /v1/virtual-servers`.
pub(super) async fn list_virtual_servers(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    Ok(Json(Value::Array(all_virtual_servers(&s)?)))
}

/// `GET /v1/virtual-servers/{name}`.
pub(super) async fn show_virtual_server(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    all_virtual_servers(&s)?
        .into_iter()
        .find(|v| v["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no virtual server {name:?}")))
}

fn all_virtual_servers(s: &AppState) -> ApiResult<Vec<Value>> {
    let current = s.registry.current();
    // The published document always assembles: it was validated before.
    let catalog = catalog::assemble(current.document.sources.clone())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let routable = |server: &str| {
        catalog
            .servers
            .iter()
            .any(|l| l.item.name == server && l.item.status == ApprovalStatus::Approved)
    };
    Ok(catalog
        .virtual_servers
        .iter()
        .map(|l| {
            let v = &l.item;
            let tools: Vec<Value> = catalog::virtual_servers::resolve(l, &catalog.servers)
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    json!({"name": e.name, "server": e.server, "tool": e.original,
                           "routable": routable(&e.server)})
                })
                .collect();
            let members: Vec<Value> = v
                .tools
                .iter()
                .filter(|inc| !inc.prompts.is_empty() || !inc.resources.is_empty())
                .map(|inc| json!({"server": inc.server, "prompts": inc.prompts, "resources": inc.resources}))
                .collect();
            json!({
                "name": v.name, "description": v.description, "naming": v.naming,
                "tools": tools, "prompts_and_resources": members,
                "access": {"teams": v.access.teams, "principals": v.access.principals},
                "source": l.file,
            })
        })
        .collect())
}
