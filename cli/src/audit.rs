//! `toolgate audit query`: the control plane's audit trail (`GET /v1/audit`,
//! `TOOLGATE_URL`, `TOOLGATE_ADMIN_TOKEN`) as a table, JSON, JSON Lines or CSV.

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

/// `toolgate audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Records newest first, or counts with --group-by. Example:
    /// `toolgate audit query --server prod-data --since 30d --group-by agent`.
    Query(Box<QueryArgs>),
}

/// Filters and output of `audit query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// From this time: a duration before now (90s, 15m, 12h, 30d, 2w) or RFC 3339 / date.
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this upstream server.
    #[arg(long)]
    server: Option<String>,
    /// Only this principal (user or service account).
    #[arg(long)]
    principal: Option<String>,
    /// Only this agent (token name).
    #[arg(long)]
    agent: Option<String>,
    /// Only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only this JSON-RPC method (e.g. tools/call).
    #[arg(long)]
    method: Option<String>,
    /// Only allowed or only denied requests.
    #[arg(long, value_parser = ["allow", "deny"])]
    decision: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["success", "error", "tool_error", "refused", "upstream_error", "unknown"])]
    outcome: Option<String>,
    /// Only this MCP session.
    #[arg(long)]
    session_id: Option<String>,
    /// Only this W3C trace id.
    #[arg(long)]
    trace_id: Option<String>,
    /// Only this gateway instance.
    #[arg(long)]
    gateway: Option<String>,
    /// Count records by this field instead of listing them.
    #[arg(long, value_parser = ["agent", "principal", "tool", "server", "decision", "outcome", "method"])]
    group_by: Option<String>,
    /// Output format. jsonl and csv export every match unless --limit is given.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// At most this many records or groups (default 100 for table and json; max 10000).
    #[arg(long)]
    limit: Option<usize>,
    /// Continue after a previous page (the cursor it printed).
    #[arg(long)]
    cursor: Option<String>,
}

/// How `audit query` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// The API's JSON response.
    Json,
    /// One JSON record per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

impl QueryArgs {
    fn params(&self) -> Vec<(&'static str, String)> {
        let fields = [
            ("since", &self.since),
            ("until", &self.until),
            ("server", &self.server),
            ("principal", &self.principal),
            ("agent", &self.agent),
            ("tool", &self.tool),
            ("method", &self.method),
            ("decision", &self.decision),
            ("outcome", &self.outcome),
            ("session_id", &self.session_id),
            ("trace_id", &self.trace_id),
            ("gateway", &self.gateway),
            ("group_by", &self.group_by),
            ("cursor", &self.cursor),
        ];
        let mut params: Vec<(&'static str, String)> = fields
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
            .collect();
        let format = match self.format {
            OutputFormat::Table | OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
        };
        params.push(("format", format.to_string()));
        if let Some(limit) = self.limit {
            params.push(("limit", limit.to_string()));
        }
        params
    }
}

/// Runs an `audit` command.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Query(args) = cmd;
    let url = std::env::var("TOOLGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".to_string());
    let token = std::env::var("TOOLGATE_ADMIN_TOKEN")
        .context("TOOLGATE_ADMIN_TOKEN must hold an admin token")?;
    let base = format!("{}/v1/audit", url.trim_end_matches('/'));
    let mut url = reqwest::Url::parse(&base).with_context(|| format!("TOOLGATE_URL: {base}"))?;
    url.query_pairs_mut().extend_pairs(args.params());
    let mut resp = reqwest::Client::new()
        .get(url.clone())
        .bearer_auth(&token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let msg = value["error"]["message"].as_str().unwrap_or(&text);
        bail!("{status}: {msg}");
    }
    let mut stdout = std::io::stdout().lock();
    match args.format {
        OutputFormat::Jsonl | OutputFormat::Csv => {
            while let Some(chunk) = resp.chunk().await.context("reading the export")? {
                stdout.write_all(&chunk)?;
            }
            if let Some(next) = resp.headers().get("x-next-cursor") {
                eprintln!(
                    "more records: add --cursor {}",
                    next.to_str().unwrap_or_default()
                );
            }
        }
        OutputFormat::Json => {
            let value: Value = resp.json().await.context("reading the response")?;
            writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
        }
        OutputFormat::Table => {
            let value: Value = resp.json().await.context("reading the response")?;
            print_table(&mut stdout, &value)?;
        }
    }
    stdout.flush()?;
    Ok(())
}

fn print_table(out: &mut impl Write, value: &Value) -> anyhow::Result<()> {
    let (header, rows, right): (Vec<String>, Vec<Vec<String>>, usize) =
        if let Some(groups) = value["groups"].as_array() {
            let by = value["group_by"].as_str().unwrap_or("key").to_uppercase();
            let rows = groups
                .iter()
                .map(|g| {
                    let mut row = vec![text(&g["key"])];
                    row.extend(["count", "denied", "errors"].map(|k| text(&g[k])));
                    row
                })
                .collect();
            (
                vec![by, "COUNT".into(), "DENIED".into(), "ERRORS".into()],
                rows,
                1,
            )
        } else {
            let records = value["records"].as_array().cloned().unwrap_or_default();
            let rows = records
                .iter()
                .map(|r| {
                    let mut row: Vec<String> = [
                        "ts",
                        "principal",
                        "agent",
                        "server",
                        "tool",
                        "decision",
                        "outcome",
                    ]
                    .map(|k| text(&r[k]))
                    .to_vec();
                    row.push(r["latency_us"].as_u64().map_or("-".into(), latency));
                    row
                })
                .collect();
            let header = [
                "TIME",
                "PRINCIPAL",
                "AGENT",
                "SERVER",
                "TOOL",
                "DECISION",
                "OUTCOME",
                "LATENCY",
            ];
            (header.map(String::from).to_vec(), rows, 7)
        };
    if rows.is_empty() {
        eprintln!("no matching audit records");
        return Ok(());
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i >= right {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    if value["truncated"].as_bool() == Some(true) {
        eprintln!("more groups than shown: raise --limit");
    }
    if let Some(next) = value["next_cursor"].as_str() {
        eprintln!("more records: add --cursor {next}");
    }
    Ok(())
}

/// A cell: strings as they are, `-` when absent.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.chars().filter(|c| !c.is_control()).collect(),
        v => v.to_string(),
    }
}

/// Microseconds as `850µs`, `12.3ms` or `1.20s`.
fn latency(us: u64) -> String {
    match us {
        0..=999 => format!("{us}µs"),
        1000..=999_999 => format!("{:.1}ms", us as f64 / 1000.0),
        _ => format!("{:.2}s", us as f64 / 1_000_000.0),
    }
}
