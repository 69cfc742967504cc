//! End-to-end tests of the DAP gateway against real debugpy.
//!
//! Those that need debugpy are ignored in a plain `cargo test`; `scripts/test.sh` runs
//! them with `--ignored`. `tests/sessions.rs` proves the same behaviour in-process
//! against a fake debugpy, in the fast tier.

mod common;

use std::time::Duration;

use common::dap::DapClient;
use common::{App, SOON, Sidecar, TOKEN, break_line, http_get, mapping_yaml, upstream_yaml};
use serde_json::{Value, json};

fn sidecar_for(app: &App, local_root: &str, extra: &str) -> Sidecar {
    Sidecar::start(&format!(
        "{}{}{extra}",
        upstream_yaml(app.port),
        mapping_yaml(local_root, &app.remote_root)
    ))
}

/// Breakpoint at a local path, hit, local paths in the stack, evaluate, continue,
/// disconnect; the app keeps running and debugpy never saw a local path.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn attach_break_evaluate_continue_with_posix_root() {
    let app = App::start();
    let local_root = app.local_root.display().to_string();
    let sidecar = sidecar_for(&app, &local_root, "");
    let mut client = DapClient::connect(sidecar.addr);

    let bps = client.attach_with_breakpoint(
        json!({"redirectOutput": true}),
        &app.local_main(),
        break_line(),
    );
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    assert_eq!(
        bps["body"]["breakpoints"][0]["source"]["path"],
        app.local_main()
    );

    let (thread, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main(), "{frame}");
    assert_eq!(frame["line"], break_line());
    let n: i64 = client
        .evaluate("n", frame["id"].as_i64().unwrap())
        .parse()
        .unwrap();
    assert_eq!(
        client.evaluate("n * 10", frame["id"].as_i64().unwrap()),
        (n * 10).to_string()
    );

    // Output text with a container path comes back with the local path.
    let _ = client.evaluate(
        "__import__('sys').stdout.write('at ' + __file__ + '\\n')",
        frame["id"].as_i64().unwrap(),
    );
    let out = client
        .output(SOON, |o| o.starts_with("at "))
        .unwrap_or_else(|| {
            let outputs: Vec<&Value> = client
                .history
                .iter()
                .filter(|v| v["event"] == "output")
                .collect();
            panic!("no output event: {outputs:#?}\napp: {}", app.stdout.all())
        });
    assert_eq!(out["body"]["output"], format!("at {}\n", app.local_main()));

    let cleared = client.request(
        "setBreakpoints",
        json!({"source": {"path": app.local_main()}, "breakpoints": []}),
    );
    assert_eq!(cleared["success"], true);
    let cont = client.request("continue", json!({"threadId": thread}));
    assert_eq!(cont["success"], true, "{cont}");
    assert!(
        app.wait_tick_above(n, SOON).is_some(),
        "app did not continue"
    );

    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true);
    assert!(
        client.closed(SOON),
        "connection not closed after disconnect"
    );
    let later = app.stdout.len();
    assert!(
        app.stdout
            .wait_from(later, SOON, |l| l.starts_with("tick "))
            .is_some(),
        "app stopped running after disconnect"
    );

    let log = app.adapter_log();
    assert!(log.contains(&app.remote_root.display().to_string()));
    assert!(
        !log.contains(&local_root),
        "debugpy saw a local path: the sidecar must send only container paths"
    );
}

/// The seed's Windows root, with VS Code sending `C:` where the config says `c:`.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn windows_local_root_matches_either_case_and_separator() {
    let app = App::start();
    let local_root = r"c:\Users\Penny\Documents\Software\home-assistant\";
    let sidecar = sidecar_for(&app, local_root, "");
    let mut client = DapClient::connect(sidecar.addr);

    let local_main = r"C:\Users\Penny\Documents\Software\home-assistant\main.py";
    let bps =
        client.attach_with_breakpoint(json!({"clientOS": "windows"}), local_main, break_line());
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");

    let (_, frame) = client.stopped_frame();
    assert_eq!(
        frame["source"]["path"], local_main,
        "paths come back in the client's spelling"
    );
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true);
    assert!(
        !app.adapter_log().to_lowercase().contains("penny"),
        "debugpy saw a Windows path"
    );
}

