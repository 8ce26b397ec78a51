//! Session ids of virtual servers: the gateway's own MCP sessions.
//!
//! Design: the id carries the whole downstream session state, sealed like
//! every session id the gateway hands out (see [`SessionSeal`]):
//! `tgv~{virtual server}~{protocol version}~{nonce}.{tag}`, the tag binding it
//! to the caller's token. Any replica holding the shared session key accepts
//! it, so a session keeps working when its next request lands elsewhere.
//! Upstream sessions are not in the id: each replica opens its own lazily
//! for the nonce (see `upstream_sessions.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest;

use crate::sessions::SessionSeal;

const PREFIX: &str = "tgv";

/// What a virtual session id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualSession {
    /// The virtual server it was opened on.
    pub server: String,
    /// The protocol version negotiated with the agent.
    pub protocol: String,
    /// Unique per session: keys the upstream sessions opened for it.
    pub nonce: String,
}

/// A new session id for the caller with token `digest`.
pub fn issue(
    seal: &SessionSeal,
    digest: &[u8; 32],
    server: &str,
    protocol: &str,
) -> (String, VirtualSession) {
    let session = VirtualSession {
        server: server.to_string(),
        protocol: protocol.to_string(),
        nonce: fresh_nonce(),
    };
    let payload = format!("{PREFIX}~{server}~{protocol}~{}", session.nonce);
    (seal.seal(digest, &payload), session)
}

/// The session `presented` names, if it was issued to this caller for `server`.
pub fn open(
    seal: &SessionSeal,
    digest: &[u8; 32],
    presented: &str,
    server: &str,
) -> Option<VirtualSession> {
    let payload = seal.open(digest, presented)?;
    let mut parts = payload.split('~');
    let (Some(PREFIX), Some(s), Some(protocol), Some(nonce), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (s == server).then(|| VirtualSession {
        server: s.to_string(),
        protocol: protocol.to_string(),
        nonce: nonce.to_string(),
    })
}

/// 128 bits unique to this process and moment (unguessability is not
/// needed: the tag makes the id unforgeable).
fn fresh_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = sha2::Sha256::new();
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    let seed = std::collections::hash_map::RandomState::new();
    h.update(std::hash::BuildHasher::hash_one(&seed, 0u8).to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_caller_and_server() {
        let seal = SessionSeal::from_key([7; 32]);
        let (id, s) = issue(&seal, &[1; 32], "finance", "2025-06-18");
        assert_eq!(open(&seal, &[1; 32], &id, "finance"), Some(s.clone()));
        assert_eq!(
            open(&seal, &[2; 32], &id, "finance"),
            None,
            "another caller"
        );
        assert_eq!(open(&seal, &[1; 32], &id, "other"), None, "another server");
        let other_replica = SessionSeal::from_key([7; 32]);
        assert_eq!(open(&other_replica, &[1; 32], &id, "finance"), Some(s));
        let (second, _) = issue(&seal, &[1; 32], "finance", "2025-06-18");
        assert_ne!(id, second);
    }
}
