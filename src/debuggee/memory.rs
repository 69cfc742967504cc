//! Memory of a process, read the cheap way: `VmRSS`, `VmHWM` and `VmSwap` from
//! `/proc/<pid>/status`. PSS comes from `smaps_rollup`, which makes the kernel walk every
//! mapping of the target under its mm lock; it is read only when configured, and
//! callers rate-limit it. All reads are blocking.

use procfs::process::Process;

/// One reading of a process's memory, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// Resident set size (`VmRSS`).
    pub rss: u64,
    /// Peak resident set size (`VmHWM`).
    pub hwm: u64,
    /// Swapped out (`VmSwap`).
    pub swap: u64,
    /// Proportional set size, when read.
    pub pss: Option<u64>,
}

/// Reads `/proc/<pid>/status` (and `smaps_rollup` if `with_pss`); `None` if the process
/// is gone or unreadable.
pub fn read(pid: i32, with_pss: bool) -> Option<Memory> {
    let process = Process::new(pid).ok()?;
    let status = process.status().ok()?;
    let kib = |v: Option<u64>| v.unwrap_or(0).saturating_mul(1024);
    let pss = if with_pss {
        process.smaps_rollup().ok().and_then(|r| {
            r.memory_map_rollup
                .iter()
                .find_map(|m| m.extension.map.get("Pss").copied())
        })
    } else {
        None
    };
    Some(Memory {
        rss: kib(status.vmrss),
        hwm: kib(status.vmhwm),
        swap: kib(status.vmswap),
        pss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_memory() {
        let me = read(std::process::id() as i32, true).expect("own status");
        assert!(me.rss > 0 && me.hwm >= me.rss);
        assert!(me.pss.is_some_and(|p| p > 0));
    }
}