/// A client's own pathMappings win over the config for its session, and never reach
/// debugpy.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn client_path_mappings_win_and_are_removed() {
    let app = App::start();
    let sidecar = sidecar_for(&app, "/somewhere/else", "");
    let mut client = DapClient::connect(sidecar.addr);
    let mappings =
        json!({"pathMappings": [{"localRoot": app.local_root, "remoteRoot": app.remote_root}]});
    let bps = client.attach_with_breakpoint(mappings, &app.local_main(), break_line());
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    let (_, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    client.request("disconnect", json!({"terminateDebuggee": false}));
    assert!(!app.adapter_log().contains("pathMappings"));
}

/// Killing the client while the app is stopped at a breakpoint resumes the app, and a
/// new session can attach afterwards.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn client_killed_at_breakpoint_resumes_app_and_allows_a_new_session() {
    let app = App::start();
    let sidecar = sidecar_for(&app, &app.local_root.display().to_string(), "");
    let mut client = DapClient::connect(sidecar.addr);
    let (_, n) = client.pause_at(json!({}), &app.local_main(), break_line());
    client.kill();

    assert!(
        app.wait_tick_above(n, Duration::from_secs(2)).is_some(),
        "app still paused 2 s after the client vanished:\n{}",
        sidecar.log.all()
    );
    assert!(
        sidecar
            .log
            .wait("sending disconnect upstream", SOON)
            .is_some()
    );
    // debugpy releases the app for a new client once it has finalized the old session;
    // the sidecar ends its session only after that.
    assert!(sidecar.log.wait("session ended", SOON).is_some());

    let mut second = DapClient::connect(sidecar.addr);
    second.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    let (_, frame) = second.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    second.request("disconnect", json!({"terminateDebuggee": false}));
}

/// A second client while one holds the session: debugpy's refusal comes through with
/// who holds it.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn second_client_is_told_who_holds_the_session() {
    let app = App::start();
    let sidecar = sidecar_for(&app, &app.local_root.display().to_string(), "");
    let mut first = DapClient::connect(sidecar.addr);
    first.attach_with_breakpoint(json!({}), &app.local_main(), break_line());

    let mut second = DapClient::connect(sidecar.addr);
    second.initialize();
    let seq = second.attach(json!({}));
    let refused = second.response(seq, SOON);
    assert_eq!(refused["success"], false, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("already being debugged"), "{message}");
    assert!(message.contains("held by 127.0.0.1:"), "{message}");

    // The first session is unaffected.
    let (_, frame) = first.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    first.request("disconnect", json!({"terminateDebuggee": false}));
}

/// debugpy not started yet: the attach waits with progress and succeeds once it starts.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn attach_waits_for_a_late_upstream() {
    let mut app = App::prepare();
    let sidecar = sidecar_for(&app, &app.local_root.display().to_string(), "");
    let mut client = DapClient::connect(sidecar.addr);
    client.initialize();
    let attach = client.attach(json!({}));
    let progress = client
        .output(SOON, |o| o.contains("waiting for debugpy"))
        .expect("progress output");
    assert_eq!(progress["body"]["category"], "console");

    app.launch();
    client
        .event("initialized", SOON)
        .expect("attach proceeds once debugpy listens");
    client.request("configurationDone", json!({}));
    assert_eq!(client.response(attach, SOON)["success"], true);
    client.request("disconnect", json!({"terminateDebuggee": false}));
}

/// debugpy never started: a clear error after upstream_timeout.
#[test]
fn attach_fails_clearly_when_upstream_never_starts() {
    let port = common::free_port();
    let sidecar = Sidecar::start(&format!(
        "upstream: 127.0.0.1:{port}\nupstream_timeout: 2s\n"
    ));
    let mut client = DapClient::connect(sidecar.addr);
    client.initialize();
    let seq = client.attach(json!({}));
    let answer = client.response(seq, SOON);
    assert_eq!(answer["success"], false);
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("did not accept a connection"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("2s"), "{message}");
}

