//! `GET /v1/audit` query parameters, checked one by one so an operator's
//! mistake comes back naming the parameter and what it accepts.

use super::query::{Column, Cursor, Filter};
use super::time::parse_instant;

/// Records per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 10_000;

const DECISIONS: [&str; 2] = ["allow", "deny"];
const OUTCOMES: [&str; 6] = [
    "success",
    "error",
    "tool_error",
    "refused",
    "upstream_error",
    "unknown",
];

/// The response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// One JSON document (`records` and `next_cursor`, or `groups`).
    #[default]
    Json,
    /// JSON Lines (`application/x-ndjson`).
    Jsonl,
    /// CSV with a header row (`text/csv`).
    Csv,
}

/// A parsed audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Which records.
    pub filter: Filter,
    /// `limit`, when given (records per page, or groups).
    pub limit: Option<usize>,
    /// Where to resume.
    pub cursor: Option<Cursor>,
    /// The response format.
    pub format: Format,
    /// Counts by this column instead of records.
    pub group_by: Option<Column>,
}

/// A bad parameter: which one and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter.
    pub param: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

fn err(param: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        param: param.to_string(),
        message: message.into(),
    }
}

fn one_of(param: &str, value: &str, accepted: &[&str]) -> Result<(), ParamError> {
    if accepted.contains(&value) {
        Ok(())
    } else {
        Err(err(
            param,
            format!(
                "{param}={value:?} is not accepted; use one of: {}",
                accepted.join(", ")
            ),
        ))
    }
}

impl AuditQuery {
    /// Parses the query string's `(name, value)` pairs; relative times count
    /// back from `now_ms`.
    pub fn parse(pairs: &[(String, String)], now_ms: i64) -> Result<AuditQuery, ParamError> {
        let mut q = AuditQuery::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            let name = name.as_str();
            if seen.contains(&name) {
                return Err(err(name, format!("{name} is given more than once")));
            }
            seen.push(name);
            match name {
                "since" => {
                    q.filter.since_ms = Some(
                        parse_instant(value, now_ms)
                            .map_err(|m| err(name, format!("since: {m}")))?,
                    )
                }
                "until" => {
                    q.filter.until_ms = Some(
                        parse_instant(value, now_ms)
                            .map_err(|m| err(name, format!("until: {m}")))?,
                    )
                }
                "limit" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n));
                    q.limit = Some(n.ok_or_else(|| {
                        err(
                            name,
                            format!("limit={value:?}: use a whole number from 1 to {MAX_LIMIT}"),
                        )
                    })?);
                }
                "cursor" => {
                    q.cursor = Some(Cursor::decode(value).ok_or_else(|| {
                        err(name, "cursor is not one this API issued: pass next_cursor from the previous page unchanged")
                    })?);
                }
                "format" => {
                    q.format = match value.as_str() {
                        "json" => Format::Json,
                        "jsonl" | "ndjson" => Format::Jsonl,
                        "csv" => Format::Csv,
                        _ => {
                            return Err(err(
                                name,
                                format!("format={value:?} is not accepted; use json, jsonl or csv"),
                            ))
                        }
                    }
                }
                "group_by" => {
                    let accepted: Vec<&str> = Column::GROUPABLE.iter().map(|c| c.name()).collect();
                    one_of(name, value, &accepted)?;
                    q.group_by = Column::from_name(value);
                }
                _ => {
                    let Some(column) = Column::from_name(name) else {
                        return Err(err(
                            name,
                            format!(
                                "unknown parameter {name:?}; accepted: {}",
                                accepted_params()
                            ),
                        ));
                    };
                    if value.is_empty() {
                        return Err(err(
                            name,
                            format!("{name} is empty; give a value or leave the parameter out"),
                        ));
                    }
                    match column {
                        Column::Decision => one_of(name, value, &DECISIONS)?,
                        Column::Outcome => one_of(name, value, &OUTCOMES)?,
                        _ => {}
                    }
                    q.filter.equals.push((column, value.clone()));
                }
            }
        }
        if let (Some(since), Some(until)) = (q.filter.since_ms, q.filter.until_ms) {
            if since >= until {
                return Err(err("until", "until must be later than since"));
            }
        }
        if q.group_by.is_some() && q.cursor.is_some() {
            return Err(err(
                "cursor",
                "cursor pages through records; it does not apply with group_by",
            ));
        }
        Ok(q)
    }
}

fn accepted_params() -> String {
    let mut names = vec!["since", "until"];
    names.extend(Column::ALL.iter().map(|c| c.name()));
    names.extend(["limit", "cursor", "format", "group_by"]);
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<AuditQuery, ParamError> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuditQuery::parse(&pairs, 1_000_000_000_000)
    }

    #[test]
    fn accepts_the_documented_parameters() {
        let q = parse(&[
            ("since", "30d"),
            ("until", "2026-01-01T00:00:00Z"),
            ("server", "prod-data"),
            ("decision", "deny"),
            ("group_by", "agent"),
            ("format", "csv"),
            ("limit", "10000"),
        ])
        .unwrap();
        assert_eq!(q.filter.since_ms, Some(1_000_000_000_000 - 30 * 86_400_000));
        assert_eq!(q.filter.equals.len(), 2);
        assert_eq!(q.group_by, Some(Column::Agent));
        assert_eq!((q.format, q.limit), (Format::Csv, Some(10_000)));
    }

    #[test]
    fn errors_name_the_parameter_and_what_it_accepts() {
        for (q, param, hint) in [
            (vec![("limit", "0")], "limit", "1 to 10000"),
            (vec![("limit", "10001")], "limit", "1 to 10000"),
            (vec![("decision", "maybe")], "decision", "allow, deny"),
            (vec![("outcome", "ok")], "outcome", "tool_error"),
            (
                vec![("group_by", "gateway")],
                "group_by",
                "agent, principal",
            ),
            (vec![("format", "xml")], "format", "json, jsonl or csv"),
            (vec![("since", "last week")], "since", "30d"),
            (vec![("cursor", "zz")], "cursor", "next_cursor"),
            (vec![("colour", "red")], "colour", "session_id"),
            (vec![("server", "")], "server", "empty"),
            (
                vec![("server", "a"), ("server", "b")],
                "server",
                "more than once",
            ),
            (
                vec![("since", "1d"), ("until", "2d")],
                "until",
                "later than since",
            ),
        ] {
            let e = parse(&q).unwrap_err();
            assert_eq!(e.param, param, "{q:?}");
            assert!(e.message.contains(hint), "{q:?}: {}", e.message);
        }
    }
}
