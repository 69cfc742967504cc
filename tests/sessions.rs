//! DAP sessions through the sidecar running in-process (`server::Server`) in front of the
//! fake debugpy of `tests/common`: no Python, no root, loopback only. The handshake and
//! authentication, capabilities, path mapping both ways, and every way a session ends.
//! Timeouts are tested on tokio's paused clock, so they cost no real time.
//!
//! The same behaviour against real debugpy is proven by `tests/gateway.rs`,
//! `tests/auth.rs` and `tests/robustness.rs` (run by `scripts/test.sh`).

mod common;

use std::time::Duration;

use common::TOKEN;
use common::async_dap::{Client, metric};
use common::fake_upstream::{FakeUpstream, REMOTE_ROOT};
use common::in_process::{InProcess, config, mapped};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

const LOCAL_ROOT: &str = "/home/dev/project";

/// Waits (up to 30 s on tokio's clock) until `series` in the sidecar's metrics is `value`:
/// a session's outcome is counted just after its connection closed.
async fn metric_reaches(sidecar: &InProcess, series: &str, value: f64) {
    let deadline = Instant::now() + common::SOON;
    while metric(&sidecar.metrics(), series) != Some(value) {
        assert!(
            Instant::now() < deadline,
            "{series} never reached {value}:\n{}",
            sidecar.metrics()
        );
        sleep(Duration::from_millis(10)).await;
    }
}

/// The commands of the requests the fake received, in order.
fn commands(fake: &FakeUpstream) -> Vec<String> {
    fake.received()
        .iter()
        .filter(|m| m["type"] == "request")
        .filter_map(|m| m["command"].as_str().map(str::to_owned))
        .collect()
}

/// The sidecar answers `initialize` and early requests itself; the attach with the token
/// reaches debugpy with the client's own `initialize` before it, without the token and
/// the client's `pathMappings`; a `disconnect` ends the session cleanly.
#[tokio::test]
async fn only_an_authenticated_attach_reaches_debugpy() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let mut client = Client::connect(sidecar.dap).await;

    let init = client.initialize().await;
    assert_eq!(init["success"], true, "{init}");
    assert_eq!(init["body"]["supportsConfigurationDoneRequest"], true);
    let early = client.request("threads", json!({})).await;
    assert_eq!(early["success"], false, "{early}");
    assert!(early["message"].as_str().unwrap().contains("attach"));
    let launch = client.request("launch", json!({})).await;
    assert_eq!(launch["success"], false, "{launch}");
    assert!(launch["message"].as_str().unwrap().contains("attach"));
    assert_eq!(fake.connections(), 0, "debugpy contacted before the attach");

    // Same capabilities upstream as announced: no `capabilities` event.
    fake.set_capabilities(init["body"].clone());
    let mappings = json!([{"localRoot": LOCAL_ROOT, "remoteRoot": REMOTE_ROOT}]);
    client
        .handshake(json!({"token": TOKEN, "pathMappings": mappings}))
        .await;
    assert_eq!(fake.connections(), 1);
    assert_eq!(
        commands(&fake),
        ["initialize", "attach", "configurationDone"]
    );
    let received = fake.received();
    assert_eq!(
        received[0]["arguments"]["clientID"], "vscode",
        "the client's own initialize"
    );
    let attach = &received[1]["arguments"];
    assert_eq!(attach["justMyCode"], false, "{attach}");
    assert!(
        attach.get("token").is_none(),
        "the token reached debugpy: {attach}"
    );
    assert!(attach.get("pathMappings").is_none(), "{attach}");
    assert!(
        !client.history.iter().any(|m| m["event"] == "capabilities"),
        "{:#?}",
        client.history
    );
    assert_eq!(
        metric(&sidecar.metrics(), "dap_sidecar_sessions_active"),
        Some(1.0)
    );

    let bye = client
        .request("disconnect", json!({"terminateDebuggee": false}))
        .await;
    assert_eq!(bye["success"], true, "{bye}");
    assert!(
        client.closed().await,
        "connection left open after disconnect"
    );
    assert!(fake.request("disconnect").await.is_some());
    metric_reaches(
        &sidecar,
        "dap_sidecar_sessions_total{outcome=\"disconnected\"}",
        1.0,
    )
    .await;
    assert_eq!(
        metric(&sidecar.metrics(), "dap_sidecar_sessions_active"),
        Some(0.0)
    );
}

