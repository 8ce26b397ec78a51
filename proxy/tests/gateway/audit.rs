//! The audit trail from the proxy: one record per tool call (allowed, denied,
//! failed), redaction, trace ids, the spool, and what a full spool does.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use catalog::audit::{AuditRecord, Decision, Outcome};
use serde_json::json;
use toolgate_proxy::audit::{AuditOptions, AuditTasks, Auditor, Sink};
use toolgate_proxy::server::GatewayOptions;

use crate::common::*;

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn audited(spool: &Path, sink: Sink, max_spool_bytes: u64) -> (Auditor, AuditTasks) {
    Auditor::start(AuditOptions {
        spool_dir: spool.to_path_buf(),
        max_spool_bytes,
        sink,
        gateway: "gw-test".into(),
        flush_interval: toolgate_proxy::audit::DEFAULT_FLUSH_INTERVAL,
    })
    .unwrap()
}

/// A gateway over the common fixture config that audits through `auditor`.
async fn audited_gateway(up: &Upstream, auditor: Auditor) -> Gateway {
    let options = GatewayOptions {
        auditor: Some(auditor),
        metrics: None,
    };
    Gateway::start_with(up.addr, options).await
}

/// A control plane nobody listens on: records stay in the spool.
fn unreachable_control_plane() -> Sink {
    Sink::ControlPlane {
        url: "http://127.0.0.1:1".into(),
        token: "proxy-token".into(),
    }
}

/// Reads the delivered records until there are `n` (or panics after 10 s).
async fn wait_for_records(file: &Path, n: usize) -> Vec<AuditRecord> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let records: Vec<AuditRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is a record"))
            .collect();
        if records.len() >= n {
            assert_eq!(records.len(), n, "more records than expected: {text}");
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {n} records in {}, got: {}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

fn by_tool<'a>(records: &'a [AuditRecord], tool: &str) -> &'a AuditRecord {
    records
        .iter()
        .find(|r| r.tool.as_deref() == Some(tool))
        .unwrap_or_else(|| panic!("no record for {tool}: {records:#?}"))
}

