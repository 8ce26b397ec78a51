//! Sign-in with an OpenID Connect provider: validated config, compiled key
//! sets, and JWT verification against them (pure: the signing keys arrive
//! through the [`SecretResolver`](crate::SecretResolver) like secrets do).
//!
//! A verified token yields a caller whose teams are the IdP groups mapped in
//! `groups_to_teams`; its policy class is looked up by the set of policies
//! that apply (see the private `classes` module), built on first use.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::model::PrincipalKind;
use crate::snapshot::{Caller, PrincipalInfo, Snapshot};

mod compile;
#[cfg(feature = "fetch")]
pub(crate) use compile::check_url;
pub(crate) use compile::{compile, validate};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// Why a JWT was not accepted. Messages name no token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or an algorithm the gateway never accepts (`none`).
    #[error("not a well-formed signed JWT (missing or unsupported algorithm)")]
    Malformed,
    /// `iss` names no configured identity provider.
    #[error("issued by an issuer that is not a configured identity provider")]
    UnknownIssuer,
    /// No key of the provider matches the token's `kid`.
    #[error("signed with a key the identity provider does not publish")]
    UnknownKey,
    /// The header's `alg` is not one the selected key verifies (e.g. HS256 with a public key).
    #[error("its algorithm does not match the identity provider's signing key")]
    AlgorithmNotAllowed,
    /// The signature does not verify.
    #[error("its signature does not verify")]
    BadSignature,
    /// `aud` does not contain the provider's audience.
    #[error("issued for another audience")]
    WrongAudience,
    /// `iss` differs from the provider's issuer.
    #[error("issued by another issuer")]
    WrongIssuer,
    /// `exp` is past (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("not valid yet")]
    NotYetValid,
    /// A required claim is missing or not of the expected type.
    #[error("lacks a valid {0:?} claim")]
    MissingClaim(String),
    /// The principal is declared in config and disabled there.
    #[error("principal {0:?} is disabled")]
    Disabled(String),
    /// Too many distinct policy combinations to build one more class.
    #[error("too many distinct group combinations in this snapshot")]
    TooManyClasses,
}

/// A token whose signature and claims were verified, kept so the caller can be
/// re-derived under a newer snapshot without verifying again.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    issuer: String,
    key: [u8; 32],
    audiences: Vec<String>,
    exp: u64,
    nbf: Option<u64>,
    claims: Map<String, Value>,
}

impl VerifiedToken {
    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// A JWT caller: the [`Caller`] to authorize with and who it is.
#[derive(Debug, Clone)]
pub struct JwtCaller {
    /// Class to authorize with. `principal` is the linked config principal,
    /// or `u32::MAX` when none: read the principal from [`JwtCaller::principal`].
    pub caller: Caller,
    /// Principal name (the principal claim), kind, teams, and the agent (the
    /// token's `azp` / `client_id`, else the provider's name) as its only token name.
    pub principal: Arc<PrincipalInfo>,
}

/// The compiled identity providers of a snapshot.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    providers: Vec<Provider>,
    by_issuer: HashMap<String, usize>,
    /// (provider, principal name) → the config principal it signs in, and
    /// whether that principal is disabled.
    linked: HashMap<(usize, Box<str>), (u32, bool)>,
    /// Team → indices of the policies naming it.
    by_team: HashMap<Box<str>, Vec<u32>>,
    /// Principal index → indices of the policies naming it.
    by_principal: HashMap<u32, Vec<u32>>,
}

#[derive(Debug)]
struct Provider {
    name: Arc<str>,
    issuer: String,
    audience: String,
    groups_claim: String,
    principal_claim: String,
    kind: PrincipalKind,
    groups_to_teams: HashMap<String, Arc<str>>,
    keys: Vec<Key>,
}

struct Key {
    kid: Option<String>,
    /// SHA-256 of the key's public parameters.
    fingerprint: [u8; 32],
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Does `token` look like a JWS compact JWT (three base64url parts)?
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        let ok = !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // The signature part of `alg: none` is empty: still a JWT (refused later).
        let empty_signature = parts == 2 && part.is_empty();
        if !ok && !empty_signature {
            return false;
        }
        parts += 1;
    }
    parts == 3
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl Identity {
    fn provider(&self, issuer: &str) -> Result<(usize, &Provider), JwtError> {
        let i = *self.by_issuer.get(issuer).ok_or(JwtError::UnknownIssuer)?;
        Ok((i, &self.providers[i]))
    }
}

impl Snapshot {
    /// Are any identity providers configured (JWT sign-in and OAuth discovery on)?
    pub fn has_identity_providers(&self) -> bool {
        !self.identity.providers.is_empty()
    }

