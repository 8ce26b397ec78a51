//! Authentication, default deny, credential injection, origin checks.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn denied_call_never_reaches_the_upstream() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        call(7, "delete_issue", json!({"id": 1})),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], 7);
    assert_eq!(r.json()["error"]["code"], -32602);
    // Same answer for a tool that does not exist at all under a denied pattern.
    let r2 = post(
        &gw.url("demo"),
        Some(ALICE),
        call(7, "delete_everything", json!({})),
        &[],
    )
    .await;
    assert_eq!(
        r2.json()["error"]["message"],
        "tool not available: delete_everything"
    );
    // A denied element poisons its whole batch.
    let batch = format!(
        "[{},{}]",
        call(1, "search_issues", json!({"query": "x"})),
        call(2, "delete_issue", json!({"id": 1}))
    );
    let r3 = post(&gw.url("demo"), Some(ALICE), batch, &[]).await;
    let replies = r3.json();
    assert_eq!(replies.as_array().unwrap().len(), 2, "{replies}");
    assert_eq!(replies[0]["id"], 1);
    assert_eq!(replies[1]["error"]["code"], -32602);
    assert_eq!(
        upstream.connection_count(),
        0,
        "no connection may reach the upstream"
    );
    assert!(upstream.requests().is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn credential_injected_and_gateway_token_never_forwarded() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        call(3, "search_issues", json!({"query": "Login"})),
        &[
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "2025-06-18"),
            ("cookie", "gw_session=abc"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 issue(s) match"), "{}", r.body);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(
            s.headers["authorization"],
            format!("Bearer {UPSTREAM_SECRET}")
        );
        assert_eq!(s.headers["host"], upstream.addr.to_string());
        for (name, value) in &s.headers {
            let v = value.to_str().unwrap_or("");
            assert!(
                !v.contains(ALICE),
                "gateway token leaked upstream in {name}"
            );
        }
        assert!(s.headers.get("cookie").is_none());
    }
    assert!(
        seen[2].headers.get("x-hop").is_none(),
        "Connection-listed headers are hop-by-hop"
    );
    // The upstream sees its own session id; the agent holds it sealed to its token.
    assert_eq!(
        seen[2].headers["mcp-session-id"],
        sid.rsplit_once('.').unwrap().0
    );
    gw.stop().await;
}

