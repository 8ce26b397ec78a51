//! Parse and merge config files, then validate references across them.
//!
//! The loader takes file contents, not paths: reading the directory is the
//! caller's job, so this crate stays free of I/O.

use std::collections::{HashMap, HashSet};

use crate::error::{ConfigError, ConfigErrors};
use crate::model::*;
use crate::pattern::Pattern;

/// An item together with where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The file the item came from.
    pub file: String,
    /// Field path of the item, e.g. `servers[2]`.
    pub path: String,
    /// The item.
    pub item: T,
}

/// The merged, validated catalog of every file under `config/`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Gateway settings (defaults when no file sets them).
    pub gateway: GatewaySettings,
    /// All teams.
    pub teams: Vec<Located<Team>>,
    /// All servers.
    pub servers: Vec<Located<Server>>,
    /// All principals.
    pub principals: Vec<Located<Principal>>,
    /// All policies.
    pub policies: Vec<Located<Policy>>,
    /// All identity providers.
    pub identity_providers: Vec<Located<IdentityProvider>>,
    /// All virtual servers.
    pub virtual_servers: Vec<Located<VirtualServer>>,
}

/// Parses every `(file name, YAML text)` pair, merges them and validates the result.
/// Returns every error found, each naming its file and field path.
pub fn load(files: &[(String, String)]) -> Result<Catalog, ConfigErrors> {
    let mut errors = Vec::new();
    let mut docs = Vec::new();
    for (name, text) in files {
        match parse_file(name, text) {
            Ok(doc) => docs.push((name.clone(), doc)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    assemble(docs)
}

/// Parses one YAML file; the error names the file and the field path.
pub fn parse_file(name: &str, text: &str) -> Result<ConfigFile, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(name, path, e.into_inner().to_string())
    })
}

