//! `toolgate connect SERVER`: a user connects their own account to a server
//! with delegated OAuth. The control plane (`TOOLGATE_URL`) authenticates
//! the user by their gateway token (`TOOLGATE_TOKEN`) and answers with the
//! authorization server's URL, which this prints for the user to open.

use anyhow::{bail, Context};

/// Prints the URL at which the user authorizes `server` (or disconnects).
pub async fn connect(server: String, disconnect: bool) -> anyhow::Result<()> {
    let base = std::env::var("TOOLGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let token = std::env::var("TOOLGATE_TOKEN")
        .context("TOOLGATE_TOKEN must hold your gateway token (a PAT)")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let url = format!("{}/v1/connect/{server}", base.trim_end_matches('/'));
    let method = if disconnect {
        reqwest::Method::DELETE
    } else {
        reqwest::Method::GET
    };
    let resp = http
        .request(method, &url)
        .bearer_auth(token.trim())
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = resp.status();
    if disconnect && status.is_success() {
        println!("disconnected from {server}");
        return Ok(());
    }
    if status == reqwest::StatusCode::FOUND {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("the control plane answered 302 without a Location")?;
        println!(
            "Open this URL in your browser to connect your account to {server}:\n\n  {location}\n"
        );
        println!("It is valid for 10 minutes and can be used once.");
        return Ok(());
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    bail!("{status}: {message}")
}
