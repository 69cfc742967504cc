//! Clients other than VS Code, against real debugpy: a client that sends no
//! `workspaceFolder` (nvim-dap never does) is told why its breakpoint was rejected, in
//! its own words; with `workspaceFolder` the same breakpoint is hit; and a client that
//! shows progress sees the wait for a debugpy that is not up yet.
//!
//! Ignored in a plain `cargo test` (they need debugpy); `scripts/test.sh` runs them with
//! `--ignored`.

mod common;

use common::dap::DapClient;
use common::{App, SOON, Sidecar, TOKEN, break_line, upstream_yaml};
use serde_json::{Value, json};

/// `initialize` as nvim-dap sends it.
fn nvim_initialize(client: &mut DapClient) {
    let init = client.request(
        "initialize",
        json!({
            "clientID": "neovim", "clientName": "neovim", "adapterID": "nvim-dap",
            "pathFormat": "path", "linesStartAt1": true, "columnsStartAt1": true,
            "supportsRunInTerminalRequest": true, "supportsVariableType": true,
            "supportsProgressReporting": true, "supportsStartDebuggingRequest": true,
            "locale": "en_US"
        }),
    );
    assert_eq!(init["success"], true, "{init}");
}

/// The IDE's checkout, on "another machine": a path that does not exist here (debugpy
/// accepts breakpoints in any file that exists where the app runs).
fn checkout() -> String {
    format!(
        "/nonexistent/dap-sidecar-test-{}/checkout",
        std::process::id()
    )
}

/// The checkout's `main.py`.
fn local_main() -> String {
    format!("{}/main.py", checkout())
}

/// Attaches the way nvim-dap does (its configuration's fields, nothing else) and sets
/// one breakpoint in the checkout's `main.py`; returns the setBreakpoints answer.
fn attach_with_breakpoint(client: &mut DapClient, extra: Value) -> Value {
    nvim_initialize(client);
    let mut args = json!({"type": "python", "request": "attach", "name": "Attach", "token": TOKEN});
    if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    let attach = client.send("attach", args);
    assert!(
        client.event("initialized", SOON).is_some(),
        "{:#?}",
        client.history
    );
    let bps = client.request(
        "setBreakpoints",
        json!({"source": {"path": local_main()}, "breakpoints": [{"line": break_line()}]}),
    );
    let done = client.request("configurationDone", json!({}));
    assert_eq!(done["success"], true, "{done}");
    let attached = client.response(attach, SOON);
    assert_eq!(attached["success"], true, "{attached}");
    bps
}

/// The sidecar maps the client's `workspaceFolder` to the app's root (no `local_root`
/// configured), as in the zero-configuration default.
fn sidecar(app: &App) -> Sidecar {
    Sidecar::start(&format!(
        "{}path_mappings:\n  - remote_root: '{}'\nauth:\n  token: {TOKEN}\n",
        upstream_yaml(app.port),
        app.remote_root.display()
    ))
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn a_breakpoint_outside_every_local_root_is_explained_in_the_clients_words() {
    let app = App::start();
    let sidecar = sidecar(&app);
    let mut client = DapClient::connect(sidecar.addr);
    let bps = attach_with_breakpoint(&mut client, json!({}));
    let bp = &bps["body"]["breakpoints"][0];
    assert_eq!(bp["verified"], false, "{bps}");
    let message = bp["message"].as_str().unwrap_or_default();
    for needle in [
        // debugpy's own words stay first.
        "does not exist",
        &format!("{:?}", local_main()),
        "the sidecar's path_mappings map the client's workspaceFolder, and the client sent none",
        &format!("remoteRoot = '{}'", app.remote_root.display()),
        "workspaceFolder = '${workspaceFolder}'",
        "dap.configurations.python",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
    assert!(!message.contains("launch.json"), "{message}");
    println!("the rejected breakpoint's message: {message}");
    let said = client
        .output(SOON, |text| {
            text.contains("was passed to debugpy unchanged")
        })
        .expect("the explanation on the debug console");
    assert!(
        said["body"]["output"]
            .as_str()
            .is_some_and(|o| o.contains(&local_main())),
        "{said}"
    );
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true, "{bye}");
    assert!(client.closed(SOON));

    // The line the hint suggests makes the same breakpoint work.
    let mut client = DapClient::connect(sidecar.addr);
    let bps = attach_with_breakpoint(&mut client, json!({"workspaceFolder": checkout()}));
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    let (_, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], local_main());
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true, "{bye}");
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn a_client_that_shows_progress_sees_the_wait_for_debugpy() {
    let mut app = App::prepare();
    let sidecar = sidecar(&app);
    let mut client = DapClient::connect(sidecar.addr);
    nvim_initialize(&mut client);
    let attach = client.send(
        "attach",
        json!({"type": "python", "request": "attach", "token": TOKEN, "workspaceFolder": checkout()}),
    );
    let start = client
        .event("progressStart", SOON)
        .expect("progressStart while debugpy is not up");
    assert_eq!(start["body"]["title"], "Waiting for debugpy", "{start}");
    // Only now does the app start under debugpy.
    app.launch();
    let end = client
        .event("progressEnd", SOON)
        .expect("progressEnd once debugpy listens");
    assert_eq!(end["body"]["message"], "debugpy is listening", "{end}");
    assert!(
        client.event("initialized", SOON).is_some(),
        "{:#?}",
        client.history
    );
    let done = client.request("configurationDone", json!({}));
    assert_eq!(done["success"], true, "{done}");
    let attached = client.response(attach, SOON);
    assert_eq!(attached["success"], true, "{attached}");
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true, "{bye}");
}
