//! A small demo MCP server (an issue tracker), built on the official Rust SDK
//! (`rmcp`). `toolgate proxy --demo` runs it behind the gateway so a newcomer
//! can point an MCP client at toolgate at once; the tests use it as upstream.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
#[allow(deprecated)]
use rmcp::model::{
    CreateMessageRequestParams, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    ListPromptsResult, ListResourcesResult, PaginatedRequestParams, ProgressNotificationParam,
    PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    RequestMetaObject, ResourceContents, Role, SamplingMessage, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, Peer, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

/// Arguments of `search_issues`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// Text to look for in titles.
    pub query: String,
}

/// Arguments of `create_issue`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct CreateArgs {
    /// Issue title.
    pub title: String,
    /// Issue text.
    #[serde(default)]
    pub body: String,
}

/// Arguments of `delete_issue`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct DeleteArgs {
    /// Issue number.
    pub id: usize,
}

/// Arguments of `long_report`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct ReportArgs {
    /// Progress steps to send before the result.
    pub steps: u32,
}

/// Arguments of `summarize`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SummarizeArgs {
    /// Text to summarize.
    pub text: String,
}

/// The demo issue tracker.
#[derive(Clone)]
pub struct DemoServer {
    issues: Arc<Mutex<Vec<String>>>,
    #[allow(dead_code)] // read by the tool_handler macro
    tool_router: ToolRouter<Self>,
}

impl DemoServer {
    /// An empty tracker.
    pub fn new(issues: Arc<Mutex<Vec<String>>>) -> Self {
        DemoServer {
            issues,
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl DemoServer {
    #[tool(
        description = "Search issues by title",
        annotations(read_only_hint = true)
    )]
    fn search_issues(&self, Parameters(a): Parameters<SearchArgs>) -> String {
        let issues = self.issues.lock().expect("demo lock");
        let hits: Vec<String> = issues
            .iter()
            .enumerate()
            .filter(|(_, t)| t.contains(&a.query))
            .map(|(i, t)| format!("#{i} {t}"))
            .collect();
        format!(
            "{} issue(s) match {:?}: {}",
            hits.len(),
            a.query,
            hits.join("; ")
        )
    }

    #[tool(description = "Create an issue")]
    fn create_issue(&self, Parameters(a): Parameters<CreateArgs>) -> Result<String, String> {
        if a.title.trim().is_empty() {
            // A tool-level failure (`isError: true`), not a protocol error.
            return Err("an issue needs a title".to_string());
        }
        let mut issues = self.issues.lock().expect("demo lock");
        issues.push(a.title.clone());
        Ok(format!(
            "created #{} {:?} (body: {} bytes)",
            issues.len() - 1,
            a.title,
            a.body.len()
        ))
    }

    #[tool(description = "Delete an issue", annotations(destructive_hint = true))]
    fn delete_issue(&self, Parameters(a): Parameters<DeleteArgs>) -> String {
        format!("deleted #{}", a.id)
    }

    #[tool(description = "Build a report, streaming progress notifications")]
    async fn long_report(
        &self,
        Parameters(a): Parameters<ReportArgs>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
    ) -> String {
        if let Some(token) = meta.get_progress_token() {
            for step in 1..=a.steps {
                let p = ProgressNotificationParam::new(token.clone(), step as f64)
                    .with_total(a.steps as f64);
                let _ = client.notify_progress(p).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        format!("report done after {} steps", a.steps)
    }

    // Sampling is deprecated from 2026-07-28 (SEP-2577), yet agents on the
    // 2025 revisions use it: the gateway must pass it through.
    #[allow(deprecated)]
    #[tool(description = "Summarize a text with the agent's own model (MCP sampling)")]
    async fn summarize(
        &self,
        Parameters(a): Parameters<SummarizeArgs>,
        client: Peer<RoleServer>,
    ) -> Result<String, rmcp::ErrorData> {
        let request = CreateMessageRequestParams::new(
            vec![SamplingMessage::user_text(format!("Summarize: {}", a.text))],
            100,
        );
        let reply = client
            .create_message(request)
            .await
            .map_err(|e| rmcp::ErrorData::internal_error(format!("sampling failed: {e}"), None))?;
        let reply = serde_json::to_string(&reply.message).unwrap_or_default();
        Ok(format!("summary from the agent's model: {reply}"))
    }
}

/// The demo's one prompt and one resource (so virtual servers have
/// something to aggregate besides tools).
const TRIAGE_PROMPT: &str = "triage";
const ALL_ISSUES: &str = "issues://all";

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, rmcp::ErrorData> {
    serde_json::from_value(v).map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
}

#[tool_handler]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .build();
        ServerConfig::new(capabilities).with_instructions("toolgate demo issue tracker")
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, rmcp::ErrorData> {
        from_json(serde_json::json!({"prompts": [{
            "name": TRIAGE_PROMPT,
            "description": "Triage an issue",
            "arguments": [{"name": "issue", "required": true}],
        }]}))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, rmcp::ErrorData> {
        if request.name != TRIAGE_PROMPT {
            return Err(rmcp::ErrorData::invalid_params("unknown prompt", None));
        }
        let issue = request
            .arguments
            .and_then(|a| a.get("issue").and_then(|v| v.as_str().map(str::to_string)))
            .unwrap_or_default();
        let text = format!("Triage issue {issue:?}: severity, owner, next step.");
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, rmcp::ErrorData> {
        from_json(serde_json::json!({"resources": [{
            "uri": ALL_ISSUES, "name": "all issues", "mimeType": "text/plain",
        }]}))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, rmcp::ErrorData> {
        if request.uri != ALL_ISSUES {
            return Err(rmcp::ErrorData::resource_not_found(
                "no such resource",
                None,
            ));
        }
        let text = self
            .issues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, ALL_ISSUES)]).into())
    }
}

/// How the demo server answers.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Bearer token the server requires (`None`: no auth).
    pub token: Option<String>,
    /// Answer simple requests with `application/json` instead of SSE.
    pub json_response: bool,
    /// Keep Streamable HTTP sessions (2025-xx revisions).
    pub sessions: bool,
}

/// An axum router serving the demo MCP server at `/mcp`.
pub fn router(options: DemoOptions, cancel: CancellationToken) -> axum::Router {
    let issues = Arc::new(Mutex::new(vec!["Login page is slow".to_string()]));
    let config = StreamableHttpServerConfig::default()
        .with_json_response(options.json_response)
        .with_legacy_session_mode(options.sessions)
        .with_sse_keep_alive(None)
        .with_cancellation_token(cancel);
    let service: StreamableHttpService<DemoServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(DemoServer::new(issues.clone())),
            Default::default(),
            config,
        );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(options.token),
            require_token,
        ))
}

async fn require_token(
    State(token): State<Arc<Option<String>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = token.as_ref() {
        let want = format!("Bearer {token}");
        let got = req.headers().get(http::header::AUTHORIZATION);
        if got.map(|v| v.as_bytes()) != Some(want.as_bytes()) {
            return (
                http::StatusCode::UNAUTHORIZED,
                "demo server: wrong or missing token",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Serves the demo server on `listener` until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    options: DemoOptions,
    cancel: CancellationToken,
) {
    let app = router(options, cancel.clone());
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled_owned().await })
        .await;
}
