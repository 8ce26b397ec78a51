//! Virtual servers: one MCP endpoint exposing chosen tools of several
//! registered servers, with its own access list.
//!
//! ```yaml
//! virtual_servers:
//!   - name: finance-readonly
//!     description: Read-only finance tools.
//!     naming: plain            # or `prefixed`: "<server>_<tool>"
//!     tools:
//!       - server: jira
//!         tools: [search_issues, "get_*"]     # names or globs (default: all)
//!         annotations: {readOnlyHint: true}   # optional filter
//!         rename: {search_issues: find_tickets}
//!       - server: confluence
//!         tools: [get_page]
//!     access:
//!       teams: [finance]
//! ```
//!
//! Selection works on the tools the catalog knows (declared in config or
//! found by discovery). A literal tool name no server has, a rename of a tool
//! not selected, and two tools exposed under one name are refused when the
//! config is validated. The access list grants every exposed tool; policies
//! may also name the virtual server like any server (allow or deny by exposed
//! name, deny wins).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::load::{Catalog, Located};
use crate::model::{Policy, Rule, Server, Subjects, HINT_DEFAULTS};
use crate::pattern::Pattern;

/// A virtual server as operators write it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    /// Unique among servers and virtual servers; agents reach it at `/mcp/{name}`.
    pub name: String,
    /// Free text, shown to agents as the server's instructions.
    #[serde(default)]
    pub description: String,
    /// How exposed names are formed.
    #[serde(default)]
    pub naming: Naming,
    /// The tools exposed, by server.
    pub tools: Vec<VirtualInclude>,
    /// Who may use the virtual server (every exposed tool).
    #[serde(default)]
    pub access: Subjects,
}

/// How a virtual server names the tools it exposes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// The tool's own name (or its rename); clashes are refused.
    #[default]
    Plain,
    /// `<server>_<tool>` (a rename still wins).
    Prefixed,
}

/// The tools taken from one server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualInclude {
    /// A registered server's name.
    pub server: String,
    /// Tool names or globs (`*`, `?`); all tools when omitted.
    #[serde(default = "all_tools")]
    pub tools: Vec<String>,
    /// Only tools whose annotation hints have these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, bool>,
    /// Original tool (or prompt) name → exposed name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    /// Prompt names or globs exposed from this server (none by default),
    /// named like its tools (`naming`, `rename`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// Resource URI globs exposed from this server (none by default), e.g.
    /// `"file:///reports/*"`; URIs are served unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

fn all_tools() -> Vec<String> {
    vec!["*".to_string()]
}

/// One tool a virtual server exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// The name agents see and call.
    pub name: String,
    /// The server that owns the tool.
    pub server: String,
    /// The tool's name on that server.
    pub original: String,
}

