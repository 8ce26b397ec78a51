//! The official MCP SDK clients through the gateway: Python (PyPI `mcp` 2.3,
//! in its default `auto` mode, which POSTs `server/discover` at 2026-07-28
//! first, and in the classic `initialize` session mode) and TypeScript (npm
//! `@modelcontextprotocol/sdk` 1.32, `StreamableHTTPClientTransport`).
//!
//! Each client runs as a child process (`tests/sdk_clients/`), first straight
//! against the upstream (the baseline), then through the gateway with each
//! token. Through the gateway it must negotiate the same protocol version, get
//! the same `search_issues` result, see exactly the tools its token may call,
//! and get `delete_issue` refused by the gateway.
//!
//! The peers are installed by `scripts/install-test-peers.sh`; override with
//! `TOOLGATE_PYTHON` (an interpreter with `mcp` installed), `TOOLGATE_NODE`
//! (the node binary) and `TOOLGATE_NODE_PATH` (a `node_modules` holding
//! `@modelcontextprotocol/sdk`). Missing peers fail the tests.

#[path = "gateway/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::process::Command;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const INSTALL_HINT: &str = "run scripts/install-test-peers.sh (or set TOOLGATE_PYTHON / TOOLGATE_NODE / TOOLGATE_NODE_PATH)";

#[derive(Debug, Clone, Copy)]
enum Sdk {
    /// Python `mcp.Client` with `mode="auto"` (the SDK's default).
    PythonAuto,
    /// Python `mcp.Client` with `mode="legacy"` (`initialize` handshake).
    PythonLegacy,
    /// TypeScript `Client` over `StreamableHTTPClientTransport`.
    TypeScript,
}

fn peers_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    cache.join("toolgate-peers")
}

fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk_clients")
        .join(name)
}

/// The Python interpreter with the `mcp` 2.3 package, or a failure naming the fix.
fn python() -> PathBuf {
    let py = std::env::var_os("TOOLGATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| peers_dir().join("venv/bin/python"));
    let probe = std::process::Command::new(&py)
        .args([
            "-c",
            "import importlib.metadata as m, mcp; print(m.version('mcp'))",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                version.starts_with("2.3."),
                "{} has mcp {version}, these tests need 2.3.x: {INSTALL_HINT}",
                py.display()
            );
            py
        }
        Ok(out) => panic!(
            "the Python MCP SDK is not installed for {}: {INSTALL_HINT}\n{}",
            py.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "no Python MCP SDK peer at {} ({e}): {INSTALL_HINT}",
            py.display()
        ),
    }
}

/// The node binary and the `node_modules` holding `@modelcontextprotocol/sdk` 1.32.
fn node() -> (PathBuf, PathBuf) {
    let node = std::env::var_os("TOOLGATE_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let given = std::env::var_os("TOOLGATE_NODE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| peers_dir().join("node"));
    let modules = [given.join("node_modules"), given.clone()]
        .into_iter()
        .find(|d| d.join("@modelcontextprotocol/sdk/package.json").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the TypeScript MCP SDK is not installed at {}: {INSTALL_HINT}",
                given.display()
            )
        });
    let manifest = std::fs::read_to_string(modules.join("@modelcontextprotocol/sdk/package.json"))
        .expect("readable package.json");
    let version = serde_json::from_str::<Value>(&manifest).expect("package.json is JSON")
        ["version"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    assert!(
        version.starts_with("1.32."),
        "{} has @modelcontextprotocol/sdk {version}, these tests need 1.32.x: {INSTALL_HINT}",
        modules.display()
    );
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!("cannot run {} ({other:?}): {INSTALL_HINT}", node.display()),
    }
    (node, modules)
}

/// What one client run reported.
#[derive(Debug)]
struct Report {
    protocol_version: Value,
    tools: Vec<String>,
    search: String,
    delete_failed: bool,
    delete_error: Option<String>,
}

/// Runs one SDK client against `url` with `token`; panics with its output on failure.
async fn run_client(sdk: Sdk, url: &str, token: &str) -> Report {
    let mut cmd = match sdk {
        Sdk::PythonAuto | Sdk::PythonLegacy => {
            let mut c = Command::new(python());
            c.arg(client_script("client.py")).args([url, token]);
            c.arg(if matches!(sdk, Sdk::PythonAuto) {
                "auto"
            } else {
                "legacy"
            });
            c
        }
        Sdk::TypeScript => {
            let (node, modules) = node();
            let mut c = Command::new(node);
            c.arg(client_script("client.mjs"))
                .args([url, token])
                .env("TOOLGATE_NODE_PATH", modules);
            c
        }
    };
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{sdk:?}: cannot start the client ({e}): {INSTALL_HINT}"));
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("{sdk:?} client against {url} timed out after {CLIENT_TIMEOUT:?}")
        })
        .expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{sdk:?} client against {url} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("{sdk:?}: no JSON line\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{sdk:?}: {e}: {line}"));
    Report {
        protocol_version: v["protocol_version"].clone(),
        tools: v["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{sdk:?}: no tools in {line}"))
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        search: v["search"].as_str().unwrap_or_default().to_string(),
        delete_failed: v["delete_failed"].as_bool().unwrap_or(false),
        delete_error: v["delete_error"].as_str().map(str::to_string),
    }
}

