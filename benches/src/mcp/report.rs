//! What the load generator measured: per request kind, the count, errors by
//! cause and latency percentiles (HdrHistogram, 3 significant digits), as a
//! human table or JSON.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The kinds of request an agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `initialize` + `notifications/initialized` (one session set-up).
    Initialize,
    /// `tools/list`.
    List,
    /// `tools/call` with small arguments and a small JSON result.
    Call,
    /// `tools/call` with large arguments and a large JSON result.
    CallLarge,
    /// `tools/call` answered as an SSE stream (progress, then the result).
    CallSse,
}

/// Every kind, in report order.
pub const KINDS: [Kind; 5] = [
    Kind::Initialize,
    Kind::List,
    Kind::Call,
    Kind::CallLarge,
    Kind::CallSse,
];

impl Kind {
    /// The name in reports and in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Initialize => "initialize",
            Kind::List => "list",
            Kind::Call => "call",
            Kind::CallLarge => "large",
            Kind::CallSse => "sse",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// HTTP status outside 2xx.
    Status,
    /// A JSON-RPC error response.
    JsonRpc,
    /// Connect, I/O or timeout.
    Transport,
    /// No complete JSON-RPC response in the body.
    Malformed,
}

const ERROR_NAMES: [&str; 4] = ["status", "jsonrpc", "transport", "malformed"];

/// One agent's measurements (no sharing on the hot path; merged at the end).
#[derive(Default)]
pub struct Recorder {
    /// Latencies of successful requests in microseconds, by kind.
    latencies: [Vec<u64>; KINDS.len()],
    errors: [[u64; 4]; KINDS.len()],
    /// Open loop: requests scheduled in the window but never sent.
    pub unsent: u64,
}

impl Recorder {
    /// Records a successful request.
    pub fn success(&mut self, kind: Kind, micros: u64) {
        self.latencies[kind.index()].push(micros);
    }

    /// Records a failed request.
    pub fn error(&mut self, kind: Kind, error: ErrorKind) {
        self.errors[kind.index()][error as usize] += 1;
    }
}

/// Totals and percentiles of one kind (or of all).
struct Row {
    name: &'static str,
    histogram: Histogram<u64>,
    errors: [u64; 4],
}

impl Row {
    fn new(name: &'static str) -> Row {
        Row {
            name,
            // 1 µs .. 10 min; larger values are clamped.
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            errors: [0; 4],
        }
    }

    fn requests(&self) -> u64 {
        self.histogram.len() + self.errors.iter().sum::<u64>()
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// A latency for JSON: null when nothing succeeded.
    fn ms_json(&self, quantile: f64) -> Value {
        if self.histogram.is_empty() {
            Value::Null
        } else {
            json!(self.ms(quantile))
        }
    }
}

/// The merged result of a run.
pub struct Report {
    rows: Vec<Row>,
    total: Row,
    window_secs: f64,
    unsent: u64,
}

const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

impl Report {
    /// Merges the agents' recorders; `window_secs` is the measured window.
    pub fn merge(recorders: &[Recorder], window_secs: f64) -> Report {
        let mut rows: Vec<Row> = KINDS.iter().map(|k| Row::new(k.name())).collect();
        let mut total = Row::new("all");
        let mut unsent = 0;
        for r in recorders {
            unsent += r.unsent;
            for (i, row) in rows.iter_mut().enumerate() {
                for &v in &r.latencies[i] {
                    row.histogram.saturating_record(v.max(1));
                    total.histogram.saturating_record(v.max(1));
                }
                for e in 0..4 {
                    row.errors[e] += r.errors[i][e];
                    total.errors[e] += r.errors[i][e];
                }
            }
        }
        Report {
            rows,
            total,
            window_secs,
            unsent,
        }
    }

    fn visible_rows(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|r| r.requests() > 0)
            .chain(std::iter::once(&self.total))
    }

    /// Requests completed per second over the window (all kinds).
    pub fn rate(&self) -> f64 {
        self.total.requests() as f64 / self.window_secs
    }

    /// Failed requests (all kinds, all causes).
    pub fn errors(&self) -> u64 {
        self.total.errors.iter().sum()
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<11} {:>9} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "kind",
            "requests",
            "req/s",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for row in self.visible_rows() {
            let _ = write!(
                s,
                "{:<11} {:>9} {:>10.1} {:>8}",
                row.name,
                row.requests(),
                row.requests() as f64 / self.window_secs,
                row.errors.iter().sum::<u64>()
            );
            for (_, q) in QUANTILES {
                let _ = write!(s, " {:>9.3}", row.ms(q));
            }
            let _ = writeln!(s, " {:>9.3}", row.histogram.max() as f64 / 1000.0);
        }
        let causes: Vec<String> = (0..4)
            .filter(|&e| self.total.errors[e] > 0)
            .map(|e| format!("{} {}", ERROR_NAMES[e], self.total.errors[e]))
            .collect();
        if !causes.is_empty() {
            let _ = writeln!(s, "errors by cause: {}", causes.join(", "));
        }
        if self.unsent > 0 {
            let _ = writeln!(
                s,
                "behind schedule: {} requests of the window never sent",
                self.unsent
            );
        }
        s
    }

    fn row_json(&self, row: &Row) -> Value {
        let mut v = json!({
            "requests": row.requests(),
            "rps": row.requests() as f64 / self.window_secs,
            "errors": row.errors.iter().sum::<u64>(),
            "errors_by_cause": ERROR_NAMES.iter().zip(row.errors).map(|(n, c)| (n.to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
            "max_ms": row.ms_json(1.0),
        });
        for (name, q) in QUANTILES {
            v[format!("{name}_ms")] = row.ms_json(q);
        }
        v
    }

    /// Machine-readable form: `{"window_s", "unsent", "all": {...}, "kinds": {name: {...}}}`.
    pub fn json(&self) -> Value {
        let kinds: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .filter(|r| r.requests() > 0)
            .map(|r| (r.name.to_string(), self.row_json(r)))
            .collect();
        json!({
            "window_s": self.window_secs,
            "unsent": self.unsent,
            "all": self.row_json(&self.total),
            "kinds": kinds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_reports() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for v in 1..=1000 {
            a.success(Kind::Call, v);
        }
        b.success(Kind::List, 5000);
        b.error(Kind::Call, ErrorKind::Status);
        let r = Report::merge(&[a, b], 2.0);
        assert_eq!(r.total.requests(), 1002);
        assert_eq!(r.errors(), 1);
        assert!((r.rate() - 501.0).abs() < 1e-9);
        let j = r.json();
        assert_eq!(j["kinds"]["call"]["requests"], 1001);
        assert!((j["kinds"]["call"]["p50_ms"].as_f64().unwrap() - 0.5).abs() < 0.01);
        assert!(r.table().contains("status 1"));
    }
}
