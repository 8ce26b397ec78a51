//! Virtual servers in the compiled snapshot.
//!
//! A virtual server takes part in policy classes like a server (its grants
//! sit after the upstreams' in each class), so "may this caller call exposed
//! tool X" is the same O(1) decision as for any server. Its `tools/list`
//! answer is serialized once per policy class and then reused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use crate::error::{ConfigError, ConfigErrors};
use crate::load::{Catalog, Located};
use crate::model::{Server, ToolDecl};
use crate::pattern::Pattern;
use crate::snapshot::{ClassId, Grant, ServerId, Snapshot};
use crate::virtual_servers::{access_policy, resolve, Exposed, Naming};

/// Index of a virtual server in [`Snapshot`].
pub type VirtualId = u32;

/// A compiled virtual server.
#[derive(Debug)]
pub struct VirtualEndpoint {
    /// Index among the snapshot's virtual servers.
    pub id: VirtualId,
    /// Name (`/mcp/{name}`).
    pub name: Arc<str>,
    /// Shown to agents as the server's instructions.
    pub description: Arc<str>,
    /// Exposed tools whose server is routable.
    pub tools: Vec<VirtualTool>,
    /// Servers whose prompts or resources are exposed (routable ones).
    pub members: Vec<VirtualMember>,
    index: HashMap<Box<str>, usize>,
    /// Serialized `tools` arrays by policy class, built on first use.
    lists: RwLock<HashMap<ClassId, Arc<[u8]>>>,
}

/// One exposed tool.
#[derive(Debug)]
pub struct VirtualTool {
    /// The name agents call.
    pub name: Arc<str>,
    /// The server that runs it.
    pub server: ServerId,
    /// Its name on that server.
    pub original: Arc<str>,
    /// The MCP `Tool` object served in `tools/list` (under `name`).
    definition: Value,
}

/// A server whose prompts or resources a virtual server exposes. They are
/// not in the catalog: the gateway lists them from the server.
#[derive(Debug)]
pub struct VirtualMember {
    /// The server.
    pub server: ServerId,
    /// Prompt name patterns.
    pub prompts: Vec<Pattern>,
    /// Resource URI patterns.
    pub resources: Vec<Pattern>,
    /// Original prompt name → exposed name.
    pub rename: BTreeMap<String, String>,
    /// `<server>_` under `naming: prefixed`.
    pub prefix: Option<String>,
}

impl VirtualMember {
    /// The name agents see for the server's prompt `original`, if exposed.
    pub fn exposed_prompt(&self, original: &str) -> Option<String> {
        if !self.prompts.iter().any(|p| p.matches(original)) {
            return None;
        }
        Some(match (self.rename.get(original), &self.prefix) {
            (Some(renamed), _) => renamed.clone(),
            (None, Some(prefix)) => format!("{prefix}{original}"),
            (None, None) => original.to_string(),
        })
    }

    /// Is the resource `uri` exposed?
    pub fn exposes_resource(&self, uri: &str) -> bool {
        self.resources.iter().any(|p| p.matches(uri))
    }
}

impl VirtualEndpoint {
    /// Offers prompts (some member exposes prompts).
    pub fn has_prompts(&self) -> bool {
        self.members.iter().any(|m| !m.prompts.is_empty())
    }

    /// Offers resources (some member exposes resources).
    pub fn has_resources(&self) -> bool {
        self.members.iter().any(|m| !m.resources.is_empty())
    }

    /// An exposed tool by the name agents use.
    pub fn tool(&self, name: &str) -> Option<&VirtualTool> {
        self.index.get(name).map(|&i| &self.tools[i])
    }
}

/// The catalog with each virtual server's access list added as a policy,
/// and the servers that stand for virtual servers in policy classes.
pub(crate) fn with_access_policies(catalog: &Catalog) -> Catalog {
    let mut c = catalog.clone();
    for v in &catalog.virtual_servers {
        c.policies.push(Located {
            file: v.file.clone(),
            path: format!("{}.access", v.path),
            item: access_policy(&v.item),
        });
    }
    c
}

/// Resolves every virtual server: the exposed tools, and a stand-in server
/// (named like the virtual server, holding the exposed names with their
/// annotations) for building grants.
pub(crate) fn resolve_all(catalog: &Catalog) -> Result<Vec<(Vec<Exposed>, Server)>, ConfigErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for v in &catalog.virtual_servers {
        let exposed = match resolve(v, &catalog.servers) {
            Ok(e) => e,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        let Some(template) = v
            .item
            .tools
            .first()
            .and_then(|inc| catalog.servers.iter().find(|s| s.item.name == inc.server))
        else {
            errors.push(ConfigError::new(&v.file, &v.path, "exposes no tool"));
            continue;
        };
        let tools = exposed
            .iter()
            .map(|e| ToolDecl {
                name: e.name.clone(),
                description: String::new(),
                annotations: decl(catalog, e).map_or_else(BTreeMap::new, |d| d.annotations.clone()),
                input_schema: None,
                definition: None,
            })
            .collect();
        let stand_in = Server {
            name: v.item.name.clone(),
            tools,
            offered_tools: None,
            ..template.item.clone()
        };
        out.push((exposed, stand_in));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn decl<'a>(catalog: &'a Catalog, e: &Exposed) -> Option<&'a ToolDecl> {
    catalog
        .servers
        .iter()
        .find(|s| s.item.name == e.server)?
        .item
        .tools
        .iter()
        .find(|t| t.name == e.original)
}