async fn round_trip(sdk: Sdk, json_response: bool) {
    let upstream = Upstream::start(json_response).await;
    let gw = Gateway::start(upstream.addr).await;
    let ctx = format!("{sdk:?}, json_response={json_response}");

    // Baseline: the same client straight against the upstream.
    let direct = run_client(
        sdk,
        &format!("http://{}/mcp", upstream.addr),
        UPSTREAM_SECRET,
    )
    .await;
    for tool in [
        "create_issue",
        "delete_issue",
        "long_report",
        "search_issues",
    ] {
        assert!(
            direct.tools.iter().any(|t| t == tool),
            "{ctx}: direct: {direct:?}"
        );
    }
    assert!(
        direct.search.contains("1 issue(s) match \"Login\""),
        "{ctx}: direct: {direct:?}"
    );
    assert!(
        !direct.delete_failed,
        "{ctx}: the upstream itself runs delete_issue: {direct:?}"
    );

    if matches!(sdk, Sdk::PythonAuto) {
        assert_eq!(
            direct.protocol_version, "2026-07-28",
            "{ctx}: the upstream should accept `server/discover`, else this test does not cover it"
        );
    }
    let baseline = upstream.requests().len();

    // The policies of `common.rs`: alice (eng) all but `delete_*`, bob (support) `search_*`.
    let alice: Vec<&str> = direct
        .tools
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("delete_"))
        .collect();
    let bob: Vec<&str> = direct
        .tools
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("search_"))
        .collect();
    assert_eq!(bob, ["search_issues"], "{ctx}");
    for (token, expected) in [(ALICE, &alice), (BOB, &bob)] {
        let who = if token == ALICE { "alice" } else { "bob" };
        let got = run_client(sdk, &gw.url("demo"), token).await;
        assert_eq!(got.tools, *expected, "{ctx}, {who}: {got:?}");
        assert_eq!(
            got.protocol_version, direct.protocol_version,
            "{ctx}, {who}: the gateway changed the negotiated protocol version"
        );
        assert_eq!(got.search, direct.search, "{ctx}, {who}");
        assert!(
            got.delete_failed,
            "{ctx}, {who}: delete_issue must be refused: {got:?}"
        );
        let error = got.delete_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("tool not available"),
            "{ctx}, {who}: {got:?}"
        );
    }

    if matches!(sdk, Sdk::PythonAuto) {
        // The 2026-07-28 probe went through the gateway to the upstream, headers intact.
        let discovers = upstream.requests()[baseline..]
            .iter()
            .filter(|s| {
                s.headers.get("mcp-method").map(|v| v.as_bytes()) == Some(b"server/discover")
                    && s.headers.get("mcp-protocol-version").map(|v| v.as_bytes())
                        == Some(b"2026-07-28")
            })
            .count();
        assert_eq!(discovers, 2, "{ctx}: one server/discover per token");
        // At 2026-07-28 tools/call carries `Mcp-Name`: the denied call never left the gateway.
        assert!(
            !upstream.requests()[baseline..].iter().any(|s| s
                .headers
                .get("mcp-name")
                .map(|v| v.as_bytes())
                == Some(b"delete_issue")),
            "{ctx}: a denied delete_issue reached the upstream"
        );
    }

    // Every upstream request carried the gateway's credential, never a gateway token.
    let seen = upstream.requests();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(
            s.headers.get("authorization").map(|v| v.as_bytes()),
            Some(format!("Bearer {UPSTREAM_SECRET}").as_bytes()),
            "{ctx}: {} request reached the upstream with the wrong credential",
            s.method
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_auto_mode_sse_upstream() {
    round_trip(Sdk::PythonAuto, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_auto_mode_json_upstream() {
    round_trip(Sdk::PythonAuto, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_initialize_session_sse_upstream() {
    round_trip(Sdk::PythonLegacy, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_initialize_session_json_upstream() {
    round_trip(Sdk::PythonLegacy, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_sse_upstream() {
    round_trip(Sdk::TypeScript, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_json_upstream() {
    round_trip(Sdk::TypeScript, true).await;
}

/// A virtual server (the gateway's own session) as the official SDKs see it:
/// the Python client's `server/discover` is refused with 400, so it falls
/// back to `initialize`; the tools are curated and a denied one is refused.
async fn virtual_server_round_trip(sdk: Sdk) {
    let upstream = Upstream::start(false).await;
    let gw = Gateway::start(upstream.addr).await;
    gw.edit(
        "virtual.yaml",
        "virtual_servers:\n  - {name: desk, tools: [{server: demo, tools: [search_issues, create_issue, delete_issue]}], access: {teams: [support]}}\n",
    )
    .await;
    gw.edit(
        "desk-policy.yaml",
        "policies:\n  - {name: desk-no-delete, subjects: {teams: [support]}, deny: [{server: desk, tools: [delete_issue]}]}\n",
    )
    .await;
    let got = run_client(sdk, &gw.url("desk"), BOB).await;
    let mut tools = got.tools.clone();
    tools.sort();
    assert_eq!(tools, ["create_issue", "search_issues"], "{sdk:?}: {got:?}");
    assert!(
        got.protocol_version
            .as_str()
            .is_some_and(|v| v.starts_with("2025-")),
        "{sdk:?}: {got:?}"
    );
    assert!(
        got.search.contains("1 issue(s) match \"Login\""),
        "{sdk:?}: {got:?}"
    );
    assert!(got.delete_failed, "{sdk:?}: {got:?}");
    assert!(
        got.delete_error
            .as_deref()
            .is_some_and(|e| e.contains("tool not available")),
        "{sdk:?}: {got:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn python_sdk_auto_mode_virtual_server() {
    virtual_server_round_trip(Sdk::PythonAuto).await;
}

#[tokio::test]
async fn typescript_sdk_virtual_server() {
    virtual_server_round_trip(Sdk::TypeScript).await;
}
