//! dap-sidecar: a Debug Adapter Protocol gateway that sits beside a Python app running
//! under debugpy, authenticates IDE clients, maps paths between the IDE's checkout and the
//! container, and makes the debugged app's state observable.
//!
//! # Layout
//!
//! - [`config`]: the layered configuration (defaults, YAML/TOML file, environment, flags)
//!   with every problem reported at once.
//! - [`dap::codec`]: `Content-Length` framing with size caps.
//! - [`dap::message`]: lightly typed messages that round-trip untouched.
//! - [`paths`]: component-wise, longest-root-first path mapping, Windows and POSIX.
//! - [`proxy`]: the listener, the per-connection session, authentication, and the
//!   path rewriting of messages.
//! - [`debuggee`]: finding the app and debugpy's adapter in `/proc`, reading their memory
//!   (and the app's cgroup), and the sampling monitor with history, steps told apart from
//!   growth, what debugging cost, and the attach limit.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status` and `/`: axum routes served
//!   by a hyper server with header and request timeouts, a connection cap that sheds the
//!   oldest, and a bounded shutdown.
//! - [`upstream_watch`]: debugpy's sockets watched in the background: the upstream port
//!   listening, debugpy reachable on a non-loopback address (the side door), and
//!   connections to it that did not come through the sidecar.
//! - [`inject`]: attach on demand: debugpy started inside a running Python 3.14+ app
//!   through PEP 768, by writing to its memory through `/proc`.
//! - [`metrics`]: the Prometheus metrics.
//! - [`nodelay`]: `TCP_NODELAY` on pydevd's connection to debugpy's adapter (no 40 ms
//!   wait per request), set by `dap-sidecar launch` or from outside with `pidfd_getfd`.
//! - [`launch`]: `dap-sidecar launch -- python ...`, the app under debugpy per the config.
//! - [`launch_json`]: the VS Code attach configuration for a given config.
//! - [`state`]: the state shared by the listener, sessions, the watch and the HTTP
//!   server.
//! - [`server`]: binds the ports, then serves until a shutdown token is cancelled (the
//!   signals are handled in `main.rs`).
//! - `fuzzing` (hidden): the fuzz harnesses for the codec and the path rewriting.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, missing_docs)]
// Input from the network, files and users never panics the sidecar (tests may).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod dap;
pub mod debuggee;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod inject;
pub mod launch;
pub mod launch_json;
pub mod metrics;
pub mod nodelay;
pub mod paths;
pub mod proxy;
pub mod server;
pub mod state;
pub mod upstream_watch;
