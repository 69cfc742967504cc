//! Responsive debugging: `TCP_NODELAY` on pydevd's connection to debugpy's adapter.
//!
//! In an app under debugpy 1.8, pydevd (the debugger inside the app) talks to debugpy's
//! adapter process over a loopback TCP connection it opens without `TCP_NODELAY`
//! (`start_client` in `pydevd_comm.py`). Its answers are written in pieces, and Nagle's
//! algorithm holds each later piece back until the adapter ACKs the first, which the
//! adapter's kernel delays by about 40 ms. So every request that reaches the app
//! (`stackTrace`, `scopes`, `variables`, `evaluate`, ...) takes about 44 ms, directly
//! and through any relay. With the option set on that one socket it takes well under
//! a millisecond (figures in BENCHMARKS.md). The sidecar sets it two ways:
//!
//! - [`bootstrap`]: `dap-sidecar launch` starts debugpy through a few lines of Python
//!   that set it as pydevd connects. Needs no rights.
//! - [`scan`] + [`pidfd`]: for debugpy the sidecar did not start, the sidecar finds
//!   pydevd's socket through `/proc` and sets the option on a duplicate made with
//!   `pidfd_getfd`. Needs the right to ptrace the app; it is done when the app is found
//!   and again for every new connection (debugpy restarted, a debugged subprocess).
//!
//! [`Nodelay`] keeps the outcome for the current upstream: `/status`
//! (`tcp_nodelay`), the gauge `dap_sidecar_debugpy_nodelay{reason}` (1 while active),
//! and one log line each time it changes. `tcp_nodelay: false` switches both off.

pub mod bootstrap;
pub mod pidfd;
pub mod scan;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;

/// How often the sidecar looks for new pydevd connections.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What gives the sidecar the rights to set the option itself, for messages.
pub const RIGHTS: &str = "Give the sidecar the right to ptrace the app: run it as root with \
    CAP_SYS_PTRACE (compose: `user: \"0\"` and `cap_add: [SYS_PTRACE]`; Kubernetes: \
    `securityContext: {runAsUser: 0, runAsNonRoot: false, capabilities: {add: [SYS_PTRACE]}}`), \
    or start the app with `dap-sidecar launch`, which sets it inside the app";

/// Whether the fix is active for the current upstream, and why (the metric's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `tcp_nodelay: false`.
    Disabled,
    /// No pydevd connection to debugpy's adapter (yet): nothing to do.
    NoDebuggee,
    /// Active: the sidecar set it through `pidfd_getfd`.
    SetBySidecar,
    /// Active: it was set already (by `dap-sidecar launch`, or by debugpy itself).
    AlreadySet,
    /// Presumed active: the app runs the `dap-sidecar launch` bootstrap, and the sidecar
    /// lacks the rights to check the socket itself.
    Launcher,
    /// Not applied: the sidecar may not read or duplicate the app's sockets.
    NoPermission,
    /// Not applied: `dap-sidecar launch` could not hook debugpy (its log says why), and
    /// the sidecar may not set the option itself.
    LauncherFailed,
    /// Not applied: no `pidfd_getfd` (Linux before 5.6, or a seccomp filter).
    Unsupported,
    /// Not applied: another error.
    Failed,
}

impl Reason {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Disabled => "disabled",
            Reason::NoDebuggee => "no_debuggee",
            Reason::SetBySidecar => "set_by_sidecar",
            Reason::AlreadySet => "already_set",
            Reason::Launcher => "launcher",
            Reason::NoPermission => "no_permission",
            Reason::LauncherFailed => "launcher_failed",
            Reason::Unsupported => "unsupported",
            Reason::Failed => "failed",
        }
    }

    /// Whether the fix is in effect.
    pub fn active(self) -> bool {
        matches!(
            self,
            Reason::SetBySidecar | Reason::AlreadySet | Reason::Launcher
        )
    }
}

/// One pydevd connection found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketReport {
    /// The process holding it (`None` when its fds could not be read).
    pub pid: Option<i32>,
    /// The app's side.
    pub local: SocketAddr,
    /// The adapter's internal server port.
    pub remote: SocketAddr,
    /// Its state.
    pub reason: Reason,
}

/// Where the fix stands for the current upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Active or why not.
    pub reason: Reason,
    /// In words.
    pub detail: String,
    /// The pydevd connections found.
    pub sockets: Vec<SocketReport>,
    /// The adapter's client connections (the sidecar's) with the option set: debugpy
    /// writes a step's answer and events separately, which waits for the client's
    /// delayed ACK without it.
    pub adapter_sockets: usize,
}

