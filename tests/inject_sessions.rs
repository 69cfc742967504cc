//! The session's attach-on-demand hook in the fast tier (no Python, no root): with
//! `inject.mode: auto`, a refusal answers the client's `attach` with what to do, ends the
//! session as `not_injected` and is counted by its label; with debugpy listening nothing
//! is attempted.

mod common;

use std::time::Duration;

use common::TOKEN;
use common::async_dap::{Client, metric};
use common::fake_upstream::FakeUpstream;
use common::in_process::{InProcess, config};
use dap_sidecar::config::{Config, InjectMode, TargetPid};
use serde_json::json;

/// Injection on, with this test process (not Python) as the target.
fn injecting(mut config: Config, debugpy: &str) -> Config {
    config.inject.mode = InjectMode::Auto;
    config.inject.debugpy = debugpy.to_owned();
    config.target.pid = TargetPid::Pid(std::process::id());
    config
}

/// Attaches once and returns the refusal's message.
async fn refusal(sidecar: &InProcess) -> String {
    let mut client = Client::connect(sidecar.dap).await;
    client.initialize().await;
    let seq = client.attach(json!({"token": TOKEN})).await;
    let answer = client.response(seq).await;
    assert_eq!(answer["success"], false, "{answer}");
    answer["message"].as_str().unwrap_or_default().to_owned()
}

/// Waits (with a deadline) until a series reaches `value`.
async fn metric_reaches(sidecar: &InProcess, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&sidecar.metrics(), series) != Some(value) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never became {value}:\n{}",
            sidecar.metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn nothing_listens() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port") // released: nothing listens there
}

#[tokio::test]
async fn without_debugpy_to_bring_the_attach_is_refused_with_the_path() {
    let sidecar =
        InProcess::start(injecting(config(nothing_listens()), "/nonexistent/debugpy")).await;
    let message = refusal(&sidecar).await;
    assert!(
        message.contains("/nonexistent/debugpy has no debugpy package"),
        "{message}"
    );
    assert!(message.contains("inject.debugpy"), "{message}");
    metric_reaches(
        &sidecar,
        "dap_sidecar_injections_total{result=\"no_debugpy\"}",
        1.0,
    )
    .await;
    metric_reaches(
        &sidecar,
        "dap_sidecar_sessions_total{outcome=\"not_injected\"}",
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_target_that_is_not_python_is_no_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("debugpy")).expect("mkdir");
    std::fs::write(dir.path().join("debugpy/__init__.py"), "").expect("write");
    let debugpy = dir.path().display().to_string();
    let sidecar = InProcess::start(injecting(config(nothing_listens()), &debugpy)).await;
    let message = refusal(&sidecar).await;
    assert!(message.contains("no Python process found"), "{message}");
    metric_reaches(
        &sidecar,
        "dap_sidecar_injections_total{result=\"no_target\"}",
        1.0,
    )
    .await;
}

#[tokio::test]
async fn with_debugpy_listening_nothing_is_injected() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(injecting(config(fake.addr), "/nonexistent/debugpy")).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.initialize().await;
    let seq = client.attach(json!({"token": TOKEN})).await;
    client.event("initialized").await.expect("initialized");
    client.request("configurationDone", json!({})).await;
    let answer = client.response(seq).await;
    assert_eq!(answer["success"], true, "{answer}");
    assert!(
        !sidecar.metrics().contains("dap_sidecar_injections_total{"),
        "an injection was attempted:\n{}",
        sidecar.metrics()
    );
}
