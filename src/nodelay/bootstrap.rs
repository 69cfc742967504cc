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
//! bootstrap writes one line to stderr saying why and `exec`s (same pid) today's command
//! line plus `-X dap_sidecar_nodelay=<code>`, an option Python ignores: debugpy starts
//! unchanged, and the sidecar, which can read any command line, can say why the fix is
//! off even without the rights to look at the socket ([`Launch::Failed`]). With the
//! rights it sets the option itself ([`super::pidfd`]).
//!
//! debugpy's adapter, the separate process `debugpy.listen()` starts as `python <the
//! adapter's directory> <arguments>`, writes a step's answer and events to the IDE
//! separately, which waits for the IDE's delayed ACK too. So while debugpy's CLI starts
//! debugging (`server.cli.start_debugging`), `subprocess.Popen` is swapped for one that
//! starts exactly that command as `python -c <adapter code> <the same arguments>`: the
//! adapter's code run as Python runs a directory (`runpy._run_module_as_main("__main__")`
//! with the directory first on `sys.path`), with `TCP_NODELAY` on every socket it
//! accepts. Every other `Popen` call passes through unchanged, and the original is back
//! once the adapter started (or the CLI call ended). If that hook point is missing, the
//! app's log says so once and the adapter starts as usual.
//!
//! Debugged subprocesses get debugpy's own command line, so they do not run the
//! bootstrap: the sidecar covers their sockets when it has the rights.

/// The Python code, with [`MARKER`] as its first line.
pub const BOOTSTRAP: &str = include_str!("bootstrap.py");

/// The first line of [`BOOTSTRAP`]: how the sidecar recognises an app started by
/// `dap-sidecar launch` with the fix (its command line is readable without rights).
pub const MARKER: &str =
    "# dap-sidecar launch: debugpy's CLI with TCP_NODELAY on pydevd's connection to its adapter";

/// The `-X` option the bootstrap adds when it could not install the hook.
const FAILED: &str = "dap_sidecar_nodelay=";

/// What a process's command line says about `dap-sidecar launch`'s fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// It runs the bootstrap: the option is set as pydevd connects.
    Bootstrap,
    /// The bootstrap could not install its hook (the code: `no_hook`, `no_pydevd`) and
    /// started debugpy as usual.
    Failed(String),
}

/// What `argv` says about the launcher's fix; `None` for a process it did not start
/// (or started with `tcp_nodelay: false`).
pub fn launch_of<S: AsRef<str>>(argv: &[S]) -> Option<Launch> {
    argv.windows(2)
        .find_map(|w| match (w[0].as_ref(), w[1].as_ref()) {
            ("-c", code) if code.starts_with(MARKER) => Some(Launch::Bootstrap),
            ("-X", option) => option
                .strip_prefix(FAILED)
                .map(|code| Launch::Failed(code.to_owned())),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_opens_the_bootstrap_and_is_recognised() {
        assert!(BOOTSTRAP.starts_with(MARKER));
        assert!(BOOTSTRAP.contains("runpy._run_module_as_main(\"debugpy\""));
        let launched = ["python", "-X", "dev", "-c", BOOTSTRAP, "--listen", "5679"];
        assert_eq!(launch_of(&launched), Some(Launch::Bootstrap));
        assert_eq!(launch_of(&["python", "-c", "print(1)", MARKER]), None);
        let plain = ["python", "-X", "dev", "-m", "debugpy", "--listen", "5679"];
        assert_eq!(launch_of(&plain), None);
        let fell_back = [
            "python",
            "-X",
            "dap_sidecar_nodelay=no_hook",
            "-m",
            "debugpy",
        ];
        assert_eq!(
            launch_of(&fell_back),
            Some(Launch::Failed("no_hook".into()))
        );
        // The bootstrap writes exactly that option, and finds itself by the marker.
        assert!(BOOTSTRAP.contains(&format!("\"{FAILED}\" + code")));
        assert!(BOOTSTRAP.contains("marker = \"# dap-sidecar launch:\""));
        assert!(MARKER.starts_with("# dap-sidecar launch:"));
        // Discovery reads `--listen PORT` and the adapter's path from command lines: the
        // code, which is in the app's and the adapter's command line, must not say them.
        for word in ["--listen", "--port", "debugpy/adapter", "debugpy.adapter"] {
            assert!(!BOOTSTRAP.contains(word), "{word}");
        }
        // The adapter's code is not taken for the app's.
        let adapter = BOOTSTRAP
            .split("_DAP_SIDECAR_ADAPTER = \"\"\"")
            .nth(1)
            .expect("the adapter's code");
        assert!(adapter.starts_with("# dap-sidecar launch: debugpy's adapter"));
        assert_eq!(launch_of(&["python", "-c", adapter]), None);
    }
}
