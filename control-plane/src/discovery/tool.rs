//! A discovered tool and its review fingerprint.

use super::*;

/// One tool as a server offers it.
///
/// Built only from the tool object itself ([`from_raw`](Self::from_raw)), so
/// the typed accessors and the [`fingerprint`](Self::fingerprint) always agree
/// with [`raw`](Self::raw). Serializes as the raw tool object.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "Value", try_from = "Value")]
pub struct ToolDefinition {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) input_schema: Value,
    pub(super) annotations: Option<Value>,
    pub(super) raw: Value,
}

impl ToolDefinition {
    /// A tool from its MCP `Tool` object (`name`, `inputSchema`, and optional
    /// `title`, `description`, `outputSchema`, `annotations`, …).
    pub fn from_raw(raw: Value) -> Result<ToolDefinition, DiscoveryError> {
        let object = raw
            .as_object()
            .ok_or_else(|| invalid("a tool must be a JSON object"))?;
        let name = required_name(object)?;
        let fields = || -> Result<_, &'static str> {
            Ok((
                description_field(object)?,
                input_schema_field(object)?,
                annotations_field(object)?,
            ))
        };
        let (description, input_schema, annotations) =
            fields().map_err(|reason| invalid(format!("tool {:?}: {reason}", truncate(&name))))?;
        Ok(ToolDefinition {
            name,
            description,
            input_schema,
            annotations,
            raw,
        })
    }

    /// The tool name, as agents call it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The description shown to models, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The JSON Schema of the arguments.
    pub fn input_schema(&self) -> &Value {
        &self.input_schema
    }

    /// The annotations object (`readOnlyHint`, `destructiveHint`, …), if any.
    pub fn annotations(&self) -> Option<&Value> {
        self.annotations.as_ref()
    }

    /// One boolean annotation exactly as the server sent it (`None` when
    /// absent: the MCP defaults, e.g. `destructiveHint` true, are not applied).
    /// Annotations are hints, to be trusted only for approved servers.
    pub fn hint(&self, name: &str) -> Option<bool> {
        self.annotations.as_ref()?.get(name)?.as_bool()
    }

    /// The whole tool object. For discovered tools this is the object as the
    /// `rmcp` client decoded it: every field of the MCP `Tool` type is kept,
    /// fields that type does not know are not.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Hex SHA-256 of the canonical form of the reviewed fields (name, title,
    /// description, inputSchema, outputSchema, annotations): object keys
    /// sorted at every depth, no whitespace, absent and `null` fields left
    /// out. Key order and formatting do not change it; any value does.
    pub fn fingerprint(&self) -> String {
        let reviewed: Map<String, Value> = REVIEWED_FIELDS
            .iter()
            .filter_map(|field| {
                let value = self.raw.get(*field).filter(|v| !v.is_null())?;
                Some(((*field).to_string(), value.clone()))
            })
            .collect();
        let mut canonical = String::new();
        write_canonical(&Value::Object(reviewed), &mut canonical);
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

impl From<ToolDefinition> for Value {
    fn from(tool: ToolDefinition) -> Value {
        tool.raw
    }
}

impl TryFrom<Value> for ToolDefinition {
    type Error = DiscoveryError;

    fn try_from(raw: Value) -> Result<ToolDefinition, DiscoveryError> {
        ToolDefinition::from_raw(raw)
    }
}

pub(super) fn invalid(reason: impl Into<String>) -> DiscoveryError {
    DiscoveryError::InvalidTool {
        reason: reason.into(),
    }
}

pub(super) fn required_name(object: &Map<String, Value>) -> Result<String, DiscoveryError> {
    match object.get("name") {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        _ => Err(invalid("a tool needs a non-empty string name")),
    }
}

pub(super) fn description_field(
    object: &Map<String, Value>,
) -> Result<Option<String>, &'static str> {
    match object.get("description") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("description must be a string"),
    }
}

pub(super) fn input_schema_field(object: &Map<String, Value>) -> Result<Value, &'static str> {
    match object.get("inputSchema") {
        Some(value @ Value::Object(_)) => Ok(value.clone()),
        _ => Err("inputSchema must be an object"),
    }
}

pub(super) fn annotations_field(
    object: &Map<String, Value>,
) -> Result<Option<Value>, &'static str> {
    match object.get("annotations") {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value.clone())),
        Some(_) => Err("annotations must be an object"),
    }
}

/// Writes `value` as compact JSON with object keys sorted (by their UTF-8
/// bytes) at every depth.
pub(super) fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
