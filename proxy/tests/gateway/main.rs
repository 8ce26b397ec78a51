//! End-to-end tests of the gateway: real Pingora on loopback, real rmcp
//! servers and clients, real config files.

mod audit;
mod bad_input;
mod bodies;
mod common;
mod direct_path;
mod event_streams;
mod legacy_sse;
mod metrics;
mod oidc;
mod protocol;
mod raw_upstream;
mod reload;
mod sdk;
mod security;
mod stdio;
mod stdio_fixture;
mod stdio_lifecycle;
mod stdio_memory;
mod tls;
mod virtual_servers;
