//! The DAP gateway: accepts IDE connections, authenticates them, and relays them to
//! debugpy with paths mapped.
//!
//! - [`listener`]: binds the port, limits concurrent connections, spawns sessions,
//!   drains them on shutdown.
//! - [`session`]: one connection's life (handshake, connect, relay, clean end).
//! - [`admission`]: separate budgets for unauthenticated connections (oldest shed
//!   first) and sessions.
//! - [`handshake`]: the phase before authentication: bounded in bytes, messages and
//!   time; nothing reaches debugpy.
//! - [`auth`]: allowlist, token and loopback rule.
//! - [`throttle`]: bounded logging of what unauthenticated clients cause.
//! - [`rewrite`]: which message fields carry paths, both ways.

pub mod admission;
pub mod auth;
pub mod handshake;
pub mod listener;
pub mod rewrite;
pub mod session;
pub mod throttle;
