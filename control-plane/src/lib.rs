//! toolgate's control plane: the registry service (see issue 3).
//!
//! - `discovery`: connect to a registered MCP server, list its tools, and
//!   compare them with the pinned (approved) definitions.
pub mod discovery;
