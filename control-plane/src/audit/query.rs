//! Reading the audit trail: filters, newest-first keyset pages, and
//! group-by counts.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};

use super::{AuditError, AuditStore};

/// A record column queries filter on (equality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The authenticated principal.
    Principal,
    /// The agent (token name).
    Agent,
    /// The upstream server.
    Server,
    /// The tool.
    Tool,
    /// The JSON-RPC method.
    Method,
    /// `allow` or `deny`.
    Decision,
    /// How the request ended (`success`, `error`, ...).
    Outcome,
    /// The MCP session id.
    SessionId,
    /// The W3C trace id.
    TraceId,
    /// The gateway instance.
    Gateway,
}

impl Column {
    /// Every column, in the order the API documents them.
    pub const ALL: [Column; 10] = [
        Column::Principal,
        Column::Agent,
        Column::Server,
        Column::Tool,
        Column::Method,
        Column::Decision,
        Column::Outcome,
        Column::SessionId,
        Column::TraceId,
        Column::Gateway,
    ];

    /// The columns `group_by` accepts.
    pub const GROUPABLE: [Column; 7] = [
        Column::Agent,
        Column::Principal,
        Column::Tool,
        Column::Server,
        Column::Decision,
        Column::Outcome,
        Column::Method,
    ];

    /// The name in query parameters, JSON and SQL.
    pub fn name(self) -> &'static str {
        match self {
            Column::Principal => "principal",
            Column::Agent => "agent",
            Column::Server => "server",
            Column::Tool => "tool",
            Column::Method => "method",
            Column::Decision => "decision",
            Column::Outcome => "outcome",
            Column::SessionId => "session_id",
            Column::TraceId => "trace_id",
            Column::Gateway => "gateway",
        }
    }

    /// The column with this name.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Which records a query selects. Every condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// At or after this instant (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Strictly before this instant (Unix milliseconds).
    pub until_ms: Option<i64>,
    /// Columns that must equal a value.
    pub equals: Vec<(Column, String)>,
}

impl Filter {
    /// `WHERE ...` (or nothing) and its parameters.
    fn sql(&self) -> (Vec<String>, Vec<SqlValue>) {
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        if let Some(since) = self.since_ms {
            clauses.push("ts_ms >= ?".to_string());
            params.push(SqlValue::Integer(since));
        }
        if let Some(until) = self.until_ms {
            clauses.push("ts_ms < ?".to_string());
            params.push(SqlValue::Integer(until));
        }
        for (column, value) in &self.equals {
            clauses.push(format!("{} = ?", column.name()));
            params.push(SqlValue::Text(value.clone()));
        }
        (clauses, params)
    }
}

/// A position in the newest-first order: the last record of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The record's time.
    pub ts_ms: i64,
    /// The record's id (ties on time are ordered by id).
    pub id: String,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}:{}", self.ts_ms, self.id))
    }

    /// Reads a cursor produced by [`Cursor::encode`].
    pub fn decode(s: &str) -> Option<Cursor> {
        let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (ts, id) = text.split_once(':')?;
        Some(Cursor {
            ts_ms: ts.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// A stored record as the query returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// Record id.
    pub id: String,
    /// The record's JSON, as stored.
    pub json: String,
}

/// One page of records, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records.
    pub records: Vec<StoredRecord>,
    /// Where the next page starts, when there are more records.
    pub next: Option<Cursor>,
}

/// Counts for one value of the group-by column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    /// The value (`null` for records without one, e.g. no tool).
    pub key: Option<String>,
    /// Records.
    pub count: u64,
    /// Records the gateway denied.
    pub denied: u64,
    /// Records that ended in an error: outcome `error`, `tool_error` or
    /// `upstream_error`.
    pub errors: u64,
}

impl AuditStore {
    /// Up to `limit` records matching `filter`, newest first, after `after`
    /// (a cursor from the previous page).
    pub fn page(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, AuditError> {
        self.read(|conn| page(conn, filter, after, limit))
    }

    /// Counts of the records matching `filter` by `by`, largest first (ties
    /// by key); at most `limit` groups and whether more were left out.
    pub fn groups(
        &self,
        filter: &Filter,
        by: Column,
        limit: usize,
    ) -> Result<(Vec<Group>, bool), AuditError> {
        self.read(|conn| {
            let (clauses, mut params) = filter.sql();
            let col = by.name();
            let sql = format!(
                "SELECT {col}, COUNT(*) AS n, \
                 SUM(decision = 'deny'), \
                 SUM(outcome IN ('error', 'tool_error', 'upstream_error')) \
                 FROM audit_records{} GROUP BY {col} ORDER BY n DESC, {col} LIMIT ?",
                where_sql(&clauses)
            );
            params.push(SqlValue::Integer(limit as i64 + 1));
            let mut stmt = conn.prepare(&sql)?;
            let mut groups = stmt
                .query_map(params_from_iter(params), |r| {
                    Ok(Group {
                        key: r.get(0)?,
                        count: r.get::<_, i64>(1)? as u64,
                        denied: r.get::<_, i64>(2)? as u64,
                        errors: r.get::<_, i64>(3)? as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let truncated = groups.len() > limit;
            groups.truncate(limit);
            Ok((groups, truncated))
        })
    }
}

fn where_sql(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

fn page(
    conn: &Connection,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Page, AuditError> {
    let (mut clauses, mut params) = filter.sql();
    if let Some(c) = after {
        // Row-value order, spelled so the planner can range-scan on ts_ms.
        clauses.push("ts_ms <= ? AND (ts_ms < ? OR id < ?)".to_string());
        params.extend([
            SqlValue::Integer(c.ts_ms),
            SqlValue::Integer(c.ts_ms),
            SqlValue::Text(c.id.clone()),
        ]);
    }
    params.push(SqlValue::Integer(limit as i64 + 1));
    let sql = format!(
        "SELECT ts_ms, id, record FROM audit_records{} ORDER BY ts_ms DESC, id DESC LIMIT ?",
        where_sql(&clauses)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut records = stmt
        .query_map(params_from_iter(params), |r| {
            Ok(StoredRecord {
                ts_ms: r.get(0)?,
                id: r.get(1)?,
                json: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let next = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| Cursor {
            ts_ms: r.ts_ms,
            id: r.id.clone(),
        })
    } else {
        None
    };
    Ok(Page { records, next })
}
