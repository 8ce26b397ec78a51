//! stdio servers run by the gateway: real child processes (the demo server
//! over stdio, `toolgate-stdio-demo`; a shell script; the npm memory
//! server when installed) reached by real MCP clients through the gateway.

use futures::StreamExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;

use crate::common::*;
use crate::stdio_fixture::*;

fn args(v: serde_json::Value) -> rmcp::model::JsonObject {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn rmcp_client_uses_a_stdio_server_through_the_gateway_with_rbac() {
    let mark = "rbac";
    let gw = gateway_with("tracker", &demo_yaml("tracker", mark, "{max_processes: 4}")).await;
    for (token, expected) in [
        (
            ALICE,
            vec!["create_issue", "long_report", "search_issues", "summarize"],
        ),
        (BOB, vec!["search_issues"]),
    ] {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gw.url("tracker")).auth_header(token),
        );
        let client = ().serve(transport).await.expect("initialize through the gateway");
        let mut names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        assert_eq!(names, expected);
        let found = client
            .call_tool(
                CallToolRequestParams::new("search_issues")
                    .with_arguments(args(json!({"query": "x"}))),
            )
            .await
            .unwrap();
        assert!(format!("{found:?}").contains("issue(s) match"), "{found:?}");
        let denied = client
            .call_tool(
                CallToolRequestParams::new("delete_issue").with_arguments(args(json!({"id": 0}))),
            )
            .await;
        assert!(
            format!("{denied:?}").contains("tool not available"),
            "{denied:?}"
        );
        // Progress notifications arrive before the result (an event stream).
        if token == ALICE {
            let report = client
                .call_tool(
                    CallToolRequestParams::new("long_report")
                        .with_arguments(args(json!({"steps": 3}))),
                )
                .await
                .unwrap();
            assert!(!report.is_error.unwrap_or(false), "{report:?}");
        }
        assert_eq!(marked_children(mark), 1, "one process per session");
        client.cancel().await.unwrap();
    }
    eventually("the processes stop with their sessions", || {
        marked_children(mark) == 0
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn five_hundred_sessions_leave_no_process_or_memory_behind() {
    let mark = "five-hundred";
    let gw = gateway_with(
        "tracker",
        &demo_yaml(
            "tracker",
            mark,
            "{max_processes: 16, idle_timeout_secs: 60}",
        ),
    )
    .await;
    let url = gw.url("tracker");
    let one_session = |i: usize| {
        let url = url.clone();
        async move {
            let sid = open_session(&url, ALICE).await;
            let r = post(
                &url,
                Some(ALICE),
                call(1, "create_issue", json!({"title": format!("t{i}")})),
                &in_session(&sid),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(
                r.messages()[0]["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("created #0"),
                "{}",
                r.body
            );
            assert_eq!(delete(&url, ALICE, &sid).await, 200);
        }
    };
    let run = |range: std::ops::Range<usize>| {
        futures::stream::iter(range).for_each_concurrent(8, one_session)
    };
    run(0..100).await;
    eventually("no process after 100 sessions", || {
        marked_children(mark) == 0
    })
    .await;
    let rss_after_warmup = rss_kib();
    run(100..500).await;
    eventually("no process after 500 sessions", || {
        marked_children(mark) == 0
    })
    .await;
    eventually("no zombie", || zombie_children() == 0).await;
    let growth_mib = rss_kib().saturating_sub(rss_after_warmup) / 1024;
    assert!(
        growth_mib < 64,
        "RSS grew {growth_mib} MiB over 400 sessions"
    );
    gw.stop().await;
}

#[tokio::test]
async fn shared_mode_serves_every_session_from_one_process() {
    let mark = "shared";
    let gw = gateway_with("tracker", &demo_yaml("tracker", mark, "{mode: shared}")).await;
    let url = gw.url("tracker");
    let sessions: Vec<String> =
        futures::future::join_all((0..4).map(|_| open_session(&url, ALICE))).await;
    assert_eq!(marked_children(mark), 1, "one process for all sessions");
    // Every session uses JSON-RPC id 1 at once; each gets its own answer.
    let replies = futures::future::join_all(sessions.iter().enumerate().map(|(i, sid)| {
        let url = url.clone();
        async move {
            post(
                &url,
                Some(ALICE),
                call(1, "create_issue", json!({"title": format!("from-{i}")})),
                &in_session(sid),
            )
            .await
        }
    }))
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.body);
        let m = &r.messages()[0];
        assert_eq!(m["id"], 1);
        assert!(
            m["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("\"from-{i}\"")),
            "{m}"
        );
    }
    for sid in &sessions {
        assert_eq!(delete(&url, ALICE, sid).await, 200);
    }
    assert_eq!(
        marked_children(mark),
        1,
        "the shared process outlives sessions"
    );
    gw.stop().await;
    eventually("the shared process stops with the gateway", || {
        marked_children(mark) == 0
    })
    .await;
}

#[tokio::test]
async fn secret_env_reaches_the_process_and_the_gateway_environment_does_not() {
    // A real process answering `initialize` with what its environment holds.
    let script = r#"read -r line; printf '{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"key=%s pkg=%s","version":"1"}}}\n' "$API_KEY" "$CARGO_PKG_NAME"; cat >/dev/null"#;
    let yaml = format!("  - name: envy\n    owner: eng\n    status: approved\n    transport: stdio\n    command: sh\n    args: [\"-c\", {script:?}]\n    env: {{TG_MARK: envy}}\n    secret_env: {{API_KEY: file:stdio-key}}\n");
    let gw = gateway_with("envy", &yaml).await;
    let r = post(&gw.url("envy"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.messages()[0]["result"]["serverInfo"]["name"],
        "key=k3y-from-file pkg="
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_command_that_cannot_start_gets_a_clear_error() {
    let yaml = "  - name: broken\n    owner: eng\n    status: approved\n    transport: stdio\n    command: /nonexistent/toolgate-no-such-server\n";
    let gw = gateway_with("broken", yaml).await;
    let r = post(&gw.url("broken"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["id"], 0, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("broken") && message.contains("cannot start"),
        "{message}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_bridge_answers_only_the_gateway() {
    let gw = gateway_with("tracker", &demo_yaml("tracker", "bridge-secret", "{}")).await;
    let bridges = toolgate_proxy::bridge::Bridges::new(gw.store.clone());
    let snapshot = gw.store.load_full();
    let addr = bridges
        .peer_addr(snapshot.upstream("tracker").unwrap())
        .await
        .unwrap();
    assert!(addr.ip().is_loopback());
    let url = format!("http://{addr}/mcp");
    for secret in [None, Some("guess")] {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body(INIT);
        if let Some(s) = secret {
            req = req.header(toolgate_proxy::bridge::BRIDGE_SECRET_HEADER, s);
        }
        assert_eq!(req.send().await.unwrap().status(), 403);
    }
    assert_eq!(
        marked_children("bridge-secret"),
        0,
        "nothing was started for a stranger"
    );
    let ok = reqwest::Client::new()
        .post(&url)
        .header(
            toolgate_proxy::bridge::BRIDGE_SECRET_HEADER,
            bridges.secret(),
        )
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn progress_before_the_result_arrives_as_an_event_stream() {
    let gw = gateway_with("tracker", &demo_yaml("tracker", "progress", "{}")).await;
    let url = gw.url("tracker");
    let sid = open_session(&url, ALICE).await;
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "long_report", "arguments": {"steps": 3}, "_meta": {"progressToken": "p1"}}});
    let r = post(&url, Some(ALICE), body.to_string(), &in_session(&sid)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers
    );
    let messages = r.messages();
    let progress: Vec<_> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{}", r.body);
    assert_eq!(progress[0]["params"]["progressToken"], "p1");
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 5);
    assert!(
        last["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("after 3 steps"),
        "{last}"
    );
    // Malformed JSON gets a parse error from the gateway before any bridge.
    let r = post(&url, Some(ALICE), "{not json", &in_session(&sid)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn a_server_that_exits_at_once_gets_a_clear_error_each_time() {
    let yaml = "  - name: crashy\n    owner: eng\n    status: approved\n    transport: stdio\n    command: sh\n    args: [\"-c\", \"echo failing on purpose >&2; exit 3\"]\n    env: {TG_MARK: crashy}\n";
    let gw = gateway_with("crashy", yaml).await;
    // The second start waits out a short backoff, then fails the same way.
    for _ in 0..2 {
        let r = post(&gw.url("crashy"), Some(ALICE), INIT, &[]).await;
        assert_eq!(r.status, 502, "{}", r.body);
        assert_eq!(r.json()["id"], 0);
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("crashy") && message.contains("stopped before answering"),
            "{message}"
        );
    }
    eventually("no process left", || marked_children("crashy") == 0).await;
    gw.stop().await;
}
