//! The bootstrap `dap-sidecar launch` runs instead of `-m debugpy`:
//! `python [options] -c <BOOTSTRAP> --listen ... target` behaves exactly like
//! `python [options] -m debugpy --listen ... target` (same `sys.argv`, `sys.path`,
//! `__main__`, same process, since the launcher `exec`s it), except that pydevd's
//! `start_client` returns its socket to debugpy's adapter with `TCP_NODELAY` set, before
//! pydevd writes a byte on it (Nagle only holds back writes, so that is as good as
//! before `connect`).
//!
//! The hook point is `_pydevd_bundle.pydevd_comm.start_client`, called through the name
//! `pydevd.start_client` (debugpy 1.8.22; see docs/DEBUGPY.md). If it is missing, the
//! bootstrap writes one line to stderr saying why and starts debugpy unchanged; the
//! sidecar then sets the option itself if it has the rights ([`super::pidfd`]).
//!
//! Only the process started this way is changed. debugpy's adapter is started by
//! debugpy with `sys.executable` and its own script, and debugged subprocesses get
//! debugpy's own command line, so neither runs the bootstrap (the sidecar covers
//! subprocesses' sockets when it has the rights).

/// The Python code, with [`MARKER`] as its first line.
pub const BOOTSTRAP: &str = include_str!("bootstrap.py");

/// The first line of [`BOOTSTRAP`]: how the sidecar recognises an app started by
/// `dap-sidecar launch` with the fix (its command line is readable without rights).
pub const MARKER: &str =
    "# dap-sidecar launch: debugpy's CLI with TCP_NODELAY on pydevd's connection to its adapter";

/// Whether a process's argument vector runs the bootstrap.
pub fn is_bootstrap<S: AsRef<str>>(argv: &[S]) -> bool {
    argv.windows(2)
        .any(|w| w[0].as_ref() == "-c" && w[1].as_ref().starts_with(MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_opens_the_bootstrap_and_is_recognised() {
        assert!(BOOTSTRAP.starts_with(MARKER));
        assert!(BOOTSTRAP.contains("runpy._run_module_as_main(\"debugpy\""));
        assert!(is_bootstrap(&[
            "python", "-X", "dev", "-c", BOOTSTRAP, "--listen"
        ]));
        assert!(!is_bootstrap(&["python", "-c", "print(1)", MARKER]));
        assert!(!is_bootstrap(&[
            "python", "-m", "debugpy", "--listen", "5679"
        ]));
    }
}
