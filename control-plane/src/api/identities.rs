//! Teams, policies, principals, tokens and secrets.

use super::*;
pub(super) async fn list_teams(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
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

pub(super) async fn list_policies(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
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

pub(super) async fn list_principals(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
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
pub(super) struct NewPrincipal {
    name: String,
    kind: PrincipalKind,
    #[serde(default)]
    teams: Vec<String>,
}

pub(super) async fn create_principal(
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

pub(super) fn known_principal(s: &AppState, name: &str) -> ApiResult<()> {
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

pub(super) async fn disable_principal(
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
    // Offboarding in one action: their delegated OAuth tokens go too (the
    // snapshot just published already stops shipping them).
    let delegated = super::connect::offboard(&s, &name)?;
    s.registry.republish()?;
    Ok(Json(
        json!({"name": name, "disabled": true, "delegated_tokens_deleted": delegated}),
    ))
}

pub(super) async fn enable_principal(
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
pub(super) struct NewToken {
    name: String,
}

/// Issues a token: its text is in this response only; the store keeps its digest.
pub(super) async fn issue_token(
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

pub(super) async fn list_tokens(
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

pub(super) async fn revoke_token(
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

pub(super) async fn list_secrets(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
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
pub(super) struct SecretValue {
    value: String,
}

pub(super) async fn set_secret(
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
