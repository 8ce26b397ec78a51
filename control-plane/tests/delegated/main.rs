//! Per-user delegated OAuth, end to end on loopback: an authorization server
//! that really issues codes (checking the PKCE verifier), expiring access
//! tokens and rotating refresh tokens; an upstream that accepts only live
//! tokens and records whose arrived; the control plane running the connect
//! flow and refreshing; a proxy injecting each caller's own token.

mod fixture;
mod flow;
mod jwt;
mod offboarding;
mod peers;
