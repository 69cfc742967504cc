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

use std::collections::{HashMap, HashSet};

use procfs::net::{TcpNetEntry, TcpState};
use procfs::process::{FDTarget, Process};

use crate::config::{TargetConfig, TargetPid};

/// What discovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Whether something listens on the upstream port.
    pub upstream_listening: bool,
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
    /// Its command line, space-joined.
    pub cmdline: String,
}

/// One process as seen in `/proc`.
struct Proc {
    pid: i32,
    ppid: i32,
    cmdline: String,
    /// Socket inodes, if its fds are readable.
    sockets: Option<HashSet<u64>>,
}

fn tcp_table() -> Vec<TcpNetEntry> {
    let mut all = procfs::net::tcp().unwrap_or_default();
    all.extend(procfs::net::tcp6().unwrap_or_default());
    all
}

/// Whether something listens on `port` (any address), from `/proc/net/tcp{,6}`.
pub fn upstream_listening(port: u16) -> bool {
    tcp_table()
        .iter()
        .any(|e| e.state == TcpState::Listen && e.local_address.port() == port)
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
            let cmdline = p.cmdline().ok()?.join(" ");
            if cmdline.is_empty() {
                return None; // kernel threads and zombies
            }
            let sockets = p.fd().ok().map(|fds| {
                fds.flatten()
                    .filter_map(|fd| match fd.target {
                        FDTarget::Socket(inode) => Some(inode),
                        _ => None,
                    })
                    .collect()
            });
            Some(Proc {
                pid: p.pid,
                ppid,
                cmdline,
                sockets,
            })
        })
        .collect()
}

fn info(p: &Proc) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid,
        cmdline: redact(&p.cmdline),
    }
}

/// Hides the values of secret-looking arguments (debugpy passes its adapter and server
/// access tokens on the command line) before a command line is shown anywhere.
pub fn redact(cmdline: &str) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for word in cmdline.split(' ') {
        if hide_next {
            out.push("<redacted>".to_owned());
            hide_next = false;
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let secret = lower.starts_with("--")
            && (lower.contains("token") || lower.contains("secret") || lower.contains("password"));
        match word.split_once('=') {
            Some((flag, _)) if secret => out.push(format!("{flag}=<redacted>")),
            None if secret => {
                out.push(word.to_owned());
                hide_next = true;
            }
            _ => out.push(word.to_owned()),
        }
    }
    out.join(" ")
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
    let table = tcp_table();
    let procs = processes();
    let listening: HashMap<u64, u16> = table
        .iter()
        .filter(|e| e.state == TcpState::Listen)
        .map(|e| (e.inode, e.local_address.port()))
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
        upstream_listening: !upstream_inodes.is_empty(),
        debuggee: debuggee.map(info),
        adapter: adapter.map(info),
    }
}

/// The debuggee as the process connected to one of the adapter's internal server ports.
fn by_connection<'a>(
    procs: &'a [Proc],
    table: &[TcpNetEntry],
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
            e.state == TcpState::Established
                && e.remote_address.ip().is_loopback()
                && server_ports.contains(&e.remote_address.port())
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

    #[test]
    fn secrets_on_command_lines_are_redacted() {
        assert_eq!(
            redact("python adapter --port 5679 --server-access-token abc --x=1 --auth-token=def"),
            "python adapter --port 5679 --server-access-token <redacted> --x=1 --auth-token=<redacted>"
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
