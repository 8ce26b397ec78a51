//! An rmcp client through the gateway sees exactly its allowed tools.

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;

use crate::common::*;

fn args(v: serde_json::Value) -> rmcp::model::JsonObject {
    v.as_object().unwrap().clone()
}

async fn sdk_round_trip(json_response: bool) {
    let upstream = Upstream::start(json_response).await;
    let gw = Gateway::start(upstream.addr).await;

    for (token, expected) in [
        (
            ALICE,
            vec!["create_issue", "long_report", "search_issues", "summarize"],
        ),
        (BOB, vec!["search_issues"]),
    ] {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gw.url("demo")).auth_header(token),
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
        assert_eq!(names, expected, "json_response={json_response}");

        let found = client
            .call_tool(
                CallToolRequestParams::new("search_issues")
                    .with_arguments(args(json!({"query": "Login"}))),
            )
            .await
            .unwrap();
        assert!(
            format!("{found:?}").contains("1 issue(s) match"),
            "{found:?}"
        );

        let denied = client
            .call_tool(
                CallToolRequestParams::new("delete_issue").with_arguments(args(json!({"id": 0}))),
            )
            .await;
        assert!(denied.is_err(), "delete_issue must be refused: {denied:?}");
        assert!(
            format!("{denied:?}").contains("tool not available"),
            "{denied:?}"
        );

        client.cancel().await.unwrap();
    }
    assert!(upstream
        .requests()
        .iter()
        .all(|s| s.headers.get("authorization").unwrap() == &format!("Bearer {UPSTREAM_SECRET}")));
    gw.stop().await;
}

#[tokio::test]
async fn rmcp_client_through_gateway_sse_upstream() {
    sdk_round_trip(false).await;
}

#[tokio::test]
async fn rmcp_client_through_gateway_json_upstream() {
    sdk_round_trip(true).await;
}
