//! Attach on demand on a real Docker engine: `compose.ondemand.yaml` with the app image
//! `demo-app-plain` (Python 3.14 from the Debian sid root of `scripts/py314-root.sh`,
//! imported as a base image because no registry is reachable here; no debugpy, no
//! sidecar binary; plain `python3.14 main.py`) and the `sidecar-ondemand` image, which
//! carries debugpy's cp314 wheel unpacked. A DAP client on the host attaches through
//! localhost with the token, the sidecar starts debugpy in the running app, the
//! breakpoint in the checkout's `demo/app/main.py` is hit; a second session needs no
//! second injection; the app keeps running; `down` leaves nothing running.
//!
//! Needs root, Docker and debootstrap (`scripts/setup.sh`); minutes the first time.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dap::DapClient;
use common::py314::root;
use common::{Lines, SOON, free_port, http_get, repo_dir};
use serde_json::json;

const PROJECT: &str = "dap-sidecar-ondemand-e2e";
const TOKEN: &str = "ondemand-token-0123456789abcdef";
const PYTHON314_IMAGE: &str = "local/python:3.14-sid";

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

/// The compose project of `compose.ondemand.yaml`; `down` on drop.
struct Compose {
    env: Vec<(String, String)>,
}

impl Compose {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.args(["-p", PROJECT, "-f", "compose.ondemand.yaml"])
            .args(args)
            .current_dir(repo_dir());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn down(&self) {
        let _ = self
            .cmd(&["down", "-v", "--remove-orphans", "-t", "5"])
            .output();
    }

    fn port(&self, key: &str) -> SocketAddr {
        let port = &self.env.iter().find(|(k, _)| k == key).expect("port").1;
        SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>().expect("number")))
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_file(repo_dir().join("dap-sidecar.env"));
    }
}

/// Polls an HTTP endpoint published by a container until `ok` says yes (containers offer
/// the host no readiness notification).
fn poll(addr: SocketAddr, path: &str, timeout: Duration, ok: impl Fn(u16, &str) -> bool) -> String {
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

fn demo_line() -> i64 {
    let src = std::fs::read_to_string(repo_dir().join("demo/app/main.py")).expect("demo app");
    src.lines()
        .position(|l| l.contains("a good place for a breakpoint"))
        .expect("marker") as i64
        + 1
}

/// The base images, offline inputs and the env of the compose project.
fn prepare() -> Compose {
    let repo = repo_dir();
    sh(Command::new("bash").arg(repo.join("tests/containers/base-images.sh")));
    let have = Command::new("docker")
        .args(["image", "inspect", PYTHON314_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        sh(Command::new("sh")
            .args([
                "-c",
                r#"tar -C "$0" --exclude=./proc/* --exclude=./srv/* -c . | docker import - "$1""#,
            ])
            .arg(root())
            .arg(PYTHON314_IMAGE));
    }
    sh(Command::new("cargo")
        .args(["vendor", "--locked", "-q", "vendor"])
        .current_dir(repo)
        .stdout(Stdio::null()));
    // Docker's legacy builder builds every stage before the target, the demo-app stage
    // (debugpy for the bookworm Python) included: its wheel too, downloaded on the host.
    sh(Command::new(common::python())
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            "demo/wheels",
        ])
        .arg("debugpy==1.8.22")
        .current_dir(repo));
    // debugpy's cp314 wheel, downloaded on the host by scripts/py314-root.sh.
    let wheels = common::py314::debugpy_wheels();
    for wheel in std::fs::read_dir(&wheels).expect("wheel dir").flatten() {
        std::fs::copy(
            wheel.path(),
            repo.join("demo/wheels").join(wheel.file_name()),
        )
        .expect("copy wheel");
    }
    std::fs::write(
        repo.join("dap-sidecar.env"),
        format!("DAP_SIDECAR_AUTH__TOKEN={TOKEN}\n"),
    )
    .expect("env file");
    let cargo_flags = "--offline --config source.crates-io.replace-with='vendored' --config source.vendored.directory='vendor'";
    let env = [
        ("BUILDER_IMAGE", "local/rust-builder:latest".to_owned()),
        ("RUNTIME_IMAGE", "local/debian:bookworm".to_owned()),
        ("PYTHON_IMAGE", "local/python:bookworm".to_owned()),
        ("PYTHON314_IMAGE", PYTHON314_IMAGE.to_owned()),
        ("CARGO_FLAGS", cargo_flags.to_owned()),
        ("PIP_FLAGS", "--no-index --find-links /wheels".to_owned()),
        ("DAP_PORT", free_port().to_string()),
        ("DAP_HTTP_PORT", free_port().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let compose = Compose { env };
    compose.down();
    compose
}

fn image_mib(image: &str) -> f64 {
    let size = sh(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", image]));
    size.trim().parse::<f64>().unwrap_or(0.0) / 1048576.0
}

/// One session: attach with the token, hit the breakpoint, evaluate, continue,
/// disconnect. Returns the client's history as text.
fn debug_once(dap: SocketAddr) -> String {
    let local_root = repo_dir().join("demo/app").display().to_string();
    let local_main = format!("{local_root}/main.py");
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
    assert_eq!(
        client.request("disconnect", json!({"terminateDebuggee": false}))["success"],
        true
    );
    assert!(client.closed(SOON));
    format!("{:?}", client.history)
}

#[test]
#[ignore = "a Docker engine, root and debootstrap, minutes: run by scripts/test.sh"]
fn compose_attach_on_demand_end_to_end() {
    let compose = prepare();
    let started = Instant::now();
    sh(&mut compose.cmd(&["up", "-d", "--build"]));
    println!(
        "images built and started in {:.0} s: sidecar-ondemand {:.1} MiB, demo-app-plain {:.1} MiB",
        started.elapsed().as_secs_f64(),
        image_mib("dap-sidecar-ondemand"),
        image_mib("dap-sidecar-demo-app-plain"),
    );
    let dap = compose.port("DAP_PORT");
    let http = compose.port("DAP_HTTP_PORT");
    poll(http, "/healthz", SOON * 4, |code, _| code == 200);
    // The app image has no debugpy and runs nothing but Python.
    let own = compose
        .cmd(&["exec", "-T", "app", "python3.14", "-c", "import debugpy"])
        .output()
        .expect("exec");
    assert!(!own.status.success(), "the app image must not have debugpy");

    let mut follower = compose
        .cmd(&["logs", "-f", "--no-color", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs");
    let logs = Lines::default();
    logs.collect(follower.stdout.take().expect("stdout"), "compose");

    let first = debug_once(dap);
    assert!(first.contains("started debugpy in the app"), "{first}");
    let second = debug_once(dap);
    assert!(!second.contains("started debugpy in the app"), "{second}");
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metrics.contains("dap_sidecar_injections_total{result=\"injected\"} 1"),
        "{metrics}"
    );
    // The app keeps running: a new `event` line after both sessions.
    let before = logs.len();
    assert!(
        logs.wait_from(before, SOON, |l| l.contains("event "))
            .is_some(),
        "{}",
        logs.all()
    );
    let _ = follower.kill();
    let _ = follower.wait();

    compose.down();
    let left = sh(Command::new("docker").args([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
    ]));
    assert!(left.trim().is_empty(), "containers left running: {left}");
}
