//! A third-party stdio MCP server run by the gateway: npm
//! `@modelcontextprotocol/server-memory` (installed by
//! scripts/install-test-peers.sh), driven by an rmcp client.

use std::path::PathBuf;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;

use crate::common::*;
use crate::stdio_fixture::{eventually, gateway_with, marked_children};

const INSTALL_HINT: &str = "run scripts/install-test-peers.sh (or set TOOLGATE_NODE_PATH)";

/// The memory server's entry script, or None (with a message) when absent outside CI.
fn memory_server() -> Option<PathBuf> {
    let given = std::env::var_os("TOOLGATE_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("toolgate-peers/node")
        });
    let script = [given.join("node_modules"), given]
        .into_iter()
        .map(|d| d.join("@modelcontextprotocol/server-memory/dist/index.js"))
        .find(|p| p.is_file());
    let node_runs = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match (node_runs, script) {
        (true, Some(script)) => Some(script),
        _ if std::env::var_os("CI").is_some() => {
            panic!("node or @modelcontextprotocol/server-memory is missing: {INSTALL_HINT}")
        }
        _ => {
            eprintln!("skipping the npm stdio server test: node or @modelcontextprotocol/server-memory is missing ({INSTALL_HINT})");
            None
        }
    }
}

fn args(v: serde_json::Value) -> rmcp::model::JsonObject {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn npm_memory_server_runs_over_stdio_through_the_gateway() {
    let Some(script) = memory_server() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let memory_file = store.path().join("memory.jsonl");
    let yaml = format!(
        "  - name: memory\n    owner: eng\n    status: approved\n    transport: stdio\n    command: node\n    args: [{:?}]\n    env: {{TG_MARK: npm-memory, MEMORY_FILE_PATH: {:?}}}\n    stdio: {{mode: shared}}\n    tools: [{{name: create_entities}}, {{name: read_graph}}, {{name: search_nodes}}, {{name: delete_entities}}]\n",
        script.display().to_string(),
        memory_file.display().to_string(),
    );
    let gw = gateway_with("memory", &yaml).await;
    let connect = |token: &str| {
        StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gw.url("memory"))
                .auth_header(token.to_string()),
        )
    };
    let alice = ().serve(connect(ALICE)).await.expect("initialize through the gateway");
    let tools: Vec<String> = alice
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.contains(&"create_entities".to_string()), "{tools:?}");
    assert!(
        !tools.contains(&"delete_entities".to_string()),
        "delete_* is denied: {tools:?}"
    );
    let created = alice
        .call_tool(CallToolRequestParams::new("create_entities").with_arguments(args(json!({
            "entities": [{"name": "toolgate", "entityType": "project", "observations": ["runs stdio servers"]}]
        }))))
        .await
        .unwrap();
    assert!(!created.is_error.unwrap_or(false), "{created:?}");

    // Bob (search only) reads what Alice wrote: one shared process.
    let bob = ().serve(connect(BOB)).await.expect("a second session");
    let found = bob
        .call_tool(
            CallToolRequestParams::new("search_nodes")
                .with_arguments(args(json!({"query": "toolgate"}))),
        )
        .await
        .unwrap();
    assert!(
        format!("{found:?}").contains("runs stdio servers"),
        "{found:?}"
    );
    let refused = bob
        .call_tool(CallToolRequestParams::new("read_graph"))
        .await;
    assert!(
        format!("{refused:?}").contains("tool not available"),
        "{refused:?}"
    );
    assert_eq!(marked_children("npm-memory"), 1);
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    gw.stop().await;
    eventually("the process stops with the gateway", || {
        marked_children("npm-memory") == 0
    })
    .await;
}