/// The tools `v` exposes, in declaration order, given the catalog's
/// servers; or what is wrong (each error names file and field).
pub fn resolve(
    v: &Located<VirtualServer>,
    servers: &[Located<Server>],
) -> Result<Vec<Exposed>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut err = |field: String, msg: String| {
        errors.push(ConfigError::new(
            &v.file,
            format!("{}.{field}", v.path),
            msg,
        ));
    };
    let mut exposed: Vec<Exposed> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    if v.item.tools.is_empty() {
        err(
            "tools".into(),
            "exposes nothing: list servers under `tools`".into(),
        );
    }
    for (i, inc) in v.item.tools.iter().enumerate() {
        let Some(server) = servers.iter().find(|s| s.item.name == inc.server) else {
            err(
                format!("tools[{i}].server"),
                format!("unknown server {:?}", inc.server),
            );
            continue;
        };
        for key in inc.annotations.keys() {
            if !HINT_DEFAULTS.iter().any(|(h, _)| h == key) {
                err(
                    format!("tools[{i}].annotations.{key}"),
                    "unknown annotation: use readOnlyHint, destructiveHint, idempotentHint or openWorldHint".into(),
                );
            }
        }
        let patterns: Vec<Pattern> = inc.tools.iter().map(|t| Pattern::new(t)).collect();
        for (j, p) in patterns.iter().enumerate() {
            if p.is_literal() && !server.item.tools.iter().any(|t| t.name == p.as_str()) {
                err(
                    format!("tools[{i}].tools[{j}]"),
                    format!(
                        "server {:?} has no tool {:?} (declare it under the server, or run discovery)",
                        inc.server,
                        p.as_str()
                    ),
                );
            }
        }
        let selected: Vec<&str> = server
            .item
            .tools
            .iter()
            .filter(|t| patterns.iter().any(|p| p.matches(&t.name)))
            .filter(|t| hints_hold(&inc.annotations, &t.annotations))
            .map(|t| t.name.as_str())
            .collect();
        let prompt_patterns: Vec<Pattern> = inc.prompts.iter().map(|p| Pattern::new(p)).collect();
        for from in inc.rename.keys() {
            // Prompts are not in the catalog: a rename may name one.
            let a_prompt = prompt_patterns.iter().any(|p| p.matches(from));
            if !selected.contains(&from.as_str()) && !a_prompt {
                err(
                    format!("tools[{i}].rename.{from}"),
                    format!("renames {from:?}, which this entry does not select"),
                );
            }
        }
        for tool in selected {
            let name = match (inc.rename.get(tool), v.item.naming) {
                (Some(renamed), _) => renamed.clone(),
                (None, Naming::Plain) => tool.to_string(),
                (None, Naming::Prefixed) => format!("{}_{tool}", inc.server),
            };
            if !is_valid_tool_name(&name) {
                err(
                    format!("tools[{i}]"),
                    format!("exposed name {name:?} is not a valid tool name (1-128 of A-Z a-z 0-9 _ - .)"),
                );
                continue;
            }
            if let Some(&first) = by_name.get(&name) {
                let other = &exposed[first];
                if other.server == inc.server && other.original == tool {
                    continue; // selected twice: the same tool
                }
                err(
                    format!("tools[{i}]"),
                    format!(
                        "tool name {name:?} is exposed twice ({}/{} and {}/{tool}): rename one or use `naming: prefixed`",
                        other.server, other.original, inc.server
                    ),
                );
                continue;
            }
            by_name.insert(name.clone(), exposed.len());
            exposed.push(Exposed {
                name,
                server: inc.server.clone(),
                original: tool.to_string(),
            });
        }
    }
    if errors.is_empty() {
        Ok(exposed)
    } else {
        Err(errors)
    }
}

/// Checks every virtual server: names unique among servers and virtual
/// servers, members and tools known, exposed names distinct, access known.
pub(crate) fn validate(
    c: &Catalog,
    teams: &std::collections::HashSet<&str>,
    principals: &std::collections::HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) {
    let mut seen: HashMap<&str, String> = c
        .servers
        .iter()
        .map(|l| (l.item.name.as_str(), format!("{} at {}", l.file, l.path)))
        .collect();
    for v in &c.virtual_servers {
        let at = |field: &str, msg: String| {
            ConfigError::new(&v.file, format!("{}.{field}", v.path), msg)
        };
        let name = v.item.name.as_str();
        if !crate::load::is_valid_name(name) {
            errors.push(at("name", crate::load::NAME_RULE.into()));
        }
        if let Some(first) = seen.get(name) {
            errors.push(at(
                "name",
                format!("duplicate name {name:?} (a server or virtual server in {first})"),
            ));
        } else {
            seen.insert(name, format!("{} at {}", v.file, v.path));
        }
        for (i, t) in v.item.access.teams.iter().enumerate() {
            if !teams.contains(t.as_str()) {
                errors.push(at(
                    &format!("access.teams[{i}]"),
                    format!("unknown team {t:?}"),
                ));
            }
        }
        for (i, p) in v.item.access.principals.iter().enumerate() {
            if !principals.contains(p.as_str()) {
                errors.push(at(
                    &format!("access.principals[{i}]"),
                    format!("unknown principal {p:?}"),
                ));
            }
        }
        if let Err(mut found) = resolve(v, &c.servers) {
            errors.append(&mut found);
        }
    }
}

/// The policy granting a virtual server's access list every exposed tool.
pub(crate) fn access_policy(v: &VirtualServer) -> Policy {
    Policy {
        name: format!("virtual server {} access", v.name),
        subjects: v.access.clone(),
        allow: vec![Rule {
            server: v.name.clone(),
            tools: all_tools(),
            annotations: BTreeMap::new(),
        }],
        deny: Vec::new(),
    }
}

fn hints_hold(want: &BTreeMap<String, bool>, have: &BTreeMap<String, bool>) -> bool {
    want.iter().all(|(hint, value)| {
        let default = HINT_DEFAULTS
            .iter()
            .find(|(h, _)| h == hint)
            .map(|(_, d)| *d);
        have.get(hint).copied().or(default) == Some(*value)
    })
}

/// MCP tool names: 1 to 128 of ASCII letters, digits, `_`, `-` and `.`.
fn is_valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
