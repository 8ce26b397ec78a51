//! Prometheus metrics of the gateway (`toolgate_*`), served on a listener of
//! their own ([`serve_metrics`]) that operators scrape and agents never see.
//!
//! Each [`ProxyMetrics`] owns its registry, so several gateways in one
//! process (tests) keep separate counts. Labels are bounded: servers come
//! from the catalog (`unknown` otherwise), methods and outcomes from fixed
//! lists, tool names from the catalog or a per-server cap (`other`
//! otherwise). No label carries a principal, token, session or argument.

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::fields::AgentHead;
use catalog::{Snapshot, Upstream};
use prometheus::core::Collector;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::error::Refusal;
use crate::jsonrpc::Body;
use crate::streams::StreamRegistry;

mod audit;
mod labels;
mod serve;
mod tally;

pub use audit::{AuditMetrics, AUDIT_SERVER_LABEL_CAP};
pub use labels::{
    method_label, request_method, upstream_for_path, Outcome, ToolDecision, UpstreamErrorKind,
    OTHER, UNKNOWN_SERVER,
};
pub use serve::{router, serve_metrics, start_metrics, MetricsHandle};
pub use tally::RequestTally;

/// Histogram buckets in seconds, 100 µs to 30 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The gateway's metrics and the registry they live in. Share as `Arc<ProxyMetrics>`.
pub struct ProxyMetrics {
    registry: Registry,
    requests: IntCounterVec,
    tool_calls: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    sessions_initialized: IntCounterVec,
    sse_streams: IntGauge,
    snapshot_version: IntGauge,
    snapshot_age: Gauge,
    /// The audit pipeline's metrics.
    pub audit: AuditMetrics,
    /// The current snapshot version and when this process first saw it.
    snapshot_seen: Mutex<Option<(u64, Instant)>>,
    streams: Mutex<Option<Weak<StreamRegistry>>>,
    auditor: Mutex<Option<crate::audit::Auditor>>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics::new()
    }
}