/// Builds the snapshot's virtual servers; tools of servers that are not
/// routable (not approved) are left out.
pub(crate) fn build(
    catalog: &Catalog,
    resolved: &[(Vec<Exposed>, Server)],
    server_index: &crate::config_map::ConfigMap<Box<str>, ServerId>,
) -> Vec<VirtualEndpoint> {
    catalog
        .virtual_servers
        .iter()
        .zip(resolved)
        .enumerate()
        .map(|(id, (v, (exposed, _)))| {
            let tools: Vec<VirtualTool> = exposed
                .iter()
                .filter_map(|e| {
                    let server = *server_index.get(e.server.as_str())?;
                    Some(VirtualTool {
                        name: e.name.as_str().into(),
                        server,
                        original: e.original.as_str().into(),
                        definition: definition(decl(catalog, e), &e.name),
                    })
                })
                .collect();
            let index = tools
                .iter()
                .enumerate()
                .map(|(i, t)| (Box::<str>::from(&*t.name), i))
                .collect();
            let members = v
                .item
                .tools
                .iter()
                .filter(|inc| !inc.prompts.is_empty() || !inc.resources.is_empty())
                .filter_map(|inc| {
                    Some(VirtualMember {
                        server: *server_index.get(inc.server.as_str())?,
                        prompts: inc.prompts.iter().map(|p| Pattern::new(p)).collect(),
                        resources: inc.resources.iter().map(|p| Pattern::new(p)).collect(),
                        rename: inc.rename.clone(),
                        prefix: (v.item.naming == Naming::Prefixed)
                            .then(|| format!("{}_", inc.server)),
                    })
                })
                .collect();
            VirtualEndpoint {
                id: id as VirtualId,
                name: v.item.name.as_str().into(),
                description: v.item.description.as_str().into(),
                tools,
                members,
                index,
                lists: RwLock::new(HashMap::new()),
            }
        })
        .collect()
}

/// The `Tool` object agents see: the discovered definition when known (or
/// one built from the declaration), under the exposed name.
fn definition(decl: Option<&ToolDecl>, exposed: &str) -> Value {
    let mut def = match decl {
        Some(ToolDecl {
            definition: Some(d @ Value::Object(_)),
            ..
        }) => d.clone(),
        Some(d) => {
            let mut def = json!({
                "name": exposed,
                "inputSchema": d.input_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
            });
            if !d.description.is_empty() {
                def["description"] = Value::from(d.description.as_str());
            }
            if !d.annotations.is_empty() {
                def["annotations"] = json!(d.annotations);
            }
            def
        }
        None => json!({"name": exposed, "inputSchema": {"type": "object"}}),
    };
    def["name"] = Value::from(exposed);
    def
}

impl Snapshot {
    /// A virtual server by name.
    pub fn virtual_server(&self, name: &str) -> Option<&VirtualEndpoint> {
        self.virtual_index
            .get(name)
            .map(|&id| &self.virtuals[id as usize])
    }

    /// A virtual server by id.
    pub fn virtual_by_id(&self, id: VirtualId) -> &VirtualEndpoint {
        &self.virtuals[id as usize]
    }

    fn virtual_grant(&self, class: ClassId, id: VirtualId) -> &Grant {
        self.grant(class, (self.upstream_count() + id as usize) as ServerId)
    }

    /// May the class use the virtual server at all?
    pub fn can_access_virtual(&self, class: ClassId, id: VirtualId) -> bool {
        matches!(self.virtual_grant(class, id), Grant::Tools(_))
    }

    /// The exposed tool `name` if the class may call it (granted on the
    /// virtual server, and offered by its server).
    pub fn virtual_tool(&self, class: ClassId, id: VirtualId, name: &str) -> Option<&VirtualTool> {
        let v = self.virtual_by_id(id);
        let tool = v.tool(name)?;
        self.virtual_tool_allowed(class, id, tool).then_some(tool)
    }

    fn virtual_tool_allowed(&self, class: ClassId, id: VirtualId, tool: &VirtualTool) -> bool {
        let offered = &self.upstream_by_id(tool.server).offered;
        if offered
            .as_ref()
            .is_some_and(|o| !o.contains(&*tool.original))
        {
            return false;
        }
        match self.virtual_grant(class, id) {
            Grant::None => false,
            Grant::Tools(rules) => rules.allows(&tool.name),
        }
    }

    /// The JSON array of the `Tool` objects the class may call, serialized
    /// once per class and snapshot.
    pub fn virtual_tool_list(&self, class: ClassId, id: VirtualId) -> Arc<[u8]> {
        let v = self.virtual_by_id(id);
        if let Some(list) = v
            .lists
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&class)
        {
            return list.clone();
        }
        let visible: Vec<&Value> = v
            .tools
            .iter()
            .filter(|t| self.virtual_tool_allowed(class, id, t))
            .map(|t| &t.definition)
            .collect();
        let list: Arc<[u8]> = serde_json::to_vec(&visible)
            .unwrap_or_else(|_| b"[]".to_vec())
            .into();
        v.lists
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(class, list.clone());
        list
    }
}
