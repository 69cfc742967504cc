//! One look, every second, for pydevd's connections to debugpy's adapter, and the fix
//! applied to the new ones. The steps, each done again only when its input changed:
//!
//! 1. `/proc/net/tcp{,6}`: the sockets listening on the upstream port (the adapter's
//!    client port) and the established loopback connections;
//! 2. when the listening socket is a new one (debugpy started or restarted): the
//!    process holding it is the adapter, and its other listening ports are its internal
//!    server ports (read from its `/proc/<pid>/fd`);
//! 3. connections whose peer is one of those ports are pydevd's (the app's, and those of
//!    debugged subprocesses). Nothing else is ever touched: the app's own sockets are
//!    not connected to the adapter's internal ports;
//! 4. for each such connection not handled yet: its holder and fd, then
//!    [`pidfd::set_nodelay`], which checks the duplicate's two addresses before setting
//!    anything.
//!
//! Steady state costs one read of the TCP tables a second, keeping only those rows.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::bootstrap::{Launch, launch_of};
use super::pidfd::{self, Holder, Outcome};
use super::{Reason, SocketReport, Status};
use crate::debuggee::discover::{self, TcpSocket, TcpSocketState};

/// debugpy's adapter as last found.
#[derive(Debug)]
struct Adapter {
    /// The listening sockets on the upstream port it was found by.
    listening: Vec<u64>,
    /// Its pid.
    pid: i32,
    /// Its internal server ports.
    server_ports: HashSet<u16>,
}

/// One pydevd connection and what was done to it.
#[derive(Clone, Debug)]
struct Handled {
    /// Holder of the app's side.
    holder: Option<Holder>,
    /// The app's side.
    local: SocketAddr,
    /// The adapter's side.
    remote: SocketAddr,
    /// The result (`Gone` ones are looked at again).
    outcome: Outcome,
    /// What the holder's command line says about `dap-sidecar launch`.
    launch: Option<Launch>,
}

/// How long a failure to find the adapter stands before `/proc` is scanned again (a
/// scan reads every process's fds).
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The state kept between looks.
#[derive(Debug)]
pub struct Scanner {
    /// The upstream port (debugpy's client port).
    port: u16,
    /// The adapter, once found.
    adapter: Option<Adapter>,
    /// The last failure to find it: for which listening sockets, when, and its status.
    failed: Option<(Vec<u64>, Instant, Status)>,
    /// pydevd connections by socket inode.
    handled: HashMap<u64, Handled>,
    /// The adapter's side of its client connections, by socket inode.
    clients: HashMap<u64, Outcome>,
}

impl Scanner {
    /// A scanner for debugpy listening on `port`.
    pub fn new(port: u16) -> Scanner {
        Scanner {
            port,
            adapter: None,
            failed: None,
            handled: HashMap::new(),
            clients: HashMap::new(),
        }
    }

    /// One look: applies the fix to new pydevd connections and says where things stand.
    pub fn step(&mut self) -> Status {
        let mut table = self.table();
        let mut listening: Vec<u64> = table
            .iter()
            .filter(|s| s.state == TcpSocketState::Listen)
            .map(|s| s.inode)
            .collect();
        listening.sort_unstable();
        if listening.is_empty() {
            self.adapter = None;
            self.handled.clear();
            self.clients.clear();
            return Status::new(
                Reason::NoDebuggee,
                format!("nothing listens on the upstream port {}", self.port),
            );
        }
        if self
            .adapter
            .as_ref()
            .is_none_or(|a| a.listening != listening)
        {
            self.handled.clear();
            self.clients.clear();
            self.adapter = None;
            if let Some((seen, at, status)) = &self.failed
                && *seen == listening
                && at.elapsed() < RETRY_AFTER
            {
                return status.clone();
            }
            match self.find_adapter(listening.clone()) {
                Ok(adapter) => {
                    self.adapter = Some(adapter);
                    self.failed = None;
                    table = self.table(); // now with the connections to its server ports
                }
                Err(status) => {
                    self.failed = Some((listening, Instant::now(), status.clone()));
                    return status;
                }
            }
        }
        let Some(adapter) = self.adapter.as_ref() else {
            return Status::new(Reason::NoDebuggee, "debugpy's adapter not found".into());
        };
        let links: HashMap<u64, (SocketAddr, SocketAddr)> = table
            .iter()
            .filter(|s| {
                s.state == TcpSocketState::Established
                    && adapter.server_ports.contains(&s.remote.port())
            })
            .map(|s| (s.inode, (s.local, s.remote)))
            .collect();
        self.handled.retain(|inode, _| links.contains_key(inode));
        let new: HashSet<u64> = links
            .keys()
            .filter(|inode| {
                self.handled
                    .get(inode)
                    .is_none_or(|h| h.outcome == Outcome::Gone)
            })
            .copied()
            .collect();
        if !new.is_empty() {
            let owners = pidfd::owners(&new);
            for inode in new {
                let (local, remote) = links[&inode];
                let holder = owners.found.get(&inode).copied();
                let outcome = match holder {
                    Some(h) => pidfd::set_nodelay(h, local, remote),
                    None if !owners.unreadable.is_empty() => Outcome::Refused(format!(
                        "cannot read the fds of pid {}",
                        list(&owners.unreadable)
                    )),
                    None => Outcome::Gone,
                };
                let launch = holder.and_then(|h| launch_of(&pidfd::argv(h.pid)));
                self.handled.insert(
                    inode,
                    Handled {
                        holder,
                        local,
                        remote,
                        outcome,
                        launch,
                    },
                );
            }
        }
        self.fix_clients(&table);
        self.status()
    }

