//! Admission as the gateway answers it: a request admitted to a server,
//! served to a virtual server, or refused with a JSON-RPC error (counted in
//! the metrics, its size kept for the audit record).

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::{Gateway, RequestCtx};
use crate::admit::{self, Admitted, Rejected};
use crate::error::{ErrorResponse, Refusal};
use crate::fields::AgentHead;
use crate::virtual_server::{self, Outcome};

impl Gateway {
    /// Admits a request to a server, or serves one to a virtual server
    /// (`Ok(None)`: answered by the gateway).
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<Option<Admitted>, Rejected> {
        let snapshot = self.snapshots.load_full();
        let caller = match admit::authorize_virtual(session.req_header(), &snapshot) {
            None => {
                return admit::admit(session, &self.snapshots, &self.seal)
                    .await
                    .map(Some)
            }
            Some(Err(refusal)) => {
                return Err(Rejected {
                    error: refusal.into(),
                    route: None,
                    body: None,
                })
            }
            Some(Ok(caller)) => caller,
        };
        let pool = &self.virtual_sessions;
        let streams = &self.streams;
        match virtual_server::handle(session, caller, &self.seal, pool, &self.snapshots, streams)
            .await?
        {
            Outcome::Answered => Ok(None),
            Outcome::Forward(admitted, link) => {
                ctx.virtual_link = Some(link);
                Ok(Some(*admitted))
            }
        }
    }

    /// Answers a refusal: counted in the metrics, its size kept for the audit record.
    pub(super) async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        refusal: &Refusal,
    ) -> Result<()> {
        self.count_refusal(session.req_header(), ctx, refusal);
        ctx.audit.tap.total = respond(session, refusal).await? as u64;
        Ok(())
    }

    /// Counts a refusal in the metrics.
    pub(super) fn count_refusal(
        &self,
        req: &impl AgentHead,
        ctx: &mut RequestCtx,
        refusal: &Refusal,
    ) {
        if let Some(m) = &self.metrics {
            let snapshot = self.snapshots.load();
            m.refused(&mut ctx.tally, refusal, &snapshot, req);
        }
    }
}

/// The log line of a request refused at admission. Denials name the
/// tools; nothing here carries a token or secret.
pub(super) fn log_refusal(ctx: &RequestCtx, req: &impl AgentHead, refusal: &Refusal) {
    ctx.span.in_scope(|| {
        tracing::info!(
            path = req.path(),
            refusal = %refusal,
            tools = ?denied_tools(refusal),
            "request refused"
        )
    });
}

fn denied_tools(refusal: &Refusal) -> Vec<&str> {
    match refusal {
        Refusal::Denied(calls) => calls.iter().filter_map(|c| c.tool.as_deref()).collect(),
        _ => Vec::new(),
    }
}

/// The response head of a refusal: its status, JSON content type, length
/// and extra headers (a challenge, a cache lifetime).
pub(super) fn refusal_head(r: &ErrorResponse) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(r.status, Some(4))?;
    if !r.body.is_empty() {
        header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
    for (name, value) in &r.headers {
        header.insert_header(*name, value.as_str())?;
    }
    Ok(header)
}

/// Writes a refusal as the whole response; returns the body's length.
pub(super) async fn respond(session: &mut Session, refusal: &Refusal) -> Result<usize> {
    let r = refusal.to_response();
    let len = r.body.len();
    let header = refusal_head(&r)?;
    session.set_keepalive(None);
    session
        .write_response_header(Box::new(header), r.body.is_empty())
        .await?;
    if !r.body.is_empty() {
        session
            .write_response_body(Some(Bytes::from(r.body)), true)
            .await?;
    }
    Ok(len)
}