/// debugpy sends `terminated` before its answer to `disconnect`; the client gets the
/// answer first (a client that closes on `terminated` would otherwise wait for its own
/// timeout), then `terminated`.
#[tokio::test]
async fn the_disconnect_answer_reaches_the_client_before_terminated() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    let seq = client
        .send("disconnect", json!({"terminateDebuggee": false}))
        .await;
    assert!(
        client.closed().await,
        "connection left open after disconnect"
    );
    let answer = client
        .history
        .iter()
        .position(|m| m["type"] == "response" && m["request_seq"] == seq);
    let terminated = client
        .history
        .iter()
        .position(|m| m["event"] == "terminated");
    assert!(
        matches!((answer, terminated), (Some(a), Some(t)) if a < t),
        "{:#?}",
        client.history
    );
}

/// A missing or wrong token is refused with a reason, counted, and debugpy never hears
/// of the client.
#[tokio::test]
async fn a_missing_or_wrong_token_is_refused_before_debugpy() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let cases = [
        (json!({}), "token is required", "missing_token"),
        (
            json!({"token": "nope-nope-nope-nope"}),
            "token is wrong",
            "wrong_token",
        ),
        (json!({"token": 12345}), "token is wrong", "wrong_token"),
    ];
    for (extra, why, _) in &cases {
        let mut client = Client::connect(sidecar.dap).await;
        client.initialize().await;
        let seq = client.attach(extra.clone()).await;
        let answer = client.response(seq).await;
        assert_eq!(answer["success"], false, "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{message}");
        let bye = client.request("disconnect", json!({})).await;
        assert_eq!(bye["success"], true, "{bye}");
        assert!(client.closed().await, "a refused connection stays open");
    }
    assert_eq!(fake.connections(), 0, "debugpy saw a refused client");
    let metrics = sidecar.metrics();
    let failures = |reason: &str| {
        metric(
            &metrics,
            &format!("dap_sidecar_auth_failures_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(failures("missing_token"), Some(1.0), "{metrics}");
    assert_eq!(failures("wrong_token"), Some(2.0), "{metrics}");
    assert!(!metrics.contains(TOKEN));
}

/// Refusals name the place the client's users write the token, in its syntax.
#[tokio::test]
async fn refusals_are_worded_for_the_client() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let cases = [
        (
            "vscode",
            &[
                "launch.json",
                "\"token\": \"<token>\"",
                "dap-sidecar launch-json",
            ][..],
        ),
        (
            "neovim",
            &[
                "nvim-dap configuration (dap.configurations.python)",
                "token = '<token>'",
            ][..],
        ),
        (
            "emacs",
            &[
                "your client's attach configuration",
                "\"token\": \"<token>\"",
            ][..],
        ),
    ];
    for (id, needles) in cases {
        let mut client = Client::connect(sidecar.dap).await;
        client.request("initialize", json!({"clientID": id})).await;
        let seq = client.attach(json!({})).await;
        let answer = client.response(seq).await;
        let message = answer["message"].as_str().unwrap_or_default();
        for needle in needles {
            assert!(
                message.contains(needle),
                "{id}: {needle:?} missing from {message}"
            );
        }
        if id != "vscode" {
            assert!(!message.contains("launch.json"), "{id}: {message}");
        }
    }
}

/// debugpy answering `initialize` with other capabilities than the sidecar announced:
/// the client learns them from a `capabilities` event before its attach completes.
#[tokio::test]
async fn differing_capabilities_reach_the_client_in_a_capabilities_event() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let capabilities = json!({
        "supportsConfigurationDoneRequest": true,
        "supportsStepBack": true,
        "supportsRestartFrame": true
    });
    fake.set_capabilities(capabilities.clone());
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    let position = |pred: &dyn Fn(&Value) -> bool| client.history.iter().position(pred);
    let event = position(&|m| m["event"] == "capabilities")
        .unwrap_or_else(|| panic!("no capabilities event: {:#?}", client.history));
    let attached = position(&|m| m["command"] == "attach" && m["type"] == "response")
        .expect("attach response");
    assert!(event < attached, "{:#?}", client.history);
    assert_eq!(
        client.history[event]["body"]["capabilities"], capabilities,
        "{:#?}",
        client.history[event]
    );
}

