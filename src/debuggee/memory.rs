//! Memory of a process, read the cheap way: `VmRSS`, `VmHWM` and `VmSwap` from
//! `/proc/<pid>/status`. PSS comes from `smaps_rollup`, which makes the kernel walk every
//! mapping of the target under its mm lock; it is read only when configured, and
//! callers rate-limit it. Also the growth-rate fit. All reads are blocking.

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

/// Least-squares slope of `(seconds, bytes)` points, in bytes per second. `None` with
/// fewer than two distinct times.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, y) in points {
        cov += (t - mean_t) * (y - mean_y);
        var += (t - mean_t) * (t - mean_t);
    }
    (var > f64::EPSILON).then(|| cov / var)
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

    #[test]
    fn slope_is_a_least_squares_fit() {
        assert_eq!(slope(&[]), None);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 9.0)]), None);
        let line: Vec<(f64, f64)> = (0..10)
            .map(|t| (t as f64, 100.0 + 3.0 * t as f64))
            .collect();
        assert!((slope(&line).unwrap() - 3.0).abs() < 1e-9);
        // Noise around a line: the fit stays close, unlike first-minus-last.
        let noisy = [
            (0.0, 0.0),
            (1.0, 14.0),
            (2.0, 16.0),
            (3.0, 34.0),
            (4.0, 36.0),
            (5.0, 50.0),
        ];
        let s = slope(&noisy).unwrap();
        assert!((s - 10.0).abs() < 1.0, "{s}");
    }
}
