//! The memory of the app's cgroup (its container, on Docker and Kubernetes): the figure
//! the kernel's OOM killer and memory limits act on, which RSS is not (it leaves out the
//! page cache, and counts shared pages in every process).
//!
//! The app's cgroup comes from `/proc/<pid>/cgroup`. Its files are looked for in two
//! places, first that works:
//!
//! 1. the sidecar's own cgroup mounts (`/proc/self/mountinfo`): a plain host, or a
//!    container started with the host's cgroup namespace;
//! 2. the app's mounts, through its root (`/proc/<pid>/root` and `/proc/<pid>/mountinfo`):
//!    a container sees its own cgroup at `/sys/fs/cgroup`, and a sidecar in the same PID
//!    namespace that may read the app's `/proc` entries (the same access that finds
//!    debugpy's sockets) reads it there.
//!
//! cgroup v2 (`memory.current`, `memory.stat` `anon`/`file`, `memory.max`) and v1
//! (`memory.usage_in_bytes`, `memory.stat` `total_rss`/`total_cache`,
//! `memory.limit_in_bytes`). An app in the root cgroup has no cgroup figure (the root's
//! would be the whole machine's). All reads are blocking.

use std::fs;
use std::path::{Path, PathBuf};

use procfs::process::{MountInfo, Process};
use serde::Serialize;

/// A v1 limit at or above this means "no limit" (the kernel shows a page-rounded
/// `i64::MAX`).
const NO_LIMIT_V1: u64 = 1 << 60;

/// One reading of the app's cgroup memory, in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CgroupMemory {
    /// The directory read.
    pub dir: PathBuf,
    /// cgroup version (1 or 2).
    pub version: u8,
    /// `memory.current` (v1: `memory.usage_in_bytes`).
    pub current: u64,
    /// Anonymous memory (`anon`; v1: `total_rss`).
    pub anon: Option<u64>,
    /// Page cache (`file`; v1: `total_cache`).
    pub file: Option<u64>,
    /// The limit (`memory.max`; v1: `memory.limit_in_bytes`), when there is one.
    pub max: Option<u64>,
}

/// Reads the cgroup memory of `pid`; `None` when its cgroup files are not visible.
pub fn read(pid: i32) -> Option<CgroupMemory> {
    let process = Process::new(pid).ok()?;
    let groups = process.cgroups().ok()?.0;
    let mine = Process::myself().and_then(|p| p.mountinfo()).ok();
    let theirs = process.mountinfo().ok();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let places = [
        (mine.map(|m| m.0), PathBuf::from("/")),
        (theirs.map(|m| m.0), root),
    ];
    for (mounts, prefix) in places {
        let Some(mounts) = mounts else { continue };
        for version in [2, 1] {
            let found = groups.iter().find(|g| match version {
                2 => g.hierarchy == 0,
                _ => g.controllers.iter().any(|c| c == "memory"),
            });
            let Some(group) = found else { continue };
            if version == 1 && group.pathname == "/" {
                continue;
            }
            let Some(dir) = locate(&mounts, version, &group.pathname, &prefix) else {
                continue;
            };
            if let Some(memory) = read_dir(&dir, version) {
                return Some(memory);
            }
        }
    }
    None
}

/// The directory of cgroup `pathname` under the mount of the hierarchy of `version`
/// whose root contains it, below `prefix`.
fn locate(mounts: &[MountInfo], version: u8, pathname: &str, prefix: &Path) -> Option<PathBuf> {
    mounts
        .iter()
        .filter(|m| match version {
            2 => m.fs_type == "cgroup2",
            _ => m.fs_type == "cgroup" && m.super_options.contains_key("memory"),
        })
        .find_map(|m| {
            let rest = Path::new(pathname).strip_prefix(&m.root).ok()?;
            let mount_point = m.mount_point.strip_prefix("/").unwrap_or(&m.mount_point);
            let mut dir = prefix.join(mount_point);
            if !rest.as_os_str().is_empty() {
                dir.push(rest);
            }
            Some(dir)
        })
}

/// Reads the memory files of a cgroup directory.
pub fn read_dir(dir: &Path, version: u8) -> Option<CgroupMemory> {
    let number = |name: &str| -> Option<u64> {
        fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
    };
    let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let field = |name: &str| {
        stat.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    };
    let (current, anon, file, max) = if version == 2 {
        (
            number("memory.current")?,
            field("anon"),
            field("file"),
            number("memory.max"), // "max" does not parse: no limit
        )
    } else {
        (
            number("memory.usage_in_bytes")?,
            field("total_rss").or_else(|| field("rss")),
            field("total_cache").or_else(|| field("cache")),
            number("memory.limit_in_bytes").filter(|&l| l < NO_LIMIT_V1),
        )
    };
    Some(CgroupMemory {
        dir: dir.to_owned(),
        version,
        current,
        anon,
        file,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v2_and_v1_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
        write("memory.current", "209715200\n");
        write(
            "memory.stat",
            "anon 150000000\nfile 50000000\nkernel 1000\n",
        );
        write("memory.max", "max\n");
        let v2 = read_dir(dir.path(), 2).expect("v2");
        assert_eq!(
            (v2.current, v2.anon, v2.file, v2.max),
            (209715200, Some(150000000), Some(50000000), None)
        );
        write("memory.max", "536870912\n");
        assert_eq!(read_dir(dir.path(), 2).unwrap().max, Some(536870912));

        write("memory.usage_in_bytes", "1000\n");
        write(
            "memory.stat",
            "cache 10\nrss 20\ntotal_cache 30\ntotal_rss 40\n",
        );
        write("memory.limit_in_bytes", "9223372036854771712\n");
        let v1 = read_dir(dir.path(), 1).expect("v1");
        assert_eq!(
            (v1.current, v1.anon, v1.file, v1.max),
            (1000, Some(40), Some(30), None)
        );
        assert_eq!(read_dir(&dir.path().join("missing"), 2), None);
    }

    #[test]
    fn locates_a_cgroup_under_its_mount() {
        let line = |root: &str, point: &str, fs: &str, sopts: &str| {
            MountInfo::from_line(&format!(
                "30 20 0:26 {root} {point} rw,nosuid - {fs} cgroup {sopts}"
            ))
            .expect("mountinfo line")
        };
        let mounts = [
            line("/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
            line("/", "/sys/fs/cgroup/unified", "cgroup2", "rw"),
            line("/../ctr", "/sys/fs/cgroup", "cgroup2", "rw"),
        ];
        let host = Path::new("/");
        assert_eq!(
            locate(&mounts, 1, "/kubepods/pod1/ctr", host),
            Some(PathBuf::from("/sys/fs/cgroup/memory/kubepods/pod1/ctr"))
        );
        assert_eq!(
            locate(&mounts, 2, "/system.slice/app.service", host),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/app.service"
            ))
        );
        // A container's own view, read through its root.
        let root = Path::new("/proc/42/root");
        assert_eq!(
            locate(&mounts[2..], 2, "/../ctr", root),
            Some(PathBuf::from("/proc/42/root/sys/fs/cgroup"))
        );
        // Outside every mount's root: not visible.
        assert_eq!(locate(&mounts[2..], 2, "/../other", root), None);
    }

    #[test]
    fn our_own_cgroup_is_read_where_visible() {
        // Whatever this machine has: the answer must be consistent with the files.
        if let Some(m) = read(std::process::id() as i32) {
            assert!(m.current > 0 && m.dir.exists(), "{m:?}");
        }
    }
}
