//! One request's contribution to the request metrics, gathered across the
//! gateway hooks and recorded once when the request ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fields::AgentHead;
use catalog::{Snapshot, Upstream};
use pingora_error::{Error, ErrorSource, ErrorType};

use super::labels::{upstream_for_path, Outcome, UpstreamErrorKind, OTHER};
use crate::error::Refusal;

/// What one agent request contributes to `toolgate_requests_total`,
/// `toolgate_request_duration_seconds`, `toolgate_upstream_duration_seconds`
/// and `toolgate_upstream_errors_total`. Kept in the request context and
/// filled in by the hooks; [`super::ProxyMetrics::record`] records it in
/// `logging`. `Default` starts the clock, so create it in `new_ctx`.
#[derive(Debug)]
pub struct RequestTally {
    started: Instant,
    pub(super) server: Option<Arc<str>>,
    pub(super) method: &'static str,
    pub(super) outcome: Outcome,
    upstream_started: Option<Instant>,
    pub(super) upstream_elapsed: Option<Duration>,
    pub(super) upstream_error: Option<UpstreamErrorKind>,
    pub(super) delegated: bool,
}

impl Default for RequestTally {
    fn default() -> Self {
        RequestTally {
            started: Instant::now(),
            server: None,
            method: OTHER,
            outcome: Outcome::Forwarded,
            upstream_started: None,
            upstream_elapsed: None,
            upstream_error: None,
            delegated: false,
        }
    }
}

impl RequestTally {
    /// The request was admitted for `upstream`; `method` is its label (see
    /// [`super::request_method`]).
    pub fn admitted(&mut self, upstream: &Upstream, method: &'static str) {
        self.server = Some(upstream.name.clone());
        self.method = method;
    }

    /// Sets the `method` label (see [`super::request_method`]).
    pub fn set_method(&mut self, method: &'static str) {
        self.method = method;
    }

    /// The gateway refused the request. The server is the one the path
    /// names if `snapshot` routes it (else `unknown`); unless
    /// [`RequestTally::set_method`] said otherwise, the method is `GET` /
    /// `DELETE`, `tools/call` or `batch` for a denial, else `other`.
    pub fn refused(&mut self, refusal: &Refusal, snapshot: &Snapshot, req: &impl AgentHead) {
        self.outcome = Outcome::of_refusal(refusal);
        if self.server.is_none() {
            let path = req.path();
            self.server = upstream_for_path(snapshot, path).map(|u| u.name.clone());
        }
        if self.method == OTHER {
            self.method = match (req.method(), refusal) {
                (&http::Method::GET, _) => "GET",
                (&http::Method::DELETE, _) => "DELETE",
                (_, Refusal::Denied(calls)) if calls.len() == 1 => "tools/call",
                (_, Refusal::Denied(_)) => "batch",
                _ => OTHER,
            };
        }
    }

    /// The gateway starts working on the upstream exchange (`upstream_peer`).
    pub fn upstream_started(&mut self) {
        self.upstream_started = Some(Instant::now());
    }

    /// The upstream's response header arrived with `status` (call at the top
    /// of `response_filter`, before the gateway rewrites the status). A 5xx,
    /// or a 401 refusing the gateway's credential, counts as an upstream error.
    pub fn upstream_responded(&mut self, status: u16) {
        self.stop_upstream_clock();
        if let Some(kind) = UpstreamErrorKind::of_status(status) {
            self.upstream_error = Some(kind);
            self.outcome = Outcome::UpstreamError;
        }
    }

    /// The exchange failed with `e` (`fail_to_proxy`). A failure of the
    /// upstream is counted by kind; the gateway ending a response because
    /// the caller lost access is `refused_auth`; the agent going away leaves
    /// the outcome as it was; anything else is `gateway_error`.
    pub fn failed(&mut self, e: &Error) {
        self.stop_upstream_clock();
        if let Some(kind) = UpstreamErrorKind::of_error(e) {
            self.upstream_error = Some(kind);
            self.outcome = Outcome::UpstreamError;
        } else if e.etype() == &ErrorType::HTTPStatus(403) {
            self.outcome = Outcome::RefusedAuth;
        } else if e.esource() != &ErrorSource::Downstream {
            self.outcome = Outcome::GatewayError;
        }
    }

    /// The exchange is carried out by a subrequest, which records it: this
    /// request records nothing (large bodies, see `large_body::forward`).
    pub fn delegated(&mut self) {
        self.delegated = true;
    }

    /// Time since the request started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn stop_upstream_clock(&mut self) {
        if let (Some(start), None) = (self.upstream_started, self.upstream_elapsed) {
            self.upstream_elapsed = Some(start.elapsed());
        }
    }
}
