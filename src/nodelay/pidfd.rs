//! Setting `TCP_NODELAY` on a socket of another process: find which process holds a
//! socket inode and under which fd (`/proc/<pid>/fd`), duplicate that fd into the
//! sidecar with `pidfd_open` + `pidfd_getfd` (Linux 5.6+), check that the duplicate is
//! the connection expected (its two addresses), and set the option on it. The option
//! belongs to the socket, which both fds share, so closing the duplicate leaves it set.
//!
//! `pidfd_getfd` needs the right to ptrace the process (`PTRACE_MODE_ATTACH`): the same
//! user (and, under Yama's `ptrace_scope` 1, `CAP_SYS_PTRACE`), or root with
//! `CAP_SYS_PTRACE`. Container runtimes' default seccomp profiles allow the call only to
//! containers with `CAP_SYS_PTRACE`. Without the right it fails with `EPERM`, and
//! another user's `/proc/<pid>/fd` cannot even be read.
//!
//! Everything here is blocking `/proc` I/O and system calls: run it on a blocking thread.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use procfs::process::FDTarget;
use rustix::io::Errno;
use rustix::net::sockopt;
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};

/// Where a socket inode is open: a process and its fd number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The process.
    pub pid: i32,
    /// The fd number in that process.
    pub fd: i32,
}

/// Who holds each of some socket inodes, after one pass over `/proc`.
#[derive(Debug, Default)]
pub struct Owners {
    /// The first holder found of each inode found.
    pub found: HashMap<u64, Holder>,
    /// Processes whose fds could not be read (another user's, without the rights).
    pub unreadable: Vec<i32>,
}

/// Finds the processes holding `inodes` (the sidecar's own pid excluded).
pub fn owners(inodes: &HashSet<u64>) -> Owners {
    let mut out = Owners::default();
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return out;
    };
    for process in all.flatten().filter(|p| p.pid != me) {
        let Ok(fds) = process.fd() else {
            if process.stat().is_ok_and(|s| s.state != 'Z') {
                out.unreadable.push(process.pid);
            }
            continue;
        };
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target
                && inodes.contains(&inode)
            {
                out.found.entry(inode).or_insert(Holder {
                    pid: process.pid,
                    fd: fd.fd,
                });
            }
        }
    }
    out
}

/// Where `pid` holds any of `inodes` (empty if its fds cannot be read).
pub fn fds_of(pid: i32, inodes: &HashSet<u64>) -> HashMap<u64, Holder> {
    let Ok(fds) = procfs::process::Process::new(pid).and_then(|p| p.fd()) else {
        return HashMap::new();
    };
    fds.flatten()
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) if inodes.contains(&inode) => {
                Some((inode, Holder { pid, fd: fd.fd }))
            }
            _ => None,
        })
        .collect()
}

/// The raw command line of `pid` (readable without rights), empty if gone.
pub fn argv(pid: i32) -> Vec<String> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.cmdline())
        .unwrap_or_default()
}

/// What setting the option on one socket did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sidecar set it.
    Set,
    /// It was set already (by `dap-sidecar launch` in the app, or by debugpy itself).
    AlreadySet,
    /// The kernel refused the duplicate: no right to ptrace the process.
    Refused(String),
    /// `pidfd_getfd` does not exist here (Linux before 5.6, or a seccomp filter).
    Unsupported(String),
    /// The process or fd went away, or the fd is now another socket: look again later.
    Gone,
    /// Anything else.
    Failed(String),
}

/// Duplicates `holder`'s fd, checks it is the connection `local` -> `remote`, and sets
/// `TCP_NODELAY` on it unless it is already set.
pub fn set_nodelay(holder: Holder, local: SocketAddr, remote: SocketAddr) -> Outcome {
    let Some(pid) = Pid::from_raw(holder.pid) else {
        return Outcome::Gone;
    };
    let call = |what: &str, e: Errno| match e {
        Errno::PERM | Errno::ACCESS => Outcome::Refused(format!("{what}: {e}")),
        Errno::NOSYS => Outcome::Unsupported(format!("{what}: {e}")),
        Errno::SRCH | Errno::BADF => Outcome::Gone,
        _ => Outcome::Failed(format!("{what}: {e}")),
    };
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => return call("pidfd_open", e),
    };
    let socket = match pidfd_getfd(&pidfd, holder.fd, PidfdGetfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => return call("pidfd_getfd", e),
    };
    let address = |a: Option<rustix::net::SocketAddrAny>| {
        a.and_then(|a| SocketAddr::try_from(a).ok())
            .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
    };
    let here = address(rustix::net::getsockname(&socket).ok());
    let there = address(rustix::net::getpeername(&socket).ok().flatten());
    if here != Some(local) || there != Some(remote) {
        return Outcome::Gone; // the fd was closed and reused since /proc was read
    }
    match sockopt::tcp_nodelay(&socket) {
        Ok(true) => Outcome::AlreadySet,
        Ok(false) => match sockopt::set_tcp_nodelay(&socket, true) {
            Ok(()) => Outcome::Set,
            Err(e) => call("setsockopt(TCP_NODELAY)", e),
        },
        Err(e) => call("getsockopt(TCP_NODELAY)", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn sets_the_option_on_our_own_socket_through_a_duplicate() {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            return; // no loopback in this sandbox
        };
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (_server, _) = listener.accept().expect("accept");
        let local = client.local_addr().expect("local");
        let me = Holder {
            pid: std::process::id() as i32,
            fd: client.as_raw_fd(),
        };
        match set_nodelay(me, local, addr) {
            // pidfd_getfd on oneself needs no special right, but a sandbox may block it.
            Outcome::Unsupported(_) | Outcome::Refused(_) => return,
            outcome => assert_eq!(outcome, Outcome::Set),
        }
        assert!(
            client.nodelay().expect("nodelay"),
            "set on the original socket"
        );
        assert_eq!(set_nodelay(me, local, addr), Outcome::AlreadySet);
        // The wrong connection is never touched.
        let elsewhere: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert_eq!(set_nodelay(me, local, elsewhere), Outcome::Gone);
    }
}
