//! The gateway's audit duties: fail closed (or count) when the spool is
//! full, and hand each request's event to the writer.

use crate::fields::AgentHead;
use catalog::model::SpoolFull;

use super::{Gateway, RequestCtx};
use crate::admit::Route;
use crate::audit::AuditEvent;
use crate::error::Refusal;

impl Gateway {
    /// When the audit spool is full: refuse a `tools/call` for a server that
    /// fails closed, or count its record as dropped.
    pub(super) fn audit_capacity(&self, route: &Route, ctx: &mut RequestCtx) -> Option<Refusal> {
        let auditor = self.auditor.as_ref()?;
        if auditor.accepting() || !route.calls_tools {
            return None;
        }
        ctx.audit.skip = true;
        match route.upstream().audit.when_spool_full {
            SpoolFull::Reject => {
                auditor.note_rejected();
                if let Some(m) = &self.metrics {
                    m.audit.rejected(route.server_name());
                }
                tracing::warn!(
                    server = route.server_name(),
                    "audit spool full: tool call refused (when_spool_full: reject)"
                );
                Some(Refusal::AuditUnavailable {
                    id: route.reply_id.clone(),
                })
            }
            SpoolFull::Drop => {
                auditor.note_dropped();
                if let Some(m) = &self.metrics {
                    m.audit.dropped(route.server_name(), 1);
                }
                tracing::warn!(
                    server = route.server_name(),
                    "audit spool full: tool call served without a record (when_spool_full: drop)"
                );
                None
            }
        }
    }

    /// Hands the request's audit event to the writer (never waits).
    pub(super) fn audit(&self, req: &impl AgentHead, status: u16, ctx: &mut RequestCtx) {
        let Some(auditor) = &self.auditor else {
            return;
        };
        if ctx.audit.skip {
            return;
        }
        let state = std::mem::take(&mut ctx.audit);
        let route = ctx.route.take().or(state.refused_route);
        if !auditor.accepting() {
            // Admitted calls of fail-closed servers were let in before the
            // spool filled: they are kept. Everything else is counted.
            let keep = state.refusal.is_none()
                && route.as_ref().is_some_and(|r| {
                    r.calls_tools && r.upstream().audit.when_spool_full == SpoolFull::Reject
                });
            if !keep {
                auditor.note_dropped();
                return;
            }
        }
        auditor.submit(AuditEvent {
            ts_ms: ctx.arrived_unix_ms,
            latency_us: ctx.arrived.elapsed().as_micros() as u64,
            path: req.path().to_string(),
            http_method: req.method().clone(),
            route,
            body: state.body,
            refusal: state.refusal,
            http_status: status,
            upstream_failed: state.upstream_failed,
            response: state.tap,
            session_id: req
                .text(&crate::http_headers::MCP_SESSION_ID)
                .map(str::to_string),
            issued_session: state.issued_session,
            trace_id: ctx.trace.take().map(|t| t.trace_id().to_string()),
        });
    }
}
