//! Identity providers from config: validated, then compiled with their key
//! sets (read through the [`SecretResolver`]) into the snapshot's [`Identity`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{Identity, Key, Provider};
use crate::compile::SecretResolver;
use crate::error::ConfigError;
use crate::load::{is_valid_name, unique_names, Catalog, Located, NAME_RULE};
use crate::model::IdentityProvider;

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
