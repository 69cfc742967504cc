//! The real Dockerfile and compose.yaml on a real Docker engine: images built from local
//! base images (no registry is reachable here; see tests/containers/base-images.sh),
//! crates vendored and debugpy's wheel downloaded on the host. Then a DAP client on the
//! host attaches through localhost with the token and debugs /usr/src/app in the
//! container as the checkout's demo/app; the sidecar reports the app's memory through
//! the shared PID namespace; Prometheus in its container has scraped it; `wait` holds the
//! app until an attach; `down` leaves nothing running, even when the test fails.
//!
//! Needs root and Docker (`scripts/setup.sh` installs and starts them), so it is ignored
//! in a plain `cargo test`; `scripts/test.sh` runs it with `--ignored`.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dap::DapClient;
use common::{Lines, SOON, free_port, http_get, repo_dir};
use serde_json::{Value, json};

const PROJECT: &str = "dap-sidecar-e2e";
const TOKEN: &str = "e2e-token-0123456789abcdef";
/// Building the images compiles the sidecar in release mode inside Docker.
const BUILD: Duration = Duration::from_secs(1800);

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The compose project; `down` on drop, so nothing is left running even on failure.
struct Compose {
    env: Vec<(String, String)>,
}

impl Compose {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["-p", PROJECT]).args(args).current_dir(repo_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn up(&self, wait: bool) {
        let mut cmd = self.cmd(&["up", "-d", "--build"]);
        cmd.env("DAP_SIDECAR_WAIT", wait.to_string());
        sh(&mut cmd);
    }

    fn down(&self) {
        let _ = self
            .cmd(&["down", "-v", "--remove-orphans", "-t", "5"])
            .output();
    }

    /// Follows a service's output.
    fn follow(&self, service: &str) -> (std::process::Child, Lines) {
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
/// offer no readiness notification to the host, so this is a bounded poll.
fn poll(addr: SocketAddr, path: &str, timeout: Duration, ok: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(stream) = std::net::TcpStream::connect(addr) {
            drop(stream);
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

fn demo_line() -> i64 {
    let src = std::fs::read_to_string(repo_dir().join("demo/app/main.py")).expect("demo app");
    src.lines()
        .position(|l| l.contains("a good place for a breakpoint"))
        .expect("marker") as i64
        + 1
}

fn prepare() -> Compose {
    let repo = repo_dir();
    sh(Command::new("bash").arg(repo.join("tests/containers/base-images.sh")));
    // Offline inputs: vendored crates and debugpy's wheel, fetched on the host.
    sh(Command::new("cargo")
        .args(["vendor", "--locked", "-q", "vendor"])
        .current_dir(repo)
        .stdout(Stdio::null()));
    let python = common::python();
    sh(Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            "demo/wheels",
        ])
        .arg(format!("debugpy=={}", "1.8.22"))
        .current_dir(repo));
    std::fs::write(
        repo.join("dap-sidecar.env"),
        format!("DAP_SIDECAR_AUTH__TOKEN={TOKEN}\n"),
    )
    .expect("env file");
    let cargo_flags = "--offline --config source.crates-io.replace-with='vendored' --config source.vendored.directory='vendor'";
    let env: Vec<(String, String)> = [
        ("BUILDER_IMAGE", "local/rust-builder:latest".to_owned()),
        ("RUNTIME_IMAGE", "local/debian:bookworm".to_owned()),
        ("PYTHON_IMAGE", "local/python:bookworm".to_owned()),
        ("PROMETHEUS_IMAGE", "local/prometheus:latest".to_owned()),
        ("CARGO_FLAGS", cargo_flags.to_owned()),
        ("PIP_FLAGS", "--no-index --find-links /wheels".to_owned()),
        ("DAP_PORT", free_port().to_string()),
        ("DAP_HTTP_PORT", free_port().to_string()),
        ("PROMETHEUS_PORT", free_port().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let compose = Compose { env };
    compose.down();

    // 1. The real Dockerfile builds with local base images; print the image size.
    let started = Instant::now();
    let mut build = Command::new("docker");
    build.args([
        "build",
        "-q",
        "--target",
        "sidecar",
        "-t",
        "dap-sidecar:e2e",
    ]);
    // Docker's legacy builder builds every stage before the target: pass all base images.
    for key in [
        "BUILDER_IMAGE",
        "RUNTIME_IMAGE",
        "PYTHON_IMAGE",
        "CARGO_FLAGS",
        "PIP_FLAGS",
    ] {
        let value = &compose.env.iter().find(|(k, _)| k == key).expect("env").1;
        build.arg("--build-arg").arg(format!("{key}={value}"));
    }
    sh(build.arg(".").current_dir(repo));
    let size =
        sh(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", "dap-sidecar:e2e"]));
    println!(
        "sidecar image: {:.1} MiB (built in {:.0} s; the base is a debootstrapped Debian, distroless by default)",
        size.trim().parse::<f64>().unwrap_or(0.0) / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < BUILD);
    compose
}

fn port(compose: &Compose, key: &str) -> SocketAddr {
    let port: u16 = compose
        .env
        .iter()
        .find(|(k, _)| k == key)
        .expect("port")
        .1
        .parse()
        .expect("number");
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
#[ignore = "a Docker engine, root and debootstrap, minutes: run by scripts/test.sh"]
fn compose_demo_end_to_end() {
    let compose = prepare();
    let dap = port(&compose, "DAP_PORT");
    let http = port(&compose, "DAP_HTTP_PORT");
    let prometheus = port(&compose, "PROMETHEUS_PORT");
    let local_root = repo_dir().join("demo/app").display().to_string();
    let local_main = format!("{local_root}/main.py");

    // 2. Up; attach from the host with the token; break in /usr/src/app seen locally.
    compose.up(false);
    poll(http, "/readyz", SOON * 4, |code, _| code == 200);
    let mut client = DapClient::connect(dap);
    let extra = json!({"token": TOKEN, "workspaceFolder": local_root});
    let bps = client.attach_with_breakpoint(extra, &local_main, demo_line());
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    let (thread, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], local_main.as_str());
    let kind = client.evaluate("kind", frame["id"].as_i64().expect("frame id"));
    assert_eq!(kind, "'temperature'");
    client.request(
        "setBreakpoints",
        json!({"source": {"path": local_main}, "breakpoints": []}),
    );
    assert_eq!(
        client.request("continue", json!({"threadId": thread}))["success"],
        true
    );
    client.request("disconnect", json!({"terminateDebuggee": false}));

    // 3. The sidecar sees the app's memory through the shared PID namespace...
    let status: Value = serde_json::from_str(&poll(http, "/status", SOON, |code, body| {
        code == 200 && body.contains("\"rss\"")
    }))
    .expect("status");
    let rss = status["target"]["debuggee"]["memory"]["rss"]
        .as_u64()
        .unwrap_or(0);
    assert!(rss > 5 << 20, "debuggee RSS {rss}: {status:#}");
    // ... and Prometheus, in its own container, has scraped it.
    poll(
        prometheus,
        "/api/v1/query?query=dap_sidecar_target_resident_memory_bytes",
        SOON * 4,
        |code, body| code == 200 && body.contains("\"role\":\"debuggee\""),
    );
    compose.down();

    // 4. With wait, the app's first line runs only after the attach.
    compose.up(true);
    poll(http, "/readyz", SOON * 4, |code, _| code == 200);
    let (mut follower, logs) = compose.follow("app");
    logs.wait("starting the app under debugpy", SOON)
        .expect("launcher line");
    assert!(
        !logs.all().contains("demo app started"),
        "the app ran before an attach"
    );
    let mut client = DapClient::connect(dap);
    client.initialize();
    let attach = client.attach(json!({"token": TOKEN}));
    client.event("initialized", SOON).expect("initialized");
    assert!(
        !logs.all().contains("demo app started"),
        "the app ran before configurationDone"
    );
    client.request("configurationDone", json!({}));
    assert_eq!(client.response(attach, SOON)["success"], true);
    assert!(
        logs.wait("demo app started", SOON).is_some(),
        "the app never started"
    );
    client.request("disconnect", json!({"terminateDebuggee": false}));
    let _ = follower.kill();
    let _ = follower.wait();

    // 5. down leaves nothing running.
    compose.down();
    let left = sh(Command::new("docker").args([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
    ]));
    assert!(left.trim().is_empty(), "containers left running: {left}");
}
