//! Finds the debugged app and debugpy's adapter among the processes of the shared PID
//! namespace, without ever connecting to debugpy (it treats every connection as an IDE).
//!
//! `python -m debugpy --listen 127.0.0.1:5679 app.py` runs two processes: the app (the
//! *debuggee*) and a daemonized *adapter* that listens on 5679 for IDEs and on an internal
//! port for the app's debug server. So, in `auto` mode:
//!
//! 1. the upstream port's listening socket, from `/proc/net/tcp{,6}`, tells whether
//!    debugpy is up (readiness) and, through `/proc/<pid>/fd`, which process is the
//!    adapter (if fds are not readable: the command line naming debugpy's adapter and the port);
//! 2. the adapter's other listening ports are its internal server ports; the processes
//!    with connections to them are debuggees (the app, and any debugged subprocesses);
//! 3. the debuggee is the one whose parent is not itself a debuggee. Without readable
//!    fds (or before the app has connected) it falls back to a command line running
//!    debugpy with `--listen` on the upstream port.
//!
//! `target.pid` fixes the debuggee; `target.match` picks it by command-line substring.
//! Everything here is blocking `/proc` I/O: callers run it on a blocking thread.
//!
//! # What is shown of a command line
//!
//! `/status` and the page are unauthenticated, and a command line carries whatever the
//! app was started with (`--api-key X`, `postgres://app:PW@db/app`, debugpy's access
//! tokens). Matching uses the raw command line; what [`ProcessInfo::cmdline`] shows is
//! [`redact_argv`]'s: the program and the Python entry point stay, every other argument
//! value goes. Precisely:
//!
//! - kept: the program (the interpreter path); for a Python interpreter, its own options
//!   (`-u`, `-OO`, `-X dev`, `-W error`: they configure Python, not the app), `-m module`
//!   or the script path; after `-m debugpy`, debugpy's option *names* and then the
//!   debugged program's `-m module` or script path; every later option *name*
//!   (`--port`, `-p`);
//! - replaced by `<redacted>`: every other word that is not an option name (values,
//!   positional arguments, URLs, `KEY=VALUE`), the value of every `--opt=value`
//!   (`--opt=<redacted>`) and of an attached short option (`-pX` becomes `-p<redacted>`),
//!   `-c CODE` (`-c <redacted>`), and every value of debugpy's own options (`--listen`,
//!   `--adapter-access-token`, ...). debugpy's adapter command line
//!   (`python .../debugpy/adapter --port 5679 --server-access-token T`) follows the same
//!   rule, so its access tokens are never shown.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};

use procfs::process::{FDTarget, Process};

use crate::config::{TargetConfig, TargetPid};

/// What discovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The app process.
    pub debuggee: Option<ProcessInfo>,
    /// debugpy's adapter process.
    pub adapter: Option<ProcessInfo>,
}

/// A discovered process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid (in the sidecar's PID namespace).
    pub pid: i32,
    /// Its command line, space-joined, redacted for display (see the module doc).
    pub cmdline: String,
}

/// One process as seen in `/proc`.
struct Proc {
    /// Its pid.
    pid: i32,
    /// Its parent's pid.
    ppid: i32,
    /// Its raw command line, space-joined (for matching only, never shown).
    cmdline: String,
    /// Its raw argument vector.
    argv: Vec<String>,
    /// Socket inodes, if its fds are readable.
    sockets: Option<HashSet<u64>>,
}

/// The state of a [`TcpSocket`]; sockets in other states are never returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpSocketState {
    /// `LISTEN`.
    Listen,
    /// `ESTABLISHED`.
    Established,
}

/// One listening or connected TCP socket of the sidecar's network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpSocket {
    /// The local address (an IPv4-mapped IPv6 address as IPv4).
    pub local: SocketAddr,
    /// The peer's address (likewise; `0.0.0.0:0` when listening).
    pub remote: SocketAddr,
    /// Its state.
    pub state: TcpSocketState,
    /// Its socket inode (0 when no process holds it).
    pub inode: u64,
}

