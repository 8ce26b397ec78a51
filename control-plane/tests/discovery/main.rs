//! Tool discovery and pinning against real rmcp MCP servers on loopback
//! ports chosen by the OS: the demo issue tracker from `toolgate-proxy`, and
//! a small paginating server defined here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    ErrorData, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use toolgate_control_plane::discovery::{
    discover, pin_all, review, Credential, DiscoveryError, PinnedTool, ToolDefinition, ToolStatus,
    MAX_PAGES, MAX_TOOLS,
};
use toolgate_proxy::demo::{self, DemoOptions};

const TOKEN: &str = "upstream-secret-0123456789abcdef";
const WRONG_TOKEN: &str = "not-the-secret-fedcba9876543210";
const API_KEY: &str = "api-key-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);
const DEMO_TOOLS: [&str; 5] = [
    "create_issue",
    "delete_issue",
    "long_report",
    "search_issues",
    "summarize",
];

/// A server on a loopback port, stopped when dropped.
struct Running {
    url: String,
    cancel: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Serves `app` on 127.0.0.1:0; `cancel` also stops the MCP service inside.
async fn serve(app: axum::Router, cancel: CancellationToken) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled_owned().await })
            .await;
    });
    Running {
        url: format!("http://{addr}/mcp"),
        cancel,
    }
}

/// The demo issue tracker, requiring `Authorization: Bearer TOKEN`.
async fn demo_server(json_response: bool, sessions: bool) -> Running {
    let cancel = CancellationToken::new();
    let options = DemoOptions {
        token: Some(TOKEN.to_string()),
        json_response,
        sessions,
    };
    serve(demo::router(options, cancel.clone()), cancel).await
}

async fn discover_demo(server: &Running) -> Vec<ToolDefinition> {
    discover(&server.url, &Credential::Bearer(TOKEN.to_string()), WAIT)
        .await
        .expect("discovery with the right token")
}

fn names(tools: &[ToolDefinition]) -> Vec<&str> {
    let mut names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    names.sort_unstable();
    names
}

fn find<'a>(tools: &'a [ToolDefinition], name: &str) -> &'a ToolDefinition {
    tools
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

/// Asserts that neither the message nor the debug form of `error` holds `secret`.
fn assert_no_secret(error: &DiscoveryError, secret: &str) {
    assert!(!error.to_string().contains(secret), "leaked in {error}");
    assert!(
        !format!("{error:?}").contains(secret),
        "leaked in {error:?}"
    );
}

// ---------------------------------------------------------------------------
// A paginating MCP server: `page_size` tools per page, cursor "page-<offset>".

#[derive(Clone, Copy, PartialEq)]
enum Paging {
    /// Honest cursors.
    Normal,
    /// Always hands back the cursor of the second page.
    Loop,
    /// Never answers `tools/list` in time.
    Stall,
}

#[derive(Clone)]
struct Pager {
    tools: Arc<Mutex<Vec<Tool>>>,
    page_size: usize,
    paging: Paging,
    calls: Arc<AtomicUsize>,
}

impl Pager {
    fn new(tools: Vec<Tool>, page_size: usize, paging: Paging) -> Pager {
        Pager {
            tools: Arc::new(Mutex::new(tools)),
            page_size,
            paging,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn page(&self, cursor: Option<String>) -> Result<ListToolsResult, ErrorData> {
        let start = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
        };
        let tools = self.tools.lock().unwrap();
        let end = (start + self.page_size).min(tools.len());
        let items = tools.get(start..end).unwrap_or_default().to_vec();
        let mut result = ListToolsResult::with_all_items(items);
        result.next_cursor = match self.paging {
            Paging::Loop => Some(format!("page-{}", self.page_size)),
            _ => (end < tools.len()).then(|| format!("page-{end}")),
        };
        Ok(result)
    }
}

impl ServerHandler for Pager {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.paging == Paging::Stall {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        self.page(request.and_then(|r| r.cursor))
    }
}

fn tool(name: &str, description: &str) -> Tool {
    let schema = json!({"type": "object", "properties": {"x": {"type": "string"}}});
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    Tool::new(name.to_string(), description.to_string(), Arc::new(schema))
}

fn numbered_tools(count: usize) -> Vec<Tool> {
    (0..count)
        .map(|i| tool(&format!("tool_{i:05}"), &format!("Tool number {i}")))
        .collect()
}

/// Serves `pager` at `/mcp`, requiring `X-Api-Key: API_KEY` when `keyed`.
async fn pager_server(pager: Pager, keyed: bool) -> Running {
    let cancel = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(None)
        .with_cancellation_token(cancel.child_token());
    let service: StreamableHttpService<Pager, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(pager.clone()), Default::default(), config);
    let mut app = axum::Router::new().nest_service("/mcp", service);
    if keyed {
        app = app.layer(axum::middleware::from_fn(require_api_key));
    }
    serve(app, cancel).await
}

async fn require_api_key(req: Request, next: Next) -> Response {
    let got = req.headers().get("x-api-key").map(|v| v.as_bytes());
    if got != Some(API_KEY.as_bytes()) {
        return (axum::http::StatusCode::UNAUTHORIZED, "bad api key").into_response();
    }
    next.run(req).await
}

mod demo_server;
mod fingerprints;
mod pagination;
mod review;