    /// The adapter's side of its client connections (the sidecar's, or any other
    /// client's). debugpy answers `next` with the response, a `continued` and a
    /// `stopped` event in separate writes; without `TCP_NODELAY` each one after the
    /// first waits for the client's delayed ACK, about 40 ms per step.
    fn fix_clients(&mut self, table: &[TcpSocket]) {
        let Some(adapter) = &self.adapter else {
            return;
        };
        let current: HashMap<u64, (SocketAddr, SocketAddr)> = table
            .iter()
            .filter(|s| s.state == TcpSocketState::Established && s.local.port() == self.port)
            .map(|s| (s.inode, (s.local, s.remote)))
            .collect();
        self.clients.retain(|inode, _| current.contains_key(inode));
        let new: HashSet<u64> = current
            .keys()
            .filter(|inode| self.clients.get(inode).is_none_or(|o| *o == Outcome::Gone))
            .copied()
            .collect();
        if new.is_empty() {
            return;
        }
        let holders = pidfd::fds_of(adapter.pid, &new);
        for inode in new {
            let (local, remote) = current[&inode];
            let outcome = match holders.get(&inode) {
                Some(holder) => pidfd::set_nodelay(*holder, local, remote),
                None => Outcome::Gone,
            };
            self.clients.insert(inode, outcome);
        }
    }

    /// The rows of `/proc/net/tcp{,6}` this needs: the upstream port's listening sockets,
    /// connections on it (the adapter's clients), and loopback connections to the known
    /// adapter's server ports. Nothing else is kept, so a flood of connections elsewhere
    /// costs no memory.
    fn table(&self) -> Vec<TcpSocket> {
        let server_ports = self.adapter.as_ref().map(|a| &a.server_ports);
        discover::tcp_sockets(|s| match s.state {
            TcpSocketState::Listen => s.local.port() == self.port,
            TcpSocketState::Established => {
                s.local.port() == self.port
                    || (s.remote.ip().is_loopback()
                        && server_ports.is_some_and(|p| p.contains(&s.remote.port())))
            }
        })
    }

    /// The adapter as the holder of the upstream port's listening socket.
    fn find_adapter(&self, listening: Vec<u64>) -> Result<Adapter, Status> {
        let wanted: HashSet<u64> = listening.iter().copied().collect();
        let owners = pidfd::owners(&wanted);
        let Some(holder) = owners.found.values().next().copied() else {
            if owners.unreadable.is_empty() {
                return Err(Status::new(
                    Reason::NoDebuggee,
                    format!(
                        "no process the sidecar can see holds the socket listening on port {} \
                         (share the app's PID namespace: compose `pid: service:app`, \
                         Kubernetes `shareProcessNamespace: true`)",
                        self.port
                    ),
                ));
            }
            return Err(not_permitted(&owners.unreadable, self.port));
        };
        let Some(inodes) = discover::socket_inodes(holder.pid) else {
            return Err(not_permitted(&[holder.pid], self.port));
        };
        let server_ports: HashSet<u16> = discover::tcp_sockets(|s| {
            s.state == TcpSocketState::Listen && inodes.contains(&s.inode)
        })
        .iter()
        .map(|s| s.local.port())
        .filter(|port| *port != self.port)
        .collect();
        if server_ports.is_empty() {
            return Err(Status::new(
                Reason::NoDebuggee,
                format!(
                    "debugpy's adapter (pid {}) has no internal server port yet",
                    holder.pid
                ),
            ));
        }
        Ok(Adapter {
            listening,
            pid: holder.pid,
            server_ports,
        })
    }