/// The listening and connected TCP sockets of the sidecar's network namespace for which
/// `keep` is true, from `/proc/net/tcp` and `/proc/net/tcp6` (a table that cannot be
/// read counts as empty).
///
/// The tables are read a line at a time and only the kept rows are stored: under a
/// connection flood they list tens of thousands of sockets (most in `TIME_WAIT`, skipped
/// before their addresses are even parsed), and reading them whole would cost the
/// sidecar tens of MiB.
pub fn tcp_sockets(mut keep: impl FnMut(&TcpSocket) -> bool) -> Vec<TcpSocket> {
    let mut kept = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(file) = std::fs::File::open(path) else {
            continue;
        };
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(socket) = parse_tcp_line(&line)
                && keep(&socket)
            {
                kept.push(socket);
            }
        }
    }
    kept
}

/// One row of `/proc/net/tcp{,6}`: `sl local rem st tx:rx tr:when retrnsmt uid timeout
/// inode ...`; `None` for the header, other states, and anything malformed.
fn parse_tcp_line(line: &str) -> Option<TcpSocket> {
    let mut fields = line.split_ascii_whitespace();
    let _slot = fields.next()?;
    let local = fields.next()?;
    let remote = fields.next()?;
    let state = match fields.next()? {
        "0A" => TcpSocketState::Listen,
        "01" => TcpSocketState::Established,
        _ => return None,
    };
    let inode = fields.nth(5)?.parse().ok()?;
    Some(TcpSocket {
        local: parse_proc_addr(local)?,
        remote: parse_proc_addr(remote)?,
        state,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6): the address as the kernel
/// prints it, each 32-bit word in host byte order.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::from(word(ip)?),
        32 => {
            let mut bytes = [0u8; 16];
            for (chunk, out) in bytes.chunks_exact_mut(4).enumerate() {
                out.copy_from_slice(&word(ip.get(chunk * 8..chunk * 8 + 8)?)?);
            }
            IpAddr::from(bytes).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The socket inodes among a process's open file descriptors.
fn sockets_of(p: &Process) -> Option<HashSet<u64>> {
    p.fd().ok().map(|fds| {
        fds.flatten()
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect()
    })
}

/// The socket inodes `pid` holds open; `None` when its fds cannot be read (another
/// user's process without `CAP_SYS_PTRACE`, or gone).
pub fn socket_inodes(pid: i32) -> Option<HashSet<u64>> {
    sockets_of(&Process::new(pid).ok()?)
}

fn processes() -> Vec<Proc> {
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter(|p| p.pid != me)
        .filter_map(|p: Process| {
            let ppid = p.stat().ok()?.ppid;
            let argv = p.cmdline().ok()?;
            let cmdline = argv.join(" ");
            if cmdline.is_empty() {
                return None; // kernel threads and zombies
            }
            Some(Proc {
                pid: p.pid,
                ppid,
                cmdline,
                argv,
                sockets: sockets_of(&p),
            })
        })
        .collect()
}

fn info(p: &Proc) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid,
        cmdline: redact_argv(&p.argv),
    }
}

/// What replaces a hidden word.
const REDACTED: &str = "<redacted>";

/// Python's single-letter options that take no value (they combine: `-uB`, `-OO`).
const PYTHON_FLAGS: &str = "bBdEhiIOPqsSuvVx?";

/// debugpy's options that take no value; every other one takes exactly one.
const DEBUGPY_FLAGS: [&str; 9] = [
    "--wait-for-client",
    "--log-to-stderr",
    "--disable-sys-remote-exec",
    "--linux-attach-prefer-lldb",
    "-h",
    "-?",
    "--help",
    "-V",
    "--version",
];

/// How a Python command line names the program it runs.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    /// `-m module`.
    Module(String),
    /// A script path, `-c CODE`, `-`, or nothing recognisable: what follows are the
    /// program's own arguments.
    Other,
}

/// Whether `program` (a path) is a Python interpreter.
fn is_python(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    name.starts_with("python") || name.starts_with("pypy")
}

/// A command line (argument vector) for display: the program and the Python entry
/// point kept, every other argument value replaced by `<redacted>` (the rule is in the
/// module doc).
pub fn redact_argv<S: AsRef<str>>(argv: &[S]) -> String {
    let mut words = argv.iter().map(AsRef::as_ref);
    let mut out = Vec::with_capacity(argv.len());
    let Some(program) = words.next() else {
        return String::new();
    };
    out.push(program.to_owned());
    if is_python(program)
        && python_options(&mut words, &mut out) == Entry::Module("debugpy".to_owned())
    {
        debugpy_options(&mut words, &mut out);
    }
    for word in words {
        out.push(argument(word));
    }
    out.join(" ")
}

