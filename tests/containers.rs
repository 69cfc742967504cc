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

use std::process::Command;
use std::time::{Duration, Instant};

use common::compose::{Compose, demo_line, image_mib, offline_inputs, poll, sh};
use common::dap::DapClient;
use common::{SOON, free_port, repo_dir};
use serde_json::{Value, json};

const PROJECT: &str = "dap-sidecar-e2e";
const TOKEN: &str = "e2e-token-0123456789abcdef";
/// Building the images compiles the sidecar in release mode inside Docker.
const BUILD: Duration = Duration::from_secs(1800);

/// Starts the project, building its images; `wait` holds the app until an attach.
fn up(compose: &Compose, wait: bool) {
    let mut cmd = compose.cmd(&["up", "-d", "--build"]);
    cmd.env("DAP_SIDECAR_WAIT", wait.to_string());
    sh(&mut cmd);
}

/// The offline inputs, the project, and the sidecar image built with `docker build`.
fn prepare() -> Compose {
    offline_inputs();
    let compose = Compose::new(
        PROJECT,
        None,
        TOKEN,
        &[
            ("PROMETHEUS_IMAGE", "local/prometheus:latest".to_owned()),
            ("PROMETHEUS_PORT", free_port().to_string()),
        ],
    );

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
        build
            .arg("--build-arg")
            .arg(format!("{key}={}", compose.var(key)));
    }
    sh(build.arg(".").current_dir(repo_dir()));
    println!(
        "sidecar image: {:.1} MiB (built in {:.0} s; the base is a debootstrapped Debian, distroless by default)",
        image_mib("dap-sidecar:e2e"),
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < BUILD);
    compose
}

#[test]
#[ignore = "a Docker engine, root and debootstrap, minutes: run by scripts/test.sh"]
fn compose_demo_end_to_end() {
    let compose = prepare();
    let dap = compose.port("DAP_PORT");
    let http = compose.port("DAP_HTTP_PORT");
    let prometheus = compose.port("PROMETHEUS_PORT");
    let local_root = repo_dir().join("demo/app").display().to_string();
    let local_main = format!("{local_root}/main.py");

    // 2. Up; attach from the host with the token; break in /usr/src/app seen locally.
    up(&compose, false);
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
    up(&compose, true);
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
    compose.assert_nothing_left();
}