    /// Where things stand for the connections found.
    fn status(&self) -> Status {
        let Some(adapter) = &self.adapter else {
            return Status::new(Reason::NoDebuggee, "debugpy's adapter not found".into());
        };
        let mut handled: Vec<&Handled> = self.handled.values().collect();
        handled.sort_by_key(|h| (h.holder.map(|h| h.pid), h.local.port()));
        if handled.is_empty() {
            return Status::new(
                Reason::NoDebuggee,
                format!(
                    "no app is connected to debugpy's adapter (pid {}) yet",
                    adapter.pid
                ),
            );
        }
        let sockets: Vec<SocketReport> = handled
            .iter()
            .map(|h| SocketReport {
                pid: h.holder.map(|h| h.pid),
                local: h.local,
                remote: h.remote,
                reason: reason_of(h),
            })
            .collect();
        // The first socket not fixed decides; else the sidecar's own doing is named.
        let worst = handled.iter().find(|h| !reason_of(h).active());
        let (reason, detail) = match worst {
            Some(h) => (reason_of(h), detail_of(h, self.port)),
            None if sockets.iter().any(|s| s.reason == Reason::SetBySidecar) => (
                Reason::SetBySidecar,
                format!(
                    "set by the sidecar on pydevd's connection{} to debugpy's adapter{}",
                    plural(sockets.len()),
                    match handled.iter().find_map(|h| match &h.launch {
                        Some(Launch::Failed(code)) => Some(code),
                        _ => None,
                    }) {
                        Some(code) => format!(
                            " (dap-sidecar launch could not: {code}; the app's log says why)"
                        ),
                        None => String::new(),
                    }
                ),
            ),
            None if sockets.iter().any(|s| s.reason == Reason::Launcher) => {
                let h = handled
                    .iter()
                    .find(|h| reason_of(h) == Reason::Launcher)
                    .copied();
                (
                    Reason::Launcher,
                    h.map(|h| detail_of(h, self.port)).unwrap_or_default(),
                )
            }
            None => (
                Reason::AlreadySet,
                format!(
                    "already set on pydevd's connection{} to debugpy's adapter{}",
                    plural(sockets.len()),
                    if handled.iter().all(|h| h.launch == Some(Launch::Bootstrap)) {
                        " (by dap-sidecar launch)"
                    } else {
                        ""
                    }
                ),
            ),
        };
        let adapter_sockets = self
            .clients
            .values()
            .filter(|o| matches!(o, Outcome::Set | Outcome::AlreadySet))
            .count();
        Status {
            reason,
            detail,
            sockets,
            adapter_sockets,
        }
    }
}

/// The reason for one connection.
fn reason_of(h: &Handled) -> Reason {
    match &h.outcome {
        Outcome::Set => Reason::SetBySidecar,
        Outcome::AlreadySet => Reason::AlreadySet,
        Outcome::Refused(_) => match h.launch {
            Some(Launch::Bootstrap) => Reason::Launcher,
            Some(Launch::Failed(_)) => Reason::LauncherFailed,
            None => Reason::NoPermission,
        },
        Outcome::Unsupported(_) => Reason::Unsupported,
        Outcome::Gone => Reason::NoDebuggee,
        Outcome::Failed(_) => Reason::Failed,
    }
}

fn detail_of(h: &Handled, port: u16) -> String {
    let pid = h.holder.map(|h| h.pid);
    match &h.outcome {
        Outcome::Refused(_) if h.launch.is_some() => launcher(pid, h.launch.as_ref()),
        Outcome::Refused(why) => format!(
            "{}: {why}. {}",
            match pid {
                Some(pid) => format!("cannot duplicate pydevd's socket in pid {pid}"),
                None => "cannot find pydevd's socket".into(),
            },
            super::RIGHTS
        ),
        Outcome::Unsupported(why) => format!(
            "{why}: pidfd_getfd needs Linux 5.6 or later and, in a container, CAP_SYS_PTRACE \
             (start the app with dap-sidecar launch instead)"
        ),
        Outcome::Failed(why) => format!("cannot set it on pydevd's socket: {why}"),
        Outcome::Gone => format!("pydevd's connection to debugpy (port {port}) went away"),
        Outcome::Set | Outcome::AlreadySet => String::new(),
    }
}

