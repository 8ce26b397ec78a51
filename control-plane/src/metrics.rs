//! Prometheus metrics of the control plane (`toolgate_cp_*`), served at
//! `GET /metrics` on the API address.
//!
//! `/metrics` needs no token, as Prometheus scrapers expect. It exposes
//! counts, durations, snapshot versions and, for discovery failures, names
//! of catalog servers; never a token, secret, principal, request path
//! parameter or audit content. API requests are labelled by the matched
//! route template (`/v1/servers/{name}`), never by the raw path. Keep the
//! API address reachable by operators and proxies only.
//!
//! A [`CpMetrics`] lives in its [`Registry`](crate::registry::Registry), so
//! several control planes in one process (tests) keep separate counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// `route` label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets in seconds, 100 µs to 60 s (snapshot long-polls wait up to 60 s).
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The control plane's metrics and the registry they live in.
pub struct CpMetrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_duration: HistogramVec,
    snapshot_version: IntGauge,
    snapshot_publishes: IntCounter,
    snapshot_followers: IntGauge,
    discovery_failures: IntCounterVec,
    credential_refresh_failures: IntCounterVec,
    audit_ingested: IntCounter,
    audit_duplicate: IntCounter,
}

impl Default for CpMetrics {
    fn default() -> Self {
        CpMetrics::new()
    }
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<C>) -> C {
    let c = made.expect("a valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl CpMetrics {
    /// A fresh set of metrics in a registry of its own.
    pub fn new() -> CpMetrics {
        let r = Registry::new();
        let counter = |name: &str, help: &str| register(&r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help));
        CpMetrics {
            api_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "toolgate_cp_api_requests_total",
                        "API requests by route template and HTTP status.",
                    ),
                    &["route", "status"],
                ),
            ),
            api_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "toolgate_cp_api_request_duration_seconds",
                        "API request time to the response header, by route template.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["route"],
                ),
            ),
            snapshot_version: gauge(
                "toolgate_cp_snapshot_version",
                "Version of the latest published snapshot.",
            ),
            snapshot_publishes: counter(
                "toolgate_cp_snapshot_publishes_total",
                "Snapshots published since start (the one published at start included).",
            ),
            snapshot_followers: gauge(
                "toolgate_cp_snapshot_followers",
                "Snapshot long-polls waiting for a new version.",
            ),
            discovery_failures: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "toolgate_cp_discovery_failures_total",
                        "Tool discoveries that could not list a server's tools.",
                    ),
                    &["server"],
                ),
            ),
            credential_refresh_failures: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "toolgate_cp_credential_refresh_failures_total",
                        "Failed attempts to obtain or refresh an upstream OAuth token.",
                    ),
                    &["server"],
                ),
            ),
            audit_ingested: counter(
                "toolgate_cp_audit_records_ingested_total",
                "Audit records stored from proxies.",
            ),
            audit_duplicate: counter(
                "toolgate_cp_audit_records_duplicate_total",
                "Audit records received again (already stored; ignored).",
            ),
            registry: r,
        }
    }

    /// The registry, to add collectors of one's own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one API request by route template and status.
    pub fn api_request(&self, route: &str, status: u16, elapsed: Duration) {
        self.api_requests
            .with_label_values(&[route, status.to_string().as_str()])
            .inc();
        self.api_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// A snapshot with `version` was published.
    pub fn snapshot_published(&self, version: u64) {
        self.snapshot_publishes.inc();
        self.snapshot_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// Sets how many snapshot long-polls are waiting (read at scrape time).
    pub fn set_followers(&self, n: usize) {
        self.snapshot_followers
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Discovery could not list the tools of `server` (a catalog server name).
    pub fn discovery_failed(&self, server: &str) {
        self.discovery_failures.with_label_values(&[server]).inc();
    }

    /// Counts a failed upstream OAuth token fetch for `server` (a catalog name).
    pub fn credential_refresh_failed(&self, server: &str) {
        self.credential_refresh_failures
            .with_label_values(&[server])
            .inc();
    }

    /// `n` audit records were stored.
    pub fn audit_ingested(&self, n: u64) {
        self.audit_ingested.inc_by(n);
    }

    /// `n` audit records were received again and ignored.
    pub fn audit_duplicates(&self, n: u64) {
        self.audit_duplicate.inc_by(n);
    }

    /// All metrics in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// Middleware counting every API request under its matched route template
/// (`unmatched` for none). Add with `Router::layer` after the routes.
pub async fn track(State(metrics): State<Arc<CpMetrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.api_request(&route, response.status().as_u16(), start.elapsed());
    response
}

/// The `GET /metrics` response for `registry`.
pub fn scrape(registry: &crate::registry::Registry) -> Response {
    let metrics = registry.metrics();
    metrics.set_followers(registry.followers());
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
        .into_response()
}