/// [`redact_argv`] for a space-joined command line (for tests).
#[cfg(test)]
fn redact(cmdline: &str) -> String {
    redact_argv(&cmdline.split_whitespace().collect::<Vec<_>>())
}

/// Python's own options up to and including the entry point (`-m module`, `-c CODE`,
/// a script path); returns which entry point it was.
fn python_options<'a>(words: &mut impl Iterator<Item = &'a str>, out: &mut Vec<String>) -> Entry {
    while let Some(word) = words.next() {
        if word == "--check-hash-based-pycs" {
            out.push(word.to_owned());
            if let Some(mode) = words.next() {
                out.push(mode.to_owned());
            }
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            if long.is_empty() {
                out.push(word.to_owned());
                continue;
            }
            out.push(argument(word));
            continue;
        }
        let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) else {
            // The script path (or `-`, standard input).
            out.push(word.to_owned());
            return Entry::Other;
        };
        for (at, c) in short.char_indices() {
            let name = &word[..at + 2];
            let attached = &short[at + c.len_utf8()..];
            match c {
                c if PYTHON_FLAGS.contains(c) => continue,
                'W' | 'X' => {
                    // Interpreter settings: kept with their value.
                    out.push(word.to_owned());
                    if attached.is_empty()
                        && let Some(value) = words.next()
                    {
                        out.push(value.to_owned());
                    }
                }
                'm' => {
                    out.push(word.to_owned());
                    let module = if attached.is_empty() {
                        let module = words.next().unwrap_or_default();
                        out.push(module.to_owned());
                        module
                    } else {
                        attached
                    };
                    return Entry::Module(module.to_owned());
                }
                'c' => {
                    if attached.is_empty() {
                        out.push(name.to_owned());
                        match words.next() {
                            // `dap-sidecar launch`'s stand-in for `-m debugpy`.
                            Some(code) if code.starts_with(crate::nodelay::bootstrap::MARKER) => {
                                out.push("<dap-sidecar launch bootstrap>".to_owned());
                                return Entry::Module("debugpy".to_owned());
                            }
                            Some(_) => out.push(REDACTED.to_owned()),
                            None => {}
                        }
                    } else {
                        out.push(format!("{name}{REDACTED}"));
                    }
                    return Entry::Other;
                }
                _ => {
                    // Not Python's: what follows cannot be told apart, so it is all
                    // treated as the program's arguments.
                    out.push(format!("{name}{REDACTED}"));
                    return Entry::Other;
                }
            }
            break;
        }
        if short.chars().all(|c| PYTHON_FLAGS.contains(c)) {
            out.push(word.to_owned());
        }
    }
    Entry::Other
}

/// debugpy's options after `-m debugpy`, up to and including the debugged program's
/// entry point: names kept, values redacted.
fn debugpy_options<'a>(words: &mut impl Iterator<Item = &'a str>, out: &mut Vec<String>) {
    while let Some(word) = words.next() {
        match word {
            "-m" => {
                out.push(word.to_owned());
                if let Some(module) = words.next() {
                    out.push(module.to_owned());
                }
                return;
            }
            "-c" | "--pid" => {
                out.push(word.to_owned());
                if words.next().is_some() {
                    out.push(REDACTED.to_owned());
                }
                return;
            }
            w if DEBUGPY_FLAGS.contains(&w) => out.push(word.to_owned()),
            w if w.starts_with('-') && w.len() > 1 => {
                out.push(argument(word));
                if !w.contains('=') && words.next().is_some() {
                    out.push(REDACTED.to_owned());
                }
            }
            _ => {
                // The debugged script's path.
                out.push(word.to_owned());
                return;
            }
        }
    }
}

/// One of the program's own arguments: an option name is kept, anything else redacted.
fn argument(word: &str) -> String {
    if word == "-" || word == "--" {
        return word.to_owned();
    }
    if let Some(long) = word.strip_prefix("--") {
        return match long.split_once('=') {
            Some((name, _)) => format!("--{name}={REDACTED}"),
            None => word.to_owned(),
        };
    }
    let mut chars = word.chars();
    match (chars.next(), chars.next()) {
        (Some('-'), Some(letter)) if letter.is_ascii_alphabetic() => {
            if chars.as_str().is_empty() {
                word.to_owned()
            } else if let Some((name, _)) = word.split_once('=') {
                format!("{name}={REDACTED}")
            } else {
                format!("-{letter}{REDACTED}")
            }
        }
        _ => REDACTED.to_owned(),
    }
}

