//! `dap-sidecar launch`: the app under debugpy as the config says; with `wait`, the app's
//! first line runs only after a debugger attached through the sidecar.
//!
//! Those that need debugpy are ignored in a plain `cargo test`; `scripts/test.sh` runs
//! them with `--ignored`.

mod common;

use std::process::Command;

use common::dap::DapClient;
use common::{App, SOON, Sidecar, http_get, python, sidecar_bin, upstream_yaml};
use serde_json::{Value, json};

fn launched(app: &mut App, wait: bool) {
    let mut cmd = Command::new(sidecar_bin());
    cmd.arg("launch")
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", app.port))
        .env("DAP_SIDECAR_WAIT", wait.to_string())
        .arg("--")
        .arg(python())
        .arg(app.remote_root.join("main.py"));
    app.launch_command(cmd);
}

/// Waits until the sidecar has found debugpy's adapter: debugpy is up and listening.
fn adapter_found(sidecar: &Sidecar) -> Value {
    sidecar
        .log
        .wait_from(0, SOON, |l| {
            l.contains("target changed")
                && l.contains("\"adapter\":")
                && !l.contains("\"adapter\":null")
        })
        .unwrap_or_else(|| panic!("debugpy never came up:\n{}", sidecar.log.all()));
    let (_, status) = http_get(sidecar.http, "/status");
    serde_json::from_str(&status).expect("status")
}

fn sidecar(app: &App) -> Sidecar {
    Sidecar::start(&format!(
        "{}target:\n  sample_interval: 200ms\n",
        upstream_yaml(app.port)
    ))
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn with_wait_the_app_runs_only_after_an_attach() {
    let mut app = App::prepare();
    launched(&mut app, true);
    let sidecar = sidecar(&app);
    let status = adapter_found(&sidecar);
    // exec: the app keeps the launcher's pid.
    assert_eq!(status["target"]["debuggee"]["pid"], app.pid(), "{status:#}");
    let cmdline = status["target"]["debuggee"]["cmdline"]
        .as_str()
        .unwrap_or_default();
    assert!(cmdline.contains("--wait-for-client"), "{cmdline}");
    assert!(
        !app.stdout.all().contains("app started"),
        "the app ran before any attach"
    );

    let mut client = DapClient::connect(sidecar.addr);
    client.initialize();
    let attach = client.attach(json!({}));
    client.event("initialized", SOON).expect("initialized");
    assert!(
        !app.stdout.all().contains("app started"),
        "the app ran before configurationDone"
    );
    client.request("configurationDone", json!({}));
    assert_eq!(client.response(attach, SOON)["success"], true);
    assert!(
        app.stdout.wait("app started", SOON).is_some(),
        "the app never started"
    );
    client.request("disconnect", json!({"terminateDebuggee": false}));
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn without_wait_the_app_runs_at_once_under_debugpy() {
    let mut app = App::prepare();
    launched(&mut app, false);
    assert!(
        app.stdout.wait("app started", SOON).is_some(),
        "the app did not start"
    );
    let sidecar = sidecar(&app);
    let status = adapter_found(&sidecar);
    assert_eq!(status["target"]["debuggee"]["pid"], app.pid());
    assert!(
        !status["target"]["debuggee"]["cmdline"]
            .as_str()
            .unwrap_or_default()
            .contains("--wait-for-client")
    );
}

#[test]
fn launch_without_a_target_is_a_usage_error() {
    let out = Command::new(sidecar_bin())
        .args(["launch", "--", "python", "-u"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no script"));
}
