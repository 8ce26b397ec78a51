//! Sign-in with an OpenID Connect provider: validated config, compiled key
//! sets, and JWT verification against them (pure: the signing keys arrive
//! through the [`SecretResolver`](crate::SecretResolver) like secrets do).
//!
//! A verified token yields a caller whose teams are the IdP groups mapped in
//! `groups_to_teams`; its policy class is looked up by the set of policies
//! that apply (see [`crate::classes`]), built on first use.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::compile::SecretResolver;
use crate::error::ConfigError;
use crate::load::{is_valid_name, unique_names, Catalog, Located, NAME_RULE};
use crate::model::{IdentityProvider, PrincipalKind};
use crate::snapshot::{Caller, PrincipalInfo, Snapshot};

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

/// Checks every identity provider; returns their names.
pub(crate) fn validate<'a>(
    c: &'a Catalog,
    teams: &HashSet<&str>,
    err: &mut impl FnMut(&str, String, String),
) -> HashSet<&'a str> {
    let names = unique_names(
        c.identity_providers
            .iter()
            .map(|l| (l, l.item.name.as_str())),
        err,
    );
    let mut issuers: HashMap<&str, &str> = HashMap::new();
    for l in &c.identity_providers {
        let p = &l.item;
        let at = |field: &str| format!("{}.{field}", l.path);
        if !is_valid_name(&p.name) {
            err(&l.file, at("name"), NAME_RULE.into());
        }
        if let Err(m) = check_url(&p.issuer) {
            err(&l.file, at("issuer"), m);
        } else if let Some(first) = issuers.insert(&p.issuer, &l.path) {
            err(
                &l.file,
                at("issuer"),
                format!("the same issuer is already configured at {first}"),
            );
        }
        if let Some(uri) = &p.jwks_uri {
            if let Err(m) = check_url(uri) {
                err(&l.file, at("jwks_uri"), m);
            }
        }
        if p.audience.trim().is_empty() {
            err(
                &l.file,
                at("audience"),
                "must name the gateway's resource identifier (the `aud` its tokens carry)".into(),
            );
        }
        for (field, value) in [
            ("groups_claim", &p.groups_claim),
            ("principal_claim", &p.principal_claim),
        ] {
            if value.trim().is_empty() {
                err(&l.file, at(field), "must name a claim".into());
            }
        }
        for (group, team) in &p.groups_to_teams {
            if !teams.contains(team.as_str()) {
                err(
                    &l.file,
                    at(&format!("groups_to_teams.{group}")),
                    format!("unknown team {team:?}"),
                );
            }
        }
    }
    names
}

/// An issuer or key URL: `https://`, or `http://` on a loopback host only.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| format!("{url:?} is not a valid URL"))?;
    let host = parsed.host().unwrap_or("");
    match parsed.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") => Ok(()),
        Some("http") => Err(format!("{url:?} must use https (http only for localhost)")),
        _ => Err(format!("{url:?} must be an https:// URL")),
    }
}

/// Compiles the identity providers, reading each key set through `secrets`
/// under [`IdentityProvider::jwks_source`].
pub(crate) fn compile(
    catalog: &Catalog,
    principal_index: &HashMap<&str, u32>,
    secrets: &dyn SecretResolver,
) -> Result<Identity, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut identity = Identity::default();
    for (i, l) in catalog.identity_providers.iter().enumerate() {
        match compile_provider(l, secrets) {
            Ok(p) => {
                identity.by_issuer.insert(p.issuer.clone(), i);
                identity.providers.push(p);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let by_name: HashMap<&str, usize> = catalog
        .identity_providers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.item.name.as_str(), i))
        .collect();
    for l in &catalog.principals {
        let Some(idp) = l.item.identity_provider.as_deref() else {
            continue;
        };
        if let (Some(&p), Some(&idx)) = (by_name.get(idp), principal_index.get(&*l.item.name)) {
            identity
                .linked
                .insert((p, l.item.name.as_str().into()), (idx, l.item.disabled));
        }
    }
    for (i, l) in catalog.policies.iter().enumerate() {
        for team in &l.item.subjects.teams {
            identity
                .by_team
                .entry(team.as_str().into())
                .or_default()
                .push(i as u32);
        }
        for name in &l.item.subjects.principals {
            if let Some(&idx) = principal_index.get(name.as_str()) {
                identity.by_principal.entry(idx).or_default().push(i as u32);
            }
        }
    }
    Ok(identity)
}

fn compile_provider(
    l: &Located<IdentityProvider>,
    secrets: &dyn SecretResolver,
) -> Result<Provider, ConfigError> {
    let p = &l.item;
    let source = p.jwks_source();
    let at = |msg: String| ConfigError::new(&l.file, &l.path, msg);
    let text = secrets.resolve(&source).map_err(|m| {
        at(format!(
            "cannot read the signing keys of identity provider {:?} ({source}): {m}",
            p.name
        ))
    })?;
    let keys = parse_jwks(&text).map_err(|m| {
        at(format!(
            "the signing keys of identity provider {:?} ({source}): {m}",
            p.name
        ))
    })?;
    Ok(Provider {
        name: p.name.as_str().into(),
        issuer: p.issuer.clone(),
        audience: p.audience.clone(),
        groups_claim: p.groups_claim.clone(),
        principal_claim: p.principal_claim.clone(),
        kind: p.kind,
        groups_to_teams: p
            .groups_to_teams
            .iter()
            .map(|(g, t)| (g.clone(), Arc::from(t.as_str())))
            .collect(),
        keys,
    })
}

/// The usable signature keys of a JWKS document. Symmetric (`oct`) keys and
/// keys for encryption are skipped: a public key set never verifies HS*.
fn parse_jwks(text: &str) -> Result<Vec<Key>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for raw in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            continue;
        }
        let family: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => &[Algorithm::ES256],
                EllipticCurve::P384 => &[Algorithm::ES384],
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                &[Algorithm::EdDSA]
            }
            _ => continue,
        };
        // A key that names its algorithm verifies that one only.
        let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
            Some(alg) => match Algorithm::try_from(alg) {
                Ok(a) if family.contains(&a) => vec![a],
                _ => continue,
            },
            None => family.to_vec(),
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let fingerprint = {
            use sha2::Digest;
            let params = serde_json::to_vec(&jwk.algorithm).unwrap_or_default();
            sha2::Sha256::digest(&params).into()
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            fingerprint,
            algorithms,
            decoding,
        });
    }
    if keys.is_empty() {
        return Err("no usable signature key (RSA, P-256, P-384 or Ed25519)".into());
    }
    Ok(keys)
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
