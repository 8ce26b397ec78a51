//! Secrets at rest: every secret value in the store is sealed with
//! AES-256-GCM under the operator's master key, bound to the secret's name
//! (so a row copied under another name does not open).
//!
//! Stored form: `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, where the
//! key id is the first 8 hex digits of the key's SHA-256. A [`Keyring`] holds
//! the current key and, during a rotation, previous ones: values sealed under
//! a previous key still open, and the store re-seals them under the current
//! key when it opens.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// A master key (32 bytes) and its id.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// Why a key or a sealed value was refused. Never contains key or secret bytes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    /// The key text is not 32 bytes of base64 or hex.
    #[error("a master key must be 32 bytes, as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    /// Sealed under a key the keyring does not hold.
    #[error("secret {name:?} is sealed under master key {key_id}, which is not configured (set it as a previous key)")]
    UnknownKey {
        /// Secret name.
        name: String,
        /// The key id in the stored value.
        key_id: String,
    },
    /// Tampered with, or stored under another name.
    #[error("secret {0:?} does not open under its master key (tampered with, or moved)")]
    Tampered(String),
}

impl MasterKey {
    /// Parses 32 bytes given as 64 hex digits or base64.
    pub fn parse(text: &str) -> Result<MasterKey, CryptoError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| CryptoError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| CryptoError::BadKey)?
        };
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(MasterKey {
            id: hex::encode(&Sha256::digest(&bytes)[..4]),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// A new random key, as base64 text (for `toolgate up`'s generated key file).
    pub fn generate() -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// The key's id (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The current master key and any previous ones still accepted.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring sealing with `current`, opening with it and `previous`.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Keyring {
        Keyring { current, previous }
    }

    /// Seals `value` for the secret `name`.
    pub fn seal(&self, name: &str, value: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message under 64 GiB");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        format!("{PREFIX}{}:{b64}", self.current.id)
    }

    /// Opens a stored value. `Ok(None)` when it is not sealed (written by an
    /// older version): the caller re-seals it.
    pub fn open(&self, name: &str, stored: &str) -> Result<Option<String>, CryptoError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let tampered = || CryptoError::Tampered(name.to_string());
        let (key_id, b64) = rest.split_once(':').ok_or_else(tampered)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                name: name.to_string(),
                key_id: key_id.to_string(),
            })?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| tampered())?;
        if blob.len() < NONCE_LEN {
            return Err(tampered());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| tampered())?;
        String::from_utf8(plain).map(Some).map_err(|_| tampered())
    }

    /// Is `stored` sealed under the current key?
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::parse(&MasterKey::generate()).unwrap()
    }

    #[test]
    fn seals_opens_and_binds_to_the_name() {
        let ring = Keyring::new(key(), vec![]);
        let sealed = ring.seal("jira-api-key", "s3cret");
        assert!(sealed.starts_with("enc:v1:") && !sealed.contains("s3cret"));
        assert_ne!(sealed, ring.seal("jira-api-key", "s3cret"), "fresh nonce");
        assert_eq!(
            ring.open("jira-api-key", &sealed).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            ring.open("github-token", &sealed),
            Err(CryptoError::Tampered("github-token".into()))
        );
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(ring.open("jira-api-key", &flipped).is_err());
        assert_eq!(ring.open("old", "plain text").unwrap(), None);
    }

    #[test]
    fn rotation_opens_old_values_and_reports_unknown_keys() {
        let old = key();
        let sealed = Keyring::new(old.clone(), vec![]).seal("n", "v");
        let rotated = Keyring::new(key(), vec![old]);
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open("n", &sealed).unwrap().as_deref(), Some("v"));
        assert!(rotated.is_current(&rotated.seal("n", "v")));
        let stranger = Keyring::new(key(), vec![]);
        assert!(matches!(
            stranger.open("n", &sealed),
            Err(CryptoError::UnknownKey { .. })
        ));
    }

    #[test]
    fn keys_are_32_bytes_of_hex_or_base64() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse(&MasterKey::generate()).is_ok());
        for bad in ["", "short", &"ab".repeat(31), "!!!!"] {
            assert_eq!(MasterKey::parse(bad).unwrap_err(), CryptoError::BadKey);
        }
        let shown = format!("{:?}", key());
        assert!(shown.starts_with("MasterKey(") && shown.len() < 20);
    }
}