/// Merges parsed documents (each named by its source, e.g. a file name or
/// `store`) and validates references across them.
pub fn assemble(docs: Vec<(String, ConfigFile)>) -> Result<Catalog, ConfigErrors> {
    let mut errors = Vec::new();
    let mut catalog = Catalog::default();
    let mut gateway_from: Option<String> = None;
    for (name, parsed) in docs {
        if let Some(g) = parsed.gateway {
            if let Some(first) = &gateway_from {
                errors.push(ConfigError::new(
                    &name,
                    "gateway",
                    format!("gateway settings are already set in {first}"),
                ));
            } else {
                if g.max_body_bytes == 0 {
                    errors.push(ConfigError::new(
                        &name,
                        "gateway.max_body_bytes",
                        "must be above 0",
                    ));
                }
                if let Some(url) = &g.public_url {
                    if let Err(m) = check_public_url(url) {
                        errors.push(ConfigError::new(&name, "gateway.public_url", m));
                    }
                }
                gateway_from = Some(name.clone());
                catalog.gateway = g;
            }
        }
        push_located(&mut catalog.teams, &name, "teams", parsed.teams);
        push_located(&mut catalog.servers, &name, "servers", parsed.servers);
        push_located(
            &mut catalog.principals,
            &name,
            "principals",
            parsed.principals,
        );
        push_located(&mut catalog.policies, &name, "policies", parsed.policies);
        push_located(
            &mut catalog.identity_providers,
            &name,
            "identity_providers",
            parsed.identity_providers,
        );
        push_located(
            &mut catalog.virtual_servers,
            &name,
            "virtual_servers",
            parsed.virtual_servers,
        );
    }
    if errors.is_empty() {
        validate(&catalog, &mut errors);
    }
    if errors.is_empty() {
        Ok(catalog)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn push_located<T>(into: &mut Vec<Located<T>>, file: &str, section: &str, items: Vec<T>) {
    into.extend(items.into_iter().enumerate().map(|(i, item)| Located {
        file: file.to_string(),
        path: format!("{section}[{i}]"),
        item,
    }));
}

/// Checks names are unique, references resolve, and values are well formed.
fn validate(c: &Catalog, errors: &mut Vec<ConfigError>) {
    let mut err = |l_file: &str, path: String, msg: String| {
        errors.push(ConfigError::new(l_file, path, msg));
    };

    let teams = unique_names(c.teams.iter().map(|l| (l, l.item.name.as_str())), &mut err);
    let servers = unique_names(
        c.servers.iter().map(|l| (l, l.item.name.as_str())),
        &mut err,
    );
    let principals = unique_names(
        c.principals.iter().map(|l| (l, l.item.name.as_str())),
        &mut err,
    );
    unique_names(
        c.policies.iter().map(|l| (l, l.item.name.as_str())),
        &mut err,
    );

    for l in &c.servers {
        let s = &l.item;
        if !is_valid_name(&s.name) {
            err(&l.file, format!("{}.name", l.path), NAME_RULE.into());
        }
        if !teams.contains(s.owner.as_str()) {
            err(
                &l.file,
                format!("{}.owner", l.path),
                format!("unknown team {:?}", s.owner),
            );
        }
        check_transport_fields(l, &mut err);
        match crate::endpoint::Endpoint::parse(&s.endpoint) {
            _ if s.transport == Transport::Stdio => {}
            Err(m) => err(&l.file, format!("{}.endpoint", l.path), m),
            Ok(e) if s.tls_ca.is_some() && !e.tls => err(
                &l.file,
                format!("{}.tls_ca", l.path),
                "only applies to https endpoints".into(),
            ),
            Ok(_) => {}
        }
        if let Some(ca) = &s.tls_ca {
            if !ca.starts_with("file:") || ca.len() == 5 {
                err(
                    &l.file,
                    format!("{}.tls_ca", l.path),
                    "must be a `file:PATH` reference to a PEM bundle".into(),
                );
            }
        }
        match &s.auth {
            UpstreamAuth::None => {}
            UpstreamAuth::Bearer { secret } => check_secret_ref(
                secret,
                &l.file,
                &format!("{}.auth.secret", l.path),
                &mut err,
            ),
            UpstreamAuth::Header { header, secret } => {
                if let Err(m) = check_injectable_header(header) {
                    err(&l.file, format!("{}.auth.header", l.path), m);
                }
                check_secret_ref(
                    secret,
                    &l.file,
                    &format!("{}.auth.secret", l.path),
                    &mut err,
                )
            }
            UpstreamAuth::OauthClientCredentials {
                token_url,
                client_id,
                client_secret,
                ..
            } => {
                if !(token_url.starts_with("https://") || token_url.starts_with("http://")) {
                    err(
                        &l.file,
                        format!("{}.auth.token_url", l.path),
                        format!("{token_url:?} is not an http(s) URL"),
                    );
                }
                if client_id.is_empty() {
                    err(
                        &l.file,
                        format!("{}.auth.client_id", l.path),
                        "must not be empty".into(),
                    );
                }
                check_secret_ref(
                    client_secret,
                    &l.file,
                    &format!("{}.auth.client_secret", l.path),
                    &mut err,
                )
            }
            UpstreamAuth::OauthAuthorizationCode {
                authorization_url,
                token_url,
                client_id,
                client_secret,
                revocation_url,
                ..
            } => {
                let urls = [
                    ("authorization_url", Some(authorization_url)),
                    ("token_url", Some(token_url)),
                    ("revocation_url", revocation_url.as_ref()),
                ];
                for (field, url) in urls.into_iter().filter_map(|(f, u)| Some((f, u?))) {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        err(
                            &l.file,
                            format!("{}.auth.{field}", l.path),
                            format!("{url:?} is not an http(s) URL"),
                        );
                    }
                }
                if client_id.is_empty() {
                    err(
                        &l.file,
                        format!("{}.auth.client_id", l.path),
                        "must not be empty".into(),
                    );
                }
                if let Some(secret) = client_secret {
                    check_secret_ref(
                        secret,
                        &l.file,
                        &format!("{}.auth.client_secret", l.path),
                        &mut err,
                    )
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, t) in s.tools.iter().enumerate() {
            if !seen.insert(t.name.as_str()) {
                err(
                    &l.file,
                    format!("{}.tools[{i}].name", l.path),
                    format!("duplicate tool {:?}", t.name),
                );
            }
        }
    }

    let idps = crate::identity::validate(c, &teams, &mut err);

    let mut digests: HashMap<String, String> = HashMap::new();
    for l in &c.principals {
        let p = &l.item;
        if let Some(idp) = &p.identity_provider {
            if !idps.contains(idp.as_str()) {
                err(
                    &l.file,
                    format!("{}.identity_provider", l.path),
                    format!("unknown identity provider {idp:?}"),
                );
            }
        }
        for (i, t) in p.teams.iter().enumerate() {
            if !teams.contains(t.as_str()) {
                err(
                    &l.file,
                    format!("{}.teams[{i}]", l.path),
                    format!("unknown team {t:?}"),
                );
            }
        }
        for (i, t) in p.tokens.iter().enumerate() {
            let path = format!("{}.tokens[{i}].sha256", l.path);
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                err(
                    &l.file,
                    path,
                    "must be the 64-character hex SHA-256 of the token, never the token".into(),
                );
            } else if let Some(first) = digests.insert(t.sha256.to_ascii_lowercase(), path.clone())
            {
                err(
                    &l.file,
                    path,
                    format!("the same token digest is already used at {first}"),
                );
            }
        }
    }

    for l in &c.policies {
        let p = &l.item;
        for (i, t) in p.subjects.teams.iter().enumerate() {
            if !teams.contains(t.as_str()) {
                err(
                    &l.file,
                    format!("{}.subjects.teams[{i}]", l.path),
                    format!("unknown team {t:?}"),
                );
            }
        }
        for (i, n) in p.subjects.principals.iter().enumerate() {
            if !principals.contains(n.as_str()) {
                err(
                    &l.file,
                    format!("{}.subjects.principals[{i}]", l.path),
                    format!("unknown principal {n:?}"),
                );
            }
        }
        for (kind, rules) in [("allow", &p.allow), ("deny", &p.deny)] {
            for (i, r) in rules.iter().enumerate() {
                let path = format!("{}.{kind}[{i}]", l.path);
                let server_pattern = Pattern::new(&r.server);
                if server_pattern.is_literal()
                    && !servers.contains(r.server.as_str())
                    && !c.virtual_servers.iter().any(|v| v.item.name == r.server)
                {
                    err(
                        &l.file,
                        format!("{path}.server"),
                        format!("unknown server {:?}", r.server),
                    );
                }
                if r.tools.is_empty() {
                    err(
                        &l.file,
                        format!("{path}.tools"),
                        "lists no tool pattern".into(),
                    );
                }
                for key in r.annotations.keys() {
                    if !HINT_DEFAULTS.iter().any(|(h, _)| h == key) {
                        err(
                            &l.file,
                            format!("{path}.annotations.{key}"),
                            "unknown annotation: use readOnlyHint, destructiveHint, idempotentHint or openWorldHint".into(),
                        );
                    }
                }
            }
        }
    }
    crate::virtual_servers::validate(c, &teams, &principals, errors);
}

pub(crate) const NAME_RULE: &str = "names use letters, digits, '-', '_' and '.' only";

pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn unique_names<'a, T: 'a>(
    items: impl Iterator<Item = (&'a Located<T>, &'a str)>,
    err: &mut impl FnMut(&str, String, String),
) -> HashSet<&'a str> {
    let mut seen: HashMap<&str, (&str, &str)> = HashMap::new();
    for (l, name) in items {
        if let Some((file, path)) = seen.get(name) {
            err(
                &l.file,
                format!("{}.name", l.path),
                format!("duplicate name {name:?} (first defined in {file} at {path})"),
            );
        } else {
            seen.insert(name, (l.file.as_str(), l.path.as_str()));
        }
    }
    seen.into_keys().collect()
}

/// `command`, `args`, `env`, `secret_env` and `stdio` belong to stdio
/// servers only; a stdio server needs a command and has no endpoint.
fn check_transport_fields(l: &Located<Server>, err: &mut impl FnMut(&str, String, String)) {
    let s = &l.item;
    let field = |name: &str| format!("{}.{name}", l.path);
    if s.transport != Transport::Stdio {
        let stdio_only = [
            ("command", s.command.is_some()),
            ("args", !s.args.is_empty()),
            ("env", !s.env.is_empty()),
            ("secret_env", !s.secret_env.is_empty()),
            ("stdio", s.stdio.is_some()),
        ];
        for (name, set) in stdio_only {
            if set {
                err(
                    &l.file,
                    field(name),
                    "only applies to `transport: stdio` servers".into(),
                );
            }
        }
        return;
    }
    if s.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
        err(
            &l.file,
            field("command"),
            "a stdio server needs the program to run".into(),
        );
    }
    if !s.endpoint.is_empty() {
        err(
            &l.file,
            field("endpoint"),
            "a stdio server has no endpoint (the gateway runs `command`)".into(),
        );
    }
    if s.tls_ca.is_some() {
        err(
            &l.file,
            field("tls_ca"),
            "only applies to https endpoints".into(),
        );
    }
    if !matches!(s.auth, UpstreamAuth::None) {
        err(
            &l.file,
            field("auth"),
            "a stdio server takes its credentials from `secret_env`, not `auth`".into(),
        );
    }
    for (name, reference) in &s.secret_env {
        check_secret_ref(
            reference,
            &l.file,
            &field(&format!("secret_env.{name}")),
            err,
        );
    }
    for name in s.env.keys().chain(s.secret_env.keys()) {
        if name.is_empty() || name.contains(['=', '\0']) {
            err(
                &l.file,
                field("env"),
                format!("{name:?} is not a valid environment variable name"),
            );
        }
    }
    if let Some(settings) = &s.stdio {
        if settings.max_processes == 0 {
            err(
                &l.file,
                field("stdio.max_processes"),
                "must be at least 1".into(),
            );
        }
        if settings.idle_timeout_secs == 0 {
            err(
                &l.file,
                field("stdio.idle_timeout_secs"),
                "must be at least 1".into(),
            );
        }
    }
}

fn check_secret_ref(
    reference: &str,
    file: &str,
    path: &str,
    err: &mut impl FnMut(&str, String, String),
) {
    let ok = match reference.split_once(':') {
        Some(("env" | "file" | "store", rest)) => !rest.is_empty(),
        _ => false,
    };
    if !ok {
        err(
            file,
            path.to_string(),
            "must be a secret reference `env:NAME`, `file:PATH` or `store:NAME`, never the secret itself".into(),
        );
    }
}

/// Headers the gateway owns and never lets config overwrite.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

fn check_injectable_header(name: &str) -> Result<(), String> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(format!(
            "{name:?} is managed by the gateway and cannot carry a credential"
        ));
    }
    Ok(())
}

/// The gateway's external base URL: `http(s)://host[:port][/prefix]`, no query.
fn check_public_url(url: &str) -> Result<(), String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| format!("{url:?} is not a valid URL"))?;
    let ok = matches!(parsed.scheme_str(), Some("http" | "https"))
        && parsed.host().is_some()
        && parsed.query().is_none()
        && !url.contains('#');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{url:?} must be the gateway's external base URL, e.g. https://mcp.example.com"
        ))
    }
}
