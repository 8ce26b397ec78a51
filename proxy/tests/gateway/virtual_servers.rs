//! Virtual servers end to end: an rmcp client on a virtual endpoint built
//! from three real rmcp servers; what it sees, what it may call, where the
//! calls land; upstream restart; a second replica; tools/list_changed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;
use tokio::net::TcpListener;
use toolgate_proxy::server;

use crate::common::*;

fn servers_yaml(demo: SocketAddr, wiki: SocketAddr, tracker: SocketAddr) -> String {
    let tools =
        "[{name: search_issues}, {name: create_issue}, {name: delete_issue}, {name: long_report}]";
    let mut out = String::from("servers:\n");
    for (name, addr) in [("demo", demo), ("wiki", wiki), ("tracker", tracker)] {
        out.push_str(&format!(
            "  - {{name: {name}, owner: eng, status: approved, endpoint: \"http://{addr}/mcp\", auth: {{type: bearer, secret: file:upstream-token}}, tools: {tools}}}\n"
        ));
    }
    out
}

const DESK: &str = r#"
virtual_servers:
  - name: desk
    description: Support desk tools.
    tools:
      - {server: demo, tools: [search_issues], rename: {search_issues: find_tickets}}
      - {server: wiki, tools: [long_report]}
      - {server: tracker, tools: [create_issue, delete_issue]}
    access: {teams: [support]}
policies:
  - name: eng
    subjects: {teams: [eng]}
    allow: [{server: demo}]
  - name: desk-no-delete
    subjects: {teams: [support]}
    deny: [{server: desk, tools: [delete_issue]}]
"#;

struct Setup {
    demo: Upstream,
    wiki: Upstream,
    tracker: Upstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let demo = Upstream::start(false).await;
    let wiki = Upstream::start(true).await;
    let tracker = Upstream::start(false).await;
    let gw = Gateway::start(demo.addr).await;
    gw.edit(
        "servers.yaml",
        &servers_yaml(demo.addr, wiki.addr, tracker.addr),
    )
    .await;
    gw.edit("policies.yaml", DESK).await;
    Setup {
        demo,
        wiki,
        tracker,
        gw,
    }
}

fn client_transport(url: String, token: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(token),
    )
}

fn args(v: serde_json::Value) -> rmcp::model::JsonObject {
    v.as_object().unwrap().clone()
}

fn tool_calls(up: &Upstream) -> usize {
    up.requests().iter().filter(|s| s.method == "POST").count()
}

#[tokio::test]
async fn an_sdk_client_sees_and_calls_exactly_the_curated_tools() {
    let s = setup().await;
    let client =
        ().serve(client_transport(s.gw.url("desk"), BOB))
            .await
            .expect("initialize on the virtual server");
    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "desk");
    assert_eq!(info.instructions.as_deref(), Some("Support desk tools."));
    // Nothing reached any upstream yet: the gateway answered initialize.
    assert_eq!(s.tracker.connection_count(), 0);

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    // Renamed; the denied delete_issue invisible.
    assert_eq!(names, ["create_issue", "find_tickets", "long_report"]);
    assert_eq!(
        s.tracker.connection_count(),
        0,
        "tools/list is answered from the catalog"
    );

    let found = client
        .call_tool(
            CallToolRequestParams::new("find_tickets")
                .with_arguments(args(json!({"query": "Login"}))),
        )
        .await
        .unwrap();
    assert!(
        format!("{found:?}").contains("1 issue(s) match"),
        "{found:?}"
    );

    // SSE with progress notifications from the wiki server (JSON upstream here).
    let report = client
        .call_tool(
            CallToolRequestParams::new("long_report").with_arguments(args(json!({"steps": 3}))),
        )
        .await
        .unwrap();
    assert!(
        format!("{report:?}").to_lowercase().contains("report"),
        "{report:?}"
    );

    let created = client
        .call_tool(
            CallToolRequestParams::new("create_issue")
                .with_arguments(args(json!({"title": "via desk"}))),
        )
        .await
        .unwrap();
    assert!(format!("{created:?}").contains("via desk"), "{created:?}");

    // Denied by policy, and the original name is not callable either.
    let before = tool_calls(&s.tracker) + tool_calls(&s.demo);
    for name in ["delete_issue", "search_issues", "no_such_tool"] {
        let refused = client
            .call_tool(CallToolRequestParams::new(name).with_arguments(args(json!({"id": 0}))))
            .await;
        assert!(
            format!("{refused:?}").contains("tool not available"),
            "{name}: {refused:?}"
        );
    }
    assert_eq!(
        tool_calls(&s.tracker) + tool_calls(&s.demo),
        before,
        "refused calls reach no server"
    );

    // Each upstream got the gateway's credential, never the agent's token,
    // and its own upstream session.
    for up in [&s.demo, &s.wiki, &s.tracker] {
        let seen = up.requests();
        assert!(!seen.is_empty());
        for r in &seen {
            assert_eq!(
                r.headers.get("authorization").unwrap(),
                &format!("Bearer {UPSTREAM_SECRET}")
            );
        }
    }
    client.cancel().await.unwrap();
    s.gw.stop().await;
}

