//! The registry API and config edits: what is managed, and bad input refused whole.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_applied() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    let (status, _) = plane.api_as(None, "GET", "/v1/servers", None).await;
    assert_eq!(status, 401);
    let (status, _) = plane
        .api_as(
            Some(PROXY),
            "POST",
            "/v1/principals",
            Some(json!({"name": "x", "kind": "user"})),
        )
        .await;
    assert_eq!(status, 401, "a proxy token is not an admin token");

    let (status, body) = plane
        .api(
            "POST",
            "/v1/principals",
            Some(json!({"name": "bob", "kind": "robot"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("kind")),
        "{body}"
    );
    let (status, body) = plane
        .api(
            "POST",
            "/v1/principals",
            Some(json!({"name": "bob", "kind": "user", "teams": ["ghosts"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown team \"ghosts\""),
        "{body}"
    );
    let (status, body) = plane
        .api(
            "POST",
            "/v1/servers",
            Some(json!({"name": "s", "owner": "platform", "status": "approved"})),
        )
        .await;
    assert_eq!(
        (
            status,
            body["error"]["message"]
                .as_str()
                .map(|m| m.contains("endpoint"))
        ),
        (400, Some(true)),
        "{body}"
    );
    let (status, body) = plane.api("POST", "/v1/servers", Some(json!({"name": "s", "owner": "nobody", "status": "pending", "endpoint": "http://127.0.0.1:1/mcp"}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store: servers[0].owner: unknown team"),
        "{body}"
    );

    let servers = plane.api("GET", "/v1/servers", None).await.1;
    assert_eq!(
        servers.as_array().unwrap().len(),
        1,
        "nothing half-applied: {servers}"
    );
    let principals = plane.api("GET", "/v1/principals", None).await.1;
    assert_eq!(principals.as_array().unwrap().len(), 1);
    let changes = plane.api("GET", "/v1/changes", None).await.1;
    let by_operators: Vec<_> = changes
        .as_array()
        .unwrap()
        .iter()
        // The control plane's own first-start setup: the session key.
        .filter(|c| c["actor"] != "toolgate")
        .collect();
    assert!(
        by_operators.is_empty(),
        "refused mutations are not recorded: {changes}"
    );

    // A valid mutation is recorded with its actor.
    let (status, _) = plane
        .api(
            "POST",
            "/v1/principals",
            Some(json!({"name": "bob", "kind": "agent", "teams": ["eng"]})),
        )
        .await;
    assert_eq!(status, 201);
    let changes = plane.api("GET", "/v1/changes", None).await.1;
    assert_eq!(changes[0]["actor"], "ops");
    assert_eq!(changes[0]["action"], "principal.create");
    let doc: Value = reqwest::get(plane.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/principals/{name}/tokens"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_are_published_and_invalid_ones_refused() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    let version = plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
        .as_u64()
        .unwrap();
    write(
        &plane.config(),
        "teams.yaml",
        "teams: [{name: eng}, {name: platform}, {name: support}]\n",
    );
    eventually("the edit is published", || async {
        plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
            .as_u64()
            .unwrap()
            > version
    })
    .await;
    let version = plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
        .as_u64()
        .unwrap();
    write(&plane.config(), "teams.yaml", "teams: [{name: eng}]\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plane.api("GET", "/v1/snapshot/version", None).await.1["version"]
            .as_u64()
            .unwrap(),
        version,
        "an invalid edit is not published"
    );
    assert_eq!(
        plane
            .api("GET", "/v1/teams", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_policies_and_registered_servers_are_managed_through_the_api() {
    let upstream = Upstream::start(true).await;
    let plane = Plane::new(upstream.addr).await;
    let (status, body) = plane
        .api(
            "POST",
            "/v1/teams",
            Some(json!({"name": "data", "description": "Data team"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        plane
            .api("POST", "/v1/teams", Some(json!({"name": "data"})))
            .await
            .0,
        409
    );
    let policy = json!({"name": "data-search", "subjects": {"teams": ["data"]}, "allow": [{"server": "demo", "tools": ["search_*"]}]});
    assert_eq!(plane.api("POST", "/v1/policies", Some(policy)).await.0, 200);
    let bad =
        json!({"name": "p2", "subjects": {"teams": ["nobody"]}, "allow": [{"server": "demo"}]});
    let (status, body) = plane.api("POST", "/v1/policies", Some(bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store: policies[1].subjects.teams[0]: unknown team"),
        "{body}"
    );
    let teams = plane.api("GET", "/v1/teams", None).await.1;
    assert!(teams
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "data"));
    let policies = plane.api("GET", "/v1/policies", None).await.1;
    assert_eq!(policies.as_array().unwrap().len(), 2, "{policies}");

    let server = json!({"name": "tickets", "owner": "data", "status": "pending", "endpoint": "http://127.0.0.1:1/mcp"});
    assert_eq!(plane.api("POST", "/v1/servers", Some(server)).await.0, 201);
    let moved = json!({"name": "tickets", "owner": "data", "status": "pending", "endpoint": "http://127.0.0.1:2/mcp"});
    assert_eq!(
        plane
            .api("PUT", "/v1/servers/tickets", Some(moved.clone()))
            .await
            .0,
        200
    );
    assert_eq!(
        plane.api("GET", "/v1/servers/tickets", None).await.1["endpoint"],
        "http://127.0.0.1:2/mcp"
    );
    let (status, body) = plane.api("PUT", "/v1/servers/other", Some(moved)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("name"))
    );
    let config_server = json!({"name": "demo", "owner": "platform", "status": "pending", "endpoint": "http://127.0.0.1:3/mcp"});
    assert_eq!(
        plane
            .api("PUT", "/v1/servers/demo", Some(config_server))
            .await
            .0,
        409,
        "config/ servers are edited in config/"
    );
}