/// Stack traces come back with the IDE's paths, breakpoints go up with the container's.
#[tokio::test]
async fn paths_are_mapped_both_ways() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(mapped(config(fake.addr), LOCAL_ROOT, REMOTE_ROOT)).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;

    let bps = client
        .request(
            "setBreakpoints",
            json!({"source": {"path": format!("{LOCAL_ROOT}/pkg/m1.py")}, "breakpoints": [{"line": 3}]}),
        )
        .await;
    assert_eq!(bps["success"], true, "{bps}");
    let sent = fake
        .request("setBreakpoints")
        .await
        .expect("setBreakpoints");
    assert_eq!(
        sent["arguments"]["source"]["path"],
        format!("{REMOTE_ROOT}/pkg/m1.py")
    );

    let trace = client
        .request("stackTrace", json!({"threadId": 1, "levels": 12}))
        .await;
    let frames = trace["body"]["stackFrames"].as_array().expect("frames");
    assert_eq!(frames.len(), 12);
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(
            frame["source"]["path"],
            format!("{LOCAL_ROOT}/pkg/m{}.py", i % 10),
            "{frame}"
        );
    }
    assert!(
        !serde_json::to_string(&fake.received())
            .unwrap()
            .contains(LOCAL_ROOT),
        "debugpy saw a local path"
    );
}

/// A Windows IDE: paths go up as POSIX container paths and come back in the client's
/// spelling; the client's own `pathMappings` win over the config's.
#[tokio::test]
async fn windows_paths_and_client_mappings() {
    let fake = FakeUpstream::start().await;
    let local = r"c:\Users\Penny\project";
    let sidecar = InProcess::start(mapped(config(fake.addr), local, REMOTE_ROOT)).await;

    let mut client = Client::connect(sidecar.dap).await;
    client
        .handshake(json!({"token": TOKEN, "clientOS": "windows"}))
        .await;
    let spelled = r"C:\Users\Penny\project\pkg\m0.py";
    client
        .request(
            "setBreakpoints",
            json!({"source": {"path": spelled}, "breakpoints": [{"line": 1}]}),
        )
        .await;
    let sent = fake
        .request("setBreakpoints")
        .await
        .expect("setBreakpoints");
    assert_eq!(
        sent["arguments"]["source"]["path"],
        format!("{REMOTE_ROOT}/pkg/m0.py")
    );
    let trace = client
        .request("stackTrace", json!({"threadId": 1, "levels": 1}))
        .await;
    assert_eq!(trace["body"]["stackFrames"][0]["source"]["path"], spelled);
    client.request("disconnect", json!({})).await;
    assert!(client.closed().await);

    let mut client = Client::connect(sidecar.dap).await;
    let mappings = json!([{"localRoot": "/elsewhere", "remoteRoot": REMOTE_ROOT}]);
    client
        .handshake(json!({"token": TOKEN, "pathMappings": mappings}))
        .await;
    let trace = client
        .request("stackTrace", json!({"threadId": 1, "levels": 1}))
        .await;
    assert_eq!(
        trace["body"]["stackFrames"][0]["source"]["path"],
        "/elsewhere/pkg/m0.py"
    );
}

/// A client that vanishes without `disconnect`: the sidecar disconnects upstream on its
/// behalf with `terminateDebuggee: false` (the app resumes and keeps running), and the
/// next client attaches.
#[tokio::test]
async fn a_vanished_client_is_disconnected_upstream_on_its_behalf() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    client.request("threads", json!({})).await;
    drop(client);

    let disconnect = fake
        .request("disconnect")
        .await
        .expect("no disconnect sent upstream");
    assert_eq!(
        disconnect["arguments"]["terminateDebuggee"], false,
        "{disconnect}"
    );
    assert_eq!(disconnect["arguments"]["restart"], false, "{disconnect}");
    let threads = fake
        .received()
        .iter()
        .find(|m| m["command"] == "threads")
        .map(|m| m["seq"].as_i64().unwrap())
        .expect("threads");
    assert!(
        disconnect["seq"].as_i64().unwrap() > threads,
        "the disconnect's seq clashes with the client's: {disconnect}"
    );
    metric_reaches(
        &sidecar,
        "dap_sidecar_sessions_total{outcome=\"client_lost\"}",
        1.0,
    )
    .await;

    let mut next = Client::connect(sidecar.dap).await;
    next.handshake(json!({"token": TOKEN})).await;
    assert_eq!(fake.connections(), 2);
}