impl Status {
    /// A status without sockets.
    pub fn new(reason: Reason, detail: String) -> Status {
        Status {
            reason,
            detail,
            sockets: Vec::new(),
            adapter_sockets: 0,
        }
    }
}

/// The fix's state, shared with `/status` and `/metrics`.
pub struct Nodelay {
    /// The latest status; a std mutex held only to copy or replace it.
    status: Mutex<Status>,
    /// `debugpy_nodelay{reason}`: 1 while the fix is active, one series at a time.
    gauge: IntGaugeVec,
}

impl Nodelay {
    /// Registers the gauge in `registry` (the sidecar's, prefix `dap_sidecar_`).
    pub fn new(registry: &Registry) -> Result<Nodelay, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "debugpy_nodelay",
                "1 while TCP_NODELAY is set on pydevd's connection to debugpy's adapter \
                 (requests skip a 40 ms delayed-ACK wait); reason says how, or why not",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        let first = Status::new(Reason::NoDebuggee, "not looked yet".into());
        gauge.with_label_values(&[first.reason.label()]).set(0);
        Ok(Nodelay {
            status: Mutex::new(first),
            gauge,
        })
    }

    /// The latest status.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the status; a change of reason or detail is logged once and moves the
    /// gauge to the new reason.
    pub fn publish(&self, new: Status) {
        let old = {
            let mut guard = self.status.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *guard, new.clone())
        };
        if old.reason != new.reason {
            let _ = self.gauge.remove_label_values(&[old.reason.label()]);
        }
        self.gauge
            .with_label_values(&[new.reason.label()])
            .set(i64::from(new.reason.active()));
        if (old.reason, &old.detail) == (new.reason, &new.detail) {
            return;
        }
        let reason = new.reason.label();
        match new.reason {
            Reason::NoPermission
            | Reason::LauncherFailed
            | Reason::Unsupported
            | Reason::Failed => warn!(
                reason,
                detail = %new.detail,
                "TCP_NODELAY not applied: debugpy answers each request about 40 ms late"
            ),
            _ if new.reason.active() => info!(reason, detail = %new.detail, "TCP_NODELAY active"),
            _ => info!(reason, detail = %new.detail, "TCP_NODELAY not active"),
        }
    }

    /// The `tcp_nodelay` object of `/status`.
    pub fn json(&self) -> Value {
        let s = self.status();
        json!({
            "active": s.reason.active(),
            "reason": s.reason,
            "detail": s.detail,
            "sockets": s.sockets,
            "adapter_client_sockets": s.adapter_sockets,
        })
    }

    /// Looks every [`INTERVAL`] until `shutdown` (on a blocking thread), or publishes
    /// `disabled` once.
    pub async fn run(&self, config: &Config, shutdown: CancellationToken) {
        if !config.tcp_nodelay {
            self.publish(Status::new(Reason::Disabled, "tcp_nodelay is false".into()));
            return;
        }
        let port = config.upstream_port();
        let mut scanner = Some(scan::Scanner::new(port));
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let mut current = scanner.take().unwrap_or_else(|| scan::Scanner::new(port));
            match tokio::task::spawn_blocking(move || {
                let status = current.step();
                (current, status)
            })
            .await
            {
                Ok((kept, status)) => {
                    scanner = Some(kept);
                    self.publish(status);
                }
                Err(e) => warn!(error = %e, "TCP_NODELAY scan failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_carries_one_reason_and_says_whether_active() {
        let registry = Registry::new_custom(Some("dap_sidecar".into()), None).expect("registry");
        let nodelay = Nodelay::new(&registry).expect("gauge");
        let render = || {
            let mut out = Vec::new();
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut out,
            )
            .expect("encode");
            String::from_utf8(out).expect("utf-8")
        };
        assert!(render().contains("dap_sidecar_debugpy_nodelay{reason=\"no_debuggee\"} 0"));
        nodelay.publish(Status::new(Reason::SetBySidecar, "set".into()));
        let text = render();
        assert!(
            text.contains("dap_sidecar_debugpy_nodelay{reason=\"set_by_sidecar\"} 1"),
            "{text}"
        );
        assert!(!text.contains("no_debuggee"), "{text}");
        nodelay.publish(Status::new(Reason::NoPermission, RIGHTS.into()));
        let text = render();
        assert!(
            text.contains("dap_sidecar_debugpy_nodelay{reason=\"no_permission\"} 0"),
            "{text}"
        );
        assert_eq!(nodelay.json()["reason"], "no_permission");
        assert_eq!(nodelay.json()["active"], false);
        assert!(
            nodelay.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("SYS_PTRACE"))
        );
    }
}
