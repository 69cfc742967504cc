//! Which process to inject into: `target.pid` when set; else the processes whose command
//! line contains `target.match`, or (without it) whose program is named `python...`;
//! of several, the one whose parent is not among them (the app rather than its worker
//! children), the lowest pid breaking ties. The sidecar itself is never a candidate.

use procfs::process::Process;

use crate::config::{TargetConfig, TargetPid};

use super::bundle::Owner;

/// A process chosen for injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its pid.
    pub pid: i32,
    /// Its start time (clock ticks after boot): with the pid, it names the process
    /// even after the pid is reused.
    pub start: u64,
    /// Its effective uid and gid.
    pub owner: Owner,
}

/// Finds the target, or `None`.
pub fn find(config: &TargetConfig) -> Option<Target> {
    let me = std::process::id() as i32;
    if let TargetPid::Pid(pid) = config.pid {
        return describe(&Process::new(i32::try_from(pid).ok()?).ok()?);
    }
    let mut candidates = Vec::new();
    for process in procfs::process::all_processes().ok()?.flatten() {
        if process.pid == me {
            continue;
        }
        let Ok(argv) = process.cmdline() else {
            continue;
        };
        let matches = match &config.r#match {
            Some(needle) => argv.join(" ").contains(needle.as_str()),
            None => argv.first().is_some_and(|program| is_python(program)),
        };
        if matches && let Ok(stat) = process.stat() {
            candidates.push((process, stat.ppid));
        }
    }
    let pids: Vec<i32> = candidates.iter().map(|(p, _)| p.pid).collect();
    candidates
        .iter()
        .filter(|(_, ppid)| !pids.contains(ppid))
        .min_by_key(|(p, _)| p.pid)
        .and_then(|(p, _)| describe(p))
}

/// Whether a program name is a Python interpreter (`python`, `python3.14`, a path).
pub fn is_python(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    name.starts_with("python")
        && name["python".len()..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
}

fn describe(process: &Process) -> Option<Target> {
    let stat = process.stat().ok()?;
    let status = process.status().ok()?;
    Some(Target {
        pid: process.pid,
        start: stat.starttime,
        owner: Owner {
            uid: status.euid,
            gid: status.egid,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_programs() {
        assert!(is_python("python3.14"));
        assert!(is_python("/usr/local/bin/python"));
        assert!(is_python("python3"));
        assert!(!is_python("python3-config"));
        assert!(!is_python("/usr/bin/node"));
        assert!(!is_python("mypython"));
    }
}
