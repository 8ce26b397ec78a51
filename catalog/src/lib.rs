//! toolgate's shared catalog model, used by both planes.
//!
//! - [`model`]: the YAML schema operators write under `config/`;
//! - [`load()`]: parse, merge and validate files (errors name file and field path);
//! - [`compile()`]: turn a valid [`Catalog`] into an immutable [`Snapshot`]
//!   that answers every per-request question with a lookup.
//!
//! This crate does no I/O: callers pass file contents in and resolve secrets.

pub mod audit;
mod classes;
pub mod compile;
mod config_map;
pub mod delegated;
pub mod endpoint;
pub mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(feature = "fs")]
pub mod fs;
pub mod identity;
pub mod load;
pub mod model;
pub mod pattern;
pub mod snapshot;
pub mod stdio_spec;
pub mod virtual_servers;
pub mod virtual_snapshot;
pub mod wire;

pub use compile::{compile, SecretResolver};
pub use endpoint::Endpoint;
pub use error::{ConfigError, ConfigErrors};
pub use identity::{looks_like_jwt, JwtCaller, JwtError, VerifiedToken};
pub use load::{assemble, load, parse_file, Catalog, Located};
pub use snapshot::{token_digest, Caller, ClassId, Grant, ServerId, Settings, Snapshot, Upstream};
pub use stdio_spec::StdioSpec;
pub use virtual_snapshot::{VirtualEndpoint, VirtualId, VirtualMember, VirtualTool};
pub use wire::SnapshotDocument;
