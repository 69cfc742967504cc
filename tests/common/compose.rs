//! The harness of the container tests (`tests/containers.rs`,
//! `tests/containers_ondemand.rs`): the offline inputs of the images (local base images,
//! vendored crates, debugpy's wheel downloaded on the host), a compose project that is
//! taken down on drop, and polling what containers publish.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Lines, free_port, http_get, repo_dir};

/// Cargo flags for building from `vendor/` inside an image without network.
const CARGO_FLAGS: &str = "--offline --config source.crates-io.replace-with='vendored' --config source.vendored.directory='vendor'";

/// Runs `cmd`, which must succeed; returns its stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The images' offline inputs: the local base images (`tests/containers/base-images.sh`,
/// no registry is reachable here), vendored crates, and debugpy's wheel for the demo
/// app's Python in `demo/wheels` (Docker's legacy builder builds every stage before the
/// target, the demo app's included).
pub fn offline_inputs() {
    let repo = repo_dir();
    sh(Command::new("bash").arg(repo.join("tests/containers/base-images.sh")));
    sh(Command::new("cargo")
        .args(["vendor", "--locked", "-q", "vendor"])
        .current_dir(repo)
        .stdout(Stdio::null()));
    sh(Command::new(super::python())
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            "demo/wheels",
            "debugpy==1.8.22",
        ])
        .current_dir(repo));
}

/// A compose project of this repository; `down` on drop, so nothing is left running even
/// when a test fails.
pub struct Compose {
    /// The project name (`-p`).
    pub project: &'static str,
    /// The compose file, if not `compose.yaml`.
    file: Option<&'static str>,
    /// The environment of every `docker-compose` command: base images, build flags and
    /// free ports.
    pub env: Vec<(String, String)>,
}

impl Compose {
    /// The project `project` of `file` with the local base images, the offline build
    /// flags, free `DAP_PORT` and `DAP_HTTP_PORT`, and `extra`; writes the sidecar's
    /// token to `dap-sidecar.env` and takes down what a failed run may have left.
    pub fn new(
        project: &'static str,
        file: Option<&'static str>,
        token: &str,
        extra: &[(&str, String)],
    ) -> Compose {
        std::fs::write(
            repo_dir().join("dap-sidecar.env"),
            format!("DAP_SIDECAR_AUTH__TOKEN={token}\n"),
        )
        .expect("env file");
        let mut env: Vec<(String, String)> = [
            ("BUILDER_IMAGE", "local/rust-builder:latest".to_owned()),
            ("RUNTIME_IMAGE", "local/debian:bookworm".to_owned()),
            ("PYTHON_IMAGE", "local/python:bookworm".to_owned()),
            ("CARGO_FLAGS", CARGO_FLAGS.to_owned()),
            ("PIP_FLAGS", "--no-index --find-links /wheels".to_owned()),
            ("DAP_PORT", free_port().to_string()),
            ("DAP_HTTP_PORT", free_port().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let compose = Compose { project, file, env };
        compose.down();
        compose
    }

    /// A `docker-compose` command of this project.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["-p", self.project]);
        if let Some(file) = self.file {
            cmd.args(["-f", file]);
        }
        cmd.args(args).current_dir(repo_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// A value of the environment.
    pub fn var(&self, key: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == key).expect("env").1
    }

    /// A published port of the environment, on the host's loopback.
    pub fn port(&self, key: &str) -> SocketAddr {
        SocketAddr::from((
            [127, 0, 0, 1],
            self.var(key).parse::<u16>().expect("number"),
        ))
    }

    /// Stops and removes the project's containers and volumes.
    pub fn down(&self) {
        let _ = self
            .cmd(&["down", "-v", "--remove-orphans", "-t", "5"])
            .output();
    }

    /// Asserts that none of the project's containers is running.
    pub fn assert_nothing_left(&self) {
        let left = sh(Command::new("docker").args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
        ]));
        assert!(left.trim().is_empty(), "containers left running: {left}");
    }

    /// Follows a service's output.
    pub fn follow(&self, service: &str) -> (Child, Lines) {
        let mut child = self
            .cmd(&["logs", "-f", "--no-color", service])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-compose logs");
        let lines = Lines::default();
        lines.collect(child.stdout.take().expect("stdout"), "compose");
        (child, lines)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_file(repo_dir().join("dap-sidecar.env"));
    }
}

/// Polls an HTTP endpoint published by a container until `ok` says yes. Containers
/// offer the host no readiness notification, so this is a bounded poll.
pub fn poll(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    ok: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            let got = std::panic::catch_unwind(|| http_get(addr, path));
            if let Ok((code, body)) = got
                && ok(code, &body)
            {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "{addr}{path} never became ready");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The line of the demo app marked as a good place for a breakpoint.
pub fn demo_line() -> i64 {
    let src = std::fs::read_to_string(repo_dir().join("demo/app/main.py")).expect("demo app");
    src.lines()
        .position(|l| l.contains("a good place for a breakpoint"))
        .expect("marker") as i64
        + 1
}

/// An image's size in MiB.
pub fn image_mib(image: &str) -> f64 {
    let size = sh(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", image]));
    size.trim().parse::<f64>().unwrap_or(0.0) / 1048576.0
}
