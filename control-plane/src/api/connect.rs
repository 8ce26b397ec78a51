//! Users connect their own account to a delegated-OAuth server
//! ([`crate::delegated`]): `GET /v1/connect/{server}` (gateway token) →
//! authorization server → `GET /v1/connect/callback`; `DELETE
//! /v1/connect/{server}` disconnects. Operators see connections (never
//! tokens) at `GET /v1/servers/{name}/connections`.

use axum::http::header;

use super::*;
use crate::delegated::{flow, refresh, PendingFlow};

/// Query of the authorization server's redirect back to us.
#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn page(status: StatusCode, text: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// The principal whose gateway token authenticates this request, exactly
/// as a proxy would: a PAT (known, not revoked, principal not disabled) or an
/// identity provider's JWT; and whose policies grant `server`.
fn user(s: &AppState, headers: &HeaderMap, server: &str) -> ApiResult<String> {
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("your gateway token is required (Authorization: Bearer <token>): run `toolgate connect {server}` and open the URL it prints"),
        )
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(refused)?;
    let snapshot = s
        .registry
        .delegated()
        .snapshot(&s.registry.current())
        .map_err(|m| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m))?;
    let digest = catalog::token_digest(token);
    let (class, name) = match snapshot.authenticate(&digest) {
        Some(caller) => (caller.class, snapshot.principal(&caller).name.to_string()),
        None if catalog::looks_like_jwt(token) => {
            let signed_in = snapshot
                .verify_jwt(token)
                .and_then(|v| snapshot.jwt_caller(&v))
                .map_err(|e| {
                    tracing::info!(reason = %e, "connect: bearer JWT refused");
                    refused()
                })?;
            (signed_in.caller.class, signed_in.principal.name.to_string())
        }
        None => return Err(refused()),
    };
    let granted = snapshot
        .upstream(server)
        .is_some_and(|u| snapshot.can_access(class, u.id));
    if !granted {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{server:?} is not a server you may use"),
        ));
    }
    Ok(name)
}

fn delegated_client(s: &AppState, server: &str) -> ApiResult<flow::Client> {
    flow::client(&s.registry, server).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{server:?} is not a server users connect their own account to"),
        )
    })
}

/// `GET /v1/connect/{server}`: starts the flow (302 to the authorization server).
pub(super) async fn start_connect(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(server): Path<String>,
) -> ApiResult<Response> {
    let principal = user(&s, &headers, &server)?;
    let client = delegated_client(&s, &server)?;
    let delegated = s.registry.delegated();
    let state = flow::random_token();
    let verifier = flow::random_token();
    let url = flow::authorize_url(&client, &delegated.redirect_uri(), &state, &verifier)
        .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m))?;
    let started = delegated.start(
        state,
        PendingFlow {
            principal,
            server,
            verifier,
            started: std::time::Instant::now(),
        },
    );
    if !started {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections in progress: finish or wait for one (10 minutes)",
        ));
    }
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response())
}

/// `GET /v1/connect/callback`: the authorization server sends the user back.
pub(super) async fn finish_connect(
    State(s): State<AppState>,
    Query(q): Query<Callback>,
) -> Response {
    // The state is single-use: taken before anything else is checked.
    let Some(flow) = q
        .state
        .as_deref()
        .and_then(|st| s.registry.delegated().take(st))
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "unknown or expired connection attempt: start again".into(),
        );
    };
    if let Some(error) = q.error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return page(
            StatusCode::BAD_REQUEST,
            format!("the authorization server refused the connection ({error})"),
        );
    }
    let Some(code) = q.code else {
        return page(StatusCode::BAD_REQUEST, "no authorization code".into());
    };
    if refresh::disabled_principals(&s.registry).contains(&flow.principal) {
        return page(
            StatusCode::FORBIDDEN,
            "this account has been disabled".into(),
        );
    }
    let Ok(client) = delegated_client(&s, &flow.server) else {
        return page(
            StatusCode::NOT_FOUND,
            "this server is no longer connectable".into(),
        );
    };
    let redirect_uri = s.registry.delegated().redirect_uri();
    let http = refresh::http_client();
    let tokens = match flow::exchange_code(&http, &client, &code, &flow.verifier, &redirect_uri)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            s.registry.metrics().credential_refresh_failed(&flow.server);
            tracing::warn!(server = %flow.server, principal = %flow.principal, reason = %e, "delegated OAuth code exchange failed");
            return page(StatusCode::BAD_GATEWAY, format!("connecting failed: {e}"));
        }
    };
    if let Err(m) = refresh::store_tokens(&s.registry, &flow.server, &flow.principal, tokens) {
        tracing::error!(server = %flow.server, principal = %flow.principal, error = %m, "cannot store a delegated OAuth token");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot store the connection: {m}"),
        );
    }
    if let Err(e) = s.registry.republish() {
        tracing::error!(error = %e, "cannot publish a new delegated token");
    }
    tracing::info!(server = %flow.server, principal = %flow.principal, "user connected a delegated OAuth account");
    page(
        StatusCode::OK,
        format!(
            "{} is connected to {}. You can close this page.",
            flow.principal, flow.server
        ),
    )
}

