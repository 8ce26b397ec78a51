//! The GET event stream of a virtual session: `notifications/tools/list_changed`
//! when a new snapshot changes the caller's tool list, and the end of the
//! stream when the caller loses the virtual server.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use catalog::Snapshot;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use crate::admit::VirtualCaller;
use crate::streams::StreamRegistry;

/// A comment line this often, so a vanished agent is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

const LIST_CHANGED: &[u8] =
    b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";

/// Serves the stream until the agent leaves or loses access. It is
/// registered like every event stream, so a revocation or an expired JWT
/// ends it even when no snapshot changes; it wakes only for a new snapshot
/// (and its keep-alive), and keeps no older snapshot than the newest.
pub async fn serve(
    session: &mut Session,
    caller: &VirtualCaller,
    snapshots: &Arc<ArcSwap<Snapshot>>,
    streams: &Arc<StreamRegistry>,
) -> pingora_error::Result<()> {
    let mut header = ResponseHeader::build(200, Some(4))?;
    header.insert_header(http::header::CONTENT_TYPE, "text/event-stream")?;
    header.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
    session.set_keepalive(None);
    session
        .write_response_header(Box::new(header), false)
        .await?;
    let name = caller.endpoint().name.clone();
    let _registered = streams.register(caller.digest, name.clone());
    let mut caller = caller.clone();
    let mut list = caller.snapshot.virtual_tool_list(caller.class(), caller.id);
    loop {
        // Listening before looking: a snapshot swapped in meanwhile is not missed.
        let changed = streams.snapshot_changes();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let current = snapshots.load_full();
        if current.version != caller.snapshot.version {
            let Some(fresh) = still_listed(&current, &caller, &name) else {
                // Access ended: end the stream.
                return session.write_response_body(None, true).await;
            };
            caller.snapshot = current;
            if fresh != list {
                list = fresh;
                session
                    .write_response_body(Some(Bytes::from_static(LIST_CHANGED)), false)
                    .await?;
            }
            continue;
        }
        drop(current);
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(KEEPALIVE) => {
                session
                    .write_response_body(Some(Bytes::from_static(b": keepalive\n\n")), false)
                    .await?;
            }
        }
    }
}

/// The caller's tool list under `snapshot`, if they still have the server.
fn still_listed(snapshot: &Snapshot, caller: &VirtualCaller, name: &str) -> Option<Arc<[u8]>> {
    let class = crate::admit::current_class(snapshot, &caller.digest)?;
    let v = snapshot.virtual_server(name)?;
    snapshot
        .can_access_virtual(class, v.id)
        .then(|| snapshot.virtual_tool_list(class, v.id))
}
