//! Metrics of the audit pipeline (queue → spool → shipping to the control
//! plane), updated by the audit module.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::labels::OTHER;
use super::register;

/// Distinct `server` label values the audit counters accept.
pub const AUDIT_SERVER_LABEL_CAP: usize = 4096;

/// The audit pipeline's metrics. Gauges and the shipped counter are public
/// `prometheus` handles (`metrics.audit.queue_depth.set(n)`); the per-server
/// counters go through methods that keep their labels bounded.
pub struct AuditMetrics {
    /// `toolgate_audit_queue_depth`: records waiting in memory to be written.
    pub queue_depth: IntGauge,
    /// `toolgate_audit_spooled_records`: records in the on-disk spool, not yet shipped.
    pub spooled_records: IntGauge,
    /// `toolgate_audit_spooled_bytes`: size of the on-disk spool.
    pub spooled_bytes: IntGauge,
    /// `toolgate_audit_shipped_total`: records the control plane acknowledged.
    pub shipped: IntCounter,
    dropped: IntCounterVec,
    rejected: IntCounterVec,
    servers: Mutex<HashSet<Box<str>>>,
}

impl AuditMetrics {
    pub(super) fn new(registry: &Registry) -> AuditMetrics {
        AuditMetrics {
            queue_depth: register(
                registry,
                IntGauge::new(
                    "toolgate_audit_queue_depth",
                    "Audit records waiting in memory to be spooled.",
                ),
            ),
            spooled_records: register(
                registry,
                IntGauge::new(
                    "toolgate_audit_spooled_records",
                    "Audit records in the on-disk spool, not yet shipped.",
                ),
            ),
            spooled_bytes: register(
                registry,
                IntGauge::new(
                    "toolgate_audit_spooled_bytes",
                    "Bytes in the on-disk audit spool.",
                ),
            ),
            shipped: register(
                registry,
                IntCounter::new(
                    "toolgate_audit_shipped_total",
                    "Audit records shipped to and acknowledged by the control plane.",
                ),
            ),
            dropped: register(
                registry,
                IntCounterVec::new(
                    prometheus::Opts::new(
                        "toolgate_audit_dropped_total",
                        "Audit records dropped (spool full, server set to drop).",
                    ),
                    &["server"],
                ),
            ),
            rejected: register(
                registry,
                IntCounterVec::new(
                    prometheus::Opts::new(
                        "toolgate_audit_rejected_total",
                        "Calls refused because the audit spool was full (server set to reject).",
                    ),
                    &["server"],
                ),
            ),
            servers: Mutex::default(),
        }
    }

    /// Counts `n` audit records of `server` (a catalog server name) dropped.
    pub fn dropped(&self, server: &str, n: u64) {
        let server = self.server_label(server);
        self.dropped.with_label_values(&[server]).inc_by(n);
    }

    /// Counts one call to `server` (a catalog server name) refused because
    /// the spool was full.
    pub fn rejected(&self, server: &str) {
        let server = self.server_label(server);
        self.rejected.with_label_values(&[server]).inc();
    }

    /// The name itself while fewer than [`AUDIT_SERVER_LABEL_CAP`] names
    /// were seen, else `other`.
    fn server_label<'s>(&self, server: &'s str) -> &'s str {
        let mut seen = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(server) {
            return server;
        }
        if seen.len() < AUDIT_SERVER_LABEL_CAP {
            seen.insert(Box::from(server));
            return server;
        }
        OTHER
    }
}
