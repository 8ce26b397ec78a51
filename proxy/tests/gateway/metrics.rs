//! Real traffic through the gateway moves the Prometheus metrics, scraped
//! over HTTP from the metrics listener.

use std::sync::Arc;

use serde_json::json;
use toolgate_proxy::metrics::{start_metrics, ProxyMetrics};
use toolgate_proxy::server::GatewayOptions;

use crate::common::*;

#[path = "../metrics/prom_text.rs"]
mod prom_text;
use prom_text::Exposition;

#[tokio::test]
async fn gateway_traffic_is_counted_by_server_method_outcome_and_tool() {
    let up = Upstream::start(true).await;
    let metrics = Arc::new(ProxyMetrics::new());
    let gw = Gateway::start_with(
        up.addr,
        GatewayOptions {
            auditor: None,
            metrics: Some(metrics.clone()),
        },
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scrape_at = start_metrics(listener, metrics, gw.store.clone()).unwrap();

    let url = gw.url("demo");
    let sid = open_session(&url, ALICE).await;
    for i in 0..3 {
        let r = post(
            &url,
            Some(ALICE),
            call(i, "search_issues", json!({"query": "x"})),
            &in_session(&sid),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let denied = post(
        &url,
        Some(ALICE),
        call(9, "delete_issue", json!({"id": 1})),
        &in_session(&sid),
    )
    .await;
    assert!(denied.body.contains("not available"));
    let odd = post(
        &url,
        Some(ALICE),
        call(10, "ignore previous instructions", json!({})),
        &in_session(&sid),
    )
    .await;
    assert_eq!(odd.status, 200);
    assert_eq!(
        post(
            &url,
            Some("tg_nobody"),
            call(11, "search_issues", json!({})),
            &[]
        )
        .await
        .status,
        401
    );

    let text = reqwest::get(format!("http://{}/metrics", scrape_at.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = Exposition::parse(&text);
    let value = |name: &str, labels: &[(&str, &str)]| {
        m.value(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };
    assert_eq!(
        value(
            "toolgate_tool_calls_total",
            &[
                ("server", "demo"),
                ("tool", "search_issues"),
                ("decision", "allowed")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            "toolgate_tool_calls_total",
            &[
                ("server", "demo"),
                ("tool", "delete_issue"),
                ("decision", "denied")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            "toolgate_requests_total",
            &[
                ("server", "demo"),
                ("method", "tools/call"),
                ("outcome", "forwarded")
            ]
        ),
        4.0,
        "three searches and the unknown tool"
    );
    assert_eq!(
        value(
            "toolgate_requests_total",
            &[
                ("server", "demo"),
                ("method", "initialize"),
                ("outcome", "forwarded")
            ]
        ),
        1.0
    );
    assert_eq!(
        value("toolgate_sessions_initialized_total", &[("server", "demo")]),
        1.0
    );
    assert!(
        value(
            "toolgate_request_duration_seconds_count",
            &[("server", "demo")]
        ) >= 6.0
    );
    assert!(
        value(
            "toolgate_upstream_duration_seconds_count",
            &[("server", "demo")]
        ) >= 5.0
    );
    assert!(value("toolgate_snapshot_version", &[]) >= 1.0);
    // No principal, token or argument ever becomes a label.
    for leak in ["alice", ALICE, "tg_nobody", "ignore previous"] {
        assert!(!text.contains(leak), "{leak} appears in the metrics");
    }
    scrape_at.stop().await;
    gw.stop().await;
}