/// Registers a freshly made collector; the names are fixed, so failing is a bug.
pub(crate) fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<C>,
) -> C {
    let c = made.expect("a valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn histogram(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec());
    register(registry, HistogramVec::new(opts, &["server"]))
}

impl ProxyMetrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> ProxyMetrics {
        let r = Registry::new();
        ProxyMetrics {
            requests: counter(
                &r,
                "toolgate_requests_total",
                "Agent requests by server, MCP method and outcome.",
                &["server", "method", "outcome"],
            ),
            tool_calls: counter(
                &r,
                "toolgate_tool_calls_total",
                "tools/call requests by server, tool (catalog names; others are \"other\") and policy decision.",
                &["server", "tool", "decision"],
            ),
            request_duration: histogram(
                &r,
                "toolgate_request_duration_seconds",
                "Agent request time, arrival to the end of the response (event streams included).",
            ),
            upstream_duration: histogram(
                &r,
                "toolgate_upstream_duration_seconds",
                "Upstream time to the response header (or to the failure).",
            ),
            upstream_errors: counter(
                &r,
                "toolgate_upstream_errors_total",
                "Failed upstream exchanges by server and kind.",
                &["server", "kind"],
            ),
            sessions_initialized: counter(
                &r,
                "toolgate_sessions_initialized_total",
                "MCP sessions opened through the gateway (upstreams assigned a session id).",
                &["server"],
            ),
            sse_streams: register(
                &r,
                IntGauge::new(
                    "toolgate_sse_streams_active",
                    "Event streams open through the gateway.",
                ),
            ),
            snapshot_version: register(
                &r,
                IntGauge::new(
                    "toolgate_snapshot_version",
                    "Version of the catalog snapshot being enforced.",
                ),
            ),
            snapshot_age: register(
                &r,
                Gauge::new(
                    "toolgate_snapshot_age_seconds",
                    "Seconds since this gateway started enforcing its current snapshot version.",
                ),
            ),
            audit: AuditMetrics::new(&r),
            registry: r,
            snapshot_seen: Mutex::new(None),
            streams: Mutex::new(None),
            auditor: Mutex::default(),
        }
    }

    /// The registry, to add collectors of one's own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records a finished request (`logging`): one `toolgate_requests_total`,
    /// its duration, the upstream's duration and error if any.
    pub fn record(&self, t: &RequestTally) {
        if t.delegated {
            return;
        }
        let server = t.server.as_deref().unwrap_or(UNKNOWN_SERVER);
        self.requests
            .with_label_values(&[server, t.method, t.outcome.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[server])
            .observe(t.elapsed().as_secs_f64());
        if let Some(d) = t.upstream_elapsed {
            self.upstream_duration
                .with_label_values(&[server])
                .observe(d.as_secs_f64());
        }
        if let Some(kind) = t.upstream_error {
            self.upstream_errors
                .with_label_values(&[server, kind.as_str()])
                .inc();
        }
    }

    /// A refused request (`request_filter`): fills in `tally` (see
    /// [`RequestTally::refused`]) and, for a policy denial, counts each
    /// denied tool as `decision="denied"`.
    pub fn refused(
        &self,
        tally: &mut RequestTally,
        refusal: &Refusal,
        snapshot: &Snapshot,
        req: &impl AgentHead,
    ) {
        tally.refused(refusal, snapshot, req);
        if let Refusal::Denied(calls) = refusal {
            let upstream = upstream_for_path(snapshot, req.path());
            for tool in calls.iter().filter_map(|c| c.tool.as_deref()) {
                self.tool_call(upstream, tool, ToolDecision::Denied);
            }
        }
    }

    /// Counts every `tools/call` in an admitted body as allowed.
    pub fn allowed_calls(&self, upstream: &Upstream, body: &Body) {
        for tool in body.messages().iter().filter_map(|m| m.tool()) {
            self.tool_call(Some(upstream), tool, ToolDecision::Allowed);
        }
    }

    /// Counts one `tools/call` (`toolgate_tool_calls_total`). `upstream` is
    /// the server the path names (`None`: `server="unknown"`, `tool="other"`).
    pub fn tool_call(&self, upstream: Option<&Upstream>, tool: &str, decision: ToolDecision) {
        let label = labels::tool_label(upstream, tool);
        let server = upstream.map_or(UNKNOWN_SERVER, |u| &*u.name);
        self.tool_calls
            .with_label_values(&[server, label, decision.as_str()])
            .inc();
    }

    /// Counts a session opened on `upstream`: the upstream answered with an
    /// `Mcp-Session-Id` to a request that carried none. Sessions end by
    /// `DELETE` or by silently expiring upstream, so how many are open is
    /// not knowable: this is a counter, not a gauge.
    pub fn session_initialized(&self, upstream: &Upstream) {
        self.sessions_initialized
            .with_label_values(&[&*upstream.name])
            .inc();
    }

    /// Reads the audit queue, spool and shipped counts from `auditor` at each scrape.
    pub fn track_audit(&self, auditor: crate::audit::Auditor) {
        *self.auditor.lock().unwrap_or_else(|e| e.into_inner()) = Some(auditor);
    }

    /// Reads `toolgate_sse_streams_active` from `streams` at each scrape.
    pub fn track_streams(&self, streams: &Arc<StreamRegistry>) {
        *self.streams.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(streams));
    }

    /// Notes the snapshot version being enforced; the age counts from the
    /// first time a version is seen ([`serve_metrics`] checks every 250 ms
    /// and at each scrape).
    pub fn observe_snapshot(&self, version: u64) {
        let mut seen = self.snapshot_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none_or(|(v, _)| v != version) {
            *seen = Some((version, Instant::now()));
            self.snapshot_version
                .set(i64::try_from(version).unwrap_or(i64::MAX));
        }
    }

    /// All metrics in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        if let Some((_, since)) = *self.snapshot_seen.lock().unwrap_or_else(|e| e.into_inner()) {
            self.snapshot_age.set(since.elapsed().as_secs_f64());
        }
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(streams) = streams.as_ref().and_then(Weak::upgrade) {
            self.sse_streams
                .set(i64::try_from(streams.len()).unwrap_or(i64::MAX));
        }
        drop(streams);
        if let Some(auditor) = self
            .auditor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.audit
                .queue_depth
                .set(gauge(auditor.queue_depth() as u64));
            self.audit
                .spooled_records
                .set(gauge(auditor.spool().records()));
            self.audit.spooled_bytes.set(gauge(auditor.spool().bytes()));
            let shipped = auditor
                .stats()
                .shipped
                .load(std::sync::atomic::Ordering::Relaxed);
            let seen = self.audit.shipped.get();
            self.audit.shipped.inc_by(shipped.saturating_sub(seen));
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
