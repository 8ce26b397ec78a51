//! Callers of virtual servers: authorized from the request head, and
//! re-checked when a newer snapshot arrives mid-call.

use std::sync::Arc;

use catalog::snapshot::PrincipalInfo;
use catalog::{Caller, ServerId, Snapshot, VerifiedToken};
use pingora_http::RequestHeader;

use super::{bearer_caller, challenge, identify, server_from_path, Route};
use crate::error::Refusal;
use crate::filter::ListIds;

/// A virtual server's call under a newer snapshot: the caller still has the
/// virtual server, and every tool the call runs is still exposed to them.
pub(super) fn reauthorize_virtual(
    snapshot: &Arc<Snapshot>,
    digest: [u8; 32],
    jwt: Option<Arc<VerifiedToken>>,
    name: &str,
    old: &Route,
) -> Result<Route, Refusal> {
    let (caller, jwt) = identify(snapshot, digest, jwt)?;
    let v = snapshot
        .virtual_server(name)
        .filter(|v| snapshot.can_access_virtual(caller.class, v.id))
        .ok_or(Refusal::NoSuchServer)?;
    let owner = old.upstream().name.clone();
    let still_exposed = |tool: &String| {
        v.tools.iter().any(|t| {
            *t.original == **tool
                && snapshot.upstream_by_id(t.server).name == owner
                && snapshot.virtual_tool(caller.class, v.id, &t.name).is_some()
        })
    };
    let server = snapshot
        .upstream(&owner)
        .filter(|_| old.tools.iter().all(still_exposed))
        .ok_or(Refusal::NoSuchServer)?
        .id;
    let caller = VirtualCaller {
        snapshot: snapshot.clone(),
        digest,
        caller,
        jwt,
        id: v.id,
    };
    Ok(caller.route_to(server))
}

/// A caller of a virtual server, authenticated and granted.
#[derive(Clone)]
pub struct VirtualCaller {
    /// The snapshot the decision was made on.
    pub snapshot: Arc<Snapshot>,
    /// The caller's token digest (binds the session id to the caller).
    pub digest: [u8; 32],
    caller: Caller,
    jwt: Option<(Arc<VerifiedToken>, Arc<PrincipalInfo>)>,
    /// The virtual server.
    pub id: catalog::VirtualId,
}

impl VirtualCaller {
    /// The caller's policy class.
    pub fn class(&self) -> catalog::ClassId {
        self.caller.class
    }

    /// The virtual server.
    pub fn endpoint(&self) -> &catalog::VirtualEndpoint {
        self.snapshot.virtual_by_id(self.id)
    }

    /// A route to `server` for this caller: how a virtual server's
    /// `tools/call` travels, under the owning server's credential.
    pub fn route_to(&self, server: ServerId) -> Route {
        Route {
            snapshot: self.snapshot.clone(),
            digest: self.digest,
            caller: self.caller,
            jwt: self.jwt.clone(),
            server,
            body_len: None,
            list_ids: ListIds::None,
            reply_id: None,
            upstream_session: None,
            calls_tools: false,
            method: "other",
            tools: Vec::new(),
            via_virtual: Some(self.endpoint().name.clone()),
            checked: None,
        }
    }
}

/// For a path naming a virtual server: the caller, authenticated and
/// granted, or why not. `None`: the path names no virtual server.
pub fn authorize_virtual(
    req: &RequestHeader,
    snapshot: &Arc<Snapshot>,
) -> Option<Result<VirtualCaller, Refusal>> {
    let name = server_from_path(req.uri.path())?;
    let id = snapshot.virtual_server(name)?.id;
    let authorized = (|| {
        let (digest, jwt) = bearer_caller(req, snapshot, name)?;
        let (caller, jwt) = identify(snapshot, digest, jwt)?;
        if !snapshot.can_access_virtual(caller.class, id) {
            return Err(Refusal::NoSuchServer);
        }
        Ok(VirtualCaller {
            snapshot: snapshot.clone(),
            digest,
            caller,
            jwt,
            id,
        })
    })();
    Some(authorized.map_err(|r| challenge(req, snapshot, name, r)))
}
