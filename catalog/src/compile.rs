//! Compile a validated [`Catalog`] into an immutable [`Snapshot`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::classes::{ClassSource, ClassTable};
use crate::endpoint::Endpoint;
use crate::error::{ConfigError, ConfigErrors};
use crate::load::{Catalog, Located};
use crate::model::{ApprovalStatus, Policy, Rule, Server, UpstreamAuth, HINT_DEFAULTS};
use crate::pattern::Pattern;
use crate::snapshot::*;

/// Resolves secret references (`env:NAME`, `file:PATH`). Supplied by the
/// caller so this crate does no I/O; errors must never contain the secret.
pub trait SecretResolver {
    /// Returns the secret text for `reference`, or why it cannot be read.
    fn resolve(&self, reference: &str) -> Result<String, String>;
}

impl<F: Fn(&str) -> Result<String, String>> SecretResolver for F {
    fn resolve(&self, reference: &str) -> Result<String, String> {
        self(reference)
    }
}

/// Compiles `catalog` as snapshot `version`, resolving credentials with `secrets`.
pub fn compile(
    catalog: &Catalog,
    version: u64,
    secrets: &dyn SecretResolver,
) -> Result<Snapshot, ConfigErrors> {
    let mut errors = Vec::new();
    // A virtual server's access list is one more policy; in classes it
    // stands after the upstreams as a server of its exposed tools.
    let with_access;
    let catalog = if catalog.virtual_servers.is_empty() {
        catalog
    } else {
        with_access = crate::virtual_snapshot::with_access_policies(catalog);
        &with_access
    };
    let virtual_servers = crate::virtual_snapshot::resolve_all(catalog)?;

    let approved: Vec<&Located<Server>> = catalog
        .servers
        .iter()
        .filter(|l| l.item.status == ApprovalStatus::Approved)
        .collect();
    let mut upstreams = Vec::with_capacity(approved.len());
    for (id, l) in approved.iter().enumerate() {
        match build_upstream(id as ServerId, l, &catalog.gateway.audit, secrets) {
            Ok(u) => upstreams.push(u),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let server_index = upstreams
        .iter()
        .map(|u| (Box::<str>::from(&*u.name), u.id))
        .collect();

    // Group principals by the exact set of policies that apply to them.
    let mut class_of_set: HashMap<BTreeSet<usize>, ClassId> = HashMap::new();
    let mut classes = Vec::new();
    let mut principals = Vec::new();
    let mut tokens = crate::config_map::ConfigMap::default();
    let mut grant_cache = HashMap::new();
    let approved_servers: Vec<&Server> = approved
        .iter()
        .map(|l| &l.item)
        .chain(virtual_servers.iter().map(|(_, stand_in)| stand_in))
        .collect();
    for l in &catalog.principals {
        let p = &l.item;
        let set: BTreeSet<usize> = catalog
            .policies
            .iter()
            .enumerate()
            .filter(|(_, pl)| applies_to(&pl.item, &p.name, &p.teams))
            .map(|(i, _)| i)
            .collect();
        let class = *class_of_set.entry(set.clone()).or_insert_with(|| {
            let policies: Vec<(usize, &Policy)> = set
                .iter()
                .map(|&i| (i, &catalog.policies[i].item))
                .collect();
            classes.push(build_class(&policies, &approved_servers, &mut grant_cache));
            (classes.len() - 1) as ClassId
        });
        let principal = principals.len() as u32;
        principals.push(PrincipalInfo {
            name: p.name.as_str().into(),
            kind: p.kind,
            teams: p.teams.iter().map(|t| Arc::from(t.as_str())).collect(),
            token_names: p
                .tokens
                .iter()
                .map(|t| Arc::from(t.name.as_str()))
                .collect(),
        });
        if p.disabled {
            continue;
        }
        for (i, t) in p.tokens.iter().enumerate().filter(|(_, t)| !t.revoked) {
            let mut digest = [0u8; 32];
            // Validated as 64 hex characters by the loader.
            if hex::decode_to_slice(&t.sha256, &mut digest).is_ok() {
                tokens.insert(
                    digest,
                    Caller {
                        principal,
                        token: i as u32,
                        class,
                    },
                );
            }
        }
    }

    let session_key = session_key(catalog, secrets)?;
    let principal_index: HashMap<&str, u32> = catalog
        .principals
        .iter()
        .enumerate()
        .map(|(i, l)| (l.item.name.as_str(), i as u32))
        .collect();
    let identity =
        crate::identity::compile(catalog, &principal_index, secrets).map_err(ConfigErrors)?;
    // JWT callers' team sets are known only at sign-in: keep what classes are built from.
    let source = (!catalog.identity_providers.is_empty()).then(|| ClassSource {
        policies: catalog.policies.iter().map(|l| l.item.clone()).collect(),
        servers: approved_servers.iter().map(|s| (*s).clone()).collect(),
    });
    let sets = class_of_set
        .into_iter()
        .map(|(set, id)| (set.into_iter().map(|i| i as u32).collect(), id))
        .collect();
    let classes = ClassTable::new(classes, sets, source);
    Ok(Snapshot {
        version,
        settings: Settings {
            max_body_bytes: catalog.gateway.max_body_bytes,
            public_url: catalog.gateway.public_url.clone(),
            scopes_supported: catalog.gateway.scopes_supported.clone(),
            allowed_hosts: catalog
                .gateway
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allowed_origins: catalog.gateway.allowed_origins.clone(),
            audit: catalog.gateway.audit.clone(),
            session_key,
        },
        tokens,
        principals,
        classes,
        virtuals: crate::virtual_snapshot::build(catalog, &virtual_servers, &server_index),
        virtual_index: catalog
            .virtual_servers
            .iter()
            .enumerate()
            .map(|(i, v)| (Box::<str>::from(v.item.name.as_str()), i as u32))
            .collect(),
        server_index,
        upstreams,
        identity,
    })
}

fn applies_to(policy: &Policy, principal: &str, teams: &[String]) -> bool {
    policy.subjects.principals.iter().any(|n| n == principal)
        || policy.subjects.teams.iter().any(|t| teams.contains(t))
}

/// A server and the content of the rules that apply to it (deny?, tool
/// patterns, annotations): classes with the same key get the same grant,
/// built once, however many policies spell those rules.
type GrantKey<'a> = (usize, Vec<(bool, &'a [String], &'a BTreeMap<String, bool>)>);

pub(crate) fn build_class<'a>(
    policies: &[(usize, &'a Policy)],
    servers: &[&Server],
    cache: &mut HashMap<GrantKey<'a>, Arc<Grant>>,
) -> PolicyClass {
    let just_policies: Vec<&Policy> = policies.iter().map(|(_, p)| *p).collect();
    let grants = servers
        .iter()
        .enumerate()
        .map(|(sid, server)| {
            let name = &server.name;
            let mut rules = Vec::new();
            for (_, p) in policies {
                for (deny, list) in [(false, &p.allow), (true, &p.deny)] {
                    for r in list.iter() {
                        if Pattern::new(&r.server).matches(name) {
                            rules.push((deny, r.tools.as_slice(), &r.annotations));
                        }
                    }
                }
            }
            rules.sort();
            rules.dedup();
            cache
                .entry((sid, rules))
                .or_insert_with(|| Arc::new(build_grant(&just_policies, server)))
                .clone()
        })
        .collect();
    PolicyClass { grants }
}

/// A rule's tool pattern with the annotation values it requires.
struct ToolMatcher<'a> {
    pattern: Pattern,
    hints: &'a BTreeMap<String, bool>,
}

impl ToolMatcher<'_> {
    /// Do the tool's annotations (MCP defaults where unset) have the required values?
    fn hints_hold(&self, annotations: &BTreeMap<String, bool>) -> bool {
        self.hints.iter().all(|(hint, want)| {
            let default = HINT_DEFAULTS
                .iter()
                .find(|(h, _)| h == hint)
                .map(|(_, d)| *d);
            annotations.get(hint).copied().or(default) == Some(*want)
        })
    }

    fn matches(&self, name: &str, annotations: &BTreeMap<String, bool>) -> bool {
        self.pattern.matches(name) && self.hints_hold(annotations)
    }
}

fn build_grant(policies: &[&Policy], server: &Server) -> Grant {
    let matchers = |rules: fn(&Policy) -> &Vec<Rule>| -> Vec<ToolMatcher<'_>> {
        policies
            .iter()
            .flat_map(|p| rules(p).iter())
            .filter(|r| Pattern::new(&r.server).matches(&server.name))
            .flat_map(|r| {
                r.tools.iter().map(move |t| ToolMatcher {
                    pattern: Pattern::new(t),
                    hints: &r.annotations,
                })
            })
            .collect()
    };
    let allow = matchers(|p| &p.allow);
    let deny = matchers(|p| &p.deny);
    let unconditional = |m: &ToolMatcher| m.hints.is_empty() && m.pattern.matches_everything();
    if allow.is_empty() || deny.iter().any(unconditional) {
        return Grant::None;
    }
    let decide = |name: &str, annotations: &BTreeMap<String, bool>| {
        allow.iter().any(|m| m.matches(name, annotations))
            && !deny.iter().any(|m| m.matches(name, annotations))
    };
    let known = server
        .tools
        .iter()
        .map(|t| {
            (
                Box::<str>::from(t.name.as_str()),
                decide(&t.name, &t.annotations),
            )
        })
        .collect();
    // Tools the catalog does not know have the default annotations: keep the
    // patterns of the rules that hold for those.
    let no_annotations = BTreeMap::new();
    let for_unknown = |ms: &[ToolMatcher]| -> Vec<Pattern> {
        ms.iter()
            .filter(|m| m.hints_hold(&no_annotations))
            .map(|m| m.pattern.clone())
            .collect()
    };
    Grant::Tools(ToolRules {
        allow_all: deny.is_empty() && allow.iter().any(unconditional),
        allow: for_unknown(&allow),
        deny: for_unknown(&deny),
        known,
    })
}