/// `DELETE /v1/connect/{server}`: the user disconnects.
pub(super) async fn disconnect(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    let principal = user(&s, &headers, &server)?;
    delegated_client(&s, &server)?;
    let rows = stored_of(&s, &principal, Some(&server))?;
    s.registry
        .store()
        .put_delegated(&server, &principal, None)
        .map_err(RegistryError::from)?;
    tokio::spawn(refresh::revoke_all(s.registry.clone(), rows));
    s.registry.delegated().forget(&server, &principal);
    s.registry.republish()?;
    Ok(Json(
        json!({"server": server, "principal": principal, "connected": false}),
    ))
}

/// Deletes every delegated token of `principal`, forgets their connections
/// and revokes the refresh tokens at the authorization servers that have a
/// revocation endpoint (offboarding); the caller publishes the next snapshot.
pub(super) fn offboard(s: &AppState, principal: &str) -> ApiResult<usize> {
    let rows = stored_of(s, principal, None)?;
    let n = s
        .registry
        .store()
        .delete_delegated(principal)
        .map_err(RegistryError::from)?;
    s.registry.delegated().forget_principal(principal);
    tokio::spawn(refresh::revoke_all(s.registry.clone(), rows));
    Ok(n)
}

/// `principal`'s stored refresh tokens (on `server`, or all).
fn stored_of(
    s: &AppState,
    principal: &str,
    server: Option<&str>,
) -> ApiResult<Vec<(String, String, String)>> {
    let rows = s
        .registry
        .store()
        .delegated()
        .map_err(RegistryError::from)?;
    Ok(rows
        .into_iter()
        .filter(|(sv, p, _)| p == principal && server.is_none_or(|x| x == sv))
        .collect())
}

/// `GET /v1/servers/{name}/connections`: users connected, expiry, last error.
pub(super) async fn connections(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    admin(&s, &headers)?;
    delegated_client(&s, &name)?;
    let stored: Vec<String> = s
        .registry
        .store()
        .delegated()
        .map_err(RegistryError::from)?
        .into_iter()
        .filter(|(server, ..)| *server == name)
        .map(|(_, principal, _)| principal)
        .collect();
    let statuses = s.registry.delegated().statuses(&name);
    let mut out: Vec<Value> = statuses
        .iter()
        .map(|st| {
            let mut v = json!(st);
            v["refresh_token_stored"] = json!(stored.contains(&st.principal));
            v
        })
        .collect();
    for principal in stored
        .iter()
        .filter(|p| !statuses.iter().any(|st| st.principal == **p))
    {
        out.push(json!({"principal": principal, "refresh_token_stored": true}));
    }
    Ok(Json(Value::Array(out)))
}

/// The delegated part of `GET /v1/servers/{name}`: counts, never tokens.
pub(super) fn summary(s: &AppState, name: &str) -> Value {
    let statuses = s.registry.delegated().statuses(name);
    json!({
        "connect_url": s.registry.delegated().connect_url(name),
        "connected_users": statuses.iter().filter(|c| c.token_expires_in_s.is_some()).count(),
        "failing_users": statuses.iter().filter(|c| c.last_error.is_some()).count(),
        "needs_reconnect": statuses.iter().filter(|c| c.needs_reconnect).map(|c| c.principal.clone()).collect::<Vec<_>>(),
    })
}
