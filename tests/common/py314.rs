//! Python 3.14 for the attach-on-demand tests: the Debian sid root that
//! `scripts/py314-root.sh` prepares (and caches), apps run in it with `chroot` and a
//! `/proc` of their own mount namespace, so the sidecar on the host reaches their files
//! through `/proc/<pid>/root` as it would a container's. Needs root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{App, Lines, SOON, repo_dir};

/// The cache directory of `scripts/py314-root.sh`.
fn cache() -> PathBuf {
    PathBuf::from(
        std::env::var("DAP_SIDECAR_PY314_CACHE")
            .unwrap_or_else(|_| "/var/cache/dap-sidecar".into()),
    )
}

/// The sid root (prepared on first use; instant afterwards).
pub fn root() -> PathBuf {
    let status = Command::new("bash")
        .arg(repo_dir().join("scripts/py314-root.sh"))
        .status()
        .expect("run py314-root.sh");
    assert!(status.success(), "scripts/py314-root.sh failed");
    cache().join("sid-minbase-python3.14-v1")
}

/// The directory holding the unpacked debugpy cp314 wheel (`debugpy/` inside).
pub fn debugpy_site() -> PathBuf {
    cache().join("debugpy-1.8.22-cp314/site")
}

/// The directory holding the downloaded debugpy cp314 wheel file.
pub fn debugpy_wheels() -> PathBuf {
    cache().join("debugpy-1.8.22-cp314/wheel")
}

/// The python3.14 executable of the root, as the host sees it.
pub fn python_binary() -> PathBuf {
    root().join("usr/bin/python3.14")
}

/// An app in the sid root: the fixture app copied to `/srv/<name>/` inside it (the
/// container side) and to a checkout on the host (the IDE side); removed on drop.
pub struct RootApp {
    /// The app (its process, output, the checkout as `local_root`).
    pub app: App,
    /// The app's directory inside the root, as the app sees it (`/srv/<name>`).
    pub inside: String,
    /// The same directory on the host.
    host_dir: PathBuf,
    /// The root.
    root: PathBuf,
}

impl RootApp {
    /// Copies the fixture app into the root without starting it.
    pub fn prepare() -> RootApp {
        let root = root();
        let app = App::prepare();
        let name = app
            .dir
            .path()
            .file_name()
            .expect("tempdir name")
            .to_string_lossy()
            .into_owned();
        let inside = format!("/srv/{name}");
        let host_dir = root.join(inside.trim_start_matches('/'));
        fs::create_dir_all(&host_dir).expect("mkdir in root");
        for file in ["main.py", "spawn.py", "grow.py"] {
            fs::copy(app.remote_root.join(file), host_dir.join(file)).expect("copy into root");
        }
        RootApp {
            app,
            inside,
            host_dir,
            root,
        }
    }

    /// Writes another script into the app's directory (inside the root).
    pub fn write(&self, name: &str, source: &str) {
        fs::write(self.host_dir.join(name), source).expect("write script");
    }

    /// Starts `python3.14 -u <script>` (plain: no debugpy anywhere) in the root with `env`
    /// set, and waits for `ready` on its output.
    pub fn launch(
        &mut self,
        script: &str,
        env: &[(&str, &str)],
        python_args: &[&str],
        ready: &str,
    ) {
        self.launch_with("python3.14", script, env, python_args, ready);
    }

    /// Like [`RootApp::launch`] with another interpreter program of the root
    /// (`/usr/local/bin/python3.14-shared`: the interpreter in libpython3.14.so).
    pub fn launch_with(
        &mut self,
        python: &str,
        script: &str,
        env: &[(&str, &str)],
        python_args: &[&str],
        ready: &str,
    ) {
        let mut cmd = Command::new("unshare");
        // A mount namespace of its own for /proc; `unshare` without --fork execs, so
        // the child's pid is the app's.
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                r#"root=$1; shift; mount -t proc proc "$root/proc" && exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root "$@""#,
            )
            .arg("sh")
            .arg(&self.root);
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(["/bin/sh", "-c", r#"cd "$0" && exec "$@""#])
            .arg(&self.inside)
            .arg(python)
            .args(python_args)
            .arg("-u")
            .arg(format!("{}/{script}", self.inside));
        self.app.launch_command(cmd);
        assert!(
            self.app.stdout.wait(ready, SOON).is_some(),
            "app did not start:\n{}",
            self.app.stdout.all()
        );
    }

    /// The app's output so far.
    pub fn output(&self) -> &Lines {
        &self.app.stdout
    }

    /// The app's main file in the IDE's checkout.
    pub fn local_main(&self) -> String {
        self.app.local_main()
    }

    /// The app's pid.
    pub fn pid(&self) -> u32 {
        self.app.pid()
    }

    /// The root (on the host).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for RootApp {
    fn drop(&mut self) {
        self.app.kill();
        let _ = fs::remove_dir_all(&self.host_dir);
    }
}