fn build_upstream(
    id: ServerId,
    l: &Located<Server>,
    audit: &crate::model::AuditSettings,
    secrets: &dyn SecretResolver,
) -> Result<Upstream, ConfigError> {
    let s = &l.item;
    let at =
        |field: &str, msg: String| ConfigError::new(&l.file, format!("{}.{field}", l.path), msg);
    let stdio = match s.transport {
        crate::model::Transport::Stdio => Some(Arc::new(stdio_spec(s, secrets, &at)?)),
        _ => None,
    };
    let endpoint = match &stdio {
        Some(_) => Endpoint::parse(STDIO_PLACEHOLDER_ENDPOINT),
        None => Endpoint::parse(&s.endpoint),
    }
    .map_err(|m| at("endpoint", m))?;
    let host_header =
        HeaderValue::from_str(&endpoint.authority).map_err(|e| at("endpoint", e.to_string()))?;
    let target = endpoint
        .path_and_query
        .parse()
        .map_err(|e: http::uri::InvalidUri| at("endpoint", e.to_string()))?;
    let addr = endpoint
        .host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, endpoint.port));
    let secret_value = |reference: &str, prefix: &str| -> Result<HeaderValue, ConfigError> {
        let secret = secrets
            .resolve(reference)
            .map_err(|m| at("auth.secret", format!("cannot read {reference}: {m}")))?;
        let mut v = HeaderValue::from_str(&format!("{prefix}{}", secret.trim())).map_err(|_| {
            at(
                "auth.secret",
                format!("{reference} is not a valid header value"),
            )
        })?;
        v.set_sensitive(true);
        Ok(v)
    };
    let credential = match &s.auth {
        UpstreamAuth::None => None,
        UpstreamAuth::Bearer { secret } => Some((
            http::header::AUTHORIZATION,
            secret_value(secret, "Bearer ")?,
        )),
        UpstreamAuth::Header { header, secret } => Some((
            HeaderName::from_bytes(header.as_bytes())
                .map_err(|e| at("auth.header", e.to_string()))?,
            secret_value(secret, "")?,
        )),
        UpstreamAuth::OauthClientCredentials { .. } => None,
        // Per user: see `delegated` below.
        UpstreamAuth::OauthAuthorizationCode { .. } => None,
    };
    // The token is fetched by the control plane: until it has one (or while
    // its refresh fails past expiry) calls get a clear 503, never an
    // unauthenticated request upstream.
    let mut credential_unavailable = None;
    let credential = match &s.auth {
        UpstreamAuth::OauthClientCredentials { .. } => {
            match secrets.resolve(&crate::model::oauth_token_ref(&s.name)) {
                Ok(token) => {
                    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                        .map_err(|_| {
                            at(
                                "auth",
                                "the access token is not a valid header value".into(),
                            )
                        })?;
                    v.set_sensitive(true);
                    Some((http::header::AUTHORIZATION, v))
                }
                Err(_) => {
                    credential_unavailable = Some(Arc::<str>::from(
                        "no valid OAuth access token for this server (the control plane cannot obtain one)",
                    ));
                    None
                }
            }
        }
        _ => credential,
    };
    let tls_ca_pem = match &s.tls_ca {
        None => None,
        Some(reference) => {
            Some(Arc::<str>::from(secrets.resolve(reference).map_err(
                |m| at("tls_ca", format!("cannot read {reference}: {m}")),
            )?))
        }
    };
    Ok(Upstream {
        id,
        name: s.name.as_str().into(),
        endpoint,
        transport: s.transport,
        stdio,
        addr,
        host_header,
        target,
        credential,
        tls_ca_pem,
        offered: s
            .offered_tools
            .as_ref()
            .map(|names| names.iter().map(|n| Box::<str>::from(n.as_str())).collect()),
        tools: s.tools.iter().map(|t| t.name.as_str().into()).collect(),
        audit: s.audit.clone(),
        redact_fragments: redact_fragments(&audit.redact_keys, &s.audit.redact_keys),
        credential_unavailable,
        // No user token until the shipped ones are attached: default deny.
        delegated: matches!(s.auth, UpstreamAuth::OauthAuthorizationCode { .. })
            .then(|| Arc::new(crate::delegated::DelegatedAuth::build(None, "", &|_| true))),
    })
}

