//! Finding the `PyRuntime` section of the target's interpreter: the mappings in
//! `/proc/<pid>/maps` whose file name contains `python` (the executable, or
//! `libpython3.x.so` when Python is linked dynamically), each file opened where the
//! sidecar can reach it (see [`open_mapped`]), and its ELF section headers searched for
//! `.PyRuntime`. The section's address in the
//! target is the mapping's start plus the section's address minus the file's load
//! base (its first `PT_LOAD` segment, aligned down), as CPython's own client computes it.
//!
//! Without the section, the file name still tells an older Python (`python3.11`,
//! `libpython3.12.so.1.0`) so that the refusal can name the version.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment};
use procfs::process::{MMapPath, Process};

use super::errors::InjectError;

/// The `PyRuntime` section of a running interpreter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// Its address in the target.
    pub address: u64,
    /// Its size in bytes (`sizeof(_PyRuntimeState)`).
    pub size: u64,
    /// The file it is in, as `/proc/<pid>/maps` names it.
    pub file: PathBuf,
    /// The Python version in the file's name (`3.11` of `libpython3.11.so.1.0`), if any.
    pub name_version: Option<String>,
}

/// What the target's mappings say about its interpreter.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The section.
    Runtime(Runtime),
    /// A Python without the section; the version from the file name if it has one.
    NoSection(Option<String>),
    /// Nothing named like Python is mapped.
    NotPython,
}

/// Looks for the section in the interpreter files mapped by `pid`.
pub fn find_runtime(pid: i32) -> Result<Found, InjectError> {
    let io = |what: &str, e: std::io::Error| InjectError::io(pid, what, e);
    let maps = Process::new(pid)
        .and_then(|p| p.maps())
        .map_err(|e| io("reading its memory maps", proc_error(e)))?;
    let mut python_version = None;
    let mut seen_python = false;
    for map in maps {
        let MMapPath::Path(path) = &map.pathname else {
            continue;
        };
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // The first mapping of a file starts at its offset 0: the load base.
        if !may_be_interpreter(name) || map.offset != 0 {
            continue;
        }
        seen_python = true;
        let name_version = version_in_name(name);
        python_version = python_version.or_else(|| name_version.clone());
        let data = open_mapped(pid, path, map.inode, map.address)
            .map_err(|e| io(&format!("reading {}", path.display()), e))?;
        if let Some((address, size)) = section_in(&data, map.address.0) {
            return Ok(Found::Runtime(Runtime {
                address,
                size,
                file: path.clone(),
                name_version,
            }));
        }
    }
    Ok(if seen_python {
        Found::NoSection(python_version)
    } else {
        Found::NotPython
    })
}

/// The contents of a file the target mapped at `range`, with inode `inode`, named `path`
/// in its maps. The name is relative to the root of whoever reads the maps, so the file
/// is looked for, in order, under `/proc/<pid>/root` (the app in another container),
/// at the path itself (the same filesystem, or a chroot seen from outside it), and as
/// `/proc/<pid>/map_files/<range>` (which takes `CAP_SYS_ADMIN`). A candidate with the
/// mapped inode wins; otherwise the first that can be read (overlayfs may show another
/// inode than the maps). A file deleted since it was mapped (`... (deleted)`, an
/// interpreter upgraded under a running app) is only read through `map_files`.
pub fn open_mapped(
    pid: i32,
    path: &Path,
    inode: u64,
    range: (u64, u64),
) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let mapped = PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", range.0, range.1));
    let deleted = path.to_string_lossy().ends_with(" (deleted)");
    let candidates = if deleted {
        vec![mapped]
    } else {
        vec![in_root(pid, path), path.to_path_buf(), mapped]
    };
    let mut first: Option<std::io::Result<PathBuf>> = None;
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.ino() == inode => return std::fs::read(&candidate),
            Ok(_) => {
                if !matches!(first, Some(Ok(_))) {
                    first = Some(Ok(candidate));
                }
            }
            Err(e) => {
                if first.is_none() {
                    first = Some(Err(e));
                }
            }
        }
    }
    match first {
        Some(Ok(path)) => std::fs::read(path),
        Some(Err(e)) => Err(e),
        None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    }
}

/// Whether a mapped file's name may be the interpreter: `python3.14`, `libpython3.14.so.1.0`,
/// but not an extension module (`_ssl.cpython-314-x86_64-linux-gnu.so`).
pub fn may_be_interpreter(name: &str) -> bool {
    name.contains("python") && !name.contains(".cpython-")
}

/// A path of the target's filesystem as the sidecar reaches it.
pub fn in_root(pid: i32, path: &Path) -> PathBuf {
    let relative = path.strip_prefix("/").unwrap_or(path);
    Path::new(&format!("/proc/{pid}/root")).join(relative)
}

/// The `.PyRuntime` section's (address, size) in a process that mapped the ELF file
/// `data` at `start`; `None` if the file has no such section or is not ELF.
pub fn section_in(data: &[u8], start: u64) -> Option<(u64, u64)> {
    let file = object::File::parse(data).ok()?;
    let section = file.section_by_name(".PyRuntime")?;
    let first = file.segments().next()?;
    let align = first.align().max(1);
    let base = first.address() - first.address() % align;
    let address = start.checked_add(section.address())?.checked_sub(base)?;
    Some((address, section.size()))
}

/// The `.PyRuntime` section's contents in an ELF file (for the tests and tools that
/// look at an interpreter without running it).
pub fn section_data(data: &[u8]) -> Option<(Vec<u8>, u64)> {
    let file = object::File::parse(data).ok()?;
    let section = file.section_by_name(".PyRuntime")?;
    Some((section.data().ok()?.to_vec(), section.size()))
}

/// `3.11` from `python3.11`, `libpython3.12.so.1.0` or `python3.14d`.
pub fn version_in_name(name: &str) -> Option<String> {
    let rest = &name[name.find("python")? + "python".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let version = rest[..end].trim_end_matches('.');
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) if !major.is_empty() && !minor.is_empty() => {
            Some(format!("{major}.{minor}"))
        }
        _ => None,
    }
}

fn proc_error(e: procfs::ProcError) -> std::io::Error {
    match e {
        procfs::ProcError::PermissionDenied(_) => {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string())
        }
        procfs::ProcError::NotFound(_) => {
            std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
        }
        procfs::ProcError::Io(io, _) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_file_names() {
        assert_eq!(version_in_name("python3.11").as_deref(), Some("3.11"));
        assert_eq!(
            version_in_name("libpython3.12.so.1.0").as_deref(),
            Some("3.12")
        );
        assert_eq!(version_in_name("python3.14d").as_deref(), Some("3.14"));
        assert_eq!(version_in_name("python3").as_deref(), None);
        assert_eq!(version_in_name("python").as_deref(), None);
    }

    #[test]
    fn interpreters_but_not_extension_modules() {
        assert!(may_be_interpreter("python3.14"));
        assert!(may_be_interpreter("libpython3.14.so.1.0"));
        assert!(!may_be_interpreter("_ssl.cpython-314-x86_64-linux-gnu.so"));
        assert!(!may_be_interpreter("libc.so.6"));
    }

    #[test]
    fn paths_go_through_the_targets_root() {
        assert_eq!(
            in_root(42, Path::new("/usr/bin/python3.14")),
            PathBuf::from("/proc/42/root/usr/bin/python3.14")
        );
    }

    #[test]
    fn a_file_without_the_section_has_none() {
        let own = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(section_in(&own, 0x1000), None);
        assert_eq!(section_in(b"not elf", 0), None);
    }
}
