//! toolgate's data plane: a Pingora MCP gateway.
//!
//! Request path: [`admit`] (authenticate, read and parse the body once,
//! check `Mcp-*` headers, [`decide`]) → [`gateway`] hooks (inject the
//! upstream credential, strip the caller's) → response rewriting
//! ([`filter`] for `tools/list`, [`sse`] for event streams). All decisions
//! read one `Arc<Snapshot>` loaded per request from an `ArcSwap`, replaced by
//! [`reload`] when `config/` changes.
//!
//! Connections are accepted by [`server`]; [`front`] looks at each request
//! first. Two kinds are served by the gateway itself instead of Pingora's
//! proxy loop, with [`http1`] for the few HTTP/1.1 pieces: an agent's `GET`
//! event stream (`gateway/event_stream.rs`), so idle streams stay cheap, and
//! a `POST` framed by `Content-Length` to a plain-HTTP server
//! (`gateway/direct.rs`, with [`upstream_pool`]), the hot path. Both use the
//! same admission, response rules and audit code as the Pingora hooks.
//! Everything else is Pingora's.

pub mod admit;
pub mod audit;
pub mod body;
pub mod bridge;
pub mod coalesce;
pub mod decide;
pub mod demo;
pub mod error;
pub mod fields;
pub mod filter;
pub mod front;
pub mod gateway;
pub mod http1;
pub mod http_headers;
mod json_scan;
mod json_shape;
pub mod jsonrpc;
pub mod jwt;
pub mod large_body;
pub mod metrics;
pub mod reload;
pub mod remote;
pub mod resource_metadata;
pub mod secret;
pub mod server;
pub mod sessions;
pub mod sse;
pub mod streams;
pub mod tls;
pub mod trace;
pub mod upstream_pool;
pub mod virtual_server;