/// Whether a command line is debugpy's adapter serving `port`.
fn is_adapter_for(cmdline: &str, port: u16) -> bool {
    (cmdline.contains("debugpy/adapter") || cmdline.contains("debugpy.adapter"))
        && cmdline.contains(&format!("--port {port}"))
}

/// Whether a command line runs debugpy with `--listen [HOST:]port` on `port` (other
/// debugged apps on the same machine listen elsewhere).
fn debugpy_listens_on(cmdline: &str, port: u16) -> bool {
    let mut words = cmdline.split_whitespace();
    cmdline.contains("debugpy")
        && words.any(|w| w == "--listen")
        && words
            .next()
            .and_then(|address| address.rsplit(':').next()?.parse::<u16>().ok())
            == Some(port)
}

/// Of several candidate processes, the one whose parent is not a candidate (the app
/// rather than its debugged children); the lowest pid breaks ties.
fn root_of<'a>(candidates: impl IntoIterator<Item = &'a Proc>) -> Option<&'a Proc> {
    let candidates: Vec<&Proc> = candidates.into_iter().collect();
    let pids: HashSet<i32> = candidates.iter().map(|p| p.pid).collect();
    candidates
        .iter()
        .filter(|p| !pids.contains(&p.ppid))
        .min_by_key(|p| p.pid)
        .copied()
}

/// Finds the debuggee and the adapter for an upstream on `upstream_port`.
pub fn discover(config: &TargetConfig, upstream_port: u16) -> Found {
    // Listening sockets, and connections on loopback (where the app talks to the
    // adapter's internal ports): enough for both steps, and small under a flood.
    let table = tcp_sockets(|s| s.state == TcpSocketState::Listen || s.remote.ip().is_loopback());
    let procs = processes();
    let listening: HashMap<u64, u16> = table
        .iter()
        .filter(|e| e.state == TcpSocketState::Listen)
        .map(|e| (e.inode, e.local.port()))
        .collect();
    let upstream_inodes: HashSet<u64> = listening
        .iter()
        .filter(|(_, port)| **port == upstream_port)
        .map(|(inode, _)| *inode)
        .collect();

    let adapter = procs
        .iter()
        .find(|p| {
            p.sockets
                .as_ref()
                .is_some_and(|s| !s.is_disjoint(&upstream_inodes))
        })
        .or_else(|| {
            procs
                .iter()
                .find(|p| is_adapter_for(&p.cmdline, upstream_port))
        });
    let adapter_pid = adapter.map(|a| a.pid);

    let debuggee = match (config.pid, &config.r#match) {
        (TargetPid::Pid(pid), _) => procs.iter().find(|p| p.pid as u32 == pid),
        (TargetPid::Auto, Some(needle)) => root_of(
            procs
                .iter()
                .filter(|p| Some(p.pid) != adapter_pid && p.cmdline.contains(needle.as_str())),
        ),
        (TargetPid::Auto, None) => {
            by_connection(&procs, &table, &listening, adapter, upstream_port).or_else(|| {
                root_of(procs.iter().filter(|p| {
                    Some(p.pid) != adapter_pid && debugpy_listens_on(&p.cmdline, upstream_port)
                }))
            })
        }
    };
    Found {
        debuggee: debuggee.map(info),
        adapter: adapter.map(info),
    }
}