#[tokio::test]
async fn callers_off_the_access_list_find_no_server() {
    let s = setup().await;
    // Alice (eng) has demo but not the desk.
    let reply = post(&s.gw.url("desk"), Some(ALICE), INIT, &[]).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = post(&s.gw.url("desk"), None, INIT, &[]).await;
    assert_eq!(reply.status, 401);
    // A session id of the desk is not valid for another caller.
    let sid = open_session(&s.gw.url("desk"), BOB).await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let reply = post(&s.gw.url("desk"), Some(BOB), list, &in_session(&sid)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stolen = post(&s.gw.url("demo"), Some(ALICE), list, &in_session(&sid)).await;
    assert_eq!(stolen.status, 404, "{}", stolen.body);
    s.gw.stop().await;
}

#[tokio::test]
async fn an_upstream_restarted_mid_session_is_reopened() {
    let s = setup().await;
    let url = s.gw.url("desk");
    let sid = open_session(&url, BOB).await;
    let find = call(1, "find_tickets", json!({"query": "Login"}));
    let first = post(&url, Some(BOB), find.clone(), &in_session(&sid)).await;
    assert!(first.body.contains("1 issue(s) match"), "{}", first.body);

    // The demo server restarts on the same port and forgets every session.
    let addr = s.demo.addr;
    drop(s.demo);
    let restarted = restart_on(addr).await;

    // The restart is invisible: the call is sent again in a new session.
    for id in 2..=3 {
        let reply = post(
            &url,
            Some(BOB),
            call(id, "find_tickets", json!({"query": "Login"})),
            &in_session(&sid),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains("1 issue(s) match"), "{}", reply.body);
    }
    assert!(restarted.requests().iter().any(|r| r.method == "POST"));
    s.gw.stop().await;
}

async fn restart_on(addr: SocketAddr) -> Upstream {
    for _ in 0..100 {
        if let Some(up) = Upstream::start_on(addr, false).await {
            return up;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not restart the upstream on {addr}");
}

#[tokio::test]
async fn a_session_moves_to_another_replica() {
    let s = setup().await;
    write(s.gw.dir.path(), "session-secret", "shared-by-both-replicas");
    s.gw.edit(
        "gateway.yaml",
        &format!("gateway:\n  max_body_bytes: {BODY_CAP}\n  session_secret: file:session-secret\n"),
    )
    .await;
    // A second replica on the same snapshots, its own process state.
    let store: Arc<ArcSwap<catalog::Snapshot>> = s.gw.store.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replica = server::start_with(listener, store, server::GatewayOptions::default()).unwrap();
    let first = s.gw.url("desk");
    let second = format!("http://{}/mcp/desk", replica.addr);

    let sid = open_session(&first, BOB).await;
    let a = post(
        &first,
        Some(BOB),
        call(1, "find_tickets", json!({"query": "Login"})),
        &in_session(&sid),
    )
    .await;
    assert!(a.body.contains("1 issue(s) match"), "{}", a.body);
    let b = post(
        &second,
        Some(BOB),
        call(2, "find_tickets", json!({"query": "Login"})),
        &in_session(&sid),
    )
    .await;
    assert!(b.body.contains("1 issue(s) match"), "{}", b.body);
    let list = post(
        &second,
        Some(BOB),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
        &in_session(&sid),
    )
    .await;
    assert_eq!(list.json()["result"]["tools"].as_array().unwrap().len(), 3);
    replica.stop().await;
    s.gw.stop().await;
}

#[tokio::test]
async fn agents_hear_when_their_tool_list_changes() {
    let s = setup().await;
    let url = s.gw.url("desk");
    let sid = open_session(&url, BOB).await;
    let mut stream = reqwest::Client::new()
        .get(&url)
        .bearer_auth(BOB)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Lift the deny: delete_issue joins Bob's list.
    s.gw.edit(
        "policies.yaml",
        &DESK.replace("tools: [delete_issue]", "tools: [nothing_*]"),
    )
    .await;
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("a notification within 5 s")
        .unwrap()
        .expect("stream open");
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.contains("notifications/tools/list_changed"), "{text}");
    let list = post(
        &url,
        Some(BOB),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
        &in_session(&sid),
    )
    .await;
    assert_eq!(list.json()["result"]["tools"].as_array().unwrap().len(), 4);

    // Off the access list: the stream ends.
    s.gw.edit(
        "policies.yaml",
        &DESK.replace("teams: [support]}", "teams: [eng]}"),
    )
    .await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ends when access ends");
    s.gw.stop().await;
}

#[tokio::test]
async fn prompts_and_resources_of_members_are_exposed_too() {
    let s = setup().await;
    s.gw.edit(
        "virtual.yaml",
        r#"
virtual_servers:
  - name: kb
    naming: prefixed
    tools:
      - {server: demo, tools: [], prompts: [triage], resources: ["issues://*"]}
      - {server: wiki, tools: [], prompts: ["*"], rename: {triage: wiki_triage}}
    access: {teams: [support]}
"#,
    )
    .await;
    let client =
        ().serve(client_transport(s.gw.url("kb"), BOB))
            .await
            .expect("initialize on the virtual server");
    let caps = &client.peer_info().unwrap().capabilities;
    assert!(
        caps.prompts.is_some() && caps.resources.is_some(),
        "{caps:?}"
    );
    assert!(client.list_all_tools().await.unwrap().is_empty());

    let prompts: Vec<String> = client
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(prompts, ["demo_triage", "wiki_triage"]);
    let wiki_posts = tool_calls(&s.wiki);
    let got = client
        .get_prompt(
            serde_json::from_value(json!({"name": "wiki_triage", "arguments": {"issue": "42"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        format!("{got:?}").contains(r#"Triage issue \"42\""#),
        "{got:?}"
    );
    assert!(tool_calls(&s.wiki) > wiki_posts, "the wiki server answered");
    let unknown = client
        .get_prompt(serde_json::from_value(json!({"name": "triage"})).unwrap())
        .await;
    assert!(unknown.is_err(), "only exposed names: {unknown:?}");

    let resources: Vec<String> = client
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(resources, ["issues://all"], "the wiki exposes no resources");
    let read = client
        .read_resource(serde_json::from_value(json!({"uri": "issues://all"})).unwrap())
        .await
        .unwrap();
    assert!(
        format!("{read:?}").contains("Login page is slow"),
        "{read:?}"
    );
    let other = client
        .read_resource(serde_json::from_value(json!({"uri": "file:///etc/passwd"})).unwrap())
        .await;
    assert!(other.is_err(), "{other:?}");
    client.cancel().await.unwrap();
    s.gw.stop().await;
}

#[tokio::test]
async fn a_virtual_server_spans_http_and_stdio_servers() {
    use crate::stdio_fixture::{demo_yaml, eventually, marked_children};
    let http = Upstream::start(true).await;
    let gw = Gateway::start(http.addr).await;
    let mark = "virtual-mixed";
    gw.edit(
        "servers.yaml",
        &format!(
            "servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://{}/mcp\n    auth: {{type: bearer, secret: file:upstream-token}}\n    tools: [{{name: search_issues}}, {{name: create_issue}}]\n{}",
            http.addr,
            demo_yaml("local", mark, "{mode: per-session}")
        ),
    )
    .await;
    gw.edit(
        "virtual.yaml",
        "virtual_servers:\n  - {name: mixed, naming: prefixed, tools: [{server: demo, tools: [search_issues]}, {server: local, tools: [search_issues, create_issue]}], access: {teams: [support]}}\n",
    )
    .await;
    let client =
        ().serve(client_transport(gw.url("mixed"), BOB))
            .await
            .expect("initialize on the virtual server");
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "demo_search_issues",
            "local_create_issue",
            "local_search_issues"
        ]
    );
    assert_eq!(marked_children(mark), 0, "no process before the first call");
    let text = |r: rmcp::model::CallToolResult| format!("{r:?}");
    let created = client
        .call_tool(
            CallToolRequestParams::new("local_create_issue")
                .with_arguments(args(json!({"title": "from stdio"}))),
        )
        .await
        .unwrap();
    assert!(text(created).contains("from stdio"));
    // The same process (one per agent session) remembers it.
    let found = client
        .call_tool(
            CallToolRequestParams::new("local_search_issues")
                .with_arguments(args(json!({"query": "from stdio"}))),
        )
        .await
        .unwrap();
    assert!(text(found).contains("1 issue(s) match"));
    let remote = client
        .call_tool(
            CallToolRequestParams::new("demo_search_issues")
                .with_arguments(args(json!({"query": "Login"}))),
        )
        .await
        .unwrap();
    assert!(text(remote).contains("1 issue(s) match"));
    assert_eq!(marked_children(mark), 1);
    // Ending the agent's session ends the upstream sessions: the process goes.
    client.cancel().await.unwrap();
    eventually("the stdio process ends with the session", || {
        marked_children(mark) == 0
    })
    .await;
    gw.stop().await;
}
