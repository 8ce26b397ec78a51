//! JWT sign-in on the request path. A bearer shaped like a JWT is verified
//! against the snapshot's identity providers (keys shipped in the snapshot:
//! the IdP is never called per request). Verified tokens are remembered by
//! digest until they expire, so a repeat request costs hash lookups, and so
//! open event streams can be re-checked when a new snapshot arrives.

use std::sync::{Arc, LazyLock};

use catalog::{JwtCaller, JwtError, Snapshot, VerifiedToken};
use dashmap::DashMap;

/// Most verified tokens remembered (process-wide).
const MAX_REMEMBERED: usize = 100_000;

static VERIFIED: LazyLock<DashMap<[u8; 32], Arc<VerifiedToken>>> = LazyLock::new(DashMap::new);

/// Verifies `token` (whose SHA-256 is `digest`) with `snapshot`'s identity
/// providers, unless it was verified before; [`Snapshot::jwt_caller`] then
/// derives who it signs in (and re-checks issuer, audience, key and expiry).
pub fn verify(
    snapshot: &Snapshot,
    token: &str,
    digest: &[u8; 32],
) -> Result<Arc<VerifiedToken>, JwtError> {
    if let Some(v) = VERIFIED.get(digest) {
        return Ok(v.clone());
    }
    let v = Arc::new(snapshot.verify_jwt(token)?);
    remember(*digest, v.clone());
    Ok(v)
}

/// The caller of a token verified earlier, under `snapshot` (`None`: not a
/// remembered JWT, or no longer valid there).
pub fn remembered_caller(snapshot: &Snapshot, digest: &[u8; 32]) -> Option<JwtCaller> {
    let verified = VERIFIED.get(digest).map(|v| v.clone())?;
    snapshot.jwt_caller(&verified).ok()
}

fn remember(digest: [u8; 32], token: Arc<VerifiedToken>) {
    if VERIFIED.len() >= MAX_REMEMBERED {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        VERIFIED.retain(|_, v| {
            v.expires_at()
                .saturating_add(catalog::identity::LEEWAY_SECS)
                >= now
        });
        if VERIFIED.len() >= MAX_REMEMBERED {
            VERIFIED.clear();
        }
    }
    VERIFIED.insert(digest, token);
}