/// The debuggee as the process connected to one of the adapter's internal server ports.
fn by_connection<'a>(
    procs: &'a [Proc],
    table: &[TcpSocket],
    listening: &HashMap<u64, u16>,
    adapter: Option<&Proc>,
    upstream_port: u16,
) -> Option<&'a Proc> {
    let adapter = adapter?;
    let adapter_sockets = adapter.sockets.as_ref()?;
    let server_ports: HashSet<u16> = adapter_sockets
        .iter()
        .filter_map(|inode| listening.get(inode))
        .filter(|port| **port != upstream_port)
        .copied()
        .collect();
    let client_inodes: HashSet<u64> = table
        .iter()
        .filter(|e| {
            e.state == TcpSocketState::Established
                && e.remote.ip().is_loopback()
                && server_ports.contains(&e.remote.port())
        })
        .map(|e| e.inode)
        .collect();
    root_of(procs.iter().filter(|p| {
        p.pid != adapter.pid
            && p.sockets
                .as_ref()
                .is_some_and(|s| !s.is_disjoint(&client_inodes))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32) -> Proc {
        Proc {
            pid,
            ppid,
            cmdline: String::new(),
            argv: Vec::new(),
            sockets: None,
        }
    }

    #[test]
    fn the_root_debuggee_wins_over_its_children() {
        let procs = [p(30, 10), p(10, 1), p(20, 10)];
        assert_eq!(root_of(&procs).map(|p| p.pid), Some(10));
        let unrelated = [p(30, 2), p(20, 3)];
        assert_eq!(root_of(&unrelated).map(|p| p.pid), Some(20));
    }

    /// Secrets in six styles, after the entry point.
    const SECRET_ARGS: [&str; 10] = [
        "--api-key",
        "S3cr3t-1",
        "-p",
        "S3cr3t-2",
        "--key=S3cr3t-3",
        "postgres://app:S3cr3t-4@db/app",
        "TOKEN=S3cr3t-5",
        "--password",
        "S3cr3t-6",
        "-qS3cr3t-7",
    ];

    fn shown(argv: &[&str]) -> String {
        let shown = redact_argv(argv);
        for n in 1..=7 {
            assert!(
                !shown.contains(&format!("S3cr3t-{n}")),
                "secret {n}: {shown}"
            );
        }
        assert!(!shown.contains("S3cr3t"), "{shown}");
        shown
    }

    fn with_secrets<'a>(head: &[&'a str]) -> Vec<&'a str> {
        head.iter().copied().chain(SECRET_ARGS).collect()
    }

    #[test]
    fn a_script_keeps_interpreter_and_path_and_loses_every_value() {
        let argv = with_secrets(&[
            "/usr/local/bin/python3.12",
            "-u",
            "-X",
            "dev",
            "/usr/src/app/main.py",
        ]);
        assert_eq!(
            shown(&argv),
            "/usr/local/bin/python3.12 -u -X dev /usr/src/app/main.py --api-key <redacted> -p \
             <redacted> --key=<redacted> <redacted> <redacted> --password <redacted> -q<redacted>"
        );
    }

    #[test]
    fn a_module_keeps_its_name() {
        let argv = with_secrets(&[
            "python",
            "-OO",
            "-Xfrozen_modules=off",
            "-m",
            "homeassistant",
        ]);
        let shown = shown(&argv);
        assert!(
            shown.starts_with("python -OO -Xfrozen_modules=off -m homeassistant --api-key <redacted> -p <redacted>"),
            "{shown}"
        );
        let attached = redact_argv(&["python3", "-mhttp.server", "8000"]);
        assert_eq!(attached, "python3 -mhttp.server <redacted>");
    }

    #[test]
    fn under_debugpy_the_option_names_and_the_app_entry_stay() {
        let argv = with_secrets(&[
            "/venv/bin/python",
            "-Xfrozen_modules=off",
            "-m",
            "debugpy",
            "--listen",
            "0.0.0.0:5679",
            "--wait-for-client",
            "--adapter-access-token",
            "S3cr3t-0",
            "--configure-subProcess",
            "true",
            "-m",
            "myapp.server",
        ]);
        assert_eq!(
            shown(&argv).split(" --api-key").next(),
            Some(
                "/venv/bin/python -Xfrozen_modules=off -m debugpy --listen <redacted> --wait-for-client \
                 --adapter-access-token <redacted> --configure-subProcess <redacted> -m myapp.server"
            )
        );
        let script = with_secrets(&[
            "python",
            "-m",
            "debugpy",
            "--listen",
            "5679",
            "/usr/src/app/main.py",
        ]);
        assert!(
            shown(&script).starts_with(
                "python -m debugpy --listen <redacted> /usr/src/app/main.py --api-key"
            ),
        );
    }

    #[test]
    fn code_and_non_python_programs_lose_their_values() {
        assert_eq!(
            shown(&with_secrets(&[
                "python",
                "-c",
                "import os; os.environ['K']='S3cr3t-8'"
            ])),
            "python -c <redacted> --api-key <redacted> -p <redacted> --key=<redacted> <redacted> \
             <redacted> --password <redacted> -q<redacted>"
        );
        assert_eq!(
            shown(&with_secrets(&["/usr/local/bin/gunicorn"])),
            "/usr/local/bin/gunicorn --api-key <redacted> -p <redacted> --key=<redacted> <redacted> \
             <redacted> --password <redacted> -q<redacted>"
        );
        assert_eq!(redact_argv::<&str>(&[]), "");
        assert_eq!(redact_argv(&["python", "-", "-5"]), "python - <redacted>");
    }

    #[test]
    fn the_launchers_bootstrap_shows_as_debugpy_with_the_app_entry() {
        let code = crate::nodelay::bootstrap::BOOTSTRAP;
        let argv = with_secrets(&[
            "python",
            "-Xfrozen_modules=off",
            "-c",
            code,
            "--listen",
            "127.0.0.1:5679",
            "/usr/src/app/main.py",
        ]);
        assert!(
            shown(&argv).starts_with(
                "python -Xfrozen_modules=off -c <dap-sidecar launch bootstrap> --listen \
                 <redacted> /usr/src/app/main.py --api-key <redacted>"
            ),
            "{}",
            shown(&argv)
        );
    }

    #[test]
    fn the_adapter_command_line_shows_no_token() {
        let cmd = "/venv/bin/python /venv/lib/python3.11/site-packages/debugpy/adapter --for-server 40957 \
                   --host 127.0.0.1 --port 5679 --server-access-token abc123";
        assert_eq!(
            redact(cmd),
            "/venv/bin/python /venv/lib/python3.11/site-packages/debugpy/adapter --for-server <redacted> \
             --host <redacted> --port <redacted> --server-access-token <redacted>"
        );
    }

    #[test]
    fn apps_are_recognised_by_the_port_they_listen_on() {
        let app = "python -m debugpy --listen 127.0.0.1:5679 --wait-for-client main.py";
        assert!(debugpy_listens_on(app, 5679));
        assert!(!debugpy_listens_on(app, 5678), "another app's debugpy");
        assert!(debugpy_listens_on(
            "python -m debugpy --listen 5679 a.py",
            5679
        ));
        assert!(!debugpy_listens_on("python -m debugpy --listen", 5679));
        assert!(!debugpy_listens_on("python serve.py --listen 5679", 5679));
    }

    #[test]
    fn proc_net_tcp_rows_are_parsed_and_other_states_skipped() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        assert_eq!(parse_tcp_line(header), None);
        let listen = "   0: 0100007F:166F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let loopback = if cfg!(target_endian = "little") {
            "0100007F"
        } else {
            "7F000001"
        };
        let listen = listen.replace("0100007F", loopback);
        assert_eq!(
            parse_tcp_line(&listen),
            Some(TcpSocket {
                local: "127.0.0.1:5743".parse().expect("addr"),
                remote: "0.0.0.0:0".parse().expect("addr"),
                state: TcpSocketState::Listen,
                inode: 4242,
            })
        );
        let time_wait = listen.replace(" 0A ", " 06 ");
        assert_eq!(parse_tcp_line(&time_wait), None);
        assert_eq!(parse_tcp_line("   1: garbage"), None);
        // IPv6 `::` and an IPv4-mapped loopback, as the kernel prints them.
        let v6 = format!(
            "   2: {}:166F {}:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 77 1",
            "0".repeat(32),
            "0000000000000000FFFF0000".to_owned() + loopback
        );
        let parsed = parse_tcp_line(&v6).expect("an IPv6 row");
        assert_eq!(parsed.local, "[::]:5743".parse().expect("addr"));
        assert_eq!(parsed.remote, "127.0.0.1:40000".parse().expect("addr"));
        assert_eq!(parsed.state, TcpSocketState::Established);
    }

    #[test]
    fn our_own_listener_is_found_in_proc() {
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
            return; // no loopback in this sandbox
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let found = tcp_sockets(|s| s.local == addr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].state, TcpSocketState::Listen);
    }

    #[test]
    fn adapter_command_lines_are_recognised() {
        let cmd = "/venv/bin/python /venv/lib/python3.11/site-packages/debugpy/adapter --for-server 40957 --host 127.0.0.1 --port 5679 --server-access-token x";
        assert!(is_adapter_for(cmd, 5679));
        assert!(!is_adapter_for(cmd, 5678));
        assert!(!is_adapter_for(
            "python -m debugpy --listen 5679 app.py",
            5679
        ));
    }
}