#[tokio::test]
async fn every_tool_call_is_recorded_with_who_what_and_how_it_ended() {
    let up = Upstream::start(true).await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.jsonl");
    let (auditor, tasks) = audited(&tmp.path().join("spool"), Sink::File(log.clone()), 1 << 30);
    let gw = audited_gateway(&up, auditor).await;
    // A second server nobody listens on, for an upstream failure.
    let servers = std::fs::read_to_string(gw.dir.path().join("servers.yaml")).unwrap();
    gw.edit(
        "servers.yaml",
        &format!("{servers}  - name: down\n    owner: eng\n    status: approved\n    endpoint: http://127.0.0.1:1/mcp\n"),
    )
    .await;
    gw.edit(
        "policies.yaml",
        &POLICIES.replace(
            "allow: [{server: demo}]",
            "allow: [{server: demo}, {server: down}]",
        ),
    )
    .await;
    let url = gw.url("demo");
    let sid = open_session(&url, ALICE).await;
    let mut headers = in_session(&sid).to_vec();
    headers.push(("traceparent", TRACE));

    let ok = post(
        &url,
        Some(ALICE),
        call(
            1,
            "search_issues",
            json!({"query": "crash", "api_token": "s3cret-value"}),
        ),
        &headers,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let tool_error = post(
        &url,
        Some(ALICE),
        call(2, "create_issue", json!({"title": " "})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(
        tool_error.messages()[0]["result"]["isError"],
        json!(true),
        "{}",
        tool_error.body
    );
    let rpc_error = post(
        &url,
        Some(ALICE),
        call(3, "no_such_tool", json!({})),
        &in_session(&sid),
    )
    .await;
    assert!(
        rpc_error.messages()[0]["error"]["code"].is_i64(),
        "{}",
        rpc_error.body
    );
    let denied = post(
        &url,
        Some(ALICE),
        call(4, "delete_issue", json!({"id": 1})),
        &in_session(&sid),
    )
    .await;
    assert!(
        denied.body.contains("tool not available"),
        "{}",
        denied.body
    );
    let bob = post(
        &url,
        Some(BOB),
        call(5, "create_issue", json!({"title": "x", "password": "p"})),
        &[],
    )
    .await;
    assert!(bob.body.contains("tool not available"), "{}", bob.body);
    let stranger = post(
        &url,
        Some("tg_nobody"),
        call(6, "search_issues", json!({"query": "q"})),
        &[],
    )
    .await;
    assert_eq!(stranger.status, 401);
    let down = post(
        &gw.url("down"),
        Some(ALICE),
        call(7, "search_issues", json!({"query": "q"})),
        &[],
    )
    .await;
    assert_eq!(down.status, 502, "{}", down.body);

    // initialize and notifications are not tool calls: not recorded by default.
    let records = wait_for_records(&log, 7).await;
    let ids: std::collections::HashSet<_> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 7, "ids are unique");
    let hex =
        |id: &str| id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    assert!(
        ids.iter().all(|id| hex(id)),
        "ids are 32 lower-case hex digits: {ids:?}"
    );

    let r = by_tool(&records, "search_issues");
    assert_eq!(r.request_id, Some(json!(1)));
    assert_eq!(r.principal.as_deref(), Some("alice"));
    assert_eq!(r.principal_kind.as_deref(), Some("user"));
    assert_eq!(r.agent.as_deref(), Some("laptop"));
    assert_eq!(r.teams, vec!["eng".to_string()]);
    let client = r.client.as_ref().expect("clientInfo from initialize");
    assert_eq!(
        (client.name.as_str(), client.version.as_deref()),
        ("raw", Some("1"))
    );
    assert_eq!(
        (r.endpoint.as_str(), r.server.as_deref()),
        ("/mcp/demo", Some("demo"))
    );
    assert_eq!(r.method.as_deref(), Some("tools/call"));
    assert_eq!(
        (r.decision, r.outcome, r.http_status),
        (Decision::Allow, Outcome::Success, 200)
    );
    assert_eq!(
        r.arguments,
        Some(json!({"query": "crash", "api_token": "[REDACTED]"}))
    );
    assert_eq!(r.session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(
        r.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(r.gateway, "gw-test");
    assert!(
        r.latency_us > 0 && r.request_bytes > 0 && r.response_bytes > 0,
        "{r:?}"
    );
    assert!(r.ts_ms > 1_700_000_000_000);

    // The upstream saw the same trace, with the gateway's span as parent.
    let traced = up
        .requests()
        .into_iter()
        .filter_map(|s| {
            s.headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_string())
        })
        .find(|t| t.contains("4bf92f3577b34da6a3ce929d0e0e4736"))
        .expect("traceparent propagated");
    assert!(!traced.contains("00f067aa0ba902b7"), "{traced}");

    let r = records
        .iter()
        .find(|r| r.request_id == Some(json!(2)))
        .unwrap();
    assert_eq!(r.outcome, Outcome::ToolError);
    let r = records
        .iter()
        .find(|r| r.request_id == Some(json!(3)))
        .unwrap();
    assert_eq!((r.outcome, r.error_code), (Outcome::Error, Some(-32602)));
    let r = by_tool(&records, "delete_issue");
    assert_eq!((r.decision, r.outcome), (Decision::Deny, Outcome::Refused));
    assert_eq!(
        r.reason.as_deref(),
        Some("tool not allowed for this principal")
    );
    let r = records
        .iter()
        .find(|r| r.request_id == Some(json!(5)))
        .unwrap();
    assert_eq!(
        (r.principal.as_deref(), r.agent.as_deref()),
        (Some("bob"), Some("bot"))
    );
    assert_eq!(r.decision, Decision::Deny);
    assert_eq!(
        r.arguments,
        Some(json!({"title": "x", "password": "[REDACTED]"}))
    );
    let r = records
        .iter()
        .find(|r| r.http_status == 401)
        .expect("unauthenticated attempt recorded");
    assert_eq!((r.principal.as_ref(), r.decision), (None, Decision::Deny));
    assert_eq!(r.endpoint, "/mcp/demo");
    let r = records
        .iter()
        .find(|r| r.server.as_deref() == Some("down"))
        .unwrap();
    assert_eq!((r.outcome, r.http_status), (Outcome::UpstreamError, 502));

    // No credential of any kind in the trail.
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [ALICE, BOB, UPSTREAM_SECRET, "s3cret-value", "\"p\""] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the audit trail"
        );
    }
    gw.stop().await;
    tasks.shutdown().await;
}

#[tokio::test]
async fn redaction_policy_is_per_server_and_excerpts_are_opt_in() {
    let up = Upstream::start(false).await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.jsonl");
    let (auditor, tasks) = audited(&tmp.path().join("spool"), Sink::File(log.clone()), 1 << 30);
    let gw = audited_gateway(&up, auditor).await;
    let servers = std::fs::read_to_string(gw.dir.path().join("servers.yaml")).unwrap();
    let url = gw.url("demo");
    let sid = open_session(&url, ALICE).await;
    let mut expected = 0;
    for (policy, check) in [
        ("{arguments: keep}", json!({"query": "abc", "token": "t1"})),
        ("{arguments: hash}", json!(null)),
        ("{arguments: drop}", json!(null)),
        (
            "{redact_keys: [query], response_excerpt: 12}",
            json!({"query": "[REDACTED]", "token": "[REDACTED]"}),
        ),
    ] {
        gw.edit("servers.yaml", &format!("{servers}    audit: {policy}\n"))
            .await;
        // SSE responses this time (the upstream streams its answers).
        let r = post(
            &url,
            Some(ALICE),
            call(10, "search_issues", json!({"query": "abc", "token": "t1"})),
            &in_session(&sid),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        expected += 1;
        let records = wait_for_records(&log, expected).await;
        let rec = records.last().unwrap();
        assert_eq!(rec.outcome, Outcome::Success, "{policy}: {rec:?}");
        match policy {
            "{arguments: hash}" => {
                let digest = rec.arguments.as_ref().unwrap()["sha256"].as_str().unwrap();
                assert_eq!(digest.len(), 64);
            }
            "{arguments: drop}" => assert_eq!(rec.arguments, None),
            _ => assert_eq!(rec.arguments.as_ref(), Some(&check), "{policy}"),
        }
        if policy.contains("excerpt") {
            assert_eq!(rec.response_excerpt.as_deref(), Some("0 issue(s) m"));
        } else {
            assert_eq!(rec.response_excerpt, None);
        }
    }
    gw.stop().await;
    tasks.shutdown().await;
}

#[tokio::test]
async fn a_full_spool_refuses_calls_of_fail_closed_servers_and_counts_drops_of_others() {
    let up = Upstream::start(true).await;
    let tmp = tempfile::tempdir().unwrap();
    // The control plane is unreachable, and the spool holds one small batch.
    let unreachable = unreachable_control_plane();
    let (auditor, tasks) = audited(&tmp.path().join("spool"), unreachable, 64);
    let gw = audited_gateway(&up, auditor.clone()).await;
    let url = gw.url("demo");
    let sid = open_session(&url, ALICE).await;
    let first = post(
        &url,
        Some(ALICE),
        call(1, "search_issues", json!({"query": "a"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(first.status, 200);
    for _ in 0..100 {
        if !auditor.accepting() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!auditor.accepting(), "the spool should be full");
    let upstream_before = up.requests().len();

    // Default: fail closed, with a clear JSON-RPC error carrying the id.
    let refused = post(
        &url,
        Some(ALICE),
        call(2, "search_issues", json!({"query": "b"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["id"], json!(2));
    assert!(refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("audit"));
    assert_eq!(
        up.requests().len(),
        upstream_before,
        "nothing reached the upstream"
    );
    assert_eq!(auditor.stats().rejected.load(Ordering::Relaxed), 1);

    // A server that prefers availability: served, and the lost record counted.
    let servers = std::fs::read_to_string(gw.dir.path().join("servers.yaml")).unwrap();
    gw.edit(
        "servers.yaml",
        &format!("{servers}    audit: {{when_spool_full: drop}}\n"),
    )
    .await;
    let served = post(
        &url,
        Some(ALICE),
        call(3, "search_issues", json!({"query": "c"})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(auditor.stats().dropped.load(Ordering::Relaxed), 1);
    gw.stop().await;
    tasks.shutdown().await;
}

#[tokio::test]
async fn records_spooled_while_the_destination_is_down_are_delivered_after_a_restart() {
    let up = Upstream::start(true).await;
    let tmp = tempfile::tempdir().unwrap();
    let spool: PathBuf = tmp.path().join("spool");
    let unreachable = unreachable_control_plane();
    let (auditor, tasks) = audited(&spool, unreachable, 1 << 30);
    let gw = audited_gateway(&up, auditor.clone()).await;
    let sid = open_session(&gw.url("demo"), ALICE).await;
    for i in 0..20 {
        let r = post(
            &gw.url("demo"),
            Some(ALICE),
            call(i, "search_issues", json!({"query": "q"})),
            &in_session(&sid),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    gw.stop().await;
    tasks.shutdown().await;
    assert_eq!(auditor.spool().records(), 20, "every record waits on disk");

    // The next run delivers them, once each.
    let log = tmp.path().join("audit.jsonl");
    let (_auditor, tasks) = audited(&spool, Sink::File(log.clone()), 1 << 30);
    let records = wait_for_records(&log, 20).await;
    let mut ids: Vec<_> = records
        .iter()
        .map(|r| r.request_id.clone().unwrap())
        .collect();
    ids.sort_by_key(|v| v.as_u64());
    assert_eq!(ids, (0..20).map(|i| json!(i)).collect::<Vec<_>>());
    for _ in 0..100 {
        if std::fs::read_dir(&spool)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count()
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "delivered segments are removed"
    );
    tasks.shutdown().await;
}

#[tokio::test]
async fn virtual_server_calls_are_recorded_against_the_owning_server() {
    let up = Upstream::start(true).await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.jsonl");
    let (auditor, tasks) = audited(&tmp.path().join("spool"), Sink::File(log.clone()), 1 << 30);
    let gw = audited_gateway(&up, auditor).await;
    gw.edit(
        "virtual.yaml",
        "virtual_servers:\n  - {name: desk, tools: [{server: demo, tools: [search_issues, delete_issue], rename: {search_issues: find}}], access: {teams: [support]}}\n",
    )
    .await;
    gw.edit(
        "desk-policy.yaml",
        "policies:\n  - {name: desk-no-delete, subjects: {teams: [support]}, deny: [{server: desk, tools: [delete_issue]}]}\n",
    )
    .await;
    let url = gw.url("desk");
    let sid = open_session(&url, BOB).await;
    let found = post(
        &url,
        Some(BOB),
        call(1, "find", json!({"query": "Login"})),
        &in_session(&sid),
    )
    .await;
    assert!(found.body.contains("1 issue(s) match"), "{}", found.body);
    let denied = post(
        &url,
        Some(BOB),
        call(2, "delete_issue", json!({"id": 0})),
        &in_session(&sid),
    )
    .await;
    assert!(
        denied.body.contains("tool not available"),
        "{}",
        denied.body
    );

    let records = wait_for_records(&log, 2).await;
    let r = by_tool(&records, "search_issues");
    assert_eq!(
        (r.endpoint.as_str(), r.server.as_deref()),
        ("/mcp/desk", Some("demo"))
    );
    assert_eq!((r.decision, r.outcome), (Decision::Allow, Outcome::Success));
    assert_eq!(r.principal.as_deref(), Some("bob"));
    assert_eq!(r.request_id, Some(json!(1)));
    let d = by_tool(&records, "delete_issue");
    assert_eq!(
        (d.endpoint.as_str(), d.server.as_deref()),
        ("/mcp/desk", Some("demo"))
    );
    assert_eq!(d.decision, Decision::Deny);
    gw.stop().await;
    tasks.shutdown().await;
}