/// SIGTERM while a session has the app stopped: the client is told, the app resumes,
/// the sidecar exits 0.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn sigterm_ends_sessions_cleanly_and_resumes_the_app() {
    let app = App::start();
    let mut sidecar = sidecar_for(&app, &app.local_root.display().to_string(), "");
    let mut client = DapClient::connect(sidecar.addr);
    let (_, n) = client.pause_at(json!({}), &app.local_main(), break_line());

    let status = sidecar
        .terminate(Duration::from_secs(10))
        .expect("exited in time");
    assert!(status.success(), "exit status {status}");
    assert!(
        client.event("terminated", SOON).is_some(),
        "no terminated event"
    );
    assert!(
        app.wait_tick_above(n, SOON).is_some(),
        "app still paused after shutdown"
    );
}

/// Every request the sidecar answers before attach keeps debugpy untouched.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn requests_before_attach_are_answered_by_the_sidecar() {
    let app = App::start();
    let sidecar = sidecar_for(&app, "/x", &format!("auth:\n  token: {TOKEN}\n"));
    let mut client = DapClient::connect(sidecar.addr);
    let init = client.initialize();
    assert_eq!(init["body"]["supportsConfigurationDoneRequest"], true);
    let early = client.request("threads", Value::Null);
    assert_eq!(early["success"], false);
    assert!(early["message"].as_str().unwrap().contains("attach"));
    let launch = client.request("launch", json!({}));
    assert!(launch["message"].as_str().unwrap().contains("attach"));
    assert_eq!(app.client_connections(), 0);
}

/// A config mapping without local_root uses the client's workspaceFolder, and an identity
/// pathMappings entry from the IDE does not switch mapping off.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn workspace_folder_is_the_default_local_root() {
    let app = App::start();
    let sidecar = Sidecar::start(&format!(
        "{}path_mappings:\n  - remote_root: '{}'\n",
        upstream_yaml(app.port),
        app.remote_root.display()
    ));
    let mut client = DapClient::connect(sidecar.addr);
    let local = app.local_root.display().to_string();
    let extra = json!({
        "workspaceFolder": local,
        "pathMappings": [{"localRoot": local, "remoteRoot": local}]
    });
    let bps = client.attach_with_breakpoint(extra, &app.local_main(), break_line());
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    let (_, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    client.request("disconnect", json!({"terminateDebuggee": false}));
    assert!(
        !app.adapter_log().contains(&local),
        "debugpy saw the local workspaceFolder"
    );
}

/// Subprocess debugging: debugpy's `startDebugging` reverse request reaches the client
/// with the client's token and mappings handed back, and the IDE's second connection
/// for the child authenticates and maps through the sidecar like the first.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn subprocesses_are_debugged_through_the_sidecar() {
    let mut app = App::prepare();
    app.launch_script(None, "spawn.py", "parent started");
    let sidecar = sidecar_for(
        &app,
        &app.local_root.display().to_string(),
        &format!("auth:\n  token: {TOKEN}\n"),
    );
    let mut parent = DapClient::connect(sidecar.addr);
    let args = json!({"token": TOKEN, "subProcess": true});
    parent.initialize();
    let attach = parent.attach(args);
    parent.event("initialized", SOON).expect("initialized");
    parent.request("configurationDone", json!({}));
    assert_eq!(parent.response(attach, SOON)["success"], true);

    let request = parent
        .wait_for(SOON, |v| {
            v["type"] == "request" && v["command"] == "startDebugging"
        })
        .unwrap_or_else(|| panic!("no startDebugging: {:#?}", parent.history));
    let config = request["arguments"]["configuration"].clone();
    assert_eq!(config["token"], TOKEN, "token not handed back: {config}");
    assert!(config["subProcessId"].is_i64(), "{config}");
    parent.respond(&request, json!({}));

    let mut child = DapClient::connect(sidecar.addr);
    child.initialize();
    let mut child_args = config.clone();
    child_args["request"] = "attach".into();
    let attach = child.send("attach", child_args);
    child
        .event("initialized", SOON)
        .unwrap_or_else(|| panic!("child: {:#?}", child.history));
    let bps = child.request(
        "setBreakpoints",
        json!({"source": {"path": app.local_main()}, "breakpoints": [{"line": break_line()}]}),
    );
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    child.request("configurationDone", json!({}));
    assert_eq!(child.response(attach, SOON)["success"], true);
    let (_, frame) = child.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    child.request("disconnect", json!({"terminateDebuggee": false}));
    parent.request("disconnect", json!({"terminateDebuggee": false}));
    assert!(
        !app.adapter_log().contains(TOKEN),
        "the token reached debugpy"
    );
}