    /// The configured issuers (the OAuth authorization servers).
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.identity.providers.iter().map(|p| p.issuer.as_str())
    }

    /// Verifies a JWT's signature with its issuer's key (selected by `kid`)
    /// and its `iss`, `aud`, `exp` and `nbf` (60 s leeway).
    pub fn verify_jwt(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        #[derive(serde::Deserialize)]
        struct Peek {
            iss: Option<String>,
        }
        // Unknown `alg` values, `none` among them, fail to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let peek: Peek = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| JwtError::Malformed)?;
        let (_, provider) = self
            .identity
            .provider(peek.iss.as_deref().ok_or(JwtError::UnknownIssuer)?)?;
        let key = match &header.kid {
            Some(kid) => provider
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None if provider.keys.len() == 1 => provider.keys.first(),
            None => None,
        }
        .ok_or(JwtError::UnknownKey)?;
        // The key decides the algorithm, never the token.
        if !key.algorithms.contains(&header.alg) {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&provider.issuer]);
        validation.set_audience(&[&provider.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => JwtError::BadSignature,
                    K::ExpiredSignature => JwtError::Expired,
                    K::ImmatureSignature => JwtError::NotYetValid,
                    K::InvalidAudience => JwtError::WrongAudience,
                    K::InvalidIssuer => JwtError::WrongIssuer,
                    K::InvalidAlgorithm => JwtError::AlgorithmNotAllowed,
                    K::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
                    _ => JwtError::Malformed,
                }
            })?;
        let claims = data.claims;
        let number = |name: &str| claims.get(name).and_then(Value::as_u64);
        let audiences = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Ok(VerifiedToken {
            issuer: provider.issuer.clone(),
            key: key.fingerprint,
            audiences,
            exp: number("exp").ok_or_else(|| JwtError::MissingClaim("exp".into()))?,
            nbf: number("nbf"),
            claims,
        })
    }

    /// The caller a verified token signs in under this snapshot: its issuer,
    /// audience and key must still be configured here and it must still be
    /// within its validity window. Teams come from the mapped groups (and a
    /// linked config principal); the class is built on first use, then looked up.
    pub fn jwt_caller(&self, token: &VerifiedToken) -> Result<JwtCaller, JwtError> {
        let (p_index, provider) = self.identity.provider(&token.issuer)?;
        if !token.audiences.contains(&provider.audience) {
            return Err(JwtError::WrongAudience);
        }
        if !provider.keys.iter().any(|k| k.fingerprint == token.key) {
            return Err(JwtError::UnknownKey);
        }
        let now = now();
        if token.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(JwtError::Expired);
        }
        if token
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
        {
            return Err(JwtError::NotYetValid);
        }
        let name = claim(&token.claims, &provider.principal_claim)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| JwtError::MissingClaim(provider.principal_claim.clone()))?;
        let mut teams: BTreeSet<Arc<str>> = groups(&token.claims, &provider.groups_claim)
            .filter_map(|g| provider.groups_to_teams.get(g).cloned())
            .collect();
        let linked = self
            .identity
            .linked
            .get(&(p_index, Box::from(name)))
            .copied();
        let mut kind = provider.kind;
        if let Some((idx, disabled)) = linked {
            let declared = &self.principals[idx as usize];
            if disabled {
                return Err(JwtError::Disabled(declared.name.to_string()));
            }
            kind = declared.kind;
            teams.extend(declared.teams.iter().cloned());
        }
        let linked = linked.map(|(idx, _)| idx);
        let mut set: Vec<u32> = teams
            .iter()
            .filter_map(|t| self.identity.by_team.get(&**t))
            .flatten()
            .chain(
                linked
                    .and_then(|idx| self.identity.by_principal.get(&idx))
                    .into_iter()
                    .flatten(),
            )
            .copied()
            .collect();
        set.sort_unstable();
        set.dedup();
        let class = self
            .classes
            .for_policies(&set)
            .ok_or(JwtError::TooManyClasses)?;
        let agent = ["azp", "client_id"]
            .iter()
            .find_map(|c| token.claims.get(*c).and_then(Value::as_str))
            .map_or_else(|| provider.name.clone(), Arc::from);
        Ok(JwtCaller {
            caller: Caller {
                principal: linked.unwrap_or(u32::MAX),
                token: 0,
                class,
            },
            principal: Arc::new(PrincipalInfo {
                name: name.into(),
                kind,
                teams: teams.into_iter().collect(),
                token_names: vec![agent],
            }),
        })
    }
}

/// A claim by name, or by dotted path into nested objects.
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for part in parts {
        v = v.get(part)?;
    }
    Some(v)
}

/// The group names of a groups claim: an array of strings, or one string.
fn groups<'a>(claims: &'a Map<String, Value>, name: &str) -> impl Iterator<Item = &'a str> {
    let v = claim(claims, name);
    let list = v
        .and_then(Value::as_array)
        .map(|a| a.as_slice())
        .unwrap_or(&[]);
    let single = v.and_then(Value::as_str);
    list.iter().filter_map(Value::as_str).chain(single)
}

#[cfg(test)]
mod tests {
    use super::compile::check_url;
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("tg_demo_alice_0123456789abcdef"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a+b.c.d"));
    }

    #[test]
    fn urls() {
        assert!(check_url("https://idp.example.com/realms/x").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://idp.example.com").is_err());
        assert!(check_url("idp.example.com").is_err());
    }

    #[test]
    fn dotted_claims_and_single_string_groups() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"realm_access":{"roles":["a","b"]},"groups":"solo","email":"x@y"}"#,
        )
        .unwrap();
        assert_eq!(
            groups(&claims, "realm_access.roles").collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(groups(&claims, "groups").collect::<Vec<_>>(), ["solo"]);
        assert_eq!(groups(&claims, "missing").count(), 0);
        assert_eq!(claim(&claims, "email").unwrap(), "x@y");
    }
}
