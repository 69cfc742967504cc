//! Shared harness for the integration tests.
//!
//! - For the real-parts tests: a venv with real debugpy, the fixture app under debugpy,
//!   the sidecar binary, a synchronous DAP client ([`dap`]), network namespaces. Every
//!   process is killed on drop.
//! - For the fast in-process tests: the sidecar in the test's runtime
//!   ([`in_process`]), a fake debugpy ([`fake_upstream`], also the soak's upstream), an
//!   async DAP client and HTTP GET ([`async_dap`]). No Python, no root, loopback only.
//!
//! Waiting is always for an event (a log line, an app output line, a DAP message, a
//! closed socket) with a deadline, never a fixed sleep.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod async_dap;
pub mod compose;
pub mod dap;
pub mod fake_upstream;
pub mod in_process;
pub mod py314;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Default deadline for things that should happen promptly.
pub const SOON: Duration = Duration::from_secs(30);

/// A token long enough for the sidecar's check.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The sidecar binary under test.
pub fn sidecar_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dap-sidecar")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The python of a venv with the pinned debugpy from PyPI, created once per target dir.
/// `DAP_SIDECAR_TEST_PYTHON` overrides it.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DAP_SIDECAR_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    venv("debugpy-venv", "tests/requirements.txt").join("bin/python")
}

/// A venv under the target dir with `requirements` (a file in the repo) installed from
/// PyPI; re-created when the requirements change. Returns the venv's directory.
pub fn venv(name: &str, requirements: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join(name);
    let requirements = repo().join(requirements);
    let wanted = fs::read_to_string(&requirements).expect("requirements file");
    let marker = venv.join(".installed");
    // Several test processes may get here at once: one creates the venv, the others wait.
    let lock = File::create(base.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock venv");
    if fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        let _ = fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements));
        fs::write(&marker, &wanted).expect("marker");
    }
    venv
}

/// The repository root.
pub fn repo_dir() -> &'static Path {
    repo()
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

