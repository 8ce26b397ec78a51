//! The digest of a connection's bearer token, remembered for the
//! connection: an agent presents the same token on every request of it.

use crate::secret::same_secret;

tokio::task_local! {
    /// The bearer token last presented on the connection the current task
    /// serves, with its digest (see [`connection_digest`]).
    pub static CONNECTION_TOKEN: std::cell::RefCell<Option<(Box<[u8]>, [u8; 32])>>;
}

/// The token's SHA-256 digest. An agent presents the same token on every
/// request of its connection, so the digest is remembered for the
/// connection (outside a connection's task it is computed each time).
/// Tokens are compared in constant time: a connection shared by several
/// agents (a proxy in front) must not time one agent's token against another's.
pub(super) fn connection_digest(token: &str) -> [u8; 32] {
    let remembered = CONNECTION_TOKEN.try_with(|last| {
        let mut last = last.borrow_mut();
        match last.as_ref() {
            Some((seen, digest)) if same_secret(seen, token.as_bytes()) => *digest,
            _ => {
                let digest = catalog::token_digest(token);
                *last = Some((token.as_bytes().into(), digest));
                digest
            }
        }
    });
    remembered.unwrap_or_else(|_| catalog::token_digest(token))
}

#[cfg(test)]
mod tests {
    use super::{connection_digest, CONNECTION_TOKEN};

    #[tokio::test]
    async fn a_connection_remembers_the_digest_of_its_last_token_only() {
        let digest = catalog::token_digest;
        let cell = std::cell::RefCell::new(None);
        CONNECTION_TOKEN
            .scope(cell, async {
                assert_eq!(connection_digest("tg_a"), digest("tg_a"));
                assert_eq!(connection_digest("tg_a"), digest("tg_a"));
                assert_eq!(connection_digest("tg_b"), digest("tg_b"));
                assert_eq!(connection_digest("tg_a"), digest("tg_a"));
                assert_eq!(connection_digest("tg_ab"), digest("tg_ab"));
            })
            .await;
        // Outside a connection: computed each time.
        assert_eq!(connection_digest("tg_c"), digest("tg_c"));
    }
}
