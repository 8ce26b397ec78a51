//! Binding upstream MCP sessions to the caller that opened them.
//!
//! Every agent reaches an upstream with the same gateway credential, so the
//! upstream cannot tell agents apart: without this, anyone granted the server
//! who learns a session id could answer its sampling requests, read its
//! stream or end it. The gateway therefore hands agents a sealed session id,
//! `<upstream id>.<tag>` with tag = HMAC-SHA256(key, token digest, upstream id),
//! and accepts it only from the same token. Stateless: any replica holding the
//! key can check it; a gateway with a new key answers 404, after which MCP
//! clients re-initialize.

use std::cell::RefCell;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::same_secret;

tokio::task_local! {
    /// The last session tag computed on the connection the current task
    /// serves. An agent presents the same session id on every request of
    /// its session, so the HMAC is computed once per session, not per request.
    pub static SESSION_TAG: RefCell<Option<TagMemo>>;
}

/// A computed tag and everything it was computed from.
pub struct TagMemo {
    key: [u8; 32],
    digest: [u8; 32],
    upstream_id: Box<str>,
    tag: String,
}

/// Hex characters of the tag kept (128 bits).
const TAG_HEX: usize = 32;

/// The sealing key.
#[derive(Clone)]
pub struct SessionSeal {
    key: [u8; 32],
}

impl SessionSeal {
    /// A seal with a fresh random key (sessions do not survive a restart).
    pub fn random() -> std::io::Result<SessionSeal> {
        let mut key = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
        Ok(SessionSeal { key })
    }

    /// A seal with a shared key: replicas holding the same key accept each
    /// other's session ids.
    pub fn from_key(key: [u8; 32]) -> SessionSeal {
        SessionSeal { key }
    }

    /// The snapshot's shared key when it has one, else `fallback` (this
    /// process's own random key).
    pub fn for_settings<'a>(
        settings: &catalog::Settings,
        fallback: &'a SessionSeal,
    ) -> std::borrow::Cow<'a, SessionSeal> {
        match settings.session_key {
            Some(key) => std::borrow::Cow::Owned(SessionSeal::from_key(key)),
            None => std::borrow::Cow::Borrowed(fallback),
        }
    }

    /// The tag for `digest` and `upstream_id`: remembered for the
    /// connection (outside a connection's task it is computed each time).
    fn tag(&self, digest: &[u8; 32], upstream_id: &str) -> String {
        let remembered = SESSION_TAG.try_with(|memo| {
            let memo = memo.borrow();
            let same = |m: &&TagMemo| {
                // The digest may be another agent's (a proxy sharing the
                // connection): compared in constant time, as tokens are.
                same_secret(&m.key, &self.key) & same_secret(&m.digest, digest)
                    && *m.upstream_id == *upstream_id
            };
            memo.as_ref().filter(same).map(|m| m.tag.clone())
        });
        if let Ok(Some(tag)) = remembered {
            return tag;
        }
        let tag = self.compute_tag(digest, upstream_id);
        let _ = SESSION_TAG.try_with(|memo| {
            *memo.borrow_mut() = Some(TagMemo {
                key: self.key,
                digest: *digest,
                upstream_id: upstream_id.into(),
                tag: tag.clone(),
            });
        });
        tag
    }

    fn compute_tag(&self, digest: &[u8; 32], upstream_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(digest);
        mac.update(upstream_id.as_bytes());
        let mut tag = hex::encode(mac.finalize().into_bytes());
        tag.truncate(TAG_HEX);
        tag
    }

    /// The session id to give the caller with token `digest`.
    pub fn seal(&self, digest: &[u8; 32], upstream_id: &str) -> String {
        format!("{upstream_id}.{}", self.tag(digest, upstream_id))
    }

    /// The upstream session id, if `presented` was sealed for this caller.
    pub fn open<'a>(&self, digest: &[u8; 32], presented: &'a str) -> Option<&'a str> {
        let (upstream_id, tag) = presented.rsplit_once('.')?;
        let expected = self.tag(digest, upstream_id);
        same_secret(tag.as_bytes(), expected.as_bytes()).then_some(upstream_id)
    }
}

#[cfg(test)]
mod tests {
    use super::SessionSeal;

    #[test]
    fn only_the_same_token_opens_a_session() {
        let seal = SessionSeal::random().unwrap();
        let (alice, bob) = ([1u8; 32], [2u8; 32]);
        let sealed = seal.seal(&alice, "abc-123");
        assert_eq!(seal.open(&alice, &sealed), Some("abc-123"));
        assert_eq!(seal.open(&bob, &sealed), None);
        assert_eq!(seal.open(&alice, "abc-123"), None);
        assert_eq!(seal.open(&alice, &sealed.replace("abc", "abd")), None);
        let other = SessionSeal::random().unwrap();
        assert_eq!(other.open(&alice, &sealed), None);
    }

    #[tokio::test]
    async fn a_remembered_tag_opens_only_what_a_computed_one_would() {
        let seal = SessionSeal::random().unwrap();
        let other = SessionSeal::random().unwrap();
        let (alice, bob) = ([1u8; 32], [2u8; 32]);
        let sealed = seal.seal(&alice, "abc-123");
        super::SESSION_TAG
            .scope(std::cell::RefCell::new(None), async {
                // Issued on this connection: the tag is remembered.
                assert_eq!(seal.seal(&alice, "abc-123"), sealed);
                assert_eq!(seal.open(&alice, &sealed), Some("abc-123"));
                assert_eq!(seal.open(&alice, &sealed), Some("abc-123"));
                // Another token, key or upstream id is not the remembered one.
                assert_eq!(seal.open(&bob, &sealed), None);
                assert_eq!(seal.open(&alice, &sealed), Some("abc-123"));
                assert_eq!(other.open(&alice, &sealed), None);
                assert_eq!(seal.open(&alice, &sealed), Some("abc-123"));
                let forged = sealed.replace("abc-123", "abc-124");
                assert_eq!(seal.open(&alice, &forged), None);
                let tag = sealed.rsplit_once('.').unwrap().1;
                assert_eq!(seal.open(&alice, &format!("abc-123.{}", &tag[1..])), None);
            })
            .await;
    }
}
