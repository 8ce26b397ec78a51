//! The audit trail: proxies send records (`POST /v1/audit/records`),
//! operators query and export them (`GET /v1/audit`).

use axum::body::Body;
use axum::http::HeaderValue;

use super::*;
use crate::audit::export::{self, record_value};
use crate::audit::ingest::parse_jsonl;
use crate::audit::params::{AuditQuery, Format, DEFAULT_LIMIT};
use crate::audit::query::{Column, Cursor, Filter, Group, Page};
use crate::audit::{time, AuditError, AuditStore};

/// The largest batch a proxy may send.
pub(super) const MAX_BATCH_BYTES: usize = 32 << 20;

/// Records per page while streaming an export with no `limit`.
const EXPORT_PAGE: usize = 1000;

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "audit store failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal audit store error",
        )
    }
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "audit task failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal audit error")
    })?
}

/// `POST /v1/audit/records`: a JSON Lines batch; stored entirely (ids
/// already stored are skipped) or, when a line is invalid, not at all.
pub(super) async fn ingest_records(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    proxy_or_admin(&s, &headers)?;
    let store = s.audit.clone();
    let (received, inserted) = blocking(move || {
        let records = parse_jsonl(&body).map_err(|e| ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("{e}; nothing was stored"),
            field: Some(format!(
                "line {}{}{}",
                e.line,
                if e.path.is_empty() { "" } else { ": " },
                e.path
            )),
        })?;
        let inserted = store.insert(&records)?;
        Ok((records.len(), inserted))
    })
    .await?;
    let metrics = s.registry.metrics();
    metrics.audit_ingested(inserted as u64);
    metrics.audit_duplicates((received - inserted) as u64);
    Ok(Json(json!({"received": received, "inserted": inserted})))
}

/// An admin, or 403 for the proxy token (it may write the trail, not read it).
fn audit_reader(s: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    let digest = bearer_digest(headers);
    let is_admin = s.keys.admins.iter().any(|(_, d)| Some(*d) == digest);
    if !is_admin && digest.is_some_and(|d| s.keys.proxies.contains(&d)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the proxy token may send audit records but not read them; use an admin token",
        ));
    }
    admin(s, headers)
}

/// `GET /v1/audit`: records newest first (paged by cursor), or counts by
/// `group_by`; as JSON, JSON Lines or CSV.
pub(super) async fn query_audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    audit_reader(&s, &headers)?;
    let q = AuditQuery::parse(&pairs, time::now_ms())
        .map_err(|e| ApiError::field(&e.param, e.message))?;
    let store = s.audit.clone();
    if let Some(by) = q.group_by {
        let (filter, limit) = (q.filter.clone(), q.limit.unwrap_or(DEFAULT_LIMIT));
        let (groups, truncated) = blocking(move || Ok(store.groups(&filter, by, limit)?)).await?;
        return Ok(groups_response(q.format, by, &groups, truncated));
    }
    match (q.format, q.limit) {
        (Format::Json, limit) => {
            let page = fetch(store, q.filter, q.cursor, limit.unwrap_or(DEFAULT_LIMIT)).await?;
            let records: Vec<Value> = page.records.iter().map(record_value).collect();
            let next = page.next.map(|c| c.encode());
            Ok(Json(json!({"records": records, "next_cursor": next})).into_response())
        }
        (format, Some(limit)) => {
            let page = fetch(store, q.filter, q.cursor, limit).await?;
            let mut resp = export_response(format, Body::from(render(format, &page, true)));
            if let Some(next) = page
                .next
                .and_then(|c| HeaderValue::from_str(&c.encode()).ok())
            {
                resp.headers_mut().insert("x-next-cursor", next);
            }
            Ok(resp)
        }
        (format, None) => Ok(export_response(
            format,
            stream_all(store, q.filter, q.cursor, format),
        )),
    }
}

async fn fetch(
    store: Arc<AuditStore>,
    filter: Filter,
    cursor: Option<Cursor>,
    limit: usize,
) -> ApiResult<Page> {
    blocking(move || Ok(store.page(&filter, cursor.as_ref(), limit)?)).await
}

/// One page as JSON Lines or CSV (with the header row when `first`).
fn render(format: Format, page: &Page, first: bool) -> Vec<u8> {
    match format {
        Format::Csv => {
            let mut out = String::new();
            if first {
                export::csv_header(&mut out);
            }
            for r in &page.records {
                export::push_csv_record(&mut out, &record_value(r));
            }
            out.into_bytes()
        }
        _ => {
            let mut out = Vec::new();
            for r in &page.records {
                export::push_jsonl(&mut out, &record_value(r));
            }
            out
        }
    }
}

/// Every matching record, a page at a time, as the client reads them.
fn stream_all(
    store: Arc<AuditStore>,
    filter: Filter,
    cursor: Option<Cursor>,
    format: Format,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::task::spawn_blocking(move || {
        let mut after = cursor;
        let mut first = true;
        loop {
            let page = match store.page(&filter, after.as_ref(), EXPORT_PAGE) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    let _ = tx.blocking_send(Err(std::io::Error::other("audit export failed")));
                    return;
                }
            };
            let chunk = render(format, &page, first);
            first = false;
            // Stop when the client has gone away.
            if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

fn export_response(format: Format, body: Body) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    if format == Format::Csv {
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            "content-disposition",
            HeaderValue::from_static("attachment; filename=\"toolgate-audit.csv\""),
        );
    } else {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-ndjson"),
        );
    }
    resp
}

fn groups_response(format: Format, by: Column, groups: &[Group], truncated: bool) -> Response {
    match format {
        Format::Json => {
            Json(json!({"group_by": by.name(), "groups": groups, "truncated": truncated}))
                .into_response()
        }
        Format::Jsonl => {
            let mut out = Vec::new();
            for g in groups {
                export::push_jsonl(&mut out, g);
            }
            export_response(format, Body::from(out))
        }
        Format::Csv => export_response(format, Body::from(export::groups_csv(by, groups))),
    }
}
