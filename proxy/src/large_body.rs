//! Bodies above Pingora's 64 KiB replay buffer.
//!
//! Pingora calls `upstream_peer` before `request_body_filter` and replays an
//! early-read body only from a 64 KiB retry buffer. toolgate reads and checks
//! every body in `request_filter`, before any upstream work; when the body
//! was larger than that buffer, the checked bytes are sent through a Pingora
//! subrequest (same proxy, same hooks) whose body is preset to them, and the
//! subrequest's response is piped back to the agent. The subrequest carries
//! the parent's admission, so the body is never checked against a different
//! snapshot or sent unchecked.

use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::subrequest::pipe::{pipe_subrequest, InputBody, InputBodyType};
use pingora_proxy::subrequest::{BodyMode, Ctx};
use pingora_proxy::Session;

use std::sync::Arc;

use crate::admit::Route;
use crate::streams::StreamRegistry;

/// The admission (and checked body, for the audit trail) a subrequest
/// inherits from its parent.
struct Checked(Option<(Route, Bytes)>);

/// In a subrequest spawned by [`forward`], the parent's admission and body.
pub fn take_checked_route(session: &mut Session) -> Option<(Route, Bytes)> {
    session
        .subrequest_ctx
        .as_mut()?
        .user_ctx_mut()?
        .downcast_mut::<Checked>()?
        .0
        .take()
}

/// Sends `body` upstream through a subrequest and writes its response to the
/// agent. The subrequest's hooks see the response, so it writes the audit record.
/// The subrequest runs in a task of its own, so the parent registers the
/// exchange: a revocation then ends it even while it is idle.
pub async fn forward(
    session: &mut Session,
    route: Route,
    body: Bytes,
    streams: &Arc<StreamRegistry>,
) -> Result<()> {
    let _registered = streams.register(route.digest(), route.upstream().name.clone());
    let spawner = session
        .subrequest_spawner
        .as_ref()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "subrequests disabled"))?;
    let ctx = Ctx::builder()
        .user_ctx(Box::new(Checked(Some((route, body.clone())))))
        .body_mode(BodyMode::ExpectBody)
        .build();
    let (subrequest, handle) = spawner.create_subrequest(session.as_downstream(), ctx);
    let input = InputBodyType::Preset(InputBody::Bytes(vec![body]));
    match pipe_subrequest(session, subrequest, handle, |task| Ok(Some(task)), input).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let header_sent = e.state.header_received;
            tracing::warn!(error = %e.error, "large-body forward failed");
            if !header_sent {
                session.respond_error(502).await?;
            }
            Ok(())
        }
    }
}
