//! The demo MCP server (`toolgate_proxy::demo`) over stdio: newline-delimited
//! JSON-RPC on stdin/stdout. The gateway's stdio bridge tests run it as a
//! real child process; operators can use it to try `transport: stdio`.

use rmcp::ServiceExt;
use toolgate_proxy::demo::DemoServer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    eprintln!(
        "toolgate-stdio-demo: serving MCP on stdio (pid {})",
        std::process::id()
    );
    let running = DemoServer::new(Default::default())
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}
