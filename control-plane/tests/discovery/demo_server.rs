//! Discovery against the demo server: what is found, and credentials that are wrong, refused or unsafe never leak.

use super::*;

#[tokio::test]
async fn discovers_the_demo_tools_and_their_annotations() {
    // (json_response, sessions): SSE answers, JSON answers, stateless JSON.
    for (json_response, sessions) in [(false, true), (true, true), (true, false)] {
        let server = demo_server(json_response, sessions).await;
        let tools = discover_demo(&server).await;
        assert_eq!(
            names(&tools),
            DEMO_TOOLS,
            "json={json_response} sessions={sessions}"
        );

        let delete = find(&tools, "delete_issue");
        assert_eq!(delete.hint("destructiveHint"), Some(true));
        assert_eq!(
            delete.annotations().unwrap()["destructiveHint"],
            json!(true)
        );
        let search = find(&tools, "search_issues");
        assert_eq!(search.hint("readOnlyHint"), Some(true));
        assert_eq!(search.description(), Some("Search issues by title"));
        assert_eq!(
            search.input_schema()["properties"]["query"]["type"],
            "string"
        );
        assert_eq!(search.raw()["name"], "search_issues");
        assert_eq!(search.raw()["inputSchema"], *search.input_schema());
        assert_eq!(find(&tools, "create_issue").hint("readOnlyHint"), None);
    }
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_without_leaking_it() {
    let server = demo_server(false, true).await;

    let wrong = Credential::Bearer(WRONG_TOKEN.to_string());
    let error = discover(&server.url, &wrong, WAIT).await.unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("refused the credential (HTTP 401)"),
        "{message}"
    );
    assert!(message.contains(&server.url), "{message}");
    assert_no_secret(&error, WRONG_TOKEN);

    let error = discover(&server.url, &Credential::None, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_named_header_credential_is_sent() {
    let server = pager_server(Pager::new(numbered_tools(3), 10, Paging::Normal), true).await;
    let right = Credential::Header {
        name: "X-Api-Key".to_string(),
        value: API_KEY.to_string(),
    };
    let tools = discover(&server.url, &right, WAIT).await.unwrap();
    assert_eq!(tools.len(), 3);

    let wrong = Credential::Header {
        name: "X-Api-Key".to_string(),
        value: WRONG_TOKEN.to_string(),
    };
    let error = discover(&server.url, &wrong, WAIT).await.unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_no_secret(&error, WRONG_TOKEN);
}

#[tokio::test]
async fn a_credential_echoed_by_the_server_is_scrubbed_from_errors() {
    async fn echo(req: Request) -> Response {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("cannot use {auth} here"),
        )
            .into_response()
    }
    let cancel = CancellationToken::new();
    let app = axum::Router::new().route("/mcp", axum::routing::any(echo));
    let server = serve(app, cancel).await;

    let error = discover(&server.url, &Credential::Bearer(TOKEN.to_string()), WAIT)
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("[redacted]"), "{error}");
    assert_no_secret(&error, TOKEN);
}

#[tokio::test]
async fn auth_challenges_are_reported_as_refused_credentials() {
    let challenges = [
        (
            401,
            r#"Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource""#,
        ),
        (
            403,
            r#"Bearer error="insufficient_scope", scope="tools:read""#,
        ),
    ];
    for (status, challenge) in challenges {
        let answer = move || async move {
            let code = axum::http::StatusCode::from_u16(status).unwrap();
            (code, [("www-authenticate", challenge)], "no").into_response()
        };
        let app = axum::Router::new().route("/mcp", axum::routing::any(answer));
        let server = serve(app, CancellationToken::new()).await;
        let error = discover(&server.url, &Credential::Bearer(TOKEN.to_string()), WAIT)
            .await
            .unwrap_err();
        assert!(
            matches!(error, DiscoveryError::Unauthorized { status: s, .. } if s == status),
            "{error:?}"
        );
        assert_no_secret(&error, TOKEN);
    }
}

#[tokio::test]
async fn unreachable_and_invalid_endpoints_fail_clearly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://user:pw@{addr}/mcp?key=abc");
    let error = discover(&url, &Credential::Bearer(TOKEN.to_string()), WAIT)
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("http://{addr}/mcp")), "{message}");
    assert!(
        !message.contains("pw@") && !message.contains("key=abc"),
        "{message}"
    );
    assert_no_secret(&error, TOKEN);

    for bad in [
        "ftp://example.com/mcp",
        "example.com/mcp",
        "http:///mcp",
        "",
    ] {
        let error = discover(bad, &Credential::None, WAIT).await.unwrap_err();
        assert!(
            matches!(error, DiscoveryError::InvalidEndpoint { .. }),
            "{bad}: {error:?}"
        );
    }
}

#[tokio::test]
async fn credentials_that_cannot_be_headers_are_refused_without_echo() {
    let url = "http://127.0.0.1:9/mcp";
    let secret = "line-one\nline-two-secret";
    for credential in [
        Credential::Bearer(secret.to_string()),
        Credential::Header {
            name: "X-Api-Key".to_string(),
            value: secret.to_string(),
        },
        Credential::Header {
            name: "bad name".to_string(),
            value: API_KEY.to_string(),
        },
    ] {
        let error = discover(url, &credential, WAIT).await.unwrap_err();
        assert!(
            matches!(error, DiscoveryError::InvalidCredential { .. }),
            "{error:?}"
        );
        assert_no_secret(&error, "line-two-secret");
        assert_no_secret(&error, API_KEY);
    }
}

#[test]
fn credential_debug_hides_values() {
    let bearer = format!("{:?}", Credential::Bearer(TOKEN.to_string()));
    let header = format!(
        "{:?}",
        Credential::Header {
            name: "X-Api-Key".to_string(),
            value: API_KEY.to_string(),
        }
    );
    assert!(!bearer.contains(TOKEN), "{bearer}");
    assert!(
        !header.contains(API_KEY) && header.contains("X-Api-Key"),
        "{header}"
    );
}
