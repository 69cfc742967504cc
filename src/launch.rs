//! `dap-sidecar launch -- python [python options] (script | -m module | -c code) [args]`:
//! starts the app under debugpy with the flags this configuration implies, so `wait` is a
//! switch of the deployment (`DAP_SIDECAR_WAIT=true`) rather than a hand-edited command.
//!
//! The app's command line becomes
//! `python [python options] -Xfrozen_modules=off -m debugpy --listen <upstream>
//! [--wait-for-client] (script | -m module | -c code) [args]`, and the launcher replaces
//! itself with it (`exec`), so the app keeps the launcher's pid and receives its signals.
//! With `tcp_nodelay` (the default) `-m debugpy` is `-c <bootstrap>`, which runs debugpy's
//! CLI the same way with `TCP_NODELAY` on pydevd's socket and the adapter's
//! ([`crate::nodelay::bootstrap`]).

use std::ffi::OsString;

use crate::config::Config;

/// Why a command line cannot be launched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    /// Nothing after `--`.
    #[error(
        "nothing to launch: give the app's command after `--`, e.g. `dap-sidecar launch -- python main.py`"
    )]
    Empty,
    /// No script, `-m module` or `-c code` after the interpreter's options.
    #[error("`{0}` names no script, -m module or -c code to run under debugpy")]
    NoTarget(String),
}

/// Python options that take a separate value (`-W default`, `-X dev`).
const WITH_VALUE: &[&str] = &["-W", "-X", "--check-hash-based-pycs"];

/// Builds the debugpy command line for `argv` (interpreter first).
pub fn command(config: &Config, argv: &[OsString]) -> Result<Vec<OsString>, LaunchError> {
    let (python, rest) = argv.split_first().ok_or(LaunchError::Empty)?;
    // Interpreter options run until the script, `-m` or `-c`.
    let mut split = 0;
    while split < rest.len() {
        let arg = rest[split].to_string_lossy();
        if arg == "-m" || arg == "-c" || !arg.starts_with('-') || arg == "-" {
            break;
        }
        if arg.starts_with("-m") || arg.starts_with("-c") {
            break; // `-mmodule` / `-ccode`
        }
        split += if WITH_VALUE.contains(&arg.as_ref()) {
            2
        } else {
            1
        };
    }
    let split = split.min(rest.len());
    let (options, target) = rest.split_at(split);
    if target.is_empty() {
        let shown: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return Err(LaunchError::NoTarget(shown.join(" ")));
    }
    let mut out = vec![python.clone()];
    out.extend(options.iter().cloned());
    out.push("-Xfrozen_modules=off".into());
    if config.tcp_nodelay {
        out.extend(["-c", crate::nodelay::bootstrap::BOOTSTRAP].map(OsString::from));
    } else {
        out.extend(["-m", "debugpy"].map(OsString::from));
    }
    out.push("--listen".into());
    out.push(config.upstream.clone().into());
    if config.wait {
        out.push("--wait-for-client".into());
    }
    out.extend(target.iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    fn line(config: &Config, s: &str) -> String {
        command(config, &argv(s))
            .expect("launchable")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn script_module_and_code_forms() {
        let mut c = Config {
            tcp_nodelay: false,
            ..Config::default()
        };
        assert_eq!(
            line(&c, "python main.py --port 8123"),
            "python -Xfrozen_modules=off -m debugpy --listen 127.0.0.1:5679 main.py --port 8123"
        );
        c.wait = true;
        assert_eq!(
            line(&c, "python3 -u -X dev -m homeassistant --config /config"),
            "python3 -u -X dev -Xfrozen_modules=off -m debugpy --listen 127.0.0.1:5679 --wait-for-client -m homeassistant --config /config"
        );
        assert_eq!(
            line(&c, "python -c print(1)"),
            "python -Xfrozen_modules=off -m debugpy --listen 127.0.0.1:5679 --wait-for-client -c print(1)"
        );
    }

    #[test]
    fn with_tcp_nodelay_the_bootstrap_runs_debugpy() {
        let c = Config::default();
        assert!(c.tcp_nodelay, "on by default");
        let line = command(&c, &argv("python -u main.py --port 8123")).expect("launchable");
        let bootstrap = crate::nodelay::bootstrap::BOOTSTRAP;
        let expected: Vec<OsString> = [
            "python",
            "-u",
            "-Xfrozen_modules=off",
            "-c",
            bootstrap,
            "--listen",
            "127.0.0.1:5679",
            "main.py",
            "--port",
            "8123",
        ]
        .map(OsString::from)
        .to_vec();
        assert_eq!(line, expected);
    }

    #[test]
    fn unlaunchable_command_lines_say_why() {
        let c = Config::default();
        assert_eq!(command(&c, &[]), Err(LaunchError::Empty));
        assert!(matches!(
            command(&c, &argv("python -u")),
            Err(LaunchError::NoTarget(_))
        ));
    }
}