/// The redaction fragments for a server: the gateway's keys and the
/// server's, lower-cased (a key matches when it contains one).
fn redact_fragments(gateway: &[String], server: &[String]) -> Vec<String> {
    gateway
        .iter()
        .chain(server)
        .map(|k| k.to_lowercase())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The endpoint a stdio server's upstream carries: the proxy's bridge
/// serves it on loopback at an address of its choosing.
pub const STDIO_PLACEHOLDER_ENDPOINT: &str = "http://127.0.0.1/mcp";

/// Resolves a stdio server's command and environment (`secret_env` through
/// `secrets`; errors name the reference, never the value).
fn stdio_spec(
    s: &Server,
    secrets: &dyn SecretResolver,
    at: &dyn Fn(&str, String) -> ConfigError,
) -> Result<crate::stdio_spec::StdioSpec, ConfigError> {
    let settings = s.stdio.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> =
        s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (name, reference) in &s.secret_env {
        let value = secrets.resolve(reference).map_err(|m| {
            at(
                &format!("secret_env.{name}"),
                format!("cannot read {reference}: {m}"),
            )
        })?;
        env.push((
            name.clone(),
            value.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    Ok(crate::stdio_spec::StdioSpec {
        command: s.command.clone().unwrap_or_default(),
        args: s.args.clone(),
        env,
        secret_names: s.secret_env.keys().cloned().collect(),
        mode: settings.mode,
        max_processes: settings.max_processes,
        idle_timeout_secs: settings.idle_timeout_secs,
    })
}

/// The session-sealing key: from `gateway.session_secret` (which must
/// resolve), else from the control plane's generated secret if provided.
fn session_key(
    catalog: &Catalog,
    secrets: &dyn SecretResolver,
) -> Result<Option<[u8; 32]>, ConfigErrors> {
    use sha2::Digest;
    let value = match &catalog.gateway.session_secret {
        Some(reference) => Some(secrets.resolve(reference).map_err(|m| {
            ConfigErrors(vec![ConfigError::new(
                "gateway",
                "gateway.session_secret",
                format!("cannot read {reference}: {m}"),
            )])
        })?),
        None => secrets.resolve(crate::model::GENERATED_SESSION_SECRET).ok(),
    };
    Ok(value.map(|v| sha2::Sha256::digest(v.as_bytes()).into()))
}