/// No rights over the processes that may be debugpy's: the app may still have been
/// started by `dap-sidecar launch`, whose command line says so.
fn not_permitted(pids: &[i32], port: u16) -> Status {
    match launched_app(port) {
        Some((pid, launch)) => {
            let reason = match launch {
                Launch::Bootstrap => Reason::Launcher,
                Launch::Failed(_) => Reason::LauncherFailed,
            };
            Status::new(reason, launcher(Some(pid), Some(&launch)))
        }
        None => Status::new(
            Reason::NoPermission,
            format!(
                "the fds of {} cannot be read (another user's processes), so pydevd's socket \
                 cannot be found. {}",
                match pids {
                    [pid] => format!("pid {pid}"),
                    _ => format!("{} processes (pid {})", pids.len(), list(pids)),
                },
                super::RIGHTS
            ),
        ),
    }
}

/// The detail for an app started by `dap-sidecar launch` whose socket the sidecar may
/// not look at.
fn launcher(pid: Option<i32>, launch: Option<&Launch>) -> String {
    let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    match launch {
        Some(Launch::Failed(code)) => format!(
            "dap-sidecar launch could not set it in the app{pid} ({code}; the app's log says \
             why), and the sidecar lacks the rights to set it itself. {}",
            super::RIGHTS
        ),
        _ => format!(
            "set by dap-sidecar launch inside the app{pid}; the sidecar lacks the rights to \
             check it"
        ),
    }
}

/// A process started by `dap-sidecar launch` with `--listen` on `port`.
fn launched_app(port: u16) -> Option<(i32, Launch)> {
    let all = procfs::process::all_processes().ok()?;
    all.flatten().find_map(|p| {
        let argv = p.cmdline().ok()?;
        let listens = argv.windows(2).any(|w| {
            w[0] == "--listen" && w[1].rsplit(':').next().and_then(|p| p.parse().ok()) == Some(port)
        });
        Some(p.pid).zip(launch_of(&argv).filter(|_| listens))
    })
}

fn list(pids: &[i32]) -> String {
    let shown: Vec<String> = pids.iter().take(5).map(ToString::to_string).collect();
    let more = if pids.len() > 5 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(outcomes: &[(Outcome, Option<Launch>)]) -> Scanner {
        let mut scanner = Scanner::new(5679);
        scanner.adapter = Some(Adapter {
            listening: vec![1],
            pid: 10,
            server_ports: HashSet::from([40000]),
        });
        for (i, (outcome, launch)) in outcomes.iter().enumerate() {
            let n = u16::try_from(i).expect("few");
            scanner.handled.insert(
                u64::from(n) + 100,
                Handled {
                    holder: Some(Holder {
                        pid: 20 + i32::from(n),
                        fd: 3,
                    }),
                    local: SocketAddr::from(([127, 0, 0, 1], 50000 + n)),
                    remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
                    outcome: outcome.clone(),
                    launch: launch.clone(),
                },
            );
        }
        scanner
    }

    #[test]
    fn the_first_socket_not_fixed_decides_and_says_why() {
        let refused = || Outcome::Refused("pidfd_getfd: EPERM".into());
        let cases = [
            (
                vec![(Outcome::Set, None)],
                Reason::SetBySidecar,
                "set by the sidecar",
            ),
            (
                vec![(Outcome::AlreadySet, Some(Launch::Bootstrap))],
                Reason::AlreadySet,
                "(by dap-sidecar launch)",
            ),
            (
                vec![(refused(), Some(Launch::Bootstrap))],
                Reason::Launcher,
                "lacks the rights to check",
            ),
            (
                vec![(refused(), Some(Launch::Failed("no_hook".into())))],
                Reason::LauncherFailed,
                "could not set it in the app (pid 20) (no_hook",
            ),
            (
                vec![(refused(), None)],
                Reason::NoPermission,
                "cap_add: [SYS_PTRACE]",
            ),
            (
                vec![(Outcome::Set, None), (refused(), None)],
                Reason::NoPermission,
                "pid 21",
            ),
            (
                vec![(Outcome::Set, Some(Launch::Failed("no_hook".into())))],
                Reason::SetBySidecar,
                "dap-sidecar launch could not: no_hook",
            ),
            (
                vec![(Outcome::Unsupported("pidfd_getfd: ENOSYS".into()), None)],
                Reason::Unsupported,
                "Linux 5.6",
            ),
        ];
        for (outcomes, reason, text) in cases {
            let status = scanner(&outcomes).status();
            assert_eq!(status.reason, reason, "{outcomes:?}: {status:?}");
            assert!(status.detail.contains(text), "{text}: {}", status.detail);
            assert_eq!(status.sockets.len(), outcomes.len());
        }
        let none = scanner(&[]).status();
        assert_eq!(none.reason, Reason::NoDebuggee);
        assert!(none.detail.contains("pid 10"), "{}", none.detail);
    }
}
