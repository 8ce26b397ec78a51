//! Pins and the review of a discovery against them.

use super::*;

/// A tool definition an operator approved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinnedTool {
    /// Tool name.
    pub name: String,
    /// [`ToolDefinition::fingerprint`] at approval time.
    pub fingerprint: String,
}

impl PinnedTool {
    /// Pins `tool` as it is now.
    pub fn pin(tool: &ToolDefinition) -> PinnedTool {
        PinnedTool {
            name: tool.name.clone(),
            fingerprint: tool.fingerprint(),
        }
    }
}

/// Pins every tool of a discovery (what approving a server stores).
pub fn pin_all(tools: &[ToolDefinition]) -> Vec<PinnedTool> {
    tools.iter().map(PinnedTool::pin).collect()
}

/// How one tool compares with its pin. Serializes as
/// `{"status": "changed", "pinned": …, "discovered": …}` and so on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ToolStatus {
    /// Offered exactly as approved.
    Unchanged,
    /// Offered with a definition other than the approved one: withheld.
    Changed {
        /// The approved fingerprint.
        pinned: String,
        /// The fingerprint now offered.
        discovered: String,
    },
    /// Offered but never approved: withheld.
    Added {
        /// The fingerprint now offered.
        discovered: String,
    },
    /// Approved but no longer offered.
    Removed {
        /// The approved fingerprint.
        pinned: String,
    },
}

/// One tool's line in a [`Review`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolReview {
    /// Tool name.
    pub name: String,
    /// How it compares with its pin.
    #[serde(flatten)]
    pub status: ToolStatus,
}

/// A discovery compared with the pinned definitions, one line per tool
/// name, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Review {
    /// Every tool that is pinned, discovered, or both.
    pub tools: Vec<ToolReview>,
}

impl Review {
    /// Names of the tools agents may be offered: those unchanged since
    /// approval. Changed and added tools are withheld until approved again.
    pub fn offerable(&self) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|t| t.status == ToolStatus::Unchanged)
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Whether an operator has something to approve: a changed or an added
    /// tool. (A removed tool withholds nothing, so it alone does not count.)
    pub fn needs_review(&self) -> bool {
        self.tools.iter().any(|t| {
            matches!(
                t.status,
                ToolStatus::Changed { .. } | ToolStatus::Added { .. }
            )
        })
    }

    /// The status of the tool named `name`, if it is pinned or discovered.
    pub fn status(&self, name: &str) -> Option<&ToolStatus> {
        self.tools
            .iter()
            .find(|t| t.name == name)
            .map(|t| &t.status)
    }
}

/// Compares `discovered` with `pinned`.
///
/// A tool is unchanged only when every definition offered under its name
/// matches every pin under that name, so duplicated names in either list
/// can never make an unapproved definition offerable.
pub fn review(pinned: &[PinnedTool], discovered: &[ToolDefinition]) -> Review {
    let mut by_name: BTreeMap<&str, (Vec<&str>, Vec<String>)> = BTreeMap::new();
    for pin in pinned {
        by_name
            .entry(&pin.name)
            .or_default()
            .0
            .push(&pin.fingerprint);
    }
    for tool in discovered {
        by_name
            .entry(&tool.name)
            .or_default()
            .1
            .push(tool.fingerprint());
    }
    let tools = by_name
        .into_iter()
        .map(|(name, (pins, found))| ToolReview {
            name: name.to_string(),
            status: compare(&pins, &found),
        })
        .collect();
    Review { tools }
}

/// The status of one name from its pinned and discovered fingerprints (at
/// least one of the two lists is non-empty).
pub(super) fn compare(pins: &[&str], found: &[String]) -> ToolStatus {
    let Some(first_found) = found.first() else {
        return ToolStatus::Removed {
            pinned: pins.first().map(|p| p.to_string()).unwrap_or_default(),
        };
    };
    let Some(first_pin) = pins.first() else {
        return ToolStatus::Added {
            discovered: first_found.clone(),
        };
    };
    match found.iter().find(|f| pins.iter().any(|p| p != f)) {
        None => ToolStatus::Unchanged,
        Some(differing) => ToolStatus::Changed {
            pinned: (*first_pin).to_string(),
            discovered: differing.clone(),
        },
    }
}
