//! Delivering spooled segments, oldest first, deleting each only once
//! the destination has it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::spool::{Segment, Spool};
use super::AuditStats;

/// Where audit records go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// The control plane's `POST /v1/audit/records` (the proxy token).
    ControlPlane {
        /// Base URL, e.g. `http://10.0.0.2:7070`.
        url: String,
        /// The proxy token.
        token: String,
    },
    /// Append to a local JSON Lines file (a gateway without a control plane).
    File(PathBuf),
}

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

enum Failure {
    /// Try again later (unreachable, 5xx, auth misconfigured).
    Retry(String),
    /// The destination will never take these bytes.
    Refused(String),
}

pub(super) async fn ship_loop(
    spool: Arc<Spool>,
    sink: Sink,
    wake: Arc<Notify>,
    stop: CancellationToken,
    stats: Arc<AuditStats>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let mut backoff = FIRST_BACKOFF;
    let mut failing = false;
    loop {
        let oldest = {
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || spool.oldest()).await
        };
        let segment = match oldest {
            Ok(Ok(Some(seg))) => seg,
            Ok(Ok(None)) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "audit: cannot read the spool");
                if pause(&stop, MAX_BACKOFF).await {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        match deliver(&client, &sink, &segment).await {
            Ok(()) => {
                if let Err(e) = spool.remove(&segment) {
                    tracing::error!(error = %e, "audit: cannot remove a delivered segment (it will be re-sent; ids make that harmless)");
                }
                stats.shipped.fetch_add(segment.records, Ordering::Relaxed);
                if failing {
                    tracing::info!("audit: delivery resumed");
                }
                failing = false;
                backoff = FIRST_BACKOFF;
            }
            Err(Failure::Refused(why)) => match spool.quarantine(&segment) {
                Ok(to) => {
                    tracing::error!(reason = %why, kept = %to.display(), records = segment.records, "audit: records refused by the control plane; moved aside for an operator")
                }
                Err(e) => tracing::error!(error = %e, "audit: cannot move a refused segment aside"),
            },
            Err(Failure::Retry(why)) => {
                if !failing {
                    tracing::warn!(reason = %why, waiting = spool.records(), "audit: cannot deliver records; they stay in the spool and are retried");
                }
                failing = true;
                if pause(&stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sleeps; true when stopping.
async fn pause(stop: &CancellationToken, how_long: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(how_long) => false,
        _ = stop.cancelled() => true,
    }
}

async fn deliver(client: &reqwest::Client, sink: &Sink, seg: &Segment) -> Result<(), Failure> {
    let data = tokio::fs::read(&seg.path)
        .await
        .map_err(|e| Failure::Retry(format!("reading {}: {e}", seg.path.display())))?;
    match sink {
        Sink::ControlPlane { url, token } => {
            let resp = client
                .post(format!("{}/v1/audit/records", url.trim_end_matches('/')))
                .bearer_auth(token)
                .header("content-type", "application/x-ndjson")
                .body(data)
                .send()
                .await
                .map_err(|e| Failure::Retry(without_url(e)))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let detail = resp.text().await.unwrap_or_default();
            let detail: String = detail.chars().take(300).collect();
            match status.as_u16() {
                400 | 413 | 422 => Err(Failure::Refused(format!("{status}: {detail}"))),
                _ => Err(Failure::Retry(format!("{status}: {detail}"))),
            }
        }
        Sink::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(&data)?;
                f.sync_all()
            })
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?
            .map_err(|e| Failure::Retry(e.to_string()))
        }
    }
}

/// A reqwest error without its URL (which names the control plane, fine,
/// but never a token: the token travels only in a header).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
