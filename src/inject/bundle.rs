//! What the sidecar puts into the app's filesystem before the handshake: a private
//! directory (mode 0700, owned by the app's uid and gid, under the app's `/tmp`, reached
//! through `/proc/<pid>/root`) holding a copy of debugpy and the bootstrap script that
//! the interpreter runs. The script imports the app's own debugpy when it has one, and
//! only otherwise puts the copy on `sys.path`; then it calls `debugpy.listen` on the
//! upstream address.
//!
//! The directory gets a fresh name per injection and is created, never reused, so that
//! nothing another user prepared in `/tmp` is followed; it stays the sidecar's (mode
//! 0700) until everything is written, and only then is handed to the app's uid. A `/tmp`
//! that is a symbolic link is refused: under `/proc/<pid>/root` an absolute link would
//! resolve in the sidecar's filesystem. (An app that is root in its container could still
//! swap its `/tmp` between that check and the copy.) It is left in place: debugpy
//! keeps importing its modules from it while it runs.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, lchown};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::elf::in_root;

/// The directory prepared in the target.
#[derive(Debug)]
pub struct Bundle {
    /// The bootstrap script's path as the target sees it.
    pub script: String,
    /// The directory as the sidecar reaches it (under `/proc/<pid>/root`).
    pub local: PathBuf,
}

/// The owner of the target's files: its effective uid and gid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The uid.
    pub uid: u32,
    /// The gid.
    pub gid: u32,
}

/// Prepares the directory for `pid` with a copy of the `debugpy` package found in
/// `debugpy_dir`, and a script that listens on `host:port`.
pub fn prepare(
    pid: i32,
    owner: Owner,
    debugpy_dir: &Path,
    host: &str,
    port: u16,
) -> io::Result<Bundle> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // An absolute symbolic link under /proc/<pid>/root resolves in the sidecar's own
    // filesystem: a /tmp that is one is refused rather than followed. (The new directory
    // itself is never followed: creating it fails if anything exists there.)
    let tmp = in_root(pid, Path::new("/tmp"));
    if !fs::symlink_metadata(&tmp)?.is_dir() {
        return Err(io::Error::other(
            "the app's /tmp is not a directory (a symbolic link is not followed)",
        ));
    }
    let target_dir = format!("/tmp/dap-sidecar-{pid}-{nanos:08x}");
    let local = in_root(pid, Path::new(&target_dir));
    fs::DirBuilder::new().mode(0o700).create(&local)?;
    copy_tree(&debugpy_dir.join("debugpy"), &local.join("debugpy"))?;
    let script = format!("{target_dir}/attach.py");
    fs::write(local.join("attach.py"), bootstrap(&target_dir, host, port))?;
    // Handed to the app's uid last, the directory itself at the very end: a sidecar
    // with CAP_CHOWN but not CAP_DAC_OVERRIDE (Kubernetes' `drop: [ALL]` plus
    // `add: [SYS_PTRACE, CHOWN]`) could not write into it once it is the app's.
    chown_tree(&local, owner)?;
    Ok(Bundle { script, local })
}

/// Copies a directory tree (directories and regular files only).
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Gives a tree to `owner`, each directory after its contents.
fn chown_tree(dir: &Path, owner: Owner) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), owner)?;
        } else {
            lchown(entry.path(), Some(owner.uid), Some(owner.gid))?;
        }
    }
    lchown(dir, Some(owner.uid), Some(owner.gid))
}

/// The bootstrap script: the app's own debugpy if it can import one, else the copy.
pub fn bootstrap(dir: &str, host: &str, port: u16) -> String {
    // A JSON string is a valid Python string literal (same escapes).
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let (dir, host) = (quote(dir), quote(host));
    format!(
        r#"# Written by dap-sidecar (attach on demand, PEP 768): starts debugpy in this app.
def _dap_sidecar_listen():
    import sys
    try:
        import debugpy
    except ImportError:
        sys.path.append({dir})
        import debugpy
    debugpy.listen(({host}, {port}))


_dap_sidecar_listen()
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_what_it_embeds() {
        let s = bootstrap("/tmp/d\"x", "127.0.0.1", 5679);
        assert!(s.contains(r#"sys.path.append("/tmp/d\"x")"#), "{s}");
        assert!(s.contains(r#"debugpy.listen(("127.0.0.1", 5679))"#), "{s}");
    }

    #[test]
    fn a_bundle_is_a_private_copy() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("debugpy/sub")).unwrap();
        fs::write(src.path().join("debugpy/__init__.py"), "x = 1\n").unwrap();
        fs::write(src.path().join("debugpy/sub/m.py"), "y = 2\n").unwrap();
        // The test's own process stands in for the target: its /tmp, its uid.
        let pid = std::process::id() as i32;
        let meta = fs::metadata("/proc/self").unwrap();
        use std::os::unix::fs::MetadataExt;
        let owner = Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        };
        let bundle = prepare(pid, owner, src.path(), "127.0.0.1", 5679).unwrap();
        assert!(
            bundle
                .script
                .starts_with(&format!("/tmp/dap-sidecar-{pid}-"))
        );
        let mode = fs::metadata(&bundle.local).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            fs::read_to_string(bundle.local.join("debugpy/sub/m.py")).unwrap(),
            "y = 2\n"
        );
        assert!(
            fs::read_to_string(in_root(pid, Path::new(&bundle.script)))
                .unwrap()
                .contains("debugpy.listen")
        );
        fs::remove_dir_all(&bundle.local).unwrap();
    }
}
