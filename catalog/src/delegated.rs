//! Per-user delegated OAuth tokens, as shipped and as compiled.
//!
//! For a server with `auth: {type: oauth-authorization-code}` the control
//! plane keeps each connected user's refresh token (sealed, never shipped)
//! and ships only their current access tokens, by principal name, with the
//! URL where a user who has not connected can do so
//! ([`SnapshotDocument::delegated`](crate::SnapshotDocument::delegated)).
//! Disabled principals' tokens are never shipped, and are dropped again at
//! compile time should a document carry one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

/// One delegated server's tokens as the control plane ships them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DelegatedTokens {
    /// Where a user connects their account (`{control plane}/v1/connect/{server}`).
    pub connect_url: String,
    /// Unexpired access tokens by principal name.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

/// One delegated server's tokens, ready for injection.
pub struct DelegatedAuth {
    /// Where a user who has not connected is sent.
    pub connect_url: Arc<str>,
    /// `Authorization: Bearer <token>` values (sensitive) by principal name.
    tokens: HashMap<Box<str>, HeaderValue>,
}

impl std::fmt::Debug for DelegatedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedAuth")
            .field("connect_url", &self.connect_url)
            .field("connected", &self.tokens.len())
            .finish()
    }
}

impl DelegatedAuth {
    /// Builds the injectable values, leaving out `disabled` principals and
    /// tokens that are not valid header values.
    pub fn build(
        shipped: Option<&DelegatedTokens>,
        fallback_connect_url: &str,
        disabled: &dyn Fn(&str) -> bool,
    ) -> DelegatedAuth {
        let tokens = shipped
            .into_iter()
            .flat_map(|d| d.tokens.iter())
            .filter(|(principal, _)| !disabled(principal))
            .filter_map(|(principal, token)| {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok()?;
                v.set_sensitive(true);
                Some((Box::<str>::from(principal.as_str()), v))
            })
            .collect();
        let connect_url = shipped
            .map(|d| d.connect_url.as_str())
            .filter(|u| !u.is_empty())
            .unwrap_or(fallback_connect_url);
        DelegatedAuth {
            connect_url: connect_url.into(),
            tokens,
        }
    }

    /// The caller's own `Authorization` value, if they have connected.
    pub fn token_for(&self, principal: &str) -> Option<&HeaderValue> {
        self.tokens.get(principal)
    }

    /// How many users have a live token.
    pub fn connected(&self) -> usize {
        self.tokens.len()
    }
}
