//! Broken clients end only their own connection, with a logged reason; a valid session
//! works right after, and an attached session's app is never left paused.
//!
//! Ignored in a plain `cargo test` (they need debugpy); `scripts/test.sh` runs them with
//! `--ignored`.

mod common;

use std::io::Read;
use std::net::TcpStream;

use common::dap::DapClient;
use common::{App, SOON, Sidecar, break_line, mapping_yaml, upstream_yaml};
use serde_json::json;

fn sidecar(app: &App) -> Sidecar {
    Sidecar::start(&format!(
        "{}{}limits:\n  auth_timeout: 2s\n  frame_timeout: 2s\n  max_body_bytes: 1MiB\n",
        upstream_yaml(app.port),
        mapping_yaml(&app.local_root.display().to_string(), &app.remote_root)
    ))
}

/// Sends `bytes` and waits for the sidecar to close the connection.
fn closed_after(sidecar: &Sidecar, bytes: &[u8]) {
    let mut stream = std::net::TcpStream::connect(sidecar.addr).expect("connect");
    use std::io::Write;
    stream.write_all(bytes).expect("send");
    stream.set_read_timeout(Some(SOON)).expect("timeout");
    let mut sink = Vec::new();
    let read = stream.read_to_end(&mut sink);
    assert!(
        read.is_ok(),
        "connection not closed by the sidecar: {read:?}"
    );
}

fn valid_session_works(sidecar: &Sidecar, app: &App) {
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    let (_, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true);
    assert!(client.closed(SOON));
    assert!(
        sidecar
            .log
            .wait("\"outcome\":\"disconnected\"", SOON)
            .is_some()
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn bad_input_closes_only_that_connection() {
    let app = App::start();
    let sidecar = sidecar(&app);
    let cases: &[(&[u8], &str)] = &[
        (b"hello there\r\n\r\n", "malformed header"),
        (b"Content-Length: 999999999\r\n\r\n", "exceeds the limit"),
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "HTTP request arrived on the DAP port",
        ),
        (b"Content-Length: 5\r\n\r\n[1,2]", "invalid DAP message"),
        (b"Content-Length: 2\r\n\r\n{}", "invalid DAP message"),
        (&[0u8; 8192], "header longer than"),
        // A slow partial frame: the rest never comes.
        (
            b"Content-Length: 100\r\n\r\n{\"seq\":1,",
            "no valid attach within",
        ),
    ];
    for (bytes, reason) in cases {
        let before = sidecar.log.len();
        closed_after(&sidecar, bytes);
        assert!(
            sidecar
                .log
                .wait_from(before, SOON, |l| l.contains(reason))
                .is_some(),
            "no log line with {reason:?}:\n{}",
            sidecar.log.all()
        );
        valid_session_works(&sidecar, &app);
    }
    assert_eq!(
        app.client_connections(),
        cases.len(),
        "only the valid sessions reached debugpy"
    );
}

/// An attached client that starts a frame and stalls while the app is paused: the
/// sidecar drops it after frame_timeout and the app resumes.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn stalled_attached_client_is_dropped_and_the_app_resumes() {
    let app = App::start();
    let sidecar = sidecar(&app);
    let mut client = DapClient::connect(sidecar.addr);
    let (_, n) = client.pause_at(json!({}), &app.local_main(), break_line());
    client
        .send_raw(b"Content-Length: 500\r\n\r\n{\"seq\":")
        .expect("partial frame");

    assert!(
        sidecar
            .log
            .wait("frame took longer than limits.frame_timeout", SOON)
            .is_some()
    );
    assert!(app.wait_tick_above(n, SOON).is_some(), "app left paused");
    assert!(client.closed(SOON));
    valid_session_works(&sidecar, &app);
}

/// An oversized message from an attached client ends that session cleanly.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn oversized_message_mid_session_resumes_the_app() {
    let app = App::start();
    let sidecar = sidecar(&app);
    let mut client = DapClient::connect(sidecar.addr);
    let (_, n) = client.pause_at(json!({}), &app.local_main(), break_line());
    client
        .send_raw(b"Content-Length: 2000000\r\n\r\n")
        .expect("header");
    assert!(sidecar.log.wait("exceeds the limit", SOON).is_some());
    assert!(app.wait_tick_above(n, SOON).is_some(), "app left paused");
    drop(TcpStream::connect(sidecar.addr));
    valid_session_works(&sidecar, &app);
}

/// A NUL inside a breakpoint's path kills debugpy (pydevd's reader thread dies on it and
/// the adapter exits); the sidecar refuses it with a clear error, and debugging goes on.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn a_nul_in_a_path_is_refused_and_debugpy_keeps_listening() {
    let app = App::start();
    let sidecar = sidecar(&app);
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    let bad = format!("{}\u{0}.py", app.local_main());
    let refused = client.request(
        "setBreakpoints",
        json!({"source": {"path": bad}, "breakpoints": [{"line": 3}]}),
    );
    assert_eq!(refused["success"], false, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("NUL character") && message.contains("main.py\\0.py"),
        "{message}"
    );
    // The session goes on: the app stops at the breakpoint set before.
    let (_, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true, "{bye}");
    assert!(client.closed(SOON));
    // And debugpy still takes the next one.
    valid_session_works(&sidecar, &app);
}
