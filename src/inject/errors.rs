//! Why an injection did not happen: each refusal says what to do, and has a metric label.

use thiserror::Error;

/// A refusal or failure of attach-on-demand. The message is shown to the IDE (as the
/// `attach` error) and logged; [`InjectError::label`] is the metric label.
#[derive(Debug, Error)]
pub enum InjectError {
    /// No Python process to inject into.
    #[error(
        "no Python process found to attach to on demand: start the app, or name it with target.pid or target.match (the sidecar must share the app's PID namespace: `pid: service:app` in compose, `shareProcessNamespace: true` in Kubernetes)"
    )]
    NoTarget,
    /// The target runs a Python older than 3.14 (no PEP 768).
    #[error(
        "the app (pid {pid}) runs Python {version}, which cannot be attached on demand (that needs Python 3.14 or later, PEP 768): start it under debugpy instead, e.g. `dap-sidecar launch -- python main.py`"
    )]
    TooOld {
        /// The target's pid.
        pid: i32,
        /// Its version, as far as known (`3.11`, or `3.13.2`).
        version: String,
    },
    /// The target's `_Py_DebugOffsets` are of a version whose layout is unknown here.
    #[error(
        "the app (pid {pid}) runs Python {version}, whose debug offsets this sidecar does not know (it knows Python 3.14 releases): use a sidecar release that supports it, or start the app under `dap-sidecar launch -- python main.py`"
    )]
    UnknownVersion {
        /// The target's pid.
        pid: i32,
        /// The version read from the offsets, e.g. `3.15.0a1`.
        version: String,
    },
    /// The interpreter's debug offsets are not what CPython writes there.
    #[error("the app (pid {pid}): {what} in {file}; is it CPython?")]
    BadOffsets {
        /// The target's pid.
        pid: i32,
        /// The interpreter file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// Remote debugging is switched off in the target.
    #[error(
        "the app (pid {pid}) has remote debugging disabled: it was started with PYTHON_DISABLE_REMOTE_DEBUG set or `-X disable-remote-debug`, or its Python was built without it (`--without-remote-debug`); restart it without those (or under `dap-sidecar launch`)"
    )]
    RemoteDebugDisabled {
        /// The target's pid.
        pid: i32,
    },
    /// The sidecar may not read or write the target's memory.
    #[error(
        "no permission to attach to the app (pid {pid}): {source}. The sidecar needs ptrace rights over it: CAP_SYS_PTRACE (compose: `cap_add: [SYS_PTRACE]`; Kubernetes: `securityContext.capabilities.add: [SYS_PTRACE]`), or the same uid as the app with Yama's kernel.yama.ptrace_scope at 0 (a ptrace_scope of 3 forbids it altogether; here: {ptrace_scope})"
    )]
    NoPtraceRights {
        /// The target's pid.
        pid: i32,
        /// The refused operation.
        source: std::io::Error,
        /// `/proc/sys/kernel/yama/ptrace_scope`, or `no Yama`.
        ptrace_scope: String,
    },
    /// The script was handed over but the main thread did not run it in time.
    #[error(
        "the app (pid {pid}) did not run the attach script within {waited}: Python runs it at the next bytecode boundary of the main thread, so a main thread blocked in C code or sleeping in a long call (time.sleep, a blocking read, waiting on a lock) delays it. Try again once it returns, or start the app under `dap-sidecar launch`"
    )]
    ScriptNotRun {
        /// The target's pid.
        pid: i32,
        /// How long the sidecar waited, e.g. `10s`.
        waited: String,
    },
    /// The script ran, but debugpy did not come up.
    #[error(
        "the app (pid {pid}) ran the attach script, but debugpy did not listen on {upstream} within {waited}: see the app's stderr for the error"
    )]
    NotListening {
        /// The target's pid.
        pid: i32,
        /// The upstream address debugpy should listen on.
        upstream: String,
        /// How long the sidecar waited.
        waited: String,
    },
    /// debugpy was not found where `inject.debugpy` says.
    #[error(
        "attach on demand needs debugpy: {path} has no debugpy package (set inject.debugpy to the directory that holds the unpacked wheel's `debugpy/`)"
    )]
    NoDebugpy {
        /// The configured directory.
        path: String,
    },
    /// Something else in `/proc` or the target's filesystem failed.
    #[error("attach on demand failed for the app (pid {pid}): {what}: {source}")]
    Io {
        /// The target's pid.
        pid: i32,
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl InjectError {
    /// The metric label (`injections_total{result}`).
    pub fn label(&self) -> &'static str {
        match self {
            InjectError::NoTarget => "no_target",
            InjectError::TooOld { .. } => "python_too_old",
            InjectError::UnknownVersion { .. } => "unknown_version",
            InjectError::BadOffsets { .. } => "bad_offsets",
            InjectError::RemoteDebugDisabled { .. } => "remote_debug_disabled",
            InjectError::NoPtraceRights { .. } => "no_ptrace_rights",
            InjectError::ScriptNotRun { .. } => "script_not_run",
            InjectError::NotListening { .. } => "not_listening",
            InjectError::NoDebugpy { .. } => "no_debugpy",
            InjectError::Io { .. } => "failed",
        }
    }

    /// An I/O error at `what`, a permission problem as [`InjectError::NoPtraceRights`].
    pub fn io(pid: i32, what: impl Into<String>, source: std::io::Error) -> InjectError {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            InjectError::NoPtraceRights {
                pid,
                source,
                ptrace_scope: ptrace_scope(),
            }
        } else {
            InjectError::Io {
                pid,
                what: what.into(),
                source,
            }
        }
    }
}

/// Yama's `ptrace_scope`, or `no Yama` on kernels without it.
fn ptrace_scope() -> String {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "no Yama".to_owned())
}