/// debugpy vanishing mid-session: the client is told on its console, gets `terminated`,
/// and the connection closes.
#[tokio::test]
async fn upstream_loss_ends_the_client_session_with_terminated() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    fake.cut_connections();
    assert!(
        client.event("terminated").await.is_some(),
        "no terminated event: {:#?}",
        client.history
    );
    assert!(client.closed().await, "client connection left open");
    assert!(
        client.history.iter().any(|m| m["event"] == "output"
            && m["body"]["output"]
                .as_str()
                .is_some_and(|o| o.contains("connection to debugpy closed"))),
        "{:#?}",
        client.history
    );
    metric_reaches(
        &sidecar,
        "dap_sidecar_sessions_total{outcome=\"upstream_lost\"}",
        1.0,
    )
    .await;
}

/// Cancelling the shutdown token (SIGTERM in the binary) while a session is attached:
/// the sidecar disconnects upstream (the app keeps running), tells the client and sends
/// it `terminated`, and `serve` returns.
#[tokio::test]
async fn shutdown_ends_sessions_cleanly() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let dap = sidecar.dap;
    let mut client = Client::connect(dap).await;
    client.handshake(json!({"token": TOKEN})).await;

    let started = std::time::Instant::now();
    sidecar.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "serve took {:?} to return",
        started.elapsed()
    );
    let disconnect = fake.request("disconnect").await.expect("disconnect");
    assert_eq!(disconnect["arguments"]["terminateDebuggee"], false);
    assert!(
        client.event("terminated").await.is_some(),
        "{:#?}",
        client.history
    );
    assert!(client.closed().await);
    assert!(
        tokio::net::TcpStream::connect(dap).await.is_err(),
        "the DAP port still accepts"
    );
}

/// A large path-free response passes through as it arrives, whole.
#[tokio::test]
async fn large_responses_pass_through_intact() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(mapped(config(fake.addr), LOCAL_ROOT, REMOTE_ROOT)).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    let size = 3_000_000;
    let big = client
        .request("variables", json!({"variablesReference": 1, "bytes": size}))
        .await;
    let value = big["body"]["variables"][0]["value"]
        .as_str()
        .expect("value");
    assert_eq!(value.len(), size);
    assert!(value.bytes().all(|b| b == b'x'));
    assert_eq!(
        metric(
            &sidecar.metrics(),
            "dap_sidecar_messages_passed_through_total"
        ),
        Some(1.0)
    );
    // Mapping goes on after it.
    let trace = client
        .request("stackTrace", json!({"threadId": 1, "levels": 1}))
        .await;
    assert_eq!(
        trace["body"]["stackFrames"][0]["source"]["path"],
        format!("{LOCAL_ROOT}/pkg/m0.py")
    );
}

/// An attached client that starts a frame and stalls: dropped after
/// `limits.frame_timeout`, with a disconnect upstream so the app resumes. (Real clock:
/// the codec times frames with `std::time::Instant`.)
#[tokio::test]
async fn a_stalled_frame_after_attach_ends_the_session() {
    let fake = FakeUpstream::start().await;
    let mut config = config(fake.addr);
    config.limits.frame_timeout = Duration::from_millis(400);
    let sidecar = InProcess::start(config).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    client
        .send_raw(b"Content-Length: 500\r\n\r\n{\"seq\":")
        .await
        .expect("partial frame");
    let disconnect = fake.request("disconnect").await.expect("disconnect");
    assert_eq!(disconnect["arguments"]["terminateDebuggee"], false);
    assert!(client.closed().await, "stalled client left connected");
    metric_reaches(
        &sidecar,
        "dap_sidecar_sessions_total{outcome=\"client_lost\"}",
        1.0,
    )
    .await;
}