/// A free loopback port (bound and released; the tests that use it start the server
/// right away, and the sidecar retries its upstream anyway).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Lines of a child's output, collected by a thread, that tests can wait on.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Lines {
    /// Collects the lines of `reader` (echoed with `echo` as prefix if DAP_SIDECAR_TEST_ECHO is set).
    pub fn collect(&self, reader: impl Read + Send + 'static, echo: &'static str) {
        let lines = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("DAP_SIDECAR_TEST_ECHO").is_some() {
                    eprintln!("[{echo}] {line}");
                }
                let (list, cv) = &*lines.inner;
                list.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
    }

    /// Waits until some line (from `from` on) satisfies `pred`; returns it.
    pub fn wait_from(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (list, cv) = &*self.inner;
        let mut guard = list.lock().unwrap();
        loop {
            if let Some(line) = guard.iter().skip(from).find(|l| pred(l)) {
                return Some(line.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Waits until at least `n` lines contain `needle`.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (list, cv) = &*self.inner;
        let mut guard = list.lock().unwrap();
        loop {
            if guard.iter().filter(|l| l.contains(needle)).count() >= n {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Waits for a line containing `needle`.
    pub fn wait(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_from(0, timeout, |l| l.contains(needle))
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.inner.0.lock().unwrap().len()
    }

    /// Everything so far.
    pub fn all(&self) -> String {
        self.inner.0.lock().unwrap().join("\n")
    }
}

/// The fixture app running under real debugpy, in a directory laid out like a container
/// (`<tmp>/usr/src/app/main.py`) next to a separate "IDE checkout" (`<tmp>/checkout`).
pub struct App {
    /// Temp directory holding both trees and debugpy's logs.
    pub dir: tempfile::TempDir,
    /// Where the app really is: the container-side root.
    pub remote_root: PathBuf,
    /// The IDE's copy of the code: the local root.
    pub local_root: PathBuf,
    /// debugpy's client port.
    pub port: u16,
    /// The app's stdout.
    pub stdout: Lines,
    child: Child,
}

/// The line of `main.py` with the `# BREAK` marker.
pub fn break_line() -> i64 {
    let src = include_str!("../fixtures/app/main.py");
    src.lines()
        .position(|l| l.contains("# BREAK"))
        .expect("marker") as i64
        + 1
}

impl App {
    /// Lays out the trees without starting anything.
    pub fn prepare() -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let remote_root = dir.path().join("usr/src/app");
        let local_root = dir.path().join("checkout");
        for root in [&remote_root, &local_root] {
            fs::create_dir_all(root).expect("mkdir");
            for file in ["main.py", "spawn.py", "grow.py", "memory_app.py"] {
                fs::copy(
                    repo().join("tests/fixtures/app").join(file),
                    root.join(file),
                )
                .expect("copy");
            }
        }
        // A placeholder child so the struct is complete; replaced by `launch`.
        let child = Command::new("true").spawn().expect("spawn true");
        App {
            dir,
            remote_root,
            local_root,
            port: free_port(),
            stdout: Lines::default(),
            child,
        }
    }

    /// Starts the app under debugpy listening on `self.port`.
    pub fn launch(&mut self) {
        self.launch_in(None);
    }

    /// Starts the app under debugpy, inside network namespace `netns` if given.
    pub fn launch_in(&mut self, netns: Option<&str>) {
        self.launch_script(netns, "main.py", "app started");
    }

    /// Starts `script` from the remote root under debugpy and waits for `ready` on stdout.
    pub fn launch_script(&mut self, netns: Option<&str>, script: &str, ready: &str) {
        self.launch_full(netns, "127.0.0.1", script, &[], ready);
    }

    /// Starts `script` with `args` under debugpy listening on `listen_host:self.port`,
    /// and waits for `ready` on stdout.
    pub fn launch_full(
        &mut self,
        netns: Option<&str>,
        listen_host: &str,
        script: &str,
        args: &[&str],
        ready: &str,
    ) {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(python());
                c
            }
            None => Command::new(python()),
        };
        cmd.args(["-Xfrozen_modules=off", "-m", "debugpy", "--log-to"])
            .arg(self.dir.path().join("debugpy-logs"))
            .arg("--listen")
            .arg(format!("{listen_host}:{}", self.port))
            .arg(self.remote_root.join(script))
            .args(args);
        let from = self.stdout.len(); // after a restart, only the new run's lines count
        self.launch_command(cmd);
        assert!(
            self.stdout
                .wait_from(from, SOON, |l| l.contains(ready))
                .is_some(),
            "app did not start:\n{}",
            self.stdout.all()
        );
    }

    /// Runs `cmd` as the app (e.g. through `dap-sidecar launch`), collecting its output,
    /// without waiting for anything.
    pub fn launch_command(&mut self, mut cmd: Command) {
        let _ = self.child.wait();
        let mut child = cmd
            // The test switches share the sidecar's prefix: `dap-sidecar launch` would
            // take them for configuration keys.
            .env_remove("DAP_SIDECAR_TEST_ECHO")
            .env_remove("DAP_SIDECAR_TEST_PYTHON")
            .current_dir(&self.remote_root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start app command");
        self.stdout
            .collect(child.stdout.take().expect("stdout"), "app");
        self.stdout
            .collect(child.stderr.take().expect("stderr"), "app-err");
        self.child = child;
    }

    /// Prepares and launches.
    pub fn start() -> App {
        let mut app = App::prepare();
        app.launch();
        app
    }

    /// Kills the app (and with it debugpy's adapter, which exits when its server goes).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The app's pid (the process debugpy's CLI runs the script in).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The local path of the app's main file.
    pub fn local_main(&self) -> String {
        self.local_root.join("main.py").display().to_string()
    }

    /// Waits for a `tick N` line with N > `n`, proving the app runs; returns N.
    pub fn wait_tick_above(&self, n: i64, timeout: Duration) -> Option<i64> {
        let tick = |l: &str| {
            l.strip_prefix("tick ")
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        self.stdout
            .wait_from(0, timeout, |l| tick(l).is_some_and(|v| v > n))
            .and_then(|l| tick(&l))
    }

    /// debugpy's adapter log (all files concatenated).
    pub fn adapter_log(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = fs::read_dir(self.dir.path().join("debugpy-logs")) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with("debugpy.adapter")
                {
                    out.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// How many IDE connections debugpy's adapter has accepted.
    pub fn client_connections(&self) -> usize {
        self.adapter_log()
            .matches("Accepted incoming Client connection")
            .count()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sidecar binary running with a YAML config.
pub struct Sidecar {
    /// The DAP address it bound (loopback form).
    pub addr: SocketAddr,
    /// The HTTP address it bound (loopback form).
    pub http: SocketAddr,
    /// Its log (JSON lines on stderr).
    pub log: Lines,
    child: Child,
    _config: tempfile::NamedTempFile,
}

impl Sidecar {
    /// Starts the sidecar with `yaml` (port 0 unless the YAML sets one) and waits until
    /// it has bound its DAP port.
    pub fn start(yaml: &str) -> Sidecar {
        Self::start_with(yaml, |c| c)
    }

    /// Like [`Sidecar::start`], with a hook to wrap the command (e.g. in a namespace).
    pub fn start_with(yaml: &str, wrap: impl FnOnce(Command) -> Command) -> Sidecar {
        let mut config = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("config");
        let host = if yaml.starts_with("host:") {
            ""
        } else {
            "host: 127.0.0.1\n"
        };
        // A YAML with its own `http:` section sets the HTTP port itself.
        let http = if yaml.starts_with("http:") || yaml.contains("\nhttp:") {
            ""
        } else {
            "http:\n  port: 0\n"
        };
        let yaml = format!("port: 0\n{host}{http}{yaml}");
        config.write_all(yaml.as_bytes()).expect("write config");
        let mut cmd = Command::new(sidecar_bin());
        cmd.arg("--config")
            .arg(config.path())
            .args(["--log-format", "json"])
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The test switches share the sidecar's prefix; the sidecar must not see them.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DAP_SIDECAR_TEST_") {
                cmd.env_remove(name);
            }
        }
        let mut child = wrap(cmd).spawn().expect("start sidecar");
        let log = Lines::default();
        log.collect(child.stderr.take().expect("stderr"), "sidecar");
        let bound = log
            .wait("DAP listener bound", SOON)
            .unwrap_or_else(|| panic!("sidecar did not start:\n{}", log.all()));
        let addr = logged_addr(&bound);
        let http = log
            .wait("HTTP listener bound", SOON)
            .map(|line| logged_addr(&line))
            .unwrap_or_else(|| panic!("no HTTP listener:\n{}", log.all()));
        Sidecar {
            addr,
            http,
            log,
            child,
            _config: config,
        }
    }

    /// The sidecar's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        use wait_timeout::ChildExt;
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        self.child.wait_timeout(timeout).ok().flatten()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr` field of a JSON log line, with an unspecified IP replaced by loopback.
fn logged_addr(line: &str) -> SocketAddr {
    let line: serde_json::Value = serde_json::from_str(line).expect("json log line");
    let mut addr: SocketAddr = line["addr"]
        .as_str()
        .expect("addr")
        .parse()
        .expect("socket addr");
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    addr
}

/// A plain HTTP/1.0 GET; returns the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect HTTP");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read HTTP");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `VmRSS` of a process in bytes, read directly from `/proc`.
pub fn vm_rss(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS:")
}

/// `VmHWM` (the peak RSS) of a process in bytes, read directly from `/proc`.
pub fn vm_hwm(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmHWM:")
}

/// The open file descriptors of a process that stay open: the fewest seen over five
/// looks 10 ms apart. The sidecar opens `/proc` files for a moment every second, which a
/// single look may catch; a leaked descriptor is in every look.
pub fn open_fds(pid: u32) -> usize {
    let look = || {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    (0..5)
        .map(|i| {
            if i > 0 {
                thread::sleep(Duration::from_millis(10)); // spreading the looks, not waiting for an event
            }
            look()
        })
        .min()
        .unwrap_or(0)
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"));
    kib * 1024
}

/// The config lines mapping `app`'s checkout to its "container" root.
pub fn mapping_yaml(local_root: &str, remote_root: &Path) -> String {
    format!(
        "path_mappings:\n  - local_root: '{}'\n    remote_root: '{}'\n",
        local_root,
        remote_root.display()
    )
}

/// Config lines pointing the sidecar at `app`'s debugpy.
pub fn upstream_yaml(port: u16) -> String {
    format!("upstream: 127.0.0.1:{port}\nupstream_timeout: 20s\n")
}

/// A network namespace with a veth link to the test's namespace: a second "host" whose
/// address is not loopback, for testing what remote clients see. Removed on drop.
pub struct NetNs {
    /// The namespace's name (for `ip netns exec`).
    pub name: String,
    /// The address of the test's side of the link (what the namespace sees us as).
    pub outside: std::net::Ipv4Addr,
    /// The address inside the namespace.
    pub inside: std::net::Ipv4Addr,
    host_if: String,
}

impl NetNs {
    /// Creates the namespace; needs root (CI and the dev machines run as root).
    pub fn create(tag: u8) -> NetNs {
        let id = std::process::id() % 10_000;
        let name = format!("dapsc-{id}-{tag}");
        let host_if = format!("vh{id}x{tag}");
        let ns_if = format!("vn{id}x{tag}");
        let net = 100 + (id % 100) as u8;
        let outside = std::net::Ipv4Addr::new(10, 213, net, tag * 4 + 1);
        let inside = std::net::Ipv4Addr::new(10, 213, net, tag * 4 + 2);
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        // Leftovers of a killed earlier run with the same pid would make `add` fail.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        };
        quiet(&["netns", "del", &name]);
        quiet(&["link", "del", &host_if]);
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{outside}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{inside}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        NetNs {
            name,
            outside,
            inside,
            host_if,
        }
    }

    /// Wraps a command so it runs inside the namespace.
    pub fn wrap(&self, cmd: Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.name])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        wrapped.stdout(Stdio::null()).stderr(Stdio::piped());
        wrapped
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
