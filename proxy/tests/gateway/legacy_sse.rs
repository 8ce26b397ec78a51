//! Legacy HTTP+SSE upstreams (2024-11-05) served to agents as Streamable
//! HTTP: the official Python SDK's SSE server as the real peer, and a tiny
//! hand-written one announcing a message endpoint on another origin.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::common::*;
use crate::stdio_fixture::gateway_with;

const INSTALL_HINT: &str = "run scripts/install-test-peers.sh (or set TOOLGATE_PYTHON)";

/// The peers' Python with `mcp` 2.3 (None, with a message, when absent outside CI).
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("TOOLGATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("toolgate-peers/venv/bin/python")
        });
    let ok = std::process::Command::new(&py)
        .args([
            "-c",
            "from mcp.server.mcpserver import MCPServer; import uvicorn",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    match ok {
        true => Some(py),
        false if std::env::var_os("CI").is_some() => {
            panic!("the Python MCP SDK is missing: {INSTALL_HINT}")
        }
        false => {
            eprintln!(
                "skipping the legacy SSE peer test: the Python MCP SDK is missing ({INSTALL_HINT})"
            );
            None
        }
    }
}

/// The Python SDK's SSE server, requiring `Bearer UPSTREAM_SECRET`.
struct PythonSsePeer {
    port: u16,
    _child: tokio::process::Child,
}

impl PythonSsePeer {
    async fn start(py: &PathBuf) -> PythonSsePeer {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/legacy_sse_server.py");
        let mut child = tokio::process::Command::new(py)
            .arg(script)
            .arg(UPSTREAM_SECRET)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .next_line()
            .await
            .unwrap()
            .expect("the peer prints its port")
            .parse()
            .unwrap();
        PythonSsePeer {
            port,
            _child: child,
        }
    }
}

fn args(v: serde_json::Value) -> rmcp::model::JsonObject {
    v.as_object().unwrap().clone()
}

fn sse_server_yaml(name: &str, endpoint: &str) -> String {
    format!("  - name: {name}\n    owner: eng\n    status: approved\n    transport: sse\n    endpoint: {endpoint}\n    auth: {{type: bearer, secret: file:upstream-token}}\n    tools: [{{name: search_echo}}, {{name: delete_everything}}]\n")
}

#[tokio::test]
async fn python_sdk_sse_server_is_served_as_streamable_http() {
    let Some(py) = python() else { return };
    let peer = PythonSsePeer::start(&py).await;
    let endpoint = format!("http://127.0.0.1:{}/sse", peer.port);
    let gw = gateway_with("legacy", &sse_server_yaml("legacy", &endpoint)).await;
    for (token, expected) in [(ALICE, vec!["search_echo"]), (BOB, vec!["search_echo"])] {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(gw.url("legacy")).auth_header(token),
        );
        // The peer answers 401 without the gateway's credential: getting
        // this far proves it reached both the GET and the POSTs.
        let client = ().serve(transport).await.expect("initialize through the gateway");
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, expected, "delete_* is denied to both teams");
        let echoed = client
            .call_tool(
                CallToolRequestParams::new("search_echo")
                    .with_arguments(args(json!({"text": "hi"}))),
            )
            .await
            .unwrap();
        assert!(format!("{echoed:?}").contains("echo: hi"), "{echoed:?}");
        let denied = client
            .call_tool(CallToolRequestParams::new("delete_everything"))
            .await;
        assert!(
            format!("{denied:?}").contains("tool not available"),
            "{denied:?}"
        );
        client.cancel().await.unwrap();
    }
    // Raw: bad JSON-RPC inside a session gets the upstream's error with its id.
    let sid = open_session(&gw.url("legacy"), ALICE).await;
    let r = post(
        &gw.url("legacy"),
        Some(ALICE),
        r#"{"jsonrpc":"2.0","id":42,"method":"no/such/method"}"#,
        &in_session(&sid),
    )
    .await;
    assert_eq!(r.messages()[0]["id"], 42, "{}", r.body);
    assert!(r.messages()[0]["error"].is_object(), "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn a_message_endpoint_on_another_origin_is_refused_and_gets_no_credential() {
    // Where a hostile server would like the credential to go.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((_conn, _)) = elsewhere.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let announce =
        format!("event: endpoint\ndata: http://{elsewhere_addr}/messages?session_id=1\n\n");
    let app = axum::Router::new().route(
        "/sse",
        axum::routing::get(move || {
            let announce = announce.clone();
            async move {
                let events =
                    futures::stream::once(
                        async move { Ok::<_, std::convert::Infallible>(announce) },
                    )
                    .chain(futures::stream::pending());
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(axum::body::Body::from_stream(events))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let gw = gateway_with(
        "hostile",
        &sse_server_yaml("hostile", &format!("http://{addr}/sse")),
    )
    .await;
    let r = post(&gw.url("hostile"), Some(ALICE), INIT, &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.json()["id"], 0);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another origin"),
        "{}",
        r.body
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "nothing was sent to the other origin"
    );
    gw.stop().await;
}