/// The handshake deadline (`limits.auth_timeout`) counts from the connection, however the
/// client spreads its bytes: requests answered along the way and a half-sent attach do
/// not extend it. On tokio's paused clock: ten seconds cost none.
#[tokio::test(start_paused = true)]
async fn the_attach_deadline_counts_from_the_connection() {
    let fake = FakeUpstream::start().await;
    let mut config = config(fake.addr);
    config.limits.auth_timeout = Duration::from_secs(10);
    let sidecar = InProcess::start(config).await;
    let mut client = Client::connect(sidecar.dap).await;
    let connected = Instant::now();
    assert_eq!(client.initialize().await["success"], true);
    sleep(Duration::from_secs(6)).await;
    let early = client.request("threads", json!({})).await;
    assert_eq!(early["success"], false, "{early}");
    sleep(Duration::from_secs(3)).await;
    client
        .send_raw(b"Content-Length: 300\r\n\r\n{\"seq\":9,\"type\":\"request\",")
        .await
        .expect("half an attach");
    assert!(client.closed().await, "still open past the deadline");
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_500),
        "closed after {waited:?}"
    );
    assert_eq!(fake.connections(), 0);
    metric_reaches(
        &sidecar,
        "dap_sidecar_sessions_total{outcome=\"abandoned\"}",
        1.0,
    )
    .await;
}

/// debugpy not listening: the attach waits `upstream_timeout` with progress on the
/// console, then fails with a clear message. On the paused clock.
#[tokio::test(start_paused = true)]
async fn an_attach_fails_clearly_when_debugpy_never_listens() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port"); // released: nothing listens there
    let mut config = config(nobody);
    config.upstream_timeout = Duration::from_secs(10);
    let sidecar = InProcess::start(config).await;
    let mut client = Client::connect(sidecar.dap).await;
    client.initialize().await;
    let started = Instant::now();
    let seq = client.attach(json!({"token": TOKEN})).await;
    let answer = client.response(seq).await;
    let waited = started.elapsed();
    assert_eq!(answer["success"], false, "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not accept a connection"), "{message}");
    assert!(message.contains(&nobody.to_string()), "{message}");
    assert!(message.contains("10s"), "{message}");
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
        "answered after {waited:?}"
    );
    assert!(
        client.history.iter().any(|m| m["event"] == "output"
            && m["body"]["output"]
                .as_str()
                .is_some_and(|o| o.contains("waiting for debugpy"))),
        "no progress: {:#?}",
        client.history
    );
}

/// A client that shows progress (`supportsProgressReporting`) gets the wait for debugpy
/// as progress events too, ended before the attach's answer.
#[tokio::test(start_paused = true)]
async fn the_wait_for_debugpy_is_reported_as_progress() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port"); // released: nothing listens there
    let mut config = config(nobody);
    config.upstream_timeout = Duration::from_secs(12);
    let sidecar = InProcess::start(config).await;
    let mut client = Client::connect(sidecar.dap).await;
    client
        .request(
            "initialize",
            json!({"clientID": "neovim", "supportsProgressReporting": true}),
        )
        .await;
    let seq = client.attach(json!({"token": TOKEN})).await;
    let answer = client.response(seq).await;
    assert_eq!(answer["success"], false, "{answer}");
    let events: Vec<&str> = client
        .history
        .iter()
        .filter(|m| {
            m["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("progress"))
        })
        .inspect(|m| assert_eq!(m["body"]["progressId"], "dap-sidecar-upstream", "{m}"))
        .filter_map(|m| m["event"].as_str())
        .collect();
    assert_eq!(events.first(), Some(&"progressStart"), "{events:?}");
    assert!(events.contains(&"progressUpdate"), "{events:?}");
    assert_eq!(events.last(), Some(&"progressEnd"), "{events:?}");
    let end = client
        .history
        .iter()
        .position(|m| m["event"] == "progressEnd");
    let answered = client
        .history
        .iter()
        .position(|m| m["type"] == "response" && m["request_seq"] == seq);
    assert!(end < answered, "{:#?}", client.history);
    // A client that did not declare it gets none.
    let mut plain = Client::connect(sidecar.dap).await;
    plain.initialize().await;
    let seq = plain.attach(json!({"token": TOKEN})).await;
    plain.response(seq).await;
    assert!(
        !plain.history.iter().any(|m| m["event"] == "progressStart"),
        "{:#?}",
        plain.history
    );
}