#[tokio::test]
async fn missing_unknown_and_revoked_tokens_get_401_with_a_challenge() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    for token in [None, Some("tg_unknown"), Some("")] {
        let r = post(&url, token, INIT, &[]).await;
        assert_eq!(r.status, 401, "{token:?}");
        assert!(r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(r.json()["error"]["code"], -32001);
    }
    let r = reqwest::Client::new()
        .post(&url)
        .header("authorization", format!("Basic {ALICE}"))
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_ungranted_and_unapproved_servers_look_the_same() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    // bob has no grant on a second server; nobody may use a pending one.
    gw.edit(
        "servers.yaml",
        &format!("servers:\n  - {{name: demo, owner: eng, status: approved, endpoint: 'http://{0}/mcp', auth: {{type: bearer, secret: file:upstream-token}}}}\n  - {{name: other, owner: eng, status: approved, endpoint: 'http://{0}/mcp'}}\n  - {{name: pending, owner: eng, status: pending, endpoint: 'http://{0}/mcp'}}\n", upstream.addr),
    )
    .await;
    let a = post(&gw.url("other"), Some(BOB), INIT, &[]).await;
    let b = post(&gw.url("nope"), Some(BOB), INIT, &[]).await;
    let c = post(&gw.url("pending"), Some(ALICE), INIT, &[]).await;
    let d = post(
        &format!("http://{}/elsewhere", gw.addr),
        Some(ALICE),
        INIT,
        &[],
    )
    .await;
    for r in [&a, &b, &c, &d] {
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.body, a.body);
    }
    assert_eq!(upstream.connection_count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn browser_origins_must_be_allowed() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        INIT,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        INIT,
        &[("origin", "http://localhost:6274")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The gateway checked the browser origin; the upstream sees the gateway as its client.
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("origin").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn upstream_rejecting_the_gateway_credential_is_a_502() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    write(gw.dir.path(), "upstream-token", "stale-secret");
    // Touch a YAML file so the new secret is compiled.
    gw.edit(
        "teams.yaml",
        "teams: [{name: eng}, {name: support}, {name: extra}]\n",
    )
    .await;
    let r = post(&gw.url("demo"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 502);
    assert!(r.headers.get("www-authenticate").is_none());
    // Rotation: the next request carries the new secret.
    write(gw.dir.path(), "upstream-token", UPSTREAM_SECRET);
    gw.edit("teams.yaml", "teams: [{name: eng}, {name: support}]\n")
        .await;
    let r = post(&gw.url("demo"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn foreign_host_names_are_refused_before_anything_else() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    // A DNS-rebinding page addresses the gateway by its own name.
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        INIT,
        &[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
        ],
    )
    .await;
    assert_eq!(r.status, 421, "{}", r.body);
    // The gateway's own loopback origin is fine.
    let own = format!("http://{}", gw.addr);
    let r = post(
        &gw.url("demo"),
        Some(ALICE),
        INIT,
        &[("origin", own.as_str())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(&gw.url("demo"), Some(ALICE), INIT, &[("host", "LOCALHOST")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(upstream.connection_count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn smuggling_vectors_are_refused_before_the_upstream() {
    let upstream = Upstream::start(true).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    // UTF-7: body-parser would decode "+AGQ-elete_issue" as "delete_issue".
    let utf7 = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"+AGQ-elete_issue","arguments":{"id":0}}}"#;
    for ct in [
        "application/json; charset=utf-7",
        "application/json; charset=utf-16",
        "application/json-seq",
        "text/json",
    ] {
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(BOB)
            .header("content-type", ct)
            .body(utf7)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ct}");
    }
    // A body on GET or DELETE would reach the upstream unchecked.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = reqwest::Client::new()
            .request(method.clone(), &url)
            .bearer_auth(BOB)
            .body(call(4, "delete_issue", json!({"id": 0})))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{method}");
    }
    assert_eq!(upstream.connection_count(), 0);
    // Allowed requests go up with the canonical content type and no agent query string.
    let r = post(
        &format!("{url}?api_key=attacker"),
        Some(ALICE),
        INIT,
        &[("x-forwarded-for", "6.6.6.6")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = upstream.requests();
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert!(seen[0].headers.get("x-forwarded-for").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn tool_lists_are_filtered_whatever_the_id_spelling() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let sid = open_session(&gw.url("demo"), BOB).await;
    let h = in_session(&sid);
    for id in ["2.0", "2e0", "-0", "9007199254740993"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
        let r = post(&gw.url("demo"), Some(BOB), body, &h).await;
        assert!(r.body.contains("search_issues"), "{id}: {}", r.body);
        assert!(
            !r.body.contains("delete_issue"),
            "{id}: unfiltered list: {}",
            r.body
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_session_belongs_to_the_token_that_opened_it() {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    let url = gw.url("demo");
    let alices = open_session(&url, ALICE).await;
    let hs = in_session(&alices);
    // bob learned alice's session id: he can neither use it nor end it.
    let r = post(
        &url,
        Some(BOB),
        call(1, "search_issues", json!({"query": "x"})),
        &hs,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let del = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(BOB)
        .header("mcp-session-id", &alices)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
    // The upstream's raw id is not accepted either.
    let raw = alices.rsplit_once('.').unwrap().0.to_string();
    let r = post(
        &url,
        Some(ALICE),
        call(2, "search_issues", json!({"query": "x"})),
        &[("mcp-session-id", raw.as_str())],
    )
    .await;
    assert_eq!(r.status, 404);
    // alice's own requests work, and the upstream sees its own id.
    let r = post(
        &url,
        Some(ALICE),
        call(3, "search_issues", json!({"query": "Login"})),
        &hs,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        upstream.requests().last().unwrap().headers["mcp-session-id"],
        raw.as_str()
    );
    gw.stop().await;
}
