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
use std::time::Instant;

use common::compose::{Compose, demo_line, image_mib, offline_inputs, poll, sh};
use common::dap::DapClient;
use common::py314::root;
use common::{SOON, http_get, repo_dir};
use serde_json::json;

const PROJECT: &str = "dap-sidecar-ondemand-e2e";
const TOKEN: &str = "ondemand-token-0123456789abcdef";
const PYTHON314_IMAGE: &str = "local/python:3.14-sid";

/// The offline inputs (and debugpy's cp314 wheel), the Python 3.14 base image from the
/// sid root, and the project of `compose.ondemand.yaml`.
fn prepare() -> Compose {
    offline_inputs();
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
    // debugpy's cp314 wheel, downloaded on the host by scripts/py314-root.sh.
    let wheels = common::py314::debugpy_wheels();
    for wheel in std::fs::read_dir(&wheels).expect("wheel dir").flatten() {
        std::fs::copy(
            wheel.path(),
            repo_dir().join("demo/wheels").join(wheel.file_name()),
        )
        .expect("copy wheel");
    }
    Compose::new(
        PROJECT,
        Some("compose.ondemand.yaml"),
        TOKEN,
        &[("PYTHON314_IMAGE", PYTHON314_IMAGE.to_owned())],
    )
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

    let (mut follower, logs) = compose.follow("app");

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
    compose.assert_nothing_left();
}
