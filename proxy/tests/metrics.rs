//! The gateway's Prometheus metrics through their public API, scraped over
//! real HTTP from the `/metrics` listener and read back from the text format.

#[path = "metrics/prom_text.rs"]
mod prom_text;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use catalog::Snapshot;
use pingora_error::{Error, ErrorType};
use pingora_http::RequestHeader;
use prom_text::Exposition;
use tokio_util::sync::CancellationToken;
use toolgate_proxy::error::{DeniedCall, Refusal};
use toolgate_proxy::metrics::{start_metrics, ProxyMetrics, RequestTally, ToolDecision};
use toolgate_proxy::reload::ConfigDir;
use toolgate_proxy::streams::{StreamRegistry, CONNECTION};

const TOKEN_SHA: &str = "0000000000000000000000000000000000000000000000000000000000000001";

/// A snapshot with one server, `demo`, that declares two tools.
fn config() -> (tempfile::TempDir, ConfigDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("teams.yaml", "teams: [{name: eng}]\n".to_string()),
        (
            "servers.yaml",
            "servers:\n  - name: demo\n    owner: eng\n    status: approved\n    endpoint: http://127.0.0.1:9/mcp\n    tools: [{name: search_issues}, {name: create_issue}]\n".to_string(),
        ),
        (
            "principals.yaml",
            format!("principals:\n  - name: alice\n    kind: user\n    teams: [eng]\n    tokens: [{{name: laptop, sha256: {TOKEN_SHA}}}]\n"),
        ),
        (
            "policies.yaml",
            "policies:\n  - name: eng\n    subjects: {teams: [eng]}\n    allow: [{server: demo}]\n".to_string(),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let config = ConfigDir::new(dir.path());
    (dir, config)
}

fn request(method: &str, path: &str) -> RequestHeader {
    RequestHeader::build(method, path.as_bytes(), None).unwrap()
}

async fn scrape(addr: std::net::SocketAddr) -> Exposition {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Exposition::parse(&resp.text().await.unwrap())
}

#[tokio::test]
async fn scraped_over_http_with_bounded_labels() {
    let (_dir, config) = config();
    let store = Arc::new(ArcSwap::from_pointee(config.compile(3).unwrap()));
    let metrics = Arc::new(ProxyMetrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start_metrics(listener, metrics.clone(), store.clone()).unwrap();
    let snapshot = store.load_full();
    let demo = snapshot.upstream("demo").unwrap();

    // A forwarded tools/call, 200 from the upstream.
    let mut t = RequestTally::default();
    t.admitted(demo, "tools/call");
    t.upstream_started();
    t.upstream_responded(200);
    metrics.record(&t);
    metrics.tool_call(Some(demo), "search_issues", ToolDecision::Allowed);

    // A bad token on a path naming no server.
    let mut t = RequestTally::default();
    let unauthorized = Refusal::unauthorized(true);
    metrics.refused(
        &mut t,
        &unauthorized,
        &snapshot,
        &request("POST", "/mcp/nope"),
    );
    metrics.record(&t);

    // A denied tool the catalog does not know: its name must not become a label.
    let odd = "steal_secrets\"{label=\"x\"}\n";
    let denied = Refusal::Denied(vec![DeniedCall {
        id: Some(1.into()),
        tool: Some(odd.to_string()),
    }]);
    let mut t = RequestTally::default();
    metrics.refused(&mut t, &denied, &snapshot, &request("POST", "/mcp/demo"));
    metrics.record(&t);

    // An upstream that refuses connections, then one answering 503.
    let mut t = RequestTally::default();
    t.admitted(demo, "GET");
    t.upstream_started();
    t.failed(&Error::new(ErrorType::ConnectRefused));
    metrics.record(&t);
    let mut t = RequestTally::default();
    t.admitted(demo, "initialize");
    t.upstream_started();
    t.upstream_responded(503);
    metrics.record(&t);

    metrics.session_initialized(demo);
    metrics.audit.queue_depth.set(3);
    metrics.audit.spooled_records.set(12);
    metrics.audit.spooled_bytes.set(4096);
    metrics.audit.shipped.inc_by(5);
    metrics.audit.dropped("demo", 2);
    metrics.audit.rejected("demo");

    // One open event stream.
    let streams = Arc::new(StreamRegistry::default());
    metrics.track_streams(&streams);
    let guard = CONNECTION
        .scope(CancellationToken::new(), async {
            streams.register([7; 32], "demo".into())
        })
        .await
        .expect("registered inside a connection");

    // A newer snapshot.
    store.store(Arc::new(config.compile(7).unwrap()));

    let m = scrape(handle.addr).await;
    let forwarded = [
        ("server", "demo"),
        ("method", "tools/call"),
        ("outcome", "forwarded"),
    ];
    assert_eq!(m.value("toolgate_requests_total", &forwarded), Some(1.0));
    let unknown = [
        ("server", "unknown"),
        ("method", "other"),
        ("outcome", "refused_auth"),
    ];
    assert_eq!(m.value("toolgate_requests_total", &unknown), Some(1.0));
    let policy = [
        ("server", "demo"),
        ("method", "tools/call"),
        ("outcome", "refused_policy"),
    ];
    assert_eq!(m.value("toolgate_requests_total", &policy), Some(1.0));
    let failed = [
        ("server", "demo"),
        ("method", "GET"),
        ("outcome", "upstream_error"),
    ];
    assert_eq!(m.value("toolgate_requests_total", &failed), Some(1.0));

    let allowed = [
        ("server", "demo"),
        ("tool", "search_issues"),
        ("decision", "allowed"),
    ];
    assert_eq!(m.value("toolgate_tool_calls_total", &allowed), Some(1.0));
    let other = [
        ("server", "demo"),
        ("tool", "other"),
        ("decision", "denied"),
    ];
    assert_eq!(m.value("toolgate_tool_calls_total", &other), Some(1.0));
    assert!(
        m.samples
            .iter()
            .all(|s| s.labels.values().all(|v| v != odd)),
        "an agent's tool name became a label"
    );

    let connect = [("server", "demo"), ("kind", "connect")];
    assert_eq!(
        m.value("toolgate_upstream_errors_total", &connect),
        Some(1.0)
    );
    let status = [("server", "demo"), ("kind", "status_5xx")];
    assert_eq!(
        m.value("toolgate_upstream_errors_total", &status),
        Some(1.0)
    );

    let demo_only = [("server", "demo")];
    // Four requests named demo (the fifth named no server).
    assert_eq!(
        m.value("toolgate_request_duration_seconds_count", &demo_only),
        Some(4.0)
    );
    assert_eq!(
        m.value("toolgate_upstream_duration_seconds_count", &demo_only),
        Some(3.0)
    );
    let le = [("server", "demo"), ("le", "+Inf")];
    assert_eq!(
        m.value("toolgate_request_duration_seconds_bucket", &le),
        Some(4.0)
    );
    let le = [("server", "demo"), ("le", "0.0001")];
    assert!(m
        .value("toolgate_request_duration_seconds_bucket", &le)
        .is_some());
    let le = [("server", "demo"), ("le", "30")];
    assert!(m
        .value("toolgate_request_duration_seconds_bucket", &le)
        .is_some());

    assert_eq!(
        m.value("toolgate_sessions_initialized_total", &demo_only),
        Some(1.0)
    );
    assert_eq!(m.value("toolgate_sse_streams_active", &[]), Some(1.0));
    assert_eq!(m.value("toolgate_snapshot_version", &[]), Some(7.0));
    let age = m.value("toolgate_snapshot_age_seconds", &[]).unwrap();
    assert!((0.0..5.0).contains(&age), "{age}");

    assert_eq!(m.value("toolgate_audit_queue_depth", &[]), Some(3.0));
    assert_eq!(m.value("toolgate_audit_spooled_records", &[]), Some(12.0));
    assert_eq!(m.value("toolgate_audit_spooled_bytes", &[]), Some(4096.0));
    assert_eq!(m.value("toolgate_audit_shipped_total", &[]), Some(5.0));
    assert_eq!(
        m.value("toolgate_audit_dropped_total", &demo_only),
        Some(2.0)
    );
    assert_eq!(
        m.value("toolgate_audit_rejected_total", &demo_only),
        Some(1.0)
    );

    for (name, kind) in [
        ("toolgate_requests_total", "counter"),
        ("toolgate_tool_calls_total", "counter"),
        ("toolgate_request_duration_seconds", "histogram"),
        ("toolgate_upstream_duration_seconds", "histogram"),
        ("toolgate_sse_streams_active", "gauge"),
        ("toolgate_snapshot_age_seconds", "gauge"),
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(m.help.get(name).is_some_and(|h| !h.is_empty()), "{name}");
    }

    // The stream closes; the age keeps counting from the first sighting.
    drop(guard);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = scrape(handle.addr).await;
    assert_eq!(again.value("toolgate_sse_streams_active", &[]), Some(0.0));
    assert!(again.value("toolgate_snapshot_age_seconds", &[]).unwrap() >= age + 0.2);

    // Nothing but /metrics is served.
    let other = reqwest::get(format!("http://{}/mcp/demo", handle.addr))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    handle.stop().await;
}

#[tokio::test]
async fn tool_labels_stay_bounded() {
    let (_dir, config) = config();
    let snapshot: Snapshot = config.compile(1).unwrap();
    let demo = snapshot.upstream("demo").unwrap();
    let metrics = ProxyMetrics::new();
    for i in 0..1050 {
        metrics.tool_call(Some(demo), &format!("made_up_{i}"), ToolDecision::Allowed);
        metrics.tool_call(Some(demo), &format!("denied_{i}"), ToolDecision::Denied);
    }
    // Catalog tools keep their label.
    metrics.tool_call(Some(demo), "create_issue", ToolDecision::Denied);
    metrics.tool_call(None, "search_issues", ToolDecision::Allowed);

    let m = Exposition::parse(&metrics.render());
    let calls: Vec<_> = m
        .samples
        .iter()
        .filter(|s| s.name == "toolgate_tool_calls_total")
        .collect();
    let distinct = |server: &str, decision: &str| {
        calls
            .iter()
            .filter(|s| s.labels["server"] == server && s.labels["decision"] == decision)
            .count()
    };
    // Names the catalog does not know are all "other", allowed or not.
    assert_eq!(distinct("demo", "allowed"), 1);
    let overflow = [
        ("server", "demo"),
        ("tool", "other"),
        ("decision", "allowed"),
    ];
    assert_eq!(
        m.value("toolgate_tool_calls_total", &overflow),
        Some(1050.0)
    );
    // Denied unknown names never get a label; a catalog tool does.
    let denied = [
        ("server", "demo"),
        ("tool", "other"),
        ("decision", "denied"),
    ];
    assert_eq!(m.value("toolgate_tool_calls_total", &denied), Some(1050.0));
    let known = [
        ("server", "demo"),
        ("tool", "create_issue"),
        ("decision", "denied"),
    ];
    assert_eq!(m.value("toolgate_tool_calls_total", &known), Some(1.0));
    let unknown = [
        ("server", "unknown"),
        ("tool", "other"),
        ("decision", "allowed"),
    ];
    assert_eq!(m.value("toolgate_tool_calls_total", &unknown), Some(1.0));
}

#[tokio::test]
async fn each_gateway_counts_alone() {
    let (_dir, config) = config();
    let snapshot = config.compile(1).unwrap();
    let demo = snapshot.upstream("demo").unwrap();
    let (a, b) = (ProxyMetrics::new(), ProxyMetrics::new());
    let mut t = RequestTally::default();
    t.admitted(demo, "ping");
    a.record(&t);
    a.record(&t);
    b.record(&t);
    let labels = [
        ("server", "demo"),
        ("method", "ping"),
        ("outcome", "forwarded"),
    ];
    let count =
        |m: &ProxyMetrics| Exposition::parse(&m.render()).value("toolgate_requests_total", &labels);
    assert_eq!(count(&a), Some(2.0));
    assert_eq!(count(&b), Some(1.0));

    // A large-body parent leaves the count to its subrequest.
    let mut parent = RequestTally::default();
    parent.admitted(demo, "ping");
    parent.delegated();
    b.record(&parent);
    assert_eq!(count(&b), Some(1.0));
}
