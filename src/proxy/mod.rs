//! The DAP gateway: accepts IDE connections, authenticates them, and relays them to
//! debugpy with paths mapped.
//!
//! - [`listener`]: binds the port, limits concurrent connections, spawns sessions,
//!   drains them on shutdown.
//! - [`session`]: one connection's life, its phases in order and how it ended; each
//!   phase is in a file of its own:
//!   - [`handshake`]: the phase before authentication: bounded in bytes, messages and
//!     time; nothing reaches debugpy.
//!   - [`attach`]: the authenticated `attach`, parsed once: the token, path mappings
//!     and workspace folder taken out, the path mapper built, what to hand back kept.
//!   - [`upstream`]: the side-door check, and connecting to debugpy with retries.
//!   - [`capabilities`]: the upstream handshake: `initialize` forwarded, capabilities
//!     reconciled, `attach` forwarded.
//!   - [`relay`]: messages both ways with paths mapped, until one side ends.
//!   - [`ending`]: the other side ended properly (`disconnect` upstream on a vanished
//!     client's behalf, `terminated` to the client).
//! - [`admission`]: separate budgets for unauthenticated connections (oldest shed
//!   first) and sessions.
//! - [`auth`]: allowlist, token and loopback rule.
//! - [`breakpoints`]: rejected breakpoints in files outside every local root, explained.
//! - [`client`]: who the client is (editor, progress support), for hints in its words.
//! - [`throttle`]: bounded logging of what unauthenticated clients cause.
//! - [`rewrite`]: which message fields carry paths, both ways.
//! - [`guard`]: requests refused because they are known to take debugpy down.

pub mod admission;
pub mod attach;
pub mod auth;
pub mod breakpoints;
pub mod capabilities;
pub mod client;
pub mod ending;
pub mod guard;
pub mod handshake;
pub mod inject;
pub mod listener;
pub mod relay;
pub mod rewrite;
pub mod session;
pub mod throttle;
pub mod upstream;
