//! Operator commands over the control plane API (`TOOLGATE_URL`,
//! `TOOLGATE_ADMIN_TOKEN`).

use std::io::Read;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

/// `toolgate server ...`
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List registered servers.
    List,
    /// Show one server.
    Show {
        /// Server name.
        name: String,
    },
    /// Approve a server: it routes.
    Approve {
        /// Server name.
        name: String,
    },
    /// Deprecate a server: listed, no longer routed.
    Deprecate {
        /// Server name.
        name: String,
    },
    /// Block a server.
    Block {
        /// Server name.
        name: String,
    },
    /// List virtual servers (or show one) with the tools each exposes.
    Virtual {
        /// A virtual server's name.
        name: Option<String>,
    },
}

/// `toolgate pat ...`
#[derive(Debug, Subcommand)]
pub enum PatCommand {
    /// Issue a token for a principal; printed once.
    Create {
        /// The user or agent.
        principal: String,
        /// A label (e.g. the laptop or agent it is for).
        #[arg(long)]
        name: String,
    },
    /// List a principal's tokens (digests only).
    List {
        /// The user or agent.
        principal: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (from `pat create` or `pat list`).
        id: i64,
    },
}

/// `toolgate principal ...`
#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Offboard in one action: the principal authenticates nowhere (every
    /// token, open streams included) from the next snapshot on every proxy.
    Disable {
        /// The user or agent.
        name: String,
    },
    /// Let a disabled principal sign in again.
    Enable {
        /// The user or agent.
        name: String,
    },
    /// List principals created through the API.
    List,
}

/// `toolgate secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set or rotate a secret (value read from standard input), referenced as `store:NAME`.
    Set {
        /// Secret name.
        name: String,
    },
    /// List secret names.
    List,
}

struct Api {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn from_env() -> anyhow::Result<Api> {
        let url =
            std::env::var("TOOLGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".to_string());
        let token = std::env::var("TOOLGATE_ADMIN_TOKEN")
            .context("TOOLGATE_ADMIN_TOKEN must hold an admin token")?;
        Ok(Api {
            url,
            token,
            client: reqwest::Client::new(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut req = self.client.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = value["error"]["message"].as_str().unwrap_or(&text);
            bail!("{status}: {msg}");
        }
        Ok(value)
    }
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs a `server` command.
pub async fn server(cmd: ServerCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let (path, post) = match &cmd {
        ServerCommand::List => ("/v1/servers".to_string(), false),
        ServerCommand::Show { name } => (format!("/v1/servers/{name}"), false),
        ServerCommand::Approve { name } => (format!("/v1/servers/{name}/approve"), true),
        ServerCommand::Deprecate { name } => (format!("/v1/servers/{name}/deprecate"), true),
        ServerCommand::Block { name } => (format!("/v1/servers/{name}/block"), true),
        ServerCommand::Virtual { name: None } => ("/v1/virtual-servers".to_string(), false),
        ServerCommand::Virtual { name: Some(name) } => {
            (format!("/v1/virtual-servers/{name}"), false)
        }
    };
    let method = if post {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    print(&api.call(method, &path, None).await?);
    Ok(())
}

/// Runs a `pat` command.
pub async fn pat(cmd: PatCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let v = match cmd {
        PatCommand::Create { principal, name } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/principals/{principal}/tokens"),
                Some(json!({"name": name})),
            )
            .await?
        }
        PatCommand::List { principal } => {
            api.call(
                reqwest::Method::GET,
                &format!("/v1/principals/{principal}/tokens"),
                None,
            )
            .await?
        }
        PatCommand::Revoke { id } => {
            api.call(reqwest::Method::DELETE, &format!("/v1/tokens/{id}"), None)
                .await?
        }
    };
    print(&v);
    Ok(())
}

/// Runs a `principal` command.
pub async fn principal(cmd: PrincipalCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let v = match &cmd {
        PrincipalCommand::Disable { name } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/principals/{name}/disable"),
                None,
            )
            .await?
        }
        PrincipalCommand::Enable { name } => {
            api.call(
                reqwest::Method::POST,
                &format!("/v1/principals/{name}/enable"),
                None,
            )
            .await?
        }
        PrincipalCommand::List => {
            api.call(reqwest::Method::GET, "/v1/principals", None)
                .await?
        }
    };
    print(&v);
    Ok(())
}

/// Runs a `secret` command.
pub async fn secret(cmd: SecretCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    match cmd {
        SecretCommand::Set { name } => {
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value)?;
            let value = value.trim_end_matches(['\n', '\r']).to_string();
            api.call(
                reqwest::Method::PUT,
                &format!("/v1/secrets/{name}"),
                Some(json!({"value": value})),
            )
            .await?;
            println!("secret {name} set; reference it as store:{name}");
        }
        SecretCommand::List => print(&api.call(reqwest::Method::GET, "/v1/secrets", None).await?),
    }
    Ok(())
}