/// debugpy's adapter vanishing mid-session: the client gets `terminated` and a clean
/// close from the sidecar.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn upstream_gone_terminates_the_client_session() {
    let app = App::start();
    let sidecar = sidecar_for(&app, &app.local_root.display().to_string(), "");
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    client.stopped_frame();
    let (_, status) = common::http_get(sidecar.http, "/status");
    let status: Value = serde_json::from_str(&status).expect("status");
    let adapter = status["target"]["adapter"]["pid"]
        .as_u64()
        .expect("adapter pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &adapter.to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    assert!(
        client.event("terminated", SOON).is_some(),
        "no terminated event"
    );
    assert!(client.closed(SOON), "client connection left open");
    assert!(
        sidecar
            .log
            .wait("\"outcome\":\"upstream_lost\"", SOON)
            .is_some()
    );
}

/// The app dying mid-session: debugpy reports `terminated` through the sidecar and the
/// session ends on the IDE's `disconnect`, as it would directly.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn app_exit_is_reported_and_the_session_ends_cleanly() {
    let mut app = App::start();
    let sidecar = sidecar_for(&app, &app.local_root.display().to_string(), "");
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    client.stopped_frame();
    app.kill();
    assert!(
        client.event("terminated", SOON).is_some(),
        "no terminated event"
    );
    let seq = client.send("disconnect", json!({"terminateDebuggee": false}));
    let _ = client.wait_for(SOON, |v| v["request_seq"] == seq);
    assert!(client.closed(SOON), "client connection left open");
    assert!(sidecar.log.wait("session ended", SOON).is_some());
}

/// A large value dump from real debugpy (a 3 MB string copied as for the clipboard, so
/// debugpy does not shorten it) arrives whole and intact, passed through as it arrived
/// rather than held, while path-carrying messages around it are still mapped.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn large_responses_from_debugpy_pass_through_intact() {
    let app = App::start();
    let local_root = app.local_root.display().to_string();
    let sidecar = sidecar_for(&app, &local_root, "");
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    let (thread, frame) = client.stopped_frame();
    let frame = frame["id"].as_i64().expect("frame id");
    let big = client.request(
        "evaluate",
        json!({"expression": "'ab' * 1_500_000", "frameId": frame, "context": "clipboard"}),
    );
    assert_eq!(big["success"], true);
    let result = big["body"]["result"].as_str().expect("result");
    assert_eq!(result.len(), 3_000_002, "the quoted repr, whole");
    assert!(
        result
            .trim_matches('\'')
            .chars()
            .all(|c| c == 'a' || c == 'b')
    );
    let (_, metrics) = http_get(sidecar.http, "/metrics");
    assert!(
        metrics.contains("dap_sidecar_messages_passed_through_total 1"),
        "the response was held, not passed through:\n{metrics}"
    );
    // The session goes on normally, with paths mapped.
    let trace = client.request("stackTrace", json!({"threadId": thread}));
    assert_eq!(
        trace["body"]["stackFrames"][0]["source"]["path"],
        app.local_main()
    );
}
