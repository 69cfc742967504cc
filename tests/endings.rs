//! Every way a client can end a session leaves debugpy able to take the next one.
//!
//! debugpy 1.8.22 sends `terminated` before its answer to `disconnect`; a client that
//! closes the instant it sees `terminated` (nvim-dap does) or right after sending
//! `disconnect` makes debugpy's adapter fail to write that answer, and the adapter
//! exits: nobody can attach again until the app restarts. The sidecar keeps its own
//! connection to debugpy open until debugpy has answered, whatever the client does.
//!
//! The count of sessions per ending is `ENDINGS_TEST_SESSIONS` (default 1000; named
//! outside the `DAP_SIDECAR_` prefix, which every sidecar the tests start would read).
//! Ignored in a plain `cargo test` (they need debugpy); `scripts/test.sh` runs them with
//! `--ignored`.

mod common;

use std::time::Instant;

use common::dap::DapClient;
use common::{App, SOON, Sidecar, TOKEN, mapping_yaml, upstream_yaml};
use serde_json::{Value, json};

/// How a test client ends its session.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Sends `disconnect` and closes the connection the instant `terminated` arrives.
    CloseOnTerminated,
    /// Sends `disconnect` and closes at once, without reading anything.
    CloseAfterDisconnect,
}

fn sessions_wanted() -> usize {
    std::env::var("ENDINGS_TEST_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn sidecar(app: &App) -> Sidecar {
    Sidecar::start(&format!(
        "{}{}auth:\n  token: {TOKEN}\n",
        upstream_yaml(app.port),
        mapping_yaml(&app.local_root.display().to_string(), &app.remote_root)
    ))
}

/// One attach through the sidecar up to the attach response; `Err` says what failed
/// (debugpy not accepting a session any more shows up here).
fn attach(sidecar: &Sidecar) -> Result<DapClient, String> {
    let mut client = DapClient::connect(sidecar.addr);
    let init = client.request(
        "initialize",
        json!({"clientID": "neovim", "adapterID": "python"}),
    );
    if init["success"] != true {
        return Err(format!("initialize: {init}"));
    }
    let attach = client.attach(json!({"token": TOKEN}));
    let initialized = client.wait_for(SOON, |v| {
        v["event"] == "initialized" || (v["type"] == "response" && v["request_seq"] == attach)
    });
    match initialized {
        Some(v) if v["event"] == "initialized" => {}
        other => return Err(format!("no initialized event: {other:?}")),
    }
    let done = client.request("configurationDone", json!({}));
    if done["success"] != true {
        return Err(format!("configurationDone: {done}"));
    }
    let attached = client.response(attach, SOON);
    if attached["success"] != true {
        return Err(format!("attach: {attached}"));
    }
    Ok(client)
}

/// Runs the sessions; returns how many adapter deaths (a session that could not attach
/// after the previous one ended) there were, stopping at the first.
fn run(ending: Ending) {
    let app = App::start();
    let sidecar = sidecar(&app);
    let wanted = sessions_wanted();
    let started = Instant::now();
    let mut deaths = 0;
    let mut done = 0;
    for i in 0..wanted {
        let mut client = match attach(&sidecar) {
            Ok(client) => client,
            Err(why) => {
                deaths += 1;
                eprintln!("session {i}: debugpy no longer takes a session: {why}");
                break;
            }
        };
        client.send("disconnect", json!({"terminateDebuggee": false}));
        match ending {
            Ending::CloseOnTerminated => {
                let seen = client.wait_for(SOON, |v: &Value| v["event"] == "terminated");
                assert!(seen.is_some(), "session {i}: no terminated event");
                client.kill();
            }
            Ending::CloseAfterDisconnect => client.kill(),
        }
        done += 1;
    }
    let took = started.elapsed();
    println!(
        "{ending:?}: {done} sessions, {deaths} adapter deaths, {:.1} ms per session",
        took.as_secs_f64() * 1000.0 / done.max(1) as f64
    );
    assert_eq!(deaths, 0, "adapter log:\n{}", tail(&app.adapter_log()));
    // The app was never left paused: it still ticks.
    assert!(app.wait_tick_above(0, SOON).is_some());
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn closing_on_terminated_never_kills_debugpy() {
    run(Ending::CloseOnTerminated);
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn closing_right_after_disconnect_never_kills_debugpy() {
    run(Ending::CloseAfterDisconnect);
}

/// Against real debugpy (which sends `terminated` first): the client sees the answer to
/// its `disconnect`, then `terminated`, then the connection closes; and debugpy takes
/// the next session.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn the_disconnect_answer_comes_before_terminated() {
    let app = App::start();
    let sidecar = sidecar(&app);
    for _ in 0..2 {
        let mut client = attach(&sidecar).expect("attach");
        let seq = client.send("disconnect", json!({"terminateDebuggee": false}));
        assert!(client.closed(SOON), "connection left open after disconnect");
        assert_answer_before_terminated(&client, seq);
    }
}

/// `terminate` (nvim-dap's `:DapTerminate`; debugpy ends the app on it) gets the same
/// order: its answer first, then `terminated`.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn the_terminate_answer_comes_before_terminated() {
    let app = App::start();
    let sidecar = sidecar(&app);
    let mut client = attach(&sidecar).expect("attach");
    let seq = client.send("terminate", json!({}));
    let answer = client.response(seq, SOON);
    assert_eq!(answer["success"], true, "{answer}");
    assert!(
        client.event("terminated", SOON).is_some(),
        "{:#?}",
        client.history
    );
    assert_answer_before_terminated(&client, seq);
}

/// The client received the answer to request `seq`, then a `terminated` event.
fn assert_answer_before_terminated(client: &DapClient, seq: i64) {
    let position = |pred: &dyn Fn(&Value) -> bool| client.history.iter().position(pred);
    let answer = position(&|m| m["type"] == "response" && m["request_seq"] == seq);
    let terminated = position(&|m| m["event"] == "terminated");
    assert!(
        matches!((answer, terminated), (Some(a), Some(t)) if a < t),
        "{:#?}",
        client.history
    );
}
